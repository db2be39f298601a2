"""Redis pub/sub for latency shortcuts: ids announced on channels, handled in-process.

A :class:`Subscription` holds one pub/sub connection (on a Redis Cluster: to one node,
see :func:`ai_agents.redis_client.pubsub`) for a few channels and hands each
message (a UUID) to its channel's handler. :class:`Waiters` wakes the asyncio events of
whoever waits for an id. Announcements are only shortcuts: every user of them also
re-checks the source of truth (PostgreSQL) on a timer, so a lost message (reconnect, Redis
restart) costs latency, never correctness.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING
from uuid import UUID

from redis.exceptions import RedisError

from ai_agents import redis_client

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.client import PubSub

log = logging.getLogger("ai_agents.pubsub")

#: How long the listener waits for a message before looking again (and the back-off
#: after a Redis error).
POLL_SECONDS = 1.0

Handler = Callable[[UUID], None]


class Subscription:
    """One pub/sub connection for *handlers*' channels, listening in a background task."""

    def __init__(self, redis: Callable[[], Redis], handlers: dict[str, Handler]) -> None:
        self._redis = redis
        self._handlers = {channel.encode(): handler for channel, handler in handlers.items()}
        self._task: asyncio.Task[None] | None = None
        self._pubsub: PubSub | None = None

    def ensure_listening(self) -> None:
        if self._task is not None and self._task.done():
            if not self._task.cancelled() and self._task.exception() is not None:
                log.error("pub/sub listener stopped", exc_info=self._task.exception())
            self._task = None
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._listen())

    async def _listen(self) -> None:
        failed = False
        while True:
            try:
                if self._pubsub is None:
                    self._pubsub = await redis_client.pubsub(
                        self._redis(),
                        [c.decode() for c in self._handlers],
                        refresh=failed,
                        ignore_subscribe_messages=True,
                    )
                    await self._pubsub.subscribe(*self._handlers)
                    failed = False
                message = await self._pubsub.get_message(timeout=POLL_SECONDS)
                if message is None or message.get("type") != "message":
                    continue
                handler = self._handlers.get(message["channel"])
                if handler is not None:
                    with suppress(ValueError, AttributeError):
                        handler(UUID(message["data"].decode()))
            except (RedisError, OSError) as exc:
                log.debug("pub/sub interrupted, resubscribing: %s", exc)
                failed = True
                await self._close_pubsub()
                await asyncio.sleep(POLL_SECONDS)

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


class Waiters:
    """asyncio events by id: :meth:`watch` one, :meth:`wake` everyone watching an id."""

    def __init__(self) -> None:
        # A dict used as an ordered set of events per id.
        self._events: dict[UUID, dict[asyncio.Event, None]] = {}

    @contextmanager
    def watch(self, ident: UUID) -> Iterator[asyncio.Event]:
        event = asyncio.Event()
        self._events.setdefault(ident, {})[event] = None
        try:
            yield event
        finally:
            events = self._events.get(ident)
            if events is not None:
                events.pop(event, None)
                if not events:
                    del self._events[ident]

    def wake(self, ident: UUID) -> None:
        for event in self._events.get(ident, ()):
            event.set()
