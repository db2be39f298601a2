"""The chaos run (``make chaos``): load the platform and break its parts, then count.

Its own PostgreSQL, Redis and chaos vendor on spare ports, 2 API servers and 3 workers
(``ai-agents serve`` / ``python -m workers``), and a load of synchronous runs, SSE
streams and background runs for ``AI_AGENTS_CHAOS_SECONDS`` (default 75). Meanwhile:

- a worker is killed with ``kill -9`` while it runs jobs (twice), and replaced;
- Redis is killed and restarted empty;
- PostgreSQL is stopped with ``-m immediate`` and started again;
- the vendor hangs, then truncates its answers, then answers garbage, a few seconds each.

Afterwards every job must finish, every synchronous request is retried with its
idempotency key until answered, and :mod:`tests.chaos.audit` counts; the run fails on
any 500, lost request, duplicated turn or half turn. Skipped unless
``AI_AGENTS_CHAOS=1`` (``make chaos`` sets it): it takes minutes and starts servers.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import pytest

from ai_agents.db import migrate
from tests.chaos.audit import audit
from tests.chaos.cluster import (
    MODEL,
    ROOT,
    ApiServer,
    Postgres,
    Redis,
    Vendor,
    Worker,
    process_env,
    remove_tree,
)
from tests.chaos.load import Load

pytestmark = pytest.mark.skipif(
    os.environ.get("AI_AGENTS_CHAOS") != "1",
    reason="the chaos run starts its own servers and takes minutes: `make chaos`",
)

SECONDS = float(os.environ.get("AI_AGENTS_CHAOS_SECONDS", "75"))
USERS = 12
THREADS = 24


@dataclass
class Cluster:
    base: Path
    pg: Postgres
    redis: Redis
    vendor: Vendor
    env: dict[str, str]
    apis: list[ApiServer] = field(default_factory=list)
    workers: list[Worker] = field(default_factory=list)

    def add_worker(self) -> Worker:
        worker = Worker(f"worker-{len(self.workers) + 1}", self.base)
        self.workers.append(worker)
        worker.start(self.env)
        return worker

    def create_key(self) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "ai_agents", "keys", "create", "--tenant", "chaos"]
            + ["--name", "load", "--rpm", "0"],
            cwd=str(ROOT),
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        found = re.search(r"^key:\s+(\S+)", result.stdout, re.MULTILINE)
        assert found, result.stdout + result.stderr
        return found.group(1)


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    base = Path(tempfile.mkdtemp(prefix="ai-agents-chaos-"))
    base.chmod(0o755)
    pg, redis, vendor = Postgres(base), Redis(base), Vendor(base)
    cluster = Cluster(base, pg, redis, vendor, env={})
    try:
        pg.init()
        migrate.upgrade(pg.url)
        redis.start()
        cluster.env = process_env(
            database_url=pg.url, redis_url=redis.url, vendor_url=vendor.url, base=base
        )
        vendor.start(cluster.env)
        for n in (1, 2):
            api = ApiServer(f"api-{n}", base)
            cluster.apis.append(api)
            api.start(cluster.env)
        for _ in range(3):
            cluster.add_worker()
        yield cluster
    finally:
        for service in [*cluster.workers, *cluster.apis, vendor, redis]:
            service.stop()
        pg.stop()
        if os.environ.get("AI_AGENTS_CHAOS_KEEP") != "1":
            remove_tree(base)
        else:
            print(f"\nchaos files kept in {base}")


async def _setup(cluster: Cluster, key: str) -> list[str]:
    """One agent with the chaos tool, THREADS threads."""
    url = cluster.apis[0].url
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=30) as c:
        agent = await c.post(
            f"{url}/agents",
            json={
                "name": "Chaos",
                "role": "You answer.",
                "provider": "openai",
                "model": MODEL,
                "tools": ["chaos_lookup"],
            },
        )
        assert agent.status_code == 201, agent.text
        agent_id = agent.json()["id"]
        threads = []
        for n in range(THREADS):
            thread = await c.post(f"{url}/threads", json={"agent_id": agent_id, "user_id": f"u{n}"})
            assert thread.status_code == 201, thread.text
            threads.append(thread.json()["id"])
        return threads


class Faults:
    """The fault schedule, run beside the load; each fault is logged with its time."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.started = time.monotonic()
        self.log: list[str] = []
        #: Jobs that were running on a worker when it was killed.
        self.held: list[str] = []

    def note(self, text: str) -> None:
        self.log.append(f"{time.monotonic() - self.started:6.1f}s  {text}")

    async def at(self, second: float) -> None:
        await asyncio.sleep(max(0.0, self.started + second - time.monotonic()))

    async def kill_busy_worker(self) -> None:
        """kill -9 a worker that is running jobs right now, then start a replacement."""
        victim, held = None, []
        deadline = time.monotonic() + 15
        while victim is None and time.monotonic() < deadline:
            busy = await _running_jobs_by_worker(self.cluster.pg.url)
            alive = {w.name: w for w in self.cluster.workers if w.running}
            candidates = [(len(jobs), name) for name, jobs in busy.items() if name in alive]
            if candidates:
                name = max(candidates)[1]
                victim, held = alive[name], busy[name]
            else:
                await asyncio.sleep(0.2)
        if victim is None:
            victim = next(w for w in self.cluster.workers if w.running)
        await asyncio.to_thread(victim.kill)
        self.held += held
        self.note(f"kill -9 {victim.name} (running {len(held)} job(s))")
        replacement = await asyncio.to_thread(self.cluster.add_worker)
        self.note(f"started {replacement.name}")

    async def restart_redis(self, down: float) -> None:
        redis = self.cluster.redis
        await asyncio.to_thread(redis.kill)
        self.note("kill -9 redis")
        await asyncio.sleep(down)
        await asyncio.to_thread(redis.start)
        self.note("redis restarted, empty")

    async def restart_postgres(self, down: float) -> None:
        await asyncio.to_thread(self.cluster.pg.stop_immediate)
        self.note("pg_ctl stop -m immediate")
        await asyncio.sleep(down)
        await asyncio.to_thread(self.cluster.pg.start)
        self.note("postgres restarted")

    async def vendor(self, mode: str, seconds: float) -> None:
        await asyncio.to_thread(self.cluster.vendor.set_mode, mode)
        self.note(f"vendor: {mode}")
        await asyncio.sleep(seconds)
        await asyncio.to_thread(self.cluster.vendor.set_mode, "ok")
        self.note("vendor: ok")

    async def run(self, seconds: float) -> None:
        scale = seconds / 75
        await self.at(8 * scale)
        await self.kill_busy_worker()
        await self.at(16 * scale)
        await self.restart_redis(down=2)
        await self.at(26 * scale)
        await self.restart_postgres(down=3)
        # Vendor faults, with a few healthy seconds between them so the breaker closes.
        await self.at(34 * scale)
        await self.vendor("hang", 6)
        await self.at(44 * scale)
        await self.vendor("truncate", 6)
        await self.at(54 * scale)
        await self.vendor("garbage", 6)
        await self.at(66 * scale)
        await self.kill_busy_worker()


async def _running_jobs_by_worker(database_url: str) -> dict[str, list[str]]:
    try:
        conn = await asyncpg.connect(database_url, timeout=3)
    except (OSError, asyncpg.PostgresError):
        return {}
    try:
        rows = await conn.fetch("SELECT id, worker FROM jobs WHERE status = 'running'")
    finally:
        await conn.close()
    busy: dict[str, list[str]] = {}
    for row in rows:
        if row["worker"]:
            busy.setdefault(row["worker"], []).append(str(row["id"]))
    return busy


async def _jobs(database_url: str, ids: list[str]) -> list[str]:
    """``status/attempts`` of each job."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT status, attempts FROM jobs WHERE id = ANY($1::uuid[])", ids)
    finally:
        await conn.close()
    return sorted(f"{r['status']}/attempts={r['attempts']}" for r in rows)


# The load (SECONDS), then up to 240 s for the jobs, plus starting the cluster.
@pytest.mark.timeout(int(SECONDS) + 600)
async def test_chaos(cluster: Cluster) -> None:
    began = time.monotonic()
    key = await asyncio.to_thread(cluster.create_key)
    threads = await _setup(cluster, key)
    load = Load([api.url for api in cluster.apis], key, threads)
    faults = Faults(cluster)
    await asyncio.gather(load.run(SECONDS, USERS), faults.run(SECONDS))
    faults.note("load stopped")
    job_states = await load.wait_for_jobs(timeout=240)
    faults.note("jobs finished")
    await load.settle()
    faults.note("unanswered synchronous requests retried")
    report = await audit(cluster.pg.url, load, job_states)
    for api in cluster.apis:
        assert api.running, f"{api.name} died:\n{api.log_tail()}"
    print("\n== chaos run")
    print("\n".join(faults.log))
    print(f"vendor: {cluster.vendor.stats()}")
    print(f"jobs running on killed workers: {await _jobs(cluster.pg.url, faults.held)}")
    print(report.summary())
    print(f"duration: {time.monotonic() - began:.0f} s (load {SECONDS:.0f} s)")
    assert report.errors_500 == 0, report.summary()
    assert report.lost == 0, report.summary()
    assert report.duplicated == 0, report.summary()
    assert report.half_turns == 0, report.summary()
    # A background request answered with an error whose job was queued and ran anyway
    # (the client, told to retry, would run the turn twice): the 202 is now built from
    # the committed job, with no read after it.
    assert report.refused_but_ran == 0, report.summary()
    assert report.turns > 0 and report.tool_turns > 0
