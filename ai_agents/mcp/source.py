"""The tools of the MCP servers configured on an agent, as a run's tool source."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import mcp_types as types

from ai_agents.config import Settings
from ai_agents.errors import ConfigurationError
from ai_agents.mcp.client import McpPool, call_timeout
from ai_agents.mcp.config import McpServerConfig
from ai_agents.mcp.tools import build_tools
from ai_agents.records import AgentRecord, ThreadRecord
from ai_agents.tools.decorator import Tool

log = logging.getLogger("ai_agents.mcp")

McpLoader = Callable[[AgentRecord], Awaitable[list[McpServerConfig]]]


class McpToolSource:
    """Offers each run the tools of its agent's MCP servers (see :mod:`ai_agents.mcp.client`).

    ``loader`` returns the agent's server configurations (secrets decrypted); when they
    cannot be read (``ConfigurationError``: secrets under a replaced key) the agent gets no
    MCP tools this run, with a warning. Servers are listed concurrently; a server that
    cannot list its tools gives none this run (a warning is logged), the run goes on.
    """

    def __init__(self, settings: Settings, loader: McpLoader) -> None:
        self.settings = settings
        self.loader = loader
        self.pool = McpPool(settings)

    async def tools_for(self, agent: AgentRecord, thread: ThreadRecord) -> list[Tool]:
        try:
            servers = await self.loader(agent)
        except ConfigurationError as exc:  # e.g. secrets under a replaced key: no MCP tools
            log.warning("agent %s gets no MCP tools this run: %s", agent.id, exc)
            return []
        # Any other failure (the database) fails the run like its other reads.
        servers = [s for s in servers if s.agent_id == agent.id and s.tenant_id == agent.tenant_id]
        if not servers:
            return []
        listings = await asyncio.gather(*(self._listing(s) for s in servers))
        taken: set[str] = set()
        tools: list[Tool] = []
        for server, listing in zip(servers, listings, strict=True):
            timeout = call_timeout(server, self.settings)
            tools.extend(build_tools(self.pool, server, listing, taken, timeout))
        return tools

    async def _listing(self, server: McpServerConfig) -> list[types.Tool]:
        try:
            tools = await self.pool.list_tools(server)
        except Exception as exc:
            log.warning(
                "MCP server %s (%s) gives no tools this run: %s", server.name, server.id, exc
            )
            return []
        if server.allowed_tools is None:
            return tools
        allowed = set(server.allowed_tools)
        return [t for t in tools if t.name in allowed]

    async def aclose(self) -> None:
        await self.pool.aclose()
