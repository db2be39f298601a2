"""The core settings of a store (:class:`Settings`).

``Settings(...)`` built in code reads nothing; :meth:`Settings.from_env` takes them from
the one settings model (:mod:`ai_agents.settings`: environment, the ``AI_AGENTS_CONFIG``
file, defaults), which declares and validates every setting. They are documented in
``docs/configuration.md``, generated from that model.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from ai_agents.errors import ConfigurationError

MB = 1024 * 1024
PREPARED_STATEMENTS_ENV = "AI_AGENTS_DB_PREPARED_STATEMENTS"


def prepared_statements_from_env() -> bool:
    """``AI_AGENTS_DB_PREPARED_STATEMENTS`` (env or file): on unless ``off``/``0``/``false``/``no``."""
    from ai_agents.settings import load_settings

    return load_settings().db_prepared_statements


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
        """The core settings of :func:`ai_agents.settings.load_settings` (every setting
        validated): *overrides* (``None`` ones ignored) > environment > the
        ``AI_AGENTS_CONFIG`` file > defaults."""
        from ai_agents.settings import load_settings

        model = load_settings(**overrides)
        if model.database_url:
            # Checked here, not in the model: a ``DATABASE_URL`` of another program (a
            # SQLite URL) must not break helpers that only read other settings.
            normalize_database_url(model.database_url)
        return cls(**{f.name: getattr(model, f.name) for f in fields(cls)})
