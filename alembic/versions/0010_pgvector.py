"""Document embeddings in pgvector when the server has it (HNSW, cosine).

``embedding`` (REAL[]) becomes nullable: with pgvector the vectors move to the
``embedding_vector`` column and ``embedding`` is NULL. Whether the switch happens depends
on the server (``ai_agents.rag.pgvector.ensure_pgvector``): without the extension, or with
``AI_AGENTS_PGVECTOR=off``, nothing else changes and search stays on the numpy path.
Downgrade moves the vectors back to ``embedding`` and drops the column (the extension
stays: other databases of the server may use it).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    from ai_agents.rag.pgvector import ensure_pgvector

    op.execute("ALTER TABLE document_chunks ALTER COLUMN embedding DROP NOT NULL")
    ensure_pgvector(op.get_bind())


def downgrade() -> None:
    from ai_agents.rag.pgvector import VECTOR_COLUMN, read_state

    if read_state(op.get_bind()).active:
        op.execute(
            f"UPDATE document_chunks SET embedding = {VECTOR_COLUMN}::real[] "
            f"WHERE {VECTOR_COLUMN} IS NOT NULL"
        )
        op.execute(f"ALTER TABLE document_chunks DROP COLUMN {VECTOR_COLUMN}")
    op.execute("ALTER TABLE document_chunks ALTER COLUMN embedding SET NOT NULL")
