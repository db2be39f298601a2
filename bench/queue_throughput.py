"""Issue 6, acceptance 6: background-run throughput, end to end (enqueue -> result).

For 1, 2 and 4 worker processes, a producer enqueues ``BENCH_JOBS`` runs (default 2,000)
over ``BENCH_THREADS`` threads (default 40) and waits for every result; the figure is
jobs per second from the first enqueue to the last result. (With 400 jobs, about 3 s per
system, the start-up of every connection weighs on the PostgreSQL figures: each new
session compiles the PL/pgSQL functions and loads the catalog, and our producer and
workers open about 26 sessions where arq's open about 8.) The model answers instantly
(a ``FunctionProvider`` registered in each worker through ``AI_AGENTS_WORKER_SETUP``),
so the figure is the cost of the queue, the workers and the turn's database work.

The same run measures ``arq`` (Redis) and, for issue 16 item 3, ``pgqueuer`` (a
PostgreSQL-native queue) with the same number of processes, each job running the same
turn through ``store.run`` (run row, history, limiter, save) with an idempotency key per
job, as our workers do (``job:<id>``). Every system runs 10 jobs at a time per process
and the producer keeps 16 enqueues in flight. ``BENCH_SYSTEMS`` (default
``ours,arq,pgqueuer``) selects the systems.

Each system is measured ``BENCH_REPEATS`` times (default 3) at every process count,
interleaved (a repetition measures every system at 1, then 2, then 4 processes, each
repetition starting with the next system), and the tables show the measurement with the
median jobs/s; the last lines list every repetition. On a 2-CPU machine one measurement
varies by about 10 % from the next, more than the systems differ.

- arq polls its queue every 10 ms (its default 500 ms would cap it at 20 jobs/s per
  process); the producer polls each result every 10 ms.
- pgqueuer: schema installed in the bench database with ``Queries.install()`` (default
  names, ``pgqueuer`` / ``pgqueuer_log`` tables, durable), dropped afterwards with
  ``Queries.uninstall()``. Each worker process (``queue_throughput.py pgqueuer-worker``)
  is a ``QueueManager`` (no ``SchedulerManager``: no cron jobs) on one asyncpg connection
  (``AsyncpgDriver``), run with ``batch_size=5`` and ``max_concurrent_tasks=10`` (it
  requires twice the batch size; this is what caps it at 10 jobs at a time). It wakes on
  the queue table's trigger NOTIFY (every insert, update and delete), with pgqueuer's
  defaults otherwise: ``dequeue_timeout`` 30 s (the poll when no NOTIFY comes, cut to
  0.1 s while queued work is left), ``heartbeat_timeout`` 30 s, status log flushed every
  5 jobs or 0.1 s, log aggregation every 30 s. The producer enqueues with
  ``Queries.enqueue`` over an asyncpg pool and waits with pgqueuer's
  ``CompletionWatcher`` (LISTEN on the same channel, one ``pgqueuer_log`` status query
  per 50 ms burst, 5 s safety poll); every job must end ``successful``.

Our workers do more per job than the other two: they record each job in PostgreSQL
(claim, outcome, next head of the thread), and keep jobs of one thread in order.

Besides jobs/s and the CPU per job of the worker processes and of the producer (this
process: enqueues and waits for results, ``time.process_time``), the bench prints PostgreSQL
transactions per job: the ``xact_commit + xact_rollback`` delta of the bench database
in ``pg_stat_database`` over the whole measurement of one system (from before its store
opens to after every connection closed, so every backend has flushed its counters),
divided by the jobs. It includes the setup (agent and 40 threads), the thread check (40
reads), the connections' start-up (one each) and the workers' start and stop: roughly
0.3 per job, about the same for all systems.

Over the same span it prints, per job, the CPU time of the PostgreSQL backends (the
postmaster's ``cutime + cstime``: the backends of the measurement have exited by then;
the server must run on this machine), of Redis (``INFO cpu``) and busy CPU time of the
whole machine (``/proc/stat``, worker start-up included), and the sessions opened on the
bench database (``pg_stat_database.sessions``). On a machine where the bench saturates
the cores, jobs/s follow the whole machine's CPU per job.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from functools import partial
from importlib.metadata import version
from pathlib import Path
from typing import IO, Any

import asyncpg
from redis.asyncio import Redis

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REDIS_URL, bench_database  # noqa: E402

from ai_agents import AgentDefinition, AgentStore, Settings  # noqa: E402
from ai_agents.jobs.queue import job_queue  # noqa: E402
from ai_agents.testing import FunctionProvider  # noqa: E402
from ai_agents.warmup import warm_up  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
JOBS = int(os.environ.get("BENCH_JOBS", "2000"))
THREADS = int(os.environ.get("BENCH_THREADS", "40"))
PROCESSES = tuple(int(n) for n in os.environ.get("BENCH_PROCESSES", "1,2,4").split(","))
CONCURRENCY = 10
PRODUCERS = 16  # enqueues in flight at once
SYSTEMS = tuple(os.environ.get("BENCH_SYSTEMS", "ours,arq,pgqueuer").split(","))
REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))
PGQ_ENTRYPOINT = "turn"
PGQ_BATCH = CONCURRENCY // 2  # pgqueuer wants max_concurrent_tasks >= 2 * batch_size
ANSWER = "Check-out is at 11am."


# --- what runs inside the worker processes --------------------------------------------


def worker_setup(store: AgentStore) -> None:
    """``AI_AGENTS_WORKER_SETUP`` of our workers: the instant model."""
    store.register_provider(
        "instant", FunctionProvider(lambda request: ANSWER, record_requests=False)
    )


async def arq_turn(ctx: dict[str, Any], thread_id: str, text: str) -> str:
    """The arq job: the same turn our workers run (run row, history, limiter, save), with
    an idempotency key per job as ours have (``job:<id>``), through ``store.run``."""
    store: AgentStore = ctx["store"]
    response = await store.run(thread_id, text, idempotency_key=f"arq:{ctx['job_id']}")
    return str(response.run_id)


async def _arq_startup(ctx: dict[str, Any]) -> None:
    ctx["store"] = AgentStore(database_url=os.environ["BENCH_DATABASE_URL"], redis_url=REDIS_URL)
    worker_setup(ctx["store"])
    await asyncio.to_thread(warm_up)  # as our workers do: the SDKs and tokenizers first
    logging.getLogger("arq").info("arq worker ready")


async def _arq_shutdown(ctx: dict[str, Any]) -> None:
    await ctx["store"].close()


def run_arq_worker() -> None:
    from arq import Worker
    from arq.connections import RedisSettings

    # Like the arq command (and our workers): INFO logs, one line per job.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    Worker(
        functions=[arq_turn],
        redis_settings=RedisSettings.from_dsn(REDIS_URL),
        queue_name=os.environ["BENCH_ARQ_QUEUE"],
        max_jobs=CONCURRENCY,
        poll_delay=0.01,
        on_startup=_arq_startup,
        on_shutdown=_arq_shutdown,
    ).run()


async def _pgqueuer_worker() -> None:
    from pgqueuer import AsyncpgDriver, Job, Queries, QueueManager

    url = os.environ["BENCH_DATABASE_URL"]
    store = AgentStore(database_url=url, redis_url=REDIS_URL)
    worker_setup(store)
    connection = await asyncpg.connect(url)
    manager = QueueManager(Queries(AsyncpgDriver(connection)))

    @manager.entrypoint(PGQ_ENTRYPOINT, accepts_context=False)
    async def turn(job: Job) -> None:
        """The pgqueuer job: the same turn, idempotency key ``pgq:<job id>``."""
        args = json.loads(job.payload or b"{}")
        await store.run(args["thread"], args["text"], idempotency_key=f"pgq:{job.id}")

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, manager.shutdown.set)
    await asyncio.to_thread(warm_up)  # as our workers do: the SDKs and tokenizers first
    logging.getLogger("pgqueuer").info("pgqueuer worker ready")
    try:
        await manager.run(batch_size=PGQ_BATCH, max_concurrent_tasks=CONCURRENCY)
    finally:
        await store.close()
        await connection.close()


def run_pgqueuer_worker() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    asyncio.run(_pgqueuer_worker())


# --- processes --------------------------------------------------------------------------


class _Process:
    """A worker process whose log goes to a file; ready once *marker* appears in it."""

    def __init__(self, argv: Sequence[str], env: dict[str, str], marker: str) -> None:
        self.log: IO[str] = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115
        self.marker = marker
        self.proc = subprocess.Popen(
            argv,
            cwd=str(ROOT),
            env={**os.environ, "PYTHONPATH": os.pathsep.join((str(HERE), str(ROOT))), **env},
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def ready(self) -> bool:
        if self.proc.poll() is not None:
            self.log.seek(0)
            raise SystemExit(f"a worker exited early:\n{self.log.read()}")
        self.log.seek(0)
        return self.marker in self.log.read()

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the process used so far (Linux ``/proc``)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@dataclass(frozen=True)
class Figures:
    jobs_per_second: float
    #: CPU time of the worker processes per job (ms): what the queue costs, load aside.
    worker_cpu_ms: float
    #: CPU time of the producer (this process: enqueues and result waits) per job (ms).
    producer_cpu_ms: float
    #: PostgreSQL transactions (commits + rollbacks) per job, setup included (docstring).
    pg_xacts: float = 0.0
    #: CPU per job (ms) of the PostgreSQL server processes, of Redis, and of the whole
    #: machine (every process: producer, workers, servers), setup included.
    pg_cpu_ms: float = 0.0
    redis_cpu_ms: float = 0.0
    machine_cpu_ms: float = 0.0
    #: PostgreSQL sessions opened during the measurement (not per job).
    pg_sessions: int = 0


def _cpu(processes: list[_Process]) -> float:
    return sum(p.cpu_seconds() for p in processes)


async def _start(processes: list[_Process]) -> None:
    deadline = time.monotonic() + 120
    while not all(p.ready() for p in processes):
        if time.monotonic() > deadline:
            raise SystemExit("workers did not start within 120 s")
        await asyncio.sleep(0.1)


async def _bounded(calls: list[Callable[[], Awaitable[Any]]], limit: int) -> list[Any]:
    gate = asyncio.Semaphore(limit)

    async def one(call: Callable[[], Awaitable[Any]]) -> Any:
        async with gate:
            return await call()

    return list(await asyncio.gather(*(one(c) for c in calls)))


async def _threads(store: AgentStore, provider: str) -> list[uuid.UUID]:
    agent = await store.create_agent(
        AgentDefinition(name="Bench", role="You answer questions about bookings."),
        provider=provider,
        model="instant",
        memory_config={"max_messages": 20},
    )
    return [await store.create_thread(agent) for _ in range(THREADS)]


async def _check_threads(store: AgentStore, threads: list[uuid.UUID]) -> None:
    for thread in threads:
        count = (await store.get_thread(thread)).message_count
        if count != 2 * JOBS // THREADS:
            raise SystemExit(f"thread {thread} has {count} messages, not {2 * JOBS // THREADS}")


@dataclass(frozen=True)
class Meters:
    """Counters read before and after one system's measurement."""

    xacts: int
    #: Sessions (connections) opened on the bench database.
    sessions: int
    #: CPU seconds of PostgreSQL's exited backends (the postmaster's children), of
    #: Redis, and busy CPU seconds of the machine (``/proc/stat``).
    pg_cpu: float
    redis_cpu: float
    machine_cpu: float


def _children_cpu(pid: int) -> float:
    """CPU seconds of the exited children of *pid* (its ``cutime + cstime``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")


def _machine_cpu() -> float:
    """Busy CPU seconds of the whole machine so far (everything but idle and iowait)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(values[:8]) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")


async def _meters(url: str) -> Meters:
    """Transactions of the bench database so far (``pg_stat_database``), server CPU."""
    conn = await asyncpg.connect(url)
    try:
        xacts = await conn.fetchval(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database "
            "WHERE datname = current_database()"
        )
        sessions = await conn.fetchval(
            "SELECT sessions FROM pg_stat_database WHERE datname = current_database()"
        )
        # The server runs on this machine (the bench database is local): its backends
        # are children of the postmaster, which collects their CPU time when they exit.
        backend = Path(f"/proc/{await conn.fetchval('SELECT pg_backend_pid()')}/stat")
        postmaster = int(backend.read_text().rsplit(")", 1)[1].split()[1])
    finally:
        await conn.close()
    redis = Redis.from_url(REDIS_URL)
    try:
        cpu = await redis.info("cpu")
    finally:
        await redis.aclose()
    return Meters(
        int(xacts),
        int(sessions),
        _children_cpu(postmaster),
        float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"]),
        _machine_cpu(),
    )


# --- the three systems ----------------------------------------------------------------------


async def bench_ours(url: str, processes: int) -> Figures:
    prefix = f"bench:jobs:{uuid.uuid4().hex[:8]}:"
    # The producer's pool holds a connection for each enqueue in flight (pgqueuer's gets
    # as many); with fewer, every burst opens and closes overflow connections.
    settings = Settings(
        database_url=url, redis_url=REDIS_URL, redis_prefix=prefix, db_pool_size=PRODUCERS
    )
    async with AgentStore(settings=settings) as store:
        worker_setup(store)
        threads = await _threads(store, "instant")
        env = {
            "AI_AGENTS_DATABASE_URL": url,
            "AI_AGENTS_REDIS_URL": REDIS_URL,
            "AI_AGENTS_REDIS_PREFIX": prefix,
            "AI_AGENTS_WORKER_SETUP": "queue_throughput:worker_setup",
        }
        argv = [sys.executable, "-m", "ai_agents.workers", "--concurrency", str(CONCURRENCY)]
        workers = [_Process(argv, env, "worker warmed up") for _ in range(processes)]
        try:
            await _start(workers)
            queue = job_queue(store)
            cpu, own = _cpu(workers), time.process_time()
            started = time.perf_counter()
            job_ids = await _bounded(
                [
                    partial(store.enqueue_run, threads[i % THREADS], f"question {i}")
                    for i in range(JOBS)
                ],
                PRODUCERS,
            )
            for job_id in job_ids:
                job = await queue.get_result(job_id, timeout=600)
                if job.status != "succeeded":
                    raise SystemExit(f"job {job_id} ended {job.status}: {job.error}")
            elapsed = time.perf_counter() - started
            cpu, own = _cpu(workers) - cpu, time.process_time() - own
        finally:
            for worker in workers:
                worker.stop()
        await _check_threads(store, threads)
        keys = [k async for k in store.redis.scan_iter(match=f"{prefix}*", count=1000)]
        if keys:
            await store.redis.delete(*keys)
    return Figures(JOBS / elapsed, 1000 * cpu / JOBS, 1000 * own / JOBS)


async def bench_arq(url: str, processes: int) -> Figures:
    from arq import create_pool
    from arq.connections import RedisSettings

    queue_name = f"bench:arq:{uuid.uuid4().hex[:8]}"
    async with AgentStore(database_url=url, redis_url=REDIS_URL) as store:
        worker_setup(store)
        threads = await _threads(store, "instant")
        env = {"BENCH_DATABASE_URL": url, "BENCH_ARQ_QUEUE": queue_name}
        argv = [sys.executable, str(HERE / "queue_throughput.py"), "arq-worker"]
        workers = [_Process(argv, env, "arq worker ready") for _ in range(processes)]
        pool = await create_pool(RedisSettings.from_dsn(REDIS_URL), default_queue_name=queue_name)
        jobs: list[Any] = []
        try:
            await _start(workers)
            cpu, own = _cpu(workers), time.process_time()
            started = time.perf_counter()
            jobs = await _bounded(
                [
                    partial(pool.enqueue_job, "arq_turn", str(threads[i % THREADS]), f"q {i}")
                    for i in range(JOBS)
                ],
                PRODUCERS,
            )
            for job in jobs:
                await job.result(timeout=600, poll_delay=0.01)
            elapsed = time.perf_counter() - started
            cpu, own = _cpu(workers) - cpu, time.process_time() - own
        finally:
            for worker in workers:
                worker.stop()
            keys = [f"arq:result:{job.job_id}" for job in jobs] + [queue_name]
            await pool.delete(*keys, f"{queue_name}:health-check")
            await pool.aclose()
        await _check_threads(store, threads)
    return Figures(JOBS / elapsed, 1000 * cpu / JOBS, 1000 * own / JOBS)


async def bench_pgqueuer(url: str, processes: int) -> Figures:
    from pgqueuer import AsyncpgPoolDriver, Queries
    from pgqueuer.core.completion import CompletionWatcher

    async with AgentStore(database_url=url, redis_url=REDIS_URL) as store:
        worker_setup(store)
        threads = await _threads(store, "instant")
        pool = await asyncpg.create_pool(url, min_size=2, max_size=PRODUCERS + 1)
        driver = AsyncpgPoolDriver(pool)
        queries = Queries(driver)
        await queries.install()
        env = {"BENCH_DATABASE_URL": url}
        argv = [sys.executable, str(HERE / "queue_throughput.py"), "pgqueuer-worker"]
        workers = [_Process(argv, env, "pgqueuer worker ready") for _ in range(processes)]
        try:
            await _start(workers)
            async with driver, CompletionWatcher(driver, queries=queries) as watcher:
                cpu, own = _cpu(workers), time.process_time()
                started = time.perf_counter()
                job_ids = await _bounded(
                    [
                        partial(
                            queries.enqueue,
                            PGQ_ENTRYPOINT,
                            json.dumps(
                                {"thread": str(threads[i % THREADS]), "text": f"q {i}"}
                            ).encode(),
                        )
                        for i in range(JOBS)
                    ],
                    PRODUCERS,
                )
                statuses = await asyncio.wait_for(
                    asyncio.gather(*(watcher.wait_for(ids[0]) for ids in job_ids)), 600
                )
                elapsed = time.perf_counter() - started
                cpu, own = _cpu(workers) - cpu, time.process_time() - own
            failed = [s for s in statuses if s != "successful"]
            if failed:
                raise SystemExit(f"{len(failed)} pgqueuer jobs did not succeed: {failed[:5]}")
        finally:
            for worker in workers:
                worker.stop()
            await queries.uninstall()
            await pool.close()
        await _check_threads(store, threads)
    return Figures(JOBS / elapsed, 1000 * cpu / JOBS, 1000 * own / JOBS)


BENCHES: dict[str, Callable[[str, int], Coroutine[Any, Any, Figures]]] = {
    "ours": bench_ours,
    "arq": bench_arq,
    "pgqueuer": bench_pgqueuer,
}


def _measure(system: str, url: str, processes: int) -> Figures:
    """One system at one process count, with its server-side figures per job."""
    before = asyncio.run(_meters(url))
    figures = asyncio.run(BENCHES[system](url, processes))
    time.sleep(0.5)  # backends that just disconnected flush their counters on exit
    after = asyncio.run(_meters(url))
    return dataclasses.replace(
        figures,
        # Minus the first reading's own connection (its start-up and its SELECT); the
        # second reading's are not counted yet.
        pg_xacts=(after.xacts - before.xacts - 2) / JOBS,
        pg_cpu_ms=1000 * (after.pg_cpu - before.pg_cpu) / JOBS,
        pg_sessions=after.sessions - before.sessions - 1,
        redis_cpu_ms=1000 * (after.redis_cpu - before.redis_cpu) / JOBS,
        machine_cpu_ms=1000 * (after.machine_cpu - before.machine_cpu) / JOBS,
    )


def _measure_all(url: str) -> dict[str, dict[int, list[Figures]]]:
    """Every system at every process count, ``REPEATS`` times, interleaved.

    One repetition measures each process count for every system in turn, and each
    repetition starts with the next system: a drift of the machine (another load, the
    bench database growing with every measurement) falls on every system alike.
    """
    runs: dict[str, dict[int, list[Figures]]] = {s: {n: [] for n in PROCESSES} for s in SYSTEMS}
    for repetition in range(REPEATS):
        order = SYSTEMS[repetition % len(SYSTEMS) :] + SYSTEMS[: repetition % len(SYSTEMS)]
        for n in PROCESSES:
            for system in order:
                figures = _measure(system, url, n)
                runs[system][n].append(figures)
                print(
                    f"repetition {repetition + 1}/{REPEATS}, {n} processes, {system}: "
                    f"{figures.jobs_per_second:.1f} jobs/s",
                    file=sys.stderr,
                )
    return runs


def _median(runs: list[Figures]) -> Figures:
    """The measurement with the median jobs/s (the lower middle one of an even count),
    whole, so that its other figures are those of the same measurement."""
    ranked = sorted(runs, key=lambda f: f.jobs_per_second)
    return ranked[(len(ranked) - 1) // 2]


def main() -> None:
    unknown = set(SYSTEMS) - set(BENCHES)
    if unknown:
        raise SystemExit(f"BENCH_SYSTEMS: unknown {sorted(unknown)}, known {list(BENCHES)}")
    with bench_database() as url:
        runs = _measure_all(url)
    figures = {s: {n: _median(runs[s][n]) for n in PROCESSES} for s in SYSTEMS}
    names = {"ours": "ai_agents", "arq": f"arq {version('arq')}"}
    if "pgqueuer" in SYSTEMS:
        names["pgqueuer"] = f"pgqueuer {version('pgqueuer')}"
    short = {"ours": "ours", "arq": "arq", "pgqueuer": "pgq"}
    others = [s for s in SYSTEMS if s != "ours" and "ours" in SYSTEMS]
    print(
        f"end-to-end jobs/s (enqueue -> result), {JOBS} jobs over {THREADS} threads, "
        f"{CONCURRENCY} jobs at a time per process, instant model, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"every figure is from the measurement with the median jobs/s of {REPEATS} "
        "(interleaved: each repetition measures every system at every process count)"
    )
    print("worker CPU: user + system time of the worker processes per job, in ms")
    print("prod: the same for the producer (enqueues and waits for results)")
    print("PG xacts: PostgreSQL transactions per job (pg_stat_database, setup included)")
    header = [f"{'worker processes':>17}"]
    header += [f"{names[s]:>{max(9, len(names[s]))}}" for s in SYSTEMS]
    header += [f"{'ours/' + short[s]:>9}" for s in others]
    header += [f"{'CPU ' + short[s]:>8}" for s in SYSTEMS]
    header += [f"{'prod ' + short[s]:>8}" for s in SYSTEMS]
    header += [f"{'PG xacts ' + short[s]:>13}" for s in SYSTEMS]
    print(" ".join(header))
    for n in PROCESSES:
        row = [f"{n:>17}"]
        row += [f"{figures[s][n].jobs_per_second:>{max(9, len(names[s]))}.1f}" for s in SYSTEMS]
        row += [
            f"{figures['ours'][n].jobs_per_second / figures[s][n].jobs_per_second:>8.2f}x"
            for s in others
        ]
        row += [f"{figures[s][n].worker_cpu_ms:>8.2f}" for s in SYSTEMS]
        row += [f"{figures[s][n].producer_cpu_ms:>8.2f}" for s in SYSTEMS]
        row += [f"{figures[s][n].pg_xacts:>13.1f}" for s in SYSTEMS]
        print(" ".join(row))
    print()
    print("CPU ms per job of the PostgreSQL backends, of Redis and of the whole machine")
    print("(producer, workers and servers; setup included)")
    header = [f"{'worker processes':>17}"]
    for part in ("PG", "Redis", "machine"):
        header += [f"{part + ' ' + short[s]:>13}" for s in SYSTEMS]
    header += [f"{'PG sessions ' + short[s]:>16}" for s in SYSTEMS]
    print(" ".join(header))
    for n in PROCESSES:
        row = [f"{n:>17}"]
        row += [f"{figures[s][n].pg_cpu_ms:>13.2f}" for s in SYSTEMS]
        row += [f"{figures[s][n].redis_cpu_ms:>13.2f}" for s in SYSTEMS]
        row += [f"{figures[s][n].machine_cpu_ms:>13.2f}" for s in SYSTEMS]
        row += [f"{figures[s][n].pg_sessions:>16}" for s in SYSTEMS]
        print(" ".join(row))
    print()
    print("jobs/s of every repetition, in the order measured")
    for n in PROCESSES:
        cells = [
            f"{short[s]} " + " / ".join(f"{f.jobs_per_second:.1f}" for f in runs[s][n])
            for s in SYSTEMS
        ]
        print(f"{n:>17}  " + "   ".join(cells))


if __name__ == "__main__":
    if sys.argv[1:] == ["arq-worker"]:
        run_arq_worker()
    elif sys.argv[1:] == ["pgqueuer-worker"]:
        run_pgqueuer_worker()
    else:
        main()
