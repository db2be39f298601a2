"""``ai-agents run``: one turn, for scripts (``chat`` is the conversation).

The answer streams to stdout and nothing else goes there: tool calls and the thread id
go to stderr. ``--json`` prints the finished result instead, one line (thread and run
ids, content, tool calls, usage, cost).
"""

from __future__ import annotations

import argparse
import sys
from contextlib import aclosing
from typing import TYPE_CHECKING

from ai_agents.cli import command
from ai_agents.commands._output import add_json_flag, add_tenant_flag, json_line, tenant_view
from ai_agents.commands._shared import open_store, quiet_logs, run_command
from ai_agents.errors import UsageError

if TYPE_CHECKING:
    from uuid import UUID

    from ai_agents.store import AgentStore


def _configure_run(parser: argparse.ArgumentParser) -> None:
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--agent", help="start a new thread with this agent")
    target.add_argument("--thread", help="add the turn to this thread")
    parser.add_argument("text", nargs="?", help="the message (default: all of stdin)")
    parser.add_argument("--user", help="the new thread's user (with --agent)")
    add_tenant_flag(parser)
    add_json_flag(parser)


async def _stream(store: AgentStore, thread_id: UUID, text: str) -> None:
    from ai_agents.response import DoneEvent, TextDeltaEvent, ToolCallEvent, ToolResultEvent

    ended_line = True
    async with aclosing(store.stream(thread_id, text)) as events:
        async for event in events:
            if isinstance(event, TextDeltaEvent):
                sys.stdout.write(event.text)
                sys.stdout.flush()
                ended_line = event.text.endswith("\n")
            elif isinstance(event, ToolCallEvent):
                print(f"[calls {event.call.name}({event.call.arguments})]", file=sys.stderr)
            elif isinstance(event, ToolResultEvent):
                status = "tool error" if event.is_error else "tool result"
                print(f"[{status}: {event.result}]", file=sys.stderr)
            elif isinstance(event, DoneEvent) and not ended_line:
                print(flush=True)


async def _run(args: argparse.Namespace, text: str) -> int:
    async with await open_store() as opened:
        store = tenant_view(opened, args.tenant)
        if args.agent:
            agent = await store.get_agent(args.agent)
            thread_id = await store.create_thread(agent.id, user_id=args.user)
        else:
            thread_id = (await store.get_thread(args.thread)).id
        if args.json:
            response = await store.run(thread_id, text)
            json_line(response.to_json())
        else:
            await _stream(store, thread_id, text)
            print(f"thread: {thread_id}", file=sys.stderr)
    return 0


@command("run", "run one turn and print the answer (a new thread with --agent)", _configure_run)
def _run_command(args: argparse.Namespace) -> int:
    text = args.text if args.text is not None else sys.stdin.read()
    if not text.strip():
        raise UsageError("no message: give the text as an argument or on stdin")
    quiet_logs()
    return run_command(_run(args, text.strip()))
