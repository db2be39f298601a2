"""Retrieval quality: recall@5 and MRR@10 of the document search, per mode and backend.

The evaluation set is ``bench/data/rag_eval`` (see its README): a frozen snapshot of the
project's manual (``docs/*.md``) and 250-odd questions written by hand, each labelled
with the one section of one file that answers it. A hit is relevant when its chunk has
that ``source`` and ``section``.

Modes, all through :class:`~ai_agents.rag.service.DocumentService` (``top_k=10``,
``SearchSettings(candidates=40, alpha)``):

- ``bm25``: ``alpha=0`` (full text only), no reranking (``MMRReranker(lambda_=1.0)``
  keeps the order); hits found only by the vector side (score 0) are dropped, so the
  ranking is the full-text one alone;
- ``vector``: ``alpha=1`` (embeddings only), no reranking; hits found only by full text
  are dropped likewise;
- ``hybrid``: ``alpha=0.5`` (the default), no reranking;
- ``hybrid+mmr``: the default service: ``alpha=0.5`` and ``MMRReranker()``;
- ``hybrid+cross-encoder``: ``alpha=0.5`` and ``CrossEncoderReranker(PATH)``, only with
  ``--cross-encoder PATH`` (a local sentence-transformers CrossEncoder directory).

Fusion variants (``--no-variants`` to skip) are computed here, not by the product: the
full-text and vector candidate lists are fetched once each (``alpha=0`` and ``alpha=1``)
and fused client-side, with reciprocal rank fusion and other ``alpha`` weights, to show
what another fusion would give on the same candidates.

Backends: ``postgres`` always (a throwaway migrated database, ``bench/_common.py``);
``pgvector`` with ``--pgvector-url URL`` (a database with the ``vector`` extension,
migrated here first); ``opensearch`` with ``--opensearch-url URL`` (a throwaway index,
deleted afterwards). The corpus is ingested once per backend with MiniLM (tenant
``eval``); the questions are embedded once, in one batch, and every mode reuses their
vectors (``CachingEmbedder``), so only the searches are repeated.

Usage: ``python bench/rag_quality.py [--markdown] [--json FILE] [--pgvector-url URL]
[--opensearch-url URL] [--cross-encoder PATH] [--no-variants]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import inspect
import json
import os
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import bench_database  # noqa: E402
from rag_eval import (  # noqa: E402
    CORPUS,
    Question,
    corpus_files,
    first_relevant_rank,
    load_questions,
    mrr_at,
    recall_at,
)

from ai_agents.db import migrate  # noqa: E402
from ai_agents.rag.embedders import CachingEmbedder, MiniLMEmbedder  # noqa: E402
from ai_agents.rag.index import DocumentIndex, SearchHit, combine_scores  # noqa: E402
from ai_agents.rag.rerank import CrossEncoderReranker, MMRReranker, Reranker  # noqa: E402
from ai_agents.rag.service import DocumentService, SearchSettings  # noqa: E402

TENANT = "eval"
TOP_K = 10
CANDIDATES = 40
RRF_K = 60


@dataclass(frozen=True, slots=True)
class Mode:
    name: str
    alpha: float
    reranker: Callable[[], Reranker]
    #: Keep only hits the measured side found ("text" or "vector"); None keeps all.
    side: str | None = None


def modes(cross_encoder: str | None) -> list[Mode]:
    keep_order = lambda: MMRReranker(lambda_=1.0)  # noqa: E731
    out = [
        Mode("bm25", 0.0, keep_order, side="text"),
        Mode("vector", 1.0, keep_order, side="vector"),
        Mode("hybrid", 0.5, keep_order),
        Mode("hybrid+mmr", 0.5, MMRReranker),
    ]
    if cross_encoder:
        out.append(Mode("hybrid+cross-encoder", 0.5, lambda: CrossEncoderReranker(cross_encoder)))
    return out


@dataclass(slots=True)
class Row:
    mode: str
    ranks: list[int | None]

    @property
    def recall5(self) -> float:
        return recall_at(self.ranks, 5)

    @property
    def mrr10(self) -> float:
        return mrr_at(self.ranks, 10)

    def to_json(self, questions: Sequence[Question]) -> dict[str, Any]:
        return {
            "recall@5": round(self.recall5, 4),
            "mrr@10": round(self.mrr10, 4),
            "n": len(self.ranks),
            "ranks": {q.id: r for q, r in zip(questions, self.ranks, strict=True)},
        }


@dataclass(slots=True)
class BackendReport:
    label: str
    chunks: int
    seconds: float = 0.0
    rows: list[Row] = field(default_factory=list)
    variants: list[Row] = field(default_factory=list)

    def recall(self, mode: str) -> float:
        return next(r.recall5 for r in self.rows if r.mode == mode)

    @property
    def accepted(self) -> bool:
        return self.recall("hybrid") >= max(self.recall("bm25"), self.recall("vector"))


def _kept(hits: Sequence[SearchHit], side: str | None) -> list[SearchHit]:
    if side == "text":
        return [h for h in hits if h.text_score is not None]
    if side == "vector":
        return [h for h in hits if h.vector_score is not None]
    return list(hits)


def _key(hit: SearchHit) -> tuple[str, int]:
    return (hit.chunk.file_hash, hit.chunk.position)


async def measure(
    label: str,
    index: DocumentIndex,
    embedder: CachingEmbedder,
    questions: Sequence[Question],
    args: argparse.Namespace,
) -> BackendReport:
    start = time.perf_counter()
    ingest = DocumentService(index, embedder)
    results = await ingest.ingestor.ingest_paths(corpus_files(), tenant_id=TENANT, root=CORPUS)
    report = BackendReport(label, chunks=sum(r.chunks for r in results))
    for mode in modes(args.cross_encoder):
        service = DocumentService(
            index,
            embedder,
            reranker=mode.reranker(),
            settings=SearchSettings(candidates=CANDIDATES, alpha=mode.alpha),
        )
        ranks = []
        for q in questions:
            hits = await service.search(TENANT, q.question, top_k=TOP_K)
            ranks.append(first_relevant_rank(_kept(hits, mode.side)[:TOP_K], q))
        report.rows.append(Row(mode.name, ranks))
    if args.variants:
        report.variants = await fusion_variants(index, embedder, questions)
    report.seconds = time.perf_counter() - start
    return report


async def fusion_variants(
    index: DocumentIndex, embedder: CachingEmbedder, questions: Sequence[Question]
) -> list[Row]:
    """Other fusions of the same two candidate lists, ranked here (no reranking)."""
    fusions: dict[str, Callable[[dict[Any, float], dict[Any, float]], dict[Any, float]]] = {
        f"rrf (k={RRF_K})": _rrf,
        "alpha=0.3 (text-leaning)": lambda t, v: combine_scores(t, v, alpha=0.3),
        "alpha=0.7 (vector-leaning)": lambda t, v: combine_scores(t, v, alpha=0.7),
    }
    ranks: dict[str, list[int | None]] = {name: [] for name in fusions}
    vectors = await embedder.embed([q.question for q in questions])
    for q, vector in zip(questions, vectors, strict=True):
        lists = {}
        for side, alpha in (("text", 0.0), ("vector", 1.0)):
            hits = await index.search(
                TENANT,
                entity_id=None,
                text=q.question,
                vector=vector,
                embedder=embedder.name,
                candidates=CANDIDATES,
                alpha=alpha,
            )
            lists[side] = _kept(hits, side)
        by_key = {_key(h): h for hits in lists.values() for h in hits}
        text = {_key(h): float(h.text_score or 0.0) for h in lists["text"]}
        vec = {_key(h): float(h.vector_score or 0.0) for h in lists["vector"]}
        for name, fuse in fusions.items():
            scores = fuse(text, vec)
            ranked = sorted(scores, key=lambda k: (-scores[k], k))[:TOP_K]
            ranks[name].append(first_relevant_rank([by_key[k] for k in ranked], q))
    return [Row(name, r) for name, r in ranks.items()]


def _rrf(text: dict[Any, float], vector: dict[Any, float]) -> dict[Any, float]:
    """Reciprocal rank fusion: sum of ``1 / (k + rank)`` over the lists a hit is in."""
    out: dict[Any, float] = {}
    for scores in (text, vector):
        for rank, key in enumerate(sorted(scores, key=lambda k: (-scores[k], k)), start=1):
            out[key] = out.get(key, 0.0) + 1.0 / (RRF_K + rank)
    return out


async def pgvector_active(index: object) -> bool | None:
    """Whether the index says it searches with pgvector (None: it does not say)."""
    value = getattr(index, "uses_pgvector", None)
    if callable(value):
        value = value()
        if inspect.isawaitable(value):
            value = await value
    return value if isinstance(value, bool) else None


async def run(args: argparse.Namespace, postgres_url: str) -> list[BackendReport]:
    from ai_agents.rag.pg_index import PgDocumentIndex

    questions = load_questions()
    embedder = CachingEmbedder(MiniLMEmbedder())
    start = time.perf_counter()
    await embedder.embed([q.question for q in questions])  # one batch; modes reuse them
    print(
        f"{len(questions)} questions embedded in {time.perf_counter() - start:.1f} s "
        f"({embedder.name})",
        file=sys.stderr,
    )
    reports = []

    index = PgDocumentIndex.from_url(postgres_url)
    try:
        report = await measure(index.backend, index, embedder, questions, args)
        if await pgvector_active(index):  # the server has the extension: say so
            report.label = f"{index.backend} (pgvector active)"
        reports.append(report)
    finally:
        await index.aclose()

    if args.pgvector_url:
        index = PgDocumentIndex.from_url(args.pgvector_url)
        try:
            report = await measure("pgvector", index, embedder, questions, args)
            state = await pgvector_active(index)
            if state is not None:
                report.label = f"{index.backend} (pgvector {'active' if state else 'inactive'})"
            reports.append(report)
        finally:
            await index.aclose()

    if args.opensearch_url:
        from ai_agents.rag.opensearch_index import OpenSearchDocumentIndex

        name = f"rag_eval_{uuid.uuid4().hex[:8]}"
        os_index = OpenSearchDocumentIndex(
            url=args.opensearch_url, index=name, dimensions=embedder.dimensions
        )
        try:
            await os_index.setup()
            reports.append(await measure(os_index.backend, os_index, embedder, questions, args))
        finally:
            with contextlib.suppress(Exception):
                await os_index.client.indices.delete(index=name)
            await os_index.aclose()
    return reports


def print_report(reports: Sequence[BackendReport], args: argparse.Namespace) -> None:
    for report in reports:
        title = f"{report.label}: {report.chunks} chunks, {report.seconds:.1f} s"
        sections: list[tuple[str | None, list[Row]]] = [(None, report.rows)]
        if report.variants:
            sections.append(
                ("fusion variants, computed here on the same candidates", report.variants)
            )
        if args.markdown:
            print(f"\n#### {title}\n")
            for heading, rows in sections:
                if heading:
                    print(f"\n{heading[0].upper()}{heading[1:]}:\n")
                print("| mode | recall@5 | MRR@10 | n |")
                print("| --- | ---: | ---: | ---: |")
                for row in rows:
                    print(
                        f"| {row.mode} | {row.recall5:.3f} | {row.mrr10:.3f} | {len(row.ranks)} |"
                    )
        else:
            print(f"\n== {title}")
            for heading, rows in sections:
                if heading:
                    print(f"-- {heading}")
                print(f"{'mode':<28}{'recall@5':>10}{'MRR@10':>10}{'n':>6}")
                for row in rows:
                    print(
                        f"{row.mode:<28}{row.recall5:>10.3f}{row.mrr10:>10.3f}{len(row.ranks):>6}"
                    )
        if not args.cross_encoder:
            print("\nhybrid+cross-encoder: not measured (no --cross-encoder PATH)")
    if not args.pgvector_url:
        print("pgvector: not measured (no --pgvector-url)")
    if not args.opensearch_url:
        print("opensearch: not measured (no --opensearch-url)")
    print("\nacceptance: hybrid recall@5 >= max(bm25, vector) recall@5")
    for report in reports:
        verdict = "yes" if report.accepted else "NO"
        print(
            f"  {report.label}: {verdict} (hybrid {report.recall('hybrid'):.3f}, "
            f"bm25 {report.recall('bm25'):.3f}, vector {report.recall('vector'):.3f})"
        )


def write_json(path: str, reports: Sequence[BackendReport], questions: Sequence[Question]) -> None:
    data = {
        "questions": len(questions),
        "top_k": TOP_K,
        "candidates": CANDIDATES,
        "backends": {
            r.label: {
                "chunks": r.chunks,
                "seconds": round(r.seconds, 2),
                "hybrid_recall_at_least_best_single": r.accepted,
                "modes": {row.mode: row.to_json(questions) for row in r.rows},
                "variants": {row.mode: row.to_json(questions) for row in r.variants},
            }
            for r in reports
        },
    }
    Path(path).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", action="store_true", help="print Markdown tables")
    parser.add_argument("--json", metavar="FILE", help="write the figures (and ranks) as JSON")
    parser.add_argument("--pgvector-url", help="a PostgreSQL database with the vector extension")
    parser.add_argument("--opensearch-url", help="an OpenSearch cluster (a throwaway index)")
    parser.add_argument("--cross-encoder", metavar="PATH", help="a local CrossEncoder directory")
    parser.add_argument(
        "--no-variants", dest="variants", action="store_false", help="skip the fusion variants"
    )
    args = parser.parse_args()
    start = time.perf_counter()
    with bench_database() as url:
        if args.pgvector_url:
            migrate.upgrade(args.pgvector_url)
        reports = asyncio.run(run(args, url))
    print_report(reports, args)
    if args.json:
        write_json(args.json, reports, load_questions())
    print(f"\ntotal {time.perf_counter() - start:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
