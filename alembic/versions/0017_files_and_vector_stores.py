"""OpenAI files and vector stores of ``/v1``.

``openai_files``: uploaded files with their bytes (per tenant). ``vector_stores``,
``vector_store_files`` (a file attached to a store, with its ingestion status) and
``vector_store_file_batches``: the OpenAI vector store objects. The passages themselves
live in ``document_chunks`` (entity ``vs_<hex>``), so search goes through the RAG index.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, UUID

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

_UUID = sa.text("gen_random_uuid()")


def _ts(name: str) -> sa.Column[object]:
    return sa.Column(
        name, sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")
    )


def upgrade() -> None:
    op.create_table(
        "openai_files",
        sa.Column("id", UUID(as_uuid=True), primary_key=True, server_default=_UUID),
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("filename", sa.Text(), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        _ts("created_at"),
    )
    op.create_index(
        "ix_openai_files_tenant_created", "openai_files", ["tenant_id", "created_at", "id"]
    )
    op.create_table(
        "vector_stores",
        sa.Column("id", UUID(as_uuid=True), primary_key=True, server_default=_UUID),
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("metadata", JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")),
        _ts("created_at"),
        _ts("last_active_at"),
    )
    op.create_index(
        "ix_vector_stores_tenant_created", "vector_stores", ["tenant_id", "created_at", "id"]
    )
    op.create_table(
        "vector_store_file_batches",
        sa.Column("id", UUID(as_uuid=True), primary_key=True, server_default=_UUID),
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column(
            "vector_store_id",
            UUID(as_uuid=True),
            sa.ForeignKey("vector_stores.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("cancelled", sa.Boolean(), nullable=False, server_default=sa.text("false")),
        _ts("created_at"),
    )
    op.create_index(
        "ix_vector_store_file_batches_store", "vector_store_file_batches", ["vector_store_id"]
    )
    op.create_table(
        "vector_store_files",
        sa.Column(
            "vector_store_id",
            UUID(as_uuid=True),
            sa.ForeignKey("vector_stores.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "file_id",
            UUID(as_uuid=True),
            sa.ForeignKey("openai_files.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column(
            "batch_id",
            UUID(as_uuid=True),
            sa.ForeignKey("vector_store_file_batches.id", ondelete="SET NULL"),
            nullable=True,
        ),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("last_error", JSONB(), nullable=True),
        sa.Column("usage_bytes", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("file_hash", sa.Text(), nullable=True),
        sa.Column("attributes", JSONB(), nullable=True),
        _ts("created_at"),
        sa.CheckConstraint(
            "status IN ('in_progress', 'completed', 'failed', 'cancelled')",
            name="ck_vector_store_files_status",
        ),
    )
    op.create_index("ix_vector_store_files_file", "vector_store_files", ["file_id"])
    op.create_index("ix_vector_store_files_batch", "vector_store_files", ["batch_id"])


def downgrade() -> None:
    op.drop_table("vector_store_files")
    op.drop_table("vector_store_file_batches")
    op.drop_table("vector_stores")
    op.drop_table("openai_files")
