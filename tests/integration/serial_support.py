"""Model doubles that observe whether runs on one thread are serialized.

Each model call records how many calls were in flight when it began (including itself)
and how many conversation turns (user and assistant messages; the system prompt is a
separate field of the request) it received. Serialized runs on one thread show one
call in flight at a time and histories of 1, 3, 5, ... turns: each run saw every turn
saved before it. Runs that overlap show more than one in flight; a run that read a
stale history shows a length twice.

:class:`InFlight` counts in this process; :class:`RedisInFlight` counts in Redis, so
model calls of several processes are counted together.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from redis.asyncio import Redis

from ai_agents.providers.base import ProviderRequest, ProviderResponse

#: How long a model call takes: long enough for overlapping runs to meet in it.
CALL_SECONDS = 0.03


def turns(request: ProviderRequest) -> int:
    """The user and assistant messages the model was sent (the history plus the input)."""
    return sum(1 for m in request.messages if m.role in ("user", "assistant"))


def answer_to(request: ProviderRequest) -> str:
    return f"answer to {request.messages[-1].content}"


def serialized_lengths(runs: int) -> list[int]:
    """The history lengths that *runs* serialized runs on a new thread receive."""
    return [2 * i + 1 for i in range(runs)]


@dataclass
class InFlight:
    """A model function for ``FunctionProvider`` counting overlapping calls here."""

    seconds: float = CALL_SECONDS
    now: int = 0
    most: int = 0
    lengths: list[int] = field(default_factory=list)

    async def __call__(self, request: ProviderRequest) -> ProviderResponse:
        self.now += 1
        self.most = max(self.most, self.now)
        self.lengths.append(turns(request))
        try:
            await asyncio.sleep(self.seconds)
        finally:
            self.now -= 1
        return ProviderResponse(content=answer_to(request))


class RedisInFlight:
    """The same count kept in Redis (``INCR``/``DECR``), shared by every process."""

    def __init__(self, redis: Redis, prefix: str, *, seconds: float = CALL_SECONDS) -> None:
        self.redis = redis
        self.seconds = seconds
        self._now = f"{prefix}serial:in_flight"
        self._seen = f"{prefix}serial:seen"
        self._lengths = f"{prefix}serial:lengths"

    async def __call__(self, request: ProviderRequest) -> ProviderResponse:
        entered = await self.redis.incr(self._now)
        try:
            await self.redis.rpush(self._seen, entered)
            await self.redis.rpush(self._lengths, turns(request))
            await asyncio.sleep(self.seconds)
        finally:
            await self.redis.decr(self._now)
        return ProviderResponse(content=answer_to(request))

    async def most(self) -> int:
        return max(_ints(await self.redis.lrange(self._seen, 0, -1)), default=0)

    async def lengths(self) -> list[int]:
        return _ints(await self.redis.lrange(self._lengths, 0, -1))


def _ints(values: Sequence[bytes | str]) -> list[int]:
    return [int(v) for v in values]
