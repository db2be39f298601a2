"""MCP servers configured on agents: where to connect, and the secrets to send, encrypted.

One row per server of an agent (``name`` unique per agent, it prefixes the server's
tool names). ``secrets`` holds the Fernet-encrypted JSON of ``{headers, bearer_token}``;
``header_names`` and ``has_bearer_token`` are what may be shown. ``version`` grows on
every change so a pooled connection of an older configuration is replaced.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE agent_mcp_servers (
            id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
            tenant_id TEXT NOT NULL,
            agent_id UUID NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
            name TEXT NOT NULL,
            transport TEXT NOT NULL,
            url TEXT,
            command TEXT,
            secrets BYTEA,
            header_names JSONB NOT NULL DEFAULT '[]'::jsonb,
            has_bearer_token BOOLEAN NOT NULL DEFAULT false,
            allowed_tools JSONB,
            timeout DOUBLE PRECISION,
            version INTEGER NOT NULL DEFAULT 1,
            created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            CONSTRAINT uq_agent_mcp_servers_agent_name UNIQUE (agent_id, name),
            CONSTRAINT ck_agent_mcp_servers_transport CHECK (transport IN ('streamable_http',
                'sse', 'stdio')),
            CONSTRAINT ck_agent_mcp_servers_target CHECK (
                (transport = 'stdio' AND command IS NOT NULL AND url IS NULL)
                OR (transport <> 'stdio' AND url IS NOT NULL AND command IS NULL))
        )
        """
    )
    op.execute(
        "CREATE INDEX ix_agent_mcp_servers_tenant_agent ON agent_mcp_servers (tenant_id, agent_id)"
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS agent_mcp_servers")
