"""``ai-agents chat``: a conversation on a thread, lines from stdin, answers streamed."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable

from ai_agents.cli import command
from ai_agents.commands._output import add_tenant_flag, tenant_view
from ai_agents.commands._shared import open_store, quiet_logs, run_command
from ai_agents.errors import AgentsError


def _configure_chat(parser: argparse.ArgumentParser) -> None:
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--thread", help="continue this thread")
    target.add_argument("--agent", help="start a new thread with this agent")
    parser.add_argument("--user", help="the new thread's user (with --agent)")
    add_tenant_flag(parser)


async def _chat(args: argparse.Namespace, stdin: Callable[[], str]) -> int:
    from ai_agents.demo import stream_answer

    async with await open_store() as opened:
        store = tenant_view(opened, args.tenant)
        if args.agent:
            agent = await store.get_agent(args.agent)
            thread_id = await store.create_thread(agent.id, user_id=args.user)
        else:
            thread = await store.get_thread(args.thread)
            thread_id, agent = thread.id, await store.get_agent(thread.agent_id)
        interactive = sys.stdin.isatty()
        print(
            f"== thread {thread_id} with {agent.definition.name} "
            f"({agent.provider}/{agent.model}); /quit or end of input to leave",
            flush=True,
        )
        while True:
            if interactive:
                print("you> ", end="", flush=True)
            line = await asyncio.to_thread(stdin)
            if not line:
                break
            text = line.strip()
            if text in ("/quit", "/exit"):
                break
            if not text:
                continue
            if not interactive:
                print(f"you> {text}")
            try:
                await stream_answer(store, thread_id, text, sys.stdout)
            except AgentsError as exc:
                print(f"\nerror: {exc.message}", file=sys.stderr, flush=True)
        print(f"== bye (thread {thread_id})")
    return 0


@command(
    "chat",
    "chat with an agent on a thread (reads lines from stdin, streams answers)",
    _configure_chat,
)
def _chat_command(args: argparse.Namespace) -> int:
    quiet_logs()
    return run_command(_chat(args, sys.stdin.readline))
