"""The platform on a 3-primary Redis Cluster it starts itself (``tests/redis_cluster.py``).

Keys used together by one script share a slot (their hash tags); the limiter, a breaker,
pub/sub and job results work; and killing the primary that holds the job streams, then
promoting its replica, during a load of background jobs loses none and runs none twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from uuid import UUID

import pytest

from ai_agents import AgentStore, Settings
from ai_agents.jobs.queue import QueueConfig, RedisJobQueue
from ai_agents.keys import RedisKeys
from ai_agents.providers.breaker import BreakerConfig, CircuitBreakers
from ai_agents.ratelimit.limiter import RateLimits, RedisRateLimiter
from ai_agents.redis_client import connect, is_cluster, keyslot
from tests.integration.jobs_support import (
    WorkerProcess,
    answer_for,
    flush_prefix,
    make_threads,
    started,
    wait_for,
)
from tests.redis_cluster import INSTALL_HINT, LocalRedisCluster, binaries

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(binaries() is None, reason=f"no redis-server/redis-cli ({INSTALL_HINT})"),
]


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalRedisCluster]:
    with LocalRedisCluster() as running:
        yield running


@pytest.fixture
def cluster_settings(cluster: LocalRedisCluster, database_url: str, redis_prefix: str) -> Settings:
    return Settings(database_url=database_url, redis_url=cluster.url, redis_prefix=redis_prefix)


@pytest.fixture
async def cluster_store(cluster_settings: Settings) -> AsyncIterator[AgentStore]:
    store = AgentStore(settings=cluster_settings)
    try:
        yield store
    finally:
        with contextlib.suppress(Exception):
            await flush_prefix(store)
        with contextlib.suppress(Exception):
            await store.close()


def _limiter_keys(keys: RedisKeys) -> list[str]:
    """Every key one acquire of a limiter with a tenant share and three scopes touches."""
    limiter = RedisRateLimiter(
        connect("redis://127.0.0.1:1/0"),  # never used: only its keys are read
        keys,
        provider="openai",
        model="gpt-x",
        limits=RateLimits(rpm=100, tpm=10_000),
        scopes=[
            ("user", "u1", RateLimits(rpm=10, tpm=1000)),
            ("tenant", "t1", RateLimits(rpm=50, tpm=5000)),
            ("key", "k1", RateLimits(rpm=5, tpm=500)),
        ],
        tenant="t1",
    )
    return [*limiter._redis_keys, *limiter._active_keys]


def _job_keys(keys: RedisKeys) -> list[str]:
    job = str(uuid.uuid4())
    streams = [keys.job_stream(p) for p in ("high", "normal", "low")]
    return [
        *streams,
        keys.job_delayed,
        keys.job_dead_letter,
        keys.job_result(job),
        keys.job_cancel(job),
        keys.job_transport_marker,
    ]


def test_keys_used_together_share_a_slot(cluster: LocalRedisCluster) -> None:
    keys = RedisKeys("deploy:")
    for group in (_limiter_keys(keys), _job_keys(keys)):
        slots = {cluster.keyslot(k) for k in group}  # the server's CLUSTER KEYSLOT
        assert len(slots) == 1, {k: cluster.keyslot(k) for k in group}
        assert slots == {keyslot(group[0])}
    # Two groups need not share one: the tags spread them over the cluster.
    assert keyslot(_limiter_keys(keys)[0]) != keyslot(_job_keys(keys)[0])


async def test_limiter_breaker_cache_and_pubsub_on_the_cluster(
    cluster_store: AgentStore,
) -> None:
    redis = cluster_store.redis
    assert is_cluster(redis)
    keys = cluster_store.keys
    limiter = RedisRateLimiter(
        redis,
        keys,
        provider="openai",
        model="gpt-x",
        limits=RateLimits(rpm=3, tpm=10_000),
        scopes=[("user", "u1", RateLimits(rpm=2, tpm=1000))],
        tenant="t1",
    )
    first, _ = await limiter.try_acquire(10)
    second, _ = await limiter.try_acquire(10)
    third, retry_after = await limiter.try_acquire(10)  # the user's 2 rpm are used up
    assert first is not None and second is not None and third is None and retry_after > 0
    await limiter.record_request(first, 20)

    breakers = CircuitBreakers(redis, keys, BreakerConfig(failure_threshold=2))
    await breakers.record_failure("openai", "https://a.example", "boom")
    state = await breakers.record_failure("openai", "https://a.example", "boom")
    assert state.state == "open"
    await breakers.record_failure("anthropic", "https://b.example", "boom")
    status = {(s.provider, s.state) for s in await breakers.status()}  # SCAN, all primaries
    assert status == {("openai", "open"), ("anthropic", "closed")}

    await redis.set(keys.cache_agent("a1"), b"cached", ex=60)
    assert await redis.get(keys.cache_agent("a1")) == b"cached"


async def _all_finished(store: AgentStore, job_ids: list[UUID]) -> bool:
    async with store.engine.connect() as conn:
        rows = await conn.exec_driver_sql(
            "SELECT count(*) AS n FROM jobs WHERE id = ANY($1) AND status IN "
            "('succeeded', 'failed', 'cancelled')",
            (job_ids,),
        )
        return bool(rows.scalar_one() == len(job_ids))


async def test_a_primary_failover_during_a_load_of_jobs_loses_nothing(
    cluster: LocalRedisCluster, cluster_store: AgentStore, cluster_settings: Settings
) -> None:
    store = cluster_store
    queue = RedisJobQueue(store, QueueConfig(visibility_timeout=2.0))
    store.use_job_queue(queue)
    threads = await make_threads(store, 24)
    per_thread = 6
    args = ("--concurrency", "4", "--visibility-timeout", "2", "--poll-interval", "0.2")
    workers = [
        WorkerProcess(cluster_settings, f"w{i}", *args, JOBS_TEST_DELAY="0.03") for i in range(3)
    ]
    try:
        await started(*workers)
        job_ids: list[UUID] = []
        for i in range(per_thread):  # thread order: job i before job i + 1 on each thread
            job_ids += await asyncio.gather(
                *(store.enqueue_run(t, f"job {i} of thread {k}") for k, t in enumerate(threads))
            )

        async def some_done() -> bool:
            async with store.engine.connect() as conn:
                rows = await conn.exec_driver_sql(
                    "SELECT count(*) FROM jobs WHERE id = ANY($1) AND status = 'succeeded'",
                    (job_ids,),
                )
                done = int(rows.scalar_one())
            return 10 <= done < len(job_ids) - 20

        await wait_for(some_done, timeout=30, interval=0.01, what="the load under way")
        # The realistic failover: the primary holding the job streams crashes, its
        # replica takes over (whatever was not replicated yet is gone).
        primary = cluster.owner(queue.transport.streams["normal"])
        replica = cluster.replica_of(primary)
        failed_at = time.monotonic()
        cluster.kill(primary)
        cluster.promote(replica)
        assert cluster.owner(queue.transport.streams["normal"]) == replica
        await wait_for(lambda: _all_finished(store, job_ids), timeout=45, what="every job finished")
        recovered = time.monotonic() - failed_at
    finally:
        codes = [await w.stop() for w in workers]
        logs = "".join(w.log for w in workers)
        for w in workers:
            w.close()
    assert codes == [0, 0, 0], logs
    assert "the Redis server of the job queue changed" in logs, logs  # (saw the failover)
    results = [await store.get_job(j) for j in job_ids]
    assert [r.status for r in results] == ["succeeded"] * len(job_ids)
    for k, thread in enumerate(threads):  # each job's question and answer, exactly once
        messages = (await store.list_messages(thread, limit=1000)).items
        expected: list[str | None] = []
        for i in range(per_thread):
            expected += [f"job {i} of thread {k}", answer_for(f"job {i} of thread {k}")]
        assert [m.content for m in messages] == expected
    # A result is served from the (new) primary's cache or PostgreSQL alike.
    assert (await queue.get_result(job_ids[-1], timeout=5)).status == "succeeded"
    assert recovered < 45
