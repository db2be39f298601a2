"""Runs in flight: N turns at once on N threads in one process, pool of 10, no overflow.

Each side runs N turns concurrently (one per fresh thread), first with an in-process
model that answers instantly, then with one that takes 2 s, on a database pool of 10
connections with no overflow:

- ours: ``store.run`` with a :class:`~ai_agents.testing.FunctionProvider` that sleeps;
- the OpenAI Agents SDK: ``Runner.run`` with a ``SQLAlchemySession`` (same database, its
  own tables) and a custom ``Model`` that sleeps the same time.

Memory is "the last 50 messages" on both sides. A sampler on its own thread and its own
connection polls ``pg_stat_activity`` every ~50 ms during each timed section and keeps the
most connections of the measured side, the most of them idle in a transaction, and the
longest such idle spell (a gap between the statements of a save lasts milliseconds; a
transaction held across the model call would last the model's latency).

Targets (ours): for N = 1,000 and 5,000, wall(2 s) <= 2.0 s + 1.2 x wall(instant) with
0 errors; instant throughput at N = 500 no more than 10 % below today's (500 runs in
1.77 s on a 2-core machine); never more connections than the pool, none idle in
transaction. Misses are printed; the exit code stays 0 (this script measures).

    BENCH_INFLIGHT_N="500,1000,5000" python bench/inflight.py
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import threading
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import asyncpg  # noqa: E402
from _common import REDIS_URL, bench_database  # noqa: E402
from agents import Agent, Runner, set_tracing_disabled  # noqa: E402
from agents.extensions.memory.sqlalchemy_session import SQLAlchemySession  # noqa: E402
from agents.items import ModelResponse  # noqa: E402
from agents.memory.session_settings import SessionSettings  # noqa: E402
from agents.models.interface import Model  # noqa: E402
from agents.usage import Usage as SdkUsage  # noqa: E402
from openai.types.responses import ResponseOutputMessage, ResponseOutputText  # noqa: E402
from sqlalchemy import text  # noqa: E402
from sqlalchemy.ext.asyncio import create_async_engine  # noqa: E402

import ai_agents  # noqa: E402
from ai_agents import AgentDefinition, AgentStore, Settings  # noqa: E402
from ai_agents.providers.base import ProviderRequest, ProviderResponse, Usage  # noqa: E402
from ai_agents.ratelimit.limiter import RateLimits  # noqa: E402
from ai_agents.testing import FunctionProvider  # noqa: E402

SIZES = tuple(int(n) for n in os.environ.get("BENCH_INFLIGHT_N", "500,1000,5000").split(","))
LATENCIES = (0.0, 2.0)
POOL = 10
GATED = (1_000, 5_000)  # sizes the latency-hiding target applies to
# 500 instant runs took 1.77 s before this work (issue text); override with the seconds
# this script measured on the old code on the same machine.
TODAY = (500, float(os.environ.get("BENCH_INFLIGHT_TODAY_S", "1.77")))
QUESTION = "What's the checkout time?"
ANSWER = "Check-out is at 11am."
INSTRUCTIONS = "You answer questions about bookings."
OURS, SDK = "ai_agents", "Agents SDK"
#: Which sides to measure ("ours", "sdk" or both, comma-separated; default both).
SIDES = {
    {"ours": OURS, "sdk": SDK}[s.strip()]
    for s in os.environ.get("BENCH_INFLIGHT_SIDES", "ours,sdk").split(",")
}
APP_NAMES = {OURS: "ai_agents", SDK: "bench_agents_sdk"}  # pg_stat_activity.application_name
WARMUP = 20

_ACTIVITY = """
SELECT count(*), count(*) FILTER (WHERE state = 'idle in transaction'),
       coalesce(max(extract(epoch FROM clock_timestamp() - state_change))
                FILTER (WHERE state = 'idle in transaction'), 0)::float8
FROM pg_stat_activity
WHERE datname = $1 AND application_name = $2 AND pid <> pg_backend_pid()
"""


@dataclass
class Section:
    """One timed batch: N runs at one latency."""

    wall: float = float("nan")
    runs: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    max_conns: int = 0
    max_idle_tx: int = 0
    longest_idle_tx: float = 0.0  # seconds of the longest idle-in-transaction spell seen


Results = dict[tuple[int, float], Section]


class _Sampler:
    """Polls ``pg_stat_activity`` from its own thread and connection (never the pool's).

    Its own thread and event loop keep the sampling rate up while the measured loop is
    saturated with thousands of tasks.
    """

    def __init__(self, url: str, app: str) -> None:
        self.url, self.app, self.db = url, app, url.rpartition("/")[2]
        self.max_conns = self.max_idle_tx = 0
        self.longest_idle_tx = 0.0
        self.error: BaseException | None = None
        self._ready, self._stop = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._poll()), daemon=True)

    def __enter__(self) -> _Sampler:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    async def _poll(self) -> None:
        try:
            conn = await asyncpg.connect(
                self.url, server_settings={"application_name": "bench_sampler"}
            )
        except Exception as exc:
            self.error = exc
            self._ready.set()
            return
        try:
            self._ready.set()
            while not self._stop.is_set():
                total, idle_tx, idle_for = await conn.fetchrow(_ACTIVITY, self.db, self.app)
                self.max_conns = max(self.max_conns, total)
                self.max_idle_tx = max(self.max_idle_tx, idle_tx)
                self.longest_idle_tx = max(self.longest_idle_tx, idle_for)
                await asyncio.sleep(0.05)
        except Exception as exc:
            self.error = exc
        finally:
            await conn.close()


def _describe(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    message = re.sub(r"[0-9a-f]{8}-[0-9a-f-]{27}", "<id>", lines[0] if lines else "")
    return f"{type(exc).__name__}: {message[:160]}"


async def _timed(url: str, side: str, calls: Iterable[Awaitable[Any]]) -> Section:
    """Await *calls* together; the wall time, errors and what the sampler saw."""
    calls = list(calls)
    section = Section(runs=len(calls))
    with _Sampler(url, APP_NAMES[side]) as sampler:
        start = time.perf_counter()
        outcomes = await asyncio.gather(*calls, return_exceptions=True)
        section.wall = time.perf_counter() - start
    if sampler.error is not None:
        print(f"  sampler failed: {_describe(sampler.error)}")
    section.errors.update(_describe(o) for o in outcomes if isinstance(o, BaseException))
    section.max_conns, section.max_idle_tx = sampler.max_conns, sampler.max_idle_tx
    section.longest_idle_tx = sampler.longest_idle_tx
    return section


def _progress(side: str, n: int, latency: float, section: Section) -> None:
    print(
        f"  {side}: N={n:,} latency={latency:g}s wall={section.wall:.2f}s "
        f"errors={section.errors.total()} max conns={section.max_conns}",
        flush=True,
    )


# --- ours -----------------------------------------------------------------------------


async def _sleeping_model(request: ProviderRequest) -> ProviderResponse:
    """The model named ``sleep-<seconds>`` answers after that many seconds."""
    await asyncio.sleep(float(request.model.removeprefix("sleep-")))
    return ProviderResponse(content=ANSWER, usage=Usage(30, 7))


# One user per thread, as N separate conversations have: a shared user would also
# serialize the saves on its ``user_usage`` row.
_NEW_THREADS = text(
    "INSERT INTO threads (tenant_id, agent_id, user_id) "
    "SELECT a.tenant_id, a.id, 'user-' || g FROM agents a, generate_series(1, :n) g "
    "WHERE a.id = :agent RETURNING id"
)


async def bench_ours(url: str, results: Results) -> None:
    prefix = f"bench:inflight:{uuid.uuid4().hex[:8]}:"
    settings = Settings(
        database_url=url,
        redis_url=REDIS_URL,
        redis_prefix=prefix,
        db_pool_size=POOL,
        db_max_overflow=0,
    )
    async with AgentStore(settings=settings) as store:
        store.register_provider(
            "benchmodel", FunctionProvider(_sleeping_model, record_requests=False)
        )
        agents = {}
        for latency in LATENCIES:
            model = f"sleep-{latency:g}"
            store.runner.rate_limit_overrides[("benchmodel", model)] = RateLimits(
                rpm=10**9, tpm=10**12
            )
            agents[latency] = await store.create_agent(
                AgentDefinition(name="Bench", role=INSTRUCTIONS),
                provider="benchmodel",
                model=model,
                memory_strategy="last_messages",
                memory_config={"max_messages": 50},
            )

        async def new_threads(agent: object, n: int) -> list[uuid.UUID]:
            async with store.engine.begin() as conn:
                rows = await conn.execute(_NEW_THREADS, {"n": n, "agent": agent})
                return [row.id for row in rows]

        warm = await new_threads(agents[0.0], WARMUP)
        await asyncio.gather(*(store.run(t, QUESTION) for t in warm))
        try:
            for n in SIZES:
                for latency in LATENCIES:
                    threads = await new_threads(agents[latency], n)
                    section = await _timed(url, OURS, (store.run(t, QUESTION) for t in threads))
                    results[(n, latency)] = section
                    _progress(OURS, n, latency, section)
        finally:
            keys = [k async for k in store.redis.scan_iter(f"{prefix}*")]
            if keys:
                await store.redis.delete(*keys)


# --- the Agents SDK -------------------------------------------------------------------


class _SleepingModel(Model):
    """An Agents SDK model that answers ``ANSWER`` after *latency* seconds."""

    def __init__(self, latency: float) -> None:
        self.latency = latency

    async def get_response(self, *args: Any, **kwargs: Any) -> ModelResponse:
        await asyncio.sleep(self.latency)
        message = ResponseOutputMessage(
            id=f"msg_{uuid.uuid4().hex}",
            type="message",
            role="assistant",
            status="completed",
            content=[ResponseOutputText(type="output_text", text=ANSWER, annotations=[])],
        )
        usage = SdkUsage(requests=1, input_tokens=30, output_tokens=7, total_tokens=37)
        return ModelResponse(output=[message], usage=usage, response_id=None)

    def stream_response(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("the bench does not stream")


async def bench_sdk(url: str, results: Results) -> None:
    set_tracing_disabled(True)
    engine = create_async_engine(
        url.replace("postgresql://", "postgresql+asyncpg://"),
        pool_size=POOL,
        max_overflow=0,
        connect_args={"server_settings": {"application_name": APP_NAMES[SDK]}},
    )
    agents = {
        latency: Agent(name="Bench", instructions=INSTRUCTIONS, model=_SleepingModel(latency))
        for latency in LATENCIES
    }
    limit = SessionSettings(limit=50)

    def sessions(tag: str, n: int) -> list[SQLAlchemySession]:
        return [
            SQLAlchemySession(f"{tag}-{i}", engine=engine, session_settings=limit) for i in range(n)
        ]

    try:
        # Tables once, up front: create_tables=True on every session would run
        # create_all (catalog queries, serialized by the SDK) once per session.
        await SQLAlchemySession("setup", engine=engine, create_tables=True).get_items()
        warm = sessions("warm", WARMUP)
        await asyncio.gather(*(Runner.run(agents[0.0], QUESTION, session=s) for s in warm))
        for n in SIZES:
            for latency in LATENCIES:
                batch = sessions(f"{n}-{latency:g}", n)
                section = await _timed(
                    url, SDK, (Runner.run(agents[latency], QUESTION, session=s) for s in batch)
                )
                results[(n, latency)] = section
                _progress(SDK, n, latency, section)
    finally:
        await engine.dispose()


# --- report ---------------------------------------------------------------------------


def _bound(instant: Section) -> float:
    return 2.0 + 1.2 * instant.wall


def _hidden(results: Results, n: int) -> bool | None:
    """Whether the 2 s latency hid behind the work at *n* (None: not measured)."""
    instant, slow = results.get((n, 0.0)), results.get((n, 2.0))
    if instant is None or slow is None:
        return None
    clean = not instant.errors and not slow.errors
    return clean and slow.wall <= _bound(instant)


def _table(side: str, results: Results) -> None:
    print(f"\n{side} (pool {POOL}, no overflow)")
    print(
        f"{'N':>6} {'instant s':>10} {'runs/s':>8} {'2 s wall':>9} {'bound':>7} {'hidden':>7} "
        f"{'errors 0s/2s':>13} {'max conns':>10} {'max idle-in-tx':>15} {'longest (ms)':>13}"
    )
    for n in SIZES:
        instant, slow = results.get((n, 0.0)), results.get((n, 2.0))
        if instant is None:
            print(f"{n:>6,} not measured")
            continue
        hidden = {True: "yes", False: "NO", None: "-"}[_hidden(results, n)]
        sections = [s for s in (instant, slow) if s is not None]
        errors = "/".join(str(s.errors.total()) for s in sections)
        print(
            f"{n:>6,} {instant.wall:>10.2f} {instant.runs / instant.wall:>8.0f} "
            f"{slow.wall if slow else float('nan'):>9.2f} {_bound(instant):>7.2f} "
            f"{hidden:>7} {errors:>13} {max(s.max_conns for s in sections):>10} "
            f"{max(s.max_idle_tx for s in sections):>15} "
            f"{max(s.longest_idle_tx for s in sections) * 1000:>13.0f}"
        )
    for (n, latency), section in sorted(results.items()):
        for message, count in section.errors.most_common(3):
            print(f"  N={n:,} {latency:g}s: {count:,} x {message}")


def _verdicts(side: str, results: Results) -> None:
    """One line per target; the throughput floor is ours only (the SDK is shown for scale)."""
    print(f"\n{side} verdicts")
    gated = [(n, _hidden(results, n)) for n in GATED]
    measured = [(n, ok) for n, ok in gated if ok is not None]
    missing = [f"{n:,}" for n, ok in gated if ok is None]
    shown = ", ".join(f"N={n:,} {'pass' if ok else 'FAIL'}" for n, ok in measured)
    overall = (
        "FAIL" if any(not ok for _, ok in measured) else "PASS" if not missing else "INCOMPLETE"
    )
    print(
        f"  2 s model hidden (wall(2 s) <= 2.0 + 1.2 x wall(instant), 0 errors): {overall}"
        f" ({shown or 'nothing gated measured'}"
        f"{'; not measured: N=' + ', '.join(missing) if missing else ''})"
    )
    today = TODAY[0] / TODAY[1]
    instant = results.get((TODAY[0], 0.0))
    if instant is None:
        print(f"  instant throughput: not measured (needs N={TODAY[0]})")
    else:
        rate = instant.runs / instant.wall
        ok = rate >= 0.9 * today and not instant.errors
        verdict = ("PASS" if ok else "FAIL") if side == OURS else "for comparison"
        print(
            f"  instant throughput at N={TODAY[0]}: {rate:.0f} runs/s vs today's {today:.0f} "
            f"(floor {0.9 * today:.0f}): {verdict}"
        )
    if results:
        conns = max(s.max_conns for s in results.values())
        idle = max(s.max_idle_tx for s in results.values())
        longest = max(s.longest_idle_tx for s in results.values())
        ok = conns <= POOL and idle == 0
        print(
            f"  connections <= {POOL} and none idle in transaction: max {conns}, "
            f"idle-in-tx {idle} (longest {longest * 1000:.0f} ms): {'PASS' if ok else 'FAIL'}"
        )


def main() -> None:
    print(f"ai_agents imported from {Path(ai_agents.__file__).parent}")
    print(f"N = {', '.join(f'{n:,}' for n in SIZES)}; model latencies {LATENCIES} s", flush=True)
    results: dict[str, Results] = {OURS: {}, SDK: {}}
    with bench_database() as url:
        for side, bench in ((OURS, bench_ours), (SDK, bench_sdk)):
            if side not in SIDES:
                continue
            try:
                asyncio.run(bench(url, results[side]))
            except Exception:
                print(f"{side}: the run failed; figures so far are kept")
                traceback.print_exc()
    for side in (OURS, SDK):
        if side in SIDES:
            _table(side, results[side])
    for side in (OURS, SDK):
        if side in SIDES:
            _verdicts(side, results[side])


if __name__ == "__main__":
    main()
