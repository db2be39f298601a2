"""Settings, read from environment variables (and an optional TOML file).

Every setting is documented in ``docs/configuration.md``. Precedence: explicit
arguments > environment > the file named by ``AI_AGENTS_CONFIG`` > defaults.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ai_agents.errors import ConfigurationError

MB = 1024 * 1024


def _env(*names: str) -> str | None:
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return None


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
    #: Rate limiter behaviour when Redis is unreachable: fail (default) or proceed unlimited.
    rate_limit_fail_open: bool = False
    #: Length of the sliding rate-limit windows in seconds (vendors count per minute).
    rate_limit_window: float = 60.0
    #: Tool loop bound and per-tool timeout (seconds), defaults for agents that set none.
    max_tool_iterations: int = 10
    tool_timeout: float = 60.0
    #: A run's process extends its lease every third of this; a run whose lease passed
    #: (its process died) is marked ``expired`` and its thread is free again.
    run_lease_seconds: float = 30.0
    #: How long a run in ``requires_action`` waits for client tool outputs.
    run_action_timeout: float = 600.0
    #: Runs allowed to wait for one busy thread (``on_busy="enqueue"``); more are refused.
    max_waiting_runs_per_thread: int = 100
    extra: dict[str, Any] = field(default_factory=dict)

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
            "max_tool_iterations": _env("AI_AGENTS_MAX_TOOL_ITERATIONS"),
            "tool_timeout": _env("AI_AGENTS_TOOL_TIMEOUT"),
            "run_lease_seconds": _env("AI_AGENTS_RUN_LEASE_SECONDS"),
            "run_action_timeout": _env("AI_AGENTS_RUN_ACTION_TIMEOUT"),
            "max_waiting_runs_per_thread": _env("AI_AGENTS_MAX_WAITING_RUNS_PER_THREAD"),
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
