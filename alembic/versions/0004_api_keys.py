"""API keys of the REST API: hashed secrets, each belonging to a tenant.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE api_keys (
            id UUID DEFAULT gen_random_uuid() NOT NULL,
            tenant_id TEXT NOT NULL,
            name TEXT NOT NULL,
            prefix TEXT NOT NULL,
            key_hash TEXT NOT NULL,
            scopes JSONB DEFAULT '[]'::jsonb NOT NULL,
            rate_limit_rpm INTEGER,
            created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
            revoked_at TIMESTAMP WITH TIME ZONE,
            last_used_at TIMESTAMP WITH TIME ZONE,
            PRIMARY KEY (id),
            CONSTRAINT uq_api_keys_key_hash UNIQUE (key_hash),
            CONSTRAINT ck_api_keys_rpm CHECK (rate_limit_rpm IS NULL OR rate_limit_rpm >= 0)
        )
        """
    )
    op.execute("CREATE INDEX ix_api_keys_tenant_created ON api_keys (tenant_id, created_at)")


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS api_keys")
