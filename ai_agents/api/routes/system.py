"""``/usage``, ``/models``, ``/health`` and ``/metrics``."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any
from uuid import UUID

from litestar import MediaType, Request, Response, get
from litestar.datastructures import State
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Parameter
from sqlalchemy import text

from ai_agents.api.auth import Principal, provide_principal
from ai_agents.api.metrics import Metrics, redis_gauges
from ai_agents.api.openapi import errors
from ai_agents.api.schemas import HealthCheck, HealthOut, ModelList, ModelOut, UsageOut, usage_out
from ai_agents.providers.registry import get_registry
from ai_agents.store import AgentStore

log = logging.getLogger("api.health")

HEALTH_TIMEOUT = 3.0


@get("/usage", tags=["usage"], summary="Token and cost totals", opt=errors(403, 404, 422))
async def get_usage(
    principal: Principal,
    thread_id: UUID | None = None,
    user_id: Annotated[str | None, Parameter(min_length=1, max_length=200)] = None,
    tenant_id: Annotated[
        str | None,
        Parameter(min_length=1, max_length=200, description="Admin keys: the user's tenant."),
    ] = None,
) -> UsageOut:
    """Totals of one thread (``thread_id``) or one user (``user_id``): give exactly one."""
    if thread_id is not None and user_id is None:
        totals = await principal.store.usage(thread_id=thread_id)
    else:
        store = principal.store_for_tenant(tenant_id)
        totals = await store.usage(thread_id=thread_id, user_id=user_id)
    return usage_out(totals, thread_id, user_id)


@get("/models", tags=["models"], summary="Known models and their limits")
async def list_models(
    principal: Principal,
    provider: Annotated[str | None, Parameter(min_length=1, max_length=200)] = None,
) -> ModelList:
    """The model registry: context window, output cap, rate limits, prices (USD per 1M)."""
    entries = get_registry().models(provider)
    return ModelList(
        data=[ModelOut(provider=e.provider, model=e.model, **e.limits.to_dict()) for e in entries]
    )


async def _check(name: str, probe: Callable[[], Awaitable[Any]]) -> HealthCheck:
    """One dependency's state. The answer says only whether it is down or slow (the
    endpoint needs no key): the driver's error, with hosts and ports, goes to the log."""
    started = time.perf_counter()
    try:
        await asyncio.wait_for(probe(), HEALTH_TIMEOUT)
    except Exception as exc:
        log.warning("health check: %s failed: %s: %s", name, type(exc).__name__, exc)
        error = f"{name} unavailable"
        if isinstance(exc, TimeoutError):
            error = f"{name} did not answer within {HEALTH_TIMEOUT:g} s"
        return HealthCheck(
            ok=False, latency_ms=round((time.perf_counter() - started) * 1000, 3), error=error
        )
    return HealthCheck(ok=True, latency_ms=round((time.perf_counter() - started) * 1000, 3))


@get(
    "/health",
    tags=["system"],
    summary="Liveness and dependencies",
    operation_id="getHealth",
    responses={
        503: ResponseSpec(
            data_container=HealthOut, generate_examples=False, description="A dependency is down."
        )
    },
)
async def health(state: State) -> Response[HealthOut]:
    """Checks PostgreSQL (``SELECT 1``) and Redis (``PING``) for real; 503 if either fails."""
    store: AgentStore = state.store

    async def postgres() -> None:
        async with store.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def redis() -> None:
        await store.redis.ping()

    pg, rd = await asyncio.gather(_check("database", postgres), _check("Redis", redis))
    ok = pg.ok and rd.ok
    body = HealthOut(status="ok" if ok else "unavailable", checks={"postgres": pg, "redis": rd})
    return Response(body, status_code=200 if ok else 503)


@get(
    "/metrics",
    tags=["system"],
    summary="Prometheus metrics",
    operation_id="getMetrics",
    media_type=MediaType.TEXT,
    opt=errors(403),
    responses={
        200: ResponseSpec(data_container=str, media_type=MediaType.TEXT, generate_examples=False)
    },
)
async def metrics(request: Request[Any, Any, Any], state: State) -> Response[str]:
    """Prometheus text format: runs, tokens, cost, latency, HTTP requests, queue depth,
    breaker states. Needs an admin key unless ``AI_AGENTS_API_METRICS_PUBLIC`` is set."""
    if not state.api_config.metrics_public:
        principal = await provide_principal(request, state)
        principal.require_admin()
    registry: Metrics = state.metrics
    gauges = await redis_gauges(state.store)
    return Response(
        registry.render(gauges),
        media_type="text/plain; version=0.0.4; charset=utf-8",
    )


HANDLERS = [get_usage, list_models, health, metrics]
