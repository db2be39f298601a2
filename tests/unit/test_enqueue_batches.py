"""The enqueue batcher's rules, with senders that record what they are asked to send.

(The statements themselves, against PostgreSQL, are in
``tests/integration/test_enqueue_batches.py``.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from uuid import UUID, uuid4

import asyncpg
import pytest

from ai_agents.errors import NotFoundError, StorageError
from ai_agents.jobs.enqueue_batches import EnqueueBatcher, Enqueued
from ai_agents.jobs.records import JobRecord
from ai_agents.jobs.rows import NewJob


def new_job(text: str, thread: UUID | None = None) -> NewJob:
    return NewJob("default", thread or uuid4(), text, "normal", 3, "{}", True, {})


def record(job: NewJob) -> JobRecord:
    return JobRecord(
        id=uuid4(),
        tenant_id="default",
        thread_id=job.thread_id,
        input=job.input,
        priority="normal",
        status="queued",
        attempts=0,
        max_attempts=3,
    )


class Senders:
    """Answers each job with a record of it; a job whose input is ``hidden`` has no row.

    ``gate`` holds every statement until set; ``fail_many`` makes batches raise it.
    """

    def __init__(self) -> None:
        self.alone: list[str] = []
        self.batches: list[list[str]] = []
        self.gate = asyncio.Event()
        self.fail_many: BaseException | None = None

    async def one(self, job: NewJob) -> Enqueued:
        self.alone.append(job.input)
        await self.gate.wait()
        if job.input == "hidden":
            raise NotFoundError("thread", job.thread_id)
        return record(job), True

    async def many(self, jobs: Sequence[NewJob]) -> list[Enqueued | None]:
        self.batches.append([j.input for j in jobs])
        await self.gate.wait()
        if self.fail_many is not None:
            raise self.fail_many
        return [None if j.input == "hidden" else (record(j), False) for j in jobs]


async def started(
    senders: Senders, batcher: EnqueueBatcher, texts: list[str]
) -> list[asyncio.Task[Enqueued]]:
    tasks = [asyncio.create_task(batcher.enqueue(new_job(t))) for t in texts]
    await asyncio.sleep(0)  # each has reached its statement or the queue
    return tasks


async def test_an_enqueue_alone_goes_at_once_in_a_statement_of_its_own() -> None:
    senders = Senders()
    senders.gate.set()
    batcher = EnqueueBatcher(senders.one, senders.many, max_in_flight=2)
    job, is_head = await batcher.enqueue(new_job("a"))
    assert job.input == "a" and is_head
    assert senders.alone == ["a"] and senders.batches == []


async def test_enqueues_that_find_every_statement_busy_go_together() -> None:
    senders = Senders()
    batcher = EnqueueBatcher(senders.one, senders.many, max_in_flight=2)
    tasks = await started(senders, batcher, ["a", "b", "c", "d", "e"])
    assert senders.alone == ["a", "b"]  # the two free statements
    senders.gate.set()
    answers = await asyncio.gather(*tasks)
    assert [job.input for job, _ in answers] == ["a", "b", "c", "d", "e"]
    assert senders.batches == [["c", "d", "e"]]


async def test_a_batch_is_cut_at_max_batch() -> None:
    senders = Senders()
    batcher = EnqueueBatcher(senders.one, senders.many, max_in_flight=1, max_batch=2)
    tasks = await started(senders, batcher, ["a", "b", "c", "d", "e", "f"])
    senders.gate.set()
    await asyncio.gather(*tasks)
    assert senders.alone == ["a", "f"]  # the last one left over went alone
    assert senders.batches == [["b", "c"], ["d", "e"]]


async def test_a_job_without_its_thread_fails_alone_in_its_batch() -> None:
    senders = Senders()
    batcher = EnqueueBatcher(senders.one, senders.many, max_in_flight=1)
    tasks = await started(senders, batcher, ["a", "b", "hidden", "c"])
    senders.gate.set()
    answers = await asyncio.gather(*tasks, return_exceptions=True)
    assert senders.batches == [["b", "hidden", "c"]]
    assert isinstance(answers[2], NotFoundError)
    assert [a[0].input for a in answers if isinstance(a, tuple)] == ["a", "b", "c"]


async def test_a_batch_the_server_refused_is_sent_again_one_job_at_a_time() -> None:
    senders = Senders()
    refused = asyncpg.DeadlockDetectedError("deadlock detected")
    try:
        raise StorageError("database error during enqueue jobs") from refused
    except StorageError as exc:
        senders.fail_many = exc
    batcher = EnqueueBatcher(senders.one, senders.many, max_in_flight=1)
    tasks = await started(senders, batcher, ["a", "b", "hidden", "c"])
    senders.gate.set()
    answers = await asyncio.gather(*tasks, return_exceptions=True)
    assert senders.alone == ["a", "b", "hidden", "c"]  # the batch's three, again alone
    assert isinstance(answers[2], NotFoundError)  # each caller gets its own answer
    assert [a[0].input for a in answers if isinstance(a, tuple)] == ["a", "b", "c"]


async def test_a_batch_whose_connection_failed_is_not_sent_again() -> None:
    senders = Senders()
    senders.fail_many = StorageError("database unavailable during enqueue jobs")
    batcher = EnqueueBatcher(senders.one, senders.many, max_in_flight=1)
    tasks = await started(senders, batcher, ["a", "b", "c"])
    senders.gate.set()
    answers = await asyncio.gather(*tasks, return_exceptions=True)
    assert not isinstance(answers[0], BaseException)
    assert answers[1] is senders.fail_many and answers[2] is senders.fail_many
    assert senders.alone == ["a"]  # whether it committed is unknown: nothing twice


async def test_a_batch_ended_by_a_server_shutdown_is_not_sent_again() -> None:
    """The server answered, but about the connection (57P01): the commit is unknown."""
    senders = Senders()
    try:
        raise StorageError("database error during enqueue jobs") from (
            asyncpg.AdminShutdownError("terminating connection due to administrator command")
        )
    except StorageError as exc:
        senders.fail_many = exc
    batcher = EnqueueBatcher(senders.one, senders.many, max_in_flight=1)
    tasks = await started(senders, batcher, ["a", "b", "c"])
    senders.gate.set()
    answers = await asyncio.gather(*tasks, return_exceptions=True)
    assert answers[1] is senders.fail_many and answers[2] is senders.fail_many
    assert senders.alone == ["a"]


async def test_a_caller_that_gave_up_while_waiting_sends_nothing() -> None:
    senders = Senders()
    batcher = EnqueueBatcher(senders.one, senders.many, max_in_flight=1)
    tasks = await started(senders, batcher, ["a", "b", "c"])
    tasks[1].cancel()
    senders.gate.set()
    answers = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(answers[1], asyncio.CancelledError)
    assert senders.alone == ["a", "c"] and senders.batches == []


def test_a_batcher_used_from_a_new_event_loop_starts_afresh() -> None:
    """A loop closed with a statement in flight must not leave the next loop waiting."""
    senders = Senders()
    batcher = EnqueueBatcher(senders.one, senders.many, max_in_flight=1)

    async def abandoned() -> None:
        await started(senders, batcher, ["a", "b"])  # "a" holds the only statement

    loop = asyncio.new_event_loop()
    loop.run_until_complete(abandoned())
    loop.close()

    async def again() -> Enqueued:
        senders.gate = asyncio.Event()  # (the old one belongs to the closed loop)
        senders.gate.set()
        return await asyncio.wait_for(batcher.enqueue(new_job("c")), 5)

    job, _ = asyncio.run(again())
    assert job.input == "c"


@pytest.mark.parametrize("max_in_flight", [1, 3])
async def test_every_caller_gets_its_own_job(max_in_flight: int) -> None:
    senders = Senders()
    senders.gate.set()
    batcher = EnqueueBatcher(senders.one, senders.many, max_in_flight=max_in_flight)
    texts = [f"q{i}" for i in range(50)]
    answers = await asyncio.gather(*(batcher.enqueue(new_job(t)) for t in texts))
    assert [job.input for job, _ in answers] == texts
    sent = senders.alone + [t for batch in senders.batches for t in batch]
    assert sorted(sent) == sorted(texts)  # each once
