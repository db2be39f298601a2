"""The ``jobs`` table: the durable record of every background run (migration 0003).

Redis streams only carry job ids from producers to workers; status, attempts, timings,
the answer and the error live here, so losing Redis loses no finished result and no
queued job (workers re-publish queued jobs from this table, see ``docs/jobs.md``).
"""

from __future__ import annotations

from typing import Literal, get_args

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

from ai_agents.db.tables import metadata

#: A job's priority: the one definition (type, stream order, API schema, SQL check, metrics).
Priority = Literal["high", "normal", "low"]
#: The priorities from high to low: the order of the streams and of ``QueueConfig.weights``.
PRIORITIES: tuple[Priority, ...] = get_args(Priority)
STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
FINISHED = frozenset({"succeeded", "failed", "cancelled"})

jobs = Table(
    "jobs",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")),
    Column("tenant_id", Text, nullable=False),
    Column(
        "thread_id",
        UUID(as_uuid=True),
        ForeignKey("threads.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("input", Text, nullable=False),
    Column("priority", Text, nullable=False, server_default="normal"),
    Column("status", Text, nullable=False, server_default="queued"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("max_attempts", Integer, nullable=False, server_default="3"),
    Column("cancel_requested", Boolean, nullable=False, server_default=text("false")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    Column("started_at", DateTime(timezone=True)),
    Column("finished_at", DateTime(timezone=True)),
    Column("heartbeat_at", DateTime(timezone=True)),
    Column("worker", Text),
    Column("result", JSONB(none_as_null=True)),
    Column("error", JSONB(none_as_null=True)),
    Column("metadata", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    #: The run this job executes (created with the job, status ``queued``).
    Column("run_id", UUID(as_uuid=True)),
    CheckConstraint(
        f"priority IN ({', '.join(repr(p) for p in PRIORITIES)})", name="ck_jobs_priority"
    ),
    CheckConstraint(
        "status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')",
        name="ck_jobs_status",
    ),
    CheckConstraint("max_attempts >= 1", name="ck_jobs_max_attempts"),
    Index("ix_jobs_tenant_created", "tenant_id", "created_at"),
    Index("ix_jobs_thread_created", "thread_id", "created_at"),
    # Finds a thread's head (its oldest unfinished job) without reading its history.
    Index(
        "ix_jobs_thread_unfinished",
        "thread_id",
        "created_at",
        "id",
        postgresql_where=text("status IN ('queued', 'running')"),
    ),
)
