"""Message ``attachments``: files a message brings for ``file_search``.

``{"file_id": "file-...", "tools": [{"type": "file_search"}]}``: as with OpenAI, the file
is added to the thread's vector store (one is made for the thread, and kept in its
``tool_resources``, when it has none), so ``file_search`` finds it on this thread's runs.
``code_interpreter`` is refused (this server runs no code). The attachments are kept on
the message (its metadata key :data:`ATTACHMENTS_KEY`, hidden from ``/v1`` metadata) and
shown as the message's ``attachments``.

:func:`parse` checks the shape (with the message); :func:`check_files` that every file is
the tenant's, before anything is written; :func:`index` adds the files to the thread's
store once the messages are saved.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncConnection

from ai_agents.api.auth import Principal
from ai_agents.api.compat import ids
from ai_agents.api.compat.errors import invalid
from ai_agents.api.compat.vector_store_objects import service_of
from ai_agents.errors import NotFoundError
from ai_agents.files import ingestion, queries
from ai_agents.files.search import (
    FILE_SEARCH,
    THREAD_RESOURCES_KEY,
    thread_resources,
    vector_store_ids,
)
from ai_agents.messages import Message

#: The message metadata key holding its attachments (a list, so ``/v1`` hides it).
ATTACHMENTS_KEY = "ai_agents.attachments"
#: How many files one message may attach.
MAX_ATTACHMENTS = 20


def parse(value: Any, param: str) -> list[dict[str, Any]]:
    """The attachments of a new message, checked in shape: ``[{file_id, tools}]``."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise invalid(f"{param} must be an array", param)
    if len(value) > MAX_ATTACHMENTS:
        raise invalid(f"{param} may have at most {MAX_ATTACHMENTS} files, got {len(value)}", param)
    out: list[dict[str, Any]] = []
    for i, item in enumerate(value):
        where = f"{param}[{i}]"
        if not isinstance(item, dict):
            raise invalid(f"{where} must be an object", where)
        for name in item:
            if name not in ("file_id", "tools"):
                raise invalid(f"Unrecognized request argument supplied: {where}.{name}", where)
        file_id = item.get("file_id")
        if not isinstance(file_id, str) or not file_id:
            raise invalid(f"{where}.file_id must be a file id", f"{where}.file_id")
        tools = item.get("tools") or []
        if not isinstance(tools, list):
            raise invalid(f"{where}.tools must be an array", f"{where}.tools")
        kinds: list[str] = []
        for j, tool in enumerate(tools):
            kind = tool.get("type") if isinstance(tool, dict) else None
            if kind == "code_interpreter":
                raise invalid(
                    f"{where}.tools[{j}]: the code_interpreter tool is not supported by this server",
                    f"{where}.tools[{j}].type",
                )
            if kind != FILE_SEARCH:
                raise invalid(f"{where}.tools[{j}].type must be 'file_search'", f"{where}.tools")
            kinds.append(kind)
        out.append({"file_id": file_id, "tools": [{"type": k} for k in dict.fromkeys(kinds)]})
    return out


def of_message(message: Message) -> list[dict[str, Any]]:
    """The attachments a message was saved with (``[]`` when none): its ``attachments``."""
    value = message.metadata.get(ATTACHMENTS_KEY)
    return [dict(a) for a in value] if isinstance(value, list) else []


def _searched_files(messages: Iterable[Message]) -> list[UUID]:
    found: list[UUID] = []
    for message in messages:
        for item in of_message(message):
            if any(t.get("type") == FILE_SEARCH for t in item.get("tools") or []):
                found.append(ids.parse_id(ids.FILE, item["file_id"]))
    return list(dict.fromkeys(found))


async def check_files(principal: Principal, messages: Sequence[Message]) -> None:
    """Every attached file is one of the tenant's (a 404 naming it); document search is
    enabled when a file is to be searched. Nothing is written."""
    wanted = [
        (item["file_id"], ids.parse_id(ids.FILE, item["file_id"]))
        for message in messages
        for item in of_message(message)
    ]
    if not wanted:
        return
    store = principal.tenant_store
    found = await queries.get_files(
        store.engine, principal.tenant_id, list(dict.fromkeys(i for _, i in wanted))
    )
    for name, ident in wanted:
        if ident not in found:
            raise NotFoundError("file", name)
    if _searched_files(messages):
        service_of(principal)


async def index(principal: Principal, thread_id: UUID, messages: Sequence[Message]) -> None:
    """Add the files the saved *messages* attach for ``file_search`` to the thread's vector
    store, making one (recorded in the thread's ``tool_resources``) when it has none."""
    files = _searched_files(messages)
    if not files:
        return
    store = principal.tenant_store
    engine, tenant = store.engine, principal.tenant_id
    chosen: list[UUID] = []

    async def with_a_store(
        conn: AsyncConnection, metadata: dict[str, Any]
    ) -> dict[str, Any] | None:
        # Runs with the thread's row locked: two messages attaching files at once make
        # one store, the second seeing the first's (not two, one of them orphaned).
        resources = thread_resources(metadata)
        for ident in vector_store_ids(resources):
            if await queries.get_store(conn, tenant, ident):
                chosen.append(ident)
                return None
        name = f"files of {ids.format_id(ids.THREAD, thread_id)}"
        made = await queries.insert_store(conn, tenant, name=name, metadata={})
        chosen.append(made)
        resources = {
            **resources,
            FILE_SEARCH: {"vector_store_ids": [ids.format_id(ids.VECTOR_STORE, made)]},
        }
        return {**metadata, THREAD_RESOURCES_KEY: resources}

    await store.change_thread_metadata(thread_id, with_a_store)
    target = chosen[-1]
    attached = {r.file_id for r in await queries.store_file_ids(engine, tenant, target)}
    new = [f for f in files if f not in attached]
    if new:
        await ingestion.attach_and_ingest(store, service_of(principal), tenant, target, new)


def with_attachments(message: Message, attachments: list[dict[str, Any]]) -> Message:
    """*message* carrying *attachments* in its metadata (as saved)."""
    if attachments:
        message.metadata = {**message.metadata, ATTACHMENTS_KEY: attachments}
    return message
