"""The Litestar application: ``create_app(store)``.

The app holds ONE :class:`~ai_agents.store.AgentStore` (one PostgreSQL pool, one Redis
client) for its whole life and closes it on shutdown (the lifespan below). Its pools are
created lazily, on first use, so they belong to the event loop that serves requests.

``app.state`` exposes what handlers and tests share: ``store``, ``key_store`` (the
:class:`~api.keys.KeyStore`), ``key_limiter``, ``auth_throttle``, ``metrics``,
``api_config`` and ``run_tasks`` (streamed runs in flight). Tests register test models on
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

from litestar import Litestar, Router
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.enums import ScopeType
from litestar.exceptions import HTTPException
from litestar.logging.config import LoggingConfig
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from ai_agents.api import compat, console, observability, openapi
from ai_agents.api.auth import FailedAuthThrottle, KeyRateLimiter, provide_principal
from ai_agents.api.compat.errors import v1_aware
from ai_agents.api.config import ApiConfig
from ai_agents.api.errors import EXCEPTION_HANDLERS, status_of
from ai_agents.api.keys import KeyStore
from ai_agents.api.mcp import McpEndpoint
from ai_agents.api.metrics import Metrics
from ai_agents.api.request import ApiRequest, RequestChecks
from ai_agents.api.routes import ROUTES
from ai_agents.config import Settings
from ai_agents.errors import AgentsError
from ai_agents.store import AgentStore
from ai_agents.warmup import start_warm_up

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


def _lifespan(store: AgentStore, keys: KeyStore, run_tasks: set[asyncio.Task[None]]) -> Any:
    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        keys.listen()  # revocations announced by other processes
        warming = start_warm_up()  # the SDK and tokenizers, off the loop
        try:
            yield
        finally:
            await asyncio.gather(warming, return_exceptions=True)
            await keys.aclose()
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
    keys = KeyStore(store, pepper=config.key_pepper, cache_ttl=config.key_cache_ttl)
    state = State(
        {
            "store": store,
            "key_store": keys,
            "key_limiter": KeyRateLimiter(store, config),
            "auth_throttle": FailedAuthThrottle(
                config.auth_failure_limit, config.auth_failure_window
            ),
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
    checks = RequestChecks()
    mcp = McpEndpoint(
        store, stateless=config.mcp_stateless
    )  # /mcp: the tenant's agents over MCP (Streamable HTTP)
    app = Litestar(
        route_handlers=[
            Router(API_PREFIX, route_handlers=ROUTES),
            compat.router(),
            mcp.handler,
            console.router(),  # /console: the web console's static page
        ],
        before_request=checks,
        request_class=ApiRequest,
        dependencies={"principal": Provide(provide_principal)},
        # Under /v1 the same answers in OpenAI's error shape.
        exception_handlers={k: v1_aware(h) for k, h in EXCEPTION_HANDLERS.items()},
        middleware=[*observability.middleware(), _MetricsMiddleware(metrics)],
        openapi_config=openapi.config(),
        cors_config=cors,
        request_max_body_size=config.max_body_bytes,
        # Leave the process's logging to its owner (uvicorn, the CLI, pytest): the API's
        # own error handlers log what needs logging.
        logging_config=LoggingConfig(configure_root_logger=False, log_exceptions="never"),
        lifespan=[_lifespan(store, keys, run_tasks), mcp.lifespan],
        state=state,
        debug=debug,
    )
    public = [f"{API_PREFIX}/health"]
    if config.metrics_public:
        public.append(f"{API_PREFIX}/metrics")
    openapi.finalize(app, public_paths=tuple(public))
    checks.load(app)
    return app


def create_app_from_env() -> Litestar:
    """Factory for ``uvicorn --factory api.app:create_app_from_env``."""
    return create_app()
