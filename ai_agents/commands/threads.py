"""``ai-agents threads list|show|export``."""

from __future__ import annotations

import argparse
import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from ai_agents.cli import command
from ai_agents.commands._output import (
    add_json_flag,
    add_tenant_flag,
    fields,
    json_line,
    json_lines,
    table,
    tenant_view,
)
from ai_agents.commands._records import message_json, thread_json
from ai_agents.commands._shared import open_store, quiet_logs, run_command
from ai_agents.messages import Message
from ai_agents.records import AgentRecord, ThreadRecord

if TYPE_CHECKING:
    from ai_agents.store import AgentStore

EXPORT_FORMATS = ("jsonl", "markdown")


def _configure_threads(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    listing = sub.add_parser("list", help="list threads, most recently used first")
    listing.add_argument("--agent", help="only this agent's threads")
    listing.add_argument("--user", help="only this user's threads")
    listing.add_argument("--archived", action="store_true", help="archived threads instead")
    listing.add_argument("--limit", type=int, default=50)
    add_json_flag(listing)

    show = sub.add_parser("show", help="show a thread and its messages")
    show.add_argument("thread_id")
    add_json_flag(show)

    export = sub.add_parser("export", help="print a thread's messages (JSON lines or Markdown)")
    export.add_argument("thread_id")
    export.add_argument("--format", choices=EXPORT_FORMATS, default="jsonl", help="default: jsonl")
    for action in (listing, show, export):
        add_tenant_flag(action)


async def all_messages(store: AgentStore, thread_id: str) -> AsyncIterator[Message]:
    """Every message of the thread, oldest first, a page at a time."""
    after: int | None = None
    while True:
        page = await store.list_messages(thread_id, limit=500, after=after)
        for message in page.items:
            yield message
        if not page.items or not page.has_more:
            return
        after = page.items[-1].seq


def message_lines(message: Message) -> list[str]:
    """A message as the chat prints it (``role> text``, tool calls on their lines)."""
    lines = [f"{message.role}> {message.text}"] if message.text or not message.tool_calls else []
    for call in message.tool_calls:
        lines.append(f"{message.role}> [calls {call.name}({call.arguments})]")
    return lines


def markdown(thread: ThreadRecord, agent: AgentRecord, messages: list[Message]) -> str:
    parts = [
        f"# {thread.title or f'Thread {thread.id}'}",
        "",
        f"- thread: `{thread.id}`",
        f"- agent: {agent.definition.name} (`{agent.provider}/{agent.model}`)",
        f"- user: {thread.user_id or '-'}",
        f"- messages: {thread.message_count}",
    ]
    for message in messages:
        title = message.role.capitalize()
        if message.role == "tool":
            title = f"Tool result ({message.tool_name or message.tool_call_id})"
        parts += ["", f"## {title}", ""]
        if message.role == "tool":
            parts += ["```", message.text, "```"]
        elif message.text:
            parts.append(message.text)
        for call in message.tool_calls:
            parts.append(f"\n> calls `{call.name}` with `{json.dumps(call.arguments)}`")
    return "\n".join(parts) + "\n"


async def _list(store: AgentStore, args: argparse.Namespace) -> int:
    page = await store.list_threads(
        agent_id=args.agent, user_id=args.user, archived=args.archived, limit=args.limit
    )
    if args.json:
        json_lines(thread_json(t) for t in page.items)
    elif not page.items:
        print("no threads")
    else:
        table(
            ["id", "agent", "user", "msgs", "tokens", "last used"],
            (
                [
                    t.id,
                    t.agent_id,
                    t.user_id,
                    t.message_count,
                    t.input_tokens + t.output_tokens,
                    t.last_used_at,
                ]
                for t in page.items
            ),
        )
    return 0


async def _threads(args: argparse.Namespace) -> int:
    async with await open_store() as opened:
        store = tenant_view(opened, args.tenant)
        if args.action == "list":
            return await _list(store, args)
        thread = await store.get_thread(args.thread_id)
        messages = [m async for m in all_messages(store, args.thread_id)]
        if args.action == "export":
            if args.format == "jsonl":
                json_lines(message_json(m) for m in messages)
            else:
                agent = await store.get_agent(thread.agent_id)
                print(markdown(thread, agent, messages), end="")
            return 0
        if args.json:
            json_line({**thread_json(thread), "messages": [message_json(m) for m in messages]})
            return 0
        fields(
            [
                ("id", thread.id),
                ("agent", thread.agent_id),
                ("user", thread.user_id),
                ("title", thread.title),
                ("messages", thread.message_count),
                ("tokens", f"{thread.input_tokens} in, {thread.output_tokens} out"),
                ("cost", f"${thread.cost:.6f}"),
                ("archived", thread.archived),
                ("last used", thread.last_used_at),
            ]
        )
        print()
        for message in messages:
            for line in message_lines(message):
                print(line)
        return 0


@command("threads", "list, show or export threads", _configure_threads)
def _threads_command(args: argparse.Namespace) -> int:
    quiet_logs()
    return run_command(_threads(args))
