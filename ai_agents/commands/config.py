"""``ai-agents config``: the effective value of every setting, and where it came from.

Why: with the environment, the ``AI_AGENTS_CONFIG`` file and defaults all in play, an
operator needs one place that says what the processes will actually use. Secrets are
masked (``***``), URLs lose their password; nothing else is touched.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from ai_agents.cli import command
from ai_agents.commands._shared import mask_url
from ai_agents.settings import (
    AgentsSettings,
    config_path,
    env_names,
    is_secret,
    load_settings,
    read_config_file,
)


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="one JSON object")
    parser.add_argument(
        "--changed", action="store_true", help="only the settings that are not the default"
    )


def effective_settings() -> list[dict[str, Any]]:
    """Each setting: ``variable``, ``value`` (masked), ``source`` (env, file or default)."""
    model = load_settings()  # a bad value fails here, in one line
    path = config_path()
    in_file = read_config_file(path)[1] if path else {}
    rows = []
    for name, info in AgentsSettings.model_fields.items():
        variable = next((v for v in env_names(name) if os.environ.get(v)), None)
        if variable:
            source = "env"
        elif name in in_file:
            source = f"file ({in_file[name]})"
        else:
            source = "default"
        value: Any = getattr(model, name)
        if value is not None and is_secret(name):
            value = "***"
        elif name == "providers":
            value = {provider: _masked(cfg) for provider, cfg in value.items()}
        elif isinstance(value, str) and (info.json_schema_extra or {}).get("url"):  # type: ignore[union-attr]
            value = mask_url(value)
        rows.append(
            {
                "variable": variable or env_names(name)[0],
                "value": list(value) if isinstance(value, tuple) else value,
                "source": source,
            }
        )
    return rows


#: Keys of an ``AI_AGENTS_PROVIDERS`` entry whose values are credentials.
_CREDENTIALS = frozenset({"api_key", "headers"})


def _masked(provider: dict[str, Any]) -> dict[str, Any]:
    """A declared provider with its key and headers shown as ``***``."""
    return {k: "***" if k in _CREDENTIALS and v else v for k, v in provider.items()}


@command("config", "show the effective settings (secrets masked) and their sources", _configure)
def _config(args: argparse.Namespace) -> int:
    rows = [r for r in effective_settings() if not args.changed or r["source"] != "default"]
    if args.json:
        print(json.dumps({r["variable"]: r["value"] for r in rows}, indent=2, default=str))
        return 0
    width = max((len(r["variable"]) for r in rows), default=0)
    for row in rows:
        value = row["value"]
        shown = value if isinstance(value, str) else json.dumps(value, default=str)
        print(f"{row['variable']:<{width}}  {shown}  [{row['source']}]")
    return 0
