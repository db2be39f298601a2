"""The Litestar application: ``create_app(store)``.

The app holds ONE :class:`~ai_agents.store.AgentStore` (one PostgreSQL pool, one Redis
client) for its whole life and closes it on shutdown (the lifespan below). Its pools are
created lazily, on first use, so they belong to the event loop that serves requests.

``app.state`` exposes what handlers and tests share: ``store``, ``key_store`` (the
:class:`~api.keys.KeyStore`), ``key_limiter``, ``metrics``, ``api_config`` and
``run_tasks`` (streamed runs in flight). Tests register test models on
``app.state.store`` (``register_provider``) before serving it.

For ``uvicorn --factory`` (and ``ai-agents serve``) :func:`create_app_from_env` builds the
store and settings from the environment.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar, Request, Router
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.enums import ScopeType
from litestar.exceptions import HTTPException
from litestar.logging.config import LoggingConfig
from litestar.middleware import ASGIMiddleware
from litestar.openapi.spec import Parameter
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from ai_agents.config import Settings
from ai_agents.errors import AgentsError
from ai_agents.store import AgentStore
from api import openapi
from api.auth import KeyRateLimiter, provide_principal
from api.config import ApiConfig
from api.errors import EXCEPTION_HANDLERS, ApiError, status_of
from api.keys import KeyStore
from api.metrics import Metrics
from api.routes import ROUTES

API_PREFIX = "/api/v1"


class _MetricsMiddleware(ASGIMiddleware):
    """Counts every routed request by method, route template and status, with latency."""

    scopes = (ScopeType.HTTP,)

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await next_app(scope, receive, send_wrapper)
        except AgentsError as exc:
            status = status_of(exc)
            raise
        except HTTPException as exc:
            status = exc.status_code
            raise
        finally:
            route = str(scope.get("path_template") or "unmatched")
            self.metrics.http_request(
                str(scope.get("method", "")), route, status, time.perf_counter() - started
            )


class _StrictQuery:
    """Rejects query parameters an operation does not declare (a typo is a 400, not ignored).

    The allowed names come from the finished OpenAPI document, so what is accepted is
    exactly what is documented.
    """

    def __init__(self) -> None:
        self.allowed: dict[tuple[str, str], frozenset[str]] = {}

    def load(self, app: Litestar) -> None:
        for path, item in (app.openapi_schema.paths or {}).items():
            for method in ("get", "put", "post", "delete", "patch"):
                op = getattr(item, method, None)
                if op is None:
                    continue
                names = {
                    p.name
                    for p in op.parameters or ()
                    if isinstance(p, Parameter) and p.param_in == "query"
                }
                self.allowed[(method.upper(), path)] = frozenset(names)

    async def __call__(self, request: Request[Any, Any, Any]) -> None:
        allowed = self.allowed.get((request.method, str(request.scope.get("path_template"))))
        if allowed is None or not request.scope.get("query_string"):
            return
        unknown = sorted(set(request.query_params) - allowed)
        if unknown:
            raise ApiError(
                400,
                "invalid_request",
                f"unknown query parameter(s): {', '.join(unknown)}",
                details={"unknown": unknown, "allowed": sorted(allowed)},
            )


def _lifespan(store: AgentStore, run_tasks: set[asyncio.Task[None]]) -> Any:
    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        try:
            yield
        finally:
            # Streamed runs still going: cancel them (their turns are not saved) and let
            # them release their thread locks before the pools close.
            pending = [t for t in run_tasks if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
            await store.close()

    return lifespan


def create_app(
    store: AgentStore | None = None,
    *,
    config: ApiConfig | None = None,
    debug: bool = False,
) -> Litestar:
    """The REST API over *store* (default: one built from the environment)."""
    store = store or AgentStore(settings=Settings.from_env())
    config = config or ApiConfig.from_env()
    metrics = Metrics()
    run_tasks: set[asyncio.Task[None]] = set()
    state = State(
        {
            "store": store,
            "key_store": KeyStore(store, pepper=config.key_pepper, cache_ttl=config.key_cache_ttl),
            "key_limiter": KeyRateLimiter(store, config),
            "metrics": metrics,
            "api_config": config,
            "run_tasks": run_tasks,
        }
    )
    cors = None
    if config.cors_origins:
        cors = CORSConfig(
            allow_origins=list(config.cors_origins),
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
            expose_headers=["Retry-After", "Location"],
            allow_credentials=config.cors_allow_credentials,
            max_age=600,
        )
    strict_query = _StrictQuery()
    app = Litestar(
        route_handlers=[Router(API_PREFIX, route_handlers=ROUTES)],
        before_request=strict_query,
        dependencies={"principal": Provide(provide_principal)},
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[_MetricsMiddleware(metrics)],
        openapi_config=openapi.config(),
        cors_config=cors,
        request_max_body_size=config.max_body_bytes,
        # Leave the process's logging to its owner (uvicorn, the CLI, pytest): the API's
        # own error handlers log what needs logging.
        logging_config=LoggingConfig(configure_root_logger=False, log_exceptions="never"),
        lifespan=[_lifespan(store, run_tasks)],
        state=state,
        debug=debug,
    )
    public = [f"{API_PREFIX}/health"]
    if config.metrics_public:
        public.append(f"{API_PREFIX}/metrics")
    openapi.finalize(app, public_paths=tuple(public))
    strict_query.load(app)
    return app


def create_app_from_env() -> Litestar:
    """Factory for ``uvicorn --factory api.app:create_app_from_env``."""
    return create_app()
