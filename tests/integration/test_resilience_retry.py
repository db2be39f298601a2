"""Issue 4, acceptance 1: the retry loop, through store.run against the strict OpenAI fake.

429 with retry-after then success (the wait is honoured); a 400 is not retried; timeouts
are retried within the attempt and time bounds. Also: the hot path of a healthy provider
costs one breaker read per second and no breaker writes.

Timing: the waits the retry loop decides are checked exactly (``routing["calls"]``);
real time is checked only where it is the point (a retry-after is honoured: elapsed is at
least the wait; an HTTP timeout cuts a late reply), as lower bounds, or as upper bounds
far from what a broken behaviour would take (e.g. a 60 s retry-after actually slept), so
they hold on a loaded machine. The breaker's cache is checked on a fake clock.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from ai_agents import AgentDefinition, AgentStore
from ai_agents.errors import ProviderBadRequest, ProviderRateLimited, ProviderTimeout
from ai_agents.providers.base import ProviderSettings
from ai_agents.providers.breaker import CircuitBreakers
from ai_agents.providers.openai import OpenAIChatProvider
from tests.clocks import FakeClock
from tests.fakes.openai_fake import OpenAIFake
from tests.fakes.script import Reply
from tests.fakes.server import serve

MODEL = "gpt-4o-mini"
FAST_RETRY = {"base_delay": 0.01, "max_delay": 0.05}


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[OpenAIFake, str]]:
    fake = OpenAIFake(api_key="sk-test")
    with serve(fake) as url:
        yield fake, url + "/v1"


@pytest.fixture
def fake(server: tuple[OpenAIFake, str]) -> OpenAIFake:
    server[0].script.reset()
    return server[0]


async def _agent(
    store: AgentStore, base_url: str, *, timeout: float = 5.0, retry: dict[str, Any] | None = None
) -> Any:
    store.register_provider(
        "openai",
        OpenAIChatProvider(ProviderSettings(base_url=base_url, api_key="sk-test", timeout=timeout)),
    )
    agent = await store.create_agent(
        AgentDefinition(name="retry", role="You answer briefly."),
        provider="openai",
        model=MODEL,
        settings={"retry": {**FAST_RETRY, **(retry or {})}},
    )
    return await store.create_thread(agent)


@pytest.fixture
async def thread(store: AgentStore, server: tuple[OpenAIFake, str], fake: OpenAIFake) -> Any:
    return await _agent(store, server[1])


async def test_429_with_retry_after_then_success(
    store: AgentStore, fake: OpenAIFake, thread: Any
) -> None:
    fake.push(Reply.error(429, message="Rate limit reached", retry_after=0.5), Reply.text("Hi!"))
    started = time.perf_counter()
    response = await store.run(thread, "hello")
    elapsed = time.perf_counter() - started

    assert response.content == "Hi!"
    assert len(fake.requests) == 2
    # The wait decided: the retry-after plus at most 10 % of jitter (the policy's own
    # backoff would be 10-50 ms), and it was slept (a sleep is never shorter).
    waited = response.routing["calls"][0]["waited"]
    assert 0.5 <= waited <= 0.55
    assert elapsed >= waited
    assert response.routing["attempts"] == 2
    assert response.routing["skipped"] == []
    saved = (await store.list_messages(thread)).items
    assert saved[-1].metadata["routing"]["attempts"] == 2
    assert saved[-1].provider == "openai"


async def test_retry_after_ms_header_is_honoured(
    store: AgentStore, fake: OpenAIFake, thread: Any
) -> None:
    fake.push(Reply.error(429, retry_after_ms=300), Reply.text("ok"))
    started = time.perf_counter()
    response = await store.run(thread, "hello")
    elapsed = time.perf_counter() - started
    assert response.content == "ok"
    waited = response.routing["calls"][0]["waited"]
    assert 0.3 <= waited <= 0.33  # the header in ms, plus at most 10 % of jitter
    assert elapsed >= waited


async def test_400_is_not_retried(store: AgentStore, fake: OpenAIFake, thread: Any) -> None:
    fake.push(Reply.error(400, message="Invalid 'messages'"), Reply.text("never sent"))
    with pytest.raises(ProviderBadRequest) as caught:
        await store.run(thread, "hello")
    assert len(fake.requests) == 1
    assert caught.value.details["routing"]["attempts"] == 1
    assert (await store.get_thread(thread)).message_count == 0


async def test_429_retries_are_bounded_by_attempts(
    store: AgentStore, fake: OpenAIFake, thread: Any
) -> None:
    fake.push(*[Reply.error(429) for _ in range(5)])
    with pytest.raises(ProviderRateLimited) as caught:
        await store.run(thread, "hello")
    assert len(fake.requests) == 3  # max_attempts defaults to 3
    skipped = caught.value.details["routing"]["skipped"]
    assert skipped[0]["reason"] == "retries_exhausted"
    assert skipped[0]["attempts"] == 3


async def test_retry_after_longer_than_the_budget_gives_up_at_once(
    store: AgentStore, fake: OpenAIFake, server: tuple[OpenAIFake, str]
) -> None:
    thread = await _agent(store, server[1], retry={"max_total": 5})
    fake.push(Reply.error(429, retry_after=60))
    started = time.perf_counter()
    with pytest.raises(ProviderRateLimited) as caught:
        await store.run(thread, "hello")
    assert caught.value.details["routing"]["skipped"][0]["reason"] == "retry_after_too_long"
    assert caught.value.details["routing"]["waited"] == 0
    # Gave up without sleeping the 60 s (half of it is a margin no loaded machine needs).
    assert time.perf_counter() - started < 30.0
    assert len(fake.requests) == 1


async def test_timeouts_are_retried(
    store: AgentStore, fake: OpenAIFake, server: tuple[OpenAIFake, str]
) -> None:
    thread = await _agent(store, server[1], timeout=0.3)
    fake.push(Reply.text("late", delay=3), Reply.text("late", delay=3), Reply.text("in time"))
    started = time.perf_counter()
    response = await store.run(thread, "hello")
    elapsed = time.perf_counter() - started
    # The late replies were cut, not awaited: the answer is the third one, after two
    # 0.3 s timeouts (a lower bound that holds however slow the machine), and well before
    # the first late reply (3 s) would have come.
    assert response.content == "in time"
    assert len(fake.requests) == 3
    assert response.routing["attempts"] == 3
    assert 0.6 <= elapsed < 3.0


async def test_timeouts_stop_at_the_attempt_bound(
    store: AgentStore, fake: OpenAIFake, server: tuple[OpenAIFake, str]
) -> None:
    thread = await _agent(store, server[1], timeout=0.3, retry={"max_attempts": 2})
    fake.push(*[Reply.text("late", delay=3) for _ in range(4)])
    started = time.perf_counter()
    with pytest.raises(ProviderTimeout) as caught:
        await store.run(thread, "hello")
    assert len(fake.requests) == 2
    assert caught.value.details["routing"]["attempts"] == 2
    assert time.perf_counter() - started < 3.0  # cut: the first late reply takes 3 s


async def test_timeouts_stop_at_the_time_bound(
    store: AgentStore, fake: OpenAIFake, server: tuple[OpenAIFake, str]
) -> None:
    thread = await _agent(
        store, server[1], timeout=0.3, retry={"max_attempts": 50, "max_total": 1.0}
    )
    fake.push(*[Reply.text("late", delay=3) for _ in range(50)])
    started = time.perf_counter()
    with pytest.raises(ProviderTimeout) as caught:
        await store.run(thread, "hello")
    elapsed = time.perf_counter() - started
    # No attempt starts after 1.0 s, and each takes at least its 0.3 s timeout: at most 4
    # attempts (without the time bound there would be 50, 15 s); at least one retry
    # (more on an idle machine). The last one may run its 0.3 s timeout; the upper bound
    # leaves a loaded machine seconds of margin and is still far from 15 s.
    assert 2 <= len(fake.requests) <= 4
    assert elapsed < 5.0
    assert caught.value.details["routing"]["skipped"][0]["reason"] in (
        "retries_exhausted",
        "breaker_opened",
    )
    assert (await store.get_thread(thread)).message_count == 0


async def test_healthy_hot_path_costs_one_breaker_read_and_no_writes(
    store: AgentStore, fake: OpenAIFake, thread: Any
) -> None:
    # The breaker's cache on a clock the test controls: "one read per cache_ttl" exactly.
    clock = FakeClock()
    runner = store.runner
    old = runner.breakers
    breakers = CircuitBreakers(
        lambda: store.runtime.redis, old.keys, old.config, clock=clock.seconds
    )
    runner.breakers = runner.dispatcher.breakers = breakers
    ttl = breakers.config.cache_ttl
    stats = breakers.stats
    for i in range(5):
        assert (await store.run(thread, f"q{i}")).content == f"echo: q{i}"
        clock.advance(ttl / 5 - 0.001)  # all five within one cache_ttl
    # One read, then the cached "closed" is trusted for cache_ttl; no writes at all.
    assert (stats.reads, stats.writes) == (1, 0)
    clock.advance(0.01)  # the cached state is now older than cache_ttl: read again, once
    for i in range(5, 7):
        assert (await store.run(thread, f"q{i}")).content == f"echo: q{i}"
    assert (stats.reads, stats.writes) == (2, 0)
    assert await store.runner.breakers.status() == []  # nothing was written to Redis
    saved = (await store.list_messages(thread)).items
    assert all("routing" not in m.metadata for m in saved)  # nothing eventful to record
