"""MCP servers configured on agents: validation at save time, rows, and the run-time view.

Every statement here carries the tenant clause (``Scope.visible`` for callers, the
agent's own tenant for the runtime): a tenant can neither see nor change another
tenant's servers, and an agent of another tenant is simply "not found".

Secrets (headers, bearer token) are validated, then encrypted (``ai_agents.mcp.secrets``)
before they reach the database; what callers get back (:class:`McpServerInfo`) names
the headers and says whether a token is set, never their values.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast
from uuid import UUID

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from ai_agents.config import Settings
from ai_agents.db.scope import Scope
from ai_agents.db.tables import agent_mcp_servers, agents
from ai_agents.errors import ConflictError, NotFoundError, ValidationError
from ai_agents.mcp import secrets as mcp_secrets
from ai_agents.mcp.config import TRANSPORTS, McpServerConfig, Transport
from ai_agents.mcp.security import check_remote_url_async, stdio_argv

#: Servers one agent may have.
MAX_SERVERS_PER_AGENT = 20
#: Tool names one server's ``allowed_tools`` may list, and their length.
MAX_ALLOWED_TOOLS = 100
MAX_TOOL_NAME = 128
#: Headers per server, and the size of a header name / value / bearer token.
MAX_HEADERS = 20
MAX_HEADER_NAME = 128
MAX_SECRET_VALUE = 8192
#: Seconds a tool call may be given at most.
MAX_TIMEOUT = 3600.0

_NAME = re.compile(r"[a-zA-Z0-9_-]{1,32}")
#: RFC 9110 token characters.
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
#: Headers the HTTP client owns (framing, routing, the MCP session): never configurable.
_RESERVED_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "content-type",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "upgrade",
        "te",
        "trailer",
        "proxy-authorization",
        "proxy-connection",
        "accept",
        "mcp-session-id",
        "mcp-protocol-version",
        "last-event-id",
        "cookie",
    }
)
#: A tool name as an MCP server may publish it.
_TOOL_NAME = re.compile(r"[A-Za-z0-9_./:-]{1,128}")


@dataclass(frozen=True, slots=True, kw_only=True)
class McpServerInfo:
    """An MCP server of an agent as callers see it: no secret values, only their names."""

    id: UUID
    tenant_id: str
    agent_id: UUID
    name: str
    transport: Transport
    url: str | None
    command: str | None
    #: Names of the headers sent to the server (their values are never returned).
    header_names: tuple[str, ...]
    has_bearer_token: bool
    allowed_tools: tuple[str, ...] | None
    timeout: float | None
    version: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class NewServer:
    """A validated server, before it is stored."""

    name: str
    transport: Transport
    url: str | None
    command: str | None
    secrets: mcp_secrets.Secrets
    allowed_tools: tuple[str, ...] | None
    timeout: float | None


# --- validation ---------------------------------------------------------------------


def _invalid(field: str, message: str) -> ValidationError:
    return ValidationError(f"{field}: {message}", details={"field": field})


def _has_control(value: str) -> bool:
    return any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value)


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise _invalid("name", "must be 1 to 32 letters, digits, '_' or '-'")
    return name


def _check_transport(transport: object) -> Transport:
    if transport not in TRANSPORTS:
        raise _invalid("transport", f"must be one of {', '.join(TRANSPORTS)}")
    return transport


def _check_headers(headers: object) -> dict[str, str]:
    if headers is None:
        return {}
    if not isinstance(headers, Mapping):
        raise _invalid("headers", "must be an object of header name -> value")
    if len(headers) > MAX_HEADERS:
        raise _invalid("headers", f"at most {MAX_HEADERS} headers")
    out: dict[str, str] = {}
    seen: set[str] = set()
    for key, value in headers.items():
        if (
            not isinstance(key, str)
            or len(key) > MAX_HEADER_NAME
            or not _HEADER_NAME.fullmatch(key)
        ):
            raise _invalid("headers", f"invalid header name {str(key)[:40]!r}")
        lowered = key.lower()
        if lowered in _RESERVED_HEADERS or lowered.startswith("proxy-"):
            raise _invalid("headers", f"header {key!r} cannot be configured")
        if lowered in seen:
            raise _invalid("headers", f"header {key!r} is given twice")
        seen.add(lowered)
        if not isinstance(value, str) or not value or len(value) > MAX_SECRET_VALUE:
            raise _invalid(
                "headers",
                f"the value of {key!r} must be a non-empty string of at most "
                f"{MAX_SECRET_VALUE} characters",
            )
        if _has_control(value) or not value.isascii():
            raise _invalid(
                "headers", f"the value of {key!r} must be ASCII without control characters"
            )
        out[key] = value
    return out


def _check_token(token: object) -> str | None:
    if token is None:
        return None
    if not isinstance(token, str) or not token or len(token) > MAX_SECRET_VALUE:
        raise _invalid(
            "bearer_token", f"must be a non-empty string of at most {MAX_SECRET_VALUE} characters"
        )
    if any(ch.isspace() for ch in token) or _has_control(token) or not token.isascii():
        raise _invalid("bearer_token", "must not contain spaces, control or non-ASCII characters")
    return token


def _check_allowed_tools(allowed: object) -> tuple[str, ...] | None:
    if allowed is None:
        return None
    if isinstance(allowed, str) or not isinstance(allowed, Sequence):
        raise _invalid("allowed_tools", "must be a list of tool names (or null for all)")
    if len(allowed) > MAX_ALLOWED_TOOLS:
        raise _invalid("allowed_tools", f"at most {MAX_ALLOWED_TOOLS} tool names")
    out: list[str] = []
    for item in allowed:
        if not isinstance(item, str) or not _TOOL_NAME.fullmatch(item):
            raise _invalid(
                "allowed_tools",
                f"{str(item)[:40]!r} is not a tool name (1 to {MAX_TOOL_NAME} letters, "
                "digits or _ . / : -)",
            )
        if item not in out:
            out.append(item)
    return tuple(out)


def _check_timeout(timeout: object) -> float | None:
    if timeout is None:
        return None
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not math.isfinite(timeout)
        or timeout <= 0
        or timeout > MAX_TIMEOUT
    ):
        raise _invalid("timeout", f"must be a number of seconds > 0 and <= {MAX_TIMEOUT:g}")
    return float(timeout)


async def validate_server(
    settings: Settings,
    *,
    name: object,
    transport: object,
    url: object = None,
    command: object = None,
    headers: object = None,
    bearer_token: object = None,
    allowed_tools: object = None,
    timeout: object = None,  # noqa: ASYNC109 - the tool-call timeout stored, not awaited
) -> NewServer:
    """Everything checked before a server is saved (the URL against the SSRF gate)."""
    checked_name = _check_name(name)
    kind = _check_transport(transport)
    secrets = mcp_secrets.Secrets(_check_headers(headers), _check_token(bearer_token))
    if kind == "stdio":
        if url is not None:
            raise _invalid("url", "a stdio server has a command, not a url")
        if not isinstance(command, str) or not command:
            raise _invalid("command", "a stdio server needs the name of an allowed command")
        if secrets:
            field = "headers" if secrets.headers else "bearer_token"
            raise _invalid(field, "only http servers (streamable_http, sse) take headers or tokens")
        stdio_argv(command, settings)
        checked_url: str | None = None
        checked_command: str | None = command
    else:
        if command is not None:
            raise _invalid("command", f"a {kind} server has a url, not a command")
        if not isinstance(url, str) or not url:
            raise _invalid("url", f"a {kind} server needs a url")
        await check_remote_url_async(url, settings)
        checked_url, checked_command = url, None
    if secrets:
        # Refuse early and clearly when secrets could not be stored encrypted.
        mcp_secrets.require_keyring(
            settings, field="headers" if secrets.headers else "bearer_token"
        )
    return NewServer(
        name=checked_name,
        transport=kind,
        url=checked_url,
        command=checked_command,
        secrets=secrets,
        allowed_tools=_check_allowed_tools(allowed_tools),
        timeout=_check_timeout(timeout),
    )


# --- rows ---------------------------------------------------------------------------


def to_info(row: RowMapping) -> McpServerInfo:
    allowed = row["allowed_tools"]
    return McpServerInfo(
        id=row["id"],
        tenant_id=row["tenant_id"],
        agent_id=row["agent_id"],
        name=row["name"],
        transport=row["transport"],
        url=row["url"],
        command=row["command"],
        header_names=tuple(row["header_names"] or ()),
        has_bearer_token=bool(row["has_bearer_token"]),
        allowed_tools=tuple(allowed) if allowed is not None else None,
        timeout=row["timeout"],
        version=row["version"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


#: Every column but ``secrets``: what listing reads.
_PUBLIC_COLUMNS = [c for c in agent_mcp_servers.c if c.name != "secrets"]


async def _agent_tenant(
    conn: AsyncConnection, scope: Scope, agent_id: UUID, *, lock: bool = False
) -> str:
    """The tenant of an agent visible to ``scope`` (locked: adds to it are serialized)."""
    stmt = select(agents.c.tenant_id).where(
        agents.c.id == agent_id, scope.visible(agents.c.tenant_id)
    )
    if lock:
        stmt = stmt.with_for_update()
    tenant = (await conn.execute(stmt)).scalar_one_or_none()
    if tenant is None:
        raise NotFoundError("agent", agent_id)
    return cast(str, tenant)


async def insert_server(
    conn: AsyncConnection, scope: Scope, agent_id: UUID, server: NewServer, settings: Settings
) -> McpServerInfo:
    tenant = await _agent_tenant(conn, scope, agent_id, lock=True)
    mine = (
        agent_mcp_servers.c.agent_id == agent_id,
        agent_mcp_servers.c.tenant_id == tenant,
    )
    names = (await conn.execute(select(agent_mcp_servers.c.name).where(*mine))).scalars().all()
    if server.name in names:
        raise ConflictError(
            f"name: agent {agent_id} already has an MCP server named {server.name!r}",
            details={"field": "name", "name": server.name},
        )
    if len(names) >= MAX_SERVERS_PER_AGENT:
        raise ValidationError(
            f"an agent may have at most {MAX_SERVERS_PER_AGENT} MCP servers",
            details={"field": "mcp_servers", "limit": MAX_SERVERS_PER_AGENT},
        )
    server_id = uuid.uuid4()
    blob = None
    if server.secrets:
        ring = mcp_secrets.require_keyring(settings, field="headers")
        blob = mcp_secrets.encrypt(
            ring, server.secrets, tenant_id=tenant, agent_id=agent_id, server_id=server_id
        )
    values: dict[str, Any] = {
        "id": server_id,
        "tenant_id": tenant,
        "agent_id": agent_id,
        "name": server.name,
        "transport": server.transport,
        "url": server.url,
        "command": server.command,
        "secrets": blob,
        "header_names": list(server.secrets.headers),
        "has_bearer_token": server.secrets.bearer_token is not None,
        "allowed_tools": list(server.allowed_tools) if server.allowed_tools is not None else None,
        "timeout": server.timeout,
    }
    row = (
        (await conn.execute(insert(agent_mcp_servers).values(**values).returning(*_PUBLIC_COLUMNS)))
        .mappings()
        .one()
    )
    await _touch_agent(conn, agent_id)
    return to_info(row)


async def _touch_agent(conn: AsyncConnection, agent_id: UUID) -> None:
    """The agent changed: its ``updated_at`` is what :class:`ServerCache` keys on."""
    await conn.execute(
        update(agents).where(agents.c.id == agent_id).values(updated_at=func.clock_timestamp())
    )


async def list_servers(conn: AsyncConnection, scope: Scope, agent_id: UUID) -> list[McpServerInfo]:
    await _agent_tenant(conn, scope, agent_id)
    rows = (
        (
            await conn.execute(
                select(*_PUBLIC_COLUMNS)
                .where(
                    agent_mcp_servers.c.agent_id == agent_id,
                    scope.visible(agent_mcp_servers.c.tenant_id),
                )
                .order_by(agent_mcp_servers.c.created_at, agent_mcp_servers.c.id)
            )
        )
        .mappings()
        .all()
    )
    return [to_info(row) for row in rows]


async def get_server(
    conn: AsyncConnection, scope: Scope, agent_id: UUID, server_id: UUID
) -> McpServerInfo:
    await _agent_tenant(conn, scope, agent_id)
    row = (
        (
            await conn.execute(
                select(*_PUBLIC_COLUMNS).where(
                    agent_mcp_servers.c.id == server_id,
                    agent_mcp_servers.c.agent_id == agent_id,
                    scope.visible(agent_mcp_servers.c.tenant_id),
                )
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        raise NotFoundError("mcp_server", server_id)
    return to_info(row)


async def delete_server(
    conn: AsyncConnection, scope: Scope, agent_id: UUID, server_id: UUID
) -> None:
    await _agent_tenant(conn, scope, agent_id)
    deleted = (
        await conn.execute(
            delete(agent_mcp_servers)
            .where(
                agent_mcp_servers.c.id == server_id,
                agent_mcp_servers.c.agent_id == agent_id,
                scope.visible(agent_mcp_servers.c.tenant_id),
            )
            .returning(agent_mcp_servers.c.id)
        )
    ).first()
    if deleted is None:
        raise NotFoundError("mcp_server", server_id)
    await _touch_agent(conn, agent_id)


# --- run time -----------------------------------------------------------------------


class ServerCache:
    """Per-process cache of each agent's servers, keyed by the agent's ``updated_at``.

    Adding or removing a server touches the agent row, and every run loads its agent
    fresh, so a run of an agent whose servers did not change (most runs: agents without
    any) reads no table. Bounded: the oldest entry goes first.
    """

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._entries: dict[UUID, tuple[datetime, list[McpServerConfig]]] = {}

    def get(self, agent_id: UUID, updated_at: datetime | None) -> list[McpServerConfig] | None:
        entry = self._entries.get(agent_id)
        if entry is None or updated_at is None or entry[0] != updated_at:
            return None
        return entry[1]

    def put(
        self, agent_id: UUID, updated_at: datetime | None, servers: list[McpServerConfig]
    ) -> None:
        if updated_at is None:
            return
        self._entries.pop(agent_id, None)
        if len(self._entries) >= self.size:
            self._entries.pop(next(iter(self._entries)))
        self._entries[agent_id] = (updated_at, servers)


async def load_mcp_servers(
    conn: AsyncConnection, settings: Settings, *, tenant_id: str, agent_id: UUID
) -> list[McpServerConfig]:
    """The agent's servers with their secrets decrypted, for the run-time client."""
    rows = (
        (
            await conn.execute(
                select(agent_mcp_servers)
                .where(
                    agent_mcp_servers.c.agent_id == agent_id,
                    agent_mcp_servers.c.tenant_id == tenant_id,
                )
                .order_by(agent_mcp_servers.c.created_at, agent_mcp_servers.c.id)
            )
        )
        .mappings()
        .all()
    )
    out: list[McpServerConfig] = []
    for row in rows:
        secrets = mcp_secrets.decrypt(
            settings, row["secrets"], tenant_id=tenant_id, agent_id=agent_id, server_id=row["id"]
        )
        allowed = row["allowed_tools"]
        out.append(
            McpServerConfig(
                id=row["id"],
                tenant_id=row["tenant_id"],
                agent_id=row["agent_id"],
                name=row["name"],
                transport=row["transport"],
                url=row["url"],
                command=row["command"],
                headers=secrets.headers,
                bearer_token=secrets.bearer_token,
                allowed_tools=tuple(allowed) if allowed is not None else None,
                timeout=row["timeout"],
                version=row["version"],
            )
        )
    return out


async def rotate_secrets(conn: AsyncConnection, settings: Settings) -> int:
    """Re-encrypt every server's secrets under the first key of ``mcp_secret_key``.

    Key rotation: set ``AI_AGENTS_MCP_SECRET_KEY=new,old``, call this (one transaction
    over all tenants), then drop the old key. Returns the rows re-encrypted.
    """
    ring = mcp_secrets.keyring(settings)
    if ring is None:
        return 0
    rows = (
        await conn.execute(
            select(agent_mcp_servers.c.id, agent_mcp_servers.c.secrets)
            .where(agent_mcp_servers.c.secrets.is_not(None))
            .with_for_update()
        )
    ).all()
    for server_id, blob in rows:
        await conn.execute(
            agent_mcp_servers.update()
            .where(agent_mcp_servers.c.id == server_id)
            .values(secrets=mcp_secrets.reencrypt(ring, blob), updated_at=func.now())
        )
    return len(rows)
