"""The consuming side of the job queue: what workers (``workers/``) call on the queue.

:class:`JobConsumer` holds it: rebuilding the Redis side from PostgreSQL
(:meth:`~JobConsumer.check_transport`), taking a delivered job (:meth:`~JobConsumer.claim`),
heartbeats, and recording how an attempt ended (:meth:`~JobConsumer.settle`: success,
cancel, a retry after backoff, or failure; :meth:`~JobConsumer.hand_back` on shutdown).
:class:`~ai_agents.jobs.queue.RedisJobQueue` (the producer API) inherits it, so producers
and workers share one queue object, configuration and transport.

Whether a failed attempt is retried is :func:`ai_agents.providers.retry.is_retryable`
(``attempt="job"``); the wait before it is :func:`ai_agents.providers.retry.backoff`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from uuid import UUID

from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncConnection

from ai_agents.db.engine import driver_connection, translate_errors
from ai_agents.db.messages import JobSuccess
from ai_agents.errors import AgentsError, RunCancelled
from ai_agents.jobs import rows
from ai_agents.jobs.records import JobError, JobRecord
from ai_agents.jobs.transport import Delivery, StreamTransport
from ai_agents.memory.extraction import ExtractionResult
from ai_agents.providers.retry import backoff, is_retryable
from ai_agents.response import AgentResponse

if TYPE_CHECKING:
    from ai_agents.jobs.queue import QueueConfig
    from ai_agents.store import AgentStore

__all__ = ["JobConsumer", "Settled"]

log = logging.getLogger("ai_agents.jobs")


@dataclass(frozen=True, slots=True)
class Settled:
    """How a worker's attempt ended, as recorded (``lost``: another worker owns the job)."""

    outcome: Literal["succeeded", "failed", "cancelled", "retrying", "lost"]
    job: JobRecord | None
    retry_in: float | None = None


class JobConsumer:
    """The worker side of :class:`~ai_agents.jobs.queue.RedisJobQueue` (its base class)."""

    store: AgentStore
    config: QueueConfig
    transport: StreamTransport

    @asynccontextmanager
    async def _tx(self, operation: str) -> AsyncIterator[AsyncConnection]:
        """One transaction (the producer side uses it too)."""
        with translate_errors(operation):
            async with self.store.engine.begin() as conn:
                yield conn

    @asynccontextmanager
    async def _driver(self, operation: str) -> AsyncIterator[Any]:
        """The asyncpg connection of a pooled one, for one statement (no transaction)."""
        with translate_errors(operation):
            async with driver_connection(self.store.engine) as apg:
                yield apg

    async def check_transport(self, worker: str, *, resync: bool = False) -> int:
        """Rebuild the Redis side from PostgreSQL if Redis lost it; returns jobs re-queued.

        *resync*: publish again every unfinished thread head missing from Redis even with
        the marker present (after a Redis outage: a failover to a replica may have lost
        the last writes, a job's stream entry among them). Extra entries are harmless:
        the claim in PostgreSQL runs a job once.
        """
        if resync:
            present = await self.transport.queued_job_ids()
            with translate_errors("list unfinished jobs"):
                async with self.store.engine.connect() as conn:
                    heads = await rows.heads(conn)
            again = [(job_id, p) for job_id, p in heads if job_id not in present]
            for job_id, priority in again:
                await self.transport.publish(job_id, priority)
            if again:
                log.warning(
                    "job queue resynchronised from PostgreSQL after a Redis outage: %d job(s) "
                    "published again",
                    len(again),
                )
            return len(again)
        if not await self.transport.claim_rebuild(worker):
            return 0
        try:
            await self.transport.ensure_groups()
            present = await self.transport.queued_job_ids()
            with translate_errors("list unfinished jobs"):
                async with self.store.engine.connect() as conn:
                    heads = await rows.heads(conn)
            missing = [(job_id, p) for job_id, p in heads if job_id not in present]
            for job_id, priority in missing:
                await self.transport.publish(job_id, priority)
        except BaseException:
            with suppress(RedisError):  # let this or another worker try again
                await self.transport.release_rebuild()
            raise
        if missing:
            log.warning(
                "job queue rebuilt from PostgreSQL (first start, or Redis lost its data): "
                "%d job(s) published again",
                len(missing),
            )
        return len(missing)

    async def claim(self, delivery: Delivery, worker: str) -> rows.Claim:
        """Take the delivered job for *worker* (verdict ``run``) or settle the delivery.

        A job taken at once has its run started in the same statement for this process's
        runner (``Claim.started``: what ``runs.rows.START`` answers), so the run's start
        costs no round trip of its own.
        """
        visibility = self.config.visibility_timeout
        runner = self.store.runner
        async with self._driver("claim job") as apg:
            taken = await rows.claim_and_start(
                apg,
                delivery.job_id,
                worker,
                visibility,
                owner=runner.supervisor.owner,
                lease=self.store.runtime.settings.run_lease_seconds,
            )
        if taken is not None:
            return rows.Claim("run", taken[0], started=taken[1])
        async with self._tx("claim job") as conn:
            claim = await rows.claim_slowly(conn, delivery.job_id, worker, visibility)
        if claim.verdict in ("missing", "blocked"):
            await self.transport.drop(delivery)
        elif claim.verdict in ("finished", "cancelled", "failed"):
            assert claim.job is not None
            await self.transport.finish(
                claim.job,
                delivery,
                dead_letter=claim.verdict == "failed",
                next_job=claim.next_head,
            )
        # "busy": another live worker runs it; the entry stays pending and is looked at
        # again after the visibility timeout (it is acknowledged once the job finished).
        return claim

    async def heartbeat(self, worker: str, job_ids: list[UUID]) -> dict[UUID, bool]:
        """Refresh *worker*'s running jobs; answers {still owned: cancel requested}."""
        async with self._tx("job heartbeat") as conn:
            return await rows.heartbeat(conn, worker, job_ids)

    async def cancel_requested(self, job_id: UUID) -> bool:
        try:
            return await self.transport.cancel_flagged(job_id)
        except RedisError:
            return False  # the heartbeat also brings the flag from PostgreSQL

    async def settle(
        self,
        job: JobRecord,
        delivery: Delivery,
        worker: str,
        outcome: AgentResponse | ExtractionResult | BaseException,
        success: JobSuccess | None = None,
    ) -> Settled:
        """Record how an attempt ended: success, cancel, a retry after backoff, or failure.

        *success*: what the run's turn was given to record the job's success with (see
        :func:`~ai_agents.jobs.rows.success_in_turn`); when it did, only Redis is told.
        """
        recorded = rows.recorded_success(success) if success is not None else None
        if isinstance(outcome, AgentResponse) and recorded is not None:
            return await self._finished("succeeded", recorded, delivery)
        if isinstance(outcome, AgentResponse | ExtractionResult):
            async with self._driver("finish job") as apg:
                done = await rows.finish(apg, job, worker, "succeeded", result=outcome.to_json())
            return await self._finished("succeeded", done, delivery)
        error = JobError.of(outcome)
        if isinstance(outcome, RunCancelled):
            async with self._driver("finish job") as apg:
                done = await rows.finish(apg, job, worker, "cancelled", error=error)
            return await self._finished("cancelled", done, delivery)
        if is_retryable(outcome, "job") and job.attempts < job.max_attempts:
            delay = self._backoff(job.attempts, outcome)
            async with self._tx("requeue job") as conn:
                again = await rows.requeue(conn, job.id, worker, error=error)
            if again is None:
                return Settled("lost", None)
            await self.transport.schedule_retry(delivery, delay)
            return Settled("retrying", again, delay)
        async with self._driver("finish job") as apg:
            done = await rows.finish(apg, job, worker, "failed", error=error)
        return await self._finished("failed", done, delivery)

    async def _finished(
        self,
        outcome: Literal["succeeded", "failed", "cancelled"],
        done: tuple[JobRecord | None, rows.Head | None],
        delivery: Delivery,
    ) -> Settled:
        job, next_job = done
        if job is None:
            return Settled("lost", None)
        await self.transport.finish(
            job, delivery, dead_letter=outcome == "failed", next_job=next_job
        )
        return Settled(outcome, job)

    async def hand_back(self, job: JobRecord, delivery: Delivery, worker: str) -> bool:
        """Give a started job back (shutdown): queued again at once, attempt not counted."""
        async with self._tx("hand back job") as conn:
            again = await rows.requeue(conn, job.id, worker, error=None)
        if again is None:
            return False
        await self.transport.requeue([delivery])
        return True

    def _backoff(self, attempt: int, exc: BaseException) -> float:
        cfg = self.config
        delay = backoff(attempt, cfg.retry_backoff, cfg.retry_backoff_max, jitter=0.5)
        if isinstance(exc, AgentsError) and exc.details.get("retry_after"):
            delay = max(delay, float(exc.details["retry_after"]))
        return float(delay)
