"""Batched ingestion (several documents in flight) against the real PostgreSQL index.

The batched path must store exactly what one-at-a-time ingestion stores (same rows, same
vectors), report a failing document and ingest the others, count progress in chunks that
sum to the total, and store nothing twice when the same files come again.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import text as sql

from ai_agents.embeddings import HashingEmbedder
from ai_agents.rag.ingest import Document, IngestFailure, Ingestor, IngestResult, discover
from ai_agents.rag.pg_index import PgDocumentIndex
from ai_agents.rag.service import DocumentService
from tests.office_documents import (
    BUILDING_PPTX,
    CONTACTS_XLSX,
    LAUNDRY_DOCX,
    make_docx,
    make_pptx,
    make_xlsx,
)

ROOT = Path(__file__).resolve().parents[2]
HANDBOOK = ROOT / "tests" / "data" / "handbook"


@pytest.fixture
async def index(database_url: str) -> AsyncIterator[PgDocumentIndex]:
    pg = PgDocumentIndex.from_url(database_url)
    await pg.setup()
    try:
        yield pg
    finally:
        await pg.aclose()


@pytest.fixture
def corpus(tmp_path: Path) -> list[Path]:
    """The handbook, two long Markdown files, and a copy of pets.md under another name."""
    files = discover([HANDBOOK])
    for name in ("rag.md", "runs.md"):
        files.append(ROOT / "docs" / name)
    copy = tmp_path / "pets-copy.md"
    shutil.copy(HANDBOOK / "pets.md", copy)
    files.insert(3, copy)
    return files


async def _rows(index: PgDocumentIndex, tenant: str) -> list[dict[str, Any]]:
    """Every stored column of the tenant's chunks except ids, timestamps and the tenant."""
    async with index.engine.connect() as conn:
        result = await conn.execute(
            sql(
                "SELECT to_jsonb(c) - 'id' - 'created_at' - 'updated_at' - 'tenant_id' - 'tsv' "
                "FROM document_chunks c WHERE tenant_id = :t ORDER BY source, position"
            ),
            {"t": tenant},
        )
        rows = [dict(row[0]) for row in result]
    for row in rows:  # with pgvector the vector is in embedding_vector, embedding is NULL
        vector = row.pop("embedding_vector", None)
        if vector is not None:
            row["embedding"] = vector
    return rows


def _vector(value: Any) -> np.ndarray[Any, Any]:
    if isinstance(value, str):  # pgvector's text form
        value = [float(x) for x in value.strip("[]").split(",")]
    return np.asarray(value, dtype=np.float64)


async def _one_at_a_time(
    ingestor: Ingestor, files: Sequence[Path], tenant: str
) -> list[IngestResult]:
    return [await ingestor.ingest_file(f, tenant_id=tenant, source=f.name) for f in files]


async def test_batched_stores_exactly_what_one_at_a_time_stores(
    index: PgDocumentIndex, corpus: list[Path]
) -> None:
    # Small windows and batches: chunks of several documents share a batch, a document
    # spans several batches, and the batches are reordered by length.
    ingestor = Ingestor(index, HashingEmbedder(), batch_size=5, window=12)
    expected = await _one_at_a_time(ingestor, corpus, "one")
    outcomes = await ingestor.ingest_documents(
        [Document.from_path(f, source=f.name) for f in corpus], tenant_id="many"
    )
    assert [o.status for o in outcomes] == [r.status for r in expected]
    assert outcomes == expected  # same sources, hashes, titles, chunk counts, statuses
    # pets.md comes after its copy: its content is already stored (under the copy's name).
    assert [o.source for o in outcomes if o.status == "unchanged"] == ["pets.md"]
    one, many = await _rows(index, "one"), await _rows(index, "many")
    assert len(one) == sum(r.chunks for r in expected if r.status != "unchanged") > 100
    assert many == one


async def test_batched_minilm_vectors_match_one_at_a_time(index: PgDocumentIndex) -> None:
    pytest.importorskip("sentence_transformers")
    from ai_agents.rag.embedders import MiniLMEmbedder

    files = discover([HANDBOOK])[:6]
    ingestor = Ingestor(index, MiniLMEmbedder(), batch_size=8, window=16)
    await _one_at_a_time(ingestor, files, "one")
    await ingestor.ingest_documents(
        [Document.from_path(f, source=f.name) for f in files], tenant_id="many"
    )
    one, many = await _rows(index, "one"), await _rows(index, "many")
    assert len(one) == len(many) > 10
    for a, b in zip(one, many, strict=True):
        va, vb = _vector(a.pop("embedding")), _vector(b.pop("embedding"))
        assert a == b
        assert va.shape == (384,) and abs(np.linalg.norm(vb) - 1) < 1e-5
        # Other batch neighbours mean other padding: equal up to float rounding.
        assert float(va @ vb) > 0.99999


async def test_failing_document_is_reported_and_the_others_are_stored(
    index: PgDocumentIndex, tmp_path: Path
) -> None:
    good_a = tmp_path / "a.md"
    good_a.write_text("# Sauna\n\nThe sauna opens at noon and closes at ten.\n")
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.4 this is not a PDF at all")
    gone = tmp_path / "gone.txt"
    good_b = tmp_path / "b.txt"
    good_b.write_text("Gym\n\nThe gym is open all night for residents.\n")
    documents = [Document.from_path(p, source=p.name) for p in (good_a, broken, gone, good_b)]
    documents.append(Document.from_text("", source="empty.txt"))
    seen: list[str] = []
    ingestor = Ingestor(index, HashingEmbedder())
    outcomes = await ingestor.ingest_documents(
        documents, tenant_id="t", on_result=lambda o: seen.append(f"{o.source}:{o.status}")
    )
    assert [o.status for o in outcomes] == ["indexed", "failed", "failed", "indexed", "empty"]
    assert isinstance(outcomes[1], IngestFailure) and "broken.pdf" in outcomes[1].error
    assert isinstance(outcomes[2], IngestFailure) and outcomes[2].source == "gone.txt"
    assert sorted(seen) == sorted(f"{o.source}:{o.status}" for o in outcomes)
    stored = {d.source for d in await index.list_documents("t")}
    assert stored == {"a.md", "b.txt"}

    # ingest_paths: reported to on_error when given, raised otherwise.
    errors: list[IngestFailure] = []
    results = await ingestor.ingest_paths(
        [good_a, broken, good_b], tenant_id="u", root=tmp_path, on_error=errors.append
    )
    assert [r.source for r in results] == ["a.md", "b.txt"]
    assert [e.source for e in errors] == ["broken.pdf"]
    with pytest.raises(Exception, match="broken.pdf"):
        await ingestor.ingest_paths([good_a, broken, good_b], tenant_id="v", root=tmp_path)


async def test_office_documents_are_searchable_and_unreadable_files_are_skipped(
    index: PgDocumentIndex, tmp_path: Path
) -> None:
    pytest.importorskip("markitdown")
    files = {
        "laundry-room.docx": make_docx(LAUNDRY_DOCX),
        "building.pptx": make_pptx(BUILDING_PPTX),
        "contacts.xlsx": make_xlsx(CONTACTS_XLSX),
        "broken.pdf": b"%PDF-1.4 this is not a PDF at all",
        "cut.pptx": make_pptx(BUILDING_PPTX)[:200],  # a truncated upload
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "folder.md").mkdir()  # a path that cannot be read as a file
    names = [*files, "folder.md"]
    ingestor = Ingestor(index, HashingEmbedder())
    outcomes = await ingestor.ingest_documents(
        [Document.from_path(tmp_path / n, source=n) for n in names], tenant_id="t"
    )
    assert [o.status for o in outcomes] == [
        "indexed",
        "indexed",
        "indexed",
        "failed",
        "failed",
        "failed",
    ]
    errors = {o.source: o.error for o in outcomes if isinstance(o, IngestFailure)}
    assert errors["broken.pdf"].startswith("cannot read PDF 'broken.pdf'")
    assert errors["cut.pptx"].startswith("cannot read PPTX 'cut.pptx'")
    assert errors["folder.md"] == f"cannot read {tmp_path / 'folder.md'}: Is a directory"
    stored = {d.source: d for d in await index.list_documents("t")}
    assert set(stored) == {"laundry-room.docx", "building.pptx", "contacts.xlsx"}
    assert stored["laundry-room.docx"].title == "Laundry Room Guide"

    service = DocumentService(index, HashingEmbedder())
    (fees,) = await service.search("t", "how much does a wash cost in euros", top_k=1)
    assert fees.chunk.source == "laundry-room.docx" and fees.chunk.section == "Fees"
    (bikes,) = await service.search("t", "where are bicycles kept basement", top_k=1)
    assert (bikes.chunk.source, bikes.chunk.page) == ("building.pptx", 2)
    (locker,) = await service.search("t", "storage locker monthly fee", top_k=1)
    assert locker.chunk.source == "contacts.xlsx"
    assert "Item: Storage locker; Monthly fee: 12" in locker.chunk.content


async def test_progress_counts_chunks_and_sums_to_the_total(
    index: PgDocumentIndex, corpus: list[Path]
) -> None:
    ingestor = Ingestor(index, HashingEmbedder(), batch_size=7, window=20)
    steps: list[int] = []
    totals: list[int] = []
    outcomes = await ingestor.ingest_documents(
        [Document.from_path(f, source=f.name) for f in corpus],
        tenant_id="t",
        progress=steps.append,
        on_total=totals.append,
    )
    chunks = sum(o.chunks for o in outcomes)
    assert len(totals) == len(corpus) and sum(totals) == chunks
    assert sum(steps) == chunks
    assert max(steps) <= 7 and len(steps) > len(corpus)  # by batch of chunks, not by file


async def test_reingesting_the_same_files_stores_no_duplicates(
    index: PgDocumentIndex, corpus: list[Path]
) -> None:
    ingestor = Ingestor(index, HashingEmbedder(), batch_size=16, window=32)
    documents = [Document.from_path(f, source=f.name) for f in corpus]
    first = await ingestor.ingest_documents(documents, tenant_id="t")
    rows = await _rows(index, "t")
    steps: list[int] = []
    # Again, with every file twice in the same call.
    again = await ingestor.ingest_documents(
        documents + documents, tenant_id="t", progress=steps.append
    )
    assert {o.status for o in again} == {"unchanged"}
    assert sum(steps) == 2 * sum(o.chunks for o in first)
    assert await _rows(index, "t") == rows

    # A new version of one source next to the old version of another in one call.
    changed = corpus[0].read_text() + "\n\nA new paragraph about the sauna opening hours.\n"
    mixed = [Document.from_text(changed, source=corpus[0].name, kind="text"), *documents]
    outcomes = await ingestor.ingest_documents(mixed, tenant_id="t")
    assert outcomes[0].status == "replaced" and outcomes[1].status == "replaced"
    after = await _rows(index, "t")
    assert len(after) == len(rows)
    keys = [(r["source"], r["position"]) for r in after]
    assert len(keys) == len(set(keys))
