"""A small MCP server (the SDK's own ``MCPServer``) over streamable HTTP or SSE, for tests.

Run as ``python tests/fakes/mcp_http_server.py --port N [--transport sse] [--token T]
[--header NAME=VALUE]``. Every request must carry ``Authorization: Bearer T`` and the
header (when given), else 401. Tools:

- ``echo(text)``, ``add(a, b)`` (structured result), ``secret()`` (for allow-lists);
- ``sessions()``: how many MCP sessions were opened (initialize requests seen);
- ``fail(reason)``: a tool error (``isError``); ``slow(seconds)``: a late answer;
- ``die()``: ends the server process in the middle of the call;
- ``grow()``: adds the tool ``extra`` and notifies ``tools/list_changed``;
- ``picture()``: an image and a text block.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import uvicorn
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings
from mcp.types import ImageContent, TextContent

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

initializations = 0

server: MCPServer[Any] = MCPServer("test-server")


@server.tool()
def echo(text: str) -> str:
    """Echo the text back."""
    return f"echo: {text}"


@server.tool()
def add(a: int, b: int) -> dict[str, int]:
    """Add two integers."""
    return {"sum": a + b}


@server.tool()
def secret() -> str:
    """A tool the agent is not allowed to use."""
    return "the secret"


@server.tool()
def sessions() -> str:
    """How many MCP sessions this server has seen."""
    return str(initializations)


@server.tool()
def fail(reason: str) -> str:
    """Always fails."""
    raise ToolError(f"failed: {reason}")


@server.tool()
async def slow(seconds: float) -> str:
    """Answer after *seconds*."""
    await asyncio.sleep(seconds)
    return "finally"


@server.tool()
def die() -> str:
    """End the server process during the call."""
    os._exit(0)


@server.tool()
async def grow(ctx: Context[Any]) -> str:
    """Add the tool ``extra`` and tell the client the tool list changed."""

    def extra() -> str:
        """A tool added at run time."""
        return "extra!"

    server.add_tool(extra, name="extra", description="A tool added at run time.")
    await ctx.session.send_tool_list_changed()
    return "grown"


@server.tool()
def picture() -> list[TextContent | ImageContent]:
    """A picture and a caption."""
    return [
        TextContent(type="text", text="a red dot"),
        ImageContent(type="image", data="iVBORw0KGgo=", mime_type="image/png"),
    ]


def guard(app: App, token: str | None, header: tuple[str, str] | None) -> App:
    """401 for requests without the bearer token or the header; counts new sessions."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        global initializations
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        ok = token is None or headers.get("authorization") == f"Bearer {token}"
        if header is not None and headers.get(header[0].lower()) != header[1]:
            ok = False
        if not ok:
            body = json.dumps({"error": "unauthorized"}).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 401,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        opening = scope["method"] == "POST" and "mcp-session-id" not in headers
        if scope["method"] == "GET" and scope["path"].endswith("/sse"):
            opening = True
        if opening:
            initializations += 1
        await app(scope, receive, send)

    return wrapped


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--transport", choices=["streamable_http", "sse"], default="streamable_http"
    )
    parser.add_argument("--token")
    parser.add_argument("--header")
    args = parser.parse_args()
    header = tuple(args.header.split("=", 1)) if args.header else None
    security = TransportSecuritySettings(enable_dns_rebinding_protection=False)
    if args.transport == "sse":
        app = server.sse_app(transport_security=security)
    else:
        app = server.streamable_http_app(transport_security=security)
    uvicorn.run(
        guard(app, args.token, header),  # type: ignore[arg-type]
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
