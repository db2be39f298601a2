"""``/threads``: create, list (filtered, cursor-paginated), read, change, fork, archive."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from litestar import delete, get, patch, post
from litestar.params import Parameter
from msgspec import UNSET

from ai_agents.api.auth import Principal
from ai_agents.api.openapi import errors
from ai_agents.api.routes._params import Cursor, Limit, checked_cursor
from ai_agents.api.schemas import (
    ThreadCreate,
    ThreadFork,
    ThreadOut,
    ThreadPage,
    ThreadUpdate,
    thread_out,
)

TAGS = ["threads"]


@post("/threads", tags=TAGS, summary="Create a thread", opt=errors(404, 422))
async def create_thread(data: ThreadCreate, principal: Principal) -> ThreadOut:
    """A new conversation with an agent (in the agent's tenant)."""
    store = principal.store
    thread_id = await store.create_thread(
        data.agent_id, user_id=data.user_id, metadata=data.metadata, title=data.title
    )
    return thread_out(await store.get_thread(thread_id))


@get("/threads", tags=TAGS, summary="List threads", opt=errors(422))
async def list_threads(
    principal: Principal,
    agent_id: UUID | None = None,
    user_id: Annotated[str | None, Parameter(min_length=1, max_length=200)] = None,
    archived: Annotated[
        bool | None,
        Parameter(description="true: archived threads only; false (default): active ones only"),
    ] = False,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> ThreadPage:
    """Threads most recently used first; pass ``next_cursor`` back as ``cursor``."""
    page = await principal.store.list_threads(
        agent_id=agent_id,
        user_id=user_id,
        archived=archived,
        limit=limit,
        cursor=checked_cursor(cursor),
    )
    return ThreadPage(
        data=[thread_out(t) for t in page.items],
        next_cursor=page.next_cursor,
        has_more=page.has_more,
    )


@get("/threads/{thread_id:uuid}", tags=TAGS, summary="Get a thread")
async def get_thread(thread_id: UUID, principal: Principal) -> ThreadOut:
    return thread_out(await principal.store.get_thread(thread_id))


@patch("/threads/{thread_id:uuid}", tags=TAGS, summary="Change a thread", opt=errors(422))
async def update_thread(thread_id: UUID, data: ThreadUpdate, principal: Principal) -> ThreadOut:
    """Change the title or metadata, or archive/unarchive with ``archived``."""
    store = principal.store
    record = await store.update_thread(
        thread_id,
        title=None if data.title is UNSET else data.title,
        metadata=None if data.metadata is UNSET else data.metadata,
    )
    if data.archived is not UNSET and data.archived != record.archived:
        record = await (
            store.archive_thread(thread_id) if data.archived else store.unarchive_thread(thread_id)
        )
    return thread_out(record)


@delete("/threads/{thread_id:uuid}", tags=TAGS, summary="Delete a thread")
async def delete_thread(thread_id: UUID, principal: Principal) -> None:
    """Delete the thread and its messages."""
    await principal.store.delete_thread(thread_id)


@post(
    "/threads/{thread_id:uuid}/fork",
    tags=TAGS,
    summary="Fork a thread",
    status_code=201,
    opt=errors(413, 422),
)
async def fork_thread(
    thread_id: UUID, principal: Principal, data: ThreadFork | None = None
) -> ThreadOut:
    """Copy the messages (up to ``up_to_message_id``) into a new thread of the same agent."""
    body = data or ThreadFork()
    store = principal.store
    fork_id = await store.fork_thread(
        thread_id,
        up_to_message_id=body.up_to_message_id,
        user_id=body.user_id,
        metadata=body.metadata,
    )
    return thread_out(await store.get_thread(fork_id))


@post("/threads/{thread_id:uuid}/archive", tags=TAGS, summary="Archive a thread", status_code=200)
async def archive_thread(thread_id: UUID, principal: Principal) -> ThreadOut:
    """Hide the thread from default listings (``archived=true`` lists it); it stays usable."""
    return thread_out(await principal.store.archive_thread(thread_id))


@post(
    "/threads/{thread_id:uuid}/unarchive", tags=TAGS, summary="Unarchive a thread", status_code=200
)
async def unarchive_thread(thread_id: UUID, principal: Principal) -> ThreadOut:
    return thread_out(await principal.store.unarchive_thread(thread_id))


HANDLERS = [
    create_thread,
    list_threads,
    get_thread,
    update_thread,
    delete_thread,
    fork_thread,
    archive_thread,
    unarchive_thread,
]
