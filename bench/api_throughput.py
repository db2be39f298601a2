"""Issue 7, acceptance 4: REST API throughput and latency under load from a second process.

Serves, with the same uvicorn setup (one process, asyncio loop), on loopback:

1. a bare Litestar app whose one endpoint returns a constant (the framework's ceiling);
2. a bare Litestar app whose one endpoint, ``GET /threads/{id}/messages``, runs the SQL
   the real listing runs for ``?limit=20`` through a plain ``asyncpg`` pool (sized like
   the API's) and returns the same JSON: the *bare-SQL peer*, what the framework and the
   database cost without the API's own work;
3. the real API (auth with an API key and its Redis rate limit, tenant scoping, metrics).

Then a load generator in a *separate process* (this file with ``--load``: an asyncio
loop of keep-alive HTTP/1.1 connections, written on raw sockets so the client is not
what gets measured) drives, one after the other:

- ``GET /const`` on the bare app,
- ``GET /threads/{id}/messages?limit=20`` on the bare-SQL peer (same thread),
- ``GET /api/v1/threads/{id}/messages?limit=20`` on a thread of 1,000 messages,
- ``POST /api/v1/threads/{id}/runs`` with an instant in-process model (each connection
  on its own thread, so runs do not queue on the thread lock),

and prints requests/s, p50 and p99 latency for each, in the same run, and the listing's
throughput as a share of the bare-SQL peer's (issue 16: at least 50 %).

Environment: ``BENCH_DURATION`` (seconds per target, default 8), ``BENCH_CONCURRENCY``
(connections, default 32), ``BENCH_WARMUP`` (seconds, default 2), ``BENCH_ROUNDS`` (the
bare-SQL peer and the listing are measured in this many alternating rounds, default 2,
and their figures merged: a shared machine's load changes during a run). The API's database
pool is sized to the concurrency (``db_pool_size``), as a deployment should be.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from uuid import UUID

from litestar.datastructures import State

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

DURATION = float(os.environ.get("BENCH_DURATION", "8"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "32"))
WARMUP = float(os.environ.get("BENCH_WARMUP", "2"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))
PREFILL = 1_000
PEER = "bare-SQL peer GET /threads/{id}/messages"
LISTING = "GET /threads/{id}/messages?limit=20"


# --- the load generator (second process) ----------------------------------------------


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
        elif name.strip().lower() == b"transfer-encoding":
            raise RuntimeError("chunked responses are not supported by this load generator")
    if length:
        await reader.readexactly(length)
    return status


async def _connection(
    host: str,
    port: int,
    requests: list[bytes],
    start: float,
    stop: float,
    latencies: list[float],
    errors: list[int],
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    i = 0
    try:
        while True:
            now = time.perf_counter()
            if now >= stop:
                return
            writer.write(requests[i % len(requests)])
            i += 1
            status = await _read_response(reader)
            done = time.perf_counter()
            if now >= start:  # after the warm-up
                latencies.append(done - now)
                if status >= 400:
                    errors.append(status)
    finally:
        writer.close()
        await writer.wait_closed()


async def _load(args: argparse.Namespace) -> dict[str, Any]:
    host, _, port = args.host.partition(":")
    headers = f"Host: {args.host}\r\nConnection: keep-alive\r\n"
    if args.token:
        headers += f"Authorization: Bearer {args.token}\r\n"
    threads = args.threads.split(",") if args.threads else [""]
    paths = [args.path.replace("{thread}", t) for t in threads]

    def request(path: str) -> bytes:
        if args.method == "GET":
            return f"GET {path} HTTP/1.1\r\n{headers}\r\n".encode()
        body: bytes = args.body.encode()
        return (
            f"{args.method} {path} HTTP/1.1\r\n{headers}Content-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body

    latencies: list[float] = []
    errors: list[int] = []
    start = time.perf_counter() + args.warmup
    stop = start + args.duration
    # Each connection gets its own path (its own thread for runs) when several are given.
    await asyncio.gather(
        *(
            _connection(
                host,
                int(port),
                [request(paths[c % len(paths)])],
                start,
                stop,
                latencies,
                errors,
            )
            for c in range(args.concurrency)
        )
    )
    return _figures(latencies, errors, args.duration)


def _figures(latencies: list[float], errors: list[int], duration: float) -> dict[str, Any]:
    latencies = sorted(latencies)
    n = len(latencies)
    return {
        "requests": n,
        "errors": len(errors),
        "error_statuses": sorted(set(errors)),
        "rps": n / duration,
        "p50_ms": statistics.median(latencies) * 1000 if n else float("nan"),
        "p99_ms": latencies[min(n - 1, int(n * 0.99))] * 1000 if n else float("nan"),
        "latencies": latencies,
        "error_list": errors,
    }


def _merged(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The figures of several rounds of one target, as if measured in one."""
    return _figures(
        [x for r in rounds for x in r["latencies"]],
        [x for r in rounds for x in r["error_list"]],
        DURATION * len(rounds),
    )


def load_main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--load", action="store_true")
    parser.add_argument("--host", required=True)
    parser.add_argument("--method", default="GET")
    parser.add_argument("--path", required=True)
    parser.add_argument("--body", default="")
    parser.add_argument("--token", default="")
    parser.add_argument("--threads", default="")
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY)
    parser.add_argument("--duration", type=float, default=DURATION)
    parser.add_argument("--warmup", type=float, default=WARMUP)
    print(json.dumps(asyncio.run(_load(parser.parse_args(argv)))))


# --- the servers and the orchestration (this process) ---------------------------------


def _generate(host: str, method: str, path: str, **extra: str) -> dict[str, Any]:
    """Run the load generator in its own process and return its figures."""
    cmd = [sys.executable, __file__, "--load", "--host", host, "--method", method, "--path", path]
    for name, value in extra.items():
        cmd += [f"--{name}", value]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"load generator failed:\n{out.stderr}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


async def _prepare(store: Any, threads: int) -> tuple[str, list[str]]:
    """An agent on the instant model, one prefilled thread and one thread per connection."""
    from sqlalchemy import text

    from ai_agents import AgentDefinition

    agent = await store.create_agent(
        AgentDefinition(name="Bench", role="You answer."), provider="instant", model="instant"
    )
    reading = await store.create_thread(agent, user_id="bench")
    async with store.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO messages (thread_id, seq, role, content, byte_size, token_count) "
                "SELECT :t, g, CASE WHEN g % 2 = 1 THEN 'user' ELSE 'assistant' END, "
                "'Earlier message number ' || g || ' about the booking.', 40, 12 "
                "FROM generate_series(1, :n) g"
            ),
            {"t": reading, "n": PREFILL},
        )
        await conn.execute(
            text(
                "UPDATE threads SET last_seq = :n, message_count = :m, total_bytes = :b "
                "WHERE id = :t"
            ),
            {"t": reading, "n": PREFILL, "m": PREFILL, "b": 40 * PREFILL},
        )
        await conn.execute(text("ANALYZE messages"))
    # One user per thread, as concurrent runs usually are: the runs of one user all update
    # that user's usage row, so they would queue on its row lock.
    running = [str(await store.create_thread(agent, user_id=f"bench-{i}")) for i in range(threads)]
    return str(reading), running


def _peer_sql() -> str:
    """The one statement ``GET /threads/{id}/messages?limit=20`` runs (tenant-scoped key)."""
    from ai_agents.db.messages import page_sql

    return page_sql(scoped=True, after=False, before=False, order="asc")


def bare_sql_peer(database_url: str, tenant: str, pool_size: int) -> Any:
    """A bare Litestar app: the listing's SQL through a plain asyncpg pool, same JSON."""
    import asyncpg
    from litestar import Litestar, get
    from litestar.exceptions import NotFoundException

    sql = _peer_sql()

    async def codecs(conn: asyncpg.Connection) -> None:
        for kind in ("json", "jsonb"):
            await conn.set_type_codec(
                kind, schema="pg_catalog", encoder=json.dumps, decoder=json.loads
            )

    async def open_pool(app: Litestar) -> None:
        app.state.pool = await asyncpg.create_pool(
            database_url, min_size=1, max_size=pool_size, init=codecs
        )

    async def close_pool(app: Litestar) -> None:
        await app.state.pool.close()

    @get("/threads/{thread_id:uuid}/messages")
    async def messages(thread_id: UUID, state: State, limit: int = 50) -> dict[str, Any]:
        rows = await state.pool.fetch(sql, thread_id, tenant, limit + 1)
        if not rows:
            raise NotFoundException()
        items = [
            {
                "id": r[0],
                "thread_id": r[1],
                "seq": r[2],
                "role": r[3],
                "content": r[4],
                "tool_calls": r[5] or [],
                "tool_call_id": r[6],
                "tool_name": r[7],
                "metadata": r[15] or {},
                "created_at": r[8],
                "token_count": r[9],
                "provider": r[10],
                "model": r[11],
                "input_tokens": r[12],
                "output_tokens": r[13],
                "cost": r[14],
            }
            for r in rows[:limit]
            if r[0] is not None
        ]
        more = len(rows) > limit
        return {
            "data": items,
            "next_cursor": str(items[-1]["seq"]) if more and items else None,
            "has_more": more,
        }

    return Litestar(
        [messages], on_startup=[open_pool], on_shutdown=[close_pool], logging_config=None
    )


def main() -> None:
    from _common import REDIS_URL, bench_database
    from litestar import Litestar, get

    from ai_agents.api.app import create_app
    from ai_agents.api.config import ApiConfig
    from ai_agents.api.testing import serve_api
    from ai_agents.config import Settings
    from ai_agents.store import AgentStore
    from ai_agents.testing import FunctionProvider

    @get("/const", sync_to_thread=False)
    def const() -> dict[str, str]:
        return {"status": "ok"}

    bare = Litestar([const], logging_config=None)
    prefix = f"bench:api:{os.getpid()}:"
    results: dict[str, dict[str, Any]] = {}
    with bench_database() as url:
        # A pool as large as the load's concurrency: connections past the pool size are
        # opened and closed per checkout, which would measure PostgreSQL's connect time.
        settings = Settings(
            database_url=url,
            redis_url=REDIS_URL,
            redis_prefix=prefix,
            db_pool_size=CONCURRENCY + 4,
        )
        store = AgentStore(settings=settings)
        store.register_provider(
            "instant", FunctionProvider(lambda request: "ok", record_requests=False)
        )
        app = create_app(store, config=ApiConfig(default_rpm=0))
        peer = bare_sql_peer(url, "bench", CONCURRENCY + 4)
        with (
            serve_api(bare) as bare_server,
            serve_api(peer) as peer_server,
            serve_api(app) as api,
        ):
            # The key has a (very high) limit, so every request pays the Redis check.
            token = api.create_key("bench", rate_limit_rpm=1_000_000_000)
            tenant_store = api.store.for_tenant("bench")
            reading, running = api.call(_prepare(tenant_store, CONCURRENCY), timeout=120)
            bare_host = bare_server.url.removeprefix("http://")
            host = api.url.removeprefix("http://")
            results["bare Litestar GET /const"] = _generate(bare_host, "GET", "/const")
            # The peer and the listing alternate, round after round, so that a change in
            # the machine's load during the run weighs on both alike.
            peer_rounds, listing_rounds = [], []
            for _ in range(ROUNDS):
                peer_rounds.append(
                    _generate(
                        peer_server.url.removeprefix("http://"),
                        "GET",
                        f"/threads/{reading}/messages?limit=20",
                    )
                )
                listing_rounds.append(
                    _generate(
                        host,
                        "GET",
                        f"/api/v1/threads/{reading}/messages?limit=20",
                        token=token,
                    )
                )
            results[PEER] = _merged(peer_rounds)
            results[LISTING] = _merged(listing_rounds)
            results["POST /threads/{id}/runs (instant model)"] = _generate(
                host,
                "POST",
                "/api/v1/threads/{thread}/runs",
                token=token,
                body=json.dumps({"input": "What's the checkout time?"}),
                threads=",".join(running),
            )
            api.call(_cleanup(api.store, prefix))

    print(
        f"load: {CONCURRENCY} keep-alive connections from a second process, "
        f"{DURATION:g} s per target after {WARMUP:g} s warm-up (bare-SQL peer and listing: "
        f"{ROUNDS} alternating rounds each); servers: uvicorn, 1 process; "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
    )
    print(f"{'endpoint':<46} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for name, r in results.items():
        print(
            f"{name:<46} {r['rps']:>9.0f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {r['errors']:>7}"
        )
    base = results["bare Litestar GET /const"]["rps"]
    for name, r in list(results.items())[1:]:
        print(f"{name}: {r['rps'] / base:.1%} of the bare endpoint's throughput")
    print(
        f"listing / bare-SQL peer: {results[LISTING]['rps'] / results[PEER]['rps']:.1%} "
        "of the peer's throughput (goal: at least 50 %)"
    )
    if any(r["errors"] for r in results.values()):
        summary = {
            name: {k: v for k, v in r.items() if k not in ("latencies", "error_list")}
            for name, r in results.items()
        }
        raise SystemExit("some requests failed: " + json.dumps(summary))


async def _cleanup(store: Any, prefix: str) -> None:
    keys = [k async for k in store.redis.scan_iter(match=f"{prefix}*", count=1000)]
    if keys:
        await store.redis.delete(*keys)


if __name__ == "__main__":
    if "--load" in sys.argv:
        load_main(sys.argv[1:])
    else:
        main()
