"""Async Alembic environment (asyncpg, NullPool).

The URL comes from the Alembic config (set by ``ai_agents.db.migrate``) or, for the
plain ``alembic`` command, from AI_AGENTS_DATABASE_URL / DATABASE_URL. Migrations run
under a PostgreSQL advisory lock so several processes starting at once (API servers,
workers) migrate one after the other; the second finds nothing to do. The lock is
transaction-scoped (released by the commit), so it works through PgBouncer in
transaction mode, and so are the connection's statements when prepared statements are
off (``AI_AGENTS_DB_PREPARED_STATEMENTS``, set by ``ai_agents.db.migrate``).
"""

from __future__ import annotations

import asyncio

from sqlalchemy import pool, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from ai_agents.config import Settings, normalize_database_url, prepared_statements_from_env
from ai_agents.db.engine import connect_args
from ai_agents.db.migrate import MIGRATION_LOCK_KEY
from ai_agents.db.schema import include_object, metadata
from alembic import context

config = context.config


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url") or Settings.from_env().database_url
    if not url:
        raise SystemExit("set AI_AGENTS_DATABASE_URL (or DATABASE_URL) to run migrations")
    return normalize_database_url(url)


def _prepared_statements() -> bool:
    chosen = config.attributes.get("prepared_statements")
    return prepared_statements_from_env() if chosen is None else bool(chosen)


def _run(connection: Connection) -> None:
    # Taken first in the one transaction of every migration (PostgreSQL DDL is
    # transactional), so the version is read under it; the commit releases it.
    connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
    context.configure(
        connection=connection, target_metadata=metadata, include_object=include_object
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()


async def _run_async() -> None:
    engine = create_async_engine(
        _url(),
        poolclass=pool.NullPool,
        connect_args=connect_args(prepared_statements=_prepared_statements()),
    )
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
