"""Agents keep verbatim instructions and the OpenAI assistant fields of ``/v1``.

``agents.instructions``: when set, the agent's system prompt is this text as given,
instead of the prompt compiled from name, role, goal and constraints (an OpenAI
assistant's ``instructions``). ``agents.assistant_fields``: what ``/v1/assistants`` keeps
of an assistant that has no column of its own (``description``, ``top_p``,
``response_format``, ``tools`` and ``tool_resources`` as given); ``{}`` for agents made
through the library or ``/api/v1``.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("agents", sa.Column("instructions", sa.Text(), nullable=True))
    op.add_column(
        "agents",
        sa.Column(
            "assistant_fields", JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")
        ),
    )


def downgrade() -> None:
    op.drop_column("agents", "assistant_fields")
    op.drop_column("agents", "instructions")
