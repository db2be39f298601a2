"""Noisy neighbours through ``store.run``: a tenant's share of a provider window and the
maximum rate-limit wait (``RateLimitTimeout``, HTTP 429 with ``Retry-After``).

These run on the Redis clock (through ``store.run``), so the window is long compared
with anything a test does, even on a loaded machine: a tenant stays active, and entries
stay in the window, for the whole test. What "at once" means is checked by observed order
(admission times on the Redis clock) and by ``MAX_WAIT`` being far from both 0 and the
window.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from uuid import UUID

import pytest

from ai_agents import AgentDefinition, AgentStore
from ai_agents.config import Settings
from ai_agents.errors import RateLimitTimeout
from ai_agents.ratelimit.limiter import RateLimits
from ai_agents.testing import FunctionProvider

WINDOW = 60.0
MAX_WAIT = 10.0


@pytest.fixture
async def store(settings: Settings, redis_cleanup: None) -> AsyncIterator[AgentStore]:
    s = AgentStore(
        settings=replace(settings, rate_limit_window=WINDOW, rate_limit_max_wait=MAX_WAIT)
    )
    s.register_provider("scripted", FunctionProvider(lambda request: "ok"))
    try:
        yield s
    finally:
        with contextlib.suppress(Exception):
            await s.close()


async def _thread(store: AgentStore, tenant: str) -> UUID:
    view = store.for_tenant(tenant)
    agent = await view.create_agent(
        AgentDefinition(name="n", role="You answer."), provider="scripted", model="m"
    )
    return await view.create_thread(agent)


async def _admitted_at(store: AgentStore, tenant: str, thread: UUID, question: str) -> float:
    """When the limiter admitted the answer to *question* (Redis clock, seconds)."""
    messages = (await store.for_tenant(tenant).list_messages(thread, limit=100)).items
    for i, m in enumerate(messages):
        if m.role == "user" and m.content == question:
            return float(messages[i + 1].metadata["rate_limit"]["admitted_at"])
    raise AssertionError(f"no answer to {question!r}")


async def test_small_run_of_another_tenant_is_admitted_while_one_is_at_its_share(
    store: AgentStore,
) -> None:
    store.runner.rate_limit_overrides[("scripted", "m")] = RateLimits(rpm=4)
    a, b = store.for_tenant("a"), store.for_tenant("b")
    thread_a, thread_b = await _thread(store, "a"), await _thread(store, "b")
    await b.run(thread_b, "hi")  # b is active on the model
    await a.run(thread_a, "one")
    await a.run(thread_a, "two")
    # a holds its share (2 of 4): its next run would wait a window, longer than MAX_WAIT.
    with pytest.raises(RateLimitTimeout) as info:
        await a.run(thread_a, "three")
    assert 0 < info.value.retry_after <= WINDOW
    # b's run gets the room a may not take, at once: while a's entries are all still in
    # the window (room from them would come a window after a's first run).
    response = await b.run(thread_b, "hi again")
    assert response.rate_limit_wait < MAX_WAIT
    a_first = await _admitted_at(store, "a", thread_a, "one")
    b_second = await _admitted_at(store, "b", thread_b, "hi again")
    assert a_first < b_second < a_first + WINDOW


async def test_a_run_that_would_wait_longer_than_the_maximum_fails_with_retry_after(
    store: AgentStore,
) -> None:
    store.runner.rate_limit_overrides[("scripted", "m")] = RateLimits(rpm=2)
    a, b = store.for_tenant("a"), store.for_tenant("b")
    thread_a, thread_b = await _thread(store, "a"), await _thread(store, "b")
    await a.run(thread_a, "one")  # alone, a may fill the whole window
    await a.run(thread_a, "two")
    started = time.monotonic()
    with pytest.raises(RateLimitTimeout) as info:
        await b.run(thread_b, "hi")
    # Known at once, without sleeping until MAX_WAIT (10 s) for nothing; half of it is a
    # margin no loaded machine needs for two round trips.
    assert time.monotonic() - started < MAX_WAIT / 2
    assert MAX_WAIT < info.value.retry_after <= WINDOW
    assert info.value.details["retry_after"] == info.value.retry_after
    assert info.value.code == "rate_limited"
