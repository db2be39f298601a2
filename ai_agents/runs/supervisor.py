"""The runs of one process: leases, cancels from any process, and waiting for threads.

- **Leases.** Every run this process executes or has waiting is listed here; one
  statement every third of the lease extends all their leases at once. A run whose row
  is no longer ours (cancelled from elsewhere, or expired while this process stalled)
  is interrupted. The same loop expires other processes' runs whose lease passed.
- **Signals.** One Redis pub/sub subscription per process carries two channels:
  ``runs:released`` (a thread became free; waiting runs retry at once) and
  ``runs:cancel`` (cancel a run, wherever it executes). Both are shortcuts: waiters
  also re-check every :data:`RECHECK_SECONDS`, and the heartbeat brings a cancel
  within a third of the lease, so a lost message costs latency, never correctness.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from uuid import UUID

from redis.exceptions import RedisError

from ai_agents.pubsub import Subscription, Waiters
from ai_agents.redis_client import publish
from ai_agents.runtime import Runtime

if TYPE_CHECKING:
    from ai_agents.runs.pg import PgRuns

log = logging.getLogger("ai_agents.run")

#: How often a waiting run re-checks its thread when no release was announced (each
#: waiter spreads its checks over ±25 % of this, so many waiters do not check in step).
RECHECK_SECONDS = 1.0
#: A waiting run looks for a dead run holding its thread (an expired lease) every this
#: many checks (the process heartbeat also sweeps every third of the lease).
SWEEP_EVERY = 5


@dataclass(slots=True)
class LiveRun:
    """A run executing in this process, in its own task."""

    run_id: UUID
    task: asyncio.Task[Any] | None
    #: Why the task was interrupted: ``cancelled`` (a cancel request) or ``lost`` (the
    #: row is no longer ours).
    reason: str | None = None
    #: The run is writing its end (its turn, or its pause for tool outputs): from here the
    #: row's fencing decides, and the task is never interrupted.
    settling: bool = False


class RunSignals:
    """The process's subscription to thread releases and cancel requests."""

    def __init__(self, runtime: Runtime, on_cancel: Callable[[UUID], None]) -> None:
        self._runtime = runtime
        self._waiters = Waiters()
        self._released = runtime.keys.run_released_channel
        self._cancel = runtime.keys.run_cancel_channel
        self._subscription = Subscription(
            lambda: runtime.redis, {self._released: self._wake, self._cancel: on_cancel}
        )

    def _wake(self, thread_id: UUID) -> None:
        # Every waiter of this process tries to start; only the one whose turn it is (the
        # oldest queued, in the database's order) succeeds, the others wait again. Waking
        # only the first registered here was cheaper but not safe: the order in which a
        # process registers its waiters is not the order in which they were queued, and a
        # wrong guess left the thread idle until the periodic re-check (~1 s).
        self._waiters.wake(thread_id)

    def ensure_listening(self) -> None:
        self._subscription.ensure_listening()

    @contextmanager
    def watch(self, thread_id: UUID) -> Iterator[asyncio.Event]:
        """An event set whenever *thread_id* is announced free."""
        self.ensure_listening()
        with self._waiters.watch(thread_id) as event:
            yield event

    async def publish_release(self, thread_id: UUID) -> None:
        self._wake(thread_id)  # waiters of this process need no round trip
        try:
            await publish(self._runtime.redis, self._released, str(thread_id))
        except (RedisError, OSError) as exc:  # waiters re-check on their own
            log.debug("thread release not announced: %s", exc)

    async def publish_cancel(self, run_id: UUID) -> None:
        try:
            await publish(self._runtime.redis, self._cancel, str(run_id))
        except (RedisError, OSError) as exc:  # the heartbeat brings the cancel anyway
            log.debug("run cancel not announced: %s", exc)

    async def aclose(self) -> None:
        await self._subscription.aclose()


class RunSupervisor:
    """Leases, cancels and waiting for the runs of this process."""

    def __init__(self, runtime: Runtime, runs: PgRuns) -> None:
        self.runtime = runtime
        self.runs = runs
        #: Identifies this process on the rows of the runs it executes.
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.signals = RunSignals(runtime, on_cancel=self._cancel_requested)
        self._live: dict[UUID, LiveRun] = {}
        self._waiting: set[UUID] = set()
        self._loop: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()

    @property
    def lease(self) -> float:
        return self.runtime.settings.run_lease_seconds

    # --- registration -----------------------------------------------------------------

    def launch(self, run_id: UUID, coro: Any) -> asyncio.Task[Any]:
        """Run *coro* (the run's driver) in its own task, listed for leases and cancels."""
        task: asyncio.Task[Any] = asyncio.get_running_loop().create_task(coro)
        self._live[run_id] = LiveRun(run_id, task)
        task.add_done_callback(lambda _: self._live.pop(run_id, None))
        self._ensure_running()
        return task

    def live(self, run_id: UUID) -> LiveRun | None:
        return self._live.get(run_id)

    def settling(self, run_id: UUID) -> None:
        """The run starts writing its end; a cancel or a lost lease now shows in that write
        (it is fenced on the row), so the task is no longer interrupted."""
        live = self._live.get(run_id)
        if live is not None:
            live.settling = True

    @contextmanager
    def waiting(self, run_id: UUID) -> Iterator[None]:
        """Keep the lease of a run waiting for its thread while the block runs."""
        self._waiting.add(run_id)
        self._ensure_running()
        try:
            yield
        finally:
            self._waiting.discard(run_id)

    def _cancel_requested(self, run_id: UUID) -> None:
        self.interrupt(run_id, "cancelled")

    def interrupt(self, run_id: UUID, reason: str = "cancelled") -> bool:
        """Stop the run's task if it executes here (its driver records why)."""
        live = self._live.get(run_id)
        if live is None or live.task is None or live.task.done() or live.reason is not None:
            return False
        if live.settling:
            return False
        live.reason = reason
        live.task.cancel()
        return True

    def release(self, thread_id: UUID) -> None:
        """Announce that *thread_id* is free (other runs wait for it), in the background."""
        task = asyncio.get_running_loop().create_task(self.signals.publish_release(thread_id))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # --- the lease loop ---------------------------------------------------------------

    def _ensure_running(self) -> None:
        self.signals.ensure_listening()
        if self._loop is None or self._loop.done():
            self._loop = asyncio.get_running_loop().create_task(self._maintain())

    async def _maintain(self) -> None:
        every = max(0.05, self.lease / 3)
        while True:
            await asyncio.sleep(every)
            try:
                await self.beat()
            except Exception as exc:  # the next beat tries again; leases outlast two misses
                log.warning("run heartbeat failed: %s", exc)

    async def beat(self) -> None:
        """Extend this process's leases, interrupt runs no longer ours, expire dead ones."""
        ids = [*self._live, *self._waiting]
        if ids:
            ours = await self.runs.heartbeat(ids, self.owner)
            for run_id in ids:  # runs launched during the round trip are judged next time
                if run_id not in self._live:
                    continue
                status = ours.get(run_id)
                if status is None:
                    self.interrupt(run_id, "lost")
                elif status == "cancelling":
                    self.interrupt(run_id, "cancelled")
        await self.runs.sweep()

    async def aclose(self) -> None:
        for live in list(self._live.values()):
            if live.task is not None and not live.task.done():
                live.task.cancel()
        for live in list(self._live.values()):
            if live.task is not None:
                with suppress(BaseException):
                    await live.task
        if self._loop is not None:
            self._loop.cancel()
            with suppress(asyncio.CancelledError):
                await self._loop
            self._loop = None
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        await self.signals.aclose()
