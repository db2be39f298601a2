"""Issue 4, acceptance 2: the circuit breaker is shared across processes through Redis.

Repeated 503s open the breaker in this process; a second *process* (this module run with
``python -m``, same database and Redis prefix) then fails fast, or falls back to
Anthropic, without sending the OpenAI fake a single request (its requests carry an
``x-worker: b`` header, so we can tell). After the recovery timeout the breaker
half-opens: one probe goes out (others still fail fast); a failed probe re-opens it, a
successful one closes it.

Time: this process's breakers run on a clock the test controls (``tests.clocks``), which
starts at the Redis server time and moves only when the test advances it past the
recovery timeout. The second process reads the breaker on the real Redis clock, so the
recovery timeout is long (60 s) compared with anything the test does before that read,
however busy the machine.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from ai_agents import AgentDefinition, AgentStore, Settings
from ai_agents.errors import ProviderError, ProviderOverloaded, ProviderUnavailable
from ai_agents.providers.anthropic import AnthropicProvider
from ai_agents.providers.base import ProviderSettings
from ai_agents.providers.breaker import CircuitBreakers
from ai_agents.providers.openai import OpenAIChatProvider
from ai_agents.tokens import default_counter
from tests.clocks import FakeClock
from tests.fakes.anthropic_fake import AnthropicFake
from tests.fakes.openai_fake import OpenAIFake
from tests.fakes.script import Reply
from tests.fakes.server import serve
from tests.waiting import wait_until

BREAKER = {"failure_threshold": 3, "recovery_timeout": 60.0}
CLAUDE = "claude-haiku-4-5"
ROOT = Path(__file__).resolve().parents[2]


def register(store: AgentStore, openai_url: str, anthropic_url: str, worker: str) -> None:
    headers = {"x-worker": worker}
    store.register_provider(
        "openai",
        OpenAIChatProvider(
            ProviderSettings(base_url=openai_url, api_key="sk-test", timeout=5, headers=headers)
        ),
    )
    store.register_provider(
        "anthropic",
        AnthropicProvider(
            ProviderSettings(base_url=anthropic_url, api_key="ak-test", timeout=5, headers=headers)
        ),
    )


async def _status(store: AgentStore) -> dict[str, Any]:
    (status,) = await store.runner.breakers.status()
    return status.to_json()


async def _on_fake_clock(store: AgentStore) -> FakeClock:
    """Run this store's breakers on a fake clock starting at the Redis server time."""
    sec, usec = await store.redis.time()
    clock = FakeClock(sec * 1_000_000 + usec)
    runner = store.runner
    old = runner.breakers
    breakers = CircuitBreakers(
        lambda: store.runtime.redis,
        old.keys,
        old.config,
        clock=clock.seconds,
        server_clock=clock,
    )
    runner.breakers = runner.dispatcher.breakers = breakers
    return clock


async def _until_retry_at(store: AgentStore, clock: FakeClock) -> None:
    """Advance the fake clock to the breaker's retry_at exactly: not a moment earlier."""
    status = await _status(store)
    assert status["state"] == "open"
    assert status["retry_at"] == pytest.approx(
        status["opened_at"] + BREAKER["recovery_timeout"], abs=1e-6
    )
    retry_at_us = round(status["retry_at"] * 1000) * 1000  # the scripts count in ms
    assert clock() < retry_at_us - 1000
    clock.now_us = retry_at_us - 1000
    breakers = store.runner.breakers
    permit = await breakers.allow("openai", status["base_url"])
    assert (permit.allowed, permit.state) == (False, "open")  # 1 ms before: still open
    assert permit.retry_in == pytest.approx(0.001)
    breakers.forget()  # the next call asks Redis, not this process's cache
    clock.now_us = retry_at_us


def _read_line(proc: subprocess.Popen[str], timeout: float = 60.0) -> str:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        _, err = proc.communicate(timeout=timeout)
        raise AssertionError(f"worker exited: {err}")
    return line.strip()


@pytest.mark.slow  # a second interpreter plus two recovery timeouts: ~15 s on a busy box
async def test_breaker_state_is_shared_with_a_second_process(
    settings: Settings, redis_cleanup: None
) -> None:
    openai_fake = OpenAIFake(api_key="sk-test")
    anthropic_fake = AnthropicFake(api_key="ak-test")
    with ExitStack() as stack:
        openai_url = stack.enter_context(serve(openai_fake)) + "/v1"
        anthropic_url = stack.enter_context(serve(anthropic_fake))
        store = AgentStore(settings=replace(settings, extra={"breaker": BREAKER}))
        try:
            await _scenario(store, settings, openai_fake, anthropic_fake, openai_url, anthropic_url)
        finally:
            await store.close()


async def _scenario(
    store: AgentStore,
    settings: Settings,
    openai_fake: OpenAIFake,
    anthropic_fake: AnthropicFake,
    openai_url: str,
    anthropic_url: str,
) -> None:
    register(store, openai_url, anthropic_url, "a")
    clock = await _on_fake_clock(store)
    retry = {"retry": {"base_delay": 0.01, "max_delay": 0.05}}
    plain = await store.create_agent(
        AgentDefinition(name="plain", role="You answer."),
        provider="openai",
        model="gpt-4o-mini",
        settings=retry,
    )
    with_fallback = await store.create_agent(
        AgentDefinition(name="fb", role="You answer."),
        provider="openai",
        model="gpt-4o-mini",
        fallbacks=[{"provider": "anthropic", "model": CLAUDE}],
        settings=retry,
    )
    threads = [await store.create_thread(plain) for _ in range(3)]
    fb_thread = await store.create_thread(with_fallback)

    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.integration.test_resilience_breaker",
            settings.database_url or "",
            settings.redis_url or "",
            settings.redis_prefix,
            openai_url,
            anthropic_url,
            str(threads[0]),
            str(fb_thread),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=str(ROOT),
    )
    try:
        assert await asyncio.to_thread(_read_line, proc) == "ready"

        # 1. Three 503s (one run, three attempts) open the breaker.
        openai_fake.push(*[Reply.error(503, message="Service Unavailable") for _ in range(3)])
        with pytest.raises(ProviderOverloaded) as caught:
            await store.run(threads[0], "hello")
        assert len(openai_fake.requests) == 3
        assert caught.value.details["routing"]["skipped"][0]["reason"] == "breaker_opened"
        status = await _status(store)
        assert (status["state"], status["failures"], status["opened_count"]) == ("open", 3, 1)
        assert status["provider"] == "openai"
        assert status["base_url"] == openai_url
        assert "provider_overloaded" in status["last_error"]

        # 2. The second process sees it open: fails fast, or falls back, without a request.
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
        result = json.loads(await asyncio.to_thread(_read_line, proc))
        await asyncio.to_thread(proc.wait, 30)
        assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()

    assert result["plain"]["error"] == "provider_unavailable"
    # Failed fast: without a request (the headers below), and without waiting for the
    # breaker (the only slow way to fail here: 60 s); measured ~20 ms, generous margin.
    assert result["plain"]["elapsed"] < 10.0
    # It was told to retry when the breaker's retry_at comes, by the Redis clock it read
    # between its `before` and `after` readings of that clock (ms resolution).
    retry_at = status["retry_at"]
    before, after = result["plain"]["redis_before"], result["plain"]["redis_after"]
    assert result["plain"]["routing"]["skipped"] == [
        {"provider": "openai", "model": "gpt-4o-mini", "reason": "breaker_open", "retry_in": pytest.approx(retry_at - (before + after) / 2, abs=(after - before) / 2 + 0.002)}
    ]  # fmt: skip
    assert result["fallback"]["provider"] == "anthropic"
    assert result["fallback"]["content"] == "echo: from b too"
    assert result["fallback"]["skipped"][0]["reason"] == "breaker_open"
    assert [h.get("x-worker") for h in openai_fake.script.headers] == ["a", "a", "a"]
    assert [h.get("x-worker") for h in anthropic_fake.script.headers] == ["b"]

    # 3. After the recovery timeout: one probe; it fails -> open again at once (1 request).
    await _until_retry_at(store, clock)
    openai_fake.push(Reply.error(503))
    with pytest.raises(ProviderOverloaded) as caught:
        await store.run(threads[1], "probe 1")
    assert len(openai_fake.requests) == 4
    assert caught.value.details["routing"]["skipped"][0]["reason"] == "breaker_opened"
    status = await _status(store)
    assert (status["state"], status["opened_count"]) == ("open", 2)

    # 4. Next recovery: a slow successful probe; a concurrent caller still fails fast,
    # i.e. while the probe is in flight (3 s: far longer than a failing call on a loaded
    # machine, within the provider's 5 s timeout) and without a request of its own.
    await _until_retry_at(store, clock)
    openai_fake.push(Reply.text("recovered", delay=3.0))
    probe = asyncio.create_task(store.run(threads[1], "probe 2"))
    await wait_until(
        lambda: len(openai_fake.requests) >= 5, what="the probe to reach the OpenAI fake"
    )
    assert (await _status(store))["state"] == "half_open"
    with pytest.raises(ProviderUnavailable):
        await store.run(threads[2], "while probing")
    assert not probe.done() and len(openai_fake.requests) == 5
    assert (await probe).content == "recovered"
    assert len(openai_fake.requests) == 5
    status = await _status(store)
    assert (status["state"], status["failures"]) == ("closed", 0)
    assert (await store.run(threads[2], "normal again")).content == "echo: normal again"


# --- the second process -----------------------------------------------------------------


async def _worker(argv: list[str]) -> None:
    database_url, redis_url, prefix, openai_url, anthropic_url, plain, fallback = argv
    settings = Settings(
        database_url=database_url,
        redis_url=redis_url,
        redis_prefix=prefix,
        extra={"breaker": BREAKER},
    )
    async with AgentStore(settings=settings) as store:
        register(store, openai_url, anthropic_url, "b")
        # Open the pools and load the tokenizer before the clock starts.
        await store.get_thread(plain)
        await store.redis.ping()
        default_counter().count_text("warm up", provider="openai", model="gpt-4o-mini")
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        result: dict[str, Any] = {}
        started = time.perf_counter()
        before = await store.redis.time()
        try:
            await store.run(plain, "from b")
            result["plain"] = {"error": None}
        except ProviderError as exc:
            after = await store.redis.time()
            result["plain"] = {
                "error": exc.code,
                "elapsed": time.perf_counter() - started,
                "routing": exc.details.get("routing"),
                "redis_before": before[0] + before[1] / 1e6,
                "redis_after": after[0] + after[1] / 1e6,
            }
        response = await store.run(fallback, "from b too")
        result["fallback"] = {
            "provider": response.provider,
            "content": response.content,
            "skipped": response.routing["skipped"],
        }
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    asyncio.run(_worker(sys.argv[1:]))
