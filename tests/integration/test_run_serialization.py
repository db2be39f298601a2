"""Runs on one thread are serialized: observed in the model calls, not in saved order.

A turn is saved in one statement, so the saved order of messages cannot show two runs
that overlapped. These tests watch the model instead (tests/integration/serial_support.py):
at most one call in flight on the thread at any time, and every run's history holds
every turn saved before it (lengths 1, 3, 5, ..., 39 for 20 runs), in one process, in
streams, under ``on_busy="reject"``, and across two OS processes.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Awaitable
from pathlib import Path
from typing import TypeVar

import pytest

from ai_agents import AgentDefinition, AgentStore
from ai_agents.errors import ThreadBusyError
from ai_agents.providers.registry import ModelLimits, get_registry
from ai_agents.redis_client import connect
from ai_agents.response import DoneEvent
from ai_agents.testing import FunctionProvider
from tests.conftest import REDIS_URL
from tests.integration.serial_support import InFlight, RedisInFlight, serialized_lengths

T = TypeVar("T")
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
RUNS = 20
#: Serialized, 20 short runs take 2-12 s on a loaded machine; broken serialization must
#: fail within a minute, not hang.
DEADLINE = 45.0


@pytest.fixture
async def ai(store: AgentStore) -> AgentStore:
    get_registry().register(
        "scripted", "roomy", ModelLimits(100_000, 1000, 100_000, 100_000_000, True, False, 3, 15)
    )
    return store


async def _thread(store: AgentStore, model: object) -> uuid.UUID:
    store.register_provider("scripted", FunctionProvider(model))  # type: ignore[arg-type]
    agent = await store.create_agent(
        AgentDefinition(name="Helper", role="You help."),
        provider="scripted",
        model="roomy",
        memory_config={"max_messages": 4 * RUNS},  # the whole history fits the window
    )
    return await store.create_thread(agent, user_id="u1")


async def _within(work: Awaitable[T], what: str, seconds: float = DEADLINE) -> T:
    try:
        return await asyncio.wait_for(work, seconds)
    except TimeoutError:
        raise AssertionError(f"timed out after {seconds}s waiting for {what}") from None


async def _assert_turns_paired(store: AgentStore, thread_id: uuid.UUID, inputs: list[str]) -> None:
    saved = (await store.list_messages(thread_id, limit=1000)).items
    assert [m.role for m in saved] == ["user", "assistant"] * len(inputs)
    for user, answer in zip(saved[::2], saved[1::2], strict=True):
        assert answer.content == f"answer to {user.content}"
    assert sorted(m.content or "" for m in saved[::2]) == sorted(inputs)


async def test_concurrent_runs_on_one_thread_run_one_at_a_time(ai: AgentStore) -> None:
    model = InFlight()
    thread_id = await _thread(ai, model)
    inputs = [f"question {i}" for i in range(RUNS)]
    responses = await _within(
        asyncio.gather(*(ai.run(thread_id, q) for q in inputs)), f"{RUNS} runs"
    )
    assert model.most == 1, f"{model.most} model calls were in flight on one thread at once"
    assert sorted(model.lengths) == serialized_lengths(RUNS)
    assert sorted(r.content for r in responses) == sorted(f"answer to {q}" for q in inputs)
    await _assert_turns_paired(ai, thread_id, inputs)


async def test_concurrent_streams_on_one_thread_run_one_at_a_time(ai: AgentStore) -> None:
    model = InFlight()
    thread_id = await _thread(ai, model)
    inputs = [f"question {i}" for i in range(RUNS)]

    async def stream(text: str) -> str:
        events = [e async for e in ai.stream(thread_id, text)]
        assert isinstance(events[-1], DoneEvent)
        return events[-1].response.content

    answers = await _within(asyncio.gather(*(stream(q) for q in inputs)), f"{RUNS} streams")
    assert model.most == 1, f"{model.most} model calls were in flight on one thread at once"
    assert sorted(model.lengths) == serialized_lengths(RUNS)
    assert sorted(answers) == sorted(f"answer to {q}" for q in inputs)
    await _assert_turns_paired(ai, thread_id, inputs)


async def test_rejected_runs_never_reach_the_model(ai: AgentStore) -> None:
    """``on_busy="reject"``: the runs that found the thread busy fail without a model call;
    those that took it ran one at a time."""
    model = InFlight()
    thread_id = await _thread(ai, model)
    inputs = [f"question {i}" for i in range(RUNS)]
    outcomes = await _within(
        asyncio.gather(
            *(ai.run(thread_id, q, on_busy="reject") for q in inputs), return_exceptions=True
        ),
        f"{RUNS} runs with on_busy='reject'",
    )
    done = [o for o in outcomes if not isinstance(o, BaseException)]
    refused = [o for o in outcomes if isinstance(o, BaseException)]
    assert done, "no run took the free thread"
    assert refused, "no run found the thread busy"
    assert all(isinstance(e, ThreadBusyError) for e in refused), refused
    assert model.most == 1, f"{model.most} model calls were in flight on one thread at once"
    assert sorted(model.lengths) == serialized_lengths(len(done))
    answered = {r.content.removeprefix("answer to ") for r in done}
    await _assert_turns_paired(ai, thread_id, [q for q in inputs if q in answered])


def _process(store: AgentStore, thread_id: uuid.UUID, label: str) -> subprocess.Popen[str]:
    settings = store.settings
    return subprocess.Popen(
        [
            sys.executable,
            str(HERE / "serial_process.py"),
            str(settings.database_url),
            REDIS_URL,
            settings.redis_prefix,
            str(thread_id),
            str(RUNS // 2),
            label,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


async def _ready(process: subprocess.Popen[str], label: str) -> None:
    assert process.stdout is not None
    line = await _within(asyncio.to_thread(process.stdout.readline), f"process {label} to start")
    if line.strip() != "ready":
        process.kill()
        _, err = process.communicate(timeout=10)
        raise AssertionError(f"process {label} did not start: {line!r}\n{err}")


async def test_concurrent_runs_from_two_processes_run_one_at_a_time(ai: AgentStore) -> None:
    """Two processes start 10 runs each on the same thread at the same moment; the model
    counts calls in flight in Redis, across both."""
    thread_id = await _thread(ai, InFlight())
    processes = {label: _process(ai, thread_id, label) for label in ("p1", "p2")}
    redis = connect(REDIS_URL)
    try:
        for label, process in processes.items():
            await _ready(process, label)
        await redis.rpush(f"{ai.settings.redis_prefix}serial:go", *processes)
        for label, process in processes.items():
            out, err = await _within(
                asyncio.to_thread(process.communicate), f"the runs of process {label}"
            )
            assert process.returncode == 0, f"process {label} failed:\n{err}"
            assert len(out.strip().splitlines()) == 1, out
        counter = RedisInFlight(redis, ai.settings.redis_prefix)
        most, lengths = await counter.most(), await counter.lengths()
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.communicate(timeout=10)
        await redis.aclose()
    assert most == 1, f"{most} model calls were in flight on one thread at once"
    assert sorted(lengths) == serialized_lengths(RUNS)
    inputs = [f"{label} {i}" for label in processes for i in range(RUNS // 2)]
    await _assert_turns_paired(ai, thread_id, inputs)


async def test_each_release_wakes_the_next_waiter(
    ai: AgentStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Waiters also re-check on their own every second or so; with that pushed to 60 s,
    # the runs finish in time only if every run that ends wakes the waiter whose turn it
    # is (the oldest queued), not merely the one that started waiting first here.
    monkeypatch.setattr("ai_agents.runner.RECHECK_SECONDS", 60.0)
    model = InFlight()
    thread_id = await _thread(ai, model)
    inputs = [f"question {i}" for i in range(RUNS)]
    await _within(
        asyncio.gather(*(ai.run(thread_id, q) for q in inputs)),
        f"{RUNS} runs handed the thread on without the periodic re-check",
        seconds=30.0,
    )
    assert model.most == 1
    await _assert_turns_paired(ai, thread_id, inputs)
