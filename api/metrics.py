"""Prometheus metrics in the text exposition format, without extra dependencies.

Counters and histograms are kept per process (run ``ai-agents serve --workers N`` and
each worker reports its own series; Prometheus sums them when it scrapes each worker,
or use one worker per container). Gauges that live in Redis are read at scrape time:

- ``ai_agents_queue_depth{priority}``: entries in each background-job stream (jobs
  queued or running; ``priority="dead"`` is the dead-letter stream), and
  ``ai_agents_queue_delayed``: jobs waiting out a retry backoff;
- ``ai_agents_breaker_state{provider,endpoint}``: 0 closed, 1 half-open, 2 open, for
  every circuit-breaker key found, whatever writes them.

Anything that cannot be read (no jobs yet, Redis down) is skipped, never an error.
"""

from __future__ import annotations

import bisect
import contextlib
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ai_agents.jobs.tables import PRIORITIES
from ai_agents.store import AgentStore

#: Run latency buckets (seconds).
RUN_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_BREAKER_STATES = {"closed": 0, "half_open": 1, "half-open": 1, "open": 2}

Labels = tuple[tuple[str, str], ...]


@dataclass(slots=True)
class _Histogram:
    buckets: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    n: int = 0

    def observe(self, value: float) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.buckets) + 1)
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.total += value
        self.n += 1


def _fmt_labels(labels: Labels, extra: tuple[tuple[str, str], ...] = ()) -> str:
    items = labels + extra
    if not items:
        return ""
    body = ",".join(f'{k}="{_escape(v)}"' for k, v in items)
    return "{" + body + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _num(value: float) -> str:
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


class Metrics:
    """The process's counters and histograms."""

    def __init__(self) -> None:
        self.started = time.time()
        self._counters: dict[str, dict[Labels, float]] = defaultdict(lambda: defaultdict(float))
        self._histograms: dict[str, dict[Labels, _Histogram]] = defaultdict(dict)
        self._help: dict[str, tuple[str, str]] = {}

    def _describe(self, name: str, kind: str, text: str) -> None:
        self._help.setdefault(name, (kind, text))

    def inc(self, name: str, text: str, labels: Labels = (), value: float = 1.0) -> None:
        self._describe(name, "counter", text)
        self._counters[name][labels] += value

    def observe(
        self,
        name: str,
        text: str,
        value: float,
        labels: Labels = (),
        buckets: tuple[float, ...] = (),
    ) -> None:
        self._describe(name, "histogram", text)
        series = self._histograms[name]
        hist = series.get(labels)
        if hist is None:
            hist = series[labels] = _Histogram(buckets or RUN_BUCKETS)
        hist.observe(value)

    # --- domain helpers -----------------------------------------------------------

    def http_request(self, method: str, route: str, status: int, seconds: float) -> None:
        labels = (("method", method), ("route", route), ("status", str(status)))
        self.inc("ai_agents_http_requests_total", "HTTP requests answered", labels)
        self.observe(
            "ai_agents_http_request_duration_seconds",
            "HTTP request latency",
            seconds,
            (("method", method), ("route", route)),
            HTTP_BUCKETS,
        )

    def run_finished(
        self,
        *,
        mode: str,
        provider: str,
        model: str,
        seconds: float,
        input_tokens: int,
        output_tokens: int,
        cost: float,
    ) -> None:
        labels = (("mode", mode), ("provider", provider), ("model", model))
        self.inc("ai_agents_runs_total", "Runs completed through the API", labels)
        pm = (("provider", provider), ("model", model))
        self.inc(
            "ai_agents_tokens_total",
            "Tokens used by API runs",
            (*pm, ("direction", "input")),
            input_tokens,
        )
        self.inc(
            "ai_agents_tokens_total",
            "Tokens used by API runs",
            (*pm, ("direction", "output")),
            output_tokens,
        )
        self.inc("ai_agents_cost_usd_total", "Cost of API runs (USD)", pm, cost)
        self.observe("ai_agents_run_duration_seconds", "Run latency", seconds, (("mode", mode),))

    def run_failed(self, *, mode: str, code: str) -> None:
        self.inc(
            "ai_agents_run_errors_total",
            "Runs that ended in an error",
            (("mode", mode), ("code", code)),
        )

    # --- exposition ---------------------------------------------------------------

    def render(self, gauges: Iterable[tuple[str, str, Labels, float]] = ()) -> str:
        lines: list[str] = []
        lines += [
            "# HELP ai_agents_process_start_time_seconds Start time of the process (unix)",
            "# TYPE ai_agents_process_start_time_seconds gauge",
            f"ai_agents_process_start_time_seconds {_num(self.started)}",
        ]
        for name, series in sorted(self._counters.items()):
            kind, text = self._help[name]
            lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
            for labels, value in sorted(series.items()):
                lines.append(f"{name}{_fmt_labels(labels)} {_num(value)}")
        for name, hseries in sorted(self._histograms.items()):
            kind, text = self._help[name]
            lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
            for labels, hist in sorted(hseries.items()):
                running = 0
                for bound, count in zip((*hist.buckets, float("inf")), hist.counts, strict=True):
                    running += count
                    le = "+Inf" if bound == float("inf") else _num(bound)
                    lines.append(f"{name}_bucket{_fmt_labels(labels, (('le', le),))} {running}")
                lines.append(f"{name}_sum{_fmt_labels(labels)} {_num(hist.total)}")
                lines.append(f"{name}_count{_fmt_labels(labels)} {hist.n}")
        described: set[str] = set()
        for name, text, labels, value in gauges:
            if name not in described:
                described.add(name)
                lines += [f"# HELP {name} {text}", f"# TYPE {name} gauge"]
            lines.append(f"{name}{_fmt_labels(labels)} {_num(value)}")
        return "\n".join(lines) + "\n"


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
