"""A thread's job lookups start at its chain floor, past its finished jobs.

Every lookup of a thread's unfinished jobs (is a new job the head? is a claimed job the
oldest unfinished one? which job comes next? does the head wait for a release?) scans
``ix_jobs_thread_unfinished`` from the start of the thread. A job leaves an entry there
for its queued and for its running version, and both stay once it has finished, until
a vacuum removes them: PostgreSQL marks an entry dead for later scans only when the page
did not change between the scan's read and its mark, and on a busy thread the page
always changes (the claims and enqueues of the same thread write to it). Measured under
``bench/queue_throughput.py`` with 8,000 jobs over 40 threads, a lookup read 440 entries
on average, and each job ran five: a job's cost grew with the jobs its thread had run
since the last vacuum.

``threads.jobs_floor`` is a bound below which every job of the thread has finished.
The turn's save of a job (``ai_agents_append_job``) raises it, under the chain lock, to
the created_at of the thread's next unfinished job, or to the present when there is
none; the enqueue, under the same lock, gives a new job a created_at not below it (so
even a clock that steps back cannot put a new job under the floor). Finished jobs never
become unfinished, so a floor, once committed, stays true: a lookup that reads a stale
one reads more entries, never a wrong answer. The lookups of the enqueue, the claim
(``ai_agents.jobs.rows``), the save's next job and its waiters start at the floor. The
rare paths (a failed or cancelled job, the slow claim, the queue's rebuild) still scan
the whole thread: they do not move the floor and need no bound to be right.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import sqlalchemy as sa

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

FLOOR_OF_THREAD = "(SELECT t.jobs_floor FROM threads AS t WHERE t.id = {thread})"

# ai_agents_enqueue_job (0012): the chain lock first, then the thread's row read once
# with its floor (a floor read before the lock could be raised meanwhile), a created_at
# not below it, and the head check from the floor on.
ENQUEUE_READ_0012 = """    IF p_tenant IS NULL THEN
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
"""
ENQUEUE_READ = """    PERFORM pg_advisory_xact_lock(p_lock_class, p_lock_key);
    IF p_tenant IS NULL THEN
        SELECT t.tenant_id, t.agent_id, t.jobs_floor INTO v_tenant, v_agent, v_floor
        FROM threads t WHERE t.id = p_thread;
    ELSE
        SELECT t.tenant_id, t.agent_id, t.jobs_floor INTO v_tenant, v_agent, v_floor
        FROM threads t WHERE t.id = p_thread AND t.tenant_id = p_tenant;
    END IF;
    IF NOT FOUND THEN
        RETURN;
    END IF;
"""
ENQUEUE_EDITS = [
    ("    v_head boolean;\n", "    v_head boolean;\n    v_floor timestamptz;\n"),
    (ENQUEUE_READ_0012, ENQUEUE_READ),
    (
        "        clock_timestamp())  -- the order of enqueues, taken under the chain lock",
        "        greatest(clock_timestamp(), v_floor))  -- the order of enqueues, under the\n"
        "        -- chain lock, never below the floor",
    ),
    (
        "          AND o.status IN ('queued', 'running') AND o.id <> j.id);",
        "          AND o.status IN ('queued', 'running') AND o.created_at >= v_floor\n"
        "          AND o.id <> j.id);",
    ),
]

# The waiters of a save (ai_agents_append and ai_agents_append_job): the head from the
# floor on.
WAITERS_EDIT = (
    "                WHERE h.thread_id = p_thread AND h.status IN ('queued', 'running')\n",
    "                WHERE h.thread_id = p_thread AND h.status IN ('queued', 'running')\n"
    f"                  AND h.created_at >= {FLOOR_OF_THREAD.format(thread='p_thread')}\n",
)

# ai_agents_append_job (0013): the next job from the floor on, and the new floor (its
# created_at, or the present when the thread has no unfinished job left) written with
# the thread's row, which the save updates anyway.
APPEND_JOB_EDITS = [
    ("    v_next_status text;\n", "    v_next_status text;\n    v_floor timestamptz;\n"),
    (
        "        SELECT o.id, o.priority, o.status INTO v_next_id, v_next_priority, "
        "v_next_status\n",
        "        SELECT o.id, o.priority, o.status, o.created_at\n"
        "        INTO v_next_id, v_next_priority, v_next_status, v_floor\n",
    ),
    (
        "        WHERE o.thread_id = j.thread_id AND o.status IN ('queued', 'running')\n"
        "          AND o.id <> j.id\n"
        "        ORDER BY o.created_at, o.id LIMIT 1;\n",
        "        WHERE o.thread_id = j.thread_id AND o.status IN ('queued', 'running')\n"
        f"          AND o.created_at >= {FLOOR_OF_THREAD.format(thread='j.thread_id')}\n"
        "          AND o.id <> j.id\n"
        "        ORDER BY o.created_at, o.id LIMIT 1;\n"
        "        v_floor := coalesce(v_floor, clock_timestamp());\n",
    ),
    (
        "        last_used_at = now(),\n",
        "        last_used_at = now(), jobs_floor = greatest(t.jobs_floor, v_floor),\n",
    ),
    WAITERS_EDIT,
]


def _migration(name: str) -> ModuleType:
    path = Path(__file__).with_name(name)
    spec = importlib.util.spec_from_file_location(f"ai_agents_migration_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _edited(function: str, edits: list[tuple[str, str]], what: str) -> str:
    for old, new in edits:
        if function.count(old) != 1:
            raise RuntimeError(f"migration 0014: {what} changed ({old!r})")
        function = function.replace(old, new)
    return function


def _functions() -> list[str]:
    """The three functions of 0012 and 0013 with their lookups bounded by the floor."""
    before = _migration("0012_cheaper_job_statements.py")
    return [
        _edited(before.ENQUEUE, ENQUEUE_EDITS, "ai_agents_enqueue_job of 0012"),
        _edited(before._append_function(), [WAITERS_EDIT], "ai_agents_append of 0012"),
        _edited(
            _migration("0013_enqueue_jobs_together.py")._append_job_function(),
            APPEND_JOB_EDITS,
            "ai_agents_append_job of 0013",
        ),
    ]


def upgrade() -> None:
    op.add_column(
        "threads",
        sa.Column(
            "jobs_floor",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("'-infinity'"),
        ),
    )
    for function in _functions():
        op.execute(function)


def downgrade() -> None:
    before = _migration("0012_cheaper_job_statements.py")
    op.execute(before.ENQUEUE)
    op.execute(before._append_function())
    op.execute(_migration("0013_enqueue_jobs_together.py")._append_job_function())
    op.drop_column("threads", "jobs_floor")
