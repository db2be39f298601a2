"""One round trip to enqueue a job and one to finish it: server-side functions.

Both take the thread's chain lock (``pg_advisory_xact_lock(class, key)``, the lock the
client takes in :func:`ai_agents.jobs.rows.lock_chain`) before they look at the thread's
jobs, so a job enqueued while its predecessor finishes is never left unpublished. Each
statement of a PL/pgSQL function takes a new snapshot, so what follows the lock sees
every change committed before it was granted; in one plain SQL statement it would not.

``ai_agents_enqueue_job`` inserts the job (and, unless ``p_with_run`` is false, its
queued run, whose idempotency key is ``job:<id>``) for a thread the tenant can see, and
answers the job row and whether it is the thread's head. No row: the thread is not
visible. ``ai_agents_finish_job`` records the outcome of a job the worker still owns and
answers it with the thread's next unfinished job; no row: the worker lost the job.

``ai_agents_append`` (migration 0007) now reports waiters only for runs that wait for the
thread's release: runs without a job, and job runs whose job a worker took. A queued job's
run is started when its job is delivered, not by the release, so a job's turn no longer
announces a release to every process for the thread's next job.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

ENQUEUE = r"""
CREATE OR REPLACE FUNCTION ai_agents_enqueue_job(
    p_lock_class int, p_lock_key int, p_thread uuid, p_tenant text, p_input text,
    p_priority text, p_max_attempts int, p_metadata jsonb, p_with_run boolean,
    p_run_overrides jsonb
) RETURNS TABLE (job jobs, is_head boolean)
LANGUAGE plpgsql AS $$
DECLARE
    j jobs;
    new_run uuid;
BEGIN
    PERFORM pg_advisory_xact_lock(p_lock_class, p_lock_key);
    INSERT INTO jobs (tenant_id, thread_id, input, priority, max_attempts, metadata,
        created_at)
    SELECT t.tenant_id, t.id, p_input, p_priority, p_max_attempts, p_metadata,
        clock_timestamp()  -- the order of enqueues, taken under the chain lock
    FROM threads t WHERE t.id = p_thread AND (p_tenant IS NULL OR t.tenant_id = p_tenant)
    RETURNING * INTO j;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF p_with_run THEN
        INSERT INTO runs (tenant_id, thread_id, agent_id, job_id, status, input, overrides,
            metadata, idempotency_key)
        SELECT t.tenant_id, t.id, t.agent_id, j.id, 'queued', j.input, p_run_overrides,
            j.metadata || jsonb_build_object('job_id', j.id::text), 'job:' || j.id::text
        FROM threads t WHERE t.id = p_thread
        RETURNING id INTO new_run;
        UPDATE jobs SET run_id = new_run WHERE id = j.id;
        j.run_id := new_run;
    END IF;
    RETURN QUERY SELECT j, NOT EXISTS (
        SELECT 1 FROM jobs o WHERE o.thread_id = j.thread_id
          AND o.status IN ('queued', 'running') AND o.id <> j.id);
END;
$$
"""

FINISH = r"""
CREATE OR REPLACE FUNCTION ai_agents_finish_job(
    p_lock_class int, p_lock_key int, p_id uuid, p_worker text, p_status text,
    p_result jsonb, p_error jsonb
) RETURNS TABLE (job jobs, next_id uuid, next_priority text, next_status text)
LANGUAGE plpgsql AS $$
DECLARE
    j jobs;
BEGIN
    PERFORM pg_advisory_xact_lock(p_lock_class, p_lock_key);
    UPDATE jobs SET status = p_status, finished_at = now(), result = p_result,
        error = p_error
    WHERE id = p_id AND worker = p_worker AND status = 'running'
    RETURNING * INTO j;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    RETURN QUERY SELECT j, o.id, o.priority, o.status
    FROM (SELECT 1) one
    LEFT JOIN LATERAL (
        SELECT id, priority, status FROM jobs
        WHERE thread_id = j.thread_id AND status IN ('queued', 'running') AND id <> j.id
        ORDER BY created_at, id LIMIT 1
    ) o ON true;
END;
$$
"""


WAITERS_0007 = """v_waiters := EXISTS (SELECT 1 FROM runs AS w
            WHERE w.thread_id = p_thread AND w.status = 'queued');"""
WAITERS = """v_waiters := EXISTS (SELECT 1 FROM runs AS w
            WHERE w.thread_id = p_thread AND w.status = 'queued' AND (w.job_id IS NULL
              OR EXISTS (SELECT 1 FROM jobs AS j
                  WHERE j.id = w.job_id AND j.status = 'running')));"""


def _migration_0007() -> ModuleType:
    path = Path(__file__).with_name("0007_append_function.py")
    spec = importlib.util.spec_from_file_location("ai_agents_migration_0007", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _append_function() -> str:
    """0007's ``ai_agents_append`` with the narrower waiters clause."""
    function: str = _migration_0007().FUNCTION
    if WAITERS_0007 not in function:
        raise RuntimeError("migration 0011: ai_agents_append of 0007 changed; update WAITERS")
    return function.replace(WAITERS_0007, WAITERS)


def upgrade() -> None:
    op.execute(ENQUEUE)
    op.execute(FINISH)
    op.execute(_append_function())


def downgrade() -> None:
    op.execute(_migration_0007().FUNCTION)
    op.execute(
        "DROP FUNCTION IF EXISTS ai_agents_finish_job(int, int, uuid, text, text, jsonb, jsonb)"
    )
    op.execute(
        "DROP FUNCTION IF EXISTS ai_agents_enqueue_job("
        "int, int, uuid, text, text, text, int, jsonb, boolean, jsonb)"
    )
