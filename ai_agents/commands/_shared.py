"""Shared helpers of the CLI subcommands: settings with embedded fallbacks, output."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from ai_agents.config import Settings

if TYPE_CHECKING:
    from ai_agents.store import AgentStore

#: Says which servers a command uses (one line each, at start).
log = logging.getLogger("ai_agents.commands")


def quiet_logs() -> None:
    """Conversation on stdout, one line per embedded server on stderr, little else."""
    logging.getLogger("ai_agents").setLevel(logging.WARNING)
    logging.getLogger("workers").setLevel(logging.WARNING)
    logging.getLogger("ai_agents.embedded").setLevel(logging.INFO)


def resolve_settings(*, redis: bool = True) -> tuple[Settings, bool]:
    """Settings from the environment, embedded servers filling missing URLs (not Redis's
    when the command needs no Redis: *redis* false).

    Returns ``(settings, embedded_db)``; the embedded database is always migrated by the
    caller (it is ours), a configured one only by ``migrate`` and ``demo``.
    """
    from ai_agents.embedded import with_embedded_defaults

    settings = Settings.from_env()
    configured_db = bool(settings.database_url)
    settings, _infos = with_embedded_defaults(settings, redis=redis)
    return settings, not configured_db


def command_settings(
    *, redis: bool = True, announce: Callable[[str], None] | None = None
) -> Settings:
    """What a server-side command (``serve``, ``keys``, ``migrate``, ``worker``,
    ``ingest``) runs on: the configured URLs, embedded servers filling the missing ones
    (Redis only when the command uses it: *redis*), the embedded database migrated (it is
    ours). Says which server it uses, one line each: logged by default (so a worker's
    ``--log-json`` keeps every line JSON), or given to *announce*."""
    configured_redis = bool(Settings.from_env().redis_url)
    settings, embedded_db = resolve_settings(redis=redis)
    if embedded_db:
        from ai_agents.db import migrate

        assert settings.database_url is not None
        migrate.upgrade(settings.database_url, prepared_statements=settings.prepared_statements)
    servers = [("database", settings.database_url, embedded_db)]
    if redis:
        servers.append(("redis", settings.redis_url, not configured_redis))
    for name, url, embedded in servers:
        line = f"{name}: {mask_url(url)} ({'embedded' if embedded else 'configured'})"
        if announce is None:
            log.info("%s", line)
        else:
            announce(line)
    return settings


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
