"""Message reads and edits for OpenAI's view of a thread (``/v1/threads/{id}/messages``).

OpenAI lists only the conversation: user messages and assistant messages with text.
Tool results and assistant messages that only call tools belong to run steps there, so
:func:`page_listed` filters them in SQL (a page still holds ``limit`` listed messages and
``has_more`` is exact). :func:`is_listed` is the same rule in Python.

Editing a saved message is limited to what keeps a thread consistent:
:func:`set_metadata` changes nothing but the metadata, and :func:`delete_listed` removes
one user or assistant text message (never half of a tool exchange, never while a run
holds the thread) with the thread's ``message_count``/``total_bytes`` and the user's
``user_usage.total_bytes`` corrected in the same transaction. Seqs are not reused: the
thread's ``last_seq`` stays, so cursors of other messages keep their meaning.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any
from uuid import UUID

from sqlalchemy import ColumnElement, and_, delete, func, or_, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from ai_agents.db.scope import Scope
from ai_agents.db.tables import messages, runs, threads, user_usage
from ai_agents.errors import NotFoundError, ThreadBusyError, ValidationError
from ai_agents.messages import Message, ToolCall

#: The statuses of a run that holds its thread (``uq_runs_thread_active``).
HOLDING = ("in_progress", "requires_action", "cancelling")

_COLUMNS = (
    messages.c.id,
    messages.c.thread_id,
    messages.c.seq,
    messages.c.role,
    messages.c.content,
    messages.c.tool_calls,
    messages.c.tool_call_id,
    messages.c.tool_name,
    messages.c.created_at,
    messages.c.token_count,
    messages.c.provider,
    messages.c.model,
    messages.c.input_tokens,
    messages.c.output_tokens,
    messages.c.cost,
    messages.c.metadata,
    messages.c.run_id,
)


def is_listed(message: Message) -> bool:
    """Whether OpenAI's message list shows *message* (the rule of :func:`_listed`)."""
    if message.role == "user":
        return True
    return message.role == "assistant" and (not message.tool_calls or bool(message.content))


def _listed() -> ColumnElement[bool]:
    return or_(
        messages.c.role == "user",
        and_(
            messages.c.role == "assistant",
            or_(
                messages.c.tool_calls.is_(None),
                func.jsonb_array_length(messages.c.tool_calls) == 0,
                func.coalesce(messages.c.content, "") != "",
            ),
        ),
    )


def _to_message(row: RowMapping) -> Message:
    calls = row["tool_calls"]
    return Message(
        id=row["id"],
        thread_id=row["thread_id"],
        seq=row["seq"],
        role=row["role"],
        content=row["content"],
        tool_calls=[ToolCall.from_json(c) for c in calls] if calls else [],
        tool_call_id=row["tool_call_id"],
        tool_name=row["tool_name"],
        created_at=row["created_at"],
        token_count=row["token_count"],
        provider=row["provider"],
        model=row["model"],
        input_tokens=row["input_tokens"],
        output_tokens=row["output_tokens"],
        cost=row["cost"],
        metadata=dict(row["metadata"] or {}),
        run_id=row["run_id"],
    )


async def _cursor_seqs(
    conn: AsyncConnection, scope: Scope, thread_id: UUID, after: UUID | None, before: UUID | None
) -> tuple[int | None, int | None]:
    """The seqs of the cursor messages, checking the thread is visible (one round trip).
    A cursor that is not a message of this thread is a :class:`NotFoundError`."""

    def seq_of(ident: UUID | None) -> Any:
        return (
            select(messages.c.seq)
            .where(messages.c.thread_id == thread_id, messages.c.id == ident)
            .scalar_subquery()
        )

    row = (
        await conn.execute(
            select(
                threads.c.id, seq_of(after).label("after"), seq_of(before).label("before")
            ).where(threads.c.id == thread_id, scope.visible(threads.c.tenant_id))
        )
    ).first()
    if row is None:
        raise NotFoundError("thread", thread_id)
    for ident, seq in ((after, row.after), (before, row.before)):
        if ident is not None and seq is None:
            raise NotFoundError("message", ident)
    return row.after, row.before


async def page_listed(
    conn: AsyncConnection,
    scope: Scope,
    thread_id: UUID,
    *,
    limit: int,
    order: str,
    after: UUID | None = None,
    before: UUID | None = None,
    run_id: UUID | None = None,
) -> tuple[list[Message], bool]:
    """The listed messages of the thread by seq in *order*, strictly after and/or before
    the messages *after*/*before* (OpenAI's cursors, in the list's order), only those of
    *run_id* when given; and whether more listed messages follow the page.

    With only *before*, the page is the *limit* messages closest to it, in *order*.
    """
    after_seq, before_seq = await _cursor_seqs(conn, scope, thread_id, after, before)
    descending = order == "desc"
    query = select(*_COLUMNS).where(messages.c.thread_id == thread_id, _listed())
    if after_seq is not None:  # "after" in a descending list is an earlier seq
        query = query.where(
            messages.c.seq < after_seq if descending else messages.c.seq > after_seq
        )
    if before_seq is not None:
        query = query.where(
            messages.c.seq > before_seq if descending else messages.c.seq < before_seq
        )
    if run_id is not None:
        query = query.where(messages.c.run_id == run_id)
    backwards = before is not None and after is None
    scan_descending = descending != backwards
    query = query.order_by(messages.c.seq.desc() if scan_descending else messages.c.seq.asc())
    rows = (await conn.execute(query.limit(limit + 1))).mappings().all()
    items = [_to_message(r) for r in rows[:limit]]
    if backwards:
        items.reverse()
    return items, len(rows) > limit


async def run_agents(
    conn: AsyncConnection, scope: Scope, run_ids: Collection[UUID]
) -> dict[UUID, UUID]:
    """The agent of each run (by run id), in one statement for a whole page."""
    if not run_ids:
        return {}
    rows = await conn.execute(
        select(runs.c.id, runs.c.agent_id).where(
            runs.c.id.in_(list(run_ids)), scope.visible(runs.c.tenant_id)
        )
    )
    return {r.id: r.agent_id for r in rows}


async def holding_run(conn: AsyncConnection, scope: Scope, thread_id: UUID) -> UUID | None:
    """The run holding the thread (in progress, waiting for tool outputs, cancelling),
    if any; a run whose lease has passed (its process died) holds nothing. A thread
    that is not visible is a :class:`NotFoundError`."""
    holder = (
        select(runs.c.id)
        .where(
            runs.c.thread_id == threads.c.id,
            runs.c.status.in_(HOLDING),
            or_(runs.c.lease_expires_at.is_(None), runs.c.lease_expires_at > func.now()),
        )
        .limit(1)
        .scalar_subquery()
    )
    row = (
        await conn.execute(
            select(threads.c.id, holder.label("run_id")).where(
                threads.c.id == thread_id, scope.visible(threads.c.tenant_id)
            )
        )
    ).first()
    if row is None:
        raise NotFoundError("thread", thread_id)
    return row.run_id  # type: ignore[no-any-return]


async def get_message(
    conn: AsyncConnection,
    scope: Scope,
    thread_id: UUID,
    message_id: UUID,
    *,
    for_update: bool = False,
) -> Message:
    """One message of the thread; :class:`NotFoundError` for the thread (not visible)
    or the message (not one of this thread)."""
    query = (
        select(*_COLUMNS, threads.c.id.label("visible_thread"))
        .select_from(threads)
        .outerjoin(
            messages, and_(messages.c.thread_id == threads.c.id, messages.c.id == message_id)
        )
        .where(threads.c.id == thread_id, scope.visible(threads.c.tenant_id))
    )
    if for_update:  # the thread row: writers of a thread serialize on it
        query = query.with_for_update(of=threads)
    row = (await conn.execute(query)).mappings().first()
    if row is None:
        raise NotFoundError("thread", thread_id)
    if row["id"] is None:
        raise NotFoundError("message", message_id)
    return _to_message(row)


async def set_metadata(
    conn: AsyncConnection,
    scope: Scope,
    thread_id: UUID,
    message_id: UUID,
    metadata: Mapping[str, Any],
    keep: Collection[str] = (),
) -> Message:
    """Replace the message's metadata with *metadata*, keeping the current values of the
    keys in *keep*; nothing else of the message changes."""
    current = await get_message(conn, scope, thread_id, message_id, for_update=True)
    kept = {k: v for k, v in current.metadata.items() if k in keep}
    clash = sorted(set(kept) & set(metadata))
    if clash:
        raise ValidationError(
            f"metadata key {clash[0]!r} is reserved on this message", details={"field": "metadata"}
        )
    values = {**kept, **metadata}
    await conn.execute(update(messages).where(messages.c.id == message_id).values(metadata=values))
    current.metadata = values
    return current


def _refuse_unlisted(message: Message) -> None:
    if message.role == "tool" or (message.role == "assistant" and message.tool_calls):
        raise ValidationError(
            "this message is part of a tool exchange (a tool call or its result); it cannot "
            "be deleted on its own without leaving a call unanswered",
            details={"field": "message_id"},
        )
    if not is_listed(message):
        raise ValidationError(
            f"a {message.role} message cannot be deleted here: only user and assistant text "
            "messages can",
            details={"field": "message_id"},
        )


async def delete_listed(
    conn: AsyncConnection, scope: Scope, thread_id: UUID, message_id: UUID
) -> Message:
    """Delete one user or assistant text message, with the thread's counters and its
    user's byte total corrected in the same transaction (the caller's). A message of a
    tool exchange is a :class:`ValidationError`; a run holding the thread is a
    :class:`ThreadBusyError` (the thread row is locked first, as appends lock it)."""
    message = await get_message(conn, scope, thread_id, message_id, for_update=True)
    _refuse_unlisted(message)
    if await holding_run(conn, scope, thread_id) is not None:
        raise ThreadBusyError(thread_id)
    size = (
        await conn.execute(
            delete(messages).where(messages.c.id == message_id).returning(messages.c.byte_size)
        )
    ).scalar_one()
    thread = (
        await conn.execute(
            update(threads)
            .where(threads.c.id == thread_id)
            .values(
                message_count=threads.c.message_count - 1,
                total_bytes=threads.c.total_bytes - size,
                updated_at=func.now(),
            )
            .returning(threads.c.tenant_id, threads.c.user_id)
        )
    ).one()
    await conn.execute(
        update(user_usage)
        .where(
            user_usage.c.tenant_id == thread.tenant_id,
            user_usage.c.user_id == (thread.user_id or ""),
        )
        .values(total_bytes=user_usage.c.total_bytes - size)
    )
    return message


def run_ids_of(items: Sequence[Message]) -> set[UUID]:
    """The runs of *items* (for :func:`run_agents`)."""
    return {m.run_id for m in items if m.run_id is not None}
