"""Wake ``get_result`` waiters when their job finishes: one pub/sub subscription per queue.

Workers publish each finished job id on ``jobs:done`` (in the same Redis transaction that
caches the result). The announcement is only a latency shortcut: waiters re-read the job
every :data:`RECHECK_SECONDS` anyway, so a lost message (reconnect, Redis restart) delays
a result by at most that, and never loses it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING
from uuid import UUID

from ai_agents.pubsub import Subscription, Waiters

if TYPE_CHECKING:
    from redis.asyncio import Redis

#: How often a waiting ``get_result`` re-reads the job when no announcement came.
RECHECK_SECONDS = 1.0


class Announcements:
    """The subscription and the events of the waiters, by job id."""

    def __init__(self, redis: Redis, channel: str) -> None:
        self._waiters = Waiters()
        self._subscription = Subscription(lambda: redis, {channel: self._waiters.wake})

    @contextmanager
    def watch(self, job_id: UUID) -> Iterator[asyncio.Event]:
        self._subscription.ensure_listening()
        with self._waiters.watch(job_id) as event:
            yield event

    async def aclose(self) -> None:
        await self._subscription.aclose()
