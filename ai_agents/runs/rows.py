"""Run rows: every change of a run's state is one conditional statement.

The conditions carry the guarantees:

- **one active run per thread**: the partial unique index ``uq_runs_thread_active``
  (statuses ``in_progress``, ``requires_action``, ``cancelling``). Claiming a thread is
  an ``INSERT ... ON CONFLICT DO NOTHING``; no lock is held while the model thinks.
- **fencing**: a run's process writes its steps and saves its turn only while the row
  is still ``in_progress`` under its ``owner``; a run that was cancelled, or expired
  because its lease ran out, can no longer write anything to the thread.
- **leases**: ``lease_expires_at`` is extended by its process's heartbeat; the sweep turns
  runs whose lease passed into ``expired`` (``cancelled`` if a cancel was pending).

Statements run on the asyncpg driver connection of a pooled connection that is taken
for the statement and given back at once (see :class:`ai_agents.runs.pg.PgRuns`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from ai_agents.db.tables import THREAD_RECORD_COLUMNS, agents
from ai_agents.errors import NotFoundError
from ai_agents.records import AgentRecord, Page, ThreadRecord, decode_time_cursor, encode_cursor
from ai_agents.runs.records import RunRecord, RunStep

ACTIVE = "('in_progress', 'requires_action', 'cancelling')"
LIVE = "('queued', 'in_progress', 'requires_action', 'cancelling')"

_RUN_COLUMNS = (
    "id, tenant_id, thread_id, agent_id, job_id, status, input, provider, model, overrides, "
    "required_action, last_error, incomplete_details, input_tokens, output_tokens, cost, "
    "metadata, idempotency_key, created_at, started_at, completed_at, cancelled_at, "
    "failed_at, expires_at, lease_expires_at"
)
_STEP_COLUMNS = (
    "id, run_id, thread_id, seq, type, status, details, provider, model, input_tokens, "
    "output_tokens, cost, last_error, created_at, completed_at"
)
_THREAD_SELECT = ", ".join(f"t.{c.name}" for c in THREAD_RECORD_COLUMNS)
_AGENT_SELECT = ", ".join(f"a.{c.name} AS agent__{c.name}" for c in agents.columns)

# Claim the thread for a new run and load the thread and its agent, in one round trip.
# No row: the thread is not visible. run_created_at NULL: busy (another active run),
# the agent is deactivated, or prior_run_id names the run that already saved this
# idempotency key.
CLAIM = f"""
WITH t AS (
    SELECT {_THREAD_SELECT}, {_AGENT_SELECT}
    FROM threads t JOIN agents a ON a.id = t.agent_id
    WHERE t.id = $1 AND ($2::text IS NULL OR t.tenant_id = $2::text)
), prior AS (
    SELECT m.run_id FROM messages m
    WHERE $3::text IS NOT NULL AND m.thread_id = $1 AND m.idempotency_key = $3::text
), quick AS (
    -- The claim needs no durable commit: if PostgreSQL loses it in a crash, the run's
    -- later writes find no row of theirs and fail; nothing half-written remains.
    SELECT set_config('synchronous_commit', 'off', true) AS off
), ins AS (
    INSERT INTO runs (id, tenant_id, thread_id, agent_id, status, input, overrides, metadata,
        idempotency_key, owner, started_at, lease_expires_at, job_id)
    SELECT $4, t.tenant_id, t.id, t.agent_id, 'in_progress', $5, $6::jsonb, $7::jsonb, $3, $8,
        now(), now() + make_interval(secs => $9), NULL
    FROM t, quick WHERE t.agent__is_active AND NOT EXISTS (SELECT 1 FROM prior)
    ON CONFLICT (thread_id) WHERE status IN {ACTIVE} DO NOTHING
    RETURNING created_at
)
SELECT t.*, (SELECT run_id FROM prior LIMIT 1) AS prior_run_id,
    (SELECT created_at FROM ins) AS run_created_at
FROM t
"""

# A run that waits for the busy thread. Transaction-scoped advisory locks (a key class of
# their own) on the tenant, then the thread, make the caps on waiters exact; they are
# released at commit.
_WAIT_LOCK = "SELECT pg_advisory_xact_lock(1381322324, hashtext($1::text))"  # "RUNT"
_THREAD_TENANT = (
    "SELECT tenant_id FROM threads WHERE id = $1 AND ($2::text IS NULL OR tenant_id = $2)"
)
_WAITERS = """
SELECT (SELECT count(*) FROM runs WHERE thread_id = $1 AND status = 'queued'
        AND job_id IS NULL) AS thread_waiters,
    (SELECT count(*) FROM runs WHERE tenant_id = $2 AND status = 'queued'
        AND job_id IS NULL) AS tenant_waiters
"""
_QUEUE = """
INSERT INTO runs (id, tenant_id, thread_id, agent_id, status, input, overrides, metadata,
    idempotency_key, owner, lease_expires_at, expires_at)
SELECT $2, t.tenant_id, t.id, t.agent_id, 'queued', $3, $4::jsonb, $5::jsonb, $6, $7,
    now() + make_interval(secs => $8), now() + make_interval(secs => $9)
FROM threads t WHERE t.id = $1
"""
_THREAD_VISIBLE = "SELECT 1 FROM threads WHERE id = $1 AND ($2::text IS NULL OR tenant_id = $2)"


# A queued run takes the thread: waiting callers in arrival order (no older waiter of
# the thread still queued); a job's run whenever the thread is free, also after an
# attempt of the job failed or expired, or was still in progress on a worker that the job
# queue found dead (the job's claim is the proof: the new owner fences the old one out).
# Raises unique_violation while the thread is busy. Answers one row while the run exists:
# ``run_created_at`` set when it started, else ``run_status`` says how it stands.
def start_run(run: str, owner: str, lease: str) -> str:
    """The CTEs ``r`` (the run *run* started by *owner*, if it may take its thread now)
    and ``earlier`` (its steps of an earlier attempt, deleted): START's, and the job
    claim's that starts its run in the same statement (``ai_agents.jobs.rows``)."""
    return f"""r AS (
    UPDATE runs SET status = 'in_progress', owner = {owner}, started_at = now(),
        lease_expires_at = now() + make_interval(secs => {lease}), expires_at = NULL,
        failed_at = NULL
    WHERE id = {run} AND (
        (status = 'queued' AND (job_id IS NOT NULL OR NOT EXISTS (
            SELECT 1 FROM runs w WHERE w.thread_id = runs.thread_id AND w.status = 'queued'
              AND w.job_id IS NULL AND (w.created_at, w.id) < (runs.created_at, runs.id))))
        OR (job_id IS NOT NULL AND status IN ('failed', 'expired', 'in_progress'))
    )
    -- Not while another run is active: the unique index would refuse it anyway, but only
    -- after waiting on that run's row, and a heartbeat of that row could then wait on
    -- this one (a deadlock).
    AND NOT EXISTS (SELECT 1 FROM runs a WHERE a.thread_id = runs.thread_id
        AND a.id <> runs.id AND a.status IN {ACTIVE})
    RETURNING id, thread_id, created_at
), earlier AS (  -- the steps of an earlier attempt of a job's run
    DELETE FROM run_steps WHERE run_id IN (SELECT id FROM r)
)"""


#: What a start answers, from ``runs s`` (the run as it was) joined to :data:`STARTED_JOINS`:
#: the thread+agent row with ``run_created_at`` when the run took its thread.
STARTED_COLUMNS = f"""{_THREAD_SELECT}, {_AGENT_SELECT}, r.created_at AS run_created_at,
    s.status AS run_status, s.input AS run_input, s.overrides AS run_overrides,
    s.metadata AS run_metadata, s.idempotency_key AS run_idempotency_key,
    s.job_id AS run_job_id,
    -- the turn already saved under the run's idempotency key (a job delivered again)
    (SELECT m.run_id FROM messages m WHERE r.id IS NOT NULL
        AND m.thread_id = s.thread_id AND m.idempotency_key = s.idempotency_key
        LIMIT 1) AS saved_run_id"""
STARTED_JOINS = """LEFT JOIN r ON true
LEFT JOIN threads t ON t.id = r.thread_id
LEFT JOIN agents a ON a.id = t.agent_id"""

START = f"""
WITH {start_run("$1", "$2", "$3")}
SELECT {STARTED_COLUMNS}
FROM runs s
{STARTED_JOINS}
WHERE s.id = $1
"""

# A job's run whose worker gave the job back (shutdown): queued again for the next one.
REQUEUE = """
UPDATE runs SET status = 'queued', owner = NULL, lease_expires_at = NULL
WHERE id = $1 AND owner = $2 AND status IN ('in_progress', 'cancelling')
RETURNING thread_id
"""

# Resume a run in requires_action: only while it still waits for exactly these calls.
RESUME = f"""
WITH r AS (
    UPDATE runs SET status = 'in_progress', owner = $3, required_action = NULL,
        lease_expires_at = now() + make_interval(secs => $4), expires_at = NULL
    WHERE id = $1 AND ($2::text IS NULL OR tenant_id = $2::text)
      AND status = 'requires_action' AND lease_expires_at > now()
      AND required_action = $5::jsonb
    RETURNING thread_id
)
SELECT {_THREAD_SELECT}, {_AGENT_SELECT}
FROM r JOIN threads t ON t.id = r.thread_id JOIN agents a ON a.id = t.agent_id
"""

HEARTBEAT = """
UPDATE runs SET lease_expires_at = now() + make_interval(secs => $3)
WHERE id = ANY($1::uuid[]) AND owner = $2 AND status IN ('queued', 'in_progress', 'cancelling')
RETURNING id, status
"""

# Runs whose lease passed: their process died (or the caller never answered).
_SWEEP = f"""
WITH gone AS (
    UPDATE runs SET
        status = CASE WHEN status = 'cancelling' THEN 'cancelled' ELSE 'expired' END,
        cancelled_at = CASE WHEN status = 'cancelling' THEN now() ELSE cancelled_at END,
        last_error = CASE
            WHEN status = 'cancelling' THEN last_error
            WHEN status = 'requires_action' THEN jsonb_build_object('code', 'expired',
                'message', 'no tool outputs were submitted before the run expired')
            WHEN status = 'queued' THEN jsonb_build_object('code', 'expired',
                'message', 'the run waited for the busy thread until it expired')
            ELSE jsonb_build_object('code', 'expired',
                'message', 'the process running this run stopped (its lease expired)')
        END,
        owner = NULL, lease_expires_at = NULL, required_action = NULL
    WHERE status IN {LIVE} AND lease_expires_at < now() {{where}}
    RETURNING id, thread_id, status
), steps AS (
    UPDATE run_steps s SET status = CASE WHEN g.status = 'cancelled' THEN 'cancelled'
        ELSE 'expired' END
    FROM gone g WHERE s.run_id = g.id AND s.status = 'in_progress'
)
SELECT id, thread_id FROM gone
"""
SWEEP_ALL = _SWEEP.format(where="")
SWEEP_THREAD = _SWEEP.format(where="AND thread_id = $1")
SWEEP_RUN = _SWEEP.format(where="AND id = $1")

# A run ends without saving a turn (failed, cancelled, expired while waiting). Answers
# whether other runs wait for the thread (then the release is announced).
FINISH = f"""
WITH r AS (
    UPDATE runs SET status = $2, last_error = $3::jsonb, owner = NULL,
        lease_expires_at = NULL,
        failed_at = CASE WHEN $2 IN ('failed', 'expired') THEN now() ELSE failed_at END,
        cancelled_at = CASE WHEN $2 = 'cancelled' THEN now() ELSE cancelled_at END,
        input_tokens = input_tokens + $5, output_tokens = output_tokens + $6, cost = cost + $7
    WHERE id = $1 AND status IN {LIVE} AND ($4::text IS NULL OR owner = $4 OR owner IS NULL)
    RETURNING thread_id
), steps AS (
    UPDATE run_steps SET status = CASE WHEN $2 = 'cancelled' THEN 'cancelled'
        WHEN $2 = 'expired' THEN 'expired' ELSE 'failed' END
    WHERE run_id = $1 AND status = 'in_progress' AND EXISTS (SELECT 1 FROM r)
)
SELECT thread_id, EXISTS (SELECT 1 FROM runs w WHERE w.thread_id = r.thread_id
    AND w.status = 'queued' AND w.id <> $1) AS waiters
FROM r
"""

# Steps written while the run goes on (inserted, or updated by seq), only while the run
# is still ours and in progress; also part of REQUIRE_ACTION.
_UPSERT_STEPS = """
    INSERT INTO run_steps (run_id, tenant_id, thread_id, seq, type, status, details, provider,
        model, input_tokens, output_tokens, cost, completed_at)
    SELECT r.id, r.tenant_id, r.thread_id, x.seq, x.type, x.status, x.details, x.provider,
        x.model, x.input_tokens, x.output_tokens, x.cost,
        CASE WHEN x.status = 'completed' THEN now() END
    FROM r, jsonb_to_recordset($2::jsonb) AS x(seq int, type text, status text,
        details jsonb, provider text, model text, input_tokens int, output_tokens int,
        cost float8)
    ON CONFLICT (run_id, seq) DO UPDATE SET status = excluded.status,
        details = excluded.details, completed_at = excluded.completed_at
"""
WRITE_STEPS = f"""
WITH r AS (
    SELECT id, tenant_id, thread_id FROM runs
    WHERE id = $1 AND owner = $3 AND status = 'in_progress'
), w AS ({_UPSERT_STEPS}    RETURNING 1
)
SELECT count(*) FROM r
"""

# The run stops for client tool outputs: steps, usage so far and the required action.
REQUIRE_ACTION = f"""
WITH r AS (
    UPDATE runs SET status = 'requires_action', required_action = $4::jsonb, owner = NULL,
        lease_expires_at = now() + make_interval(secs => $5),
        expires_at = now() + make_interval(secs => $5),
        input_tokens = input_tokens + $6, output_tokens = output_tokens + $7, cost = cost + $8,
        provider = $9, model = $10
    WHERE id = $1 AND owner = $3 AND status = 'in_progress'
    RETURNING id, tenant_id, thread_id
), w AS ({_UPSERT_STEPS})
SELECT count(*) FROM r
"""

CANCEL = """
WITH r AS (
    UPDATE runs SET
        status = CASE WHEN status IN ('queued', 'requires_action') THEN 'cancelled'
            ELSE 'cancelling' END,
        cancelled_at = CASE WHEN status IN ('queued', 'requires_action') THEN now() END,
        owner = CASE WHEN status IN ('queued', 'requires_action') THEN NULL ELSE owner END,
        lease_expires_at = CASE WHEN status IN ('queued', 'requires_action') THEN NULL
            ELSE lease_expires_at END,
        required_action = CASE WHEN status = 'requires_action' THEN NULL
            ELSE required_action END,
        last_error = jsonb_build_object('code', 'cancelled', 'message', 'the run was cancelled')
    WHERE id = $1 AND ($2::text IS NULL OR tenant_id = $2::text)
      AND status IN ('queued', 'in_progress', 'requires_action')
    RETURNING id, status
), steps AS (
    UPDATE run_steps s SET status = 'cancelled'
    FROM r WHERE s.run_id = r.id AND r.status = 'cancelled' AND s.status = 'in_progress'
)
SELECT status FROM r
"""

GET = f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = $1 AND ($2::text IS NULL OR tenant_id = $2)"
STEPS = f"SELECT {_STEP_COLUMNS} FROM run_steps WHERE run_id = $1 ORDER BY seq"
DELETE_QUEUED = "DELETE FROM runs WHERE id = $1 AND status IN ('queued', 'in_progress')"


def json_value(value: Any) -> Any:
    """A jsonb column as read by asyncpg (text) or SQLAlchemy (decoded)."""
    return json.loads(value) if isinstance(value, str) else value


def to_run(row: Any) -> RunRecord:
    return RunRecord(
        id=row["id"],
        tenant_id=row["tenant_id"],
        thread_id=row["thread_id"],
        agent_id=row["agent_id"],
        job_id=row["job_id"],
        status=row["status"],
        input=row["input"],
        provider=row["provider"],
        model=row["model"],
        overrides=json_value(row["overrides"]) or {},
        required_action=json_value(row["required_action"]),
        last_error=json_value(row["last_error"]),
        incomplete_details=json_value(row["incomplete_details"]),
        input_tokens=int(row["input_tokens"]),
        output_tokens=int(row["output_tokens"]),
        cost=float(row["cost"]),
        metadata=json_value(row["metadata"]) or {},
        idempotency_key=row["idempotency_key"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        completed_at=row["completed_at"],
        cancelled_at=row["cancelled_at"],
        failed_at=row["failed_at"],
        expires_at=row["expires_at"],
        lease_expires_at=row["lease_expires_at"],
    )


def to_step(row: Any) -> RunStep:
    return RunStep(
        id=row["id"],
        run_id=row["run_id"],
        thread_id=row["thread_id"],
        seq=row["seq"],
        type=row["type"],
        status=row["status"],
        details=json_value(row["details"]) or {},
        provider=row["provider"],
        model=row["model"],
        input_tokens=row["input_tokens"],
        output_tokens=row["output_tokens"],
        cost=float(row["cost"]),
        last_error=json_value(row["last_error"]),
        created_at=row["created_at"],
        completed_at=row["completed_at"],
    )


def thread_and_agent(row: Any) -> tuple[ThreadRecord, AgentRecord]:
    """The thread and agent columns of a CLAIM/START/RESUME row."""
    from ai_agents.db.agents import to_record as agent_record
    from ai_agents.db.threads import to_record as thread_record

    thread_row = {c.name: row[c.name] for c in THREAD_RECORD_COLUMNS}
    agent_row = {c.name: row[f"agent__{c.name}"] for c in agents.columns}
    return thread_record(thread_row), agent_record(agent_row)  # type: ignore[arg-type]


async def get(apg: Any, tenant_id: str | None, run_id: UUID) -> RunRecord:
    row = await apg.fetchrow(GET, run_id, tenant_id)
    if row is None:
        raise NotFoundError("run", run_id)
    return to_run(row)


async def queue_waiting(
    apg: Any,
    *,
    run_id: UUID,
    thread_id: UUID,
    tenant_id: str | None,
    text: str,
    overrides: dict[str, Any],
    metadata: dict[str, Any],
    idempotency_key: str | None,
    owner: str,
    lease: float,
    wait: float,
    thread_cap: int,
    tenant_cap: int,
) -> str | None:
    """Insert a run waiting for the busy thread. None when queued; otherwise which cap was
    reached: ``"thread"`` or ``"tenant"``."""
    async with apg.transaction():
        tenant = await apg.fetchval(_THREAD_TENANT, thread_id, tenant_id)
        if tenant is None:
            raise NotFoundError("thread", thread_id)
        await apg.execute(_WAIT_LOCK, f"tenant:{tenant}")
        await apg.execute(_WAIT_LOCK, str(thread_id))
        counts = await apg.fetchrow(_WAITERS, thread_id, tenant)
        if counts["thread_waiters"] >= thread_cap:
            return "thread"
        if counts["tenant_waiters"] >= tenant_cap:
            return "tenant"
        await apg.execute(
            _QUEUE,
            thread_id,
            run_id,
            text,
            json.dumps(overrides),
            json.dumps(metadata),
            idempotency_key,
            owner,
            lease,
            wait,
        )
    return None


async def list_runs(
    apg: Any,
    tenant_id: str | None,
    thread_id: UUID,
    *,
    limit: int,
    cursor: str | None,
    order: str,
) -> Page[RunRecord]:
    """Runs of a thread by creation time (keyset-paginated on ``(created_at, id)``)."""
    if await apg.fetchval(_THREAD_VISIBLE, thread_id, tenant_id) is None:
        raise NotFoundError("thread", thread_id)
    args: list[Any] = [thread_id, limit + 1]
    where = "thread_id = $1"
    op, direction = (">", "ASC") if order == "asc" else ("<", "DESC")
    if cursor:
        created, ident = decode_time_cursor(cursor)
        where += f" AND (created_at, id) {op} ($3, $4)"
        args += [created, ident]
    rows = await apg.fetch(
        f"SELECT {_RUN_COLUMNS} FROM runs WHERE {where} "
        f"ORDER BY created_at {direction}, id {direction} LIMIT $2",
        *args,
    )
    items = [to_run(r) for r in rows[:limit]]
    next_cursor = (
        encode_cursor(items[-1].created_at, items[-1].id) if len(rows) > limit and items else None
    )
    return Page(items, next_cursor)


def steps_json(steps: Sequence[dict[str, Any]]) -> str:
    """Step rows as one JSON parameter (WRITE_STEPS, REQUIRE_ACTION, ai_agents_append)."""
    return json.dumps(list(steps), default=str)
