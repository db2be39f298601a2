"""``ai-agents models``: the model registry (limits and prices), as ``GET /models``."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ai_agents.cli import command
from ai_agents.commands._output import add_json_flag, json_lines, table

if TYPE_CHECKING:
    from ai_agents.providers.registry import ModelLimits


def _note(limits: ModelLimits) -> str:
    """``deprecated`` and/or ``estimated`` (guessed figures: override them)."""
    flags = (("deprecated", limits.deprecated), ("estimated", limits.estimated))
    return ", ".join(name for name, on in flags if on)


def _configure_models(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--provider", help="only this provider's models")
    parser.add_argument("--current", action="store_true", help="hide deprecated models")
    add_json_flag(parser)


@command(
    "models",
    "list known models: context window, output cap, tools, prices (USD per 1M tokens)",
    _configure_models,
)
def _models_command(args: argparse.Namespace) -> int:
    from ai_agents.errors import UsageError
    from ai_agents.providers.registry import get_registry

    registry = get_registry()
    entries = registry.models(args.provider, include_deprecated=not args.current)
    if args.provider and not entries:
        raise UsageError(
            f"no models known for provider {args.provider!r} "
            f"(known: {', '.join(registry.providers())})"
        )
    if args.json:
        json_lines(
            {"provider": e.provider, "model": e.model, **e.limits.to_dict()} for e in entries
        )
        return 0
    table(
        ["provider", "model", "context", "output", "tools", "vision", "$in/1M", "$out/1M", "note"],
        (
            [
                e.provider,
                e.model,
                e.limits.context_window,
                e.limits.max_output,
                e.limits.supports_tools,
                e.limits.supports_vision,
                f"{e.limits.cost_per_1m_input:g}",
                f"{e.limits.cost_per_1m_output:g}",
                _note(e.limits),
            ]
            for e in entries
        ),
    )
    return 0
