"""API server settings, read from ``AI_AGENTS_API_*`` environment variables.

They live here rather than in :class:`ai_agents.config.Settings` because only the HTTP
server needs them; the library's settings (database, Redis, limits) are still read by
``Settings.from_env()``. Every variable is documented in ``docs/api.md``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from ai_agents.errors import ConfigurationError

MB = 1024 * 1024
#: Highest configurable JSON depth: the decoder itself recurses, and far below Python's
#: recursion limit.
MAX_JSON_DEPTH = 256


def _get(name: str) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else None


def _int(name: str, default: int, *, minimum: int = 0, maximum: int | None = None) -> int:
    raw = _get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ConfigurationError(f"{name}={raw!r} is not an integer") from exc
    if value < minimum:
        raise ConfigurationError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ConfigurationError(f"{name} must be <= {maximum}, got {value}")
    return value


def _float(name: str, default: float) -> float:
    raw = _get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise ConfigurationError(f"{name}={raw!r} is not a number") from exc
    if value < 0:
        raise ConfigurationError(f"{name} must be >= 0, got {value}")
    return value


def _bool(name: str, default: bool) -> bool:
    raw = _get(name)
    if raw is None:
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def _list(name: str) -> tuple[str, ...]:
    raw = _get(name) or ""
    return tuple(part.strip() for part in raw.split(",") if part.strip())


@dataclass(frozen=True, slots=True)
class ApiConfig:
    """How the HTTP layer behaves (the store's own settings come from ``Settings``)."""

    #: Largest request body accepted, in bytes (413 above it). It also bounds every JSON
    #: string, array and object inside a body.
    max_body_bytes: int = 2 * MB
    #: Deepest nesting of arrays/objects accepted in a JSON body, the body itself being
    #: level 1 (400 above it, before the body is decoded).
    max_json_depth: int = 32
    #: Requests per minute per API key when the key sets none; 0 turns the limit off.
    default_rpm: int = 600
    #: Origins allowed by CORS (empty: CORS headers are not sent at all).
    cors_origins: tuple[str, ...] = ()
    cors_allow_credentials: bool = False
    #: Serve ``/metrics`` without an API key (for a Prometheus inside a private network).
    metrics_public: bool = False
    #: Seconds an authenticated key is remembered in-process before the database is asked
    #: again (revocation through this process is immediate; elsewhere, within this TTL).
    key_cache_ttl: float = 5.0
    #: Failed authentications per client address (IPv6: per /64) within
    #: ``auth_failure_window`` seconds after which that address gets 429 instead of a
    #: database lookup, per process; 0 turns the throttle off.
    auth_failure_limit: int = 20
    auth_failure_window: float = 60.0
    #: Optional server-side secret mixed into key hashes (HMAC-SHA256 instead of SHA-256).
    key_pepper: str | None = field(default=None, repr=False)
    #: Default seconds a run waits for a busy thread (``on_busy="enqueue"``).
    busy_timeout: float = 60.0
    #: ``/mcp`` without MCP sessions: every request stands alone, so any API process
    #: behind a load balancer can answer it (no sticky sessions on ``Mcp-Session-Id``).
    mcp_stateless: bool = False

    @classmethod
    def from_env(cls) -> ApiConfig:
        defaults = cls()
        return cls(
            max_body_bytes=_int("AI_AGENTS_API_MAX_BODY_BYTES", defaults.max_body_bytes, minimum=1),
            max_json_depth=_int(
                "AI_AGENTS_API_MAX_JSON_DEPTH",
                defaults.max_json_depth,
                minimum=1,
                maximum=MAX_JSON_DEPTH,
            ),
            default_rpm=_int("AI_AGENTS_API_RATE_LIMIT_RPM", defaults.default_rpm),
            cors_origins=_list("AI_AGENTS_API_CORS_ORIGINS"),
            cors_allow_credentials=_bool("AI_AGENTS_API_CORS_ALLOW_CREDENTIALS", False),
            metrics_public=_bool("AI_AGENTS_API_METRICS_PUBLIC", False),
            key_cache_ttl=_float("AI_AGENTS_API_KEY_CACHE_TTL", defaults.key_cache_ttl),
            auth_failure_limit=_int(
                "AI_AGENTS_API_AUTH_FAILURE_LIMIT", defaults.auth_failure_limit
            ),
            auth_failure_window=_float(
                "AI_AGENTS_API_AUTH_FAILURE_WINDOW", defaults.auth_failure_window
            ),
            key_pepper=_get("AI_AGENTS_API_KEY_PEPPER"),
            busy_timeout=_float("AI_AGENTS_API_BUSY_TIMEOUT", defaults.busy_timeout),
            mcp_stateless=_bool("AI_AGENTS_API_MCP_STATELESS", False),
        )
