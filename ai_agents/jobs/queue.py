"""RedisJobQueue: background agent runs (design section 9), durable in PostgreSQL.

    job_id = await store.enqueue_run(thread_id, "Summarize the week", priority="high")
    record = await job_queue(store).get_result(job_id, timeout=60)   # waits; JobRecord
    record.status, record.attempts, record.response, record.error

Producers call :meth:`RedisJobQueue.enqueue`, :meth:`get_job`, :meth:`get_result` and
:meth:`cancel` (this module); workers (``workers/``) call :meth:`claim`, :meth:`settle`,
:meth:`hand_back` and :meth:`heartbeat` (:mod:`ai_agents.jobs.worker`, a base class of
:class:`RedisJobQueue`). PostgreSQL (the ``jobs`` table) is the record of
every job; Redis streams are only the transport (see :mod:`ai_agents.jobs.transport`),
so a flushed Redis loses no finished result and no queued job. Every job runs its turn
with the idempotency key ``job:<id>``: a job delivered twice saves its turn once.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any
from uuid import UUID

from redis.exceptions import RedisError

from ai_agents.db.engine import parse_uuid, translate_errors
from ai_agents.db.scope import Scope
from ai_agents.errors import ConfigurationError, NotFoundError, StorageError, ValidationError
from ai_agents.jobs import rows
from ai_agents.jobs.announcements import RECHECK_SECONDS, Announcements
from ai_agents.jobs.enqueue_batches import EnqueueBatcher
from ai_agents.jobs.records import JobError, JobRecord, JobTimeout
from ai_agents.jobs.tables import PRIORITIES, Priority
from ai_agents.jobs.transport import StreamTransport
from ai_agents.jobs.worker import JobConsumer
from ai_agents.runs.overrides import RunOverrides

if TYPE_CHECKING:
    from ai_agents.store import AgentStore

__all__ = ["JobError", "JobRecord", "JobTimeout", "QueueConfig", "RedisJobQueue", "job_queue"]

log = logging.getLogger("ai_agents.jobs")


@dataclass(frozen=True, slots=True)
class QueueConfig:
    """Deployment-wide queue settings; producers and every worker must agree on them."""

    #: How long finished records stay in the Redis result cache (PostgreSQL keeps them).
    result_ttl: float = 86_400.0
    #: Attempts per job before it fails for good (dead-letter stream).
    max_attempts: int = 3
    #: A job whose worker stopped heartbeating this long is taken over by another.
    visibility_timeout: float = 60.0
    #: Retry backoff: ``retry_backoff * 2**(attempt - 1)`` seconds (jittered), capped.
    retry_backoff: float = 2.0
    retry_backoff_max: float = 300.0
    #: Polling weights of the high, normal and low streams (low still gets 1 read in 10).
    weights: tuple[int, int, int] = (6, 3, 1)

    def __post_init__(self) -> None:
        for name in ("result_ttl", "visibility_timeout", "retry_backoff_max"):
            if not getattr(self, name) > 0:
                raise ConfigurationError(f"queue setting {name} must be > 0")
        if self.retry_backoff < 0:
            raise ConfigurationError("queue setting retry_backoff must be >= 0")
        if self.max_attempts < 1:
            raise ConfigurationError("queue setting max_attempts must be >= 1")
        if len(self.weights) != len(PRIORITIES) or min(self.weights) < 1:
            raise ConfigurationError(
                f"queue weights must be three integers >= 1 ({', '.join(PRIORITIES)})"
            )

    @classmethod
    def from_env(cls, **overrides: Any) -> QueueConfig:
        """The ``job_*`` settings of :func:`ai_agents.settings.load_settings`
        (``AI_AGENTS_JOB_<SETTING>``, the ``[job]`` table of the settings file) <-
        *overrides* (``None`` ones ignored)."""
        from ai_agents.settings import load_settings

        model = load_settings()
        values: dict[str, Any] = {f.name: getattr(model, f"job_{f.name}") for f in fields(cls)}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def _has_nul(value: Any) -> bool:
    """Whether a JSON value holds U+0000 in a string (PostgreSQL's jsonb refuses it)."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_has_nul(v) for v in value)
    return False


def job_queue(store: AgentStore) -> RedisJobQueue:
    """The store's queue, acting for the store's tenant view (``store.jobs``).

    One queue per store (created on first use) is shared by every tenant view; each view
    gets it bound to its own tenant.
    """
    return store.jobs


class RedisJobQueue(JobConsumer):
    """Background runs on Redis streams, recorded in PostgreSQL.

    The producer API is here; what workers call (claim, heartbeat, settle, hand_back,
    check_transport) is inherited from :class:`~ai_agents.jobs.worker.JobConsumer`.
    """

    def __init__(self, store: AgentStore, config: QueueConfig | None = None) -> None:
        self.store = store
        self.config = config or QueueConfig.from_env()
        self.transport = StreamTransport(store.redis, store.keys, result_ttl=self.config.result_ttl)
        self._announcements = Announcements(store.redis, store.keys.job_done_channel)
        # Concurrent enqueues share statements (shared by the tenant views, as the rest).
        self._enqueues = EnqueueBatcher(self._enqueue_one, self._enqueue_many)

    def bound_to(self, store: AgentStore) -> RedisJobQueue:
        """This queue (same transport and subscription) acting for another tenant view."""
        if store is self.store:
            return self
        view = object.__new__(RedisJobQueue)
        view.__dict__.update(self.__dict__)
        view.store = store
        return view

    async def aclose(self) -> None:
        await self._announcements.aclose()

    def _scope(self, scope: Scope | None) -> Scope:
        return scope if scope is not None else self.store._scope

    # --- producers ----------------------------------------------------------------------

    async def enqueue(
        self,
        thread_id: UUID | str,
        text: str,
        *,
        priority: Priority | str = "normal",
        metadata: dict[str, Any] | None = None,
        max_attempts: int | None = None,
        scope: Scope | None = None,
        overrides: RunOverrides | None = None,
    ) -> UUID:
        """Queue a run of *text* on the thread; returns the job id at once.

        The job's run is created with it (status ``queued``; ``JobRecord.run_id``).
        """
        job = await self.submit(
            thread_id,
            text,
            priority=priority,
            metadata=metadata,
            max_attempts=max_attempts,
            scope=scope,
            overrides=overrides,
        )
        return job.id

    async def submit(
        self,
        thread_id: UUID | str,
        text: str,
        *,
        priority: Priority | str = "normal",
        metadata: dict[str, Any] | None = None,
        max_attempts: int | None = None,
        scope: Scope | None = None,
        overrides: RunOverrides | None = None,
        with_run: bool = True,
    ) -> JobRecord:
        """:meth:`enqueue`, answering the job as it was recorded (no second read: once this
        returns, the job exists, whatever happens to the database next).

        ``with_run=False``: a job that runs no turn (memory extraction) has no run row."""
        from ai_agents.runner import validate_input

        ident = parse_uuid(thread_id, "thread")
        validate_input(text)
        if priority not in PRIORITIES:
            raise ValidationError(
                f"priority must be one of {', '.join(PRIORITIES)}", details={"field": "priority"}
            )
        if metadata is not None and not isinstance(metadata, dict):
            raise ValidationError("metadata must be a mapping", details={"field": "metadata"})
        try:
            encoded = json.dumps(metadata or {})
        except (TypeError, ValueError) as exc:
            raise ValidationError(
                f"metadata must be JSON-serializable: {exc}", details={"field": "metadata"}
            ) from exc
        if "\\u0000" in encoded and _has_nul(metadata):
            raise ValidationError(
                "metadata contains a NUL character (U+0000), which cannot be stored",
                details={"field": "metadata"},
            )
        attempts = self.config.max_attempts if max_attempts is None else max_attempts
        if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
            raise ValidationError(
                "max_attempts must be an integer >= 1", details={"field": "max_attempts"}
            )
        job, is_head = await self._enqueues.enqueue(
            rows.NewJob(
                tenant=self._scope(scope).tenant_id,
                thread_id=ident,
                input=text,
                priority=priority,
                max_attempts=attempts,
                metadata=encoded,
                with_run=with_run,
                overrides=(overrides or RunOverrides()).to_json(),
            )
        )
        if not is_head:
            return job  # published when the thread's earlier jobs have finished
        try:
            await self.transport.publish(job.id, job.priority)
        except RedisError as exc:
            async with self._tx("withdraw job") as conn:
                successor = await rows.withdraw_job(conn, job)
            if successor is not None:  # enqueued meanwhile behind the withdrawn job
                with suppress(RedisError):
                    await self.transport.publish(*successor)
            raise StorageError(f"could not queue the job: Redis failed: {exc}") from exc
        return job

    async def _enqueue_one(self, new: rows.NewJob) -> tuple[JobRecord, bool]:
        async with self._driver("enqueue job") as apg:
            return await rows.enqueue(apg, new)

    async def _enqueue_many(
        self, new: Sequence[rows.NewJob]
    ) -> list[tuple[JobRecord, bool] | None]:
        async with self._driver("enqueue jobs") as apg:
            return await rows.enqueue_many(apg, new)

    async def get_job(self, job_id: UUID | str, *, scope: Scope | None = None) -> JobRecord:
        """The job as recorded in PostgreSQL (another tenant's job is not found)."""
        ident = parse_uuid(job_id, "job")
        with translate_errors("get job"):
            async with self.store.engine.connect() as conn:
                return await rows.get_job(conn, self._scope(scope), ident)

    async def get_result(
        self,
        job_id: UUID | str,
        *,
        timeout: float = 30.0,  # noqa: ASYNC109 - the issue's API: get_result(id, timeout=...)
        scope: Scope | None = None,
    ) -> JobRecord:
        """Wait until the job is finished and return it; :class:`JobTimeout` if it is not.

        Served from the Redis result cache when it can be (woken by the ``jobs:done``
        announcement), from PostgreSQL otherwise (cache expired or Redis flushed).
        """
        ident = parse_uuid(job_id, "job")
        scope = self._scope(scope)
        if timeout < 0:
            raise ValidationError("timeout must be >= 0", details={"field": "timeout"})
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        status = "queued"
        with self._announcements.watch(ident) as announced:
            read_db = True
            while True:
                announced.clear()
                record = await self._cached(ident, scope)
                if record is None and read_db:
                    record = await self.get_job(ident, scope=scope)
                    status = record.status
                if record is not None and record.finished:
                    return record
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise JobTimeout(ident, status, timeout)
                try:
                    await asyncio.wait_for(announced.wait(), min(remaining, RECHECK_SECONDS))
                    read_db = False
                except TimeoutError:
                    read_db = True

    async def _cached(self, job_id: UUID, scope: Scope) -> JobRecord | None:
        try:
            record = await self.transport.cached(job_id)
        except RedisError as exc:
            log.debug("result cache unavailable, reading PostgreSQL: %s", exc)
            return None
        if record is not None and scope.tenant_id not in (None, record.tenant_id):
            raise NotFoundError("job", job_id)
        return record

    async def cancel(
        self, job_id: UUID | str, *, scope: Scope | None = None, cancel_run: bool = True
    ) -> JobRecord:
        """Cancel: a queued job never starts; a running one stops at its next safe point.

        Returns the job as it stands: ``cancelled`` (it was queued), ``running`` with
        ``cancel_requested`` (its worker will stop it, or finish it if it was already
        saving), or unchanged when it had finished. The job's run is cancelled too.
        """
        ident = parse_uuid(job_id, "job")
        async with self._tx("cancel job") as conn:
            job = await rows.request_cancel(conn, self._scope(scope), ident)
        if cancel_run and job.run_id is not None and job.status in ("cancelled", "running"):
            await self.store.for_tenant(job.tenant_id).runner.cancel(self._scope(scope), job.run_id)
        try:
            if job.status == "cancelled":
                await self.transport.finish(job, None)
            elif job.status == "running":
                await self.transport.flag_cancel(ident)
        except RedisError as exc:  # the flag in PostgreSQL still reaches the worker
            log.warning("job %s: cancel not announced on Redis: %s", ident, exc)
        return job

    async def dead_letters(self, count: int = 100) -> list[dict[str, str]]:
        """The newest entries of the dead-letter stream (job, thread, attempts, error)."""
        return await self.transport.dead_letters(count)
