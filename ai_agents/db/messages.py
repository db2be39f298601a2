"""Message rows: append (with exact counters and size limits), page, last N, first M.

Appending is one transaction: the ``UPDATE threads ... RETURNING last_seq`` both
allocates the seq range and locks the thread row, so concurrent writers get gap-free,
duplicate-free seqs and exact ``message_count``/``total_bytes``. The per-user byte
total is kept in ``user_usage`` in the same transaction. A write over a limit raises
:class:`LimitExceeded` before anything is committed.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal
from uuid import UUID

from sqlalchemy import (
    BigInteger,
    Float,
    Text,
    bindparam,
    func,
    insert,
    literal,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from ai_agents.db.scope import Scope
from ai_agents.db.tables import messages, tenants, threads, user_usage
from ai_agents.errors import LimitExceeded, NotFoundError, ValidationError
from ai_agents.messages import ROLES, Message, ToolCall
from ai_agents.records import Page

Order = Literal["asc", "desc"]

_INSERT_RETURNING = insert(messages).returning(
    messages.c.id, messages.c.created_at, sort_by_parameter_order=True
)


@dataclass(frozen=True, slots=True)
class SizeLimits:
    thread_bytes: int
    user_bytes: int
    tenant_bytes: int | None = None


_MESSAGE_COLUMNS = (
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
)


def to_message(row: Row[Any]) -> Message:
    return Message(
        id=row.id,
        thread_id=row.thread_id,
        seq=row.seq,
        role=row.role,
        content=row.content,
        tool_calls=[ToolCall.from_json(c) for c in row.tool_calls or ()],
        tool_call_id=row.tool_call_id,
        tool_name=row.tool_name,
        created_at=row.created_at,
        token_count=row.token_count,
        provider=row.provider,
        model=row.model,
        input_tokens=row.input_tokens,
        output_tokens=row.output_tokens,
        cost=row.cost,
        metadata=dict(row.metadata or {}),
    )


def validate_message(message: Message) -> None:
    if message.role not in ROLES:
        raise ValidationError(
            f"invalid message role {message.role!r}: expected one of {', '.join(ROLES)}",
            details={"field": "role"},
        )
    if message.content is not None and not isinstance(message.content, str):
        raise ValidationError("message content must be a string", details={"field": "content"})
    if message.role == "tool" and not message.tool_call_id:
        raise ValidationError(
            "a tool message needs the tool_call_id it answers", details={"field": "tool_call_id"}
        )
    if message.tool_calls and message.role != "assistant":
        raise ValidationError(
            "only assistant messages carry tool_calls", details={"field": "tool_calls"}
        )
    if message.role in ("user", "system") and not message.content:
        raise ValidationError(
            f"a {message.role} message needs non-empty content", details={"field": "content"}
        )


async def append(
    conn: AsyncConnection,
    scope: Scope,
    thread_id: UUID,
    batch: Sequence[Message],
    limits: SizeLimits,
    *,
    run_id: UUID | None = None,
    idempotency_key: str | None = None,
) -> list[Message]:
    """Append *batch* in order; must run inside a transaction (the caller's ``begin()``)."""
    for message in batch:
        validate_message(message)
    sizes = [m.byte_size() for m in batch]
    added = sum(sizes)
    n = len(batch)
    in_tokens = sum(m.input_tokens or 0 for m in batch)
    out_tokens = sum(m.output_tokens or 0 for m in batch)
    cost = sum(m.cost or 0.0 for m in batch)
    # Parameter names must not collide with column names (UPDATE would SET them).
    params = {
        "p_thread": thread_id,
        "p_tenant": scope.tenant_id,
        "p_n": n,
        "p_added": added,
        "p_in": in_tokens,
        "p_out": out_tokens,
        "p_cost": cost,
    }
    row = (await conn.execute(_count_turn_statement(scope.is_admin), params)).first()
    if row is None:
        raise NotFoundError("thread", thread_id)
    if row.total_bytes > limits.thread_bytes:
        raise LimitExceeded("thread", limits.thread_bytes, row.total_bytes - added, added)
    if row.user_id and row.user_total > limits.user_bytes:
        raise LimitExceeded("user", limits.user_bytes, row.user_total - added, added)
    if limits.tenant_bytes is not None and added > 0:
        await _check_tenant(conn, row.tenant_id, added, limits.tenant_bytes)

    first_seq = row.last_seq - n + 1
    values = [
        {
            "thread_id": thread_id,
            "seq": first_seq + i,
            "role": m.role,
            "content": m.content,
            "tool_calls": [c.to_json() for c in m.tool_calls] if m.tool_calls else None,
            "tool_call_id": m.tool_call_id,
            "tool_name": m.tool_name,
            "token_count": m.token_count,
            "byte_size": sizes[i],
            "provider": m.provider,
            "model": m.model,
            "input_tokens": m.input_tokens,
            "output_tokens": m.output_tokens,
            "cost": m.cost,
            "run_id": run_id,
            "idempotency_key": idempotency_key if i == 0 else None,
            "metadata": m.metadata or {},
        }
        for i, m in enumerate(batch)
    ]
    # One cached statement for any batch size (SQLAlchemy batches the rows into a
    # single INSERT ... VALUES ... RETURNING, in parameter order).
    rows = (await conn.execute(_INSERT_RETURNING, values)).all()
    saved = []
    for m, (ident, created_at), seq in zip(
        batch, rows, range(first_seq, first_seq + n), strict=True
    ):
        saved.append(
            Message(
                role=m.role,
                content=m.content,
                tool_calls=list(m.tool_calls),
                tool_call_id=m.tool_call_id,
                tool_name=m.tool_name,
                metadata=dict(m.metadata),
                id=ident,
                thread_id=thread_id,
                seq=seq,
                created_at=created_at,
                token_count=m.token_count,
                provider=m.provider,
                model=m.model,
                input_tokens=m.input_tokens,
                output_tokens=m.output_tokens,
                cost=m.cost,
            )
        )
    return saved


@functools.cache
def _count_turn_statement(admin: bool) -> Any:
    """Allocate seqs and bump the thread's and the user's counters in one statement.

    The thread row lock (taken by the UPDATE) serializes writers of the thread; the
    user_usage upsert keeps the per-user byte and token totals exact. Built once (with
    bind parameters) so SQLAlchemy compiles it once per process.
    """
    where = [threads.c.id == bindparam("p_thread")]
    if not admin:
        where.append(threads.c.tenant_id == bindparam("p_tenant"))
    bumped = (
        update(threads)
        .where(*where)
        .values(
            last_seq=threads.c.last_seq + bindparam("p_n", type_=BigInteger),
            message_count=threads.c.message_count + bindparam("p_n", type_=BigInteger),
            total_bytes=threads.c.total_bytes + bindparam("p_added", type_=BigInteger),
            input_tokens=threads.c.input_tokens + bindparam("p_in", type_=BigInteger),
            output_tokens=threads.c.output_tokens + bindparam("p_out", type_=BigInteger),
            cost=threads.c.cost + bindparam("p_cost", type_=Float),
            last_used_at=func.now(),
        )
        .returning(
            threads.c.last_seq, threads.c.total_bytes, threads.c.tenant_id, threads.c.user_id
        )
        .cte("bumped")
    )
    charged = _charge_statement(
        select(
            bumped.c.tenant_id,
            func.coalesce(bumped.c.user_id, ""),
            bindparam("p_added", type_=BigInteger),
            bindparam("p_in", type_=BigInteger),
            bindparam("p_out", type_=BigInteger),
            bindparam("p_cost", type_=Float),
        )
    ).cte("charged")
    return select(
        bumped.c.last_seq,
        bumped.c.total_bytes,
        bumped.c.tenant_id,
        bumped.c.user_id,
        charged.c.total_bytes.label("user_total"),
    ).select_from(bumped.join(charged, true()))


def _charge_statement(source: Any) -> Any:
    stmt = pg_insert(user_usage).from_select(
        ["tenant_id", "user_id", "total_bytes", "input_tokens", "output_tokens", "cost"], source
    )
    return stmt.on_conflict_do_update(
        index_elements=[user_usage.c.tenant_id, user_usage.c.user_id],
        set_={
            "total_bytes": user_usage.c.total_bytes + stmt.excluded.total_bytes,
            "input_tokens": user_usage.c.input_tokens + stmt.excluded.input_tokens,
            "output_tokens": user_usage.c.output_tokens + stmt.excluded.output_tokens,
            "cost": user_usage.c.cost + stmt.excluded.cost,
        },
    ).returning(user_usage.c.total_bytes)


async def charge_user(
    conn: AsyncConnection,
    tenant_id: str,
    user_id: str | None,
    added_bytes: int,
    limits: SizeLimits,
) -> None:
    """Add bytes copied into a thread (a fork) to the user's total; enforce the limits."""
    source = select(
        literal(tenant_id, Text),
        literal(user_id or "", Text),
        literal(added_bytes, BigInteger),
        literal(0, BigInteger),
        literal(0, BigInteger),
        literal(0.0, Float),
    )
    user_total = (await conn.execute(_charge_statement(source))).scalar_one()
    if user_id and user_total > limits.user_bytes:
        raise LimitExceeded("user", limits.user_bytes, user_total - added_bytes, added_bytes)
    if limits.tenant_bytes is not None and added_bytes > 0:
        await _check_tenant(conn, tenant_id, added_bytes, limits.tenant_bytes)


async def _check_tenant(conn: AsyncConnection, tenant_id: str, added: int, limit: int) -> None:
    """Tenants with a quota serialize their writes on the tenant row (exact total)."""
    await conn.execute(select(tenants.c.id).where(tenants.c.id == tenant_id).with_for_update())
    total = (
        await conn.execute(
            select(func.coalesce(func.sum(user_usage.c.total_bytes), 0)).where(
                user_usage.c.tenant_id == tenant_id
            )
        )
    ).scalar_one()
    if total > limit:
        raise LimitExceeded("tenant", limit, int(total) - added, added)


async def page(
    conn: AsyncConnection,
    thread_id: UUID,
    *,
    limit: int,
    after: int | None,
    before: int | None,
    order: Order,
) -> Page[Message]:
    """Messages by seq; ``after``/``before`` are exclusive seq bounds (stable cursors)."""
    query = select(*_MESSAGE_COLUMNS).where(messages.c.thread_id == thread_id)
    if after is not None:
        query = query.where(messages.c.seq > after)
    if before is not None:
        query = query.where(messages.c.seq < before)
    key = messages.c.seq.asc() if order == "asc" else messages.c.seq.desc()
    rows = (await conn.execute(query.order_by(key).limit(limit + 1))).all()
    items = [to_message(r) for r in rows[:limit]]
    next_cursor = str(items[-1].seq) if len(rows) > limit and items else None
    return Page(items, next_cursor)


async def last_n(conn: AsyncConnection, thread_id: UUID, n: int) -> list[Message]:
    """The last *n* messages in chronological order: one backward index range scan."""
    rows = (
        await conn.execute(
            select(*_MESSAGE_COLUMNS)
            .where(messages.c.thread_id == thread_id)
            .order_by(messages.c.seq.desc())
            .limit(n)
        )
    ).all()
    return [to_message(r) for r in reversed(rows)]


async def first_m(conn: AsyncConnection, thread_id: UUID, m: int) -> list[Message]:
    rows = (
        await conn.execute(
            select(*_MESSAGE_COLUMNS)
            .where(messages.c.thread_id == thread_id)
            .order_by(messages.c.seq.asc())
            .limit(m)
        )
    ).all()
    return [to_message(r) for r in rows]


async def seq_of(conn: AsyncConnection, thread_id: UUID, message_id: UUID) -> int:
    seq = (
        await conn.execute(
            select(messages.c.seq).where(
                messages.c.thread_id == thread_id, messages.c.id == message_id
            )
        )
    ).scalar_one_or_none()
    if seq is None:
        raise NotFoundError("message", message_id)
    return int(seq)


async def by_run(conn: AsyncConnection, thread_id: UUID, run_id: UUID) -> list[Message]:
    rows = (
        await conn.execute(
            select(*_MESSAGE_COLUMNS)
            .where(messages.c.thread_id == thread_id, messages.c.run_id == run_id)
            .order_by(messages.c.seq)
        )
    ).all()
    return [to_message(r) for r in rows]


async def between(
    conn: AsyncConnection, thread_id: UUID, after_seq: int, before_seq: int, limit: int
) -> list[Message]:
    """Messages with after_seq < seq < before_seq, oldest first (at most *limit*)."""
    rows = (
        await conn.execute(
            select(*_MESSAGE_COLUMNS)
            .where(
                messages.c.thread_id == thread_id,
                messages.c.seq > after_seq,
                messages.c.seq < before_seq,
            )
            .order_by(messages.c.seq)
            .limit(limit)
        )
    ).all()
    return [to_message(r) for r in rows]
