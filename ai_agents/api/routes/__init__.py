"""The API's route handlers, one module per resource; :data:`ROUTES` lists them all."""

from __future__ import annotations

from typing import Any

from ai_agents.api.routes import (
    agents,
    jobs,
    keys,
    mcp_servers,
    memory,
    messages,
    runs,
    system,
    threads,
)

ROUTES: list[Any] = [
    *agents.HANDLERS,
    *threads.HANDLERS,
    *messages.HANDLERS,
    *runs.HANDLERS,
    *jobs.HANDLERS,
    *memory.HANDLERS,
    *system.HANDLERS,
    *keys.HANDLERS,
    *mcp_servers.HANDLERS,
]
