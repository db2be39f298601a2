"""``/v1/threads/{thread_id}/messages``: add, list, retrieve, modify and delete messages.

OpenAI's thread shows the conversation only: user messages and assistant messages with
text. Tool results and assistant messages that only call tools are run steps there, so
they are not listed, retrieved or modified here (a 404, as for an unknown id); they
stay in the thread for the model (``/api/v1`` shows them). The assistant messages a run
saved carry its ``run_id`` and ``assistant_id`` (the run's agent, read once per page).

Like OpenAI, messages cannot be added while a run holds the thread (a 400 naming the
run). Deleting keeps the thread's counters exact and refuses what would break the
thread: half of a tool exchange (400), or any message while a run holds it (409).
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from litestar import delete, get, post
from litestar.params import Parameter

from ai_agents.api.auth import Principal
from ai_agents.api.compat import attachments, fields, ids
from ai_agents.api.compat.errors import invalid
from ai_agents.api.compat.lists import envelope, list_query
from ai_agents.api.compat.objects import (
    hidden_metadata_keys,
    load_new_messages,
    message_citations,
    message_object,
    new_message,
)
from ai_agents.api.compat.threads import find_thread
from ai_agents.db.message_edits import is_listed
from ai_agents.errors import NotFoundError, RunStateError, ThreadBusyError
from ai_agents.messages import Message
from ai_agents.store import AgentStore

TAGS = ["openai: messages"]
_MODIFY_FIELDS = ("metadata",)


async def _find_message(
    store: AgentStore, thread_id: str, message_id: str
) -> tuple[Message, UUID | None]:
    """The listed message *message_id* of the thread and its assistant; 404 otherwise."""
    thread = ids.parse_id(ids.THREAD, thread_id)
    ident = ids.parse_id(ids.MESSAGE, message_id)
    try:
        message, agent = await store.get_message(thread, ident)
    except NotFoundError as exc:
        kind = "thread" if exc.kind == "thread" else "message"
        raise NotFoundError(kind, thread_id if kind == "thread" else message_id) from None
    if not is_listed(message):
        raise NotFoundError("message", message_id)
    return message, agent


async def _shown(store: AgentStore, message: Message, agent: UUID | None) -> dict[str, Any]:
    agents = {message.run_id: agent} if message.run_id and agent else None
    citations = await message_citations(store, [message])
    return message_object(message, assistant_ids=agents, citations=citations)


@post("/threads/{thread_id:str}/messages", tags=TAGS, summary="Create a message", status_code=200)
async def create_message(thread_id: str, principal: Principal, data: Any = None) -> dict[str, Any]:
    store = principal.tenant_store
    thread = await find_thread(store, thread_id)
    message = new_message(data if data is not None else {})
    await load_new_messages(principal, [message])
    holder = await store.holding_run(thread.id)
    if holder is not None:
        raise invalid(
            f"Can't add messages to {thread_id} while a run "
            f"{ids.format_id(ids.RUN, holder)} is active."
        )
    (saved,) = await store.add_messages(thread.id, [message])
    await attachments.index(principal, thread.id, [saved])
    return message_object(saved)


def _cursor(value: str | None) -> UUID | None:
    return ids.parse_id(ids.MESSAGE, value) if value else None


@get("/threads/{thread_id:str}/messages", tags=TAGS, summary="List messages")
async def list_messages(
    thread_id: str,
    principal: Principal,
    limit: Annotated[str | None, Parameter(query="limit", required=False)] = None,
    order: Annotated[str | None, Parameter(query="order", required=False)] = None,
    after: Annotated[str | None, Parameter(query="after", required=False)] = None,
    before: Annotated[str | None, Parameter(query="before", required=False)] = None,
    run_id: Annotated[str | None, Parameter(query="run_id", required=False)] = None,
) -> dict[str, Any]:
    query = list_query(limit, order, after, before)
    thread = ids.parse_id(ids.THREAD, thread_id)
    cursors = (_cursor(query.after), _cursor(query.before))
    run = ids.parse_id(ids.RUN, run_id) if run_id else None
    try:
        items, has_more, agents = await principal.tenant_store.page_listed_messages(
            thread,
            limit=query.limit,
            order=query.order,
            after=cursors[0],
            before=cursors[1],
            run_id=run,
        )
    except NotFoundError as exc:
        if exc.kind == "thread":
            raise NotFoundError("thread", thread_id) from None
        name = query.after if exc.ident == cursors[0] else query.before
        raise NotFoundError("message", name) from None
    citations = await message_citations(principal.tenant_store, items)
    return envelope(
        [message_object(m, assistant_ids=agents, citations=citations) for m in items], has_more
    )


@get("/threads/{thread_id:str}/messages/{message_id:str}", tags=TAGS, summary="Retrieve a message")
async def retrieve_message(thread_id: str, message_id: str, principal: Principal) -> dict[str, Any]:
    store = principal.tenant_store
    return await _shown(store, *await _find_message(store, thread_id, message_id))


@post(
    "/threads/{thread_id:str}/messages/{message_id:str}",
    tags=TAGS,
    summary="Modify a message",
    status_code=200,
)
async def modify_message(
    thread_id: str, message_id: str, principal: Principal, data: Any = None
) -> dict[str, Any]:
    store = principal.tenant_store
    message, agent = await _find_message(store, thread_id, message_id)
    if data is not None and not isinstance(data, dict):
        raise invalid("the request body must be a JSON object")
    body = data or {}
    fields.reject_unknown(body, _MODIFY_FIELDS)
    if "metadata" not in body:
        return await _shown(store, message, agent)
    metadata = fields.metadata(body["metadata"])
    try:
        updated = await store.set_message_metadata(
            message.thread_id or ids.parse_id(ids.THREAD, thread_id),
            message.id or ids.parse_id(ids.MESSAGE, message_id),
            dict(metadata),
            keep=hidden_metadata_keys(message),
        )
    except NotFoundError:  # deleted meanwhile
        raise NotFoundError("message", message_id) from None
    return await _shown(store, updated, agent)


@delete(
    "/threads/{thread_id:str}/messages/{message_id:str}",
    tags=TAGS,
    summary="Delete a message",
    status_code=200,
)
async def delete_message(thread_id: str, message_id: str, principal: Principal) -> dict[str, Any]:
    thread = ids.parse_id(ids.THREAD, thread_id)
    ident = ids.parse_id(ids.MESSAGE, message_id)
    try:
        await principal.tenant_store.delete_message(thread, ident)
    except NotFoundError as exc:
        kind = "thread" if exc.kind == "thread" else "message"
        raise NotFoundError(kind, thread_id if kind == "thread" else message_id) from None
    except ThreadBusyError:
        raise RunStateError(
            f"Can't delete messages of {thread_id} while a run is active on it; "
            "wait for the run to finish or cancel it"
        ) from None
    return {"id": message_id, "object": "thread.message.deleted", "deleted": True}


HANDLERS = [create_message, list_messages, retrieve_message, modify_message, delete_message]
