"""The ``ai-agents`` command (also ``python -m ai_agents``).

Each subcommand is a small function registered in :data:`COMMANDS`; modules that own a
feature (workers, the API, RAG ingestion) add theirs with :func:`command`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable
from typing import Any

from ai_agents.config import Settings
from ai_agents.errors import AgentsError

Handler = Callable[[argparse.Namespace], int]
#: Modules that add subcommands with :func:`command` (each optional: a missing extra skips it).
PLUGIN_MODULES = ("ai_agents.commands", "workers.cli", "api.cli", "ai_agents.rag.cli")
COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Handler]] = {}


def command(
    name: str, help_text: str, configure: Callable[[argparse.ArgumentParser], None] | None = None
) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        COMMANDS[name] = (help_text, configure or (lambda _p: None), handler)
        return handler

    return register


@command("migrate", "upgrade the database schema to the newest revision")
def _migrate(args: argparse.Namespace) -> int:
    from ai_agents.db import migrate

    settings = Settings.from_env()
    if not settings.database_url:
        print("error: set AI_AGENTS_DATABASE_URL (or DATABASE_URL) first", file=sys.stderr)
        return 2
    migrate.upgrade(settings.database_url, prepared_statements=settings.prepared_statements)
    print("database schema is up to date (head)")
    return 0


def _load_plugins() -> None:
    """Import the modules that register more subcommands (each optional)."""
    for module in PLUGIN_MODULES:
        try:
            __import__(module)
        except ModuleNotFoundError as exc:
            # Skip a plugin whose module (or package) is absent; re-raise a broken one.
            if exc.name is None or not (module + ".").startswith(exc.name + "."):
                raise


def build_parser() -> argparse.ArgumentParser:
    _load_plugins()
    parser = argparse.ArgumentParser(prog="ai-agents", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (help_text, configure, _handler) in sorted(COMMANDS.items()):
        configure(sub.add_parser(name, help=help_text, description=help_text))
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)
    _help, _configure, handler = COMMANDS[args.command]
    try:
        return handler(args)
    except AgentsError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def run_async(coro: Any) -> Any:
    """Run a coroutine from a synchronous command handler."""
    return asyncio.run(coro)
