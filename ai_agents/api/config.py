"""API server settings (the ``api_*`` fields of :mod:`ai_agents.settings`).

They live here rather than in :class:`ai_agents.config.Settings` because only the HTTP
server needs them; both are read from the one settings model (``AI_AGENTS_API_*``
variables or the ``[api]`` table of the settings file). Every variable is documented in
``docs/configuration.md`` (generated from the model) and explained in ``docs/api.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ai_agents.settings import MAX_JSON_DEPTH

MB = 1024 * 1024
__all__ = ["MAX_JSON_DEPTH", "ApiConfig"]


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
        """The ``api_*`` settings of :func:`ai_agents.settings.load_settings`
        (``AI_AGENTS_API_*`` variables, the ``[api]`` table of the settings file)."""
        from ai_agents.settings import load_settings

        s = load_settings()
        return cls(
            max_body_bytes=s.api_max_body_bytes,
            max_json_depth=s.api_max_json_depth,
            default_rpm=s.api_rate_limit_rpm,
            cors_origins=s.api_cors_origins,
            cors_allow_credentials=s.api_cors_allow_credentials,
            metrics_public=s.api_metrics_public,
            key_cache_ttl=s.api_key_cache_ttl,
            auth_failure_limit=s.api_auth_failure_limit,
            auth_failure_window=s.api_auth_failure_window,
            key_pepper=s.api_key_pepper,
            busy_timeout=s.api_busy_timeout,
            mcp_stateless=s.api_mcp_stateless,
        )
