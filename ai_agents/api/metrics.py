"""The API's Prometheus metrics: :class:`~ai_agents.observability.metrics.Metrics` (HTTP
requests, runs, tokens, cost, latency) plus gauges read from Redis at scrape time:

- ``ai_agents_queue_depth{priority}``: entries in each background-job stream (jobs
  queued or running; ``priority="dead"`` is the dead-letter stream), and
  ``ai_agents_queue_delayed``: jobs waiting out a retry backoff;
- ``ai_agents_breaker_state{provider,endpoint}``: 0 closed, 1 half-open, 2 open, for
  every circuit-breaker key found, whatever writes them.

Anything that cannot be read (no jobs yet, Redis down) is skipped, never an error. Under
``ai-agents serve --workers N`` a scrape answered by any worker counts every worker's
requests (multiprocess mode, see :mod:`ai_agents.observability.metrics`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from ai_agents.jobs.tables import PRIORITIES
from ai_agents.observability.metrics import HTTP_BUCKETS, RUN_BUCKETS, Labels, Metrics
from ai_agents.store import AgentStore

__all__ = ["HTTP_BUCKETS", "PRIORITIES", "RUN_BUCKETS", "Labels", "Metrics", "redis_gauges"]

_BREAKER_STATES = {"closed": 0, "half_open": 1, "half-open": 1, "open": 2}


async def _safe(call: Callable[[], Awaitable[Any]]) -> Any:
    with contextlib.suppress(Exception):
        return await call()
    return None


async def redis_gauges(store: AgentStore) -> list[tuple[str, str, Labels, float]]:
    """Queue depth and breaker states read from Redis now (skipped when unavailable)."""
    out: list[tuple[str, str, Labels, float]] = []
    keys = store.keys
    redis = store.redis
    streams: list[tuple[str, str]] = [(p, keys.job_stream(p)) for p in PRIORITIES]
    streams.append(("dead", keys.job_dead_letter))
    for priority, stream in streams:
        depth = await _safe(lambda s=stream: redis.xlen(s))  # type: ignore[misc]
        if depth is not None:
            out.append(
                (
                    "ai_agents_queue_depth",
                    "Background jobs waiting in each queue stream",
                    (("priority", priority),),
                    float(depth),
                )
            )
    delayed_key = getattr(keys, "job_delayed", None)
    if isinstance(delayed_key, str):
        delayed = await _safe(lambda: redis.zcard(delayed_key))
        if delayed is not None:
            out.append(
                (
                    "ai_agents_queue_delayed",
                    "Background jobs waiting out a retry backoff",
                    (),
                    float(delayed),
                )
            )
    found = await _safe(lambda: _breakers(store))
    for provider, endpoint, state in found or ():
        out.append(
            (
                "ai_agents_breaker_state",
                "Circuit breaker state (0 closed, 1 half-open, 2 open)",
                (("provider", provider), ("endpoint", endpoint)),
                float(state),
            )
        )
    return out


async def _breakers(store: AgentStore) -> list[tuple[str, str, int]]:
    keys = store.keys
    redis = store.redis
    pattern = keys.breaker_pattern()
    base = pattern[:-1]  # "<prefix>breaker:"
    found: list[tuple[str, str, int]] = []
    async for raw in redis.scan_iter(match=pattern, count=500):
        name = raw.decode() if isinstance(raw, bytes) else str(raw)
        provider, _, endpoint = name[len(base) :].partition(":")
        state = await _breaker_state(store, name)
        if state is not None:
            found.append((provider, endpoint, state))
        if len(found) >= 1000:
            break
    return found


async def _breaker_state(store: AgentStore, key: str) -> int | None:
    redis = store.redis
    kind = await redis.type(key)
    kind = kind.decode() if isinstance(kind, bytes) else str(kind)
    value: Any = None
    if kind == "hash":
        value = await redis.hget(key, "state")  # type: ignore[misc]
    elif kind == "string":
        value = await redis.get(key)
    if value is None:
        return None
    text = (value.decode() if isinstance(value, bytes) else str(value)).strip().lower()
    if text in _BREAKER_STATES:
        return _BREAKER_STATES[text]
    # A numeric state only counts in a hash's "state" field: a bare number in a string
    # key is more likely a failure counter than a state.
    if kind == "hash" and text in ("0", "1", "2"):
        return int(text)
    return None
