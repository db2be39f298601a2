"""Runs as durable rows (issue "Runs become durable objects").

One active run per thread without a held connection, leases that expire when a process
dies, client tools (``requires_action``) resumed from another process, cancel in every
state, and the run API on the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest

from ai_agents import AgentDefinition, AgentStore, Settings
from ai_agents.errors import (
    NotFoundError,
    RunCancelled,
    RunExpired,
    RunStateError,
    ThreadBusyError,
    ValidationError,
)
from ai_agents.messages import Message
from ai_agents.providers.base import ProviderRequest, ProviderResponse
from ai_agents.providers.registry import ModelLimits, get_registry
from ai_agents.response import DoneEvent, RunStartedEvent, TextDeltaEvent
from ai_agents.testing import FunctionProvider, ScriptedProvider, call, calls
from ai_agents.tools.decorator import tool
from ai_agents.tools.registry import ToolRegistry
from tests import pg
from tests.conftest import REDIS_URL
from tests.waiting import wait_until

HERE = Path(__file__).resolve().parent
WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city (the caller looks it up).",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
LEASE = 1.0


@pytest.fixture
def action_timeout() -> float:
    """How long a paused run waits for tool outputs: short, so expiry is observable. A test
    that hands a paused run to another process parametrizes a longer one (starting a
    Python process can take seconds on a loaded machine)."""
    return 2.0


@pytest.fixture
def fast_settings(settings: Settings, action_timeout: float) -> Settings:
    """Short leases and action timeouts, so expiry is observable in a test."""
    return dataclasses.replace(settings, run_lease_seconds=LEASE, run_action_timeout=action_timeout)


@pytest.fixture
async def ai(fast_settings: Settings, redis_cleanup: None) -> AsyncIterator[AgentStore]:
    get_registry().register(
        "scripted", "roomy", ModelLimits(100_000, 1000, 100_000, 100_000_000, True, False, 3, 15)
    )
    registry = ToolRegistry()

    @tool(registry=registry)
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    store = AgentStore(settings=fast_settings)
    store.use_tools(registry)
    try:
        yield store
    finally:
        with contextlib.suppress(Exception):
            await store.close()


async def _thread(
    store: AgentStore,
    provider: object,
    *,
    tools: list[str] | None = None,
    client_tools: list[dict[str, object]] | None = None,
) -> uuid.UUID:
    store.register_provider("scripted", provider)  # type: ignore[arg-type]
    agent = await store.create_agent(
        AgentDefinition(name="Helper", role="You help.", tools=tools or []),
        provider="scripted",
        model="roomy",
        client_tools=client_tools,
    )
    return await store.create_thread(agent, user_id="u1")


async def _saved(store: AgentStore, thread_id: uuid.UUID) -> list[Message]:
    return (await store.list_messages(thread_id, limit=1000)).items


async def _until(
    predicate: Callable[[], Awaitable[bool]], *, what: str, timeout: float = 15.0
) -> None:
    await wait_until(predicate, timeout=timeout, interval=0.05, what=what)


def _process(settings: Settings, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            str(HERE / "runs_process.py"),
            str(settings.database_url),
            REDIS_URL,
            settings.redis_prefix,
            str(settings.run_lease_seconds),
            *args,
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=HERE.parent.parent,
        env={**os.environ, "PYTHONPATH": str(HERE.parent.parent)},
    )


# --- the run row -------------------------------------------------------------------------


async def test_a_run_is_a_row_with_its_steps(ai: AgentStore) -> None:
    provider = ScriptedProvider([calls(call("add", a=2, b=3)), "It is 5."])
    thread = await _thread(ai, provider, tools=["add"])
    response = await ai.run(thread, "2+3?", metadata={"source": "test"})
    assert response.status == "completed"

    run = await ai.get_run(response.run_id)
    assert run.status == "completed" and run.thread_id == thread
    assert (run.provider, run.model) == ("scripted", "roomy")
    assert run.input == "2+3?" and run.metadata == {"source": "test"}
    assert (run.input_tokens, run.output_tokens) == (
        response.usage.input_tokens,
        response.usage.output_tokens,
    )
    assert run.cost == pytest.approx(response.cost)
    assert run.started_at and run.completed_at and run.lease_expires_at is None

    steps = await ai.list_run_steps(run.id)
    assert [(s.seq, s.type, s.status) for s in steps] == [
        (1, "message_creation", "completed"),
        (2, "tool_calls", "completed"),
        (3, "message_creation", "completed"),
    ]
    (entry,) = steps[1].details["tool_calls"]
    assert (entry["name"], entry["arguments"], entry["output"]) == ("add", {"a": 2, "b": 3}, "5")
    saved = await _saved(ai, thread)
    # Step message ids are the ids of the saved messages.
    assert steps[0].details["message_id"] == str(saved[1].id)
    assert steps[2].details["message_id"] == str(saved[3].id)
    assert entry["message_id"] == str(saved[2].id)
    page = await ai.list_runs(thread)
    assert [r.id for r in page.items] == [run.id]


async def test_list_runs_pages_newest_first(ai: AgentStore) -> None:
    thread = await _thread(ai, ScriptedProvider(["a", "b", "c"]))
    ids = [(await ai.run(thread, f"q{i}")).run_id for i in range(3)]
    first = await ai.list_runs(thread, limit=2)
    rest = await ai.list_runs(thread, limit=2, cursor=first.next_cursor)
    assert [r.id for r in first.items + rest.items] == ids[::-1]
    assert rest.next_cursor is None
    oldest = await ai.list_runs(thread, order="asc")
    assert [r.id for r in oldest.items] == ids
    with pytest.raises(NotFoundError):
        await ai.for_tenant("other").list_runs(thread)
    with pytest.raises(NotFoundError):
        await ai.for_tenant("other").get_run(ids[0])


async def test_one_active_run_per_thread_and_no_connection_held(
    fast_settings: Settings, redis_cleanup: None
) -> None:
    """30 runs on 30 threads whose model takes 0.5 s, on a pool of 2 connections: each
    run holds a connection only for its short statements, so all finish."""
    settings = dataclasses.replace(fast_settings, db_pool_size=2, db_max_overflow=0)
    started = 0

    async def slow(request: ProviderRequest) -> ProviderResponse:
        nonlocal started
        started += 1
        await asyncio.sleep(0.5)
        return ProviderResponse(content="done")

    async with AgentStore(settings=settings) as store:
        store.register_provider("scripted", FunctionProvider(slow))
        agent = await store.create_agent(
            AgentDefinition(name="A", role="r"), provider="scripted", model="m"
        )
        threads = [await store.create_thread(agent) for _ in range(30)]
        results = await asyncio.gather(*(store.run(t, "go") for t in threads))
        assert [r.content for r in results] == ["done"] * 30
        assert started == 30
        # The partial unique index refuses a second active run on one thread.
        url = str(settings.database_url)
        conn = await pg.connect(url)
        try:
            await conn.execute(
                "INSERT INTO runs (tenant_id, thread_id, agent_id, status, input) "
                "VALUES ('default', $1, $2, 'in_progress', 'a')",
                threads[0],
                agent,
            )
            with pytest.raises(asyncpg.UniqueViolationError):
                await conn.execute(
                    "INSERT INTO runs (tenant_id, thread_id, agent_id, status, input) "
                    "VALUES ('default', $1, $2, 'requires_action', 'b')",
                    threads[0],
                    agent,
                )
        finally:
            await conn.close()


async def test_waiting_runs_hold_no_connection_and_run_in_order(
    fast_settings: Settings, redis_cleanup: None
) -> None:
    """A busy thread with 8 waiters on a pool of 2: the waiters hold no connection (another
    thread's runs go on), and they run one at a time in arrival order."""
    settings = dataclasses.replace(fast_settings, db_pool_size=2, db_max_overflow=0)
    release = asyncio.Event()
    order: list[str] = []
    active = 0

    async def model(request: ProviderRequest) -> ProviderResponse:
        nonlocal active
        active += 1
        assert active == 1, "two runs of one thread called the model at once"
        text = request.messages[-1].text
        order.append(text)
        if text == "first":
            await release.wait()
        await asyncio.sleep(0.01)
        active -= 1
        return ProviderResponse(content=f"answer to {text}")

    async with AgentStore(settings=settings) as store:
        store.register_provider("scripted", FunctionProvider(model))
        agent = await store.create_agent(
            AgentDefinition(name="A", role="r"), provider="scripted", model="m"
        )
        busy, other = await store.create_thread(agent), await store.create_thread(agent)
        first = asyncio.ensure_future(store.run(busy, "first"))
        await _until(lambda: _true(order == ["first"]), what="the first run to call the model")
        waiters = []
        for i in range(8):
            waiters.append(asyncio.ensure_future(store.run(busy, f"w{i}")))
            await _until(lambda i=i: _queued(store, busy, i + 1), what=f"{i + 1} runs queued")
        # Another thread still gets connections: its run completes while 8 runs wait.
        store.register_provider("scripted", FunctionProvider(model))
        active = 0
        assert (await store.run(other, "meanwhile")).content == "answer to meanwhile"
        active = 1
        release.set()
        await first
        answers = await asyncio.gather(*waiters)
        assert [a.content for a in answers] == [f"answer to w{i}" for i in range(8)]
        assert order == ["first", "meanwhile", *[f"w{i}" for i in range(8)]]
        saved = [m.text for m in await _saved(store, busy) if m.role == "user"]
        assert saved == ["first", *[f"w{i}" for i in range(8)]]


async def _true(value: bool) -> bool:
    return value


async def _queued(store: AgentStore, thread: uuid.UUID, n: int) -> bool:
    runs = (await store.list_runs(thread, limit=100)).items
    return sum(r.status == "queued" for r in runs) == n


async def test_waiter_cap_and_reject(fast_settings: Settings, redis_cleanup: None) -> None:
    settings = dataclasses.replace(fast_settings, max_waiting_runs_per_thread=2)
    release = asyncio.Event()

    async def model(request: ProviderRequest) -> ProviderResponse:
        await release.wait()
        return ProviderResponse(content="ok")

    async with AgentStore(settings=settings) as store:
        store.register_provider("scripted", FunctionProvider(model))
        agent = await store.create_agent(
            AgentDefinition(name="A", role="r"), provider="scripted", model="m"
        )
        thread = await store.create_thread(agent)
        first = asyncio.ensure_future(store.run(thread, "first"))
        await _until(
            lambda: _status_count(store, thread, "in_progress", 1), what="a run in progress"
        )
        with pytest.raises(ThreadBusyError):
            await store.run(thread, "no wait", on_busy="reject")
        waiters = [asyncio.ensure_future(store.run(thread, f"w{i}")) for i in range(2)]
        await _until(lambda: _queued(store, thread, 2), what="2 runs queued")
        with pytest.raises(ThreadBusyError, match="2 runs waiting"):
            await store.run(thread, "one too many")
        # A waiter that gives up (busy_timeout) leaves the queue as expired.
        with pytest.raises(ThreadBusyError):
            await store.run(thread, "impatient", busy_timeout=0.01)
        release.set()
        await asyncio.gather(first, *waiters)
        statuses = sorted(r.status for r in (await store.list_runs(thread)).items)
        assert statuses == ["completed"] * 3


async def _status_count(store: AgentStore, thread: uuid.UUID, status: str, n: int) -> bool:
    runs = (await store.list_runs(thread, limit=100)).items
    return sum(r.status == status for r in runs) == n


# --- process death and leases ------------------------------------------------------------


async def test_killed_process_run_expires_and_frees_the_thread(
    ai: AgentStore, fast_settings: Settings
) -> None:
    thread = await _thread(ai, ScriptedProvider(["after the crash"]))
    proc = _process(fast_settings, "run", str(thread), "lost words")
    try:
        assert proc.stdout is not None
        line = await asyncio.to_thread(proc.stdout.readline)
        assert line.strip() == "started"
        (run,) = (await ai.list_runs(thread)).items
        assert run.status == "in_progress"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
    # Within the lease (1 s; checked every 50 ms), the run reads as expired.
    await _until(
        lambda: _status_is(ai, run.id, "expired"), what="the run expired", timeout=LEASE * 3
    )
    expired = await ai.get_run(run.id)
    assert expired.last_error and expired.last_error["code"] == "expired"
    response = await ai.run(thread, "hello again", on_busy="reject")
    assert response.content == "after the crash"
    saved = [m.text for m in await _saved(ai, thread)]
    assert saved == ["hello again", "after the crash"]  # nothing of the dead turn


async def _status_is(store: AgentStore, run_id: uuid.UUID, status: str) -> bool:
    return (await store.get_run(run_id)).status == status


async def test_a_run_whose_lease_was_taken_saves_nothing(ai: AgentStore) -> None:
    """Fencing: when another process expired this run (its process stalled past the
    lease), the run can no longer save its turn."""
    gate = asyncio.Event()

    async def stalled(request: ProviderRequest) -> ProviderResponse:
        await gate.wait()
        return ProviderResponse(content="too late")

    thread = await _thread(ai, FunctionProvider(stalled))
    task = asyncio.ensure_future(ai.run(thread, "go"))
    await _until(lambda: _status_count(ai, thread, "in_progress", 1), what="a run in progress")
    (run,) = (await ai.list_runs(thread)).items
    conn = await pg.connect(str(ai.settings.database_url))
    try:  # what the sweep of another process does to a run whose lease passed
        await conn.execute(
            "UPDATE runs SET status = 'expired', owner = NULL, lease_expires_at = NULL "
            "WHERE id = $1",
            run.id,
        )
    finally:
        await conn.close()
    gate.set()
    with pytest.raises(RunExpired):
        await task
    assert await _saved(ai, thread) == []
    assert (await ai.get_run(run.id)).status == "expired"


# --- requires_action ---------------------------------------------------------------------


@pytest.mark.parametrize("action_timeout", [60.0])
async def test_client_tool_pauses_the_run_and_another_process_resumes_it(
    ai: AgentStore, fast_settings: Settings
) -> None:
    provider = ScriptedProvider([calls(call("get_weather", city="Paris"))])
    thread = await _thread(ai, provider, client_tools=[WEATHER])
    paused = await ai.run(thread, "Weather in Paris?")
    assert paused.status == "requires_action" and paused.finish_reason == "requires_action"
    (pending,) = paused.required_action
    assert (pending.name, pending.arguments) == ("get_weather", {"city": "Paris"})
    run = await ai.get_run(paused.run_id)
    assert run.status == "requires_action" and run.expires_at is not None
    assert run.required_action == {
        "type": "submit_tool_outputs",
        "tool_calls": [{"id": pending.id, "name": "get_weather", "arguments": {"city": "Paris"}}],
    }
    assert await _saved(ai, thread) == []  # nothing of the turn until it completes
    with pytest.raises(ThreadBusyError):  # the thread stays reserved for the run
        await ai.run(thread, "meanwhile", on_busy="reject")

    proc = _process(fast_settings, "submit", str(run.id), pending.id, "sunny, 21 C")
    out, _ = await asyncio.to_thread(proc.communicate, timeout=60)
    assert proc.returncode == 0
    done = json.loads(out.strip().splitlines()[-1])
    assert done["status"] == "completed" and done["content"] == "The tool said: sunny, 21 C"

    finished = await ai.get_run(run.id)
    assert finished.status == "completed" and finished.required_action is None
    saved = await _saved(ai, thread)
    assert [(m.role, m.text) for m in saved] == [
        ("user", "Weather in Paris?"),
        ("assistant", ""),
        ("tool", "sunny, 21 C"),
        ("assistant", "The tool said: sunny, 21 C"),
    ]
    assert saved[2].tool_call_id == pending.id
    steps = await ai.list_run_steps(run.id)
    assert [s.status for s in steps] == ["completed"] * 3
    assert steps[1].details["tool_calls"][0]["client"] is True


async def test_mixed_server_and_client_calls(ai: AgentStore) -> None:
    provider = ScriptedProvider(
        [calls(call("add", a=1, b=2), call("get_weather", city="Oslo")), "3, and snow."]
    )
    thread = await _thread(ai, provider, tools=["add"], client_tools=[WEATHER])
    paused = await ai.run(thread, "both please")
    assert paused.status == "requires_action"
    assert [c.name for c in paused.required_action] == ["get_weather"]
    assert [(r.call.name, r.result) for r in paused.tool_calls] == [("add", "3")]
    (step_calls,) = [s for s in await ai.list_run_steps(paused.run_id) if s.type == "tool_calls"]
    assert step_calls.status == "in_progress"
    outputs = step_calls.details["tool_calls"]
    assert [(e["name"], e["output"]) for e in outputs] == [("add", "3"), ("get_weather", None)]

    with pytest.raises(ValidationError, match="missing outputs"):
        await ai.submit_tool_outputs(paused.run_id, [])
    with pytest.raises(ValidationError, match="does not wait"):
        await ai.submit_tool_outputs(paused.run_id, [{"tool_call_id": "nope", "output": "x"}])
    call_id = paused.required_action[0].id
    done = await ai.submit_tool_outputs(
        paused.run_id, [{"tool_call_id": call_id, "output": "snow"}]
    )
    assert done.status == "completed" and done.content == "3, and snow."
    # The model's second request had both results after its calls, in call order.
    second = provider.requests[1].messages
    assert [(m.role, m.text) for m in second[-3:]] == [
        ("assistant", ""),
        ("tool", "3"),
        ("tool", "snow"),
    ]
    with pytest.raises(RunStateError):
        await ai.submit_tool_outputs(paused.run_id, [{"tool_call_id": call_id, "output": "x"}])
    saved = await _saved(ai, thread)
    assert [m.role for m in saved] == ["user", "assistant", "tool", "tool", "assistant"]
    usage = await ai.usage(thread_id=thread)
    assert usage.input_tokens == done.usage.input_tokens


async def test_unanswered_run_expires_and_frees_the_thread(ai: AgentStore) -> None:
    provider = ScriptedProvider([calls(call("get_weather", city="Rome")), "fine"])
    thread = await _thread(ai, provider, client_tools=[WEATHER])
    paused = await ai.run(thread, "Rome?")
    # run_action_timeout is 2 s in this test.
    await _until(
        lambda: _status_is(ai, paused.run_id, "expired"), what="the paused run expired", timeout=10
    )
    with pytest.raises(RunStateError):
        await ai.submit_tool_outputs(
            paused.run_id, [{"tool_call_id": paused.required_action[0].id, "output": "x"}]
        )
    assert (await ai.run(thread, "again", on_busy="reject")).content == "fine"
    assert [m.text for m in await _saved(ai, thread)] == ["again", "fine"]


async def test_submit_streamed(ai: AgentStore) -> None:
    provider = ScriptedProvider([calls(call("get_weather", city="Lima")), "warm"])
    thread = await _thread(ai, provider, client_tools=[WEATHER])
    paused = await ai.run(thread, "Lima?")
    outputs = [{"tool_call_id": paused.required_action[0].id, "output": "warm"}]
    events = [e async for e in ai.stream_tool_outputs(paused.run_id, outputs)]
    assert isinstance(events[0], RunStartedEvent) and events[0].run_id == paused.run_id
    assert isinstance(events[-1], DoneEvent) and events[-1].response.content == "warm"
    assert any(isinstance(e, TextDeltaEvent) for e in events)


# --- cancel ------------------------------------------------------------------------------


async def test_cancel_in_every_state(ai: AgentStore, fast_settings: Settings) -> None:
    seen: list[str] = []
    abandoned = asyncio.Event()

    async def model(request: ProviderRequest) -> ProviderResponse:
        text = request.messages[-1].text
        seen.append(text)
        if text.startswith("slow"):
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                abandoned.set()  # the model call in flight is abandoned
                raise
        if text == "client":
            return calls(call("get_weather", city="Bern"))
        return ProviderResponse(content=f"answer to {text}")

    thread = await _thread(ai, FunctionProvider(model), client_tools=[WEATHER])

    # in progress, cancelled from another process
    running = asyncio.ensure_future(ai.run(thread, "slow sync"))
    await _until(lambda: _true(seen == ["slow sync"]), what="the sync run to call the model")
    (run,) = (await ai.list_runs(thread)).items
    # queued behind it
    queued = asyncio.ensure_future(ai.run(thread, "queued one"))
    await _until(lambda: _queued(ai, thread, 1), what="1 run queued")
    waiting = next(r for r in (await ai.list_runs(thread)).items if r.status == "queued")
    assert (await ai.cancel_run(waiting.id)).status == "cancelled"
    with pytest.raises(RunCancelled):
        await queued
    proc = _process(fast_settings, "cancel", str(run.id))
    out, _ = await asyncio.to_thread(proc.communicate, timeout=60)
    assert out.strip() in ("cancelling", "cancelled")
    with pytest.raises(RunCancelled):
        await running
    await asyncio.wait_for(abandoned.wait(), 5)
    assert (await ai.get_run(run.id)).status == "cancelled"

    # streamed
    abandoned.clear()
    stream = ai.stream(thread, "slow stream")
    first = await anext(stream)
    assert isinstance(first, RunStartedEvent)
    consume = asyncio.ensure_future(anext(stream))
    await _until(
        lambda: _true(seen[-1] == "slow stream"), what="the streamed run to call the model"
    )
    assert (await ai.cancel_run(first.run_id)).status in ("cancelling", "cancelled")
    with pytest.raises(RunCancelled):
        await consume
    await asyncio.wait_for(abandoned.wait(), 5)
    assert (await ai.get_run(first.run_id)).status == "cancelled"

    # requires_action
    paused = await ai.run(thread, "client")
    assert paused.status == "requires_action"
    cancelled = await ai.cancel_run(paused.run_id)
    assert cancelled.status == "cancelled" and cancelled.required_action is None
    steps = await ai.list_run_steps(paused.run_id)
    assert [s.status for s in steps] == ["completed", "cancelled"]

    # a finished run is unchanged
    done = await ai.run(thread, "quick", on_busy="reject")
    assert (await ai.cancel_run(done.run_id)).status == "completed"
    assert [m.text for m in await _saved(ai, thread)] == ["quick", "answer to quick"]


async def test_idempotent_run_replays_the_saved_turn(ai: AgentStore) -> None:
    provider = ScriptedProvider(["once"])
    thread = await _thread(ai, provider)
    first = await ai.run(thread, "hi", idempotency_key="k1")
    again = await ai.run(thread, "hi", idempotency_key="k1")
    assert again.replayed and again.run_id == first.run_id and again.content == "once"
    assert len((await ai.list_runs(thread)).items) == 1


async def test_background_job_runs_its_queued_run(ai: AgentStore) -> None:
    from ai_agents.jobs.queue import job_queue
    from ai_agents.workers import WorkerConfig, WorkerPool

    thread = await _thread(ai, ScriptedProvider(["from the worker"]))
    job_id = await ai.enqueue_run(thread, "later")
    job = await ai.get_job(job_id)
    assert job.run_id is not None
    queued = await ai.get_run(job.run_id)
    assert queued.status == "queued" and queued.job_id == job_id
    await WorkerPool(ai, WorkerConfig(burst=True, poll_interval=0.05)).run()
    done = await job_queue(ai).get_result(job_id, timeout=10)
    assert done.response is not None and done.response.run_id == job.run_id
    assert (await ai.get_run(job.run_id)).status == "completed"


async def test_the_end_of_a_run_finds_waiters_with_an_index(ai: AgentStore) -> None:
    """Every run ends by asking "does a run wait for this thread?": on a thread with many
    finished runs that is a scan of the partial index of queued runs, not of its history."""
    thread = await _thread(ai, ScriptedProvider([]))
    conn = await pg.connect(str(ai.settings.database_url))
    try:
        agent = await conn.fetchval("SELECT agent_id FROM threads WHERE id = $1", thread)
        await conn.execute(
            "INSERT INTO runs (tenant_id, thread_id, agent_id, status, input) "
            "SELECT 'default', $1, $2, 'completed', 'x' FROM generate_series(1, 20000)",
            thread,
            agent,
        )
        await conn.execute("ANALYZE runs")
        plan = "\n".join(
            r[0]
            for r in await conn.fetch(
                "EXPLAIN SELECT EXISTS (SELECT 1 FROM runs w "
                "WHERE w.thread_id = $1 AND w.status = 'queued')",
                thread,
            )
        )
    finally:
        await conn.close()
    assert "ix_runs_waiting" in plan, plan


async def test_waiter_cap_per_tenant(fast_settings: Settings, redis_cleanup: None) -> None:
    """One tenant cannot fill the waiting room: its waiters across all its threads are
    capped, and another tenant's runs still wait."""
    settings = dataclasses.replace(fast_settings, max_waiting_runs_per_tenant=2)
    release = asyncio.Event()

    async def model(request: ProviderRequest) -> ProviderResponse:
        await release.wait()
        return ProviderResponse(content="ok")

    async with AgentStore(settings=settings) as admin:
        admin.register_provider("scripted", FunctionProvider(model))
        a, b = admin.for_tenant("a"), admin.for_tenant("b")
        threads = {}
        for name, view in (("a", a), ("b", b)):
            agent = await view.create_agent(
                AgentDefinition(name="A", role="r"), provider="scripted", model="m"
            )
            threads[name] = [await view.create_thread(agent) for _ in range(2)]
        busy = [asyncio.ensure_future(a.run(t, "hold")) for t in threads["a"]]
        busy.append(asyncio.ensure_future(b.run(threads["b"][0], "hold")))
        for view, thread in ((a, threads["a"][0]), (a, threads["a"][1]), (b, threads["b"][0])):
            await _until(
                lambda v=view, t=thread: _status_count(v, t, "in_progress", 1),
                what="a run in progress on each held thread",
            )
        waiting = [
            asyncio.ensure_future(a.run(threads["a"][0], "w1")),
            asyncio.ensure_future(a.run(threads["a"][1], "w2")),
        ]
        await _until(lambda: _queued(a, threads["a"][0], 1), what="tenant a's first waiter")
        await _until(lambda: _queued(a, threads["a"][1], 1), what="tenant a's second waiter")
        with pytest.raises(ThreadBusyError, match="this tenant already has 2 runs waiting") as err:
            await a.run(threads["a"][1], "w3", busy_timeout=3)
        assert err.value.details["waiting_cap"] == "tenant"
        waiting.append(asyncio.ensure_future(b.run(threads["b"][0], "b waits")))
        # tenant b is not affected
        await _until(lambda: _queued(b, threads["b"][0], 1), what="tenant b's waiter")
        release.set()
        results = await asyncio.gather(*busy, *waiting)
        assert all(r.content == "ok" for r in results)


async def test_a_waiter_starting_beside_a_heartbeat_cannot_deadlock(ai: AgentStore) -> None:
    """A heartbeat renews, in one statement, the lease of a thread's active run and of a run
    waiting for that thread. If the waiter's START could update its row while the active
    run's row is being renewed, each would wait for the other (PostgreSQL: deadlock).
    Replayed step by step on two connections: START must not wait at all."""
    from ai_agents.runs import rows

    gate = asyncio.Event()

    async def hold(request: ProviderRequest) -> ProviderResponse:
        await gate.wait()
        return ProviderResponse(content="ok")

    thread = await _thread(ai, FunctionProvider(hold))
    first = asyncio.ensure_future(ai.run(thread, "hold"))
    await _until(lambda: _status_count(ai, thread, "in_progress", 1), what="a run in progress")
    waiter = asyncio.ensure_future(ai.run(thread, "wait"))
    await _until(lambda: _queued(ai, thread, 1), what="1 run queued")
    runs = {r.status: r.id for r in (await ai.list_runs(thread)).items}
    url = str(ai.settings.database_url)
    beat, start = await pg.connect(url), await pg.connect(url)
    try:
        async with beat.transaction():
            await beat.execute(  # the heartbeat has renewed the active run's row ...
                "UPDATE runs SET lease_expires_at = now() + interval '30 s' WHERE id = $1",
                runs["in_progress"],
            )
            # ... when the head waiter tries to take the thread: it must not wait for that.
            started = await asyncio.wait_for(
                start.fetchrow(rows.START, runs["queued"], "other-process", 30.0), 5
            )
            assert started is not None and started["run_created_at"] is None
            await beat.execute(  # the heartbeat goes on to the waiter's row
                "UPDATE runs SET lease_expires_at = now() + interval '30 s' WHERE id = $1",
                runs["queued"],
            )
    finally:
        await beat.close()
        await start.close()
    gate.set()
    assert [(await first).content, (await waiter).content] == ["ok", "ok"]
