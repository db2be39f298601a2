"""``/v1/vector_stores/{id}/file_batches``: add many files to a vector store at once.

A batch attaches its files and indexes them one after the other during the request
(like a single file, see :mod:`api.compat.vector_stores`); its ``file_counts`` and
status come from its files' rows. Cancelling marks the files not yet indexed
``cancelled`` (with indexing done in the request, a batch that can be read is already
finished, so a cancel then changes nothing).
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from litestar import get, post
from litestar.params import Parameter

from ai_agents.api.auth import Principal
from ai_agents.api.compat import fields, ids
from ai_agents.api.compat.errors import invalid
from ai_agents.api.compat.lists import envelope, list_query
from ai_agents.api.compat.vector_store_objects import (
    attributes,
    batch_object,
    check_chunking,
    checked_file_ids,
    find_store,
    parse_batch_id,
    service_of,
    status_filter,
    store_file_object,
)
from ai_agents.errors import NotFoundError
from ai_agents.files import ingestion, queries

TAGS = ["openai: vector stores"]
_CREATE = ("file_ids", "attributes", "chunking_strategy")


async def file_page(
    principal: Principal,
    store_id: UUID,
    batch_id: UUID | None,
    status: str | None,
    limit: str | None,
    order: str | None,
    after: str | None,
    before: str | None,
) -> dict[str, Any]:
    """A page of a store's (or a batch's) files, optionally of one status."""
    query = list_query(limit, order, after, before)
    page = queries.Page(
        query.limit,
        query.order,
        after=ids.parse_id(ids.FILE, after) if after else None,
        before=ids.parse_id(ids.FILE, before) if before else None,
    )
    rows, more = await queries.list_store_files(
        principal.tenant_store.engine,
        principal.tenant_id,
        store_id,
        page,
        status=status_filter(status),
        batch_id=batch_id,
    )
    return envelope([store_file_object(r) for r in rows], more)


async def _find_batch(
    principal: Principal, vector_store_id: str, batch_id: str
) -> queries.BatchRow:
    store = await find_store(principal, vector_store_id)
    row = await queries.get_batch(
        principal.tenant_store.engine, principal.tenant_id, store.id, parse_batch_id(batch_id)
    )
    if row is None:
        raise NotFoundError("file batch", batch_id)
    return row


@post(
    "/vector_stores/{vector_store_id:str}/file_batches",
    tags=TAGS,
    summary="Create a vector store file batch",
    status_code=200,
)
async def create_batch(
    vector_store_id: str, data: dict[str, Any], principal: Principal
) -> dict[str, Any]:
    fields.reject_unknown(data, _CREATE)
    check_chunking(data.get("chunking_strategy"))
    extra = attributes(data.get("attributes"))
    if not data.get("file_ids"):
        raise invalid("file_ids is required (at least one file id)", "file_ids")
    store = await find_store(principal, vector_store_id)
    service = service_of(principal)
    file_ids = await checked_file_ids(principal, data["file_ids"], "file_ids")
    engine, tenant = principal.tenant_store.engine, principal.tenant_id
    batch_id = await queries.insert_batch(engine, tenant, store.id)
    await ingestion.attach_and_ingest(
        principal.tenant_store,
        service,
        tenant,
        store.id,
        file_ids,
        batch_id=batch_id,
        attributes=extra,
    )
    row = await queries.get_batch(engine, tenant, store.id, batch_id)
    assert row is not None
    return batch_object(row)


@get(
    "/vector_stores/{vector_store_id:str}/file_batches/{batch_id:str}",
    tags=TAGS,
    summary="Retrieve a vector store file batch",
)
async def retrieve_batch(
    vector_store_id: str, batch_id: str, principal: Principal
) -> dict[str, Any]:
    return batch_object(await _find_batch(principal, vector_store_id, batch_id))


@post(
    "/vector_stores/{vector_store_id:str}/file_batches/{batch_id:str}/cancel",
    tags=TAGS,
    summary="Cancel a vector store file batch",
    status_code=200,
)
async def cancel_batch(vector_store_id: str, batch_id: str, principal: Principal) -> dict[str, Any]:
    row = await _find_batch(principal, vector_store_id, batch_id)
    if row.counts.in_progress:
        engine, tenant = principal.tenant_store.engine, principal.tenant_id
        await queries.cancel_batch(engine, tenant, row.id)
        row = await _find_batch(principal, vector_store_id, batch_id)
    return batch_object(row)


@get(
    "/vector_stores/{vector_store_id:str}/file_batches/{batch_id:str}/files",
    tags=TAGS,
    summary="List the files of a vector store file batch",
)
async def list_batch_files(
    vector_store_id: str,
    batch_id: str,
    principal: Principal,
    filter: Annotated[str | None, Parameter(query="filter", required=False)] = None,  # noqa: A002
    limit: Annotated[str | None, Parameter(query="limit", required=False)] = None,
    order: Annotated[str | None, Parameter(query="order", required=False)] = None,
    after: Annotated[str | None, Parameter(query="after", required=False)] = None,
    before: Annotated[str | None, Parameter(query="before", required=False)] = None,
) -> dict[str, Any]:
    row = await _find_batch(principal, vector_store_id, batch_id)
    return await file_page(
        principal, row.vector_store_id, row.id, filter, limit, order, after, before
    )


HANDLERS = [create_batch, retrieve_batch, cancel_batch, list_batch_files]
