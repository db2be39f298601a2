"""``/agents/{agent_id}/mcp_servers``: the MCP servers whose tools an agent gets.

Secrets (headers, bearer token) are accepted, stored encrypted and never answered; a
URL must pass the SSRF gate (``ai_agents/mcp/security.py``), a stdio server must name
a command the operator allows. An agent of another tenant is a 404.
"""

from __future__ import annotations

from uuid import UUID

from litestar import delete, get, post

from ai_agents.api.auth import Principal
from ai_agents.api.openapi import errors
from ai_agents.api.schemas import McpServerCreate, McpServerList, McpServerOut, mcp_server_out

TAGS = ["mcp servers"]
PATH = "/agents/{agent_id:uuid}/mcp_servers"


@post(
    PATH, tags=TAGS, summary="Add an MCP server to an agent", status_code=201, opt=errors(409, 422)
)
async def add_mcp_server(
    agent_id: UUID, data: McpServerCreate, principal: Principal
) -> McpServerOut:
    """The agent's runs get the server's tools (named ``<name>__<tool>``) from now on."""
    info = await principal.store.add_mcp_server(
        agent_id,
        name=data.name,
        transport=data.transport,
        url=data.url,
        command=data.command,
        headers=data.headers,
        bearer_token=data.bearer_token,
        allowed_tools=data.allowed_tools,
        timeout=data.timeout,
    )
    return mcp_server_out(info)


@get(PATH, tags=TAGS, summary="List an agent's MCP servers")
async def list_mcp_servers(agent_id: UUID, principal: Principal) -> McpServerList:
    servers = await principal.store.list_mcp_servers(agent_id)
    return McpServerList(data=[mcp_server_out(s) for s in servers])


@delete(PATH + "/{server_id:uuid}", tags=TAGS, summary="Remove an MCP server from an agent")
async def remove_mcp_server(agent_id: UUID, server_id: UUID, principal: Principal) -> None:
    await principal.store.remove_mcp_server(agent_id, server_id)


HANDLERS = [add_mcp_server, list_mcp_servers, remove_mcp_server]
