"""OpenAI's vector store objects and the request checks the vector store routes share.

Statuses are derived from the files' rows: a store or batch is ``in_progress`` while one
of its files is, else ``completed`` (a cancelled batch reads ``cancelled``);
``usage_bytes`` is the bytes of the files indexed (``completed``).

Fields follow OpenAI's schema, which types some optional fields as non-nullable: a vector
store leaves out ``expires_after`` (it never expires; ``expires_at`` is nullable and is
``null``), and a vector store file's ``chunking_strategy`` is ``{"type": "other"}``, the
schema's answer for a strategy that is not OpenAI's ``static`` token windows: the server's
RAG chunker packs whole paragraphs into chunks and is not configurable per file.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from ai_agents.api.auth import Principal
from ai_agents.api.compat import ids
from ai_agents.api.compat.errors import invalid
from ai_agents.api.compat.stamps import unix
from ai_agents.errors import NotFoundError
from ai_agents.files import ingestion, queries
from ai_agents.rag.service import DocumentService

#: File batch ids (``ids`` has no prefix for them).
BATCH = "vsfb_"
MAX_FILE_IDS = 500
MAX_NAME = 256
MAX_ATTRIBUTES = 16
FILE_STATUSES = ("in_progress", "completed", "failed", "cancelled")
#: How every vector store file is chunked, in OpenAI's terms (not ``static``: see above).
OTHER_CHUNKING = {"type": "other"}


def store_object(row: queries.StoreRow) -> dict[str, Any]:
    return {
        "id": ids.format_id(ids.VECTOR_STORE, row.id),
        "object": "vector_store",
        "created_at": unix(row.created_at),
        "name": row.name or "",
        "usage_bytes": row.usage_bytes,
        "file_counts": row.counts.to_json(),
        "status": "in_progress" if row.counts.in_progress else "completed",
        "last_active_at": unix(row.last_active_at),
        "metadata": row.metadata,
        "expires_at": None,
    }


def store_file_object(row: queries.StoreFileRow) -> dict[str, Any]:
    return {
        "id": ids.format_id(ids.FILE, row.file_id),
        "object": "vector_store.file",
        "created_at": unix(row.created_at),
        "usage_bytes": row.usage_bytes,
        "vector_store_id": ids.format_id(ids.VECTOR_STORE, row.vector_store_id),
        "status": row.status,
        "last_error": row.last_error,
        "attributes": row.attributes,
        "chunking_strategy": dict(OTHER_CHUNKING),
    }


def batch_object(row: queries.BatchRow) -> dict[str, Any]:
    if row.cancelled:
        status = "cancelled"
    elif row.counts.in_progress:
        status = "in_progress"
    else:
        status = "completed"
    return {
        "id": f"{BATCH}{row.id.hex}",
        "object": "vector_store.files_batch",
        "created_at": unix(row.created_at),
        "vector_store_id": ids.format_id(ids.VECTOR_STORE, row.vector_store_id),
        "status": status,
        "file_counts": row.counts.to_json(),
    }


def parse_batch_id(value: str) -> UUID:
    if isinstance(value, str) and value.startswith(BATCH) and len(value) == len(BATCH) + 32:
        try:
            return UUID(hex=value[len(BATCH) :])
        except ValueError:
            pass
    raise NotFoundError("file batch", value)


async def find_store(principal: Principal, vector_store_id: str) -> queries.StoreRow:
    ident = ids.parse_id(ids.VECTOR_STORE, vector_store_id)
    engine = principal.tenant_store.engine
    await queries.fail_interrupted(engine, principal.tenant_id, ident)
    row = await queries.get_store(engine, principal.tenant_id, ident)
    if row is None:
        raise NotFoundError("vector store", vector_store_id)
    return row


def service_of(principal: Principal) -> DocumentService:
    """The document service that indexes vector stores; a 400 when none is configured."""
    service = ingestion.document_service(principal.tenant_store)
    if service is None:
        raise invalid(
            "vector stores need document search, which this server does not enable "
            "(AI_AGENTS_TOOL_MODULES=ai_agents.rag.builtin)"
        )
    return service


async def checked_file_ids(principal: Principal, value: Any, param: str) -> list[UUID]:
    """The tenant's files named by *value* (a 404 naming one that is not)."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise invalid(f"{param} must be an array of file ids", param)
    if len(value) > MAX_FILE_IDS:
        raise invalid(f"{param} may have at most {MAX_FILE_IDS} entries, got {len(value)}", param)
    parsed = list(dict.fromkeys(ids.parse_id(ids.FILE, v) for v in value))
    found = await queries.get_files(principal.tenant_store.engine, principal.tenant_id, parsed)
    for ident in parsed:
        if ident not in found:
            raise NotFoundError("file", ids.format_id(ids.FILE, ident))
    return parsed


def check_chunking(value: Any) -> None:
    """Only the server's own chunking (``auto``) is available."""
    if value is None:
        return
    if isinstance(value, dict) and value.get("type") == "auto" and len(value) == 1:
        return
    raise invalid(
        "chunking_strategy: only {'type': 'auto'} is supported (the server's RAG chunker)",
        "chunking_strategy",
    )


def refuse_expiry(value: Any) -> None:
    if value is not None:
        raise invalid(
            "expires_after is not supported: vector stores here stay until deleted",
            "expires_after",
        )


def attributes(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or len(value) > MAX_ATTRIBUTES:
        raise invalid(
            f"attributes must be an object of at most {MAX_ATTRIBUTES} pairs", "attributes"
        )
    for key, item in value.items():
        if len(key) > 64 or isinstance(item, dict | list) or item is None:
            raise invalid(
                "attributes keys are up to 64 characters, values strings, numbers or booleans",
                "attributes",
            )
        if isinstance(item, str) and len(item) > 512:
            raise invalid("attributes values may be at most 512 characters", "attributes")
    return dict(value)


def status_filter(value: str | None) -> str | None:
    if value is None:
        return None
    if value not in FILE_STATUSES:
        raise invalid(f"filter must be one of {', '.join(FILE_STATUSES)}, got {value!r}", "filter")
    return value
