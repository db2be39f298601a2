"""Table definitions (SQLAlchemy Core). The migrations in ``alembic/versions`` create them.

The store uses Core statements rather than the ORM: every hot-path read is one
compiled, cached statement, and every write is one short transaction.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, REAL, UUID

metadata = MetaData()

_NOW = text("now()")
_UUID = text("gen_random_uuid()")


def _ts(name: str, **kw: object) -> Column[object]:
    return Column(name, DateTime(timezone=True), nullable=False, server_default=_NOW, **kw)  # type: ignore[arg-type]


tenants = Table(
    "tenants",
    metadata,
    Column("id", Text, primary_key=True),
    Column("name", Text),
    Column("max_thread_bytes", BigInteger),
    Column("max_user_bytes", BigInteger),
    Column("max_total_bytes", BigInteger),
    _ts("created_at"),
    _ts("updated_at"),
)

agents = Table(
    "agents",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True, server_default=_UUID),
    Column("tenant_id", Text, nullable=False, server_default="default"),
    Column("name", Text, nullable=False),
    Column("role", Text, nullable=False),
    Column("goal", Text),
    Column("constraints", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("personality", JSONB),
    Column("examples", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("tools", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("provider", Text, nullable=False),
    Column("model", Text, nullable=False),
    Column("fallbacks", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("memory_strategy", Text, nullable=False, server_default="last_messages"),
    Column("memory_config", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("settings", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("metadata", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("created_by", Text),
    Column("is_active", Boolean, nullable=False, server_default=text("true")),
    # Function tools the caller executes (the run stops in ``requires_action``).
    Column("client_tools", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    # Verbatim system prompt (replaces the one compiled from the definition) and the
    # OpenAI assistant fields ``/v1`` keeps (migration 0016).
    Column("instructions", Text),
    Column("assistant_fields", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    _ts("created_at"),
    _ts("updated_at"),
    Index("ix_agents_tenant_created", "tenant_id", "created_at", "id"),
)

threads = Table(
    "threads",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True, server_default=_UUID),
    Column("tenant_id", Text, nullable=False, server_default="default"),
    Column(
        "agent_id", UUID(as_uuid=True), ForeignKey("agents.id", ondelete="CASCADE"), nullable=False
    ),
    Column("user_id", Text),
    Column("title", Text),
    Column("total_bytes", BigInteger, nullable=False, server_default="0"),
    Column("message_count", Integer, nullable=False, server_default="0"),
    Column("last_seq", BigInteger, nullable=False, server_default="0"),
    Column("input_tokens", BigInteger, nullable=False, server_default="0"),
    Column("output_tokens", BigInteger, nullable=False, server_default="0"),
    Column("cost", Float, nullable=False, server_default="0"),
    _ts("created_at"),
    _ts("updated_at"),
    _ts("last_used_at"),
    Column("provider_state", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("memory_state", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("archived", Boolean, nullable=False, server_default=text("false")),
    Column("metadata", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("forked_from_id", UUID(as_uuid=True)),
    Column("forked_at_seq", BigInteger),
    #: Every job of the thread created before this instant has finished: where its job
    #: lookups start (raised by a job's save; migration 0014).
    Column(
        "jobs_floor",
        DateTime(timezone=True),
        nullable=False,
        server_default=text("'-infinity'"),
    ),
    Index("idx_threads_agent", "agent_id"),
    Index("idx_threads_user", "user_id"),
    Index("idx_threads_last_used", "last_used_at"),
    Index(
        "ix_threads_tenant_user_used",
        "tenant_id",
        "user_id",
        text("last_used_at DESC"),
        text("id DESC"),
    ),
    Index(
        "ix_threads_tenant_agent_used",
        "tenant_id",
        "agent_id",
        text("last_used_at DESC"),
        text("id DESC"),
    ),
)

#: The columns of a thread's record: all but the job queue's bookkeeping (``jobs_floor``).
THREAD_RECORD_COLUMNS = tuple(c for c in threads.columns if c.name != "jobs_floor")

messages = Table(
    "messages",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True, server_default=_UUID),
    Column(
        "thread_id",
        UUID(as_uuid=True),
        ForeignKey("threads.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("seq", BigInteger, nullable=False),
    Column("role", Text, nullable=False),
    Column("content", Text),
    Column("tool_calls", JSONB(none_as_null=True)),
    Column("tool_call_id", Text),
    Column("tool_name", Text),
    _ts("created_at"),
    Column("token_count", Integer),
    Column("byte_size", Integer, nullable=False, server_default="0"),
    Column("provider", Text),
    Column("model", Text),
    Column("input_tokens", Integer),
    Column("output_tokens", Integer),
    Column("cost", Float),
    Column("run_id", UUID(as_uuid=True)),
    Column("idempotency_key", Text),
    Column("metadata", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    UniqueConstraint("thread_id", "seq", name="uq_messages_thread_seq"),
    CheckConstraint("role IN ('system', 'user', 'assistant', 'tool')", name="ck_messages_role"),
    Index("idx_messages_created", "created_at"),
    Index(
        "uq_messages_thread_idempotency",
        "thread_id",
        "idempotency_key",
        unique=True,
        postgresql_where=text("idempotency_key IS NOT NULL"),
    ),
)

user_memory = Table(
    "user_memory",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True, server_default=_UUID),
    Column("tenant_id", Text, nullable=False, server_default="default"),
    Column("user_id", Text, nullable=False),
    Column("agent_id", UUID(as_uuid=True), ForeignKey("agents.id", ondelete="CASCADE")),
    Column("key", Text, nullable=False),
    Column("value", Text),
    _ts("created_at"),
    _ts("updated_at"),
    UniqueConstraint(
        "tenant_id",
        "user_id",
        "agent_id",
        "key",
        name="uq_user_memory_key",
        postgresql_nulls_not_distinct=True,
    ),
    Index("idx_user_memory_user", "tenant_id", "user_id", "agent_id"),
)

user_usage = Table(
    "user_usage",
    metadata,
    Column("tenant_id", Text, primary_key=True),
    # '' stands for threads without a user.
    Column("user_id", Text, primary_key=True),
    Column("total_bytes", BigInteger, nullable=False, server_default="0"),
    Column("input_tokens", BigInteger, nullable=False, server_default="0"),
    Column("output_tokens", BigInteger, nullable=False, server_default="0"),
    Column("cost", Float, nullable=False, server_default="0"),
)

message_embeddings = Table(
    "message_embeddings",
    metadata,
    Column(
        "message_id",
        UUID(as_uuid=True),
        ForeignKey("messages.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("embedder", Text, primary_key=True),
    Column(
        "thread_id",
        UUID(as_uuid=True),
        ForeignKey("threads.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("seq", BigInteger, nullable=False),
    Column("embedding", ARRAY(REAL), nullable=False),
    Index("ix_message_embeddings_thread_seq", "thread_id", "embedder", "seq"),
)


_ACTIVE_RUN = "status IN ('in_progress', 'requires_action', 'cancelling')"

runs = Table(
    "runs",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True, server_default=_UUID),
    Column("tenant_id", Text, nullable=False),
    Column(
        "thread_id",
        UUID(as_uuid=True),
        ForeignKey("threads.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column(
        "agent_id", UUID(as_uuid=True), ForeignKey("agents.id", ondelete="CASCADE"), nullable=False
    ),
    Column("job_id", UUID(as_uuid=True)),
    Column("status", Text, nullable=False),
    Column("input", Text, nullable=False),
    Column("provider", Text),
    Column("model", Text),
    Column("overrides", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("required_action", JSONB(none_as_null=True)),
    Column("last_error", JSONB(none_as_null=True)),
    Column("incomplete_details", JSONB(none_as_null=True)),
    Column("input_tokens", BigInteger, nullable=False, server_default="0"),
    Column("output_tokens", BigInteger, nullable=False, server_default="0"),
    Column("cost", Float, nullable=False, server_default="0"),
    Column("metadata", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("idempotency_key", Text),
    Column("owner", Text),
    Column("lease_expires_at", DateTime(timezone=True)),
    _ts("created_at"),
    Column("started_at", DateTime(timezone=True)),
    Column("completed_at", DateTime(timezone=True)),
    Column("cancelled_at", DateTime(timezone=True)),
    Column("failed_at", DateTime(timezone=True)),
    Column("expires_at", DateTime(timezone=True)),
    Index("uq_runs_thread_active", "thread_id", unique=True, postgresql_where=text(_ACTIVE_RUN)),
    Index("ix_runs_thread_created", "thread_id", "created_at", "id"),
    Index("ix_runs_tenant_created", "tenant_id", "created_at"),
    Index(
        "ix_runs_waiting",
        "thread_id",
        "created_at",
        "id",
        postgresql_where=text("status = 'queued'"),
    ),
    Index(
        "ix_runs_tenant_waiting",
        "tenant_id",
        postgresql_where=text("status = 'queued' AND job_id IS NULL"),
    ),
    # Callers waiting for a thread's release (ai_agents_append's waiters, migration 0012).
    Index(
        "ix_runs_thread_waiting_callers",
        "thread_id",
        postgresql_where=text("status = 'queued' AND job_id IS NULL"),
    ),
    Index(
        "ix_runs_lease",
        "lease_expires_at",
        postgresql_where=text(
            "status IN ('queued', 'in_progress', 'requires_action', 'cancelling')"
        ),
    ),
)

run_steps = Table(
    "run_steps",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True, server_default=_UUID),
    Column("run_id", UUID(as_uuid=True), ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("tenant_id", Text, nullable=False),
    Column("thread_id", UUID(as_uuid=True), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("type", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("details", JSONB, nullable=False),
    Column("provider", Text),
    Column("model", Text),
    Column("input_tokens", Integer, nullable=False, server_default="0"),
    Column("output_tokens", Integer, nullable=False, server_default="0"),
    Column("cost", Float, nullable=False, server_default="0"),
    Column("last_error", JSONB(none_as_null=True)),
    _ts("created_at"),
    Column("completed_at", DateTime(timezone=True)),
    UniqueConstraint("run_id", "seq", name="uq_run_steps_run_seq"),
)

# MCP servers configured on agents (ai_agents/mcp/storage.py). ``secrets``: Fernet token of
# the JSON ``{headers, bearer_token}``; ``header_names`` / ``has_bearer_token`` may be shown.
agent_mcp_servers = Table(
    "agent_mcp_servers",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True, server_default=_UUID),
    Column("tenant_id", Text, nullable=False),
    Column(
        "agent_id", UUID(as_uuid=True), ForeignKey("agents.id", ondelete="CASCADE"), nullable=False
    ),
    Column("name", Text, nullable=False),
    Column("transport", Text, nullable=False),
    Column("url", Text),
    Column("command", Text),
    Column("secrets", LargeBinary),
    Column("header_names", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("has_bearer_token", Boolean, nullable=False, server_default=text("false")),
    Column("allowed_tools", JSONB(none_as_null=True)),
    Column("timeout", Float),
    Column("version", Integer, nullable=False, server_default="1"),
    _ts("created_at"),
    _ts("updated_at"),
    UniqueConstraint("agent_id", "name", name="uq_agent_mcp_servers_agent_name"),
    CheckConstraint(
        "transport IN ('streamable_http', 'sse', 'stdio')", name="ck_agent_mcp_servers_transport"
    ),
    CheckConstraint(
        "(transport = 'stdio' AND command IS NOT NULL AND url IS NULL)"
        " OR (transport <> 'stdio' AND url IS NOT NULL AND command IS NULL)",
        name="ck_agent_mcp_servers_target",
    ),
    Index("ix_agent_mcp_servers_tenant_agent", "tenant_id", "agent_id"),
)

# OpenAI files and vector stores of ``/v1`` (ai_agents/files, migration 0017). A file's
# bytes live in ``content``; a vector store's passages live in ``document_chunks`` under
# the entity ``vs_<hex>`` (the store's id), one document per attached file.
openai_files = Table(
    "openai_files",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True, server_default=_UUID),
    Column("tenant_id", Text, nullable=False),
    Column("filename", Text, nullable=False),
    Column("purpose", Text, nullable=False),
    Column("bytes", BigInteger, nullable=False),
    Column("content", LargeBinary, nullable=False),
    _ts("created_at"),
    Index("ix_openai_files_tenant_created", "tenant_id", "created_at", "id"),
)

vector_stores = Table(
    "vector_stores",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True, server_default=_UUID),
    Column("tenant_id", Text, nullable=False),
    Column("name", Text),
    Column("metadata", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    _ts("created_at"),
    _ts("last_active_at"),
    Index("ix_vector_stores_tenant_created", "tenant_id", "created_at", "id"),
)

vector_store_file_batches = Table(
    "vector_store_file_batches",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True, server_default=_UUID),
    Column("tenant_id", Text, nullable=False),
    Column(
        "vector_store_id",
        UUID(as_uuid=True),
        ForeignKey("vector_stores.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("cancelled", Boolean, nullable=False, server_default=text("false")),
    _ts("created_at"),
    Index("ix_vector_store_file_batches_store", "vector_store_id"),
)

vector_store_files = Table(
    "vector_store_files",
    metadata,
    Column(
        "vector_store_id",
        UUID(as_uuid=True),
        ForeignKey("vector_stores.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column(
        "file_id",
        UUID(as_uuid=True),
        ForeignKey("openai_files.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("tenant_id", Text, nullable=False),
    Column(
        "batch_id",
        UUID(as_uuid=True),
        ForeignKey("vector_store_file_batches.id", ondelete="SET NULL"),
    ),
    Column("status", Text, nullable=False),
    Column("last_error", JSONB(none_as_null=True)),
    Column("usage_bytes", BigInteger, nullable=False, server_default="0"),
    Column("file_hash", Text),
    Column("attributes", JSONB(none_as_null=True)),
    _ts("created_at"),
    CheckConstraint(
        "status IN ('in_progress', 'completed', 'failed', 'cancelled')",
        name="ck_vector_store_files_status",
    ),
    Index("ix_vector_store_files_file", "file_id"),
    Index("ix_vector_store_files_batch", "batch_id"),
)
