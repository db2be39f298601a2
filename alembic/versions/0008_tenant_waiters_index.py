"""Counting a tenant's waiting runs (the per-tenant cap on waiters) with an index.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "CREATE INDEX ix_runs_tenant_waiting ON runs (tenant_id) "
        "WHERE status = 'queued' AND job_id IS NULL"
    )


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_runs_tenant_waiting")
