"""``ai-agents usage``: token and cost totals of a thread or a user."""

from __future__ import annotations

import argparse

from ai_agents.cli import command
from ai_agents.commands._output import (
    add_json_flag,
    add_tenant_flag,
    fields,
    json_line,
    tenant_view,
)
from ai_agents.commands._records import usage_json
from ai_agents.commands._shared import open_store, quiet_logs, run_command


def _configure_usage(parser: argparse.ArgumentParser) -> None:
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--thread", help="this thread's totals")
    which.add_argument("--user", help="this user's totals (every thread of the user)")
    add_tenant_flag(parser)
    add_json_flag(parser)


async def _usage(args: argparse.Namespace) -> int:
    async with await open_store() as opened:
        store = tenant_view(opened, args.tenant)
        if args.thread:
            totals = await store.usage(thread_id=args.thread)
            which = {"thread_id": args.thread}
        else:
            totals = await store.usage(user_id=args.user)
            which = {"user_id": args.user}
    if args.json:
        json_line(usage_json(totals, **which))
        return 0
    rows = [(name.replace("_id", ""), value) for name, value in which.items()]
    rows += [
        ("input tokens", totals.input_tokens),
        ("output tokens", totals.output_tokens),
        ("total tokens", totals.total_tokens),
        ("cost", f"${totals.cost:.6f}"),
    ]
    if args.thread:
        rows.append(("messages", totals.messages))
    fields(rows)
    return 0


@command("usage", "token and cost totals of a thread or a user", _configure_usage)
def _usage_command(args: argparse.Namespace) -> int:
    quiet_logs()
    return run_command(_usage(args))
