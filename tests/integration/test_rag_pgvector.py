"""The document index on pgvector (the embedded PostgreSQL 18, started for the session).

The CI's system PostgreSQL has no pgvector, so the rest of the RAG suite covers the numpy
path there; these tests run the pgvector path against a real server that has it, and
compare it with the numpy path on the same data.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator

import asyncpg
import numpy as np
import pytest
from sqlalchemy import text as sql

from ai_agents.db import migrate
from ai_agents.embeddings import HashingEmbedder
from ai_agents.errors import ConfigurationError
from ai_agents.rag import pgvector
from ai_agents.rag.index import Chunk
from ai_agents.rag.pg_index import _ROW_COLUMNS, PgDocumentIndex
from ai_agents.rag.pgvector import SWITCH_ENV
from ai_agents.rag.service import DocumentService
from tests import pg

DIMS = 32


def _chunk(source: str, position: int, text: str) -> Chunk:
    return Chunk(file_hash=f"h-{source}", source=source, position=position, content=text)


def _unit_rows(rng: np.random.Generator, n: int) -> np.ndarray:
    # Clustered like real embeddings (few directions plus noise), unit length.
    centers = rng.normal(size=(8, DIMS))
    rows = centers[rng.integers(0, 8, n)] + 0.6 * rng.normal(size=(n, DIMS))
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture
def migrated_url(pgvector_database_url: str) -> str:
    migrate.upgrade(pgvector_database_url)
    return pgvector_database_url


@pytest.fixture
async def index(migrated_url: str) -> AsyncIterator[PgDocumentIndex]:
    pg = PgDocumentIndex.from_url(migrated_url)
    try:
        yield pg
    finally:
        await pg.aclose()


@pytest.fixture
def numpy_only() -> Iterator[None]:
    os.environ[SWITCH_ENV] = "off"
    try:
        yield
    finally:
        os.environ.pop(SWITCH_ENV, None)


async def _fetch(url: str, query: str) -> list[asyncpg.Record]:
    conn = await pg.connect(url)
    try:
        return list(await conn.fetch(query))
    finally:
        await conn.close()


async def _store(
    index: PgDocumentIndex, tenant: str, vectors: np.ndarray, *, entity: str | None = None
) -> list[str]:
    """One document per vector (source ``{tenant}-{i}``); returns the sources."""
    sources = []
    for i, vec in enumerate(vectors):
        source = f"{tenant}-{entity or ''}-{i}"
        await index.replace_document(
            tenant, entity, [_chunk(source, 0, f"passage {i}")], [vec.tolist()], "test-embedder"
        )
        sources.append(source)
    return sources


async def _vector_search(
    index: PgDocumentIndex, tenant: str, query: np.ndarray, k: int, entity: str | None = None
) -> list[str]:
    hits = await index.search(
        tenant,
        entity_id=entity,
        text="zzzz",  # no full-text match: the ranking is the vector one
        vector=query.tolist(),
        embedder="test-embedder",
        candidates=k,
        alpha=1.0,
    )
    return [h.chunk.source for h in hits]


async def test_migrate_switches_to_pgvector_and_indexes_each_dimension(
    index: PgDocumentIndex, migrated_url: str
) -> None:
    state = await index.vector_state()
    assert state.active and state.installed and state.indexed_dimensions == ()
    service = DocumentService(index, HashingEmbedder(DIMS))
    await service.ingestor.ingest_text("The sauna opens at noon.", source="s.txt", tenant_id="t")
    columns = await _fetch(
        migrated_url,
        "SELECT column_name, udt_name, is_nullable FROM information_schema.columns "
        "WHERE table_name = 'document_chunks' AND column_name LIKE 'embedding%'",
    )
    assert {(r[0], r[1], r[2]) for r in columns} == {
        ("embedding", "_float4", "YES"),
        ("embedding_vector", "vector", "YES"),
    }
    (row,) = await _fetch(
        migrated_url,
        "SELECT embedding IS NULL AS old_empty, vector_dims(embedding_vector) AS dims "
        "FROM document_chunks",
    )
    assert row["old_empty"] and row["dims"] == DIMS
    (definition,) = await _fetch(
        migrated_url,
        f"SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_document_chunks_hnsw_{DIMS}'",
    )
    assert "USING hnsw" in definition[0] and "vector_cosine_ops" in definition[0]
    assert (await index.vector_state()).indexed_dimensions == (DIMS,)
    assert "pgvector 0.8" in (await index.vector_state()).describe()
    hits = await service.search("t", "when is the sauna open", top_k=3)
    assert [h.chunk.source for h in hits] == ["s.txt"]
    assert hits[0].embedding is not None and len(hits[0].embedding) == DIMS


async def test_search_uses_the_hnsw_index(index: PgDocumentIndex, migrated_url: str) -> None:
    rng = np.random.default_rng(1)
    vectors = _unit_rows(rng, 3000)
    rows = [
        (
            "t",
            f"s{i}",
            f"s{i}",
            f"passage {i}",
            "test-embedder",
            "[" + ",".join(f"{x:.6f}" for x in vec) + "]",
        )
        for i, vec in enumerate(vectors)
    ]
    conn = await pg.connect(migrated_url)
    try:
        await conn.executemany(
            "INSERT INTO document_chunks (tenant_id, file_hash, source, position, content, "
            "embedder, embedding_vector) VALUES ($1, $2, $3, 0, $4, $5, $6::vector)",
            rows,
        )
        await conn.execute(
            f"CREATE INDEX ix_document_chunks_hnsw_{DIMS} ON document_chunks USING hnsw "
            f"((embedding_vector::vector({DIMS})) vector_cosine_ops) "
            f"WHERE vector_dims(embedding_vector) = {DIMS}"
        )
        await conn.execute("ANALYZE document_chunks")
    finally:
        await conn.close()
    statement = pgvector.search_sql(DIMS, columns=_ROW_COLUMNS, entity=False)
    params = {
        "tenant": "t",
        "embedder": "test-embedder",
        "text": "zzzz",
        "limit": 10,
        "text_scan": 1000,
        "vector": vectors[0].tolist(),
    }

    async def plan(exact_below: int) -> str:
        async with index.engine.connect() as sa_conn:
            lines = await sa_conn.execute(
                sql("EXPLAIN (ANALYZE, COSTS OFF) " + statement),
                {**params, "exact_below": exact_below},
            )
            return "\n".join(lines.scalars().all())

    hnsw = f"Index Scan using ix_document_chunks_hnsw_{DIMS}"
    large = await plan(exact_below=1000)  # 3,000 rows: the HNSW index
    assert hnsw in large, large
    assert "never executed" not in _node(large, hnsw)
    small = await plan(exact_below=5000)  # under the bound: exact, the index never runs
    assert "never executed" in _node(small, hnsw), small


def _node(plan: str, name: str) -> str:
    return next(line for line in plan.splitlines() if name in line)


@pytest.mark.parametrize("exact_below", [0, 10_000], ids=["hnsw", "exact"])
async def test_tenant_and_entity_filters_keep_recall(
    index: PgDocumentIndex, exact_below: int
) -> None:
    """A small tenant beside a large one: its nearest neighbours, never the other's, by
    the HNSW index (iterative scans) and by the exact search of small scopes."""
    index.exact_search_below = exact_below
    rng = np.random.default_rng(7)
    big = _unit_rows(rng, 1500)
    small = _unit_rows(rng, 60)
    team = _unit_rows(rng, 40)
    await _store(index, "big", big)
    small_sources = await _store(index, "small", small)
    team_sources = await _store(index, "small", team, entity="team")
    everything = np.concatenate([small, team])
    every_source = small_sources + team_sources
    found = total = 0
    for q in _unit_rows(rng, 10):
        exact = [every_source[i] for i in np.argsort(-(everything @ q))[:10]]
        got = await _vector_search(index, "small", q, 10)
        assert all(s.startswith("small-") for s in got), got
        found += len(set(got) & set(exact))
        total += 10
        exact_team = [team_sources[i] for i in np.argsort(-(team @ q))[:5]]
        got_team = await _vector_search(index, "small", q, 5, entity="team")
        assert got_team and all(s.startswith("small-team-") for s in got_team)
        assert len(set(got_team) & set(exact_team)) >= 4
    assert found / total >= 0.95
    # Full text ("passage" is in every row of both tenants), through the same branch.
    text_hits = await index.search(
        "small",
        entity_id=None,
        text="passage",
        vector=everything[0].tolist(),
        embedder="test-embedder",
        candidates=30,
        alpha=0.0,
    )
    with_text = [h for h in text_hits if h.text_score is not None]
    assert len(with_text) == 30 and all(h.chunk.source.startswith("small-") for h in with_text)


async def test_pgvector_and_numpy_rank_alike(
    index: PgDocumentIndex, pgvector_admin_url: str, numpy_only: None
) -> None:
    """The same documents and questions: the same hits and scores on both paths."""
    name = f"aat_numpy_{os.getpid()}_{id(index)}"
    conn = await pg.connect(pgvector_admin_url)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    numpy_url = f"{pgvector_admin_url.rpartition('/')[0]}/{name}"
    await migrate.upgrade_async(numpy_url)  # AI_AGENTS_PGVECTOR=off: the numpy path
    numpy_index = PgDocumentIndex.from_url(numpy_url)
    try:
        assert await index.uses_pgvector() and not await numpy_index.uses_pgvector()
        texts = [
            "Check-out is at eleven in the morning; late check-out costs extra.",
            "Visitors park in the garage on level B2 with a day pass from reception.",
            "Dogs and cats are welcome for a cleaning fee of forty euros.",
            "The pool is open from seven until ten every day.",
            "Quiet hours run from ten at night until seven in the morning.",
            "Recycling is collected on Tuesdays and Fridays.",
        ]
        results = []
        for target in (index, numpy_index):
            service = DocumentService(target, HashingEmbedder(DIMS))
            for i, text in enumerate(texts):
                await service.ingestor.ingest_text(text, source=f"d{i}.txt", tenant_id="t")
            rows = []
            for question in ("where do visitors park", "pool hours", "bring my dog"):
                hits = await service.search("t", question, top_k=4)
                rows.append([(h.chunk.source, round(h.score, 4)) for h in hits])
            results.append(rows)
        assert results[0] == results[1]
        assert all(len(row) == 4 for row in results[0])
    finally:
        await numpy_index.aclose()
        conn = await pg.connect(pgvector_admin_url)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


async def test_a_numpy_index_switches_on_the_next_migrate(
    pgvector_database_url: str, numpy_only: None
) -> None:
    await migrate.upgrade_async(pgvector_database_url)
    index = PgDocumentIndex.from_url(pgvector_database_url)
    try:
        state = await index.vector_state()
        assert not state.active and "is available" in state.describe()
        service = DocumentService(index, HashingEmbedder(DIMS))
        for i, text in enumerate(["Sauna at noon.", "Gym all night.", "Pool at seven."]):
            await service.ingestor.ingest_text(text, source=f"d{i}", tenant_id="t")
        before = [h.chunk.source for h in await service.search("t", "gym at night", top_k=3)]
        reader = DocumentService(PgDocumentIndex.from_url(pgvector_database_url), service.embedder)
        assert [h.chunk.source for h in await reader.search("t", "sauna", top_k=1)] == ["d0"]
        os.environ.pop(SWITCH_ENV)
        # The documented step (install pgvector, migrate), run by another process while
        # this index still believes it is on the numpy path.
        await migrate.upgrade_async(pgvector_database_url)
        after = [h.chunk.source for h in await service.search("t", "gym at night", top_k=3)]
        assert after == before and len(after) == 3
        # Its next write goes to pgvector (a REAL[] row would be invisible to searches),
        # and its next search of the changed scope moves over to pgvector as well.
        await service.ingestor.ingest_text("Spa on the roof.", source="d3", tenant_id="t")
        assert [h.chunk.source for h in await service.search("t", "spa roof", top_k=1)] == ["d3"]
        assert await index.uses_pgvector()
        # A process that only searches finds the new row too: its numpy read of the
        # changed scope meets rows without REAL[] vectors and moves to pgvector.
        assert [h.chunk.source for h in await reader.search("t", "spa roof", top_k=1)] == ["d3"]
        await reader.aclose()
        state = await index.vector_state()
        assert state.active and state.indexed_dimensions == (DIMS,)
        (row,) = await _fetch(
            pgvector_database_url,
            "SELECT count(*) FILTER (WHERE embedding IS NULL AND embedding_vector IS NOT NULL)"
            " AS moved, count(*) AS n FROM document_chunks",
        )
        assert row["moved"] == row["n"] == 4
        # Downgrading moves them back.
        await index.aclose()
        await asyncio.to_thread(migrate.downgrade, pgvector_database_url, "0009")
        (row,) = await _fetch(
            pgvector_database_url,
            "SELECT count(*) FILTER (WHERE cardinality(embedding) = 32) AS back FROM document_chunks",
        )
        assert row["back"] == 4
    finally:
        await index.aclose()


async def test_wrong_dimensions_and_empty_scope(index: PgDocumentIndex) -> None:
    await _store(index, "t", _unit_rows(np.random.default_rng(3), 5))
    with pytest.raises(ConfigurationError, match="dimensions"):
        await _vector_search(index, "t", np.ones(DIMS + 8, dtype=np.float32), 3)
    assert await _vector_search(index, "nobody", np.ones(DIMS, dtype=np.float32), 3) == []


async def test_first_writers_of_a_new_dimension_do_not_deadlock(index: PgDocumentIndex) -> None:
    """Writers racing to create a dimension's index: each stores its document, none
    deadlocks (the document lock is taken before the index is created)."""
    rng = np.random.default_rng(11)
    vectors = _unit_rows(rng, 12)

    async def write(i: int) -> None:
        source = f"s{i % 4}"  # three writers per source, four sources
        await index.replace_document(
            "t", None, [_chunk(source, 0, f"text {i}")], [vectors[i].tolist()], "test-embedder"
        )

    for _ in range(20):  # each round starts without the index
        async with index.engine.begin() as conn:
            await conn.execute(sql(f"DROP INDEX IF EXISTS ix_document_chunks_hnsw_{DIMS}"))
        index._indexed_dimensions.clear()
        await asyncio.gather(*(write(i) for i in range(12)))
    documents = await index.list_documents("t")
    assert sorted(d.source for d in documents) == ["s0", "s1", "s2", "s3"]
    assert (await index.vector_state()).indexed_dimensions == (DIMS,)
