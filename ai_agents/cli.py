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

from ai_agents.errors import AgentsError, StorageError

Handler = Callable[[argparse.Namespace], int]
#: Modules that add subcommands with :func:`command` (each optional: a missing extra skips it).
PLUGIN_MODULES = (
    "ai_agents.commands",
    "ai_agents.workers.cli",
    "ai_agents.api.cli",
    "ai_agents.rag.cli",
)
#: The name on the package index (``ai-agents`` there is another project).
DISTRIBUTION = "ai-agents-platform"
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
    from ai_agents.commands._shared import command_settings
    from ai_agents.db import migrate

    settings = command_settings(redis=False)  # the embedded database is migrated there
    assert settings.database_url is not None
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


def version() -> str:
    """The installed distribution's version (the package's own when not installed)."""
    from importlib import metadata

    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        import ai_agents

        return str(getattr(ai_agents, "__version__", "unknown"))


def build_parser() -> argparse.ArgumentParser:
    _load_plugins()
    parser = argparse.ArgumentParser(prog="ai-agents", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging, tracebacks")
    parser.add_argument("--version", action="version", version=f"ai-agents {version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (help_text, configure, _handler) in sorted(COMMANDS.items()):
        configure(sub.add_parser(name, help=help_text, description=help_text))
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command. Expected failures end in one ``error:`` line on stderr, exit 1
    (``--verbose`` adds the traceback); a reader closing the pipe early ends it quietly."""
    from ai_agents.commands._output import silence_stdout

    try:
        return _run(argv)
    except BrokenPipeError:  # `ai-agents ... | head`: the reader has what it wanted
        silence_stdout()
        return 0


def _run(argv: list[str] | None) -> int:
    from ai_agents.commands._failures import missing_extra, missing_schema, unreachable_service

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
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        raise
    except AgentsError as exc:
        message = (unreachable_service(exc) if isinstance(exc, StorageError) else None) or (
            exc.message
        )
        if missing_schema(exc):
            message += " (the schema is not there: run `ai-agents migrate`)"
        return _fail(message, exc if args.verbose else None)
    except ModuleNotFoundError as exc:
        line = missing_extra(exc)
        if line is None:
            raise
        return _fail(line, exc if args.verbose else None)
    except Exception as exc:  # PostgreSQL or Redis down outside the store (migrate, keys)
        line = unreachable_service(exc)
        if line is None:
            raise
        return _fail(line, exc if args.verbose else None)


def _fail(message: str, exc: BaseException | None) -> int:
    if exc is not None:
        import traceback

        traceback.print_exception(exc, file=sys.stderr)
    print(f"error: {message}", file=sys.stderr)
    return 1


def run_async(coro: Any) -> Any:
    """Run a coroutine from a synchronous command handler."""
    return asyncio.run(coro)
