"""One test suite for every document index backend (acceptance 1 and 3).

Backends: PostgreSQL (a fresh migrated database), OpenSearch against the local fake
(tests/fakes/opensearch_fake.py), and a real OpenSearch cluster when ``OPENSEARCH_URL``
is set (e.g. ``OPENSEARCH_URL=http://127.0.0.1:9200``; skipped otherwise). Embeddings are
the real MiniLM model; the model is loaded once per process and texts are embedded once
per module (a caching embedder).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

pytest.importorskip("sentence_transformers")
pytest.importorskip("opensearchpy")

from ai_agents.rag.embedders import CachingEmbedder, MiniLMEmbedder  # noqa: E402
from ai_agents.rag.index import DocumentIndex  # noqa: E402
from ai_agents.rag.ingest import discover  # noqa: E402
from ai_agents.rag.opensearch_index import OpenSearchDocumentIndex  # noqa: E402
from ai_agents.rag.pg_index import PgDocumentIndex  # noqa: E402
from ai_agents.rag.service import DocumentService  # noqa: E402
from tests.fakes.opensearch_fake import FakeOpenSearch  # noqa: E402
from tests.fakes.server import serve  # noqa: E402

HANDBOOK = Path(__file__).resolve().parents[1] / "data" / "handbook"
OPENSEARCH_URL = os.environ.get("OPENSEARCH_URL")
EMBEDDER = CachingEmbedder(MiniLMEmbedder())

#: (question, source that answers it, a phrase of the answering passage)
QUESTIONS = [
    ("What time do I have to check out?", "check-in-and-check-out.md", "by 11:00 am"),
    ("Where can my visitors park their car?", "parking.html", "visitor bays"),
    ("What is the Wi-Fi password?", "wifi-and-technology.txt", "SeaBreeze2024"),
    ("How much does it cost to bring my dog for a short stay?", "pets.md", "$50 per night"),
    ("Which days is the recycling picked up?", "trash-and-recycling.txt", "Tuesday and Friday"),
    ("Until what time is the swimming pool open?", "amenities.html", "10:00 pm"),
    ("A pipe burst in the middle of the night, who do I call?", "maintenance.md", "014-2299"),
    ("Am I allowed to smoke on my balcony?", "house-rules.pdf", "Smoking and vaping"),
    ("When do quiet hours start in the evening?", "quiet-hours.md", "10:00 pm to 7:00 am"),
    ("Where should we gather when the fire alarm goes off?", "safety.html", "assembly point"),
    ("What is the late fee if my rent is paid late?", "house-rules.pdf", "late fee of $60"),
]

BACKENDS = [
    "postgres",
    "opensearch-fake",
    pytest.param(
        "opensearch-real",
        marks=pytest.mark.skipif(
            not OPENSEARCH_URL,
            reason="real OpenSearch cluster test: set OPENSEARCH_URL=http://host:9200 to run it",
        ),
    ),
]


@pytest.fixture(scope="module")
def fake_opensearch() -> Iterator[tuple[FakeOpenSearch, str]]:
    fake = FakeOpenSearch()
    with serve(fake) as url:
        yield fake, url


@pytest.fixture(params=BACKENDS)
def backend(
    request: pytest.FixtureRequest, fake_opensearch: tuple[FakeOpenSearch, str]
) -> tuple[str, str]:
    """(backend name, URL): a fresh database, the fake, or the real cluster."""
    if request.param == "postgres":
        return "postgres", request.getfixturevalue("database_url")
    if request.param == "opensearch-fake":
        return "opensearch", fake_opensearch[1]
    assert OPENSEARCH_URL
    return "opensearch", OPENSEARCH_URL


@pytest.fixture
async def index(backend: tuple[str, str]) -> AsyncIterator[DocumentIndex]:
    kind, url = backend
    if kind == "postgres":
        pg = PgDocumentIndex.from_url(url)
        await pg.setup()
        try:
            yield pg
        finally:
            await pg.aclose()
        return
    name = f"test-docs-{uuid.uuid4().hex[:10]}"
    os_index = OpenSearchDocumentIndex(url=url, index=name, dimensions=EMBEDDER.dimensions)
    try:
        yield os_index
    finally:
        await os_index.client.indices.delete(index=name, ignore_unavailable=True)
        await os_index.aclose()


@pytest.fixture
def service(index: DocumentIndex) -> DocumentService:
    return DocumentService(index, EMBEDDER)


async def _ingest_handbook(service: DocumentService, tenant: str = "acme") -> None:
    results = await service.ingestor.ingest_paths(
        discover([HANDBOOK]), tenant_id=tenant, root=HANDBOOK
    )
    assert len(results) == 12
    assert {r.status for r in results} == {"indexed"}


async def test_handbook_questions_answered_in_top_3(service: DocumentService) -> None:
    await _ingest_handbook(service)
    misses = []
    for question, source, phrase in QUESTIONS:
        hits = await service.search("acme", question, top_k=3)
        assert len(hits) == 3
        if not any(h.chunk.source == source and phrase in h.chunk.content for h in hits):
            misses.append((question, [(h.chunk.source, h.chunk.content[:60]) for h in hits]))
    assert not misses


async def test_results_carry_source_and_position(service: DocumentService) -> None:
    await _ingest_handbook(service)
    (hit,) = await service.search("acme", "late fee for rent paid after the fifth", top_k=1)
    chunk = hit.chunk
    assert chunk.source == "house-rules.pdf"
    assert chunk.page == 2 and chunk.section == "Rent and Payments"
    assert chunk.title == "House Rules and Payments"
    assert hit.citation == f"house-rules.pdf, page 2, chunk {chunk.position}"
    assert 0 <= chunk.char_start < chunk.char_end
    payload = hit.to_json()
    assert payload["file_hash"] == chunk.file_hash and "late fee of $60" in payload["text"]
    assert "embedding" not in payload


async def test_reingest_is_idempotent_and_new_version_replaces(service: DocumentService) -> None:
    v1 = "# Pool\n\nThe pool opens at 7 am and closes at 10 pm.\n"
    first = await service.ingestor.ingest_text(v1, source="pool.md", tenant_id="t", kind="markdown")
    again = await service.ingestor.ingest_text(v1, source="pool.md", tenant_id="t", kind="markdown")
    assert (first.status, again.status) == ("indexed", "unchanged")
    assert first.file_hash == again.file_hash
    assert [(d.source, d.chunks) for d in await service.list_documents("t")] == [("pool.md", 1)]

    v2 = "# Pool\n\nThe pool now closes at 9 pm because of the new lighting rules.\n"
    second = await service.ingestor.ingest_text(
        v2, source="pool.md", tenant_id="t", kind="markdown"
    )
    assert second.status == "replaced" and second.file_hash != first.file_hash
    documents = await service.list_documents("t")
    assert [(d.source, d.file_hash) for d in documents] == [("pool.md", second.file_hash)]
    (hit,) = await service.search("t", "when does the pool close", top_k=1)
    assert "9 pm" in hit.chunk.content


async def test_delete_by_file_hash_within_tenant(service: DocumentService) -> None:
    from ai_agents.rag.errors import DocumentNotFound

    a = await service.ingestor.ingest_text(
        "Gym is open all night.", source="gym.txt", tenant_id="t"
    )
    await service.ingestor.ingest_text("Sauna opens at noon.", source="sauna.txt", tenant_id="t")
    await service.ingestor.ingest_text("Gym is open all night.", source="gym.txt", tenant_id="u")
    with pytest.raises(DocumentNotFound):
        await service.delete("t", "0" * 32)
    assert await service.delete("t", a.file_hash) == 1
    assert [d.source for d in await service.list_documents("t")] == ["sauna.txt"]
    # The same file in another tenant is untouched.
    assert [d.file_hash for d in await service.list_documents("u")] == [a.file_hash]
    hits = await service.search("t", "gym opening hours", top_k=5)
    assert [h.chunk.source for h in hits] == ["sauna.txt"]


async def test_tenant_and_entity_scoping(service: DocumentService) -> None:
    ingest = service.ingestor.ingest_text
    await ingest("Unit 1 door code is 1111.", source="a.txt", tenant_id="t1", entity_id="prop-1")
    await ingest("Unit 2 door code is 2222.", source="b.txt", tenant_id="t1", entity_id="prop-2")
    await ingest("Lobby code is 9999 for everyone.", source="c.txt", tenant_id="t1")
    await ingest("Secret door code is 7777.", source="d.txt", tenant_id="t2", entity_id="prop-1")
    query = "what is the door code"

    async def sources(tenant: str, entity: str | None) -> list[str]:
        hits = await service.search(tenant, query, entity_id=entity, top_k=10)
        listed = await service.list_documents(tenant, entity_id=entity)
        assert sorted(d.source for d in listed) == sorted({h.chunk.source for h in hits})
        return sorted(h.chunk.source for h in hits)

    assert await sources("t1", "prop-1") == ["a.txt"]
    assert await sources("t1", "prop-2") == ["b.txt"]
    assert await sources("t1", None) == ["a.txt", "b.txt", "c.txt"]
    assert await sources("t2", "prop-1") == ["d.txt"]
    assert await sources("t2", "prop-2") == []
    assert await sources("t3", None) == []
    listed = {d.source: d.entity_id for d in await service.list_documents("t1")}
    assert listed == {"a.txt": "prop-1", "b.txt": "prop-2", "c.txt": None}
    # Deleting with another tenant's scope deletes nothing.
    d_hash = (await service.list_documents("t2"))[0].file_hash
    assert await service.index.delete_document("t1", d_hash) == 0
    assert await service.index.delete_document("t2", d_hash, entity_id="prop-2") == 0
    assert await service.index.delete_document("t2", d_hash, entity_id="prop-1") == 1


async def test_same_file_in_two_entities_is_listed_twice(service: DocumentService) -> None:
    text = "Check-out is at 11 am."
    await service.ingestor.ingest_text(text, source="out.txt", tenant_id="t", entity_id="e1")
    await service.ingestor.ingest_text(text, source="out.txt", tenant_id="t", entity_id="e2")
    listed = await service.list_documents("t")
    assert sorted((d.entity_id, d.source) for d in listed) == [("e1", "out.txt"), ("e2", "out.txt")]
    assert len({d.file_hash for d in listed}) == 1


async def test_concurrent_ingests_of_one_source_leave_one_version(
    service: DocumentService,
) -> None:
    texts = [f"Version {i}: the rooftop closes at {i} pm." for i in range(4)]
    results = await asyncio.gather(
        *(service.ingestor.ingest_text(t, source="roof.txt", tenant_id="t") for t in texts)
    )
    documents = await service.list_documents("t")
    assert len(documents) == 1
    assert documents[0].file_hash in {r.file_hash for r in results}
