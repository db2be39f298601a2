"""Acceptance 2: upgrade head on an empty database, downgrade base, upgrade again."""

from __future__ import annotations

import asyncpg

from ai_agents.db import migrate

TABLES = {"tenants", "agents", "threads", "messages", "user_memory", "user_usage"}


async def _tables(url: str) -> set[str]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {r[0] for r in rows}
    finally:
        await conn.close()


async def _revision(url: str) -> str | None:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval("SELECT version_num FROM alembic_version")
    finally:
        await conn.close()


async def test_upgrade_downgrade_upgrade(empty_database_url: str) -> None:
    url = empty_database_url
    assert await _tables(url) == set()
    await migrate.upgrade_async(url)
    assert await _tables(url) >= TABLES
    head = await _revision(url)
    assert head is not None

    await migrate.upgrade_async(url)  # twice is a no-op
    assert await _revision(url) == head

    import asyncio

    await asyncio.to_thread(migrate.downgrade, url, "base")
    assert await _tables(url) == {"alembic_version"}
    assert await _revision(url) is None

    await migrate.upgrade_async(url)
    assert await _tables(url) >= TABLES
    assert await _revision(url) == head


async def test_store_migrate_and_cli(empty_database_url: str) -> None:
    import asyncio
    import os
    import subprocess
    import sys

    from ai_agents.store import AgentStore

    async with AgentStore(database_url=empty_database_url) as store:
        await store.migrate()
        await store.migrate()
    assert await _tables(empty_database_url) >= TABLES

    env = {**os.environ, "AI_AGENTS_DATABASE_URL": empty_database_url}
    proc = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "ai_agents", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "up to date" in proc.stdout.lower() or "head" in proc.stdout.lower()
