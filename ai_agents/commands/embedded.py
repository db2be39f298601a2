"""``ai-agents embedded start|status|stop``: the embedded PostgreSQL/Valkey."""

from __future__ import annotations

import argparse
import logging
from typing import TYPE_CHECKING

from ai_agents.cli import command

if TYPE_CHECKING:
    pass


def _configure_embedded(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("start", help="start the embedded PostgreSQL and Valkey (migrated)")
    sub.add_parser("status", help="show whether they run, and where")
    stop = sub.add_parser("stop", help="stop them (data is kept)")
    stop.add_argument("--delete", action="store_true", help="also delete their data")


@command(
    "embedded",
    "the embedded PostgreSQL and Valkey used when no URL is configured",
    _configure_embedded,
)
def _embedded_command(args: argparse.Namespace) -> int:
    from ai_agents import embedded

    logging.getLogger("ai_agents.embedded").setLevel(logging.INFO)
    home = embedded.embedded_home()
    if args.action == "start":
        infos = embedded.ensure_services(home)
        from ai_agents.db import migrate

        migrate.upgrade(infos[0].url)
        for info in infos:
            print(f"{info.name}: {info.url}")
        print(
            f"\nuse them from other tools with\n  export AI_AGENTS_DATABASE_URL={infos[0].url}\n"
            f"  export AI_AGENTS_REDIS_URL={infos[1].url}"
        )
        return 0
    if args.action == "status":
        for name, status in embedded.service_status(home).items():
            if status is None:
                print(f"{name}: not running (files in {home})")
            else:
                print(
                    f"{name}: running at {status.url} (pid {status.pid}, data in {status.data_dir})"
                )
        return 0
    if args.delete:
        embedded.delete_data(home)
        print(f"stopped; data deleted from {home}")
        return 0
    stopped = embedded.stop_services(home)
    print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")
    return 0
