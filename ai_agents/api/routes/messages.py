"""``/threads/{id}/messages``: read (seq cursors) and append messages."""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from litestar import get, post

from ai_agents.api.auth import Principal
from ai_agents.api.openapi import errors
from ai_agents.api.routes._params import Limit, Seq
from ai_agents.api.schemas import MessageCreate, MessageOut, MessagePage, message_out
from ai_agents.messages import ToolCall

TAGS = ["messages"]


@get("/threads/{thread_id:uuid}/messages", tags=TAGS, summary="List messages")
async def list_messages(
    thread_id: UUID,
    principal: Principal,
    limit: Limit = 50,
    after: Seq = None,
    before: Seq = None,
    order: Literal["asc", "desc"] = "asc",
) -> MessagePage:
    """Messages by ``seq``; ``after``/``before`` are exclusive seq bounds, stable under appends.

    ``next_cursor`` is the last seq of the page: pass it as ``after`` (``order=asc``) or
    as ``before`` (``order=desc``).
    """
    page = await principal.store.list_messages(
        thread_id, limit=limit, after=after, before=before, order=order
    )
    return MessagePage(
        data=[message_out(m) for m in page.items],
        next_cursor=page.next_cursor,
        has_more=page.has_more,
    )


@post("/threads/{thread_id:uuid}/messages", tags=TAGS, summary="Add a message", opt=errors(422))
async def add_message(thread_id: UUID, data: MessageCreate, principal: Principal) -> MessageOut:
    """Append one message without running the agent (e.g. importing a conversation)."""
    message = await principal.store.add_message(
        thread_id,
        data.role,
        data.content,
        tool_calls=[ToolCall(id=c.id, name=c.name, arguments=c.arguments) for c in data.tool_calls],
        tool_call_id=data.tool_call_id,
        tool_name=data.tool_name,
        metadata=data.metadata,
    )
    return message_out(message)


HANDLERS = [list_messages, add_message]
