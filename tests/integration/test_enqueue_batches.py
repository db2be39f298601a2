"""Issue 16 item 3: enqueues in flight together share a statement and a commit.

Jobs committed by one transaction carry its id (``xmin``): the tests count transactions
that way, read the jobs and their runs as committed, and check what Redis was given
(only each thread's head is published).
"""

from __future__ import annotations

import asyncio
from uuid import UUID

import asyncpg
import pytest

from ai_agents import AgentStore
from ai_agents.errors import NotFoundError, ValidationError
from ai_agents.jobs.queue import QueueConfig, RedisJobQueue
from tests.integration.jobs_support import make_threads


@pytest.fixture
def queue(store: AgentStore) -> RedisJobQueue:
    queue = RedisJobQueue(store, QueueConfig())
    store.use_job_queue(queue)
    return queue


async def committed(store: AgentStore, job_ids: list[UUID]) -> list[asyncpg.Record]:
    """The jobs as committed, in the order of their thread and their enqueue."""
    conn = await asyncpg.connect(str(store.settings.database_url))
    try:
        return await conn.fetch(
            "SELECT j.id, j.thread_id, j.input, j.xmin::text AS tx, j.run_id, r.status AS run "
            "FROM jobs j LEFT JOIN runs r ON r.id = j.run_id "
            "WHERE j.id = ANY($1) ORDER BY j.thread_id, j.created_at",
            job_ids,
        )
    finally:
        await conn.close()


async def test_jobs_enqueued_together_share_transactions_and_keep_their_order(
    store: AgentStore, queue: RedisJobQueue
) -> None:
    threads = await make_threads(store, 4)
    texts = [(threads[i % 4], f"q{i:02d}") for i in range(40)]
    job_ids = await asyncio.gather(*(store.enqueue_run(t, text) for t, text in texts))

    rows = await committed(store, list(job_ids))
    assert len(rows) == 40 and len({r["id"] for r in rows}) == 40
    assert all(r["run"] == "queued" for r in rows)  # each with its run
    # Two enqueues went alone (the free statements); the 38 others waited and went
    # together (at most 64 in a statement): far fewer transactions than jobs.
    assert len({r["tx"] for r in rows}) <= 4
    # Each thread's jobs in the order they were asked for, and only its first published.
    for thread in threads:
        mine = [r for r in rows if r["thread_id"] == thread]
        assert [r["input"] for r in mine] == [text for t, text in texts if t == thread]
    queued = await queue.transport.queued_job_ids()
    firsts = {[r for r in rows if r["thread_id"] == t][0]["id"] for t in threads}
    assert queued == firsts


async def test_a_job_for_a_thread_its_tenant_cannot_see_fails_alone_in_its_batch(
    store: AgentStore, queue: RedisJobQueue
) -> None:
    threads = await make_threads(store, 3)
    stranger = store.for_tenant("another-tenant")
    calls = [store.enqueue_run(threads[i % 3], f"q{i}") for i in range(6)]
    calls.insert(4, stranger.enqueue_run(threads[0], "not yours"))
    answers = await asyncio.gather(*calls, return_exceptions=True)

    assert isinstance(answers[4], NotFoundError)
    job_ids = [a for a in answers if isinstance(a, UUID)]
    assert len(job_ids) == 6
    rows = await committed(store, job_ids)
    assert len(rows) == 6 and all(r["input"] != "not yours" for r in rows)
    assert len({r["tx"] for r in rows}) < 6  # the refused job was in a batch


async def test_metadata_with_a_nul_character_is_refused_before_the_database(
    store: AgentStore, queue: RedisJobQueue
) -> None:
    (thread,) = await make_threads(store, 1)
    with pytest.raises(ValidationError, match="NUL"):
        await store.enqueue_run(thread, "hello", metadata={"note": "a\x00b"})
    with pytest.raises(ValidationError, match="NUL"):
        await store.enqueue_run(thread, "hello", metadata={"a\x00b": [1]})
    # A backslash and "u0000" as text is no NUL: it is stored as it is.
    job = await store.get_job(await store.enqueue_run(thread, "hi", metadata={"n": "\\u0000"}))
    assert job.metadata == {"n": "\\u0000"}
