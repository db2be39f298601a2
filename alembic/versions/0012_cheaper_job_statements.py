"""Cheaper job statements: enqueue without an UPDATE, waiters found by index probes.

Measured with ``pg_stat_statements`` under ``bench/queue_throughput.py``:

- ``ai_agents_enqueue_job`` inserted the job, then its run, then updated the job with the
  run's id (a second version of the row, in every index of ``jobs``), and planned its
  ``INSERT ... SELECT`` statements on every call (their ``p_tenant IS NULL OR ...``
  clause made PostgreSQL prefer a custom plan each time). Now the run's id is drawn
  first, the thread is read once, and both rows are inserted with ``VALUES``: plans
  that are built once per connection, and no UPDATE.
- ``ai_agents_append`` looked for waiters among every queued run of the thread, and for
  each job run it found checked the job's status: with a backlog of jobs on a thread,
  about ten rows per saved turn. A run that waits for the thread's release is either a
  caller's (no job: found in the new partial index ``ix_runs_thread_waiting_callers``)
  or the run of the thread's head job once a worker took it (only the head of a thread's
  chain of jobs ever runs). Both are now index probes.
- A job's outcome took its own statement after the turn's save (``ai_agents_finish_job``:
  chain lock, the job's row, the thread's next job): a round trip and a commit per job.
  ``ai_agents_append_job`` saves the turn (``ai_agents_append``) and records the job's
  success with it, in one statement and one transaction, when the worker still owns the
  job; otherwise it saves the turn alone and the worker records the outcome as before.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from alembic import op

revision = "0012"
down_revision = "0011"
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
    v_tenant text;
    v_agent uuid;
    v_run uuid := CASE WHEN p_with_run THEN gen_random_uuid() END;
    v_head boolean;
BEGIN
    IF p_tenant IS NULL THEN
        SELECT t.tenant_id, t.agent_id INTO v_tenant, v_agent FROM threads t
        WHERE t.id = p_thread;
    ELSE
        SELECT t.tenant_id, t.agent_id INTO v_tenant, v_agent FROM threads t
        WHERE t.id = p_thread AND t.tenant_id = p_tenant;
    END IF;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    PERFORM pg_advisory_xact_lock(p_lock_class, p_lock_key);
    INSERT INTO jobs (tenant_id, thread_id, input, priority, max_attempts, metadata,
        run_id, created_at)
    VALUES (v_tenant, p_thread, p_input, p_priority, p_max_attempts, p_metadata, v_run,
        clock_timestamp())  -- the order of enqueues, taken under the chain lock
    RETURNING * INTO j;
    IF p_with_run THEN
        INSERT INTO runs (id, tenant_id, thread_id, agent_id, job_id, status, input,
            overrides, metadata, idempotency_key)
        VALUES (v_run, v_tenant, p_thread, v_agent, j.id, 'queued', p_input,
            p_run_overrides, p_metadata || jsonb_build_object('job_id', j.id::text),
            'job:' || j.id::text);
    END IF;
    v_head := NOT EXISTS (
        SELECT 1 FROM jobs o WHERE o.thread_id = p_thread
          AND o.status IN ('queued', 'running') AND o.id <> j.id);
    RETURN QUERY SELECT j, v_head;
END;
$$
"""

WAITERS_0011 = """v_waiters := EXISTS (SELECT 1 FROM runs AS w
            WHERE w.thread_id = p_thread AND w.status = 'queued' AND (w.job_id IS NULL
              OR EXISTS (SELECT 1 FROM jobs AS j
                  WHERE j.id = w.job_id AND j.status = 'running')));"""
WAITERS = """v_waiters := EXISTS (SELECT 1 FROM runs AS w
            WHERE w.thread_id = p_thread AND w.status = 'queued' AND w.job_id IS NULL)
          OR EXISTS (SELECT 1 FROM (SELECT h.status, h.run_id FROM jobs AS h
                WHERE h.thread_id = p_thread AND h.status IN ('queued', 'running')
                ORDER BY h.created_at, h.id LIMIT 1) AS head
              JOIN runs AS w ON w.id = head.run_id
              WHERE head.status = 'running' AND w.status = 'queued');"""


APPEND_ARGUMENTS = """p_thread uuid, p_tenant text, p_run uuid, p_idempotency_key text,
    p_ids uuid[], p_roles text[], p_contents text[], p_tool_calls jsonb[],
    p_tool_call_ids text[], p_tool_names text[], p_token_counts integer[],
    p_sizes integer[], p_providers text[], p_models text[], p_input_tokens integer[],
    p_output_tokens integer[], p_costs double precision[], p_metadata jsonb[],
    p_thread_limit bigint, p_user_limit bigint, p_tenant_limit bigint,
    p_memory_state jsonb, p_run_owner text, p_run_status text, p_run_provider text,
    p_run_model text, p_run_input bigint, p_run_output bigint,
    p_run_cost double precision, p_run_incomplete jsonb, p_run_steps jsonb"""

APPEND_JOB = f"""
CREATE OR REPLACE FUNCTION ai_agents_append_job(
    {APPEND_ARGUMENTS},
    p_lock_class int, p_lock_key int, p_job uuid, p_worker text, p_result jsonb
) RETURNS TABLE (out_id uuid, out_seq bigint, out_created_at timestamptz,
    out_waiters boolean, job jobs, next_id uuid, next_priority text, next_status text)
LANGUAGE plpgsql AS $$
DECLARE
    v_ids uuid[];
    v_seqs bigint[];
    v_created timestamptz[];
    v_waiters boolean;
    j jobs;
    v_next_id uuid;
    v_next_priority text;
    v_next_status text;
BEGIN
    -- The job's success first, as ai_agents_finish_job records it, while the worker owns
    -- it (the chain lock before the thread's and the user's rows, which the save locks:
    -- those are held until the commit, so nothing is done after them that need not be).
    PERFORM pg_advisory_xact_lock(p_lock_class, p_lock_key);
    UPDATE jobs SET status = 'succeeded', finished_at = now(), result = p_result,
        error = NULL
    WHERE id = p_job AND worker = p_worker AND status = 'running'
    RETURNING * INTO j;
    IF FOUND THEN
        SELECT o.id, o.priority, o.status INTO v_next_id, v_next_priority, v_next_status
        FROM jobs o
        WHERE o.thread_id = j.thread_id AND o.status IN ('queued', 'running')
          AND o.id <> j.id
        ORDER BY o.created_at, o.id LIMIT 1;
    END IF;
    -- The turn (it raises if the run is no longer the worker's: nothing is kept).
    SELECT array_agg(a.out_id), array_agg(a.out_seq), array_agg(a.out_created_at),
        bool_or(a.out_waiters)
    INTO v_ids, v_seqs, v_created, v_waiters
    FROM ai_agents_append(p_thread, p_tenant, p_run, p_idempotency_key, p_ids, p_roles,
        p_contents, p_tool_calls, p_tool_call_ids, p_tool_names, p_token_counts, p_sizes,
        p_providers, p_models, p_input_tokens, p_output_tokens, p_costs, p_metadata,
        p_thread_limit, p_user_limit, p_tenant_limit, p_memory_state, p_run_owner,
        p_run_status, p_run_provider, p_run_model, p_run_input, p_run_output, p_run_cost,
        p_run_incomplete, p_run_steps) AS a;
    RETURN QUERY SELECT s.id, s.seq, s.created_at, v_waiters, j, v_next_id,
        v_next_priority, v_next_status
    FROM unnest(v_ids, v_seqs, v_created) AS s(id, seq, created_at);
END;
$$
"""


def _migration(name: str) -> ModuleType:
    path = Path(__file__).with_name(name)
    spec = importlib.util.spec_from_file_location(f"ai_agents_migration_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _types(arguments: str) -> str:
    """``p_a int, p_b text`` -> ``int, text`` (a DROP FUNCTION's signature)."""
    return ", ".join(a.split(None, 1)[1] for a in " ".join(arguments.split()).split(", "))


def _append_function() -> str:
    """0011's ``ai_agents_append`` with the waiters found by index probes."""
    function: str = _migration("0011_job_functions.py")._append_function()
    if WAITERS_0011 not in function:
        raise RuntimeError("migration 0012: ai_agents_append of 0011 changed; update WAITERS")
    return function.replace(WAITERS_0011, WAITERS)


def upgrade() -> None:
    op.create_index(
        "ix_runs_thread_waiting_callers",
        "runs",
        ["thread_id"],
        postgresql_where="status = 'queued' AND job_id IS NULL",
    )
    op.execute(ENQUEUE)
    op.execute(_append_function())
    op.execute(APPEND_JOB)


def downgrade() -> None:
    op.execute(
        f"DROP FUNCTION IF EXISTS ai_agents_append_job({_types(APPEND_ARGUMENTS)}, "
        "int, int, uuid, text, jsonb)"
    )
    previous = _migration("0011_job_functions.py")
    op.execute(previous._append_function())
    op.execute(previous.ENQUEUE)
    op.drop_index("ix_runs_thread_waiting_callers", table_name="runs")
