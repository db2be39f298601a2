"""Runs and run steps: a run is a row, not a held connection.

One active run per thread is enforced by a partial unique index over the active
statuses; a run's process proves it is alive by extending ``lease_expires_at``. Agents
gain ``client_tools`` (function tools the caller executes: ``requires_action``), jobs a
link to the run they execute.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_ACTIVE = "('in_progress', 'requires_action', 'cancelling')"


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE runs (
            id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
            tenant_id TEXT NOT NULL,
            thread_id UUID NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
            agent_id UUID NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
            job_id UUID,
            status TEXT NOT NULL,
            input TEXT NOT NULL,
            provider TEXT,
            model TEXT,
            overrides JSONB NOT NULL DEFAULT '{}'::jsonb,
            required_action JSONB,
            last_error JSONB,
            incomplete_details JSONB,
            input_tokens BIGINT NOT NULL DEFAULT 0,
            output_tokens BIGINT NOT NULL DEFAULT 0,
            cost DOUBLE PRECISION NOT NULL DEFAULT 0,
            metadata JSONB NOT NULL DEFAULT '{}'::jsonb,
            idempotency_key TEXT,
            owner TEXT,
            lease_expires_at TIMESTAMPTZ,
            created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            started_at TIMESTAMPTZ,
            completed_at TIMESTAMPTZ,
            cancelled_at TIMESTAMPTZ,
            failed_at TIMESTAMPTZ,
            expires_at TIMESTAMPTZ,
            CONSTRAINT ck_runs_status CHECK (status IN ('queued', 'in_progress',
                'requires_action', 'cancelling', 'cancelled', 'failed', 'completed',
                'incomplete', 'expired'))
        )
        """
    )
    op.execute(
        f"CREATE UNIQUE INDEX uq_runs_thread_active ON runs (thread_id) WHERE status IN {_ACTIVE}"
    )
    op.execute("CREATE INDEX ix_runs_thread_created ON runs (thread_id, created_at, id)")
    op.execute("CREATE INDEX ix_runs_tenant_created ON runs (tenant_id, created_at)")
    # Runs waiting for their thread, oldest first: the order of waiters, and the check
    # "does anyone wait for this thread?" when a run ends (an index scan of the few).
    op.execute(
        "CREATE INDEX ix_runs_waiting ON runs (thread_id, created_at, id) WHERE status = 'queued'"
    )
    # The sweep that expires runs whose process died or whose caller never answered.
    op.execute(
        "CREATE INDEX ix_runs_lease ON runs (lease_expires_at) "
        "WHERE status IN ('queued', 'in_progress', 'requires_action', 'cancelling')"
    )
    op.execute(
        """
        CREATE TABLE run_steps (
            id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
            run_id UUID NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
            tenant_id TEXT NOT NULL,
            thread_id UUID NOT NULL,
            seq INTEGER NOT NULL,
            type TEXT NOT NULL,
            status TEXT NOT NULL,
            details JSONB NOT NULL,
            provider TEXT,
            model TEXT,
            input_tokens INTEGER NOT NULL DEFAULT 0,
            output_tokens INTEGER NOT NULL DEFAULT 0,
            cost DOUBLE PRECISION NOT NULL DEFAULT 0,
            last_error JSONB,
            created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            completed_at TIMESTAMPTZ,
            CONSTRAINT uq_run_steps_run_seq UNIQUE (run_id, seq),
            CONSTRAINT ck_run_steps_type CHECK (type IN ('message_creation', 'tool_calls')),
            CONSTRAINT ck_run_steps_status CHECK (status IN ('in_progress', 'completed',
                'failed', 'cancelled', 'expired'))
        )
        """
    )
    op.execute("ALTER TABLE agents ADD COLUMN client_tools JSONB NOT NULL DEFAULT '[]'::jsonb")
    op.execute("ALTER TABLE jobs ADD COLUMN run_id UUID")


def downgrade() -> None:
    op.execute("ALTER TABLE jobs DROP COLUMN IF EXISTS run_id")
    op.execute("ALTER TABLE agents DROP COLUMN IF EXISTS client_tools")
    op.execute("DROP TABLE IF EXISTS run_steps")
    op.execute("DROP TABLE IF EXISTS runs")
