"""Initial schema: tenants, agents, threads, messages, user_memory, user_usage.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_TABLES = [
    """
    CREATE TABLE agents (
        id UUID DEFAULT gen_random_uuid() NOT NULL,
        tenant_id TEXT DEFAULT 'default' NOT NULL,
        name TEXT NOT NULL,
        role TEXT NOT NULL,
        goal TEXT,
        constraints JSONB DEFAULT '[]'::jsonb NOT NULL,
        personality JSONB,
        examples JSONB DEFAULT '[]'::jsonb NOT NULL,
        tools JSONB DEFAULT '[]'::jsonb NOT NULL,
        provider TEXT NOT NULL,
        model TEXT NOT NULL,
        fallbacks JSONB DEFAULT '[]'::jsonb NOT NULL,
        memory_strategy TEXT DEFAULT 'last_messages' NOT NULL,
        memory_config JSONB DEFAULT '{}'::jsonb NOT NULL,
        settings JSONB DEFAULT '{}'::jsonb NOT NULL,
        metadata JSONB DEFAULT '{}'::jsonb NOT NULL,
        created_by TEXT,
        is_active BOOLEAN DEFAULT true NOT NULL,
        created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
        updated_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
        PRIMARY KEY (id)
    )
    """,
    """
    CREATE INDEX ix_agents_tenant_created ON agents (tenant_id, created_at, id)
    """,
    """
    CREATE TABLE tenants (
        id TEXT NOT NULL,
        name TEXT,
        max_thread_bytes BIGINT,
        max_user_bytes BIGINT,
        max_total_bytes BIGINT,
        created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
        updated_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
        PRIMARY KEY (id)
    )
    """,
    """
    CREATE TABLE user_usage (
        tenant_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        total_bytes BIGINT DEFAULT '0' NOT NULL,
        input_tokens BIGINT DEFAULT '0' NOT NULL,
        output_tokens BIGINT DEFAULT '0' NOT NULL,
        cost FLOAT DEFAULT '0' NOT NULL,
        PRIMARY KEY (tenant_id, user_id)
    )
    """,
    """
    CREATE TABLE threads (
        id UUID DEFAULT gen_random_uuid() NOT NULL,
        tenant_id TEXT DEFAULT 'default' NOT NULL,
        agent_id UUID NOT NULL,
        user_id TEXT,
        title TEXT,
        total_bytes BIGINT DEFAULT '0' NOT NULL,
        message_count INTEGER DEFAULT '0' NOT NULL,
        last_seq BIGINT DEFAULT '0' NOT NULL,
        input_tokens BIGINT DEFAULT '0' NOT NULL,
        output_tokens BIGINT DEFAULT '0' NOT NULL,
        cost FLOAT DEFAULT '0' NOT NULL,
        created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
        updated_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
        last_used_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
        provider_state JSONB DEFAULT '{}'::jsonb NOT NULL,
        memory_state JSONB DEFAULT '{}'::jsonb NOT NULL,
        archived BOOLEAN DEFAULT false NOT NULL,
        metadata JSONB DEFAULT '{}'::jsonb NOT NULL,
        forked_from_id UUID,
        forked_at_seq BIGINT,
        PRIMARY KEY (id),
        FOREIGN KEY(agent_id) REFERENCES agents (id) ON DELETE CASCADE
    )
    """,
    """
    CREATE INDEX idx_threads_agent ON threads (agent_id)
    """,
    """
    CREATE INDEX idx_threads_last_used ON threads (last_used_at)
    """,
    """
    CREATE INDEX idx_threads_user ON threads (user_id)
    """,
    """
    CREATE INDEX ix_threads_tenant_agent_used ON threads (tenant_id, agent_id, last_used_at DESC, id DESC)
    """,
    """
    CREATE INDEX ix_threads_tenant_user_used ON threads (tenant_id, user_id, last_used_at DESC, id DESC)
    """,
    """
    CREATE TABLE user_memory (
        id UUID DEFAULT gen_random_uuid() NOT NULL,
        tenant_id TEXT DEFAULT 'default' NOT NULL,
        user_id TEXT NOT NULL,
        agent_id UUID,
        key TEXT NOT NULL,
        value TEXT,
        created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
        updated_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
        PRIMARY KEY (id),
        CONSTRAINT uq_user_memory_key UNIQUE NULLS NOT DISTINCT (tenant_id, user_id, agent_id, key),
        FOREIGN KEY(agent_id) REFERENCES agents (id) ON DELETE CASCADE
    )
    """,
    """
    CREATE INDEX idx_user_memory_user ON user_memory (tenant_id, user_id, agent_id)
    """,
    """
    CREATE TABLE messages (
        id UUID DEFAULT gen_random_uuid() NOT NULL,
        thread_id UUID NOT NULL,
        seq BIGINT NOT NULL,
        role TEXT NOT NULL,
        content TEXT,
        tool_calls JSONB,
        tool_call_id TEXT,
        tool_name TEXT,
        created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
        token_count INTEGER,
        byte_size INTEGER DEFAULT '0' NOT NULL,
        provider TEXT,
        model TEXT,
        input_tokens INTEGER,
        output_tokens INTEGER,
        cost FLOAT,
        run_id UUID,
        idempotency_key TEXT,
        metadata JSONB DEFAULT '{}'::jsonb NOT NULL,
        PRIMARY KEY (id),
        CONSTRAINT uq_messages_thread_seq UNIQUE (thread_id, seq),
        CONSTRAINT ck_messages_role CHECK (role IN ('system', 'user', 'assistant', 'tool')),
        FOREIGN KEY(thread_id) REFERENCES threads (id) ON DELETE CASCADE
    )
    """,
    """
    CREATE INDEX idx_messages_created ON messages (created_at)
    """,
    """
    CREATE UNIQUE INDEX uq_messages_thread_idempotency ON messages (thread_id, idempotency_key) WHERE idempotency_key IS NOT NULL
    """,
]

_UPDATED_AT_FUNCTION = """
CREATE OR REPLACE FUNCTION ai_agents_set_updated_at() RETURNS trigger AS $$
BEGIN
    NEW.updated_at = now();
    RETURN NEW;
END;
$$ LANGUAGE plpgsql
"""

_WITH_UPDATED_AT = ("tenants", "agents", "threads", "user_memory")


def upgrade() -> None:
    # Needs PostgreSQL 15+ (UNIQUE NULLS NOT DISTINCT on user_memory); gen_random_uuid()
    # is built in since 13, so no extension is needed (embedded servers ship none).
    for statement in _TABLES:
        op.execute(statement)
    op.execute(_UPDATED_AT_FUNCTION)
    for table in _WITH_UPDATED_AT:
        op.execute(
            f"CREATE TRIGGER trg_{table}_updated_at BEFORE UPDATE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION ai_agents_set_updated_at()"
        )
    op.execute("INSERT INTO tenants (id, name) VALUES ('default', 'Default tenant')")


def downgrade() -> None:
    for table in ("user_usage", "user_memory", "messages", "threads", "agents", "tenants"):
        op.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
    op.execute("DROP FUNCTION IF EXISTS ai_agents_set_updated_at()")
