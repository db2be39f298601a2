"""Background jobs: the durable record of queued agent runs (Redis streams carry the ids).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE jobs (
            id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
            tenant_id TEXT NOT NULL,
            thread_id UUID NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
            input TEXT NOT NULL,
            priority TEXT NOT NULL DEFAULT 'normal',
            status TEXT NOT NULL DEFAULT 'queued',
            attempts INTEGER NOT NULL DEFAULT 0,
            max_attempts INTEGER NOT NULL DEFAULT 3,
            cancel_requested BOOLEAN NOT NULL DEFAULT false,
            created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            started_at TIMESTAMPTZ,
            finished_at TIMESTAMPTZ,
            heartbeat_at TIMESTAMPTZ,
            worker TEXT,
            result JSONB,
            error JSONB,
            metadata JSONB NOT NULL DEFAULT '{}'::jsonb,
            CONSTRAINT ck_jobs_priority CHECK (priority IN ('high', 'normal', 'low')),
            CONSTRAINT ck_jobs_status
                CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
            CONSTRAINT ck_jobs_max_attempts CHECK (max_attempts >= 1)
        )
        """
    )
    op.execute("CREATE INDEX ix_jobs_tenant_created ON jobs (tenant_id, created_at)")
    op.execute("CREATE INDEX ix_jobs_thread_created ON jobs (thread_id, created_at)")
    op.execute(
        "CREATE INDEX ix_jobs_thread_unfinished ON jobs (thread_id, created_at, id) "
        "WHERE status IN ('queued', 'running')"
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS jobs")
