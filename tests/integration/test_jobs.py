"""The job queue with an in-process worker (issue 6): round trip, validation, tenants,
priorities, cancel, retries and dead letters (acceptance 3), exactly-once effect of a
redelivered job, and a Redis flush (acceptance 5)."""

from __future__ import annotations

import asyncio
import logging
from uuid import UUID, uuid4

import pytest

from ai_agents import AgentStore, NotFoundError, ValidationError
from ai_agents.db.scope import Scope
from ai_agents.errors import ProviderOverloaded
from ai_agents.jobs.queue import QueueConfig, RedisJobQueue, job_queue
from ai_agents.jobs.records import JobTimeout
from ai_agents.providers.base import ProviderRequest
from ai_agents.runner import RunOptions
from ai_agents.testing import FunctionProvider
from ai_agents.workers import WorkerConfig, WorkerPool, WorkerStats
from tests.integration.jobs_support import answer_for, echo_provider, flush_prefix, make_threads


@pytest.fixture
def queue(store: AgentStore) -> RedisJobQueue:
    queue = RedisJobQueue(
        store, QueueConfig(visibility_timeout=1.0, retry_backoff=0.05, retry_backoff_max=0.2)
    )
    store.use_job_queue(queue)
    return queue


async def drain(store: AgentStore, **config: object) -> WorkerStats:
    """Run an in-process worker until the queue is empty."""
    settings = {"burst": True, "poll_interval": 0.05, **config}
    return await WorkerPool(store, WorkerConfig(**settings)).run()  # type: ignore[arg-type]


def recording_provider(calls: list[str]) -> FunctionProvider:
    def answer(request: ProviderRequest) -> str:
        text = request.messages[-1].content or ""
        calls.append(text)
        return answer_for(text)

    return FunctionProvider(answer)


async def contents(store: AgentStore, thread_id: UUID) -> list[str | None]:
    return [m.content for m in (await store.list_messages(thread_id, limit=1000)).items]


async def test_background_run_round_trip(store: AgentStore, queue: RedisJobQueue) -> None:
    (thread,) = await make_threads(store, 1)
    job_id = await store.enqueue_run(
        thread, "What's the checkout time?", priority="high", metadata={"source": "email"}
    )
    queued = await store.get_job(job_id)
    assert (queued.status, queued.attempts, queued.priority) == ("queued", 0, "high")
    assert queued.thread_id == thread and queued.tenant_id == "default"
    assert queued.metadata == {"source": "email"} and queued.started_at is None
    with pytest.raises(JobTimeout) as timed_out:
        await queue.get_result(job_id, timeout=0.1)
    assert timed_out.value.code == "job_timeout" and timed_out.value.status == "queued"

    waiter = asyncio.create_task(queue.get_result(job_id, timeout=30))
    stats = await drain(store)
    done = await asyncio.wait_for(waiter, 5)
    assert stats.outcomes == {"succeeded": 1}
    assert done.status == "succeeded" and done.attempts == 1 and done.error is None
    assert done.created_at <= done.started_at <= done.finished_at  # type: ignore[operator]
    response = done.response
    assert response is not None and response.content == answer_for("What's the checkout time?")
    assert (await store.get_job(job_id)).result == done.result  # PostgreSQL == cache

    messages = (await store.list_messages(thread)).items
    assert [m.role for m in messages] == ["user", "assistant"]
    assert messages[0].metadata == {"source": "email", "job_id": str(job_id)}
    assert [m.id for m in messages] == response.message_ids


async def test_enqueue_rejects_bad_input_and_records_nothing(
    store: AgentStore, queue: RedisJobQueue
) -> None:
    (thread,) = await make_threads(store, 1)
    with pytest.raises(NotFoundError):
        await store.enqueue_run(uuid4(), "hello")
    with pytest.raises(ValidationError, match="priority"):
        await store.enqueue_run(thread, "hello", priority="urgent")
    with pytest.raises(ValidationError):
        await store.enqueue_run(thread, "   ")
    with pytest.raises(ValidationError, match="JSON"):
        await store.enqueue_run(thread, "hello", metadata={"when": object()})
    with pytest.raises(ValidationError, match="max_attempts"):
        await queue.enqueue(thread, "hello", max_attempts=0)
    with pytest.raises(ValidationError, match="malformed job id"):
        await store.get_job("not-a-uuid")
    with pytest.raises(NotFoundError):
        await store.get_job(uuid4())
    async with store.engine.connect() as conn:
        assert (await conn.exec_driver_sql("SELECT count(*) FROM jobs")).scalar() == 0
    assert await queue.transport.queued_job_ids() == set()


async def test_jobs_are_tenant_scoped(store: AgentStore, queue: RedisJobQueue) -> None:
    acme, globex = store.for_tenant("acme"), store.for_tenant("globex")
    (thread,) = await make_threads(acme, 1)
    job_id = await acme.enqueue_run(thread, "hello")
    assert (await acme.get_job(job_id)).tenant_id == "acme"
    with pytest.raises(NotFoundError):
        await globex.enqueue_run(thread, "hello")
    for attempt in (globex.get_job(job_id), globex.cancel_job(job_id)):
        with pytest.raises(NotFoundError):
            await attempt
    await drain(store)
    # Finished: served from the Redis cache, still scoped (each view gets its own binding).
    with pytest.raises(NotFoundError):
        await job_queue(globex).get_result(job_id, timeout=1)
    with pytest.raises(NotFoundError):
        await queue.get_result(job_id, timeout=1, scope=Scope("globex"))
    assert (await job_queue(acme).get_result(job_id, timeout=1)).status == "succeeded"
    assert (await store.for_tenant(None).get_job(job_id)).status == "succeeded"
    assert await contents(acme, thread) == ["hello", answer_for("hello")]


async def test_priorities_are_weighted_and_low_is_never_starved(
    store: AgentStore, queue: RedisJobQueue
) -> None:
    threads = await make_threads(store, 60)
    calls: list[str] = []
    store.register_provider("scripted", recording_provider(calls))
    for priority, group in (
        ("low", threads[:20]),
        ("normal", threads[20:40]),
        ("high", threads[40:]),
    ):
        for thread in group:
            await store.enqueue_run(thread, priority, priority=priority)
    await drain(store, concurrency=1)
    assert len(calls) == 60
    first = calls[:20]
    # 6:3:1 polling weights: every 10 reads take 6 high, 3 normal and 1 low job.
    assert (first.count("high"), first.count("normal"), first.count("low")) == (12, 6, 2)
    assert calls[:10].count("low") == 1


async def test_cancel_queued_job_never_starts(store: AgentStore, queue: RedisJobQueue) -> None:
    (thread,) = await make_threads(store, 1)
    calls: list[str] = []
    store.register_provider("scripted", recording_provider(calls))
    first = await store.enqueue_run(thread, "first")
    second = await store.enqueue_run(thread, "second")
    cancelled = await store.cancel_job(first)
    assert cancelled.status == "cancelled" and cancelled.error is not None
    assert cancelled.error.code == "cancelled"
    assert (await queue.get_result(first, timeout=1)).status == "cancelled"
    await drain(store)
    assert calls == ["second"]  # the cancelled job never reached the model
    assert await contents(store, thread) == ["second", answer_for("second")]
    finished = await store.cancel_job(second)  # too late: nothing changes
    assert finished.status == "succeeded" and not finished.cancel_requested
    assert await queue.dead_letters() == []


async def test_cancel_running_job_stops_at_a_safe_point(
    store: AgentStore, queue: RedisJobQueue
) -> None:
    (thread,) = await make_threads(store, 1)
    started, release = asyncio.Event(), asyncio.Event()

    async def answer(request: ProviderRequest) -> str:
        if request.messages[-1].content == "slow":
            started.set()
            await release.wait()
        return answer_for(request.messages[-1].content)

    store.register_provider("scripted", FunctionProvider(answer))
    slow = await store.enqueue_run(thread, "slow")
    after = await store.enqueue_run(thread, "after")
    worker = asyncio.create_task(drain(store))
    await asyncio.wait_for(started.wait(), 10)
    requested = await store.cancel_job(slow)
    assert requested.status == "running" and requested.cancel_requested
    release.set()
    result = await queue.get_result(slow, timeout=10)
    assert result.status == "cancelled" and result.error and result.error.code == "cancelled"
    await asyncio.wait_for(worker, 10)
    # Nothing of the cancelled turn was saved; the thread's next job ran after it.
    assert await contents(store, thread) == ["after", answer_for("after")]
    assert (await store.get_job(after)).status == "succeeded"


async def test_failing_job_is_dead_lettered_after_max_attempts(
    store: AgentStore, queue: RedisJobQueue, caplog: pytest.LogCaptureFixture
) -> None:
    """Acceptance 3: failed after max attempts, dead-lettered with the error, and the
    thread keeps nothing of the turn (turns are all-or-nothing: no user message either)."""
    caplog.set_level(logging.INFO, logger="workers")
    (thread,) = await make_threads(store, 1)
    store.register_provider("scripted", echo_provider(fail=True))
    job_id = await store.enqueue_run(thread, "will this work?")
    stats = await drain(store)
    assert stats.outcomes == {"retrying": 2, "failed": 1}

    job = await store.get_job(job_id)
    assert (job.status, job.attempts, job.max_attempts) == ("failed", 3, 3)
    assert job.error is not None and job.error.code == "provider_overloaded"
    assert "overloaded" in job.error.message and job.finished_at is not None
    (dead,) = await queue.dead_letters()
    assert dead["job"] == str(job_id) and dead["thread"] == str(thread)
    assert (dead["code"], dead["message"], dead["attempts"]) == (
        "provider_overloaded",
        job.error.message,
        "3",
    )
    assert (await store.get_thread(thread)).message_count == 0

    lines = [r.getMessage() for r in caplog.records if str(job_id) in r.getMessage()]
    assert [line.split()[1] for line in lines] == ["retrying", "retrying", "failed"]
    assert all(f"thread_id={thread}" in line and "duration_ms=" in line for line in lines)
    assert [r.__dict__["attempt"] for r in caplog.records if str(job_id) in r.getMessage()] == [
        1,
        2,
        3,
    ]


async def test_mistakes_fail_at_once_without_retries(
    store: AgentStore, queue: RedisJobQueue
) -> None:
    (thread,) = await make_threads(store, 1)
    agent = (await store.get_thread(thread)).agent_id
    await store.deactivate_agent(agent)
    job_id = await store.enqueue_run(thread, "hello")
    assert (await drain(store)).outcomes == {"failed": 1}
    job = await store.get_job(job_id)
    assert (job.status, job.attempts) == ("failed", 1)
    assert job.error is not None and job.error.code == "invalid_request"
    assert [d["job"] for d in await queue.dead_letters()] == [str(job_id)]


async def test_retried_job_answers_once(store: AgentStore, queue: RedisJobQueue) -> None:
    (thread,) = await make_threads(store, 1)
    failures = [ProviderOverloaded("busy", provider="scripted", status=503)] * 2

    def answer(request: ProviderRequest) -> str:
        if failures:
            raise failures.pop()
        return answer_for(request.messages[-1].content)

    store.register_provider("scripted", FunctionProvider(answer))
    job_id = await store.enqueue_run(thread, "try again")
    assert (await drain(store)).outcomes == {"retrying": 2, "succeeded": 1}
    job = await store.get_job(job_id)
    assert (job.status, job.attempts, job.error) == ("succeeded", 3, None)
    assert await contents(store, thread) == ["try again", answer_for("try again")]


async def test_redelivered_job_replays_instead_of_answering_twice(
    store: AgentStore, queue: RedisJobQueue
) -> None:
    """At-least-once delivery, exactly-once effect: a worker saves the turn and dies
    before recording the job; the job is taken over after the visibility timeout and
    the second attempt replays the saved answer."""
    (thread,) = await make_threads(store, 1)
    calls: list[str] = []
    store.register_provider("scripted", recording_provider(calls))
    job_id = await store.enqueue_run(thread, "once")
    await queue.transport.ensure_groups()
    (delivery,) = await queue.transport.read("doomed", 1, ("normal", "high", "low"))
    claim = await queue.claim(delivery, "doomed")
    assert claim.verdict == "run"
    saved = await store.runner.run(
        store._scope, thread, "once", RunOptions(idempotency_key=f"job:{job_id}")
    )
    # ... and "doomed" dies here: no heartbeat, no acknowledgement.
    stats = await drain(store)
    assert stats.outcomes == {"succeeded": 1}
    job = await store.get_job(job_id)
    assert job.status == "succeeded" and job.attempts == 2
    assert job.response is not None and job.response.replayed
    assert job.response.run_id == saved.run_id
    assert calls == ["once"]
    assert await contents(store, thread) == ["once", answer_for("once")]

    # A stray duplicate delivery of the finished job is acknowledged, not run; a
    # malformed entry is dropped.
    await queue.transport.publish(job_id, "normal")
    await store.redis.xadd(store.keys.job_stream("low"), {"not": "a job"})
    assert (await drain(store)).outcomes == {}
    assert calls == ["once"]
    for stream in queue.transport.streams.values():
        assert await store.redis.xlen(stream) == 0


async def test_flushed_redis_loses_no_result_and_no_queued_job(
    store: AgentStore, queue: RedisJobQueue
) -> None:
    """Acceptance 5: Redis loses everything after jobs finished; their results are still
    readable, and jobs still queued at that moment run once Redis is back."""
    threads = await make_threads(store, 3)
    finished = [await store.enqueue_run(t, "before the flush") for t in threads]
    await drain(store)
    queued = [await store.enqueue_run(t, "after the flush") for t in threads]
    assert await flush_prefix(store) > 0

    for job_id in finished:
        job = await store.get_job(job_id)
        assert job.status == "succeeded" and job.response is not None
        assert job.response.content == answer_for("before the flush")
        assert (await queue.get_result(job_id, timeout=1)).result == job.result
    assert (await drain(store)).outcomes == {"succeeded": 3}  # rebuilt from PostgreSQL
    for job_id in queued:
        assert (await store.get_job(job_id)).status == "succeeded"
    for thread in threads:
        assert await contents(store, thread) == [
            "before the flush",
            answer_for("before the flush"),
            "after the flush",
            answer_for("after the flush"),
        ]
