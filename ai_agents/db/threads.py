"""Thread rows: create, read, list (newest first), update, fork, delete."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy import and_, delete, func, insert, literal, or_, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from ai_agents.db.agents import to_record as agent_record
from ai_agents.db.scope import Scope
from ai_agents.db.tables import agents, messages, threads
from ai_agents.errors import NotFoundError
from ai_agents.records import AgentRecord, Page, ThreadRecord, decode_time_cursor, encode_cursor

_FIELDS = tuple(c.name for c in threads.columns)


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
    # Extend the cut over the tool results that immediately follow it.
    rows = (
        await conn.execute(
            select(messages.c.seq, messages.c.role, messages.c.tool_calls)
            .where(messages.c.thread_id == thread.id, messages.c.seq >= up_to_seq)
            .order_by(messages.c.seq)
            .limit(64)
        )
    ).all()
    if not rows:
        return up_to_seq
    cut = rows[0].seq
    if rows[0].role == "assistant" and not rows[0].tool_calls:
        return int(cut)
    for row in rows[1:]:
        if row.role != "tool":
            break
        cut = row.seq
    return int(cut)


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


_THREAD_AND_AGENT = (
    "SELECT "
    + ", ".join(f"t.{c.name}" for c in threads.columns)
    + ", "
    + ", ".join(f"a.{c.name} AS agent__{c.name}" for c in agents.columns)
    + " FROM threads t JOIN agents a ON a.id = t.agent_id"
    " WHERE t.id = $1 AND ($2::text IS NULL OR t.tenant_id = $2::text)"
)


async def get_thread_and_agent(
    conn: AsyncConnection, scope: Scope, thread_id: UUID
) -> tuple[ThreadRecord, AgentRecord]:
    """Both rows in one round trip (the run's first read, on the driver connection)."""
    from ai_agents.db.messages import driver

    row = await (await driver(conn)).fetchrow(_THREAD_AND_AGENT, thread_id, scope.tenant_id)
    if row is None:
        raise NotFoundError("thread", thread_id)
    agent_row = {c.name: row[f"agent__{c.name}"] for c in agents.columns}
    return to_record(row), agent_record(agent_row)  # type: ignore[arg-type]


async def find_turn(conn: AsyncConnection, thread_id: UUID, idempotency_key: str) -> UUID | None:
    """The run id of a turn already saved under this idempotency key, if any."""
    return (
        await conn.execute(
            select(messages.c.run_id).where(
                messages.c.thread_id == thread_id, messages.c.idempotency_key == idempotency_key
            )
        )
    ).scalar_one_or_none()
