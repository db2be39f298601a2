"""The Redis rate limiter on a real Redis, pinned exactly: the cases the mutation run
(``make mutation``) showed unchecked in :mod:`ai_agents.ratelimit.limiter`.

Every test runs the limiter on a clock it controls (``tests.clocks``), so windows and
waits are exact; keys live under a random prefix and are deleted afterwards.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from ai_agents.errors import RateLimitTimeout, RateLimitUnavailable, ValidationError
from ai_agents.keys import RedisKeys
from ai_agents.ratelimit.limiter import (
    RateLimits,
    RedisRateLimiter,
    RequestExceedsRateLimit,
    ScopeUsage,
)
from tests.clocks import FakeClock

REDIS_URL = os.environ.get("AI_AGENTS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
async def client() -> AsyncIterator[aioredis.Redis]:
    redis_client = aioredis.Redis.from_url(REDIS_URL)
    yield redis_client
    await redis_client.aclose()


@pytest.fixture
async def keys(client: aioredis.Redis) -> AsyncIterator[RedisKeys]:
    prefix = f"test:core-mutants:{uuid.uuid4().hex}:"
    yield RedisKeys(prefix)
    found = [k async for k in client.scan_iter(match=f"*{prefix}*", count=1000)]
    if found:
        await client.delete(*found)


def made(client: aioredis.Redis, keys: RedisKeys, **options: Any) -> RedisRateLimiter:
    """A limiter of ``openai/gpt-test`` (*options*: limits and the rest)."""
    return RedisRateLimiter(client, keys, provider="openai", model="gpt-test", **options)


def limiter(
    client: aioredis.Redis, keys: RedisKeys, clock: FakeClock, **limits: int | None
) -> RedisRateLimiter:
    return made(
        client,
        keys,
        limits=RateLimits(**limits),
        window_seconds=60.0,
        clock=clock,
        sleep=clock.sleep,
        max_jitter=0.0,
    )


@pytest.mark.parametrize("bad", [-1, True])
def test_limits_are_non_negative_integers_or_none(bad: int) -> None:
    for name in ("rpm", "tpm"):
        with pytest.raises(ValidationError) as info:
            RateLimits(**{name: bad})
        assert info.value.details == {"field": name}
        assert f"rate limit {name} must be a non-negative integer or None" in str(info.value)
    assert RateLimits(rpm=0, tpm=0) == RateLimits(0, 0)


async def test_the_window_usage_counts_requests_and_tokens_exactly(
    client: aioredis.Redis, keys: RedisKeys
) -> None:
    clock = FakeClock()
    rl = limiter(client, keys, clock, rpm=5, tpm=1000)
    empty = await rl.usage()
    assert (empty.requests, empty.tokens, empty.reset_in) == (0, 0, 0.0)
    assert (empty.requests_remaining, empty.tokens_remaining) == (5, 1000)
    first = await rl.wait_if_needed(100)
    clock.advance(10.0)
    await rl.wait_if_needed(250)
    usage = await rl.usage()
    assert (usage.requests, usage.tokens) == (2, 350)
    assert usage.reset_in == pytest.approx(50.0)  # the first leaves 60 s after it came
    assert (usage.requests_remaining, usage.tokens_remaining) == (3, 650)
    assert usage.window_seconds == 60.0 and usage.limits == RateLimits(5, 1000)
    await rl.record_request(first, 40)
    assert (await rl.usage()).tokens == 290


async def test_a_request_that_can_never_fit_is_refused_with_its_numbers(
    client: aioredis.Redis, keys: RedisKeys
) -> None:
    clock = FakeClock()
    rl = limiter(client, keys, clock, rpm=10, tpm=100)
    with pytest.raises(RequestExceedsRateLimit) as info:
        await rl.wait_if_needed(101)
    assert str(info.value) == (
        "request estimated at 101 tokens can never fit the 100-token limit per 60s window "
        "of openai/gpt-test; lower max_tokens, shorten the input or raise the limit"
    )
    assert info.value.details == {
        "field": "estimated_tokens",
        "estimated_tokens": 101,
        "limit": 100,
        "kind": "tpm",
        "scope": "openai/gpt-test",
    }
    assert (await rl.wait_if_needed(100)).tokens == 100  # exactly the limit fits

    closed = limiter(client, keys, clock, rpm=0)
    with pytest.raises(RequestExceedsRateLimit) as info:
        await closed.try_acquire(1)
    assert str(info.value) == (
        "rate limit of openai/gpt-test allows 0 requests per 60s window: "
        "no request can ever be admitted"
    )
    assert info.value.details == {
        "field": "estimated_tokens",
        "estimated_tokens": 1,
        "limit": 0,
        "kind": "rpm",
        "scope": "openai/gpt-test",
    }


async def test_the_usage_of_extra_scopes_is_reported_per_dimension(
    client: aioredis.Redis, keys: RedisKeys
) -> None:
    clock = FakeClock()
    scoped = made(
        client,
        keys,
        limits=RateLimits(rpm=100),
        scopes=[
            ("tenant", "acme", RateLimits(rpm=5, tpm=500)),
            ("user", "u1", RateLimits(tpm=300)),
        ],
        window_seconds=60.0,
        clock=clock,
        sleep=clock.sleep,
        max_jitter=0.0,
    )
    await scoped.wait_if_needed(120)
    usage = await scoped.usage()
    assert usage.scopes == (
        ScopeUsage("tenant", "acme", 1, 120, RateLimits(rpm=5, tpm=500)),
        ScopeUsage("user", "u1", None, 120, RateLimits(tpm=300)),
    )
    assert (usage.requests, usage.tokens, usage.tokens_remaining) == (1, 120, None)


async def test_the_window_resets_when_its_oldest_entry_leaves(
    client: aioredis.Redis, keys: RedisKeys
) -> None:
    clock = FakeClock()
    rl = limiter(client, keys, clock, rpm=5)
    await rl.wait_if_needed(0)  # a request without tokens still counts
    clock.advance(59.5)
    assert (await rl.usage()).reset_in == pytest.approx(0.5)
    clock.advance(1.0)
    usage = await rl.usage()
    assert (usage.requests, usage.reset_in) == (0, 0.0)


async def test_releasing_twice_gives_the_slot_back_once(
    client: aioredis.Redis, keys: RedisKeys
) -> None:
    clock = FakeClock()
    rl = limiter(client, keys, clock, rpm=5, tpm=1000)
    first = await rl.wait_if_needed(100)
    await rl.wait_if_needed(50)
    await rl.release(first)
    await rl.release(first)
    assert first.released
    usage = await rl.usage()
    assert (usage.requests, usage.tokens) == (1, 50)
    await rl.record_request(first, 10)  # a released reservation is not corrected
    assert (await rl.usage()).tokens == 50 and first.tokens == 100
    with pytest.raises(ValidationError) as info:
        await rl.record_request(first, -1)
    assert info.value.details == {"field": "tokens_used"}
    assert str(info.value) == "tokens_used must be >= 0"


async def test_a_request_that_used_no_tokens_is_recorded_as_zero(
    client: aioredis.Redis, keys: RedisKeys
) -> None:
    clock = FakeClock()
    rl = limiter(client, keys, clock, rpm=5, tpm=1000)
    reservation = await rl.wait_if_needed(100)
    await rl.record_request(reservation, 0)
    assert reservation.tokens == 0
    usage = await rl.usage()
    assert (usage.requests, usage.tokens) == (1, 0)


@pytest.mark.parametrize("fail_open", [False, True])
async def test_a_correction_redis_cannot_take_fails_unless_fail_open(
    client: aioredis.Redis, keys: RedisKeys, fail_open: bool
) -> None:
    clock = FakeClock()
    reservation = await limiter(client, keys, clock, tpm=1000).wait_if_needed(100)
    dead = aioredis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=1.0)
    try:
        unreachable = made(
            dead,
            keys,
            limits=RateLimits(tpm=1000),
            fail_open=fail_open,
            clock=clock,
            sleep=clock.sleep,
            max_jitter=0.0,
        )
        if fail_open:
            await unreachable.record_request(reservation, 40)  # logged, not raised
            assert reservation.tokens == 40
        else:
            with pytest.raises(RateLimitUnavailable):
                await unreachable.record_request(reservation, 40)
            assert reservation.tokens == 100
    finally:
        await dead.aclose()


def dead_redis() -> aioredis.Redis:
    return aioredis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=1.0)


@pytest.mark.parametrize("bad", [0, -2, True, 1.5])
def test_a_tenant_weight_must_be_a_positive_integer(bad: object, keys: RedisKeys) -> None:
    with pytest.raises(ValidationError) as info:
        made(
            dead_redis(),
            keys,
            limits=RateLimits(rpm=1),
            tenant_weight=bad,  # type: ignore[arg-type]
        )
    assert info.value.details == {"field": "tenant_weight"}
    assert str(info.value) == f"tenant_weight must be a positive integer, got {bad!r}"


async def test_by_default_the_limiter_fails_closed_when_redis_is_unreachable(
    keys: RedisKeys,
) -> None:
    dead = dead_redis()
    try:
        rl = made(dead, keys, limits=RateLimits(rpm=5))
        with pytest.raises(RateLimitUnavailable) as info:
            await rl.wait_if_needed(1)
    finally:
        await dead.aclose()
    assert info.value.details == {"provider": "openai", "model": "gpt-test"}
    assert str(info.value).startswith("rate limiter for openai/gpt-test cannot reach Redis")
    assert "cannot reach Redis (ConnectionError: " in str(info.value)
    assert str(info.value).endswith(
        "refusing to send unlimited requests "
        "(construct the limiter with fail_open=True to proceed without limits)"
    )


async def test_by_default_a_wait_lasts_the_window_plus_at_most_ten_ms_of_jitter(
    client: aioredis.Redis, keys: RedisKeys
) -> None:
    clock = FakeClock()
    rl = made(
        client,
        keys,
        limits=RateLimits(rpm=1),
        clock=clock,
        sleep=clock.sleep,
    )
    await rl.wait_if_needed(1)
    clock.advance(10.0)
    second = await rl.wait_if_needed(1)
    assert len(clock.slept) == 1
    assert 50.0 <= clock.slept[0] <= 50.01  # the default window is 60 s
    assert second.waited == pytest.approx(clock.slept[0], abs=1e-6)


async def test_max_wait_must_not_be_negative_and_zero_takes_free_room(
    client: aioredis.Redis, keys: RedisKeys
) -> None:
    clock = FakeClock()
    rl = limiter(client, keys, clock, rpm=5)
    with pytest.raises(ValidationError) as info:
        await rl.wait_if_needed(1, max_wait=-0.5)
    assert info.value.details == {"field": "max_wait"}
    assert str(info.value) == "max_wait must be >= 0"
    assert (await rl.wait_if_needed(1, max_wait=0)).waited == 0.0
    assert (await rl.wait_if_needed(1, max_wait=0.5)).waited == 0.0
    assert clock.slept == []


async def test_a_wait_longer_than_max_wait_fails_at_once_saying_why(
    client: aioredis.Redis, keys: RedisKeys
) -> None:
    clock = FakeClock()
    rl = limiter(client, keys, clock, rpm=1)
    await rl.wait_if_needed(1)
    with pytest.raises(RateLimitTimeout) as info:
        await rl.wait_if_needed(7, max_wait=5)
    assert info.value.retry_after == pytest.approx(60.0)
    assert (
        "rate limit for openai/gpt-test: no room for 7 tokens within max_wait=5.000s "
        "(next room in 60.000s, waited 0.000s)"
    ) in str(info.value)
    assert clock.slept == []


async def test_a_short_wait_sleeps_exactly_until_the_room(
    client: aioredis.Redis, keys: RedisKeys
) -> None:
    clock = FakeClock()
    rl = limiter(client, keys, clock, rpm=1)
    await rl.wait_if_needed(1)
    clock.advance(59.8)
    await rl.wait_if_needed(1)
    assert clock.slept == [pytest.approx(0.2)]


async def test_the_jitter_never_takes_a_wait_past_max_wait(
    client: aioredis.Redis, keys: RedisKeys
) -> None:
    clock = FakeClock()
    rl = made(
        client,
        keys,
        limits=RateLimits(rpm=1),
        window_seconds=60.0,
        clock=clock,
        sleep=clock.sleep,
        max_jitter=5.0,
    )
    await rl.wait_if_needed(1)
    clock.advance(10.0)
    await rl.wait_if_needed(1, max_wait=50.001)
    assert clock.slept == [pytest.approx(50.001)]


@pytest.mark.parametrize("window", ["rpm only", "tpm"])
async def test_a_recorded_usage_becomes_the_reservations_tokens(
    client: aioredis.Redis, keys: RedisKeys, window: str
) -> None:
    clock = FakeClock()
    limits = {"rpm": 10} if window == "rpm only" else {"rpm": 10, "tpm": 1000}
    rl = limiter(client, keys, clock, **limits)
    same = await rl.wait_if_needed(100)
    await rl.record_request(same, 100)
    assert same.tokens == 100
    other = await rl.wait_if_needed(100)
    await rl.record_request(other, 40)
    assert other.tokens == 40
    await rl.release(same)
    await rl.release(other)
    assert (await rl.usage()).requests == 0


@pytest.mark.parametrize(
    ("options", "field", "message"),
    [
        ({"window_seconds": 0}, "window_seconds", "window_seconds must be positive"),
        ({"window_seconds": -1.0}, "window_seconds", "window_seconds must be positive"),
        ({"max_jitter": -0.1}, "max_jitter", "max_jitter must be >= 0"),
    ],
)
def test_windows_and_jitter_are_checked_when_made(
    keys: RedisKeys, options: dict[str, float], field: str, message: str
) -> None:
    with pytest.raises(ValidationError) as info:
        made(
            dead_redis(),
            keys,
            limits=RateLimits(rpm=1),
            **options,  # type: ignore[arg-type]
        )
    assert info.value.details == {"field": field}
    assert str(info.value) == message


async def test_a_window_under_a_second_and_no_jitter_are_allowed(
    client: aioredis.Redis, keys: RedisKeys
) -> None:
    clock = FakeClock()
    rl = made(
        client,
        keys,
        limits=RateLimits(rpm=1),
        window_seconds=0.5,
        clock=clock,
        sleep=clock.sleep,
        max_jitter=0,
    )
    await rl.wait_if_needed(1)
    await rl.wait_if_needed(1)
    assert clock.slept == [pytest.approx(0.5)]


@pytest.mark.parametrize("bad", [-1, True])
async def test_a_token_estimate_must_be_a_non_negative_integer(
    client: aioredis.Redis, keys: RedisKeys, bad: int
) -> None:
    rl = limiter(client, keys, FakeClock(), rpm=5)
    with pytest.raises(ValidationError) as info:
        await rl.try_acquire(bad)
    assert info.value.details == {"field": "estimated_tokens"}
    assert str(info.value) == f"estimated_tokens must be a non-negative integer, got {bad!r}"


async def test_a_closed_scope_window_is_named_in_the_refusal(
    client: aioredis.Redis, keys: RedisKeys
) -> None:
    clock = FakeClock()
    rl = made(
        client,
        keys,
        limits=RateLimits(rpm=10),
        scopes=[("user", "acme:u1", RateLimits(rpm=0))],
        clock=clock,
        sleep=clock.sleep,
    )
    with pytest.raises(RequestExceedsRateLimit) as info:
        await rl.try_acquire(1)
    assert str(info.value).startswith("rate limit of user acme:u1 allows 0 requests")
    assert info.value.details["scope"] == "user acme:u1"


async def test_fail_open_admits_an_unlimited_reservation_of_the_estimate(
    keys: RedisKeys,
) -> None:
    dead = dead_redis()
    try:
        rl = made(
            dead,
            keys,
            limits=RateLimits(rpm=1),
            fail_open=True,
        )
        reservation, retry_after = await rl.try_acquire(25)
    finally:
        await dead.aclose()
    assert reservation is not None and retry_after == 0.0
    assert (reservation.estimated_tokens, reservation.tokens, reservation.unlimited) == (
        25,
        25,
        True,
    )


async def test_an_admitted_reservation_keeps_its_estimate_and_the_server_time(
    client: aioredis.Redis, keys: RedisKeys
) -> None:
    rl = made(client, keys, limits=RateLimits(rpm=5, tpm=500))
    reservation = await rl.wait_if_needed(120)
    assert (reservation.estimated_tokens, reservation.tokens) == (120, 120)
    # No clock given: the admission time is the Redis server's clock (this machine's).
    assert abs(reservation.admitted_at - time.time()) < 5.0
    await rl.release(reservation)
