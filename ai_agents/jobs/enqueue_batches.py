"""Enqueues in flight together share a statement and a commit (group commit).

A producer that enqueues many jobs at once (a backend fanning out work, the REST API
under load) would pay a round trip, a server-side function call and a commit (a WAL
flush) per job. :class:`EnqueueBatcher` keeps at most ``max_in_flight`` enqueue
statements running per queue: an enqueue that finds one free goes at once, in a
statement of its own (batching never adds a wait); enqueues that arrive while all are
busy wait for the next free one and go together (up to ``max_batch`` jobs,
``ai_agents_enqueue_jobs``, migration 0013).

A batch is one transaction. When the server refuses it (a deadlock, one job's bad
value), nothing of it was kept, and each of its jobs is sent again alone, so each caller
gets its own answer or its own error. When the connection fails instead, whether the
commit happened is unknown (so after a server shutdown too), as for a single enqueue: every caller of the batch gets the
error, and nothing is sent twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from ai_agents.db.engine import refused_by_server
from ai_agents.errors import NotFoundError
from ai_agents.jobs.records import JobRecord
from ai_agents.jobs.rows import NewJob

__all__ = ["EnqueueBatcher"]

Enqueued = tuple[JobRecord, bool]  # the job as committed, and whether it is its thread's head
SendOne = Callable[[NewJob], Awaitable[Enqueued]]
SendMany = Callable[[Sequence[NewJob]], Awaitable[list[Enqueued | None]]]


class EnqueueBatcher:
    """Sends enqueues alone while statements are free, together while they are not."""

    def __init__(
        self, send_one: SendOne, send_many: SendMany, *, max_in_flight: int = 2, max_batch: int = 64
    ) -> None:
        self._send_one = send_one
        self._send_many = send_many
        self.max_in_flight = max_in_flight
        self.max_batch = max_batch
        self._loop: asyncio.AbstractEventLoop | None = None
        self._in_flight = 0
        self._waiting: list[tuple[NewJob, asyncio.Future[Enqueued]]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def enqueue(self, job: NewJob) -> Enqueued:
        """Enqueue *job*; answers it as committed and whether it is its thread's head."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # first use, or another event loop: the old one's are gone
            self._loop, self._in_flight, self._waiting, self._tasks = loop, 0, [], set()
        if self._in_flight < self.max_in_flight and not self._waiting:
            self._in_flight += 1
            try:
                return await self._send_one(job)
            finally:
                if loop is self._loop:
                    self._in_flight -= 1
                    self._send_waiting()
        future: asyncio.Future[Enqueued] = loop.create_future()
        self._waiting.append((job, future))
        # (Cancelled while it waits or while its batch runs: the job may exist all the
        # same, as with a single enqueue cancelled after its statement was sent.)
        return await future

    def _send_waiting(self) -> None:
        """Start a batch of the waiting enqueues for each free statement."""
        if self._loop is None or self._loop.is_closed():
            return  # (a caller ended by its loop's end: that loop's batches are gone)
        while self._waiting and self._in_flight < self.max_in_flight:
            batch = [(j, f) for j, f in self._waiting[: self.max_batch] if not f.done()]
            del self._waiting[: self.max_batch]
            if not batch:
                continue  # their callers gave up
            self._in_flight += 1
            task = self._loop.create_task(self._send(batch))
            self._tasks.add(task)
            task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if task.get_loop() is self._loop:
            self._in_flight -= 1
            self._send_waiting()

    async def _send(self, batch: list[tuple[NewJob, asyncio.Future[Enqueued]]]) -> None:
        try:
            await self._send_batch(batch)
        except Exception as exc:  # never leave a caller waiting
            for _, future in batch:
                _fail(future, exc)
        except BaseException:  # cancelled (its loop ends): so are its callers
            for _, future in batch:
                if not future.done():
                    future.cancel()
            raise

    async def _send_batch(self, batch: list[tuple[NewJob, asyncio.Future[Enqueued]]]) -> None:
        if len(batch) == 1:
            await self._alone(*batch[0])
            return
        try:
            answers = await self._send_many([job for job, _ in batch])
        except Exception as exc:
            if refused_by_server(exc):  # rolled back: each goes alone, for its own answer
                for job, future in batch:  # (one after the other, in this statement's turn)
                    await self._alone(job, future)
                return
            for _, future in batch:
                _fail(future, exc)
            return
        for (job, future), answer in zip(batch, answers, strict=True):
            if answer is None:
                _fail(future, NotFoundError("thread", job.thread_id))
            else:
                _answer(future, answer)

    async def _alone(self, job: NewJob, future: asyncio.Future[Enqueued]) -> None:
        try:
            answer = await self._send_one(job)
        except Exception as exc:
            _fail(future, exc)
        else:
            _answer(future, answer)


def _answer(future: asyncio.Future[Enqueued], answer: Enqueued) -> None:
    if not future.done():  # (done: its caller was cancelled)
        future.set_result(answer)


def _fail(future: asyncio.Future[Enqueued], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)
