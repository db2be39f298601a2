"""The hot functions plan their statements once per session.

PostgreSQL plans a cached statement (one in a PL/pgSQL function, or a prepared one) with
the parameters of each of its first five executions in a session ("custom plans"), and
then uses one generic plan only if its estimate is no higher than theirs; otherwise it
plans at every execution. The statements of the turn's save and of the enqueue are
lookups and writes by key whose plan does not depend on the values, so that planning
bought nothing, and each worker process opens about ten sessions.
``bench/queue_throughput.py`` measured the PostgreSQL backends' CPU per job at 6.1 ms
with four worker processes and 4.6 ms with one before, 5.2 and 4.3 after.

``plan_cache_mode = force_generic_plan`` on the functions makes each of their statements
planned once per session. A function's ``SET`` applies while it runs and is undone when
it returns (also behind PgBouncer in transaction mode: nothing is left on the session).
``CREATE OR REPLACE FUNCTION`` drops a function's settings: a later migration that
redefines one of these functions must set it again (:data:`GENERIC_PLANS`).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

#: The functions of the hot paths: the turn's save (with and without a job), the
#: enqueue of one job and of several, and a job's other outcomes.
FUNCTIONS = (
    "ai_agents_append",
    "ai_agents_append_job",
    "ai_agents_enqueue_job",
    "ai_agents_enqueue_jobs",
    "ai_agents_finish_job",
)
GENERIC_PLANS = "SET plan_cache_mode = force_generic_plan"


def upgrade() -> None:
    for name in FUNCTIONS:
        op.execute(f"ALTER FUNCTION {name} {GENERIC_PLANS}")


def downgrade() -> None:
    for name in FUNCTIONS:
        op.execute(f"ALTER FUNCTION {name} RESET plan_cache_mode")
