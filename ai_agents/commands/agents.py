"""``ai-agents agents create|list|show|update|delete``."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

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
from ai_agents.commands._records import agent_json
from ai_agents.commands._shared import open_store, quiet_logs, run_command
from ai_agents.errors import ConfigurationError, UsageError
from ai_agents.records import AgentRecord

if TYPE_CHECKING:
    from ai_agents.store import AgentStore


def _add_model_flags(parser: argparse.ArgumentParser, *, creating: bool) -> None:
    parser.add_argument(
        "--provider",
        help="default: the first configured of OpenAI, Anthropic, Ollama, else local"
        if creating
        else None,
    )
    parser.add_argument(
        "--model", help="default: the provider's default model" if creating else None
    )
    parser.add_argument("--memory-strategy", default="last_messages" if creating else None)
    parser.add_argument("--temperature", type=float)
    parser.add_argument("--max-output-tokens", type=int, help="cap on each answer's tokens")


def _configure_agents(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    create = sub.add_parser("create", help="create an agent; prints its id")
    create.add_argument("--name", required=True)
    create.add_argument("--role", required=True, help="who the agent is (system prompt)")
    create.add_argument("--goal")
    create.add_argument("--constraint", action="append", default=[], help="repeatable")
    create.add_argument("--tool", action="append", default=[], help="a registered tool; repeatable")
    _add_model_flags(create, creating=True)

    listing = sub.add_parser("list", help="list agents")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--all", action="store_true", help="include deactivated agents")

    show = sub.add_parser("show", help="show one agent")
    show.add_argument("agent_id")

    update = sub.add_parser("update", help="change an agent (only the fields given)")
    update.add_argument("agent_id")
    update.add_argument("--name")
    update.add_argument("--role")
    update.add_argument("--goal")
    update.add_argument("--constraint", action="append", help="replaces the list; repeatable")
    update.add_argument("--tool", action="append", help="replaces the list; repeatable")
    _add_model_flags(update, creating=False)
    update.add_argument(
        "--clear-setting",
        action="append",
        default=[],
        metavar="NAME",
        help="remove a setting (e.g. max_output_tokens); repeatable",
    )
    update.add_argument("--activate", action="store_true", help="reactivate a deactivated agent")

    delete = sub.add_parser(
        "delete", help="deactivate an agent (kept with its threads); --purge deletes it"
    )
    delete.add_argument("agent_id")
    delete.add_argument(
        "--purge", action="store_true", help="delete it for good, with its threads and messages"
    )
    delete.add_argument("--yes", action="store_true", help="confirm --purge")

    for action in (create, listing, show, update, delete):
        add_tenant_flag(action)
        add_json_flag(action)


def default_model(provider: str | None, model: str | None) -> tuple[str, str]:
    """The provider and model of a new agent: the given ones, else the first configured
    vendor's default model, else the local model (no other setting: an agent created here
    answers at its model's full length)."""
    from ai_agents.demo import choose_provider
    from ai_agents.providers.local import DEFAULT_MODEL

    if provider and model:
        return provider, model
    if provider == "local":
        return provider, model or DEFAULT_MODEL
    if provider:
        raise UsageError(f"--provider {provider} needs --model")
    choice = choose_provider("auto")
    if choice.provider == "demo":
        from ai_agents.providers.catalog import setup_hint

        raise ConfigurationError(
            f"no model available: pass --provider and --model, set {setup_hint()}, "
            "or pip install 'ai-agents-platform[local]'"
        )
    return choice.provider, model or choice.model


def _model_settings(args: argparse.Namespace, current: dict[str, Any]) -> dict[str, Any]:
    settings = {k: v for k, v in current.items() if k not in getattr(args, "clear_setting", [])}
    if args.temperature is not None:
        settings["temperature"] = args.temperature
    if args.max_output_tokens is not None:
        settings["max_output_tokens"] = args.max_output_tokens
    return settings


def _changes(args: argparse.Namespace, current: AgentRecord) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for name in ("name", "role", "goal", "provider", "model", "memory_strategy"):
        value = getattr(args, name)
        if value is not None:
            changes[name] = value
    if args.constraint is not None:
        changes["constraints"] = list(args.constraint)
    if args.tool is not None:
        changes["tools"] = list(args.tool)
    settings = _model_settings(args, current.settings)
    if settings != current.settings:
        changes["settings"] = settings
    if args.activate:
        changes["is_active"] = True
    return changes


def _print_agent(record: AgentRecord, as_json: bool) -> None:
    if as_json:
        json_line(agent_json(record))
        return
    definition = record.definition
    fields(
        [
            ("id", record.id),
            ("name", definition.name),
            ("tenant", record.tenant_id),
            ("model", f"{record.provider}/{record.model}"),
            ("active", record.is_active),
            ("role", definition.role),
            ("goal", definition.goal),
            ("constraints", definition.constraints),
            ("tools", definition.tools),
            ("memory", record.memory_strategy),
            ("settings", ", ".join(f"{k}={v}" for k, v in record.settings.items()) or None),
            ("created", record.created_at),
        ]
    )


async def _create(store: AgentStore, args: argparse.Namespace) -> int:
    from ai_agents.definition import AgentDefinition

    provider, model = default_model(args.provider, args.model)
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
        settings=_model_settings(args, {}),
    )
    if args.json:
        json_line(agent_json(await store.get_agent(agent_id)))
    else:
        print(agent_id)
    return 0


async def _list(store: AgentStore, args: argparse.Namespace) -> int:
    page = await store.list_agents(limit=args.limit, include_inactive=args.all)
    if args.json:
        json_lines(agent_json(a) for a in page.items)
    elif not page.items:
        print("no agents yet (create one with `ai-agents agents create --name ... --role ...`)")
    else:
        table(
            ["id", "provider/model", "active", "name"],
            ([a.id, f"{a.provider}/{a.model}", a.is_active, a.definition.name] for a in page.items),
        )
    return 0


async def _delete(store: AgentStore, args: argparse.Namespace) -> int:
    if args.purge:
        if not args.yes:
            raise UsageError(
                "--purge deletes the agent with all its threads and messages for good: "
                "add --yes to confirm"
            )
        await store.delete_agent(args.agent_id)
        result: dict[str, Any] = {"id": args.agent_id, "deleted": True}
    else:
        record = await store.deactivate_agent(args.agent_id)
        result = {"id": str(record.id), "deleted": False, "is_active": record.is_active}
    if args.json:
        json_line(result)
    elif args.purge:
        print(f"deleted agent {args.agent_id} with its threads")
    else:
        print(
            f"deactivated agent {args.agent_id} (its threads are kept; "
            "`agents update --activate` brings it back, `--purge --yes` deletes it)"
        )
    return 0


async def _agents(args: argparse.Namespace) -> int:
    async with await open_store() as opened:
        store = tenant_view(opened, args.tenant)
        if args.action == "create":
            return await _create(store, args)
        if args.action == "list":
            return await _list(store, args)
        if args.action == "delete":
            return await _delete(store, args)
        record = await store.get_agent(args.agent_id)
        if args.action == "update":
            changes = _changes(args, record)
            if not changes:
                raise UsageError("nothing to change: give at least one option (see --help)")
            record = await store.update_agent(args.agent_id, **changes)
        _print_agent(record, args.json)
        return 0


@command("agents", "create, list, show, update or delete agents", _configure_agents)
def _agents_command(args: argparse.Namespace) -> int:
    quiet_logs()
    return run_command(_agents(args))
