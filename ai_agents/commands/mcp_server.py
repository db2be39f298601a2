"""``ai-agents mcp``: serve one tenant's agents as an MCP server over stdio.

For Claude Desktop, an IDE or any MCP host that launches servers as subprocesses. The
tenant is ``--tenant`` (default ``settings.default_tenant``) or the tenant of an API key
(``--api-key`` or ``AI_AGENTS_API_KEY``), checked against the key store exactly as the
REST API checks it; a key revoked later stops the session's tools. The database, Redis
and model providers come from the environment like every other command. stdout carries
the protocol: logs go to stderr.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from ai_agents.cli import command
from ai_agents.commands._shared import open_store, quiet_logs, run_command
from ai_agents.errors import UsageError

if TYPE_CHECKING:
    from mcp.server.mcpserver import Context

    from ai_agents.mcp.server import TenantResolver
    from ai_agents.store import AgentStore

API_KEY_ENV = "AI_AGENTS_API_KEY"


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tenant", help="act for this tenant (default: settings.default_tenant)")
    parser.add_argument(
        "--api-key",
        help=f"act for this API key's tenant (default: ${API_KEY_ENV}); overrides --tenant",
    )


async def _key_resolver(store: AgentStore, secret: str) -> tuple[str, TenantResolver]:
    """The key's tenant, and a resolver that refuses once the key is revoked."""
    from mcp.server.mcpserver.exceptions import ToolError

    from ai_agents.api.config import ApiConfig
    from ai_agents.api.keys import KeyStore

    config = ApiConfig.from_env()
    keys = KeyStore(store, pepper=config.key_pepper, cache_ttl=config.key_cache_ttl)
    key = await keys.authenticate(secret)
    if key is None:
        raise UsageError("invalid or revoked API key")
    tenant_id = key.tenant_id

    async def resolve(_ctx: Context) -> str:
        if await keys.authenticate(secret) is None:
            raise ToolError("the API key of this MCP session was revoked")
        return tenant_id

    return tenant_id, resolve


async def _serve(args: argparse.Namespace) -> int:
    from ai_agents.mcp.server import create_server

    store = await open_store()
    try:
        from ai_agents.settings import load_settings

        secret = args.api_key or load_settings().api_key
        if secret:
            tenant_id, resolver = await _key_resolver(store, secret.strip())
            server = create_server(store, resolver)
        else:
            tenant_id = args.tenant or store.settings.default_tenant
            server = create_server(store, tenant_id)
        print(f"ai-agents MCP server (stdio) for tenant {tenant_id}", file=sys.stderr)
        await server.run_stdio_async()
    finally:
        await store.close()
    return 0


@command("mcp", "serve one tenant's agents as an MCP server on stdio", _configure)
def _mcp(args: argparse.Namespace) -> int:
    quiet_logs()
    return run_command(_serve(args))
