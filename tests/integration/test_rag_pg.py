"""PostgreSQL backend specifics: schema, the vector cache, embedder changes, setup errors."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

pytest.importorskip("numpy")

from ai_agents.embeddings import HashingEmbedder  # noqa: E402
from ai_agents.errors import ConfigurationError  # noqa: E402
from ai_agents.rag.pg_index import PgDocumentIndex  # noqa: E402
from ai_agents.rag.service import DocumentService  # noqa: E402
from ai_agents.rag.tables import document_chunks  # noqa: E402
from tests import pg


@pytest.fixture
async def index(database_url: str) -> AsyncIterator[PgDocumentIndex]:
    pg = PgDocumentIndex.from_url(database_url)
    try:
        yield pg
    finally:
        await pg.aclose()


async def _numpy_path_only(index: PgDocumentIndex) -> None:
    if await index.uses_pgvector():  # the suite run against a server with pgvector
        pytest.skip("the numpy path's vector cache: this database uses pgvector")


async def test_schema_matches_the_table_definition(database_url: str) -> None:
    """Without pgvector (the CI server): see test_rag_pgvector.py for the other schema."""
    conn = await pg.connect(database_url)
    try:
        columns = {
            r["column_name"]: (r["data_type"], r["udt_name"])
            for r in await conn.fetch(
                "SELECT column_name, data_type, udt_name FROM information_schema.columns "
                "WHERE table_name = 'document_chunks'"
            )
        }
        indexes = {
            r["indexname"]: r["indexdef"]
            for r in await conn.fetch(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'document_chunks'"
            )
        }
    finally:
        await conn.close()
    if "embedding_vector" in columns:
        pytest.skip("this database uses pgvector: test_rag_pgvector.py checks that schema")
    assert set(columns) == {c.name for c in document_chunks.columns}
    assert columns["embedding"] == ("ARRAY", "_float4")  # REAL[], no pgvector
    assert columns["tsv"] == ("tsvector", "tsvector")
    assert "USING gin (tsv)" in indexes["ix_document_chunks_tsv"]
    assert "(tenant_id, entity_id, embedder, id)" in indexes["ix_document_chunks_scope"]


async def test_vector_cache_sees_every_insert_and_delete(index: PgDocumentIndex) -> None:
    await _numpy_path_only(index)
    service = DocumentService(index, HashingEmbedder(64))
    await service.ingestor.ingest_text("Sauna opens at noon.", source="sauna.txt", tenant_id="t")
    assert [h.chunk.source for h in await service.search("t", "sauna", top_k=5)] == ["sauna.txt"]
    assert len(index._cache) == 1
    gym = await service.ingestor.ingest_text(
        "Gym is open all night.", source="gym.txt", tenant_id="t"
    )
    hits = await service.search("t", "gym open", top_k=5)
    assert hits[0].chunk.source == "gym.txt"
    assert all(h.embedding is not None and len(h.embedding) == 64 for h in hits)
    await service.delete("t", gym.file_hash)
    hits = await service.search("t", "gym open", top_k=5)
    assert [h.chunk.source for h in hits] == ["sauna.txt"]
    # A vector-only match (no shared word) is still found: similarity is not gated by text.
    (sauna,) = hits
    (vector,) = await service.embedder.embed([sauna.chunk.embedding_text()])
    semantic = await index.search(
        "t", entity_id=None, text="zzz", vector=vector, embedder=service.embedder.name, candidates=5
    )
    assert [h.chunk.source for h in semantic] == ["sauna.txt"]
    assert semantic[0].text_score is None and semantic[0].vector_score == pytest.approx(1.0)


async def test_changing_the_embedder_reindexes_documents(index: PgDocumentIndex) -> None:
    old = DocumentService(index, HashingEmbedder(32))
    new = DocumentService(index, HashingEmbedder(48))
    new.embedder.name = "hashing-48"  # type: ignore[misc]
    text = "Bikes go in the bike room on level B1."
    first = await old.ingestor.ingest_text(text, source="bikes.txt", tenant_id="t")
    assert await new.search("t", "bike room", top_k=3) == []  # other embedder: not comparable
    again = await new.ingestor.ingest_text(text, source="bikes.txt", tenant_id="t")
    assert (first.status, again.status) == ("indexed", "replaced")
    assert [h.chunk.source for h in await new.search("t", "bike room", top_k=3)] == ["bikes.txt"]
    (info,) = await new.list_documents("t")
    assert info.embedder == "hashing-48"
    with pytest.raises(ConfigurationError, match="dimensions"):
        await index.search(
            "t", entity_id=None, text="bike", vector=[1.0] * 8, embedder="hashing-48", candidates=3
        )


async def test_missing_table_says_to_migrate(empty_database_url: str) -> None:
    pg = PgDocumentIndex.from_url(empty_database_url)
    try:
        with pytest.raises(ConfigurationError, match="ai-agents migrate"):
            await pg.setup()
        with pytest.raises(ConfigurationError, match="ai-agents migrate"):
            await pg.list_documents("t")
    finally:
        await pg.aclose()


async def test_vector_cache_reads_only_new_rows_after_appends(
    index: PgDocumentIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[int] = []
    real_read = PgDocumentIndex._read_vectors

    async def counting_read(conn: object, condition: object) -> object:
        vectors = await real_read(conn, condition)  # type: ignore[arg-type]
        reads.append(len(vectors.ids))
        return vectors

    await _numpy_path_only(index)
    monkeypatch.setattr(PgDocumentIndex, "_read_vectors", staticmethod(counting_read))
    service = DocumentService(index, HashingEmbedder(32))
    for name in ("a", "b", "c"):
        await service.ingestor.ingest_text(f"Room {name} has a desk.", source=name, tenant_id="t")
    await service.search("t", "desk", top_k=3)
    await service.search("t", "desk", top_k=3)
    assert reads == [3]  # read once, then cached
    d = await service.ingestor.ingest_text("Room d has a sofa.", source="d", tenant_id="t")
    hits = await service.search("t", "sofa", top_k=1)
    assert hits[0].chunk.source == "d" and reads == [3, 1]  # only the new row
    await service.delete("t", d.file_hash)
    await service.search("t", "sofa", top_k=1)
    assert reads == [3, 1, 3]  # a delete: the scope is read again
    (cached,) = index._cache.values()
    assert len(cached.ids) == 3 and cached.matrix.shape == (3, 32)
