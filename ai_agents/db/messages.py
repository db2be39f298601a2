"""Message rows: append (with exact counters and size limits), page, last N, first M.

Appending is one statement, the ``ai_agents_append`` function (migration 0007): its
``UPDATE threads ... RETURNING last_seq`` both allocates the seq range and locks the
thread row, so concurrent writers get gap-free, duplicate-free seqs and exact
``message_count``/``total_bytes``. The per-user byte total is kept in ``user_usage`` in
the same transaction. A write over a limit raises :class:`LimitExceeded` and nothing is
committed.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal
from uuid import UUID

import asyncpg
from sqlalchemy import (
    BigInteger,
    Float,
    Text,
    func,
    literal,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from ai_agents.db.scope import Scope
from ai_agents.db.tables import messages, tenants, threads, user_usage
from ai_agents.errors import LimitExceeded, NotFoundError, RunExpired, ValidationError
from ai_agents.messages import ROLES, Message, ToolCall
from ai_agents.records import Page

Order = Literal["asc", "desc"]

_COLUMNS = (
    "id, thread_id, seq, role, content, tool_calls, tool_call_id, tool_name, created_at, "
    "token_count, provider, model, input_tokens, output_tokens, cost, metadata, run_id"
)
_LAST_N = f"SELECT {_COLUMNS} FROM messages WHERE thread_id = $1 ORDER BY seq DESC LIMIT $2"
_FIRST_M = f"SELECT {_COLUMNS} FROM messages WHERE thread_id = $1 ORDER BY seq LIMIT $2"
_BY_RUN = f"SELECT {_COLUMNS} FROM messages WHERE thread_id = $1 AND run_id = $2 ORDER BY seq"
_BETWEEN = (
    f"SELECT {_COLUMNS} FROM messages WHERE thread_id = $1 AND seq > $2 AND seq < $3 "
    "ORDER BY seq LIMIT $4"
)


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
        # Rows read by the runs' own statements stop at metadata.
        run_id=r[16] if len(r) > 16 else None,
    )


@dataclass(frozen=True, slots=True)
class SizeLimits:
    thread_bytes: int
    user_bytes: int
    tenant_bytes: int | None = None


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
    if message.images and message.role != "user":
        raise ValidationError("only user messages carry images", details={"field": "images"})
    if message.role in ("user", "system") and not message.content and not message.images:
        raise ValidationError(
            f"a {message.role} message needs non-empty content", details={"field": "content"}
        )
    # PostgreSQL text/jsonb cannot store U+0000: name the field instead of a driver error.
    from ai_agents.nul import nul_path

    where = nul_path(
        {
            "content": message.content,
            "tool_calls": [c.to_json() for c in message.tool_calls],
            "tool_call_id": message.tool_call_id,
            "tool_name": message.tool_name,
            "metadata": message.metadata,
        },
        "",
    )
    if where is not None:
        raise ValidationError(
            f"{where} contains a NUL character (U+0000), which cannot be stored",
            details={"field": where},
        )


@dataclass(frozen=True, slots=True)
class RunCompletion:
    """A run completing with the turn it saves (``ai_agents_append`` fences on its owner)."""

    owner: str
    status: str
    provider: str
    model: str
    input_tokens: int
    output_tokens: int
    cost: float
    incomplete_details: dict[str, Any] | None
    steps_json: str


_APPEND = (
    "SELECT out_id, out_seq, out_created_at, out_waiters FROM ai_agents_append("
    + ", ".join(f"${i}" for i in range(1, 32))
    + ")"
)
_APPEND_JOB = (
    "SELECT x.out_id, x.out_seq, x.out_created_at, x.out_waiters, (x.job).*, x.next_id, "
    "x.next_priority, x.next_status FROM ai_agents_append_job("
    + ", ".join(f"${i}" for i in range(1, 37))
    + ") x"
)
_LIMIT_STATES = {"AAL01": "thread", "AAL02": "user", "AAL03": "tenant"}


@dataclass(slots=True)
class JobSuccess:
    """A background job whose success the turn's save records (``ai_agents_append_job``,
    migration 0012): one statement for the turn, its run and its job.

    The worker that owns the job fills the first fields (the chain lock is the one of
    :mod:`ai_agents.jobs.rows`), the run sets :attr:`result` before it saves, and the
    save sets :attr:`row`: the job's columns and the thread's next job (``next_id``,
    ``next_priority``, ``next_status``), or ``None`` when the worker no longer owned the
    job (the turn is saved all the same; the worker records the outcome as before).
    """

    job_id: UUID
    worker: str
    lock_class: int
    lock_key: int
    result: dict[str, Any] | None = None
    row: dict[str, Any] | None = None


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
    """Append *batch* in order, atomically, with exact counters and size limits."""
    saved, _ = await append_turn(
        conn,
        scope,
        thread_id,
        batch,
        limits,
        run_id=run_id,
        idempotency_key=idempotency_key,
        memory_state=memory_state,
    )
    return saved


async def append_turn(
    conn: AsyncConnection,
    scope: Scope,
    thread_id: UUID,
    batch: Sequence[Message],
    limits: SizeLimits,
    *,
    run_id: UUID | None = None,
    idempotency_key: str | None = None,
    memory_state: dict[str, Any] | None = None,
    completion: RunCompletion | None = None,
    job: JobSuccess | None = None,
) -> tuple[list[Message], bool]:
    """Append *batch* in order, atomically, with exact counters and size limits; with
    *completion*, complete the run in the same statement, and with *job* (and a
    completion) record the job's success too. Answers the saved messages and whether
    other runs wait for the thread.

    One round trip (the ``ai_agents_append`` function, migration 0007): no transaction
    is left open between statements. ``memory_state`` (the summarize strategy's state) is
    saved with it. Messages keep the ``id`` they carry (a run assigns them early).
    """
    for message in batch:
        validate_message(message)
    sizes = [m.byte_size() for m in batch]
    done = completion
    job = job if done is not None and job is not None and job.result is not None else None
    apg = await driver(conn)
    try:
        rows = await apg.fetch(
            _APPEND if job is None else _APPEND_JOB,
            thread_id,
            scope.tenant_id,
            run_id,
            idempotency_key,
            [m.id or uuid.uuid4() for m in batch],
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
            [json.dumps(m.metadata or {}) for m in batch],
            limits.thread_bytes,
            limits.user_bytes,
            limits.tenant_bytes,
            json.dumps(memory_state) if memory_state is not None else None,
            done.owner if done else None,
            done.status if done else None,
            done.provider if done else None,
            done.model if done else None,
            done.input_tokens if done else 0,
            done.output_tokens if done else 0,
            done.cost if done else 0.0,
            json.dumps(done.incomplete_details) if done and done.incomplete_details else None,
            done.steps_json if done else None,
            *(
                ()
                if job is None
                else (
                    job.lock_class,
                    job.lock_key,
                    job.job_id,
                    job.worker,
                    json.dumps(job.result),
                )
            ),
        )
    except asyncpg.PostgresError as exc:
        refusal = _refusal(exc, thread_id, limits)
        if refusal is None:
            raise
        raise refusal from exc
    by_seq = sorted(rows, key=lambda r: r["out_seq"])
    waiters = bool(by_seq and by_seq[0]["out_waiters"])
    if job is not None and by_seq and by_seq[0]["id"] is not None:
        job.row = {k: v for k, v in by_seq[0].items() if not k.startswith("out_")}
    saved = []
    for m, r in zip(batch, by_seq, strict=True):
        saved.append(
            Message(
                role=m.role,
                content=m.content,
                tool_calls=list(m.tool_calls),
                tool_call_id=m.tool_call_id,
                tool_name=m.tool_name,
                metadata=dict(m.metadata),
                id=r["out_id"],
                thread_id=thread_id,
                seq=r["out_seq"],
                created_at=r["out_created_at"],
                token_count=m.token_count,
                provider=m.provider,
                model=m.model,
                input_tokens=m.input_tokens,
                output_tokens=m.output_tokens,
                cost=m.cost,
            )
        )
    return saved, waiters


def _refusal(exc: Exception, thread_id: UUID, limits: SizeLimits) -> Exception | None:
    """The library error of a refusal raised by ``ai_agents_append`` (None: another error)."""
    state = getattr(exc, "sqlstate", None)
    if state in _LIMIT_STATES:
        scope = _LIMIT_STATES[state]
        current, attempted = (int(x) for x in str(getattr(exc, "detail", "0,0")).split(","))
        limit = {
            "thread": limits.thread_bytes,
            "user": limits.user_bytes,
            "tenant": limits.tenant_bytes or 0,
        }[scope]
        return LimitExceeded(scope, limit, current, attempted)
    if state == "AAN01":
        return NotFoundError("thread", thread_id)
    if state == "AAR01":
        return RunExpired(str(getattr(exc, "message", exc)))
    return None


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


async def add_usage(
    conn: AsyncConnection,
    thread_id: UUID,
    tenant_id: str,
    user_id: str | None,
    input_tokens: int,
    output_tokens: int,
    cost: float,
) -> None:
    """Add a model call made outside a turn (memory extraction) to the thread's and the
    user's usage totals."""
    await conn.execute(
        update(threads)
        .where(threads.c.id == thread_id)
        .values(
            input_tokens=threads.c.input_tokens + input_tokens,
            output_tokens=threads.c.output_tokens + output_tokens,
            cost=threads.c.cost + cost,
        )
    )
    source = select(
        literal(tenant_id, Text),
        literal(user_id or "", Text),
        literal(0, BigInteger),
        literal(input_tokens, BigInteger),
        literal(output_tokens, BigInteger),
        literal(cost, Float),
    )
    await conn.execute(_charge_statement(source))


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


def page_sql(*, scoped: bool, after: bool, before: bool, order: Order) -> str:
    """The one statement of :func:`page`: the visible thread LEFT JOIN its page of messages.

    Parameters, in order: the thread id, the tenant (when *scoped*), the ``after`` and
    ``before`` seqs (when given), the row limit. No row: the thread is not visible (absent
    or another tenant's); one row of NULLs: it is visible and has no message in range.
    """
    key = (scoped, after, before, order)
    sql = _PAGE_SQL.get(key)
    if sql is None:
        n = 2
        tenant = ""
        if scoped:
            tenant, n = f" AND t.tenant_id = ${n}", n + 1
        bounds = ""
        if after:
            bounds, n = f"{bounds} AND m.seq > ${n}", n + 1
        if before:
            bounds, n = f"{bounds} AND m.seq < ${n}", n + 1
        sql = (
            f"SELECT p.* FROM threads t LEFT JOIN LATERAL (SELECT {_COLUMNS} FROM messages m "
            f"WHERE m.thread_id = t.id{bounds} ORDER BY m.seq {order.upper()} LIMIT ${n}) p "
            f"ON true WHERE t.id = $1{tenant}"
        )
        _PAGE_SQL[key] = sql
    return sql


_PAGE_SQL: dict[tuple[bool, bool, bool, Order], str] = {}


async def page(
    apg: Any,
    scope: Scope,
    thread_id: UUID,
    *,
    limit: int,
    after: int | None,
    before: int | None,
    order: Order,
) -> Page[Message]:
    """Messages by seq; ``after``/``before`` are exclusive seq bounds (stable cursors).

    One statement on the asyncpg connection *apg* checks that the thread is visible to
    *scope* and reads the page (one round trip, one snapshot); :class:`NotFoundError`
    when the thread is not visible.
    """
    sql = page_sql(
        scoped=scope.tenant_id is not None,
        after=after is not None,
        before=before is not None,
        order=order,
    )
    args: list[Any] = [thread_id]
    if scope.tenant_id is not None:
        args.append(scope.tenant_id)
    args += [v for v in (after, before) if v is not None]
    args.append(limit + 1)
    rows = await apg.fetch(sql, *args)
    if not rows:
        raise NotFoundError("thread", thread_id)
    items = [record_to_message(r) for r in rows[:limit] if r[0] is not None]
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
