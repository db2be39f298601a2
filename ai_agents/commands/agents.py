"""``ai-agents agents create|list``, ``threads list`` and ``chat``."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ai_agents.cli import command
from ai_agents.errors import AgentsError, ConfigurationError, UsageError

if TYPE_CHECKING:
    pass


from ai_agents.commands._shared import open_store, quiet_logs, run_command


def _configure_agents(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    create = sub.add_parser("create", help="create an agent; prints its id")
    create.add_argument("--name", required=True)
    create.add_argument("--role", required=True, help="who the agent is (system prompt)")
    create.add_argument("--goal")
    create.add_argument("--constraint", action="append", default=[], help="repeatable")
    create.add_argument("--tool", action="append", default=[], help="a registered tool; repeatable")
    create.add_argument(
        "--provider",
        help="default: the first configured of OpenAI, Anthropic, Ollama, else local",
    )
    create.add_argument("--model", help="default: the provider's default model")
    create.add_argument("--memory-strategy", default="last_messages")
    create.add_argument("--temperature", type=float)
    create.add_argument("--max-output-tokens", type=int)
    create.add_argument("--json", action="store_true", help="print the agent as JSON")
    listing = sub.add_parser("list", help="list agents")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--all", action="store_true", help="include deactivated agents")
    listing.add_argument("--json", action="store_true")


def _default_model(provider: str | None, model: str | None) -> tuple[str, str, dict[str, Any]]:
    from ai_agents.demo import choose_provider
    from ai_agents.providers.local import DEFAULT_MODEL

    if provider and model:
        return provider, model, {}
    if provider == "local":
        return provider, model or DEFAULT_MODEL, {}
    if provider:
        raise UsageError(f"--provider {provider} needs --model")
    choice = choose_provider("auto")
    if choice.provider == "demo":
        raise ConfigurationError(
            "no model available: pass --provider and --model, set OPENAI_API_KEY, "
            "ANTHROPIC_API_KEY or OLLAMA_HOST, or pip install 'ai-agents[local]'"
        )
    return choice.provider, model or choice.model, dict(choice.settings)


def _agent_json(record: Any) -> dict[str, Any]:
    return {
        "id": str(record.id),
        "name": record.definition.name,
        "provider": record.provider,
        "model": record.model,
        "memory_strategy": record.memory_strategy,
        "tools": list(record.definition.tools),
        "settings": record.settings,
        "is_active": record.is_active,
        "created_at": record.created_at.isoformat() if record.created_at else None,
    }


async def _agents(args: argparse.Namespace) -> int:
    from ai_agents.definition import AgentDefinition

    store = await open_store()
    async with store:
        if args.action == "create":
            provider, model, settings = _default_model(args.provider, args.model)
            if args.temperature is not None:
                settings["temperature"] = args.temperature
            if args.max_output_tokens is not None:
                settings["max_output_tokens"] = args.max_output_tokens
            definition = AgentDefinition(
                name=args.name,
                role=args.role,
                goal=args.goal,
                constraints=list(args.constraint),
                tools=list(args.tool),
            )
            agent_id = await store.create_agent(
                definition,
                provider=provider,
                model=model,
                memory_strategy=args.memory_strategy,
                settings=settings,
            )
            if args.json:
                print(json.dumps(_agent_json(await store.get_agent(agent_id)), indent=2))
            else:
                print(agent_id)
            return 0
        page = await store.list_agents(limit=args.limit, include_inactive=args.all)
        if args.json:
            print(json.dumps([_agent_json(a) for a in page.items], indent=2))
            return 0
        if not page.items:
            print("no agents yet (create one with `ai-agents agents create --name ... --role ...`)")
            return 0
        print(f"{'id':<36}  {'provider/model':<40}  {'active':<6}  name")
        for agent in page.items:
            target = f"{agent.provider}/{agent.model}"
            active = "yes" if agent.is_active else "no"
            print(f"{agent.id!s:<36}  {target:<40}  {active:<6}  {agent.definition.name}")
        return 0


@command("agents", "create or list agents", _configure_agents)
def _agents_command(args: argparse.Namespace) -> int:
    quiet_logs()
    return run_command(_agents(args))


def _configure_threads(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    listing = sub.add_parser("list", help="list threads, most recently used first")
    listing.add_argument("--agent", help="only this agent's threads")
    listing.add_argument("--user", help="only this user's threads")
    listing.add_argument("--archived", action="store_true", help="archived threads instead")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--json", action="store_true")


async def _threads(args: argparse.Namespace) -> int:
    store = await open_store()
    async with store:
        page = await store.list_threads(
            agent_id=args.agent, user_id=args.user, archived=args.archived, limit=args.limit
        )
        if args.json:
            print(
                json.dumps(
                    [
                        {
                            "id": str(t.id),
                            "agent_id": str(t.agent_id),
                            "user_id": t.user_id,
                            "title": t.title,
                            "message_count": t.message_count,
                            "input_tokens": t.input_tokens,
                            "output_tokens": t.output_tokens,
                            "cost": t.cost,
                            "last_used_at": t.last_used_at.isoformat() if t.last_used_at else None,
                        }
                        for t in page.items
                    ],
                    indent=2,
                )
            )
            return 0
        if not page.items:
            print("no threads")
            return 0
        print(f"{'id':<36}  {'agent':<36}  {'user':<16}  {'msgs':>5}  {'tokens':>8}  last used")
        for t in page.items:
            used = t.last_used_at.strftime("%Y-%m-%d %H:%M") if t.last_used_at else "-"
            tokens = t.input_tokens + t.output_tokens
            print(
                f"{t.id!s:<36}  {t.agent_id!s:<36}  {t.user_id or '-':<16}  "
                f"{t.message_count:>5}  {tokens:>8}  {used}"
            )
        return 0


@command("threads", "list threads", _configure_threads)
def _threads_command(args: argparse.Namespace) -> int:
    quiet_logs()
    return run_command(_threads(args))


def _configure_chat(parser: argparse.ArgumentParser) -> None:
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--thread", help="continue this thread")
    target.add_argument("--agent", help="start a new thread with this agent")
    parser.add_argument("--user", help="the new thread's user (with --agent)")


async def _chat(args: argparse.Namespace, stdin: Callable[[], str]) -> int:
    from ai_agents.demo import stream_answer

    store = await open_store()
    async with store:
        if args.agent:
            thread_id = await store.create_thread(args.agent, user_id=args.user)
            agent = await store.get_agent(args.agent)
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
