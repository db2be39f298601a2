"""Issue 16 item 3: a job's statements, merged.

The claim starts the job's run in the same statement, and the turn's save records the
job's success in the same transaction (``ai_agents_append_job``, migration 0012). These
tests read what each statement left in PostgreSQL: a run started by the claim, a job
finished at the very timestamp of its run (``now()`` is the transaction's start), and a
save that fails or no longer owns the job leaving the job as it was.
"""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

import asyncpg
import pytest

from ai_agents import AgentStore
from ai_agents.db.messages import JobSuccess, RunCompletion, append_turn
from ai_agents.db.scope import Scope
from ai_agents.errors import RunExpired
from ai_agents.jobs import rows
from ai_agents.jobs.queue import QueueConfig, RedisJobQueue
from ai_agents.jobs.records import JobRecord
from ai_agents.jobs.transport import Delivery
from ai_agents.messages import Message
from ai_agents.providers.base import ProviderRequest
from ai_agents.runner import RunOptions
from ai_agents.testing import FunctionProvider
from ai_agents.workers import WorkerConfig, WorkerPool
from tests.integration.jobs_support import answer_for, make_threads


@pytest.fixture
def queue(store: AgentStore) -> RedisJobQueue:
    queue = RedisJobQueue(store, QueueConfig(visibility_timeout=30.0))
    store.use_job_queue(queue)
    return queue


def delivery_of(queue: RedisJobQueue, job: JobRecord) -> Delivery:
    """A delivery as a worker reads it (the fast claim never looks at Redis)."""
    return Delivery(job.priority, queue.transport.streams[job.priority], b"0-1", job.id)


async def row(store: AgentStore, sql: str, *args: Any) -> asyncpg.Record:
    conn = await asyncpg.connect(str(store.settings.database_url))
    try:
        found = await conn.fetchrow(sql, *args)
    finally:
        await conn.close()
    assert found is not None, sql
    return found


async def test_the_claim_starts_the_jobs_run(store: AgentStore, queue: RedisJobQueue) -> None:
    (thread,) = await make_threads(store, 1)
    job = await queue.submit(thread, "hello")
    assert job.run_id is not None
    claim = await queue.claim(delivery_of(queue, job), "worker-a")
    assert claim.verdict == "run" and claim.job is not None
    assert (claim.job.status, claim.job.worker, claim.job.attempts) == ("running", "worker-a", 1)
    assert claim.started is not None and claim.started["run_created_at"] is not None
    assert claim.started["run_input"] == "hello" and claim.started["id"] == thread
    run = await row(store, "SELECT status, owner FROM runs WHERE id = $1", job.run_id)
    assert run["status"] == "in_progress"
    assert run["owner"] == store.runner.supervisor.owner

    # The run goes on from the claim's start: nothing starts it a second time.
    view = store.for_tenant(job.tenant_id)
    options = RunOptions(idempotency_key=f"job:{job.id}")
    response = await view.runner.run_job(
        view._scope, job.run_id, thread, options, started=claim.started
    )
    assert response.content == answer_for("hello") and response.run_id == job.run_id


async def test_the_claim_commits_without_waiting_for_its_flush_and_only_itself(
    store: AgentStore, queue: RedisJobQueue
) -> None:
    """A claim lost in a crash leaves its job queued, as a dead worker does; the save of
    its turn commits synchronously and flushes the claim's WAL before it (WAL is written
    in order). The setting is the claim transaction's, never the pooled session's."""
    (thread,) = await make_threads(store, 1)
    job = await queue.submit(thread, "hello")
    conn = await asyncpg.connect(str(store.settings.database_url))
    try:
        async with conn.transaction():
            taken = await rows.claim_and_start(
                conn, job.id, "worker-a", 30.0, owner="owner-a", lease=30.0
            )
            assert taken is not None
            assert await conn.fetchval("SHOW synchronous_commit") == "off"
        assert await conn.fetchval("SHOW synchronous_commit") == "on"
    finally:
        await conn.close()


async def test_a_claim_on_a_busy_thread_leaves_the_run_queued(
    store: AgentStore, queue: RedisJobQueue
) -> None:
    """The job is taken; its run waits for the caller's run that holds the thread, then
    runs from the claim's answer (no separate start before the first wait)."""
    (thread,) = await make_threads(store, 1)
    holding, release = asyncio.Event(), asyncio.Event()

    async def answer(request: ProviderRequest) -> str:
        text = request.messages[-1].content
        if text == "hold":
            holding.set()
            await release.wait()
        return answer_for(text)

    store.register_provider("scripted", FunctionProvider(answer))
    caller = asyncio.create_task(store.run(thread, "hold"))
    await asyncio.wait_for(holding.wait(), 10)
    job = await queue.submit(thread, "queued behind")
    assert job.run_id is not None
    claim = await queue.claim(delivery_of(queue, job), "worker-a")
    assert claim.verdict == "run" and claim.started is not None
    assert claim.started["run_created_at"] is None and claim.started["run_status"] == "queued"
    run = await row(store, "SELECT status, owner FROM runs WHERE id = $1", job.run_id)
    assert (run["status"], run["owner"]) == ("queued", None)

    view = store.for_tenant(job.tenant_id)
    options = RunOptions(idempotency_key=f"job:{job.id}", busy_timeout=30)
    running = asyncio.create_task(
        view.runner.run_job(view._scope, job.run_id, thread, options, started=claim.started)
    )
    await asyncio.sleep(0.2)
    assert not running.done()  # it waits for the caller's run
    release.set()
    await asyncio.wait_for(caller, 10)
    response = await asyncio.wait_for(running, 10)
    assert response.content == answer_for("queued behind")


async def test_the_turns_save_records_the_jobs_success(
    store: AgentStore, queue: RedisJobQueue
) -> None:
    """A worker's job ends in the transaction that saves its turn: the job's
    ``finished_at`` is the run's ``completed_at`` to the microsecond (both ``now()``),
    and the result in PostgreSQL is the response the worker announced."""
    (thread,) = await make_threads(store, 1)
    job_id = await store.enqueue_run(thread, "one")
    second = await store.enqueue_run(thread, "two")
    stats = await WorkerPool(store, WorkerConfig(burst=True, poll_interval=0.05)).run()
    assert stats.outcomes == {"succeeded": 2}
    for ident, text in ((job_id, "one"), (second, "two")):
        done = await queue.get_result(ident, timeout=5)
        assert done.status == "succeeded" and done.response is not None
        assert done.response.content == answer_for(text)
        assert (await store.get_job(ident)).result == done.result
        found = await row(
            store,
            "SELECT j.finished_at, r.completed_at FROM jobs j JOIN runs r ON r.id = j.run_id "
            "WHERE j.id = $1",
            ident,
        )
        assert found["finished_at"] == found["completed_at"]


def completed_by(owner: str) -> RunCompletion:
    """The run's completion as its process *owner* saves it with the turn."""
    return RunCompletion(
        owner=owner,
        status="completed",
        provider="scripted",
        model="echo",
        input_tokens=1,
        output_tokens=1,
        cost=0.0,
        incomplete_details=None,
        steps_json="[]",
    )


async def _running_job(
    store: AgentStore, queue: RedisJobQueue, thread: UUID, text: str
) -> tuple[JobRecord, str]:
    job = await queue.submit(thread, text)
    claim = await queue.claim(delivery_of(queue, job), "worker-a")
    assert claim.verdict == "run" and claim.job is not None
    return claim.job, store.runner.supervisor.owner


async def _save(
    store: AgentStore, thread: UUID, job: JobRecord, owner: str, success: JobSuccess
) -> list[Message]:
    turn = [Message(role="user", content=job.input), Message(role="assistant", content="ok")]
    async with store.engine.connect() as conn:
        limits = await store.runtime.size_limits(conn, job.tenant_id)
        saved, _ = await append_turn(
            conn,
            Scope(job.tenant_id),
            thread,
            turn,
            limits,
            run_id=job.run_id,
            idempotency_key=f"job:{job.id}",
            completion=completed_by(owner),
            job=success,
        )
        await conn.commit()
    return saved


async def test_the_save_answers_the_job_and_the_threads_next_job(
    store: AgentStore, queue: RedisJobQueue
) -> None:
    (thread,) = await make_threads(store, 1)
    job, owner = await _running_job(store, queue, thread, "first")
    following = await queue.submit(thread, "second")
    success = rows.success_in_turn(job, "worker-a")
    success.result = {"content": "ok"}
    saved = await _save(store, thread, job, owner, success)
    assert [m.content for m in saved] == ["first", "ok"]
    recorded = rows.recorded_success(success)
    assert recorded is not None
    finished, next_job = recorded
    assert (finished.id, finished.status, finished.result) == (
        job.id,
        "succeeded",
        {"content": "ok"},
    )
    assert next_job == (following.id, "normal")


async def test_a_save_by_a_worker_that_lost_the_job_leaves_the_job(
    store: AgentStore, queue: RedisJobQueue
) -> None:
    """The turn is saved (the run is still this process's), the job is not touched: its
    new owner records the outcome."""
    (thread,) = await make_threads(store, 1)
    job, owner = await _running_job(store, queue, thread, "first")
    success = rows.success_in_turn(job, "worker-b")  # not the job's worker
    success.result = {"content": "ok"}
    saved = await _save(store, thread, job, owner, success)
    assert len(saved) == 2 and success.row is None
    assert rows.recorded_success(success) is None
    still = await store.get_job(job.id)
    assert (still.status, still.worker, still.result) == ("running", "worker-a", None)


async def test_a_failed_save_leaves_the_job_running(
    store: AgentStore, queue: RedisJobQueue
) -> None:
    """Nothing of a refused save is kept: no message, and the job still runs."""
    (thread,) = await make_threads(store, 1)
    job, _ = await _running_job(store, queue, thread, "first")
    success = rows.success_in_turn(job, "worker-a")
    success.result = {"content": "ok"}
    with pytest.raises(RunExpired):
        await _save(store, thread, job, "another-process", success)
    assert success.row is None
    still = await store.get_job(job.id)
    assert (still.status, still.result, still.finished_at) == ("running", None, None)
    assert (await store.list_messages(thread)).items == []


async def test_a_turn_announces_its_release_only_to_runs_that_wait(
    store: AgentStore, queue: RedisJobQueue
) -> None:
    """``out_waiters`` of a saved turn: a queued job's run does not wait for the release
    (its job starts it when delivered); the run of a job a worker took does, and so does
    a caller's queued run."""
    (thread,) = await make_threads(store, 1)
    conn = await asyncpg.connect(str(store.settings.database_url))

    async def save_a_turn() -> bool:
        run = await conn.fetchval(
            "INSERT INTO runs (tenant_id, thread_id, agent_id, status, input, owner, "
            "lease_expires_at) SELECT tenant_id, id, agent_id, 'in_progress', 'x', 'p', "
            "now() + interval '1 minute' FROM threads WHERE id = $1 RETURNING id",
            thread,
        )
        async with store.engine.connect() as sa:
            limits = await store.runtime.size_limits(sa, "default")
            _, waiters = await append_turn(
                sa,
                Scope("default"),
                thread,
                [Message(role="user", content="x")],
                limits,
                run_id=run,
                completion=completed_by("p"),
            )
            await sa.commit()
        return waiters

    try:
        assert await save_a_turn() is False  # nothing queued
        job = await queue.submit(thread, "queued job")
        assert await save_a_turn() is False  # its run waits for a delivery, not a release
        await conn.execute("UPDATE jobs SET status = 'running' WHERE id = $1", job.id)
        assert await save_a_turn() is True  # a worker took it: its run waits for the thread
        await conn.execute("UPDATE jobs SET status = 'succeeded' WHERE id = $1", job.id)
        await conn.execute("UPDATE runs SET status = 'completed' WHERE id = $1", job.run_id)
        assert await save_a_turn() is False
        await conn.execute(
            "INSERT INTO runs (tenant_id, thread_id, agent_id, status, input) "
            "SELECT tenant_id, id, agent_id, 'queued', 'caller' FROM threads WHERE id = $1",
            thread,
        )
        assert await save_a_turn() is True  # a caller waits
    finally:
        await conn.close()


async def test_a_run_that_cannot_start_does_not_stop_the_claim(
    store: AgentStore, queue: RedisJobQueue
) -> None:
    """When the unique index of active runs refuses the run's start (another run took
    the thread after the statement's snapshot), the job is still taken, in a transaction
    of its own, and its run stays queued for the worker's wait."""
    (thread,) = await make_threads(store, 1)
    job = await queue.submit(thread, "hello")
    conn = await asyncpg.connect(str(store.settings.database_url))
    try:
        await conn.execute(
            "CREATE FUNCTION refuse_start() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "RAISE unique_violation USING MESSAGE = 'another run is active'; END $$; "
            "CREATE TRIGGER refuse_start BEFORE UPDATE ON runs FOR EACH ROW "
            "WHEN (NEW.status = 'in_progress') EXECUTE FUNCTION refuse_start()"
        )
        claim = await queue.claim(delivery_of(queue, job), "worker-a")
        assert claim.verdict == "run" and claim.job is not None and claim.started is None
        assert (claim.job.status, claim.job.worker) == ("running", "worker-a")
        run = await conn.fetchrow("SELECT status, owner FROM runs WHERE id = $1", job.run_id)
        assert run is not None and (run["status"], run["owner"]) == ("queued", None)
    finally:
        await conn.close()


async def _claimed(queue: RedisJobQueue, job: JobRecord) -> JobRecord:
    claim = await queue.claim(delivery_of(queue, job), "worker-a")
    assert claim.verdict == "run" and claim.job is not None
    return claim.job


def _succeeded(job: JobRecord) -> JobSuccess:
    success = rows.success_in_turn(job, "worker-a")
    success.result = {"content": "ok"}
    return success


async def _floor(store: AgentStore, thread: UUID) -> Any:
    return (await row(store, "SELECT jobs_floor FROM threads WHERE id = $1", thread))[0]


async def test_a_jobs_save_raises_its_threads_floor_to_the_next_job(
    store: AgentStore, queue: RedisJobQueue
) -> None:
    """Migration 0014: the save of a job's turn moves the thread's floor to the thread's
    next unfinished job, and past every job when none is left."""
    (thread,) = await make_threads(store, 1)
    first, owner = await _running_job(store, queue, thread, "first")
    second = await queue.submit(thread, "second")
    third = await queue.submit(thread, "third")
    unset = await row(store, "SELECT jobs_floor = '-infinity' FROM threads WHERE id = $1", thread)
    assert unset[0] is True  # no job has finished yet

    running = first
    for following in (second, third):
        await _save(store, thread, running, owner, _succeeded(running))
        assert await _floor(store, thread) == following.created_at
        running = await _claimed(queue, following)
    await _save(store, thread, running, owner, _succeeded(running))
    after_all = await _floor(store, thread)
    assert third.created_at is not None and after_all > third.created_at

    # A job enqueued after them is above the floor, the thread's head, and runs.
    fourth = await queue.submit(thread, "fourth")
    assert fourth.created_at is not None and fourth.created_at >= after_all
    await _claimed(queue, fourth)


async def test_a_new_job_is_never_below_its_threads_floor(
    store: AgentStore, queue: RedisJobQueue
) -> None:
    """A clock behind the floor (stepped back, or another server's) still enqueues above
    it: the job gets the floor's instant, is its thread's head, and can be claimed."""
    (thread,) = await make_threads(store, 1)
    ahead = await row(
        store,
        "UPDATE threads SET jobs_floor = now() + interval '1 hour' WHERE id = $1 "
        "RETURNING jobs_floor",
        thread,
    )
    job = await queue.submit(thread, "hello")
    assert job.created_at == ahead["jobs_floor"]
    await _claimed(queue, job)


async def test_a_jobs_lookups_start_at_the_floor_not_at_the_threads_first_job(
    store: AgentStore,
) -> None:
    """The lookups of a thread's unfinished jobs read about as many index entries for
    its 60th job as for its first: they start at the floor, past the entries that
    finished jobs left in ``ix_jobs_thread_unfinished``.

    A snapshot held open meanwhile keeps every finished job's entries alive, as a busy
    thread does (PostgreSQL marks an entry dead for later scans only when nothing can
    still see its row and the page did not change in between). Without the floor, each
    job's lookups read every entry of the jobs before it: about 5 * 2 * 60 * 59 / 2
    entries in all, against about 20 per job with it."""
    jobs = 60
    (thread,) = await make_threads(store, 1)
    for i in range(jobs):
        await store.enqueue_run(thread, f"q{i}")
    url = str(store.settings.database_url)
    old_snapshot = await asyncpg.connect(url)
    try:
        await old_snapshot.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        await old_snapshot.fetchval("SELECT count(*) FROM jobs")
        stats = await WorkerPool(store, WorkerConfig(burst=True, poll_interval=0.05)).run()
        assert stats.outcomes == {"succeeded": jobs}
    finally:
        await old_snapshot.close()
    await store.engine.dispose()  # every backend leaves, flushing its statistics
    reader = await asyncpg.connect(url)
    try:
        read = None
        for _ in range(50):  # a backend flushes on exit, just after its disconnection
            await reader.execute("SELECT pg_stat_clear_snapshot()")
            read = await reader.fetchval(
                "SELECT idx_tup_read FROM pg_stat_user_indexes "
                "WHERE indexrelname = 'ix_jobs_thread_unfinished'"
            )
            if read and read >= jobs:
                break
            await asyncio.sleep(0.1)
    finally:
        await reader.close()
    assert read is not None and jobs <= read < 40 * jobs, read


async def test_the_hot_functions_plan_their_statements_once_per_session(
    store: AgentStore,
) -> None:
    # Migration 0015: their statements are lookups and writes by key, and five custom
    # plans per statement and session cost about 1 ms of PostgreSQL CPU per job with four
    # worker processes. A migration that redefines one of them (CREATE OR REPLACE drops
    # a function's settings) must set it again.
    found = await row(
        store,
        "SELECT array_agg(proname::text ORDER BY proname) FILTER (WHERE "
        "  proconfig @> ARRAY['plan_cache_mode=force_generic_plan']) AS generic, "
        "array_agg(proname::text ORDER BY proname) AS every "
        "FROM pg_proc WHERE proname LIKE 'ai\\_agents\\_%' AND prorettype <> 'trigger'::regtype",
    )
    assert found["every"] == [
        "ai_agents_append",
        "ai_agents_append_job",
        "ai_agents_enqueue_job",
        "ai_agents_enqueue_jobs",
        "ai_agents_finish_job",
    ]
    assert found["generic"] == found["every"]
