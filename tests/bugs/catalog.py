"""Deliberate bugs: each one breaks a guarantee the suite claims to prove.

`make deliberate-bugs` (``python -m tests.bugs.run``) applies each bug to a copy of the
repository and runs the tests named here; a bug counts as caught when one of them fails
within the time limit. ``tests/unit/test_deliberate_bug_catalog.py`` keeps the catalog
honest in the normal suite: every ``old`` text must occur exactly once in its file, so a
refactoring that moves the code breaks that test instead of silently disarming a bug.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Edit:
    path: str
    old: str
    new: str


@dataclass(frozen=True)
class DeliberateBug:
    name: str
    what: str
    edits: tuple[Edit, ...]
    tests: tuple[str, ...]


BUGS: tuple[DeliberateBug, ...] = (
    DeliberateBug(
        name="thread-lock-removed",
        what="two runs may hold one thread: the claim ignores the thread's active run",
        edits=(
            Edit(
                "ai_agents/runs/rows.py",
                "    ON CONFLICT (thread_id) WHERE status IN {ACTIVE} DO NOTHING\n",
                "    ON CONFLICT DO NOTHING\n",
            ),
            Edit(
                "alembic/versions/0006_runs.py",
                'f"CREATE UNIQUE INDEX uq_runs_thread_active ON runs',
                'f"CREATE INDEX uq_runs_thread_active ON runs',
            ),
            Edit(
                "ai_agents/db/tables.py",
                'Index("uq_runs_thread_active", "thread_id", unique=True,',
                'Index("uq_runs_thread_active", "thread_id", unique=False,',
            ),
        ),
        tests=("tests/integration/test_run_serialization.py",),
    ),
    DeliberateBug(
        name="window-off-by-one",
        what="the limiter admits one request more than the window's limit",
        edits=(
            Edit(
                "ai_agents/ratelimit/limiter.py",
                "  if limit >= 0 and card + 1 > limit then\n",
                "  if limit >= 0 and card > limit then\n",
            ),
        ),
        tests=("tests/integration/test_rate_limiter.py",),
    ),
    DeliberateBug(
        name="token-total-never-decremented",
        what="tokens that leave the window are never taken off the window's total",
        edits=(
            Edit(
                "ai_agents/ratelimit/limiter.py",
                "    return redis.call('DECRBY', skey, freed)\n",
                "    return tonumber(raw)\n",
            ),
        ),
        tests=("tests/integration/test_rate_limiter.py",),
    ),
    DeliberateBug(
        name="replay-ignored",
        what="a run repeated with the same idempotency key answers again",
        edits=(
            Edit(
                "ai_agents/runs/rows.py",
                "    WHERE $3::text IS NOT NULL AND m.thread_id = $1",
                "    WHERE false AND m.thread_id = $1",
            ),
        ),
        tests=("tests/integration/test_runs.py", "tests/integration/test_runner.py"),
    ),
    DeliberateBug(
        name="tenant-clause-dropped-from-run-path",
        what="a run claims a thread of another tenant",
        edits=(
            Edit(
                "ai_agents/runs/rows.py",
                "    FROM threads t JOIN agents a ON a.id = t.agent_id\n"
                "    WHERE t.id = $1 AND ($2::text IS NULL OR t.tenant_id = $2::text)\n"
                "), prior AS (",
                "    FROM threads t JOIN agents a ON a.id = t.agent_id\n"
                "    WHERE t.id = $1 AND ($2::text IS NULL OR $2::text IS NOT NULL)\n"
                "), prior AS (",
            ),
        ),
        tests=("tests/integration/test_tenancy_side_effects.py",),
    ),
    DeliberateBug(
        name="orphan-tool-messages-kept",
        what="history normalization keeps tool results that answer no call",
        edits=(
            Edit(
                "ai_agents/providers/history.py",
                "            index += 1  # orphan: not right after an assistant message with calls\n",
                "            out.append(message)\n            index += 1\n",
            ),
        ),
        tests=("tests/unit/test_history.py",),
    ),
)
