"""``ai-agents demo``: the main job (see :mod:`ai_agents.demo`)."""

from __future__ import annotations

import argparse
import asyncio
import os
from typing import TYPE_CHECKING

from ai_agents.cli import command
from ai_agents.config import Settings

if TYPE_CHECKING:
    pass


from ai_agents.commands._shared import mask_url, quiet_logs, resolve_settings, run_command

_DATABASE_VARS = ("AI_AGENTS_DATABASE_URL", "DATABASE_URL")
_REDIS_VARS = ("AI_AGENTS_REDIS_URL", "REDIS_URL")


def _source(names: tuple[str, ...]) -> str:
    """Which variable (or the settings file) a configured URL came from."""
    return next((n for n in names if os.environ.get(n)), "AI_AGENTS_CONFIG file")


def _configure_demo(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        choices=("auto", "local", "demo"),
        default="auto",
        help="auto (default): a configured provider key/host, else the local SmolLM2 model, "
        "else the deterministic demo model; local: the in-process SmolLM2 model; "
        "demo: the deterministic built-in model (instant, no model download)",
    )


async def _demo(model: str) -> int:
    from ai_agents.demo import run_demo
    from ai_agents.store import AgentStore

    configured = Settings.from_env()
    settings, _ = await asyncio.to_thread(resolve_settings)
    for label, url, configured_url, names in (
        ("database", settings.database_url, configured.database_url, _DATABASE_VARS),
        ("redis", settings.redis_url, configured.redis_url, _REDIS_VARS),
    ):
        source = f"configured: {_source(names)}" if configured_url else "embedded"
        print(f"== {label}: {mask_url(url)} ({source})")
    async with AgentStore(settings=settings) as store:
        await store.migrate()
        await run_demo(store, model=model)
    if not configured.database_url or not configured.redis_url:
        print(
            "\n== the embedded servers keep running for the next command "
            "(stop them with `ai-agents embedded stop`)"
        )
    return 0


@command(
    "demo", "run the end-to-end demo (agent, tool, thread, runs, memory, usage)", _configure_demo
)
def _demo_command(args: argparse.Namespace) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    quiet_logs()
    return run_command(_demo(args.model))
