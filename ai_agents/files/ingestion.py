"""Vector store files through the RAG pipeline: chunk, embed, index; and back out.

A file attached to vector store ``vs_<hex>`` is ingested by the tenant's
:class:`~ai_agents.rag.service.DocumentService` with ``entity_id="vs_<hex>"`` (so a search
of the store is a search of that entity, within the tenant), ``source="file-<hex>"`` (the
file a passage came from) and ``title`` = the file name. Its row goes ``in_progress`` ->
``completed`` (``usage_bytes`` = the file's size) or ``failed`` with ``last_error``; a
failure is recorded on the row, never raised to the caller, so one bad file never undoes
the others.

The index identifies a document by content hash within its scope: two files with the
same bytes in one store share passages. Removing one of them therefore deletes the
passages and re-ingests the other, so the passages always cite a file still attached.
"""

from __future__ import annotations

import logging
import sys
from typing import Any
from uuid import UUID

from ai_agents.errors import AgentsError, ValidationError
from ai_agents.files import queries
from ai_agents.rag.errors import UnsupportedDocument
from ai_agents.rag.service import DocumentService
from ai_agents.rag.setup import EXTENSION
from ai_agents.store import AgentStore

log = logging.getLogger("ai_agents.files")


def document_service(store: AgentStore) -> DocumentService | None:
    """The store's document service (``enable_documents``), or the one the environment
    configured (``AI_AGENTS_TOOL_MODULES=ai_agents.rag.builtin``); None without either."""
    service = store.extensions.get(EXTENSION)
    if isinstance(service, DocumentService):
        return service
    builtin = sys.modules.get("ai_agents.rag.builtin")
    found = getattr(builtin, "service", None)
    return found if isinstance(found, DocumentService) else None


def entity_for(store_id: UUID) -> str:
    """The RAG entity holding a vector store's passages."""
    return f"vs_{store_id.hex}"


def source_for(file_id: UUID) -> str:
    """The RAG source of a file's passages (what a search hit names)."""
    return f"file-{file_id.hex}"


def _failure(exc: Exception) -> dict[str, str]:
    if isinstance(exc, UnsupportedDocument):
        return {"code": "unsupported_file", "message": str(exc)}
    if isinstance(exc, ValidationError):
        return {"code": "invalid_file", "message": str(exc)}
    if isinstance(exc, AgentsError):
        return {"code": "server_error", "message": str(exc)}
    return {"code": "server_error", "message": "the file could not be indexed"}


async def ingest(
    store: AgentStore, service: DocumentService, tenant_id: str, store_id: UUID, file_id: UUID
) -> None:
    """Index one attached file and record the outcome on its row."""
    engine = store.engine
    file = await queries.get_file(engine, tenant_id, file_id)
    data = await queries.file_content(engine, tenant_id, file_id)
    if file is None or data is None:
        await queries.finish_file(
            engine,
            tenant_id,
            store_id,
            file_id,
            status="failed",
            last_error={"code": "invalid_file", "message": "the file was deleted"},
        )
        return
    try:
        result = await service.ingestor.ingest_bytes(
            data,
            name=file.filename,
            source=source_for(file_id),
            title=file.filename,
            tenant_id=tenant_id,
            entity_id=entity_for(store_id),
        )
    except Exception as exc:  # recorded on the row: the caller polls the status
        if not isinstance(exc, AgentsError):
            log.exception("indexing %s into %s failed", file_id, store_id)
        await queries.finish_file(
            engine, tenant_id, store_id, file_id, status="failed", last_error=_failure(exc)
        )
        return
    if result.status == "empty":
        await queries.finish_file(
            engine,
            tenant_id,
            store_id,
            file_id,
            status="failed",
            last_error={"code": "invalid_file", "message": "the file has no text to index"},
        )
        return
    await queries.finish_file(
        engine,
        tenant_id,
        store_id,
        file_id,
        status="completed",
        usage_bytes=file.bytes,
        file_hash=result.file_hash,
    )


async def attach_and_ingest(
    store: AgentStore,
    service: DocumentService,
    tenant_id: str,
    store_id: UUID,
    file_ids: list[UUID],
    *,
    batch_id: UUID | None = None,
    attributes: dict[str, Any] | None = None,
) -> None:
    """Attach the files to the vector store (``in_progress``), then index them one by
    one, each outcome recorded on its row (what creating a store with ``file_ids``,
    adding one file and a file batch all do)."""
    for file_id in file_ids:
        await queries.attach_file(
            store.engine, tenant_id, store_id, file_id, batch_id=batch_id, attributes=attributes
        )
    for file_id in file_ids:
        await ingest(store, service, tenant_id, store_id, file_id)


async def remove(
    store: AgentStore, service: DocumentService, tenant_id: str, row: queries.StoreFileRow
) -> None:
    """Delete the passages of a file just detached from its store (see the module doc)."""
    if row.file_hash is None:
        return
    entity = entity_for(row.vector_store_id)
    await service.index.delete_document(tenant_id, row.file_hash, entity_id=entity)
    for other in await queries.store_file_ids(store.engine, tenant_id, row.vector_store_id):
        if other.file_hash == row.file_hash:
            await queries.restart_file(
                store.engine, tenant_id, other.vector_store_id, other.file_id
            )
            await ingest(store, service, tenant_id, other.vector_store_id, other.file_id)
            break


async def remove_store(service: DocumentService, tenant_id: str, store_id: UUID) -> None:
    """Delete every passage of a vector store."""
    entity = entity_for(store_id)
    for document in await service.index.list_documents(tenant_id, entity_id=entity, limit=10_000):
        await service.index.delete_document(tenant_id, document.file_hash, entity_id=entity)
