"""MCP server tools as :class:`~ai_agents.tools.decorator.Tool` objects of a run.

A server's tool ``get_time`` on the server named ``clock`` is offered to the model as
``clock__get_time``: characters outside ``[a-zA-Z0-9_-]`` become ``_``, the name is cut
to 64 characters, and a name already taken gets a ``_2``, ``_3``... suffix. The model's
arguments go to the server as they are (the server validates them against its schema).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import mcp_types as types
import pydantic

from ai_agents.mcp.client import McpPool
from ai_agents.mcp.config import McpServerConfig
from ai_agents.tools.decorator import Tool, ToolContext, ToolOutcome

MAX_NAME = 64
_INVALID = re.compile(r"[^a-zA-Z0-9_-]")


class _ServerArguments(pydantic.BaseModel):
    """Any JSON object: the MCP server validates its own arguments."""

    model_config = pydantic.ConfigDict(extra="allow")


def _not_called(**_: Any) -> None:  # pragma: no cover - McpTool.invoke never calls fn
    raise RuntimeError("an MCP tool is called through its server")


def exposed_name(server: str, tool: str, taken: set[str]) -> str:
    """The model-facing name of *tool* of *server*, unique among *taken* (then added)."""
    base = _INVALID.sub("_", f"{server}__{tool}")[:MAX_NAME]
    name, n = base, 1
    while name in taken:
        n += 1
        suffix = f"_{n}"
        name = base[: MAX_NAME - len(suffix)] + suffix
    taken.add(name)
    return name


def _schema(tool: types.Tool) -> dict[str, Any]:
    schema = dict(tool.input_schema or {})
    schema.setdefault("type", "object")
    if schema.get("type") == "object":
        schema.setdefault("properties", {})
    return schema


@dataclass(slots=True, kw_only=True)
class McpTool(Tool):
    """A tool of an MCP server: calls go through the pool's session with the server."""

    pool: McpPool
    server: McpServerConfig
    remote_name: str

    def validate(self, arguments: dict[str, Any]) -> dict[str, Any]:
        return dict(arguments)

    async def invoke(
        self, arguments: dict[str, Any], context: ToolContext | None, *, time_limit: float | None
    ) -> ToolOutcome:
        # The server's timeout, within the run's own limit for one tool call.
        limits = [t for t in (self.timeout, time_limit) if t is not None]
        limit = min(limits) if limits else self.pool.settings.mcp_call_timeout
        try:
            return await self.pool.call_tool(self.server, self.remote_name, dict(arguments), limit)
        except Exception as exc:  # the model sees every failure, the run goes on
            return ToolOutcome(f"Error: {type(exc).__name__}: {exc}", is_error=True)


def build_tools(
    pool: McpPool,
    server: McpServerConfig,
    tools: list[types.Tool],
    taken: set[str],
    timeout: float,
) -> list[Tool]:
    """The :class:`McpTool` objects of *server*'s *tools* (already filtered)."""
    built: list[Tool] = []
    for tool in tools:
        description = tool.description or tool.title or f"Tool {tool.name} of {server.name}"
        built.append(
            McpTool(
                name=exposed_name(server.name, tool.name, taken),
                description=description,
                fn=_not_called,
                parameters=_schema(tool),
                args_model=_ServerArguments,
                timeout=timeout,
                pool=pool,
                server=server,
                remote_name=tool.name,
            )
        )
    return built
