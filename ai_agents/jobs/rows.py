"""Job rows: every change of a job's state is one conditional statement on its row.

The conditions are what make at-least-once delivery safe: a worker may run a job only
after moving it from ``queued`` (or ``running`` with a stale heartbeat: its worker died)
to ``running`` under its own name, and may finish it only while it still owns it. Two
deliveries of one job therefore never both count, whatever Redis does.

Jobs of one thread run one after the other, in the order they were enqueued: only the
*head* of a thread (its oldest unfinished job) is ever in a stream. Enqueueing publishes
the new job only when it is the head; finishing a job publishes the next head. Both take
a transaction-scoped advisory lock per thread (a key space apart from the runner's thread
lock), so a job enqueued while its predecessor finishes is never left unpublished.

The hot path is one round trip per step: enqueue calls a server-side function (migration
0011, cheaper in 0012: chain lock, the job and its run, whether it is the thread's head;
jobs enqueued together share one statement and one commit, 0013: :func:`enqueue_many`);
the claim is one statement that also starts the job's run (:func:`claim_and_start`); and
a job's success is recorded by the statement that saves its turn (``ai_agents_append_job``,
:func:`success_in_turn`), so a successful job costs three statements in all. Other
outcomes (cancel, retry, failure) call ``ai_agents_finish_job`` (:func:`finish`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast
from uuid import UUID

import asyncpg
from sqlalchemy import (
    ColumnElement,
    Float,
    Text,
    and_,
    any_,
    bindparam,
    case,
    delete,
    exists,
    func,
    literal_column,
    or_,
    select,
    text,
    true,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, distinct_on
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from ai_agents.db.messages import JobSuccess
from ai_agents.db.scope import Scope
from ai_agents.errors import NotFoundError
from ai_agents.jobs.records import JobError, JobRecord
from ai_agents.jobs.tables import FINISHED, Priority, jobs
from ai_agents.runs import rows as run_rows

ClaimVerdict = Literal["run", "missing", "finished", "busy", "blocked", "cancelled", "failed"]
#: A job to put into its stream: (id, priority).
Head = tuple[UUID, Priority]

_CANCELLED = JobError("cancelled", "the job was cancelled")
_CHAIN_LOCK_CLASS = 0x4A_4F_42  # "JOB": two-key advisory locks never meet the runner's
_LOCK = text("SELECT pg_advisory_xact_lock(:cls, :key)")
_JSON = JSONB(none_as_null=True)


@dataclass(frozen=True, slots=True)
class Claim:
    """What a worker holding a delivery of the job should do with it."""

    verdict: ClaimVerdict
    job: JobRecord | None = None
    #: The thread's next job to publish, when this claim found the job finished.
    next_head: Head | None = None
    #: The start of the job's run, when the claim started it (``runs.rows.START``'s row).
    started: Any | None = None


def _unfinished(status: Any) -> ColumnElement[bool]:
    # Literal constants (not parameters), so plans can use the partial index on them.
    return cast(
        ColumnElement[bool],
        status.in_([literal_column("'queued'"), literal_column("'running'")]),
    )


def _visible(tenant_column: Any) -> ColumnElement[bool]:
    """The ``p_tenant`` parameter's scope: ``NULL`` is the admin scope (every tenant)."""
    tenant = bindparam("p_tenant", type_=Text)
    return or_(tenant.is_(None), tenant_column == tenant)


def _older_unfinished() -> ColumnElement[bool]:
    """An unfinished job of the same thread enqueued before this one."""
    older = jobs.alias("older")
    return exists().where(
        older.c.thread_id == jobs.c.thread_id,
        _unfinished(older.c.status),
        tuple_(older.c.created_at, older.c.id) < tuple_(jobs.c.created_at, jobs.c.id),
    )


def _head_of(row: Any) -> Head | None:
    if row["next_status"] != "queued":
        return None
    return row["next_id"], cast(Priority, row["next_priority"])


_STALE = jobs.c.heartbeat_at < func.now() - func.make_interval(
    0, 0, 0, 0, 0, 0, bindparam("p_visibility", type_=Float)
)
_TAKEABLE = or_(jobs.c.status == "queued", and_(jobs.c.status == "running", _STALE))
_START: dict[str, Any] = {
    "status": "running",
    "attempts": jobs.c.attempts + 1,
    "started_at": func.coalesce(jobs.c.started_at, func.now()),
    "heartbeat_at": func.now(),
    "worker": bindparam("p_worker", type_=Text),
}
_OWNED = and_(
    jobs.c.id == bindparam("p_id", type_=PG_UUID(as_uuid=True)),
    jobs.c.worker == bindparam("p_worker", type_=Text),
    jobs.c.status == "running",
)

_GET = select(jobs).where(jobs.c.id == bindparam("p_id"), _visible(jobs.c.tenant_id))
_RETRY = (
    update(jobs)
    .where(_OWNED)
    .values(
        status="queued", worker=None, heartbeat_at=None, error=bindparam("p_error", type_=_JSON)
    )
    .returning(jobs)
)
_HAND_BACK = (
    update(jobs)
    .where(_OWNED)
    .values(
        status="queued",
        worker=None,
        heartbeat_at=None,
        attempts=case((jobs.c.attempts > 0, jobs.c.attempts - 1), else_=0),
    )
    .returning(jobs)
)
_HEARTBEAT = (
    update(jobs)
    .where(
        jobs.c.id == any_(bindparam("p_ids", type_=ARRAY(PG_UUID(as_uuid=True)))),
        jobs.c.worker == bindparam("p_worker", type_=Text),
        jobs.c.status == "running",
    )
    .values(heartbeat_at=func.now())
    .returning(jobs.c.id, jobs.c.cancel_requested)
)


def _chain_key(thread_id: UUID) -> int:
    return int.from_bytes(thread_id.bytes[:4], "big", signed=True)


async def lock_chain(conn: AsyncConnection, thread_id: UUID) -> None:
    """Serialize changes to the thread's chain of jobs until the transaction ends."""
    await conn.execute(_LOCK, {"cls": _CHAIN_LOCK_CLASS, "key": _chain_key(thread_id)})


# Enqueue and finish are server-side functions (migrations 0011 to 0013) that take the
# chain lock themselves: one round trip each, called on the driver connection.
_ENQUEUE = (
    "SELECT (e.job).*, e.is_head FROM ai_agents_enqueue_job("
    "$1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9, $10::jsonb) e"
)
# Several at once (migration 0013): each row carries its job's position in the arrays.
_ENQUEUE_MANY = (
    "SELECT e.ord, (e.job).*, e.is_head FROM ai_agents_enqueue_jobs("
    "$1, $2, $3, $4, $5, $6, $7, $8::jsonb[], $9, $10::jsonb[]) e"
)
_FINISH_JOB = (
    "SELECT (f.job).*, f.next_id, f.next_priority, f.next_status "
    "FROM ai_agents_finish_job($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb) f"
)
_JSON_COLUMNS = ("metadata", "result", "error")


def _job_of(row: Any) -> JobRecord:
    """A job row as the driver reads it (jsonb as text) or SQLAlchemy does (decoded)."""
    values = dict(row)
    for name in _JSON_COLUMNS:
        if isinstance(values[name], str):
            values[name] = json.loads(values[name])
    return JobRecord.from_row(cast(RowMapping, values))


def _dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


@dataclass(frozen=True, slots=True)
class NewJob:
    """A job to enqueue on a thread the tenant (``None``: any) can see."""

    tenant: str | None
    thread_id: UUID
    input: str
    priority: str
    max_attempts: int
    #: The job's metadata as JSON text (encoded once, when the producer checked it).
    metadata: str
    #: A job that runs no turn (memory extraction) has no run row.
    with_run: bool
    overrides: dict[str, Any]


def _enqueue_arguments(new: NewJob) -> tuple[Any, ...]:
    """The arguments of ``ai_agents_enqueue_job`` after the lock class (of
    ``ai_agents_enqueue_jobs``, each one's array)."""
    return (
        _chain_key(new.thread_id),
        new.thread_id,
        new.tenant,
        new.input,
        new.priority,
        new.max_attempts,
        new.metadata,
        new.with_run,
        json.dumps(new.overrides),
    )


async def enqueue(apg: Any, new: NewJob) -> tuple[JobRecord, bool]:
    """Insert a queued job (and its queued run) for a thread the caller can see.

    Answers the job and whether it is the thread's head (to be published now).
    """
    row = await apg.fetchrow(_ENQUEUE, _CHAIN_LOCK_CLASS, *_enqueue_arguments(new))
    if row is None:
        raise NotFoundError("thread", new.thread_id)
    return _job_of(row), bool(row["is_head"])


async def enqueue_many(apg: Any, new: Sequence[NewJob]) -> list[tuple[JobRecord, bool] | None]:
    """:func:`enqueue` for several jobs in one statement and one transaction.

    The jobs are enqueued in the order of their chain locks (so that two such statements
    never wait on each other in a cycle), jobs of one thread in the order given. Answers,
    for each job in the order given, what :func:`enqueue` answers, or ``None`` when the
    thread is not visible to the job's tenant (the others are enqueued all the same).
    """
    order = sorted(range(len(new)), key=lambda i: _chain_key(new[i].thread_id))
    ordered = [new[i] for i in order]
    columns = [list(column) for column in zip(*map(_enqueue_arguments, ordered), strict=True)]
    rows = await apg.fetch(_ENQUEUE_MANY, _CHAIN_LOCK_CLASS, *columns)
    answers: list[tuple[JobRecord, bool] | None] = [None] * len(new)
    for row in rows:
        answers[order[row["ord"] - 1]] = (_job_of(row), bool(row["is_head"]))
    return answers


async def withdraw_job(conn: AsyncConnection, job: JobRecord) -> Head | None:
    """Delete a job that could not be published; answers the thread's next head."""
    await lock_chain(conn, job.thread_id)
    await conn.execute(delete(jobs).where(jobs.c.id == job.id))
    await conn.execute(text("DELETE FROM runs WHERE job_id = :job"), {"job": job.id})
    return await next_head(conn, job.thread_id)


async def next_head(conn: AsyncConnection, thread_id: UUID) -> Head | None:
    """The thread's oldest unfinished job, if it waits for a worker (call under the lock)."""
    row = (
        await conn.execute(
            select(jobs.c.id, jobs.c.priority, jobs.c.status)
            .where(jobs.c.thread_id == thread_id, _unfinished(jobs.c.status))
            .order_by(jobs.c.created_at, jobs.c.id)
            .limit(1)
        )
    ).first()
    if row is None or row.status != "queued":
        return None
    return row.id, cast(Priority, row.priority)


async def get_job(
    conn: AsyncConnection, scope: Scope, job_id: UUID, *, for_update: bool = False
) -> JobRecord:
    query = _GET.with_for_update() if for_update else _GET
    params = {"p_id": job_id, "p_tenant": scope.tenant_id}
    row = (await conn.execute(query, params)).mappings().first()
    if row is None:
        raise NotFoundError("job", job_id)
    return JobRecord.from_row(row)


async def _set(
    conn: AsyncConnection, job_id: UUID, condition: Any, values: dict[str, Any]
) -> JobRecord | None:
    """A one-off conditional update (the rare paths; the hot ones are prebuilt)."""
    stmt = update(jobs).where(jobs.c.id == job_id, condition).values(**values).returning(jobs)
    row = (await conn.execute(stmt)).mappings().first()
    return JobRecord.from_row(row) if row is not None else None


async def request_cancel(conn: AsyncConnection, scope: Scope, job_id: UUID) -> JobRecord:
    """Cancel a queued job at once; flag a running one (it stops at its next safe point).

    A cancelled head still has its stream entry: the worker that reads it finds the job
    finished and publishes the next one, so cancelling never needs Redis to succeed.
    """
    job = await get_job(conn, scope, job_id, for_update=True)
    if job.status == "queued":
        values = {
            "status": "cancelled",
            "cancel_requested": True,
            "finished_at": func.now(),
            "error": _CANCELLED.to_json(),
        }
    elif job.status == "running":
        values = {"cancel_requested": True}
    else:
        return job  # already finished: nothing to cancel
    changed = await _set(conn, job_id, jobs.c.status == job.status, values)
    assert changed is not None  # the row is locked
    return changed


# The hot claim (the first CTE of claim_and_start), in the driver's words: takeable
# (_TAKEABLE), not cancelled, attempts left, no older unfinished job (_older_unfinished,
# looked for from the thread's chain floor on: every job below it has finished, see
# migration 0014); claim_slowly looks at the same conditions under the chain lock when
# this finds nothing. OFFSET 0 keeps the lookup a subquery run for the claimed row alone:
# flattened into an anti-join, PostgreSQL may read every unfinished job of every thread
# (a merge join over them, chosen when the table's statistics are missing or old).
_CLAIM_SQL = """
UPDATE jobs SET status = 'running', attempts = attempts + 1,
    started_at = coalesce(started_at, now()), heartbeat_at = now(), worker = $2
WHERE id = $1
  AND (status = 'queued' OR (status = 'running'
       AND heartbeat_at < now() - make_interval(0, 0, 0, 0, 0, 0, $3::float8)))
  AND NOT cancel_requested AND attempts < max_attempts
  AND NOT EXISTS (SELECT 1 FROM jobs older WHERE older.thread_id = jobs.thread_id
      AND older.created_at >= (SELECT t.jobs_floor FROM threads t WHERE t.id = jobs.thread_id)
      AND older.status IN ('queued', 'running')
      AND (older.created_at, older.id) < (jobs.created_at, jobs.id) OFFSET 0)
RETURNING *
"""


# The claim and the start of the job's run (runs.rows.START's, $4 owner, $5 lease) in one
# statement: one round trip and one commit. The job's columns are prefixed ``job__``.
# The commit does not wait for its WAL flush (synchronous_commit off for this transaction
# only): a claim lost in a crash leaves the job and its run queued, as a worker that died
# does, and nothing that depends on it can be kept without it, since the turn's save
# commits synchronously and WAL is flushed in order.
_JOB_COLUMNS = ", ".join(f"j.{c.name} AS job__{c.name}" for c in jobs.columns)
_CLAIM_AND_START_SQL = f"""
WITH j AS ({_CLAIM_SQL.strip()}),
{run_rows.start_run("(SELECT run_id FROM j)", "$4", "$5")}
SELECT {_JOB_COLUMNS}, {run_rows.STARTED_COLUMNS},
    set_config('synchronous_commit', 'off', true) AS commit_mode
FROM j
LEFT JOIN runs s ON s.id = j.run_id
{run_rows.STARTED_JOINS}
"""


async def claim_and_start(
    apg: Any, job_id: UUID, worker: str, visibility: float, *, owner: str, lease: float
) -> tuple[JobRecord, Any | None] | None:
    """Take the job for *worker* if it simply can be, starting its run for *owner* in
    the same statement (committed alone).

    Answers the job and what ``runs.rows.START`` answers for its run (``None`` for a job
    without a run); ``run_created_at`` is set when the run took its thread. ``None``: the
    job cannot simply be taken, or its run could not start (see :func:`claim_slowly`,
    which looks again in a transaction of its own).
    """
    try:
        row = await apg.fetchrow(_CLAIM_AND_START_SQL, job_id, worker, visibility, owner, lease)
    except (asyncpg.UniqueViolationError, asyncpg.DeadlockDetectedError):
        # Another run became active on the thread meanwhile (the unique index refused
        # this one): nothing was changed. claim_slowly takes the job alone, and its run
        # waits its turn. (Not on this connection: behind a transaction pooler its
        # statements share a transaction, which this error ended.)
        return None
    if row is None:
        return None
    job = _job_of({name[5:]: value for name, value in row.items() if name.startswith("job__")})
    return job, (row if row["run_status"] is not None else None)


async def claim_slowly(
    conn: AsyncConnection, job_id: UUID, worker: str, visibility: float
) -> Claim:
    """Why the job cannot simply start, and what to do, under the chain and row locks."""
    thread_id = (
        await conn.execute(select(jobs.c.thread_id).where(jobs.c.id == job_id))
    ).scalar_one_or_none()
    if thread_id is None:
        return Claim("missing")
    await lock_chain(conn, thread_id)
    query = select(jobs, _TAKEABLE.label("takeable"), _older_unfinished().label("blocked"))
    query = query.where(jobs.c.id == job_id).with_for_update(of=jobs)
    row = (await conn.execute(query, {"p_visibility": visibility})).mappings().first()
    if row is None:
        return Claim("missing")
    job = JobRecord.from_row(row)
    if job.status in FINISHED:
        return Claim("finished", job, await next_head(conn, thread_id))
    if not row["takeable"]:
        return Claim("busy", job)  # running, and its worker is alive
    if row["blocked"]:
        return Claim("blocked", job)  # published again when the older job finishes
    ending: dict[str, Any] = {"finished_at": func.now(), "worker": worker}
    if job.cancel_requested:
        ending.update(status="cancelled", error=_CANCELLED.to_json())
    elif job.attempts >= job.max_attempts:
        lost = JobError(
            "worker_lost",
            f"the worker running attempt {job.attempts} of {job.max_attempts} stopped "
            "heartbeating (it died or lost its connections)",
        )
        ending.update(status="failed", error=(job.error or lost).to_json())
    else:  # it became takeable in between: start it
        started = await _set(conn, job_id, true(), {**_START, "worker": worker})
        assert started is not None  # the row is locked
        return Claim("run", started)
    done = await _set(conn, job_id, true(), ending)
    assert done is not None  # the row is locked
    return Claim(cast(ClaimVerdict, done.status), done, await next_head(conn, thread_id))


async def heartbeat(
    conn: AsyncConnection, worker: str, job_ids: Sequence[UUID]
) -> dict[UUID, bool]:
    """Refresh the worker's running jobs; answers {job id still owned: cancel requested}."""
    rows = await conn.execute(_HEARTBEAT, {"p_ids": list(job_ids), "p_worker": worker})
    return {row.id: row.cancel_requested for row in rows}


async def finish(
    apg: Any,
    job: JobRecord,
    worker: str,
    status: Literal["succeeded", "failed", "cancelled"],
    *,
    result: dict[str, Any] | None = None,
    error: JobError | None = None,
) -> tuple[JobRecord | None, Head | None]:
    """Record the outcome and find the thread's next job; ``None`` if *worker* lost it."""
    row = await apg.fetchrow(
        _FINISH_JOB,
        _CHAIN_LOCK_CLASS,
        _chain_key(job.thread_id),
        job.id,
        worker,
        status,
        _dumps(result),
        _dumps(error.to_json() if error else None),
    )
    if row is None:
        return None, None
    return _job_of(row), _head_of(row)


def success_in_turn(job: JobRecord, worker: str) -> JobSuccess:
    """The job's success, for the turn's save to record (its chain lock, its worker)."""
    return JobSuccess(job.id, worker, _CHAIN_LOCK_CLASS, _chain_key(job.thread_id))


def recorded_success(success: JobSuccess) -> tuple[JobRecord, Head | None] | None:
    """The job and the thread's next job, if the turn's save recorded the job's success."""
    if success.row is None:
        return None
    return _job_of(success.row), _head_of(success.row)


async def requeue(
    conn: AsyncConnection, job_id: UUID, worker: str, *, error: JobError | None
) -> JobRecord | None:
    """Put a running job back to ``queued`` (it stays its thread's head).

    With an *error*: a failed attempt to be retried (the attempt counts). Without: the
    worker is shutting down and hands the job back (the attempt does not count).
    """
    params: dict[str, Any] = {"p_id": job_id, "p_worker": worker}
    if error is not None:
        stmt, params["p_error"] = _RETRY, error.to_json()
    else:
        stmt = _HAND_BACK
    row = (await conn.execute(stmt, params)).mappings().first()
    return JobRecord.from_row(row) if row is not None else None


async def heads(conn: AsyncConnection) -> list[Head]:
    """The oldest unfinished job of every thread that has one (queue rebuild)."""
    rows = await conn.execute(
        select(jobs.c.id, jobs.c.priority)
        .where(_unfinished(jobs.c.status))
        .order_by(jobs.c.thread_id, jobs.c.created_at, jobs.c.id)
        .ext(distinct_on(jobs.c.thread_id))
    )
    return [(row.id, cast(Priority, row.priority)) for row in rows]
