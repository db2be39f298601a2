"""Async Alembic environment (asyncpg, NullPool).

The URL comes from the Alembic config (set by ``ai_agents.db.migrate``) or, for the
plain ``alembic`` command, from AI_AGENTS_DATABASE_URL / DATABASE_URL. Migrations run
under a PostgreSQL advisory lock so several processes starting at once (API servers,
workers) migrate one after the other; the second finds nothing to do.
"""

from __future__ import annotations

import asyncio

from sqlalchemy import pool, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from ai_agents.config import Settings, normalize_database_url
from ai_agents.db.migrate import MIGRATION_LOCK_KEY
from ai_agents.db.schema import include_object, metadata
from alembic import context

config = context.config


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url") or Settings.from_env().database_url
    if not url:
        raise SystemExit("set AI_AGENTS_DATABASE_URL (or DATABASE_URL) to run migrations")
    return normalize_database_url(url)


def _run(connection: Connection) -> None:
    connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
    try:
        context.configure(
            connection=connection, target_metadata=metadata, include_object=include_object
        )
        with context.begin_transaction():
            context.run_migrations()
    finally:
        connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK_KEY})
        connection.commit()


async def _run_async() -> None:
    engine = create_async_engine(_url(), poolclass=pool.NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    context.configure(
        url=_url(), target_metadata=metadata, include_object=include_object, literal_binds=True
    )
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_async())
