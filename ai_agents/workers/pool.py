"""WorkerPool: one process running queued agent runs, N at a time, losing none.

The loop reads job ids from the priority streams (weighted 6:3:1, so low priority is
never starved), claims each job in PostgreSQL, and runs its turn through the store's
runner with the idempotency key ``job:<id>``: a job delivered twice (its first worker
died after saving) replays the saved answer instead of answering twice.

While jobs run, a heartbeat refreshes them in PostgreSQL (``heartbeat_at``) and resets
their stream entries' idle time, so only the jobs of a dead or hung worker go idle; a
maintenance loop takes those over after the visibility timeout (XAUTOCLAIM), moves due
retries back into the streams, and rebuilds the queue from PostgreSQL if Redis lost it.

Shutdown (:meth:`WorkerPool.stop`, SIGTERM/SIGINT in ``python -m workers``) stops
reading, hands back entries not started yet, lets running jobs finish for the grace
period, then hands the rest back (cancelled mid-turn, nothing of it is saved) so other
workers run them at once.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import secrets
import socket
from collections.abc import Coroutine
from contextlib import suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from uuid import UUID

from redis.exceptions import RedisError, ResponseError

from ai_agents.db.messages import JobSuccess
from ai_agents.errors import AgentsError, ConfigurationError, StorageError
from ai_agents.jobs import rows
from ai_agents.jobs.queue import RedisJobQueue, job_queue
from ai_agents.jobs.records import JobRecord
from ai_agents.jobs.transport import (
    Delivery,
    StreamTransport,
    is_nogroup,
    weighted_preferences,
)
from ai_agents.memory.extraction import ExtractionResult, is_extraction, run_extraction
from ai_agents.observability.logs import log_fields
from ai_agents.observability.metrics import Metrics
from ai_agents.response import AgentResponse
from ai_agents.runner import RunOptions
from ai_agents.warmup import start_warm_up

if TYPE_CHECKING:
    from ai_agents.store import AgentStore

#: How long a job's run waits for its busy thread before the attempt fails (retried).
_JOB_BUSY_TIMEOUT = 3600.0

log = logging.getLogger("workers")


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    #: Jobs run at the same time by this process.
    concurrency: int = 10
    #: On shutdown, how long running jobs may take to finish before they are handed back.
    grace_period: float = 30.0
    #: Drain the queue, then return (tests, batch jobs).
    burst: bool = False
    #: Longest wait for new work in one read; also bounds how fast a stop is noticed.
    poll_interval: float = 1.0
    #: Defaults to a third of the queue's visibility timeout.
    heartbeat_interval: float | None = None
    #: Consumer name in the group and the ``worker`` column (default host:pid:random).
    name: str | None = None

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ConfigurationError("worker concurrency must be >= 1")
        if self.grace_period < 0 or self.poll_interval <= 0:
            raise ConfigurationError("worker grace_period must be >= 0 and poll_interval > 0")


@dataclass(slots=True)
class WorkerStats:
    """How this worker's job attempts ended (``succeeded``, ``retrying``, ``handed_back``...)."""

    outcomes: collections.Counter[str] = field(default_factory=collections.Counter)


@dataclass(slots=True)
class _Running:
    job: JobRecord
    delivery: Delivery
    started: float
    #: The start of the job's run, when the claim started it (``Claim.started``).
    run_start: Any | None = None
    #: The job's success, recorded by its turn's save (``rows.success_in_turn``).
    success: JobSuccess | None = None
    cancel: bool = False
    lost: bool = False


class WorkerPool:
    """Runs jobs from the store's queue until :meth:`stop` (or, in burst mode, drained)."""

    def __init__(
        self,
        store: AgentStore,
        config: WorkerConfig | None = None,
        *,
        queue: RedisJobQueue | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.store = store
        #: Job and run counters (``ai-agents worker --metrics-port``), if any.
        self.metrics = metrics
        self.config = config or WorkerConfig()
        self.queue = queue or job_queue(store)
        self.name = self.config.name or (
            f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        )
        self.stats = WorkerStats()
        visibility = self.queue.config.visibility_timeout
        self._heartbeat_every = self.config.heartbeat_interval or visibility / 3
        self._tick = min(1.0, visibility / 4)
        self._preferences = weighted_preferences(self.queue.config.weights)
        self._backlog: collections.deque[Delivery] = collections.deque()
        self._running: dict[UUID, _Running] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._cursors: dict[str, bytes] = {}
        self._stopping = asyncio.Event()
        self._now = asyncio.Event()
        self._changed = asyncio.Event()
        #: Set by a Redis error: the next maintenance tick resynchronises the queue.
        self._resync = False
        self._server: str | None = None  # replication id of the job keys' server

    @property
    def transport(self) -> StreamTransport:
        return self.queue.transport

    def stop(self, *, now: bool = False) -> None:
        """Stop taking jobs; running ones get the grace period (none when *now*)."""
        self._stopping.set()
        if now:
            self._now.set()
        self._changed.set()

    async def run(self) -> WorkerStats:
        """Take and run jobs until :meth:`stop` (or drained, in burst mode); then shut down."""
        try:
            await self.transport.ensure_groups()
            await self.queue.check_transport(self.name)
        except (RedisError, OSError) as exc:
            raise StorageError(f"the worker cannot use Redis: {exc}") from exc
        log.info(
            "worker started worker=%s concurrency=%d burst=%s",
            self.name,
            self.config.concurrency,
            self.config.burst,
        )
        warming = start_warm_up()  # the SDK and tokenizers, off the loop
        warming.add_done_callback(self._warmed_up)
        heartbeat = self._background(self._heartbeats())
        maintenance = self._background(self._maintenance())
        try:
            await self._dispatch()
        except asyncio.CancelledError:
            self.stop(now=True)
            raise
        finally:
            await self._shutdown(heartbeat, maintenance)
            await asyncio.gather(warming, return_exceptions=True)
        return self.stats

    def _warmed_up(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is None:
            log.info("worker warmed up worker=%s (vendor SDKs and tokenizers loaded)", self.name)

    # --- reading and dispatching --------------------------------------------------------

    async def _dispatch(self) -> None:
        while await self._free_slot():
            if not self._backlog:
                self._backlog.extend(await self._fetch(self.config.concurrency - len(self._tasks)))
            if self._backlog:
                self._start(self._backlog.popleft())
            elif self.config.burst and not self._tasks and await self._drained():
                return

    async def _free_slot(self) -> bool:
        while len(self._tasks) >= self.config.concurrency and not self._stopping.is_set():
            self._changed.clear()
            await self._changed.wait()
        return not self._stopping.is_set()

    async def _fetch(self, count: int) -> list[Delivery]:
        try:
            found: list[Delivery] = await self.transport.read(
                self.name, count, next(self._preferences)
            )
            if not found:
                block_ms = int(self.config.poll_interval * 1000)
                found = await self.transport.read_blocking(self.name, block_ms)
            return found
        except (RedisError, OSError) as exc:
            await self._recover(exc, "reading jobs")
            return []

    async def _recover(self, exc: BaseException, doing: str) -> None:
        """Re-create missing groups (Redis lost them) or wait a moment before retrying."""
        if isinstance(exc, ResponseError) and is_nogroup(exc):
            try:
                await self.transport.ensure_groups()
                await self.queue.check_transport(self.name)
                return
            except (AgentsError, RedisError, OSError) as again:
                exc = again
        log.warning("%s failed, retrying: %s", doing, exc)
        self._resync = True  # (a failover may have lost the last writes)
        with suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), self.config.poll_interval)

    async def _drained(self) -> bool:
        try:
            return bool(await self.transport.idle())
        except (RedisError, OSError) as exc:
            await self._recover(exc, "checking for remaining jobs")
            return False

    def _start(self, delivery: Delivery) -> None:
        task = asyncio.get_running_loop().create_task(self._process(delivery))
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._changed.set()
        if not task.cancelled() and task.exception() is not None:
            log.error("job task crashed", exc_info=task.exception())

    # --- one job ------------------------------------------------------------------------

    async def _process(self, delivery: Delivery) -> None:
        with log_fields(job_id=str(delivery.job_id), worker=self.name):
            await self._attempt(delivery)

    async def _attempt(self, delivery: Delivery) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            claim = await self.queue.claim(delivery, self.name)
        except Exception as exc:  # the entry stays pending: reclaimed after the timeout
            log.error("claiming job %s failed: %s", delivery.job_id, exc)
            return
        if claim.verdict != "run":
            if claim.job is not None and claim.verdict in ("cancelled", "failed"):
                self._log_job(claim.verdict, claim.job, started)
            else:
                log.debug("job %s not run: %s", delivery.job_id, claim.verdict)
            return
        assert claim.job is not None
        running = _Running(claim.job, delivery, started, claim.started)
        self._running[claim.job.id] = running
        try:
            outcome = await self._execute(running)
            settled = await self.queue.settle(
                running.job, delivery, self.name, outcome, running.success
            )
        except asyncio.CancelledError:
            await self._hand_back(running)
            raise
        except Exception as exc:
            log.error(
                "job %s: recording its outcome failed (retried after the visibility timeout): %s",
                running.job.id,
                exc,
            )
            return
        finally:
            self._running.pop(claim.job.id, None)
        error = outcome if isinstance(outcome, BaseException) else None
        self._log_job(settled.outcome, settled.job or running.job, started, error, settled.retry_in)
        self._count_run(outcome, settled.outcome, loop.time() - started)

    def _count_run(
        self, outcome: AgentResponse | ExtractionResult | Exception, settled: str, seconds: float
    ) -> None:
        if self.metrics is None:
            return
        if isinstance(outcome, Exception):
            self.metrics.run_failed(mode="job", code=getattr(outcome, "code", "internal_error"))
        elif isinstance(outcome, AgentResponse) and settled == "succeeded":
            if outcome.status == "requires_action":
                return  # counted when its outputs complete it
            self.metrics.run_finished(
                mode="job",
                provider=outcome.provider,
                model=outcome.model,
                seconds=seconds,
                input_tokens=outcome.usage.input_tokens,
                output_tokens=outcome.usage.output_tokens,
                cost=outcome.cost,
            )

    async def _execute(self, running: _Running) -> AgentResponse | ExtractionResult | Exception:
        job = running.job
        if is_extraction(job):  # memory extraction after a turn: no run of its own
            try:
                return await run_extraction(self.store.for_tenant(job.tenant_id), job)
            except Exception as exc:
                return exc

        async def should_cancel() -> bool:
            if running.lost or running.cancel:
                return True
            # A job's run is cancelled as a run (the interrupt on Redis, the run's lease
            # heartbeat); only a job queued before runs were rows needs the job's own flag.
            return job.run_id is None and await self.queue.cancel_requested(job.id)

        view = self.store.for_tenant(job.tenant_id)
        options = RunOptions(
            on_busy="enqueue",
            idempotency_key=f"job:{job.id}",
            should_cancel=should_cancel,
            metadata={**job.metadata, "job_id": str(job.id)},
        )
        try:
            if job.run_id is None:  # a job queued before runs were rows
                return await view.runner.run(view._scope, job.thread_id, job.input, options)
            # Waiting for a busy thread is bounded by the visibility timeout's heartbeats,
            # not by a caller: the job waits as long as it takes.
            options.busy_timeout = _JOB_BUSY_TIMEOUT
            running.success = rows.success_in_turn(job, self.name)
            return await view.runner.run_job(
                view._scope,
                job.run_id,
                job.thread_id,
                options,
                started=running.run_start,
                success=running.success,
            )
        except Exception as exc:
            return exc

    async def _hand_back(self, running: _Running) -> None:
        try:
            handed = await self.queue.hand_back(running.job, running.delivery, self.name)
        except Exception as exc:  # the entry stays pending: reclaimed after the timeout
            log.error("job %s: hand back failed: %s", running.job.id, exc)
            return
        self._log_job("handed_back" if handed else "lost", running.job, running.started)

    def _log_job(
        self,
        outcome: str,
        job: JobRecord,
        started: float,
        error: BaseException | None = None,
        retry_in: float | None = None,
    ) -> None:
        self.stats.outcomes[outcome] += 1
        seconds = asyncio.get_running_loop().time() - started
        if self.metrics is not None:
            kind = "extraction" if is_extraction(job) else "run"
            self.metrics.job_finished(
                outcome=outcome, kind=kind, priority=job.priority, seconds=seconds
            )
        fields: dict[str, Any] = {
            "job_id": str(job.id),
            "thread_id": str(job.thread_id),
            "tenant_id": job.tenant_id,
            "priority": job.priority,
            "attempt": job.attempts,
            "max_attempts": job.max_attempts,
            "duration_ms": round(seconds * 1000, 1),
            "outcome": outcome,
            "worker": self.name,
        }
        if job.error is not None and outcome != "succeeded":
            fields["error_code"] = job.error.code
        if retry_in is not None:
            fields["retry_in_s"] = round(retry_in, 2)
        level = logging.INFO if outcome in ("succeeded", "handed_back") else logging.WARNING
        text = " ".join(f"{k}={v}" for k, v in fields.items())
        log.log(level, "job %s %s", outcome, text, extra=fields, exc_info=_unexpected(error))

    # --- background loops ---------------------------------------------------------------

    def _background(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        return asyncio.get_running_loop().create_task(coro)

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(self._heartbeat_every)
            try:
                running = dict(self._running)
                if running:
                    owned = await self.queue.heartbeat(self.name, list(running))
                    for job_id, item in running.items():
                        if job_id in owned:
                            item.cancel = item.cancel or owned[job_id]
                        elif job_id in self._running:
                            item.lost = True  # another worker took it over
                held = [r.delivery for r in self._running.values() if not r.lost]
                await self.transport.touch(self.name, [*held, *self._backlog])
            except Exception as exc:
                log.warning("heartbeat failed: %s", exc)

    async def _maintenance(self) -> None:
        visibility_ms = int(self.queue.config.visibility_timeout * 1000)
        while True:
            await asyncio.sleep(self._tick)
            try:
                await self.queue.check_transport(self.name)
                server = await self.transport.server_identity()
                if self._server is not None and server != self._server:
                    log.warning(
                        "the Redis server of the job queue changed (failover or restart): "
                        "resynchronising the queue from PostgreSQL"
                    )
                    self._resync = True
                self._server = server
                if self._resync:
                    self._resync = False
                    await self.queue.check_transport(self.name, resync=True)
                await self.transport.promote_due()
                free = self.config.concurrency - len(self._tasks) - len(self._backlog)
                if free > 0 and not self._stopping.is_set():
                    found = await self.transport.reclaim(
                        self.name, free, visibility_ms, self._cursors
                    )
                    if found:
                        log.info(
                            "reclaimed %d job(s) from workers that stopped heartbeating", len(found)
                        )
                        self._backlog.extend(found)
                        self._changed.set()
            except (RedisError, OSError) as exc:
                await self._recover(exc, "queue maintenance")
            except Exception as exc:
                log.warning("queue maintenance failed: %s", exc)

    # --- shutdown -----------------------------------------------------------------------

    async def _shutdown(
        self, heartbeat: asyncio.Task[None], maintenance: asyncio.Task[None]
    ) -> None:
        self.stop()
        await _cancel(maintenance)
        await self._requeue_backlog()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.grace_period
        if self._tasks:
            log.info("worker stopping: waiting for %d running job(s)", len(self._tasks))
        while self._tasks and not self._now.is_set() and loop.time() < deadline:
            self._changed.clear()
            with suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), deadline - loop.time())
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await _cancel(heartbeat)
        with suppress(RedisError, OSError):
            await self.transport.leave(self.name)
        log.info(
            "worker stopped worker=%s %s",
            self.name,
            " ".join(f"{k}={v}" for k, v in sorted(self.stats.outcomes.items())),
        )

    async def _requeue_backlog(self) -> None:
        waiting = list(self._backlog)
        self._backlog.clear()
        try:
            await self.transport.requeue(waiting)
        except (RedisError, OSError) as exc:  # still pending: reclaimed after the timeout
            log.warning("could not hand back %d unstarted job(s): %s", len(waiting), exc)


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with suppress(asyncio.CancelledError):
        await task


def _unexpected(error: BaseException | None) -> BaseException | None:
    """Tracebacks only for errors that are not the library's own (those explain themselves)."""
    return error if error is not None and not isinstance(error, AgentsError) else None
