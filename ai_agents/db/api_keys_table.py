"""The ``api_keys`` table of the REST API (SQLAlchemy Core, on the shared metadata; DDL in migration 0004).

Only a hash of each key is stored: a leaked database (or backup) does not leak working
credentials. ``prefix`` is the first characters of the key, kept so people can tell
their keys apart in listings without the secret.
"""

from __future__ import annotations

from sqlalchemy import (
    CheckConstraint,
    Column,
    DateTime,
    Index,
    Integer,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

from ai_agents.db.tables import metadata

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")),
    Column("tenant_id", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("prefix", Text, nullable=False),
    Column("key_hash", Text, nullable=False),
    Column("scopes", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("rate_limit_rpm", Integer),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    Column("revoked_at", DateTime(timezone=True)),
    Column("last_used_at", DateTime(timezone=True)),
    UniqueConstraint("key_hash", name="uq_api_keys_key_hash"),
    CheckConstraint("rate_limit_rpm IS NULL OR rate_limit_rpm >= 0", name="ck_api_keys_rpm"),
    Index("ix_api_keys_tenant_created", "tenant_id", "created_at"),
)
