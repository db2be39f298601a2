"""``/v1/threads``: create (with initial messages), retrieve, modify and delete OpenAI threads.

A thread made here has no assistant yet: it belongs to the tenant's placeholder agent
until a run names one (``store.create_unassigned_thread``). Its initial messages are
added after the thread row exists; when that fails (a bad message, a size limit) the
thread is deleted again, so a failed create leaves nothing behind. ``tool_resources``
(the vector stores ``file_search`` searches, :mod:`api.compat.tool_resources`) are kept
in the thread's metadata under a key ``/v1`` does not show as metadata.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from litestar import delete, get, post
from sqlalchemy.ext.asyncio import AsyncConnection

from ai_agents.api.auth import Principal
from ai_agents.api.compat import attachments, fields, ids, tool_resources
from ai_agents.api.compat.errors import invalid
from ai_agents.api.compat.objects import (
    load_new_messages,
    new_messages,
    public_metadata,
    thread_object,
)
from ai_agents.errors import NotFoundError
from ai_agents.files.search import THREAD_RESOURCES_KEY, thread_resources
from ai_agents.messages import Message
from ai_agents.records import ThreadRecord
from ai_agents.store import AgentStore

TAGS = ["openai: threads"]
_CREATE_FIELDS = ("messages", "metadata", "tool_resources")
_MODIFY_FIELDS = ("metadata", "tool_resources")


async def find_thread(store: AgentStore, thread_id: str) -> ThreadRecord:
    """The thread behind *thread_id* (the key's tenant's); a 404 naming the id otherwise."""
    ident = ids.parse_id(ids.THREAD, thread_id)
    try:
        return await store.get_thread(ident)
    except NotFoundError:
        raise NotFoundError("thread", thread_id) from None


async def new_thread(store: AgentStore, metadata: dict[str, str], messages: list[Message]) -> UUID:
    """A thread with no assistant yet and its first *messages*; when adding them fails
    (a bad message, a size limit) the thread is deleted again: nothing half-made stays."""
    thread_id = await store.create_unassigned_thread(metadata=metadata)
    if messages:
        try:
            await store.add_messages(thread_id, messages)
        except BaseException:
            await store.delete_thread(thread_id)
            raise
    return thread_id


def with_resources(metadata: dict[str, Any], stored: dict[str, Any]) -> dict[str, Any]:
    """*metadata* holding the thread's stored ``tool_resources`` (none: without the key)."""
    out = {k: v for k, v in metadata.items() if k != THREAD_RESOURCES_KEY}
    if stored:
        out[THREAD_RESOURCES_KEY] = stored
    return out


def _body(data: Any, known: tuple[str, ...]) -> dict[str, Any]:
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise invalid("the request body must be a JSON object")
    fields.reject_unknown(data, known)
    return data


@post("/threads", tags=TAGS, summary="Create a thread", status_code=200)
async def create_thread(principal: Principal, data: Any = None) -> dict[str, Any]:
    body = _body(data, _CREATE_FIELDS)
    metadata = fields.metadata(body.get("metadata"))
    messages = new_messages(body.get("messages"), "messages")
    resources = await tool_resources.checked(principal, body.get("tool_resources"))
    await load_new_messages(principal, messages)
    store = principal.tenant_store
    metadata = with_resources(metadata, await tool_resources.stored(principal, resources))
    thread_id = await new_thread(store, metadata, messages)
    await attachments.index(principal, thread_id, messages)
    return thread_object(await store.get_thread(thread_id))


@get("/threads/{thread_id:str}", tags=TAGS, summary="Retrieve a thread")
async def retrieve_thread(thread_id: str, principal: Principal) -> dict[str, Any]:
    return thread_object(await find_thread(principal.tenant_store, thread_id))


@post("/threads/{thread_id:str}", tags=TAGS, summary="Modify a thread", status_code=200)
async def modify_thread(thread_id: str, principal: Principal, data: Any = None) -> dict[str, Any]:
    store = principal.tenant_store
    thread = await find_thread(store, thread_id)
    body = _body(data, _MODIFY_FIELDS)
    if "metadata" not in body and "tool_resources" not in body:
        return thread_object(thread)
    resources = await tool_resources.checked(principal, body.get("tool_resources"))
    given = fields.metadata(body["metadata"]) if "metadata" in body else None
    replaced = (
        await tool_resources.stored(principal, resources) if "tool_resources" in body else None
    )

    async def merged(_conn: AsyncConnection, current: dict[str, Any]) -> dict[str, Any]:
        # With the row locked: what a concurrent attachment wrote in between is kept. The
        # pairs /v1 does not show (set through /api/v1 with other values) are kept too.
        shown = public_metadata(current)
        kept = {k: v for k, v in current.items() if k not in shown}
        stored = thread_resources(current) if replaced is None else replaced
        return with_resources({**kept, **(shown if given is None else given)}, stored)

    return thread_object(await store.change_thread_metadata(thread.id, merged))


@delete("/threads/{thread_id:str}", tags=TAGS, summary="Delete a thread", status_code=200)
async def delete_thread(thread_id: str, principal: Principal) -> dict[str, Any]:
    store = principal.tenant_store
    thread = await find_thread(store, thread_id)
    try:
        await store.delete_thread(thread.id)
    except NotFoundError:
        raise NotFoundError("thread", thread_id) from None
    return {"id": thread_id, "object": "thread.deleted", "deleted": True}


HANDLERS = [create_thread, retrieve_thread, modify_thread, delete_thread]
