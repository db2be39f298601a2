"""One MCP server configured on an agent, as the run-time client sees it (secrets decrypted)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal
from uuid import UUID

Transport = Literal["streamable_http", "sse", "stdio"]
TRANSPORTS: tuple[Transport, ...] = ("streamable_http", "sse", "stdio")


@dataclass(frozen=True, slots=True, kw_only=True)
class McpServerConfig:
    id: UUID
    tenant_id: str
    agent_id: UUID
    #: Short label, unique per agent (``[a-zA-Z0-9_-]{1,32}``); prefixes its tool names.
    name: str
    transport: Transport
    #: ``streamable_http`` / ``sse``: the server's URL.
    url: str | None = None
    #: ``stdio``: a name from ``Settings.mcp_stdio_commands`` (never a command line).
    command: str | None = None
    #: Secrets: decrypted here, encrypted at rest, never returned by the API.
    headers: dict[str, str] = field(default_factory=dict)
    bearer_token: str | None = None
    #: Only these tool names of the server are offered; ``None``: all of them.
    allowed_tools: tuple[str, ...] | None = None
    #: Seconds one tool call may take (``None``: ``Settings.mcp_call_timeout``).
    timeout: float | None = None
    #: Bumped on every change: a pooled connection of an older version is replaced.
    version: int = 1
