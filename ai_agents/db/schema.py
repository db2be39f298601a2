"""The whole schema on one metadata: importing this module registers every table.

Tables are defined next to the code that owns them: agents, threads, messages, runs in
:mod:`ai_agents.db.tables`; API keys in :mod:`ai_agents.db.api_keys_table`; background
jobs in :mod:`ai_agents.jobs.tables`; document chunks in :mod:`ai_agents.rag.tables`.
They all share one ``MetaData``, which holds a table only once its module was imported.
Alembic (``alembic/env.py``) and anything else that needs the complete schema import
``metadata`` from here, so ``alembic revision --autogenerate`` never proposes dropping a
table that merely was not imported.

Not in the metadata, on purpose: what ``ai_agents.rag.pgvector`` adds when the server has
pgvector (the ``document_chunks.embedding_vector`` column and its per-dimension HNSW
indexes); autogenerate is told to leave those alone (``include_object`` below).
"""

from __future__ import annotations

from typing import Any

import ai_agents.db.api_keys_table  # noqa: F401  (each import registers its tables)
import ai_agents.jobs.tables  # noqa: F401
import ai_agents.rag.tables  # noqa: F401
from ai_agents.db.tables import metadata

__all__ = ["include_object", "metadata"]


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """Autogenerate filter: skip the schema objects pgvector support manages itself."""
    if type_ == "column":
        return name != "embedding_vector"
    if type_ == "index":
        return not (name or "").startswith("ix_document_chunks_hnsw_")
    return True
