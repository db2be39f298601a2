"""Thread rows: create, read, list (newest first), update, fork, delete."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy import and_, delete, func, insert, literal, or_, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from ai_agents.db.scope import Scope
from ai_agents.db.tables import THREAD_RECORD_COLUMNS, messages, threads
from ai_agents.errors import NotFoundError
from ai_agents.records import Page, ThreadRecord, decode_time_cursor, encode_cursor

_FIELDS = tuple(c.name for c in THREAD_RECORD_COLUMNS)


def to_record(row: RowMapping) -> ThreadRecord:
    values = {name: row[name] for name in _FIELDS}
    values["provider_state"] = dict(values["provider_state"] or {})
    values["memory_state"] = dict(values["memory_state"] or {})
    values["metadata"] = dict(values["metadata"] or {})
    return ThreadRecord(**values)


async def insert_thread(conn: AsyncConnection, values: dict[str, Any]) -> ThreadRecord:
    row = (await conn.execute(insert(threads).values(**values).returning(threads))).mappings().one()
    return to_record(row)


async def get_thread(
    conn: AsyncConnection, scope: Scope, thread_id: UUID, *, for_update: bool = False
) -> ThreadRecord:
    query = select(threads).where(threads.c.id == thread_id, scope.visible(threads.c.tenant_id))
    if for_update:
        query = query.with_for_update()
    row = (await conn.execute(query)).mappings().first()
    if row is None:
        raise NotFoundError("thread", thread_id)
    return to_record(row)


async def update_thread(
    conn: AsyncConnection, scope: Scope, thread_id: UUID, values: dict[str, Any]
) -> ThreadRecord:
    row = (
        (
            await conn.execute(
                update(threads)
                .where(threads.c.id == thread_id, scope.visible(threads.c.tenant_id))
                .values(**values)
                .returning(threads)
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        raise NotFoundError("thread", thread_id)
    return to_record(row)


async def delete_thread(conn: AsyncConnection, scope: Scope, thread_id: UUID) -> ThreadRecord:
    row = (
        (
            await conn.execute(
                delete(threads)
                .where(threads.c.id == thread_id, scope.visible(threads.c.tenant_id))
                .returning(threads)
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        raise NotFoundError("thread", thread_id)
    return to_record(row)


async def list_threads(
    conn: AsyncConnection,
    scope: Scope,
    *,
    agent_id: UUID | None,
    user_id: str | None,
    archived: bool | None,
    limit: int,
    cursor: str | None,
) -> Page[ThreadRecord]:
    """Most recently used first, keyset-paginated on (last_used_at, id) descending."""
    query = select(threads).where(scope.visible(threads.c.tenant_id))
    if agent_id is not None:
        query = query.where(threads.c.agent_id == agent_id)
    if user_id is not None:
        query = query.where(threads.c.user_id == user_id)
    if archived is not None:
        query = query.where(threads.c.archived.is_(archived))
    if cursor:
        used_at, ident = decode_time_cursor(cursor)
        query = query.where(
            or_(
                threads.c.last_used_at < used_at,
                and_(threads.c.last_used_at == used_at, threads.c.id < ident),
            )
        )
    query = query.order_by(threads.c.last_used_at.desc(), threads.c.id.desc()).limit(limit + 1)
    rows = (await conn.execute(query)).mappings().all()
    items = [to_record(r) for r in rows[:limit]]
    next_cursor = (
        encode_cursor(items[-1].last_used_at, items[-1].id) if len(rows) > limit and items else None
    )
    return Page(items, next_cursor)


async def fork_cut_seq(conn: AsyncConnection, thread: ThreadRecord, up_to_seq: int | None) -> int:
    """The last seq a fork copies: never ends between a tool call and its results."""
    if up_to_seq is None:
        return thread.last_seq
    first = (
        await conn.execute(
            select(messages.c.seq, messages.c.role, messages.c.tool_calls)
            .where(messages.c.thread_id == thread.id, messages.c.seq >= up_to_seq)
            .order_by(messages.c.seq)
            .limit(1)
        )
    ).first()
    if first is None:
        return up_to_seq
    if first.role == "assistant" and not first.tool_calls:
        return int(first.seq)
    # Extend the cut over every tool result that immediately follows it (however many
    # calls the message made): up to the message before the next one that is not a result.
    in_thread = messages.c.thread_id == thread.id
    next_other = (
        select(func.min(messages.c.seq))
        .where(in_thread, messages.c.seq > first.seq, messages.c.role != "tool")
        .scalar_subquery()
    )
    last = (
        await conn.execute(
            select(func.max(messages.c.seq)).where(
                in_thread,
                messages.c.seq >= first.seq,
                or_(next_other.is_(None), messages.c.seq < next_other),
            )
        )
    ).scalar_one()
    return int(last)


async def copy_messages(
    conn: AsyncConnection, source_id: UUID, target_id: UUID, up_to_seq: int
) -> tuple[int, int, int]:
    """Copy messages 1..up_to_seq; return (count, bytes, last_seq) of the copy."""
    cols = [c for c in messages.columns if c.name not in ("id", "thread_id", "idempotency_key")]
    names = [c.name for c in cols]
    await conn.execute(
        insert(messages).from_select(
            ["thread_id", *names],
            select(literal(target_id).label("thread_id"), *cols).where(
                messages.c.thread_id == source_id, messages.c.seq <= up_to_seq
            ),
        )
    )
    row = (
        await conn.execute(
            select(
                func.count(),
                func.coalesce(func.sum(messages.c.byte_size), 0),
                func.coalesce(func.max(messages.c.seq), 0),
            ).where(messages.c.thread_id == target_id)
        )
    ).one()
    return int(row[0]), int(row[1]), int(row[2])
