"""Reranking: order the hybrid candidates before the top ``k`` are returned.

- :class:`MMRReranker` (default): Maximal Marginal Relevance over the embeddings. It
  picks, one by one, the candidate maximizing
  ``lambda * relevance - (1 - lambda) * max(similarity to the already picked)``, so
  near-duplicate passages (overlapping chunks, a paragraph repeated in two documents)
  do not fill the top ``k`` and crowd out the second fact a question needs.
- :class:`CrossEncoderReranker`: a sentence-transformers ``CrossEncoder`` read from a
  configured local directory (never downloaded), scoring each (query, passage) pair
  jointly; slower, usually more precise. Prediction runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ai_agents.errors import ValidationError
from ai_agents.rag.embedders import load_sentence_model
from ai_agents.rag.index import SearchHit


@runtime_checkable
class Reranker(Protocol):
    async def rerank(
        self, query: str, query_vector: Sequence[float], hits: Sequence[SearchHit], top_k: int
    ) -> list[SearchHit]: ...


class MMRReranker:
    """Maximal Marginal Relevance; ``lambda_=1`` keeps the hybrid order unchanged."""

    def __init__(self, lambda_: float = 0.7) -> None:
        if not 0.0 <= lambda_ <= 1.0:
            raise ValidationError("MMR lambda must be between 0 and 1")
        self.lambda_ = lambda_

    async def rerank(
        self, query: str, query_vector: Sequence[float], hits: Sequence[SearchHit], top_k: int
    ) -> list[SearchHit]:
        return mmr(hits, top_k, lambda_=self.lambda_)


def mmr(hits: Sequence[SearchHit], top_k: int, *, lambda_: float = 0.7) -> list[SearchHit]:
    """Select *top_k* hits by MMR on ``hit.score`` (relevance) and ``hit.embedding``."""
    pool = list(hits)
    if top_k <= 0 or not pool:
        return []
    with_vectors = [h for h in pool if h.embedding is not None]
    if len(with_vectors) != len(pool):  # cannot measure redundancy: keep relevance order
        return sorted(pool, key=lambda h: -h.score)[:top_k]
    matrix = np.asarray([h.embedding for h in pool], dtype=np.float32)
    similarity = matrix @ matrix.T
    relevance = np.asarray([h.score for h in pool], dtype=np.float32)
    chosen: list[int] = []
    best_overlap = np.full(len(pool), -np.inf, dtype=np.float32)
    remaining = set(range(len(pool)))
    while remaining and len(chosen) < top_k:
        indices = np.fromiter(remaining, dtype=np.int64)
        penalty = np.where(np.isfinite(best_overlap[indices]), best_overlap[indices], 0.0)
        value = lambda_ * relevance[indices] - (1 - lambda_) * penalty
        # Ties go to the more relevant, then to the earlier candidate (stable output).
        order = np.lexsort((indices, -relevance[indices], -value))
        pick = int(indices[order[0]])
        chosen.append(pick)
        remaining.discard(pick)
        best_overlap = np.maximum(best_overlap, similarity[pick])
    return [pool[i] for i in chosen]


class CrossEncoderReranker:
    """Scores (query, passage) pairs with a local cross-encoder model directory."""

    def __init__(self, model_path: str | os.PathLike[str], *, batch_size: int = 32) -> None:
        self.model_path = Path(model_path)
        self.batch_size = batch_size
        self._lock = threading.Lock()

    def model(self) -> Any:
        return load_sentence_model(self.model_path, kind="cross-encoder")

    def _predict(self, query: str, passages: list[str]) -> list[float]:
        model = self.model()
        with self._lock:
            scores = model.predict(
                [(query, p) for p in passages],
                batch_size=self.batch_size,
                show_progress_bar=False,
                convert_to_numpy=True,
            )
        return [float(s) for s in np.asarray(scores).reshape(-1)]

    async def rerank(
        self, query: str, query_vector: Sequence[float], hits: Sequence[SearchHit], top_k: int
    ) -> list[SearchHit]:
        if not hits or top_k <= 0:
            return []
        passages = [h.chunk.embedding_text() for h in hits]
        scores = await asyncio.to_thread(self._predict, query, passages)
        for hit, score in zip(hits, scores, strict=True):
            hit.rerank_score = score
        ranked = sorted(zip(hits, scores, strict=True), key=lambda pair: (-pair[1], -pair[0].score))
        return [hit for hit, _ in ranked[:top_k]]
