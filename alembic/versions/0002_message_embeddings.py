"""Message embeddings for the vector memory strategy (computed once per message).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE message_embeddings (
            message_id UUID NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
            embedder TEXT NOT NULL,
            thread_id UUID NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
            seq BIGINT NOT NULL,
            embedding REAL[] NOT NULL,
            PRIMARY KEY (message_id, embedder)
        )
        """
    )
    op.execute(
        "CREATE INDEX ix_message_embeddings_thread_seq "
        "ON message_embeddings (thread_id, embedder, seq)"
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS message_embeddings")
