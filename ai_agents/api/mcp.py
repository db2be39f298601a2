"""``/mcp``: the agents of the caller's tenant as an MCP server (Streamable HTTP).

Every HTTP request to ``/mcp`` is authenticated like a REST request (``Authorization:
Bearer <API key>``: the same key store, failed-authentication throttle and per-key rate
limit, the same 401/429 error bodies). The key's tenant goes in the request's ASGI scope
(:data:`~ai_agents.mcp.server.TENANT_SCOPE_KEY`) where the MCP tools read it, and the key
becomes the SDK's authenticated user, so an MCP session can only be used with the key
that opened it (another key gets 404, as for a session that does not exist). An admin
key acts for its own tenant only here.

Not in the OpenAPI document (it is not a REST endpoint). The SDK's DNS-rebinding
protection is off: every request needs an API key, which a browser tricked into calling
the API does not have.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar, Request
from litestar.handlers import ASGIRouteHandler, asgi
from litestar.types import Receive, Scope, Send
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings

from ai_agents.api.auth import provide_principal
from ai_agents.mcp.server import TENANT_SCOPE_KEY, create_server, tenant_from_request
from ai_agents.store import AgentStore

MCP_PATH = "/mcp"


class McpEndpoint:
    """The session manager and the Litestar handler that feeds it authenticated requests."""

    def __init__(self, store: AgentStore, *, stateless: bool = False) -> None:
        self.server = create_server(store, tenant_from_request)
        # Builds the SDK's session manager (the Starlette app it returns is not used).
        # Stateless: no session id, each request is a session of its own, so requests
        # of one client may reach different API processes.
        self.server.streamable_http_app(
            streamable_http_path=MCP_PATH,
            stateless_http=stateless,
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        )
        self.sessions: StreamableHTTPSessionManager = self.server.session_manager
        self.handler: ASGIRouteHandler = asgi(MCP_PATH, is_mount=True, copy_scope=False)(
            self._handle
        )

    @asynccontextmanager
    async def lifespan(self, _app: Litestar) -> AsyncIterator[None]:
        async with self.sessions.run():
            yield

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        app: Litestar = scope["litestar_app"]
        request: Request[Any, Any, Any] = Request(scope, receive)
        principal = await provide_principal(request, app.state)  # 401 / 429 ApiError
        raw: dict[str, Any] = scope  # type: ignore[assignment]
        raw[TENANT_SCOPE_KEY] = principal.tenant_id
        raw["user"] = AuthenticatedUser(
            AccessToken(token=f"api_key:{principal.key.id}", client_id=principal.actor, scopes=[])
        )
        await self.sessions.handle_request(raw, receive, send)  # type: ignore[arg-type]
