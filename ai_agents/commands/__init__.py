"""Core CLI subcommands beyond ``migrate``.

- ``demo``: the main job (:mod:`ai_agents.demo`).
- ``doctor``: checks the configuration piece by piece, with advice; ``config``: the
  effective settings (secrets masked) and where each came from.
- ``agents create|list|show|update|delete``, ``threads list|show|export``, ``chat``,
  ``run`` (one turn), ``usage``, ``jobs list|show|cancel``: work with agents from a shell.
- ``models``: the model registry; ``completion bash|zsh``: shell completion.
- ``mcp``: one tenant's agents as an MCP server on stdio (:mod:`ai_agents.mcp.server`).
- ``embedded start|status|stop``: the embedded PostgreSQL/Valkey (:mod:`ai_agents.embedded`).

Every command that needs the database and Redis falls back to the embedded servers when
no URL is configured (started on demand, reused by later commands, migrated), so a fresh
machine needs nothing but the package.
"""

from ai_agents.commands import (
    agents,
    chat,
    completion,
    config,
    demo,
    doctor,
    embedded,
    jobs,
    mcp_server,
    models,
    run,
    threads,
    usage,
)
from ai_agents.commands._shared import mask_url, resolve_settings
from ai_agents.commands.doctor import Check, render_checks, run_doctor

__all__ = [
    "Check",
    "agents",
    "chat",
    "completion",
    "config",
    "demo",
    "doctor",
    "embedded",
    "jobs",
    "mcp_server",
    "models",
    "mask_url",
    "render_checks",
    "resolve_settings",
    "run",
    "run_doctor",
    "threads",
    "usage",
]
