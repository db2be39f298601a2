"""RAG documents: chunk rows with full-text (tsvector + GIN) and REAL[] embeddings.

See ``ai_agents/rag/tables.py`` for what each column is for. pgvector is not required:
similarity is computed over the embeddings of the caller's scope (see ``pg_index``).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE document_chunks (
            id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            tenant_id TEXT NOT NULL,
            entity_id TEXT NOT NULL DEFAULT '',
            file_hash TEXT NOT NULL,
            source TEXT NOT NULL,
            title TEXT,
            section TEXT,
            position INTEGER NOT NULL,
            page INTEGER,
            char_start INTEGER NOT NULL DEFAULT 0,
            char_end INTEGER NOT NULL DEFAULT 0,
            content TEXT NOT NULL,
            token_count INTEGER NOT NULL DEFAULT 0,
            embedder TEXT NOT NULL,
            embedding REAL[] NOT NULL,
            metadata JSONB NOT NULL DEFAULT '{}'::jsonb,
            created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            tsv TSVECTOR GENERATED ALWAYS AS (
                setweight(to_tsvector('english', content), 'A') ||
                setweight(
                    to_tsvector('english', coalesce(title, '') || ' ' || coalesce(section, '')),
                    'B'
                )
            ) STORED,
            CONSTRAINT uq_document_chunks_position
                UNIQUE (tenant_id, entity_id, file_hash, position)
        )
        """
    )
    op.execute("CREATE INDEX ix_document_chunks_tsv ON document_chunks USING gin (tsv)")
    op.execute(
        "CREATE INDEX ix_document_chunks_scope "
        "ON document_chunks (tenant_id, entity_id, embedder, id)"
    )
    op.execute(
        "CREATE INDEX ix_document_chunks_source ON document_chunks (tenant_id, entity_id, source)"
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS document_chunks")
