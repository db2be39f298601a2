"""Core CLI subcommands beyond ``migrate``: ``demo`` (the main job)."""

from __future__ import annotations

import argparse
import asyncio
import os

from ai_agents.cli import command
from ai_agents.config import Settings

LOCAL_DATABASE = "postgresql://postgres@127.0.0.1:5432/ai_agents_demo"
LOCAL_REDIS = "redis://127.0.0.1:6379/0"


async def _ensure_database(url: str) -> None:
    """Create the demo database on the local server if it does not exist yet."""
    import asyncpg

    base, _, name = url.rpartition("/")
    conn = await asyncpg.connect(f"{base}/postgres")
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def _demo() -> int:
    from ai_agents.demo import run_demo
    from ai_agents.store import AgentStore

    settings = Settings.from_env()
    if not settings.database_url:
        await _ensure_database(LOCAL_DATABASE)
        settings = Settings.from_env(database_url=LOCAL_DATABASE)
        print(f"== no AI_AGENTS_DATABASE_URL: using the local database {LOCAL_DATABASE}")
    if not settings.redis_url:
        settings = Settings.from_env(database_url=settings.database_url, redis_url=LOCAL_REDIS)
        print(f"== no AI_AGENTS_REDIS_URL: using the local Redis {LOCAL_REDIS}")
    async with AgentStore(settings=settings) as store:
        await store.migrate()
        await run_demo(store)
    return 0


@command("demo", "run the end-to-end demo (agent, tool, thread, runs, memory, usage)")
def _demo_command(args: argparse.Namespace) -> int:
    import logging

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    logging.getLogger("ai_agents").setLevel(logging.WARNING)
    return asyncio.run(_demo())
