"""Hybrid score combination, MMR, the cross-encoder reranker and the REAL[] decoder."""

from __future__ import annotations

import math
import struct
from pathlib import Path

import pytest

np = pytest.importorskip("numpy")

from ai_agents.errors import ValidationError  # noqa: E402
from ai_agents.rag.index import Chunk, SearchHit, check_scope, combine_scores, min_max  # noqa: E402
from ai_agents.rag.pg_index import parse_real_arrays  # noqa: E402
from ai_agents.rag.rerank import CrossEncoderReranker, MMRReranker, mmr  # noqa: E402


def test_min_max_and_combination_formula() -> None:
    assert min_max({}) == {}
    assert min_max({"a": 3.0, "b": 3.0}) == {"a": 1.0, "b": 1.0}
    assert min_max({"a": 2.0, "b": 4.0, "c": 3.0}) == {"a": 0.0, "b": 1.0, "c": 0.5}
    text = {"a": 10.0, "b": 5.0, "c": 0.0}  # BM25-like, unbounded
    vector = {"b": 0.9, "d": 0.5}  # cosine
    combined = combine_scores(text, vector, alpha=0.5)
    assert combined == pytest.approx({"a": 0.5, "b": 0.5 * 1.0 + 0.5 * 0.5, "c": 0.0, "d": 0.0})
    assert combine_scores(text, vector, alpha=1.0)["b"] == pytest.approx(1.0)
    assert combine_scores(text, vector, alpha=0.0)["a"] == pytest.approx(1.0)
    with pytest.raises(ValidationError):
        combine_scores(text, vector, alpha=1.5)


def test_scope_validation() -> None:
    assert check_scope("t1", None) == ""
    assert check_scope("t1", "prop-7") == "prop-7"
    for tenant, entity in (("", None), ("t", ""), ("t", " "), ("t", "x" * 201)):
        with pytest.raises(ValidationError):
            check_scope(tenant, entity)


def _hit(name: str, score: float, vector: list[float]) -> SearchHit:
    norm = math.sqrt(sum(x * x for x in vector))
    return SearchHit(
        chunk=Chunk(file_hash="h", source=name, position=0, content=name),
        entity_id=None,
        score=score,
        embedding=[x / norm for x in vector],
    )


async def test_mmr_prefers_a_different_passage_over_a_near_duplicate() -> None:
    hits = [
        _hit("pool hours", 1.0, [1.0, 0.0, 0.0]),
        _hit("pool hours (overlap copy)", 0.95, [0.99, 0.05, 0.0]),
        _hit("pool rules", 0.8, [0.2, 1.0, 0.0]),
    ]
    picked = await MMRReranker(0.7).rerank("pool", [1.0, 0.0, 0.0], hits, 2)
    assert [h.chunk.source for h in picked] == ["pool hours", "pool rules"]
    # lambda = 1 is plain relevance order.
    assert [h.chunk.source for h in mmr(hits, 3, lambda_=1.0)] == [h.chunk.source for h in hits]
    assert mmr(hits, 0) == []
    with pytest.raises(ValidationError):
        MMRReranker(1.2)


def test_mmr_without_embeddings_keeps_relevance_order() -> None:
    hits = [_hit("a", 0.2, [1, 0]), _hit("b", 0.9, [1, 0])]
    hits[0].embedding = None
    assert [h.chunk.source for h in mmr(hits, 2)] == ["b", "a"]


def test_parse_real_arrays_reads_postgres_binary_format() -> None:
    def array_send(values: list[float]) -> bytes:
        header = struct.pack(">iiiii", 1, 0, 700, len(values), 1)
        return header + b"".join(struct.pack(">if", 4, v) for v in values)

    rows = [[0.5, -1.25, 3.0], [1.0, 2.0, -0.0]]
    matrix = parse_real_arrays([array_send(r) for r in rows])
    assert matrix.dtype == np.float32 and matrix.shape == (2, 3)
    assert matrix.tolist() == rows
    assert parse_real_arrays([]).shape == (0, 0)
    from ai_agents.rag.errors import DocumentIndexError

    with pytest.raises(DocumentIndexError, match="different dimensions"):
        parse_real_arrays([array_send([1.0, 2.0]), array_send([1.0])])


@pytest.mark.slow
async def test_cross_encoder_reranks_by_its_own_scores(tmp_path: Path) -> None:
    """A cross-encoder read from a local directory (built here from MiniLM's weights with a
    fresh scoring head, since no trained cross-encoder ships offline) orders hits by
    ``model.predict`` on (query, passage) pairs."""
    pytest.importorskip("sentence_transformers")
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from ai_agents.rag.embedders import minilm_model_path

    source = minilm_model_path()
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(str(source), num_labels=1)
    model.save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(str(source)).save_pretrained(tmp_path)

    reranker = CrossEncoderReranker(tmp_path)
    hits = [_hit(f"passage {i} about {topic}", 1.0 - i / 10, [1.0, i]) for i, topic in
            enumerate(["the pool", "parking", "pets", "rent"])]  # fmt: skip
    ranked = await reranker.rerank("pool hours", [1.0, 0.0], hits, 3)
    expected = reranker.model().predict([("pool hours", h.chunk.embedding_text()) for h in hits])
    order = sorted(range(4), key=lambda i: -float(expected[i]))[:3]
    assert [h.chunk.source for h in ranked] == [hits[i].chunk.source for i in order]
    assert all(h.rerank_score is not None for h in ranked)
    assert await reranker.rerank("q", [1.0], [], 3) == []
