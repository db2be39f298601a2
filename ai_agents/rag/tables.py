"""The ``document_chunks`` table (SQLAlchemy Core, on the shared metadata).

One row per chunk: its scope (tenant, entity: '' for tenant-wide), the document it comes
from (content hash, source, title), where in the document it is (position, page, section,
character range), the text, and its embedding as ``REAL[]`` under the embedder's name.
``tsv`` is a generated ``tsvector`` (content weight A, title/section weight B) with a GIN
index. ``id`` is an identity column: it only grows, which is what lets the vector cache in
:mod:`ai_agents.rag.pg_index` detect any change with ``count(*)`` and ``max(id)``.
Migration: ``alembic/versions/0005_documents.py``.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Computed,
    DateTime,
    Identity,
    Index,
    Integer,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, REAL, TSVECTOR

from ai_agents.db.tables import metadata

TSV_EXPRESSION = (
    "setweight(to_tsvector('english', content), 'A') || "
    "setweight(to_tsvector('english', coalesce(title, '') || ' ' || coalesce(section, '')), 'B')"
)

document_chunks = Table(
    "document_chunks",
    metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column("tenant_id", Text, nullable=False),
    Column("entity_id", Text, nullable=False, server_default=""),
    Column("file_hash", Text, nullable=False),
    Column("source", Text, nullable=False),
    Column("title", Text),
    Column("section", Text),
    Column("position", Integer, nullable=False),
    Column("page", Integer),
    Column("char_start", Integer, nullable=False, server_default="0"),
    Column("char_end", Integer, nullable=False, server_default="0"),
    Column("content", Text, nullable=False),
    Column("token_count", Integer, nullable=False, server_default="0"),
    Column("embedder", Text, nullable=False),
    # NULL when pgvector holds the vectors (``embedding_vector``, see rag/pgvector.py).
    Column("embedding", ARRAY(REAL)),
    Column("metadata", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    Column("tsv", TSVECTOR, Computed(TSV_EXPRESSION, persisted=True)),
    UniqueConstraint(
        "tenant_id", "entity_id", "file_hash", "position", name="uq_document_chunks_position"
    ),
    Index("ix_document_chunks_tsv", "tsv", postgresql_using="gin"),
    Index("ix_document_chunks_scope", "tenant_id", "entity_id", "embedder", "id"),
    Index("ix_document_chunks_source", "tenant_id", "entity_id", "source"),
)
