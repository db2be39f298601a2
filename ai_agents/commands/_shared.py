"""Shared helpers of the CLI subcommands: settings with embedded fallbacks, output."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from ai_agents.config import Settings

if TYPE_CHECKING:
    from ai_agents.store import AgentStore


def quiet_logs() -> None:
    """Conversation on stdout, one line per embedded server on stderr, little else."""
    logging.getLogger("ai_agents").setLevel(logging.WARNING)
    logging.getLogger("workers").setLevel(logging.WARNING)
    logging.getLogger("ai_agents.embedded").setLevel(logging.INFO)


def resolve_settings() -> tuple[Settings, bool]:
    """Settings from the environment, embedded servers filling missing URLs.

    Returns ``(settings, embedded_db)``; the embedded database is always migrated by the
    caller (it is ours), a configured one only by ``migrate`` and ``demo``.
    """
    from ai_agents.embedded import with_embedded_defaults

    settings = Settings.from_env()
    configured_db = bool(settings.database_url)
    settings, _infos = with_embedded_defaults(settings)
    return settings, not configured_db


async def open_store(*, migrate: bool = False) -> AgentStore:
    from ai_agents.store import AgentStore

    settings, embedded_db = await asyncio.to_thread(resolve_settings)
    store = AgentStore(settings=settings)
    if migrate or embedded_db:
        await store.migrate()
    return store


def run_command(coro: Awaitable[int]) -> int:
    async def main() -> int:
        return await coro

    return asyncio.run(main())


def mask_url(url: str | None) -> str:
    """*url* without its password (for output)."""
    if not url:
        return ""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[1]}"))
