"""Message rows: append (with exact counters and size limits), page, last N, first M.

Appending is one transaction: the ``UPDATE threads ... RETURNING last_seq`` both
allocates the seq range and locks the thread row, so concurrent writers get gap-free,
duplicate-free seqs and exact ``message_count``/``total_bytes``. The per-user byte
total is kept in ``user_usage`` in the same transaction. A write over a limit raises
:class:`LimitExceeded` before anything is committed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal
from uuid import UUID

from sqlalchemy import (
    BigInteger,
    Float,
    Text,
    func,
    literal,
    select,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from ai_agents.db.scope import Scope
from ai_agents.db.tables import messages, tenants, user_usage
from ai_agents.errors import LimitExceeded, NotFoundError, ValidationError
from ai_agents.messages import ROLES, Message, ToolCall
from ai_agents.records import Page

Order = Literal["asc", "desc"]

_COLUMNS = (
    "id, thread_id, seq, role, content, tool_calls, tool_call_id, tool_name, created_at, "
    "token_count, provider, model, input_tokens, output_tokens, cost, metadata"
)
_LAST_N = f"SELECT {_COLUMNS} FROM messages WHERE thread_id = $1 ORDER BY seq DESC LIMIT $2"
_FIRST_M = f"SELECT {_COLUMNS} FROM messages WHERE thread_id = $1 ORDER BY seq LIMIT $2"
_BY_RUN = f"SELECT {_COLUMNS} FROM messages WHERE thread_id = $1 AND run_id = $2 ORDER BY seq"
_BETWEEN = (
    f"SELECT {_COLUMNS} FROM messages WHERE thread_id = $1 AND seq > $2 AND seq < $3 "
    "ORDER BY seq LIMIT $4"
)
# Allocate the seq range and bump the thread's and the user's counters in one statement.
# The UPDATE's row lock serializes writers of the thread ($7: the caller's tenant, or
# NULL for the admin scope).
_COUNT_TURN = """
WITH bumped AS (
    UPDATE threads
    SET last_seq = last_seq + $2, message_count = message_count + $2,
        total_bytes = total_bytes + $3, input_tokens = input_tokens + $4,
        output_tokens = output_tokens + $5, cost = cost + $6, last_used_at = now()
    WHERE id = $1 AND ($7::text IS NULL OR tenant_id = $7::text)
    RETURNING last_seq, total_bytes, tenant_id, user_id
), charged AS (
    INSERT INTO user_usage AS u (tenant_id, user_id, total_bytes, input_tokens, output_tokens, cost)
    SELECT tenant_id, coalesce(user_id, ''), $3, $4, $5, $6 FROM bumped
    ON CONFLICT (tenant_id, user_id) DO UPDATE SET
        total_bytes = u.total_bytes + excluded.total_bytes,
        input_tokens = u.input_tokens + excluded.input_tokens,
        output_tokens = u.output_tokens + excluded.output_tokens,
        cost = u.cost + excluded.cost
    RETURNING total_bytes
)
SELECT b.last_seq, b.total_bytes, b.tenant_id, b.user_id, c.total_bytes AS user_total
FROM bumped b, charged c
"""
_INSERT_BATCH = """
INSERT INTO messages (thread_id, run_id, seq, role, content, tool_calls, tool_call_id,
    tool_name, token_count, byte_size, provider, model, input_tokens, output_tokens, cost,
    idempotency_key, metadata)
SELECT $1, $2, * FROM unnest($3::bigint[], $4::text[], $5::text[], $6::jsonb[], $7::text[],
    $8::text[], $9::int[], $10::int[], $11::text[], $12::text[], $13::int[], $14::int[],
    $15::float8[], $16::text[], $17::jsonb[])
RETURNING id, seq, created_at
"""
_SET_MEMORY_STATE = "UPDATE threads SET memory_state = $2::jsonb WHERE id = $1"
_LOCK_TENANT = "SELECT id FROM tenants WHERE id = $1 FOR UPDATE"
_TENANT_TOTAL = "SELECT coalesce(sum(total_bytes), 0) FROM user_usage WHERE tenant_id = $1"


async def driver(conn: AsyncConnection) -> Any:
    """The asyncpg connection under *conn*, for the hot-path statements above."""
    raw = await conn.get_raw_connection()
    return raw.driver_connection


def record_to_message(r: Any) -> Message:
    tool_calls = r[5]
    return Message(
        id=r[0],
        thread_id=r[1],
        seq=r[2],
        role=r[3],
        content=r[4],
        tool_calls=[ToolCall.from_json(c) for c in tool_calls] if tool_calls else [],
        tool_call_id=r[6],
        tool_name=r[7],
        created_at=r[8],
        token_count=r[9],
        provider=r[10],
        model=r[11],
        input_tokens=r[12],
        output_tokens=r[13],
        cost=r[14],
        metadata=r[15] or {},
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
    memory_state: dict[str, Any] | None = None,
) -> list[Message]:
    """Append *batch* in order, atomically, with exact counters and size limits.

    *conn* must be in autocommit mode (no SQLAlchemy transaction): the append runs its
    own transaction on the driver connection: three statements, whatever the batch size.
    ``memory_state`` (the summarize strategy's state) is saved in the same transaction.
    """
    for message in batch:
        validate_message(message)
    sizes = [m.byte_size() for m in batch]
    added = sum(sizes)
    n = len(batch)
    apg = await driver(conn)
    async with apg.transaction():
        row = await apg.fetchrow(
            _COUNT_TURN,
            thread_id,
            n,
            added,
            sum(m.input_tokens or 0 for m in batch),
            sum(m.output_tokens or 0 for m in batch),
            float(sum(m.cost or 0.0 for m in batch)),
            scope.tenant_id,
        )
        if row is None:
            raise NotFoundError("thread", thread_id)
        if row["total_bytes"] > limits.thread_bytes:
            raise LimitExceeded("thread", limits.thread_bytes, row["total_bytes"] - added, added)
        if row["user_id"] and row["user_total"] > limits.user_bytes:
            raise LimitExceeded("user", limits.user_bytes, row["user_total"] - added, added)
        if limits.tenant_bytes is not None and added > 0:
            await apg.execute(_LOCK_TENANT, row["tenant_id"])
            total = await apg.fetchval(_TENANT_TOTAL, row["tenant_id"])
            if total > limits.tenant_bytes:
                raise LimitExceeded("tenant", limits.tenant_bytes, int(total) - added, added)
        first_seq = row["last_seq"] - n + 1
        inserted = await apg.fetch(
            _INSERT_BATCH,
            thread_id,
            run_id,
            list(range(first_seq, first_seq + n)),
            [m.role for m in batch],
            [m.content for m in batch],
            [
                json.dumps([c.to_json() for c in m.tool_calls]) if m.tool_calls else None
                for m in batch
            ],
            [m.tool_call_id for m in batch],
            [m.tool_name for m in batch],
            [m.token_count for m in batch],
            sizes,
            [m.provider for m in batch],
            [m.model for m in batch],
            [m.input_tokens for m in batch],
            [m.output_tokens for m in batch],
            [m.cost for m in batch],
            [idempotency_key if i == 0 else None for i in range(n)],
            [json.dumps(m.metadata or {}) for m in batch],
        )
        if memory_state is not None:
            await apg.execute(_SET_MEMORY_STATE, thread_id, json.dumps(memory_state))
    by_seq = {r["seq"]: r for r in inserted}
    saved = []
    for offset, m in enumerate(batch):
        r = by_seq[first_seq + offset]
        saved.append(
            Message(
                role=m.role,
                content=m.content,
                tool_calls=list(m.tool_calls),
                tool_call_id=m.tool_call_id,
                tool_name=m.tool_name,
                metadata=dict(m.metadata),
                id=r["id"],
                thread_id=thread_id,
                seq=first_seq + offset,
                created_at=r["created_at"],
                token_count=m.token_count,
                provider=m.provider,
                model=m.model,
                input_tokens=m.input_tokens,
                output_tokens=m.output_tokens,
                cost=m.cost,
            )
        )
    return saved


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
    items = [record_to_message(r) for r in rows[:limit]]  # same column order
    next_cursor = str(items[-1].seq) if len(rows) > limit and items else None
    return Page(items, next_cursor)


async def last_n(conn: AsyncConnection, thread_id: UUID, n: int) -> list[Message]:
    """The last *n* messages in chronological order: one backward index range scan."""
    rows = await (await driver(conn)).fetch(_LAST_N, thread_id, n)
    return [record_to_message(r) for r in reversed(rows)]


async def first_m(conn: AsyncConnection, thread_id: UUID, m: int) -> list[Message]:
    rows = await (await driver(conn)).fetch(_FIRST_M, thread_id, m)
    return [record_to_message(r) for r in rows]


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
    rows = await (await driver(conn)).fetch(_BY_RUN, thread_id, run_id)
    return [record_to_message(r) for r in rows]


async def between(
    conn: AsyncConnection, thread_id: UUID, after_seq: int, before_seq: int, limit: int
) -> list[Message]:
    """Messages with after_seq < seq < before_seq, oldest first (at most *limit*)."""
    rows = await (await driver(conn)).fetch(_BETWEEN, thread_id, after_seq, before_seq, limit)
    return [record_to_message(r) for r in rows]
