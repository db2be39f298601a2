"""``/v1/conversations`` and their items: OpenAI's Conversations, stored as threads.

A conversation **is** a thread: ``conv_<hex>`` and ``thread_<hex>`` name the same one,
so a conversation started here is readable as a thread (``/v1/threads``, ``/api/v1``)
and a ``/v1`` thread can be passed as ``conversation`` to ``/v1/responses``. Its items
are the thread's messages (:mod:`api.compat.response_items`): messages, function calls
and their outputs, in thread order.

Adding items while a response is in progress on the conversation is a 400, as for
thread messages. Deleting an item removes its message; the items of a tool exchange
cannot be deleted one by one (a 400), nor anything while a response runs (409).
Deleting a conversation deletes the thread with its messages.
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from litestar import delete, get, post
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncConnection

from ai_agents.api.auth import Principal
from ai_agents.api.compat import fields, ids
from ai_agents.api.compat.errors import invalid
from ai_agents.api.compat.lists import list_query
from ai_agents.api.compat.objects import public_metadata
from ai_agents.api.compat.response_items import (
    item_list,
    item_message_id,
    message_items,
    parse_input,
)
from ai_agents.api.compat.response_request import Include, IncludeBrackets, check_include
from ai_agents.api.compat.stamps import unix
from ai_agents.api.compat.threads import new_thread
from ai_agents.errors import NotFoundError, RunStateError, ThreadBusyError
from ai_agents.messages import Message
from ai_agents.records import ThreadRecord
from ai_agents.store import AgentStore

TAGS = ["openai: conversations"]
MAX_NEW_ITEMS = 20

Limit = Annotated[str | None, Parameter(query="limit", required=False)]
Order = Annotated[str | None, Parameter(query="order", required=False)]
After = Annotated[str | None, Parameter(query="after", required=False)]
Before = Annotated[str | None, Parameter(query="before", required=False)]


def conversation_object(thread: ThreadRecord) -> dict[str, Any]:
    return {
        "id": ids.format_id(ids.CONVERSATION, thread.id),
        "object": "conversation",
        "created_at": unix(thread.created_at),
        "metadata": public_metadata(thread.metadata),
    }


async def find_conversation(store: AgentStore, conversation_id: str) -> ThreadRecord:
    ident = ids.parse_id(ids.CONVERSATION, conversation_id)
    try:
        return await store.get_thread(ident)
    except NotFoundError:
        raise NotFoundError("conversation", conversation_id) from None


def _body(data: Any, known: tuple[str, ...]) -> dict[str, Any]:
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise invalid("the request body must be a JSON object")
    fields.reject_unknown(data, known)
    return data


def _items(value: Any, param: str = "items") -> list[Message]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise invalid(f"{param} must be an array of items", param)
    if len(value) > MAX_NEW_ITEMS:
        raise invalid(f"{param} may have at most {MAX_NEW_ITEMS} items", param)
    parsed = parse_input(value, param)
    orphans = [c for c in parsed.outputs if c not in parsed.calls]
    if orphans:
        raise invalid(
            f"No tool call found for function call output with call_id {orphans[0]}.", param
        )
    return parsed.messages


@post("/conversations", tags=TAGS, summary="Create a conversation", status_code=200)
async def create_conversation(principal: Principal, data: Any = None) -> dict[str, Any]:
    body = _body(data, ("items", "metadata"))
    metadata = fields.metadata(body.get("metadata"))
    messages = _items(body.get("items"))
    store = principal.tenant_store
    thread = await new_thread(store, metadata, messages)
    return conversation_object(await store.get_thread(thread))


@get("/conversations/{conversation_id:str}", tags=TAGS, summary="Retrieve a conversation")
async def retrieve_conversation(conversation_id: str, principal: Principal) -> dict[str, Any]:
    return conversation_object(await find_conversation(principal.tenant_store, conversation_id))


@post(
    "/conversations/{conversation_id:str}",
    tags=TAGS,
    summary="Update a conversation",
    status_code=200,
)
async def update_conversation(
    conversation_id: str, principal: Principal, data: Any = None
) -> dict[str, Any]:
    store = principal.tenant_store
    thread = await find_conversation(store, conversation_id)
    body = _body(data, ("metadata",))
    if "metadata" not in body:
        raise invalid("you must provide a metadata parameter", "metadata")
    given = fields.metadata(body["metadata"])

    async def merged(_conn: AsyncConnection, current: dict[str, Any]) -> dict[str, Any]:
        # With the row locked: pairs /v1 does not show, written meanwhile too, are kept.
        shown = public_metadata(current)
        return {**{k: v for k, v in current.items() if k not in shown}, **given}

    return conversation_object(await store.change_thread_metadata(thread.id, merged))


@delete(
    "/conversations/{conversation_id:str}",
    tags=TAGS,
    summary="Delete a conversation",
    status_code=200,
)
async def delete_conversation(conversation_id: str, principal: Principal) -> dict[str, Any]:
    store = principal.tenant_store
    thread = await find_conversation(store, conversation_id)
    try:
        await store.delete_thread(thread.id)
    except NotFoundError:
        raise NotFoundError("conversation", conversation_id) from None
    return {"id": conversation_id, "object": "conversation.deleted", "deleted": True}


# --- items --------------------------------------------------------------------------------


async def _seq(store: AgentStore, thread: UUID, item_id: str | None) -> int | None:
    """The seq of the message behind the cursor item *item_id*."""
    if item_id is None:
        return None
    try:
        message, _agent = await store.get_message(thread, item_message_id(item_id))
    except NotFoundError:
        raise NotFoundError("item", item_id) from None
    return message.seq


@get("/conversations/{conversation_id:str}/items", tags=TAGS, summary="List items")
async def list_items(
    conversation_id: str,
    principal: Principal,
    limit: Limit = None,
    order: Order = None,
    after: After = None,
    before: Before = None,
    include: Include = None,
    include_brackets: IncludeBrackets = None,
) -> dict[str, Any]:
    """A page holds up to ``limit`` messages; an assistant message that called tools
    shows as its text and its calls, so a page may hold a few more items."""
    check_include(include, include_brackets)
    store = principal.tenant_store
    query = list_query(limit, order, after, before)
    thread = await find_conversation(store, conversation_id)
    page = await store.list_messages(
        thread.id,
        limit=query.limit,
        after=await _seq(store, thread.id, query.after),
        before=await _seq(store, thread.id, query.before),
        order=query.order,
    )
    data: list[dict[str, Any]] = []
    for message in page.items:
        items = message_items(message)
        data.extend(items if query.order == "asc" else reversed(items))
    return item_list(data, page.next_cursor is not None)


@post(
    "/conversations/{conversation_id:str}/items",
    tags=TAGS,
    summary="Create items",
    status_code=200,
)
async def create_items(
    conversation_id: str,
    principal: Principal,
    data: Any = None,
    include: Include = None,
    include_brackets: IncludeBrackets = None,
) -> dict[str, Any]:
    check_include(include, include_brackets)
    store = principal.tenant_store
    thread = await find_conversation(store, conversation_id)
    body = _body(data, ("items",))
    messages = _items(body.get("items"))
    if not messages:
        raise invalid("items must hold at least one item", "items")
    holder = await store.holding_run(thread.id)
    if holder is not None:
        raise invalid(
            f"Can't add items to {conversation_id} while a response "
            f"{ids.format_id(ids.RESPONSE, holder)} is in progress."
        )
    saved = await store.add_messages(thread.id, messages)
    return item_list([item for m in saved for item in message_items(m)], False)


async def _find_item(
    store: AgentStore, conversation_id: str, item_id: str
) -> tuple[ThreadRecord, Message, dict[str, Any]]:
    thread = await find_conversation(store, conversation_id)
    try:
        message, _agent = await store.get_message(thread.id, item_message_id(item_id))
    except NotFoundError:
        raise NotFoundError("item", item_id) from None
    for item in message_items(message):
        if item["id"] == item_id:
            return thread, message, item
    raise NotFoundError("item", item_id)


@get(
    "/conversations/{conversation_id:str}/items/{item_id:str}",
    tags=TAGS,
    summary="Retrieve an item",
)
async def retrieve_item(
    conversation_id: str,
    item_id: str,
    principal: Principal,
    include: Include = None,
    include_brackets: IncludeBrackets = None,
) -> dict[str, Any]:
    check_include(include, include_brackets)
    return (await _find_item(principal.tenant_store, conversation_id, item_id))[2]


@delete(
    "/conversations/{conversation_id:str}/items/{item_id:str}",
    tags=TAGS,
    summary="Delete an item",
    status_code=200,
)
async def delete_item(conversation_id: str, item_id: str, principal: Principal) -> dict[str, Any]:
    store = principal.tenant_store
    thread, message, _item = await _find_item(store, conversation_id, item_id)
    assert message.id is not None
    try:
        await store.delete_message(thread.id, message.id)
    except NotFoundError:
        raise NotFoundError("item", item_id) from None
    except ThreadBusyError:
        raise RunStateError(
            f"Can't delete items of {conversation_id} while a response is in progress on it"
        ) from None
    return conversation_object(await store.get_thread(thread.id))


HANDLERS = [
    create_conversation,
    retrieve_conversation,
    update_conversation,
    delete_conversation,
    list_items,
    create_items,
    retrieve_item,
    delete_item,
]
