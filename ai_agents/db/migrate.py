"""Run the Alembic migrations programmatically (``ai-agents migrate``, ``store.migrate()``)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic.config import Config

from ai_agents.config import normalize_database_url, prepared_statements_from_env
from alembic import command

_PACKAGE_DIR = Path(__file__).resolve().parent.parent
#: Advisory lock held while migrating, so processes starting together migrate in turn.
MIGRATION_LOCK_KEY = 0x41_49_41_47  # "AIAG"


def script_location() -> Path:
    """The migration scripts: inside the installed wheel, or the repository's alembic/."""
    for candidate in (_PACKAGE_DIR / "_alembic", _PACKAGE_DIR.parent / "alembic"):
        if (candidate / "env.py").is_file():
            return candidate
    raise FileNotFoundError("ai_agents migration scripts not found (broken installation?)")


def alembic_config(database_url: str, *, prepared_statements: bool | None = None) -> Config:
    """Alembic's config for *database_url*; alembic/env.py reads ``prepared_statements``
    (``None``: the ``AI_AGENTS_DB_PREPARED_STATEMENTS`` setting) from its attributes."""
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location()))
    # ConfigParser interpolation: a literal % in a password must be doubled.
    cfg.set_main_option("sqlalchemy.url", normalize_database_url(database_url).replace("%", "%%"))
    cfg.attributes["prepared_statements"] = _prepared(prepared_statements)
    return cfg


def _prepared(prepared_statements: bool | None) -> bool:
    if prepared_statements is None:
        return prepared_statements_from_env()
    return prepared_statements


def upgrade(
    database_url: str, revision: str = "head", *, prepared_statements: bool | None = None
) -> None:
    command.upgrade(alembic_config(database_url, prepared_statements=prepared_statements), revision)
    if revision == "head":
        # A server that got pgvector after migration 0010 ran switches now.
        asyncio.run(_ensure_pgvector(database_url, _prepared(prepared_statements)))


async def _ensure_pgvector(database_url: str, prepared_statements: bool) -> None:
    from sqlalchemy import pool
    from sqlalchemy.ext.asyncio import create_async_engine

    from ai_agents.db.engine import connect_args
    from ai_agents.rag.pgvector import ensure_pgvector

    engine = create_async_engine(
        normalize_database_url(database_url),
        poolclass=pool.NullPool,
        connect_args=connect_args(prepared_statements=prepared_statements),
    )
    try:
        async with engine.begin() as conn:
            await conn.run_sync(ensure_pgvector)
    finally:
        await engine.dispose()


def downgrade(
    database_url: str, revision: str = "base", *, prepared_statements: bool | None = None
) -> None:
    cfg = alembic_config(database_url, prepared_statements=prepared_statements)
    command.downgrade(cfg, revision)


async def upgrade_async(
    database_url: str, revision: str = "head", *, prepared_statements: bool | None = None
) -> None:
    """Upgrade from inside a running event loop (Alembic's env runs its own loop)."""
    await asyncio.to_thread(
        upgrade, database_url, revision, prepared_statements=prepared_statements
    )
