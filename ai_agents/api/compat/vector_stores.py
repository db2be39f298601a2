"""``/v1/vector_stores`` and their files: OpenAI vector stores over the RAG index.

A vector store is a scope of the tenant's document index (entity ``vs_<hex>``, see
:mod:`ai_agents.files.ingestion`). Attaching a file chunks, embeds and indexes it with
the server's RAG pipeline **during the request**: the answer already shows ``completed``
(or ``failed`` with ``last_error``), and the SDK's ``*_and_poll`` helpers return at once.
Detaching a file or deleting the store deletes its passages. A file a dead request left
``in_progress`` is marked ``failed`` (``server_error``, "indexing was interrupted") when
its store is next read, once it is older than any request
(:data:`ai_agents.files.queries.INTERRUPTED_AFTER_SECONDS`). File batches live in
:mod:`api.compat.vector_store_batches`.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Response, delete, get, post
from litestar.params import Parameter

from ai_agents.api.auth import Principal
from ai_agents.api.compat import fields, ids, vector_store_batches
from ai_agents.api.compat.errors import invalid
from ai_agents.api.compat.lists import envelope, list_query
from ai_agents.api.compat.vector_store_objects import (
    MAX_NAME,
    attributes,
    check_chunking,
    checked_file_ids,
    find_store,
    refuse_expiry,
    service_of,
    store_file_object,
    store_object,
)
from ai_agents.errors import NotFoundError
from ai_agents.files import ingestion, queries

TAGS = ["openai: vector stores"]
_CREATE = ("name", "file_ids", "metadata", "expires_after", "chunking_strategy", "description")
_MODIFY = ("name", "metadata", "expires_after")
_FILE = ("file_id", "attributes", "chunking_strategy")


def _name(value: Any) -> str | None:
    return fields.optional_text(value, "name", MAX_NAME)


@post("/vector_stores", tags=TAGS, summary="Create a vector store", status_code=200)
async def create_store(data: dict[str, Any], principal: Principal) -> dict[str, Any]:
    fields.reject_unknown(data, _CREATE)
    if "expires_after" in data and data["expires_after"] is None:  # not nullable on create
        raise invalid("expires_after must be an object", "expires_after")
    refuse_expiry(data.get("expires_after"))
    check_chunking(data.get("chunking_strategy"))
    if data.get("description") is not None:
        raise invalid("description is not supported for vector stores here", "description")
    name = _name(data.get("name"))
    metadata = fields.metadata(data.get("metadata"))
    service = service_of(principal)
    file_ids = await checked_file_ids(principal, data.get("file_ids", []), "file_ids")
    engine, tenant = principal.tenant_store.engine, principal.tenant_id
    store_id = await queries.insert_store(engine, tenant, name=name, metadata=metadata)
    await ingestion.attach_and_ingest(principal.tenant_store, service, tenant, store_id, file_ids)
    row = await queries.get_store(engine, tenant, store_id)
    assert row is not None
    return store_object(row)


@get("/vector_stores/{vector_store_id:str}", tags=TAGS, summary="Retrieve a vector store")
async def retrieve_store(vector_store_id: str, principal: Principal) -> dict[str, Any]:
    return store_object(await find_store(principal, vector_store_id))


@post(
    "/vector_stores/{vector_store_id:str}",
    tags=TAGS,
    summary="Modify a vector store",
    status_code=200,
)
async def modify_store(
    vector_store_id: str, data: dict[str, Any], principal: Principal
) -> dict[str, Any]:
    fields.reject_unknown(data, _MODIFY)
    refuse_expiry(data.get("expires_after"))
    row = await find_store(principal, vector_store_id)
    changes: dict[str, Any] = {}
    if "name" in data:
        changes["name"] = _name(data["name"])
    if "metadata" in data:
        changes["metadata"] = fields.metadata(data["metadata"])
    engine, tenant = principal.tenant_store.engine, principal.tenant_id
    await queries.update_store(engine, tenant, row.id, changes)
    return store_object(await find_store(principal, vector_store_id))


@get("/vector_stores", tags=TAGS, summary="List vector stores")
async def list_stores(
    principal: Principal,
    limit: Annotated[str | None, Parameter(query="limit", required=False)] = None,
    order: Annotated[str | None, Parameter(query="order", required=False)] = None,
    after: Annotated[str | None, Parameter(query="after", required=False)] = None,
    before: Annotated[str | None, Parameter(query="before", required=False)] = None,
) -> dict[str, Any]:
    query = list_query(limit, order, after, before)
    page = queries.Page(
        query.limit,
        query.order,
        after=ids.parse_id(ids.VECTOR_STORE, after) if after else None,
        before=ids.parse_id(ids.VECTOR_STORE, before) if before else None,
    )
    engine = principal.tenant_store.engine
    await queries.fail_interrupted(engine, principal.tenant_id)
    rows, more = await queries.list_stores(engine, principal.tenant_id, page)
    return envelope([store_object(r) for r in rows], more)


@delete(
    "/vector_stores/{vector_store_id:str}",
    tags=TAGS,
    summary="Delete a vector store",
    status_code=200,
)
async def delete_store(vector_store_id: str, principal: Principal) -> Response[dict[str, Any]]:
    row = await find_store(principal, vector_store_id)
    engine, tenant = principal.tenant_store.engine, principal.tenant_id
    service = ingestion.document_service(principal.tenant_store)
    if service is not None:
        await ingestion.remove_store(service, tenant, row.id)
    if not await queries.delete_store(engine, tenant, row.id):
        raise NotFoundError("vector store", vector_store_id)
    body = {"id": vector_store_id, "object": "vector_store.deleted", "deleted": True}
    return Response(body, status_code=200)


# --- files of a store -------------------------------------------------------------------


@post(
    "/vector_stores/{vector_store_id:str}/files",
    tags=TAGS,
    summary="Add a file to a vector store",
    status_code=200,
)
async def create_store_file(
    vector_store_id: str, data: dict[str, Any], principal: Principal
) -> dict[str, Any]:
    fields.reject_unknown(data, _FILE)
    check_chunking(data.get("chunking_strategy"))
    extra = attributes(data.get("attributes"))
    if not isinstance(data.get("file_id"), str):
        raise invalid("file_id is required", "file_id")
    store = await find_store(principal, vector_store_id)
    service = service_of(principal)
    (file_id,) = await checked_file_ids(principal, [data["file_id"]], "file_id")
    engine, tenant = principal.tenant_store.engine, principal.tenant_id
    await ingestion.attach_and_ingest(
        principal.tenant_store, service, tenant, store.id, [file_id], attributes=extra
    )
    row = await queries.get_store_file(engine, tenant, store.id, file_id)
    assert row is not None
    return store_file_object(row)


@get(
    "/vector_stores/{vector_store_id:str}/files/{file_id:str}",
    tags=TAGS,
    summary="Retrieve a vector store file",
)
async def retrieve_store_file(
    vector_store_id: str, file_id: str, principal: Principal
) -> dict[str, Any]:
    store = await find_store(principal, vector_store_id)
    ident = ids.parse_id(ids.FILE, file_id)
    row = await queries.get_store_file(
        principal.tenant_store.engine, principal.tenant_id, store.id, ident
    )
    if row is None:
        raise NotFoundError("file", file_id)
    return store_file_object(row)


@get("/vector_stores/{vector_store_id:str}/files", tags=TAGS, summary="List vector store files")
async def list_store_files(
    vector_store_id: str,
    principal: Principal,
    filter: Annotated[str | None, Parameter(query="filter", required=False)] = None,  # noqa: A002
    limit: Annotated[str | None, Parameter(query="limit", required=False)] = None,
    order: Annotated[str | None, Parameter(query="order", required=False)] = None,
    after: Annotated[str | None, Parameter(query="after", required=False)] = None,
    before: Annotated[str | None, Parameter(query="before", required=False)] = None,
) -> dict[str, Any]:
    store = await find_store(principal, vector_store_id)
    return await vector_store_batches.file_page(
        principal, store.id, None, filter, limit, order, after, before
    )


@delete(
    "/vector_stores/{vector_store_id:str}/files/{file_id:str}",
    tags=TAGS,
    summary="Remove a file from a vector store",
    status_code=200,
)
async def delete_store_file(
    vector_store_id: str, file_id: str, principal: Principal
) -> Response[dict[str, Any]]:
    """The file leaves the store and its passages leave the index; the file itself stays."""
    store = await find_store(principal, vector_store_id)
    ident = ids.parse_id(ids.FILE, file_id)
    engine, tenant = principal.tenant_store.engine, principal.tenant_id
    removed = await queries.detach_file(engine, tenant, store.id, ident)
    if removed is None:
        raise NotFoundError("file", file_id)
    service = ingestion.document_service(principal.tenant_store)
    if service is not None:
        await ingestion.remove(principal.tenant_store, service, tenant, removed)
    body = {"id": file_id, "object": "vector_store.file.deleted", "deleted": True}
    return Response(body, status_code=200)


HANDLERS = [
    create_store,
    retrieve_store,
    modify_store,
    list_stores,
    delete_store,
    create_store_file,
    retrieve_store_file,
    list_store_files,
    delete_store_file,
    *vector_store_batches.HANDLERS,
]
