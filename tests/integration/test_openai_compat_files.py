"""``/v1/files`` and ``/v1/vector_stores`` through the official ``openai`` SDK against a
running server: uploads kept with their bytes, vector stores indexed by the RAG pipeline
(a deterministic hashing embedder, PostgreSQL index), statuses and counts, passages
removed with their files, errors as the SDK's classes, tenant isolation, and every answer
checked strictly against the SDK's typed models."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import openai
import pytest
from openai.types import FileDeleted, FileObject, VectorStore, VectorStoreDeleted
from openai.types.vector_stores import (
    VectorStoreFile,
    VectorStoreFileBatch,
    VectorStoreFileDeleted,
)

from ai_agents.api.compat import files as files_api
from ai_agents.api.config import ApiConfig
from ai_agents.api.testing import RunningApi, running_api
from ai_agents.config import Settings
from ai_agents.embeddings import HashingEmbedder
from ai_agents.rag import chunking
from ai_agents.rag.service import DocumentService
from ai_agents.rag.setup import enable_documents
from ai_agents.tools.registry import ToolRegistry
from tests.office_documents import (
    BUILDING_PPTX,
    CONTACTS_XLSX,
    LAUNDRY_DOCX,
    make_docx,
    make_pptx,
    make_xlsx,
)
from tests.openai_shapes import conforms

HANDBOOK = Path(__file__).resolve().parents[1] / "data" / "handbook"


@pytest.fixture
def api(settings: Settings, redis_cleanup: None) -> Iterator[RunningApi]:
    with running_api(settings, config=ApiConfig(key_cache_ttl=60)) as running:
        enable_documents(
            running.store,
            embedder=HashingEmbedder(),
            registry=ToolRegistry(),
            share_embedder=False,
        )
        yield running


@pytest.fixture
def client(api: RunningApi) -> openai.OpenAI:
    return sdk(api, "acme")


def sdk(api: RunningApi, tenant: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{api.url}/v1", api_key=api.create_key(tenant), max_retries=0)


def docs(api: RunningApi) -> DocumentService:
    service = api.store.extensions["documents"]
    assert isinstance(service, DocumentService)
    return service


def file_shape(raw: Any) -> FileObject:
    """A file object: the SDK's model, and OpenAI's schema, which types ``expires_at`` and
    ``status_details`` as non-nullable optional fields: left out here, never ``null``."""
    assert "expires_at" not in raw and "status_details" not in raw, raw
    return conforms(FileObject, raw, optional=("expires_at", "status_details"))


def store_shape(raw: Any) -> VectorStore:
    """A vector store: ``expires_after`` (non-nullable in OpenAI's schema) is left out."""
    assert "expires_after" not in raw and raw["expires_at"] is None, raw
    return conforms(VectorStore, raw, optional=("expires_after",))


def store_file_shape(raw: Any) -> VectorStoreFile:
    """A vector store file: ``chunking_strategy`` is an object (never ``null``), ``other``."""
    assert raw["chunking_strategy"] == {"type": "other"}, raw
    return conforms(VectorStoreFile, raw)


def upload(client: openai.OpenAI, name: str, data: bytes | None = None) -> dict[str, Any]:
    content = data if data is not None else (HANDBOOK / name).read_bytes()
    raw = client.files.with_raw_response.create(file=(name, content), purpose="assistants")
    body: dict[str, Any] = raw.http_response.json()
    file_shape(body)
    return body


def sources(api: RunningApi, store_id: str, query: str = "pets dogs parking wifi") -> set[str]:
    """The files whose passages a search of the store finds (all of them, for a broad query)."""
    entity = f"vs_{store_id.removeprefix('vs_')}"
    listed = api.call(docs(api).list_documents("acme", entity_id=entity))
    return {d.source for d in listed}


def test_upload_retrieve_download_list_delete(client: openai.OpenAI) -> None:
    pets = upload(client, "pets.md")
    assert pets["id"].startswith("file-") and pets["purpose"] == "assistants"
    assert pets["bytes"] == len((HANDBOOK / "pets.md").read_bytes())
    assert pets["filename"] == "pets.md" and pets["status"] == "processed"
    same = client.files.with_raw_response.retrieve(pets["id"]).http_response.json()
    assert file_shape(same).id == pets["id"]
    content = client.files.content(pets["id"])
    assert content.content == (HANDBOOK / "pets.md").read_bytes()
    assert content.response.headers["content-type"] == "application/octet-stream"

    pdf = upload(client, "house-rules.pdf")
    assert client.files.content(pdf["id"]).content == (HANDBOOK / "house-rules.pdf").read_bytes()
    mine = client.files.with_raw_response.create(
        file=("notes.txt", b"private notes"), purpose="user_data"
    ).http_response.json()
    assert file_shape(mine).purpose == "user_data"

    page = client.files.with_raw_response.list(limit=2).http_response.json()
    assert [f["id"] for f in page["data"]] == [mine["id"], pdf["id"]] and page["has_more"]
    for item in page["data"]:
        file_shape(item)
    assert [f.id for f in client.files.list(limit=1)] == [mine["id"], pdf["id"], pets["id"]]
    assert [f.id for f in client.files.list(order="asc", after=pets["id"])] == [
        pdf["id"],
        mine["id"],
    ]
    assert [f.id for f in client.files.list(purpose="user_data")] == [mine["id"]]

    gone = client.files.with_raw_response.delete(pets["id"]).http_response.json()
    assert conforms(FileDeleted, gone).deleted is True
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(pets["id"])
    with pytest.raises(openai.NotFoundError):
        client.files.content(pets["id"])
    assert [f.id for f in client.files.list()] == [mine["id"], pdf["id"]]


def test_upload_refuses_purpose_type_and_size(
    client: openai.OpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(openai.BadRequestError) as purpose:
        client.files.create(file=("a.txt", b"hello"), purpose="fine-tune")
    assert purpose.value.body["param"] == "purpose"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as kind:
        client.files.create(file=("tool.exe", b"MZ..."), purpose="assistants")
    assert kind.value.body["param"] == "file"  # type: ignore[index]
    assert ".exe" in str(kind.value) and ".md" in str(kind.value)

    monkeypatch.setattr(files_api, "MAX_FILE_BYTES", 1000)
    with pytest.raises(openai.BadRequestError) as size:
        client.files.create(file=("big.txt", b"x" * 1001), purpose="assistants")
    assert size.value.body["param"] == "file"  # type: ignore[index]
    assert "1001 bytes" in str(size.value) and "limit is 1000 bytes" in str(size.value)
    assert upload(client, "ok.txt", b"x" * 1000)["bytes"] == 1000
    assert len(client.files.list().data) == 1


def test_office_files_are_uploaded_and_indexed_when_the_documents_extra_is_installed(
    api: RunningApi, client: openai.OpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("markitdown")
    docx = upload(client, "laundry-room.docx", make_docx(LAUNDRY_DOCX))
    xlsx = upload(client, "contacts.xlsx", make_xlsx(CONTACTS_XLSX))
    pptx = upload(client, "building.pptx", make_pptx(BUILDING_PPTX))
    store = client.vector_stores.create(
        name="office", file_ids=[docx["id"], xlsx["id"], pptx["id"]]
    )
    assert (store.file_counts.completed, store.file_counts.failed) == (3, 0)
    entity = f"vs_{store.id[3:]}"
    (hit,) = api.call(docs(api).search("acme", "Olga Berg caretaker", entity_id=entity, top_k=1))
    assert hit.chunk.source == xlsx["id"] and hit.chunk.title == "contacts.xlsx"
    assert "Name: Olga Berg" in hit.chunk.content

    # Without markitdown an office file could never be searched: refused at upload.
    monkeypatch.setattr(chunking, "markitdown_available", lambda: False)
    with pytest.raises(openai.BadRequestError) as refused:
        client.files.create(file=("notes.docx", make_docx(LAUNDRY_DOCX)), purpose="assistants")
    assert "file type .docx of 'notes.docx' is not supported" in str(refused.value)
    assert ".pdf" in str(refused.value) and ".xlsx" not in str(refused.value)


def test_a_body_over_the_route_limit_is_refused_unread(client: openai.OpenAI) -> None:
    big = b"a" * (files_api.MAX_FILE_BYTES + 1)
    with pytest.raises(openai.BadRequestError) as size:
        client.files.create(file=("big.txt", big), purpose="assistants")
    assert f"limit is {files_api.MAX_FILE_BYTES} bytes" in str(size.value)
    # Past the route's limit (file + multipart allowance) the announced length decides.
    huge = b"a" * (files_api.MAX_FILE_BYTES + files_api.MULTIPART_OVERHEAD + 1)
    with pytest.raises(openai.BadRequestError) as announced:
        client.files.create(file=("huge.txt", huge), purpose="assistants")
    assert f"limit is {files_api.MAX_FILE_BYTES} bytes" in str(announced.value)
    assert client.files.list().data == []


def test_vector_store_indexes_files_and_counts_them(api: RunningApi, client: openai.OpenAI) -> None:
    pets, parking, wifi = (
        upload(client, n) for n in ("pets.md", "parking.html", "wifi-and-technology.txt")
    )
    store = client.vector_stores.create(
        name="handbook", file_ids=[pets["id"], parking["id"]], metadata={"team": "ops"}
    )
    raw = client.vector_stores.with_raw_response.retrieve(store.id).http_response.json()
    store_shape(raw)
    assert raw["status"] == "completed" and raw["name"] == "handbook"
    assert raw["file_counts"] == {
        "in_progress": 0,
        "completed": 2,
        "failed": 0,
        "cancelled": 0,
        "total": 2,
    }
    assert raw["usage_bytes"] == pets["bytes"] + parking["bytes"]
    assert sources(api, store.id) == {pets["id"], parking["id"]}
    hits = api.call(
        docs(api).search("acme", "Are dogs allowed?", entity_id=f"vs_{store.id[3:]}", top_k=1)
    )
    assert hits[0].chunk.source == pets["id"] and hits[0].chunk.title == "pets.md"

    added = client.vector_stores.files.create_and_poll(
        vector_store_id=store.id, file_id=wifi["id"], attributes={"kind": "tech"}
    )
    raw_file = client.vector_stores.files.with_raw_response.retrieve(
        file_id=wifi["id"], vector_store_id=store.id
    ).http_response.json()
    store_file_shape(raw_file)
    assert added.status == "completed" and raw_file["usage_bytes"] == wifi["bytes"]
    assert raw_file["attributes"] == {"kind": "tech"} and raw_file["last_error"] is None
    assert sources(api, store.id) == {pets["id"], parking["id"], wifi["id"]}

    listed = client.vector_stores.files.with_raw_response.list(
        vector_store_id=store.id, limit=2, order="asc"
    ).http_response.json()
    for item in listed["data"]:
        store_file_shape(item)
    assert [f["id"] for f in listed["data"]] == [pets["id"], parking["id"]]
    assert listed["has_more"]
    every = [f.id for f in client.vector_stores.files.list(vector_store_id=store.id, limit=1)]
    assert sorted(every) == sorted([pets["id"], parking["id"], wifi["id"]])
    assert len(client.vector_stores.files.list(store.id, filter="completed").data) == 3
    assert client.vector_stores.files.list(store.id, filter="failed").data == []
    with pytest.raises(openai.BadRequestError):
        client.vector_stores.files.list(store.id, filter="done")  # type: ignore[arg-type]

    removed = client.vector_stores.files.with_raw_response.delete(
        file_id=parking["id"], vector_store_id=store.id
    ).http_response.json()
    assert conforms(VectorStoreFileDeleted, removed).deleted
    assert sources(api, store.id) == {pets["id"], wifi["id"]}
    after = client.vector_stores.retrieve(store.id)
    assert after.file_counts.total == 2 and after.usage_bytes == pets["bytes"] + wifi["bytes"]
    assert client.files.retrieve(parking["id"]).id == parking["id"]  # the file stays

    client.files.delete(pets["id"])  # deleting a file takes it out of its stores
    assert sources(api, store.id) == {wifi["id"]}
    assert client.vector_stores.retrieve(store.id).file_counts.total == 1


def test_file_batches_and_upload_and_poll(api: RunningApi, client: openai.OpenAI) -> None:
    store = client.vector_stores.create(name="batched")
    assert store.status == "completed" and store.file_counts.total == 0
    a, b = upload(client, "laundry.txt"), upload(client, "quiet-hours.md")
    batch = client.vector_stores.file_batches.create_and_poll(
        vector_store_id=store.id, file_ids=[a["id"], b["id"]]
    )
    raw = client.vector_stores.file_batches.with_raw_response.retrieve(
        batch_id=batch.id, vector_store_id=store.id
    ).http_response.json()
    conforms(VectorStoreFileBatch, raw)
    assert raw["status"] == "completed" and raw["file_counts"]["completed"] == 2
    in_batch = client.vector_stores.file_batches.with_raw_response.list_files(
        batch_id=batch.id, vector_store_id=store.id
    ).http_response.json()
    assert sorted(store_file_shape(f).id for f in in_batch["data"]) == sorted([a["id"], b["id"]])
    cancelled = client.vector_stores.file_batches.with_raw_response.cancel(
        batch_id=batch.id, vector_store_id=store.id
    ).http_response.json()
    assert conforms(VectorStoreFileBatch, cancelled).status == "completed"  # already done

    polled = client.vector_stores.files.upload_and_poll(
        vector_store_id=store.id, file=("welcome.md", (HANDBOOK / "welcome.md").read_bytes())
    )
    assert polled.status == "completed"
    assert client.vector_stores.retrieve(store.id).file_counts.completed == 3
    assert len(sources(api, store.id)) == 3
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.file_batches.retrieve(
            batch_id="vsfb_" + "0" * 32, vector_store_id=store.id
        )


def test_a_file_that_cannot_be_read_fails_with_last_error(client: openai.OpenAI) -> None:
    broken = upload(client, "broken.pdf", b"%PDF-1.4 this is not a pdf")
    blank = upload(client, "blank.html", b"<html><script>var x = 1;</script></html>")
    good = upload(client, "pets.md")
    store = client.vector_stores.create(
        name="mixed", file_ids=[broken["id"], blank["id"], good["id"]]
    )
    assert store.status == "completed"
    assert (store.file_counts.completed, store.file_counts.failed) == (1, 2)
    assert store.usage_bytes == good["bytes"]
    failed = client.vector_stores.files.list(store.id, filter="failed", order="asc").data
    assert [f.id for f in failed] == [broken["id"], blank["id"]]
    for item in failed:
        assert item.last_error is not None and item.usage_bytes == 0
        assert item.last_error.code in ("invalid_file", "unsupported_file")
    assert failed[1].last_error is not None
    assert failed[1].last_error.message == "the file has no text to index"


def test_vector_store_modify_list_delete_and_refusals(
    api: RunningApi, client: openai.OpenAI
) -> None:
    pets = upload(client, "pets.md")
    first = client.vector_stores.create(name="one", file_ids=[pets["id"]])
    second = client.vector_stores.create(name="two")
    changed = client.vector_stores.with_raw_response.update(
        vector_store_id=first.id, name="renamed", metadata={"k": "v"}
    ).http_response.json()
    store_shape(changed)
    assert changed["name"] == "renamed" and changed["metadata"] == {"k": "v"}
    page = client.vector_stores.with_raw_response.list(limit=1).http_response.json()
    assert [s["id"] for s in page["data"]] == [second.id] and page["has_more"]
    assert [s.id for s in client.vector_stores.list(limit=1)] == [second.id, first.id]

    with pytest.raises(openai.BadRequestError) as expiry:
        client.vector_stores.create(expires_after={"anchor": "last_active_at", "days": 1})
    assert expiry.value.body["param"] == "expires_after"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as chunking:
        client.vector_stores.create(
            chunking_strategy={
                "type": "static",
                "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 0},
            }
        )
    assert chunking.value.body["param"] == "chunking_strategy"  # type: ignore[index]
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.create(file_ids=["file-" + "0" * 32])
    with pytest.raises(openai.BadRequestError) as nul:  # PostgreSQL cannot store it
        client.vector_stores.update(first.id, metadata={"k": "a\x00b"})
    assert nul.value.body["param"] == "metadata"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as null_expiry:  # not nullable on create
        client.vector_stores.create(extra_body={"expires_after": None})
    assert null_expiry.value.body["param"] == "expires_after"  # type: ignore[index]
    assert len(client.vector_stores.list().data) == 2  # nothing made by the refusals

    deleted = client.vector_stores.with_raw_response.delete(first.id).http_response.json()
    assert conforms(VectorStoreDeleted, deleted).deleted
    assert sources(api, first.id) == set()
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.retrieve(first.id)
    assert client.files.retrieve(pets["id"]).id == pets["id"]


def test_another_tenants_files_and_stores_are_not_found(
    api: RunningApi, client: openai.OpenAI
) -> None:
    pets = upload(client, "pets.md")
    store = client.vector_stores.create(name="acme", file_ids=[pets["id"]])
    other = sdk(api, "globex")
    for attempt in (
        lambda: other.files.retrieve(pets["id"]),
        lambda: other.files.content(pets["id"]),
        lambda: other.files.delete(pets["id"]),
        lambda: other.vector_stores.retrieve(store.id),
        lambda: other.vector_stores.delete(store.id),
        lambda: other.vector_stores.files.retrieve(file_id=pets["id"], vector_store_id=store.id),
        lambda: other.vector_stores.files.create(vector_store_id=store.id, file_id=pets["id"]),
        lambda: other.vector_stores.create(file_ids=[pets["id"]]),
    ):
        with pytest.raises(openai.NotFoundError):
            attempt()
    assert other.files.list().data == [] and other.vector_stores.list().data == []
    assert client.vector_stores.retrieve(store.id).file_counts.completed == 1
    content = client.files.content(pets["id"])
    assert content.content == (HANDBOOK / "pets.md").read_bytes()
    assert content.response.headers["content-type"] == "application/octet-stream"


def test_files_with_the_same_bytes_keep_their_own_passages(
    api: RunningApi, client: openai.OpenAI
) -> None:
    """The index keys passages by content: removing one of two identical files must leave
    the other's passages, citing the file still attached."""
    data = (HANDBOOK / "pets.md").read_bytes()
    first, second = upload(client, "pets.md", data), upload(client, "pets-copy.md", data)
    store = client.vector_stores.create(file_ids=[first["id"], second["id"]])
    assert store.file_counts.completed == 2
    client.vector_stores.files.delete(file_id=first["id"], vector_store_id=store.id)
    assert sources(api, store.id) == {second["id"]}
    assert client.vector_stores.retrieve(store.id).file_counts.completed == 1
    client.vector_stores.files.delete(file_id=second["id"], vector_store_id=store.id)
    assert sources(api, store.id) == set()


def test_a_file_left_in_progress_by_a_dead_request_fails_when_read(
    api: RunningApi, client: openai.OpenAI
) -> None:
    """A request that died while indexing leaves its file ``in_progress``; once that is
    older than any request, reading the store reports it failed (the counts too), so a
    poller stops waiting and the file can be added again."""
    pets = upload(client, "pets.md")["id"]
    laundry = upload(client, "laundry.txt")["id"]
    store = client.vector_stores.create(name="s", file_ids=[pets])

    async def interrupted(file_id: str, age: timedelta) -> None:
        """*file_id* attached and left as a dead request leaves it, *age* ago."""
        async with api.store.engine.begin() as conn:
            await conn.exec_driver_sql(
                "INSERT INTO vector_store_files (vector_store_id, file_id, tenant_id, status, "
                "created_at) VALUES ($1, $2, 'acme', 'in_progress', now() - $3::interval)",
                (UUID(hex=store.id[3:]), UUID(hex=file_id[5:]), age),
            )

    api.call(interrupted(laundry, timedelta(hours=1)))
    seen = client.vector_stores.retrieve(store.id)
    assert (seen.file_counts.completed, seen.file_counts.failed) == (1, 1)
    assert seen.status == "completed"
    failed = client.vector_stores.files.retrieve(laundry, vector_store_id=store.id)
    assert failed.status == "failed" and failed.last_error is not None
    assert failed.last_error.code == "server_error"
    assert "interrupted" in failed.last_error.message
    again = client.vector_stores.files.create(vector_store_id=store.id, file_id=laundry)
    assert again.status == "completed"

    # One still within a request's time is left alone (it may be indexing right now).
    other = client.vector_stores.create(name="t")
    store = other  # the store *interrupted* attaches to
    api.call(interrupted(pets, timedelta(minutes=1)))
    assert client.vector_stores.retrieve(other.id).file_counts.in_progress == 1
    assert [s.file_counts.in_progress for s in client.vector_stores.list() if s.id == other.id] == [
        1
    ]
