"""Wake ``get_result`` waiters when their job finishes: one pub/sub subscription per queue.

Workers publish each finished job id on ``jobs:done`` (in the same Redis transaction that
caches the result). The announcement is only a latency shortcut: waiters re-read the job
every :data:`RECHECK_SECONDS` anyway, so a lost message (reconnect, Redis restart) delays
a result by at most that, and never loses it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING
from uuid import UUID

from redis.exceptions import RedisError

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.client import PubSub

log = logging.getLogger("ai_agents.jobs")

#: How often a waiting ``get_result`` re-reads the job when no announcement came.
RECHECK_SECONDS = 1.0


class Announcements:
    """The subscription and the events of the waiters, by job id."""

    def __init__(self, redis: Redis, channel: str) -> None:
        self._redis = redis
        self._channel = channel
        self._waiters: dict[UUID, set[asyncio.Event]] = {}
        self._task: asyncio.Task[None] | None = None
        self._pubsub: PubSub | None = None

    @contextmanager
    def watch(self, job_id: UUID) -> Iterator[asyncio.Event]:
        if self._task is not None and self._task.done():
            if not self._task.cancelled() and self._task.exception() is not None:
                log.error("job announcements stopped", exc_info=self._task.exception())
            self._task = None
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._listen())
        event = asyncio.Event()
        self._waiters.setdefault(job_id, set()).add(event)
        try:
            yield event
        finally:
            waiters = self._waiters.get(job_id)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self._waiters[job_id]

    async def _listen(self) -> None:
        while True:
            try:
                if self._pubsub is None:
                    self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
                    await self._pubsub.subscribe(self._channel)
                message = await self._pubsub.get_message(timeout=RECHECK_SECONDS)
                if message is not None and message.get("type") == "message":
                    with suppress(ValueError, AttributeError):
                        for event in self._waiters.get(UUID(message["data"].decode()), ()):
                            event.set()
            except (RedisError, OSError) as exc:
                log.debug("job announcements interrupted, resubscribing: %s", exc)
                await self._close_pubsub()
                await asyncio.sleep(RECHECK_SECONDS)

    async def _close_pubsub(self) -> None:
        if self._pubsub is not None:
            pubsub, self._pubsub = self._pubsub, None
            with suppress(RedisError, OSError):
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._close_pubsub()
