"""Settings, read from environment variables (and an optional TOML file).

Every setting is documented in ``docs/configuration.md``. Precedence: explicit
arguments > environment > the file named by ``AI_AGENTS_CONFIG`` > defaults.
"""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ai_agents.errors import ConfigurationError

MB = 1024 * 1024
PREPARED_STATEMENTS_ENV = "AI_AGENTS_DB_PREPARED_STATEMENTS"


def _env(*names: str) -> str | None:
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return None


def _env_list(name: str, sep: str) -> tuple[str, ...] | None:
    """``a,b`` (or ``dir1:dir2``) -> ``("a", "b")``; unset -> ``None``."""
    raw = _env(name)
    if raw is None:
        return None
    return tuple(part.strip() for part in raw.split(sep) if part.strip())


def _env_json(name: str) -> Any:
    raw = _env(name)
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"{name} is not valid JSON: {exc}") from exc


def _env_weights(name: str) -> dict[str, int] | None:
    """``acme=3,beta=2`` -> ``{"acme": 3, "beta": 2}``; unset -> ``None``."""
    raw = _env(name)
    if raw is None:
        return None
    out: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in raw.split(","))):
        key, _, value = part.rpartition("=")
        try:
            out[key.strip()] = int(value)
        except ValueError as exc:
            raise ConfigurationError(f"{name}: {part!r} is not tenant=weight") from exc
    return out


def prepared_statements_from_env() -> bool:
    """``AI_AGENTS_DB_PREPARED_STATEMENTS``: on unless ``off``, ``0``, ``false`` or ``no``."""
    raw = os.environ.get(PREPARED_STATEMENTS_ENV, "on").strip().lower()
    return raw not in {"off", "0", "false", "no"}


def normalize_database_url(url: str) -> str:
    """Accept ``postgres://`` / ``postgresql://`` URLs and select the asyncpg driver."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+asyncpg://" + url[len("postgresql://") :]
    if not url.startswith("postgresql+asyncpg://"):
        raise ConfigurationError(
            f"unsupported database URL {url.split('://')[0]}://...: "
            "ai_agents needs PostgreSQL (postgresql://user@host:port/dbname)"
        )
    return url


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str | None = None
    redis_url: str | None = None
    #: Prefix of every Redis key (several deployments or test runs can share one Redis).
    redis_prefix: str = ""
    #: Tenant used when a call names none (single-tenant deployments).
    default_tenant: str = "default"
    #: Size limits (bytes); per-tenant overrides live in the ``tenants`` table.
    max_thread_bytes: int = 50 * MB
    max_user_bytes: int = 500 * MB
    #: SQLAlchemy pool: connections kept and extra allowed under load.
    db_pool_size: int = 10
    db_max_overflow: int = 20
    #: Named prepared statements (asyncpg's statement cache): ``False`` behind a pooler
    #: that cannot keep them per client (PgBouncer before 1.21 in transaction mode).
    #: ``None``: ``AI_AGENTS_DB_PREPARED_STATEMENTS`` decides (on unless ``off``), read
    #: when an engine is made, however the application builds its settings.
    db_prepared_statements: bool | None = None
    #: Rate limiter behaviour when Redis is unreachable: fail (default) or proceed unlimited.
    rate_limit_fail_open: bool = False
    #: Length of the sliding rate-limit windows in seconds (vendors count per minute).
    rate_limit_window: float = 60.0
    #: Longest a model call waits for room in a rate-limit window (seconds); a longer
    #: wait fails at once with ``RateLimitTimeout`` (HTTP 429 with ``Retry-After``).
    rate_limit_max_wait: float = 60.0
    #: Tenant -> weight of its share of each provider window while several tenants use
    #: it (unlisted tenants weigh 1; a tenant alone may use the whole window).
    rate_limit_tenant_weights: dict[str, int] = field(default_factory=dict)
    #: Providers agents may use; ``None``: the configured ones (docs/configuration.md),
    #: ``("*",)``: every built-in. Providers passed to ``register_provider`` always count.
    enabled_providers: tuple[str, ...] | None = None
    #: Tenant -> the providers it may use (within ``enabled_providers``); key ``"*"``:
    #: tenants not listed. Empty: every tenant may use every enabled provider.
    tenant_providers: dict[str, list[str]] = field(default_factory=dict)
    #: Directories whose ``.gguf`` files the ``local`` provider may load by path.
    local_model_dirs: tuple[str, ...] = ()
    #: Tool loop bound and per-tool timeout (seconds), defaults for agents that set none.
    max_tool_iterations: int = 10
    tool_timeout: float = 60.0
    #: Deployment-wide upper bounds of an agent's ``settings`` (checked when an agent is
    #: saved; an agent saved before a ceiling was lowered runs with the ceiling).
    max_tool_iterations_ceiling: int = 50
    max_output_tokens_ceiling: int = 128_000
    #: A run's process extends its lease every third of this; a run whose lease passed
    #: (its process died) is marked ``expired`` and its thread is free again.
    run_lease_seconds: float = 30.0
    #: How long a run in ``requires_action`` waits for client tool outputs.
    run_action_timeout: float = 600.0
    #: Runs allowed to wait for one busy thread (``on_busy="enqueue"``); more are refused.
    max_waiting_runs_per_thread: int = 100
    #: Runs that may wait for busy threads across one tenant; more get ``ThreadBusyError``.
    max_waiting_runs_per_tenant: int = 1000
    #: MCP servers on agents (docs/tools.md). Hosts a remote MCP URL may name (``*`` any,
    #: ``*.example.com`` a domain); empty: no remote MCP server may be added.
    mcp_allowed_hosts: tuple[str, ...] = ()
    #: Allow MCP URLs that resolve to private, loopback or link-local addresses.
    mcp_allow_private_addresses: bool = False
    #: Name -> argv of the stdio MCP servers agents may use (tenants name them, never
    #: give commands).
    mcp_stdio_commands: dict[str, list[str]] = field(default_factory=dict)
    #: Key (Fernet, urlsafe base64 of 32 bytes) encrypting MCP secrets at rest.
    mcp_secret_key: str | None = None
    #: Seconds a server's tool list is cached; seconds one MCP tool call may take.
    mcp_tools_ttl: float = 300.0
    mcp_call_timeout: float = 30.0
    #: Model used to extract durable user facts after a turn (``provider:model``); unset:
    #: the agent's own model.
    memory_extraction_model: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def prepared_statements(self) -> bool:
        """Whether engines keep named prepared statements (:attr:`db_prepared_statements`)."""
        if self.db_prepared_statements is None:
            return prepared_statements_from_env()
        return self.db_prepared_statements

    @classmethod
    def from_env(cls, **overrides: Any) -> Settings:
        values: dict[str, Any] = {}
        config_file = _env("AI_AGENTS_CONFIG")
        if config_file:
            path = Path(config_file)
            if not path.is_file():
                raise ConfigurationError(f"AI_AGENTS_CONFIG names {path}, which does not exist")
            with path.open("rb") as fh:
                data = tomllib.load(fh)
            known = {f.name for f in fields(cls)}
            unknown = set(data) - known
            if unknown:
                raise ConfigurationError(f"unknown settings in {path}: {sorted(unknown)}")
            values.update(data)
        env_map = {
            "database_url": _env("AI_AGENTS_DATABASE_URL", "DATABASE_URL"),
            "redis_url": _env("AI_AGENTS_REDIS_URL", "REDIS_URL"),
            "redis_prefix": _env("AI_AGENTS_REDIS_PREFIX"),
            "default_tenant": _env("AI_AGENTS_DEFAULT_TENANT"),
            "max_thread_bytes": _env("AI_AGENTS_MAX_THREAD_BYTES"),
            "max_user_bytes": _env("AI_AGENTS_MAX_USER_BYTES"),
            "db_pool_size": _env("AI_AGENTS_DB_POOL_SIZE"),
            "db_max_overflow": _env("AI_AGENTS_DB_MAX_OVERFLOW"),
            "rate_limit_fail_open": _env("AI_AGENTS_RATE_LIMIT_FAIL_OPEN"),
            "rate_limit_window": _env("AI_AGENTS_RATE_LIMIT_WINDOW"),
            "rate_limit_max_wait": _env("AI_AGENTS_RATE_LIMIT_MAX_WAIT"),
            "rate_limit_tenant_weights": _env_weights("AI_AGENTS_RATE_LIMIT_TENANT_WEIGHTS"),
            "enabled_providers": _env_list("AI_AGENTS_ENABLED_PROVIDERS", ","),
            "tenant_providers": _env_json("AI_AGENTS_TENANT_PROVIDERS"),
            "local_model_dirs": _env_list("AI_AGENTS_LOCAL_MODEL_DIRS", os.pathsep),
            "max_tool_iterations": _env("AI_AGENTS_MAX_TOOL_ITERATIONS"),
            "tool_timeout": _env("AI_AGENTS_TOOL_TIMEOUT"),
            "max_tool_iterations_ceiling": _env("AI_AGENTS_MAX_TOOL_ITERATIONS_CEILING"),
            "max_output_tokens_ceiling": _env("AI_AGENTS_MAX_OUTPUT_TOKENS_CEILING"),
            "run_lease_seconds": _env("AI_AGENTS_RUN_LEASE_SECONDS"),
            "run_action_timeout": _env("AI_AGENTS_RUN_ACTION_TIMEOUT"),
            "max_waiting_runs_per_thread": _env("AI_AGENTS_MAX_WAITING_RUNS_PER_THREAD"),
            "max_waiting_runs_per_tenant": _env("AI_AGENTS_MAX_WAITING_RUNS_PER_TENANT"),
            "mcp_allowed_hosts": _env_list("AI_AGENTS_MCP_ALLOWED_HOSTS", ","),
            "mcp_allow_private_addresses": _env("AI_AGENTS_MCP_ALLOW_PRIVATE_ADDRESSES"),
            "mcp_stdio_commands": _env_json("AI_AGENTS_MCP_STDIO_COMMANDS"),
            "mcp_secret_key": _env("AI_AGENTS_MCP_SECRET_KEY"),
            "mcp_tools_ttl": _env("AI_AGENTS_MCP_TOOLS_TTL"),
            "mcp_call_timeout": _env("AI_AGENTS_MCP_CALL_TIMEOUT"),
            "memory_extraction_model": _env("AI_AGENTS_MEMORY_EXTRACTION_MODEL"),
        }
        values.update({k: v for k, v in env_map.items() if v is not None})
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls()._coerced(values)

    def _coerced(self, values: dict[str, Any]) -> Settings:
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name not in values:
                continue
            raw = values[f.name]
            default = getattr(self, f.name)
            try:
                if isinstance(default, bool):
                    out[f.name] = (
                        raw
                        if isinstance(raw, bool)
                        else str(raw).lower() in {"1", "true", "yes", "on"}
                    )
                elif isinstance(default, int):
                    out[f.name] = int(raw)
                elif isinstance(default, float):
                    out[f.name] = float(raw)
                else:
                    out[f.name] = raw
            except ValueError as exc:
                raise ConfigurationError(f"setting {f.name}: {raw!r} is not a number") from exc
        return replace(self, **out)
