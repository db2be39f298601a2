"""Issue 6, acceptance 6: background-run throughput, end to end (enqueue -> result).

For 1, 2 and 4 worker processes, a producer enqueues ``BENCH_JOBS`` runs (default 400)
over ``BENCH_THREADS`` threads (default 40) and waits for every result; the figure is
jobs per second from the first enqueue to the last result. The model answers instantly
(a ``FunctionProvider`` registered in each worker through ``AI_AGENTS_WORKER_SETUP``),
so the figure is the cost of the queue, the workers and the turn's database work.

The same run measures ``arq`` (0.28) with the same number of processes, each job doing
the same database work through the store (append the user message and the answer to
the thread, in one transaction). Both sides run 10 jobs at a time per process; arq polls
its queue every 10 ms (its default 500 ms would cap it at 20 jobs/s per process).

Our workers do more per job than the arq function: they run a real turn (thread lock,
history, rate limiter, idempotency check, usage) and record each job in PostgreSQL.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO, Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REDIS_URL, bench_database  # noqa: E402

from ai_agents import AgentDefinition, AgentStore, Settings  # noqa: E402
from ai_agents.jobs.queue import job_queue  # noqa: E402
from ai_agents.testing import FunctionProvider  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
JOBS = int(os.environ.get("BENCH_JOBS", "400"))
THREADS = int(os.environ.get("BENCH_THREADS", "40"))
PROCESSES = tuple(int(n) for n in os.environ.get("BENCH_PROCESSES", "1,2,4").split(","))
CONCURRENCY = 10
PRODUCERS = 16  # enqueues in flight at once
ANSWER = "Check-out is at 11am."


# --- what runs inside the worker processes --------------------------------------------


def worker_setup(store: AgentStore) -> None:
    """``AI_AGENTS_WORKER_SETUP`` of our workers: the instant model."""
    store.register_provider("instant", FunctionProvider(lambda request: ANSWER))


async def arq_turn(ctx: dict[str, Any], thread_id: str, text: str) -> str:
    """The arq job: the same turn our workers run (run row, history, limiter, save), with
    an idempotency key per job as ours have (``job:<id>``), through ``store.run``."""
    store: AgentStore = ctx["store"]
    response = await store.run(thread_id, text, idempotency_key=f"arq:{ctx['job_id']}")
    return str(response.run_id)


async def _arq_startup(ctx: dict[str, Any]) -> None:
    ctx["store"] = AgentStore(database_url=os.environ["BENCH_DATABASE_URL"], redis_url=REDIS_URL)
    worker_setup(ctx["store"])
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


# --- the two systems ----------------------------------------------------------------------


async def bench_ours(url: str, processes: int) -> Figures:
    prefix = f"bench:jobs:{uuid.uuid4().hex[:8]}:"
    settings = Settings(database_url=url, redis_url=REDIS_URL, redis_prefix=prefix)
    async with AgentStore(settings=settings) as store:
        worker_setup(store)
        threads = await _threads(store, "instant")
        env = {
            "AI_AGENTS_DATABASE_URL": url,
            "AI_AGENTS_REDIS_URL": REDIS_URL,
            "AI_AGENTS_REDIS_PREFIX": prefix,
            "AI_AGENTS_WORKER_SETUP": "queue_throughput:worker_setup",
        }
        argv = [sys.executable, "-m", "workers", "--concurrency", str(CONCURRENCY)]
        workers = [_Process(argv, env, "worker started") for _ in range(processes)]
        try:
            await _start(workers)
            queue = job_queue(store)
            cpu = _cpu(workers)
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
            cpu = _cpu(workers) - cpu
        finally:
            for worker in workers:
                worker.stop()
        await _check_threads(store, threads)
        keys = [k async for k in store.redis.scan_iter(match=f"{prefix}*", count=1000)]
        if keys:
            await store.redis.delete(*keys)
    return Figures(JOBS / elapsed, 1000 * cpu / JOBS)


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
            cpu = _cpu(workers)
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
            cpu = _cpu(workers) - cpu
        finally:
            for worker in workers:
                worker.stop()
            keys = [f"arq:result:{job.job_id}" for job in jobs] + [queue_name]
            await pool.delete(*keys, f"{queue_name}:health-check")
            await pool.aclose()
        await _check_threads(store, threads)
    return Figures(JOBS / elapsed, 1000 * cpu / JOBS)


def main() -> None:
    with bench_database() as url:
        ours = {n: asyncio.run(bench_ours(url, n)) for n in PROCESSES}
        arq = {n: asyncio.run(bench_arq(url, n)) for n in PROCESSES}
    print(
        f"end-to-end jobs/s (enqueue -> result), {JOBS} jobs over {THREADS} threads, "
        f"{CONCURRENCY} jobs at a time per process, instant model, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print("worker CPU: user + system time of the worker processes per job, in ms")
    print(
        f"{'worker processes':>17} {'ai_agents':>10} {'arq 0.28':>9} {'ratio':>7} "
        f"{'CPU ours':>9} {'CPU arq':>8}"
    )
    for n in PROCESSES:
        o, a = ours[n], arq[n]
        print(
            f"{n:>17} {o.jobs_per_second:>10.1f} {a.jobs_per_second:>9.1f} "
            f"{o.jobs_per_second / a.jobs_per_second:>6.2f}x "
            f"{o.worker_cpu_ms:>9.2f} {a.worker_cpu_ms:>8.2f}"
        )


if __name__ == "__main__":
    if sys.argv[1:] == ["arq-worker"]:
        run_arq_worker()
    else:
        main()
