"""The run-time MCP client: a per-process pool of sessions with the agents' MCP servers.

One :class:`McpPool` (owned by :class:`~ai_agents.mcp.source.McpToolSource`) keeps one
session per (server id, version), opened lazily on first use and kept across runs. Each
session lives in its own task (:class:`_Connection`): the SDK's transports are anyio
context managers, which must be entered and exited by the same task.

- Connecting checks the server again (:mod:`ai_agents.mcp.security`): the URL's host
  against the allow-list and private addresses (DNS may have changed since the server
  was added), a stdio name against ``Settings.mcp_stdio_commands``.
- Tool lists are cached ``Settings.mcp_tools_ttl`` seconds, and dropped at once when
  the server sends ``notifications/tools/list_changed``.
- A call is bounded by the server's ``timeout`` (``Settings.mcp_call_timeout``); every
  failure becomes a tool error the model sees (:class:`ToolOutcome` ``is_error``), and a
  failure of the connection itself drops the session so the next use reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import Awaitable
from typing import Any, TypeVar
from uuid import UUID

import mcp_types as types
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.session import IncomingMessage
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError

from ai_agents.config import Settings
from ai_agents.mcp.config import McpServerConfig
from ai_agents.mcp.results import describe_result
from ai_agents.mcp.security import check_remote_url_async, stdio_argv
from ai_agents.tools.decorator import ToolOutcome

log = logging.getLogger("ai_agents.mcp")
T = TypeVar("T")

CLIENT_INFO = types.Implementation(name="ai_agents", version="1")
#: Errors after which the session is known to be broken (the others are the server's
#: answer to this call: a bad argument, an unknown tool).
_BROKEN_CODES = frozenset({types.CONNECTION_CLOSED, types.REQUEST_TIMEOUT})
#: Seconds a closing session may take to shut down before its task is cancelled.
_CLOSE_GRACE = 5.0
#: Pages of ``tools/list`` read at most (a server that never ends its cursor).
_MAX_PAGES = 50


class McpUnavailable(Exception):
    """The server cannot be reached, refused the session, or lost it."""


def call_timeout(config: McpServerConfig, settings: Settings) -> float:
    return config.timeout if config.timeout is not None else settings.mcp_call_timeout


def session_expired(exc: MCPError) -> bool:
    """The server does not know the session (streamable HTTP 404 after a restart)."""
    return exc.error.code == types.INVALID_REQUEST and "session" in exc.error.message.lower()


def _reason(exc: BaseException) -> str:
    """A short description of *exc* (the first leaf of an exception group)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class _Connection:
    """One MCP session, entered and exited by its own long-lived task."""

    def __init__(self, config: McpServerConfig, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self.session: ClientSession | None = None
        self.error: BaseException | None = None
        self.tools: list[types.Tool] | None = None
        self.listed_at = 0.0
        self.last_used = time.monotonic()
        #: Bumped by ``tools/list_changed``: a listing that raced it is not kept.
        self.generation = 0
        self.list_lock = asyncio.Lock()
        self.dead = asyncio.Event()
        self._ready = asyncio.Event()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def alive(self) -> bool:
        return self.session is not None and not self.dead.is_set()

    async def start(self, within: float) -> None:
        """Connect and initialize within *within* seconds, or raise McpUnavailable."""
        self._task = asyncio.create_task(self._run(), name=f"mcp-session:{self.config.name}")
        try:
            async with asyncio.timeout(within):
                await self._ready.wait()
        except TimeoutError:
            await self.close()
            raise McpUnavailable(f"no session within {within:g} s") from None
        if self.session is None:
            error = self.error or RuntimeError("connection closed")
            raise McpUnavailable(_reason(error)) from error

    async def _run(self) -> None:
        try:
            async with contextlib.AsyncExitStack() as stack:
                read, write = await self._open(stack)
                session = await stack.enter_async_context(
                    ClientSession(
                        read, write, message_handler=self._on_message, client_info=CLIENT_INFO
                    )
                )
                await session.initialize()
                self.session = session
                self._ready.set()
                await self._stop.wait()
        except Exception as exc:  # the transport failed: the session is over
            self.error = exc
            if self._ready.is_set():
                log.warning("MCP server %s: session lost: %s", self.config.name, _reason(exc))
        finally:
            self.session = None
            self.dead.set()
            self._ready.set()

    async def _open(self, stack: contextlib.AsyncExitStack) -> tuple[Any, Any]:
        config, settings = self.config, self.settings
        if config.transport == "stdio":
            argv = stdio_argv(config.command or "", settings)
            params = StdioServerParameters(command=argv[0], args=argv[1:])
            read, write = await stack.enter_async_context(stdio_client(params, errlog=sys.stderr))
            return read, write
        url = config.url or ""
        await check_remote_url_async(url, settings)
        headers = dict(config.headers)
        if config.bearer_token:
            headers["Authorization"] = f"Bearer {config.bearer_token}"
        if config.transport == "sse":
            read, write = await stack.enter_async_context(
                sse_client(url, headers=headers, timeout=call_timeout(config, settings))
            )
            return read, write
        http = await stack.enter_async_context(create_mcp_http_client(headers=headers))
        read, write = await stack.enter_async_context(streamable_http_client(url, http_client=http))
        return read, write

    async def _on_message(self, message: IncomingMessage) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            self.generation += 1
            self.tools = None
        elif isinstance(message, Exception):
            log.debug("MCP server %s: transport: %s", self.config.name, _reason(message))

    async def list_tools(self, ttl: float) -> list[types.Tool]:
        """The server's tools, from the cache while it is fresh."""
        self.last_used = time.monotonic()
        async with self.list_lock:
            if self.tools is not None and time.monotonic() - self.listed_at < ttl:
                return self.tools
            session = self._session()
            generation = self.generation
            tools: list[types.Tool] = []
            cursor: str | None = None
            for _ in range(_MAX_PAGES):
                params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
                page = await self._race(session.list_tools(params=params))
                tools.extend(page.tools)
                cursor = page.next_cursor
                if not cursor:
                    break
            if generation == self.generation:
                self.tools, self.listed_at = tools, time.monotonic()
            return tools

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> types.CallToolResult:
        self.last_used = time.monotonic()
        return await self._race(self._session().call_tool(name, arguments))

    def _session(self) -> ClientSession:
        if self.session is None or self.dead.is_set():
            raise McpUnavailable("the session is closed")
        return self.session

    async def _race(self, request: Awaitable[T]) -> T:
        """Await *request*, or fail as soon as the session's task ends."""
        call: asyncio.Future[T] = asyncio.ensure_future(request)
        dead = asyncio.ensure_future(self.dead.wait())
        try:
            waiting: set[asyncio.Future[Any]] = {call, dead}
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pending in (call, dead):
                pending.cancel()
            await asyncio.gather(call, dead, return_exceptions=True)
        if call.done() and not call.cancelled():
            return call.result()
        error = self.error or RuntimeError("connection closed")
        raise McpUnavailable(f"the session ended: {_reason(error)}") from error

    async def close(self) -> None:
        task, self._task = self._task, None
        self._stop.set()
        if task is None:
            return
        done, _ = await asyncio.wait({task}, timeout=_CLOSE_GRACE)
        if not done:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


class McpPool:
    """Sessions with MCP servers, keyed by (server id, version), kept across runs."""

    def __init__(
        self,
        settings: Settings,
        *,
        idle_timeout: float = 900.0,
    ) -> None:
        self.settings = settings
        self.idle_timeout = idle_timeout
        self._connections: dict[tuple[UUID, int], _Connection] = {}
        self._locks: dict[tuple[UUID, int], asyncio.Lock] = {}
        self._latest: dict[UUID, int] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self._closed = False

    def __len__(self) -> int:
        return sum(1 for c in self._connections.values() if c.alive)

    async def connection(self, config: McpServerConfig) -> _Connection:
        """The live session with *config*'s server (connecting when there is none)."""
        conn, _ = await self._connect(config)
        return conn

    async def _connect(self, config: McpServerConfig) -> tuple[_Connection, bool]:
        """(the live session, whether it was opened just now)."""
        if self._closed:
            raise McpUnavailable("the MCP client is closed")
        latest = self._latest.get(config.id, 0)
        if config.version < latest:
            raise McpUnavailable("the server's configuration changed; call the tool again")
        if config.version > latest:
            self._latest[config.id] = config.version
            for key in [
                k for k in self._connections if k[0] == config.id and k[1] < config.version
            ]:
                self._discard(key)
        self._sweep()
        key = (config.id, config.version)
        async with self._locks.setdefault(key, asyncio.Lock()):
            conn = self._connections.get(key)
            if conn is not None and conn.alive:
                return conn, False
            if conn is not None:
                self._discard(key)
            conn = _Connection(config, self.settings)
            await conn.start(call_timeout(config, self.settings))
            self._connections[key] = conn
            return conn, True

    async def list_tools(self, config: McpServerConfig) -> list[types.Tool]:
        """The server's tools (cached); raises when the server cannot list them."""
        limit = call_timeout(config, self.settings)
        try:
            async with asyncio.timeout(limit):
                conn, fresh = await self._connect(config)
                try:
                    return await conn.list_tools(self.settings.mcp_tools_ttl)
                except Exception:
                    if fresh:
                        raise
                # A pooled session failed (the server restarted?): once more, on a new one.
                self.drop(config)
                conn, _ = await self._connect(config)
                return await conn.list_tools(self.settings.mcp_tools_ttl)
        except McpUnavailable:
            self.drop(config)
            raise
        except TimeoutError:
            self.drop(config)
            raise McpUnavailable(f"no tool list within {limit:g} s") from None
        except MCPError as exc:
            self.drop(config)
            raise McpUnavailable(f"tools/list failed: {exc}") from exc
        except Exception as exc:
            self.drop(config)
            raise McpUnavailable(_reason(exc)) from exc

    async def call_tool(
        self, config: McpServerConfig, name: str, arguments: dict[str, Any], limit: float
    ) -> ToolOutcome:
        """Call *name* on the server; every failure becomes a tool error (never raises)."""
        label = f"MCP server {config.name}"
        try:
            async with asyncio.timeout(limit):
                conn, fresh = await self._connect(config)
                try:
                    result = await conn.call_tool(name, arguments)
                except MCPError as exc:
                    if fresh or not session_expired(exc):
                        raise
                    # The server forgot the pooled session (it restarted): the call
                    # never ran, so it is safe to send it once more on a new session.
                    self.drop(config)
                    conn, _ = await self._connect(config)
                    result = await conn.call_tool(name, arguments)
        except TimeoutError:
            self.drop(config)
            return ToolOutcome(f"Error: {label}: tool {name} timed out after {limit:g} s", True)
        except McpUnavailable as exc:
            self.drop(config)
            return ToolOutcome(f"Error: {label} is unavailable: {exc}", True)
        except MCPError as exc:
            if exc.error.code in _BROKEN_CODES:
                self.drop(config)
            return ToolOutcome(f"Error: {label}: {exc.error.message}", True)
        except RuntimeError as exc:  # the SDK's checks of the answer (output schema)
            return ToolOutcome(f"Error: {label}: {exc}", True)
        except Exception as exc:  # transport failures: reconnect next time
            self.drop(config)
            return ToolOutcome(f"Error: {label} failed: {_reason(exc)}", True)
        return describe_result(result)

    def drop(self, config: McpServerConfig) -> None:
        """Forget *config*'s session (closed in the background); the next use reconnects."""
        self._discard((config.id, config.version))

    def _discard(self, key: tuple[UUID, int]) -> None:
        conn = self._connections.pop(key, None)
        if conn is not None:
            task = asyncio.create_task(conn.close(), name="mcp-session-close")
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    def _sweep(self) -> None:
        """Close sessions nobody used for ``idle_timeout`` seconds."""
        now = time.monotonic()
        for key, conn in list(self._connections.items()):
            if now - conn.last_used > self.idle_timeout or conn.dead.is_set():
                self._discard(key)

    async def aclose(self) -> None:
        self._closed = True
        connections = list(self._connections.values())
        self._connections.clear()
        await asyncio.gather(*(c.close() for c in connections), return_exceptions=True)
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
