"""Run leases and the process's run supervisor on the real PostgreSQL and Redis: the
cases the mutation run (``make mutation``) showed unchecked in
:mod:`ai_agents.runs.supervisor` and :mod:`ai_agents.runs.rows`.

A run row is written here directly where a test needs a state no public call leaves a
run in for long (``cancelling`` under this process, a lease in the past).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from sqlalchemy import text

from ai_agents import AgentDefinition, AgentStore, Settings
from ai_agents import runner as runner_module
from ai_agents.errors import NotFoundError, RunCancelled
from ai_agents.messages import ToolCall
from ai_agents.providers.base import ProviderRequest, ProviderResponse, Usage
from ai_agents.providers.registry import ModelLimits, get_registry
from ai_agents.runs import rows
from ai_agents.runs.supervisor import LiveRun, RunSupervisor
from ai_agents.testing import FunctionProvider
from tests import pg
from tests.waiting import wait_until

DEFINITION = AgentDefinition(name="Leased", role="You help.")


@pytest.fixture
async def ai(settings: Settings, redis_cleanup: None) -> AsyncIterator[AgentStore]:
    store = AgentStore(settings=replace(settings, run_lease_seconds=1.0))
    try:
        yield store
    finally:
        await store.close()


def supervisor(store: AgentStore) -> RunSupervisor:
    return store.runner.supervisor


async def _thread(store: AgentStore) -> tuple[uuid.UUID, uuid.UUID]:
    agent = await store.create_agent(DEFINITION, provider="openai", model="gpt-4o")
    return agent, await store.create_thread(agent)


async def _run_row(
    store: AgentStore, *, status: str, owner: str | None, lease: float = 10.0
) -> uuid.UUID:
    agent, thread = await _thread(store)
    run_id = uuid.uuid4()
    async with store.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO runs (id, tenant_id, thread_id, agent_id, status, input, owner, "
                "lease_expires_at) VALUES (:id, 'default', :thread, :agent, :status, 'x', "
                ":owner, now() + make_interval(secs => :lease))"
            ),
            {
                "id": run_id,
                "thread": thread,
                "agent": agent,
                "status": status,
                "owner": owner,
                "lease": lease,
            },
        )
    return run_id


async def _status(store: AgentStore, run_id: uuid.UUID) -> tuple[str, str | None]:
    async with store.engine.connect() as conn:
        row = (
            await conn.execute(
                text("SELECT status, owner FROM runs WHERE id = :id"), {"id": run_id}
            )
        ).one()
    return row[0], row[1]


async def test_a_heartbeat_interrupts_a_run_whose_row_is_no_longer_ours(ai: AgentStore) -> None:
    sup = supervisor(ai)
    lost = await _run_row(ai, status="in_progress", owner="another-process")
    task = sup.launch(lost, asyncio.sleep(60))
    live = sup.live(lost)
    assert live is not None and (live.run_id, live.task) == (lost, task)
    await sup.beat()
    assert live.reason == "lost"
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sup.live(lost) is None  # a finished task leaves the list


async def test_a_heartbeat_brings_a_cancel_requested_elsewhere(ai: AgentStore) -> None:
    sup = supervisor(ai)
    run_id = await _run_row(ai, status="cancelling", owner=sup.owner)
    task = sup.launch(run_id, asyncio.sleep(60))
    live = sup.live(run_id)
    await sup.beat()
    assert live is not None and live.reason == "cancelled"
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_heartbeat_leaves_a_run_of_ours_alone_and_extends_its_lease(
    ai: AgentStore,
) -> None:
    sup = supervisor(ai)
    run_id = await _run_row(ai, status="in_progress", owner=sup.owner, lease=1.0)
    task = sup.launch(run_id, asyncio.sleep(60))
    await sup.beat()
    assert sup.live(run_id).reason is None and not task.done()  # type: ignore[union-attr]
    async with ai.engine.connect() as conn:
        left = (
            await conn.execute(
                text(
                    "SELECT extract(epoch FROM lease_expires_at - now()) FROM runs WHERE id = :id"
                ),
                {"id": run_id},
            )
        ).scalar_one()
    assert 0.5 < float(left) <= 1.0  # now + the lease (1 s)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_waiting_run_keeps_its_lease_and_is_never_interrupted(ai: AgentStore) -> None:
    sup = supervisor(ai)
    run_id = await _run_row(ai, status="queued", owner=sup.owner, lease=1.0)
    with sup.waiting(run_id):
        await asyncio.sleep(1.5)  # past the lease: only the heartbeat kept it
        assert (await _status(ai, run_id)) == ("queued", sup.owner)
    await asyncio.sleep(1.5)
    await sup.beat()  # no longer listed: its lease runs out and the sweep expires it
    assert (await _status(ai, run_id)) == ("expired", None)


async def test_interrupting_only_a_live_unsettled_run_once(ai: AgentStore) -> None:
    sup = supervisor(ai)
    assert sup.interrupt(uuid.uuid4()) is False  # not executing here
    run_id = uuid.uuid4()
    task = sup.launch(run_id, asyncio.sleep(60))
    sup.settling(run_id)
    assert sup.interrupt(run_id) is False  # writing its end: the row's fencing decides
    assert not task.cancelled() and sup.live(run_id).reason is None  # type: ignore[union-attr]
    sup.live(run_id).settling = False  # type: ignore[union-attr]
    assert sup.interrupt(run_id, "lost") is True
    assert sup.live(run_id).reason == "lost"  # type: ignore[union-attr]
    assert sup.interrupt(run_id, "cancelled") is False  # the first reason stands
    assert sup.live(run_id).reason == "lost"  # type: ignore[union-attr]
    with pytest.raises(asyncio.CancelledError):
        await task
    other = uuid.uuid4()
    stopped = sup.launch(other, asyncio.sleep(60))
    live = sup.live(other)
    assert sup.interrupt(other) is True  # a cancel, unless told otherwise
    assert live is not None and live.reason == "cancelled"
    with pytest.raises(asyncio.CancelledError):
        await stopped
    # Listed, but with no task (yet) or a task that already ended: nothing to stop.
    finished = asyncio.get_running_loop().create_task(asyncio.sleep(0))
    await finished
    for task_of_run in (None, finished):
        ident = uuid.uuid4()
        sup._live[ident] = LiveRun(ident, task_of_run)
        assert sup.interrupt(ident) is False
        assert sup._live.pop(ident).reason is None


async def test_a_cancel_from_another_process_stops_the_run_before_any_heartbeat(
    settings: Settings, redis_cleanup: None
) -> None:
    """The cancel is announced on Redis: with a 60 s lease, no heartbeat brings it."""
    get_registry().register(
        "scripted", "roomy", ModelLimits(100_000, 1000, 100_000, 100_000_000, True, False, 3, 15)
    )
    called = asyncio.Event()
    abandoned = asyncio.Event()

    async def model(request: ProviderRequest) -> ProviderResponse:
        called.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            abandoned.set()
            raise
        return ProviderResponse(content="never")

    long_lease = replace(settings, run_lease_seconds=60.0)
    here, there = AgentStore(settings=long_lease), AgentStore(settings=long_lease)
    try:
        here.register_provider("scripted", FunctionProvider(model))
        agent = await here.create_agent(DEFINITION, provider="scripted", model="roomy")
        thread = await here.create_thread(agent)
        running = asyncio.ensure_future(here.run(thread, "slow"))
        await asyncio.wait_for(called.wait(), 15)
        (run,) = (await there.list_runs(thread)).items
        assert (await there.cancel_run(run.id)).status in ("cancelling", "cancelled")
        with pytest.raises(RunCancelled):
            await asyncio.wait_for(running, 10)
        assert abandoned.is_set()
        assert (await there.get_run(run.id)).status == "cancelled"
    finally:
        await here.close()
        await there.close()


WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city (the caller looks it up).",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


async def test_run_and_step_records_are_their_rows_field_by_field(ai: AgentStore) -> None:
    get_registry().register(
        "scripted", "roomy", ModelLimits(100_000, 1000, 100_000, 100_000_000, True, False, 3, 15)
    )
    script = iter(
        [
            ProviderResponse(tool_calls=[ToolCall("c1", "get_weather", {})]),
            ProviderResponse(content="sunny", usage=Usage(7, 2)),
        ]
    )

    def model(request: ProviderRequest) -> ProviderResponse:
        if request.messages[-1].text == "fail":
            raise ValueError("the model broke")
        return next(script)

    ai.register_provider("scripted", FunctionProvider(model))
    agent = await ai.create_agent(
        DEFINITION, provider="scripted", model="roomy", client_tools=[WEATHER]
    )
    thread = await ai.create_thread(agent)
    paused = await ai.run(
        thread, "weather?", idempotency_key="k1", metadata={"m": 1}, temperature=0.5
    )
    assert paused.status == "requires_action"
    await _check_run(ai, paused.run_id)  # requires_action: required_action, expires_at
    done = await ai.submit_tool_outputs(
        paused.run_id, [{"tool_call_id": "c1", "output": "sunny, 20 C"}]
    )
    await _check_run(ai, done.run_id)  # completed: provider, model, usage, times
    async with ai.engine.begin() as conn:  # no path writes a step error yet: map one anyway
        await conn.execute(
            text(
                'UPDATE run_steps SET last_error = \'{"code": "x"}\'::jsonb '
                "WHERE run_id = :id AND seq = 1"
            ),
            {"id": done.run_id},
        )
    steps = await ai.list_run_steps(done.run_id)
    async with ai.engine.connect() as conn:
        rows = (
            (
                await conn.execute(
                    text("SELECT * FROM run_steps WHERE run_id = :id ORDER BY seq"),
                    {"id": done.run_id},
                )
            )
            .mappings()
            .all()
        )
    assert len(steps) == len(rows) >= 3
    for step, row in zip(steps, rows, strict=True):
        assert {f: getattr(step, f) for f in _STEP_FIELDS} == {f: row[f] for f in _STEP_FIELDS}
    assert steps[0].last_error == {"code": "x"}
    with pytest.raises(Exception, match="the model broke"):  # a run that fails
        await ai.run(thread, "fail", on_busy="reject")
    failed = [r for r in (await ai.list_runs(thread)).items if r.status == "failed"]
    assert len(failed) == 1 and failed[0].last_error is not None
    await _check_run(ai, failed[0].id)  # failed: last_error, failed_at


_STEP_FIELDS = (
    "id",
    "run_id",
    "thread_id",
    "seq",
    "type",
    "status",
    "details",
    "provider",
    "model",
    "input_tokens",
    "output_tokens",
    "cost",
    "last_error",
    "created_at",
    "completed_at",
)


async def _check_run(store: AgentStore, run_id: uuid.UUID) -> None:
    record = await store.get_run(run_id)
    async with store.engine.connect() as conn:
        row = (
            (await conn.execute(text("SELECT * FROM runs WHERE id = :id"), {"id": run_id}))
            .mappings()
            .one()
        )
    fields = [f.name for f in dataclasses.fields(record)]
    assert {f: getattr(record, f) for f in fields} == {f: row[f] for f in fields}
    listed = [r for r in (await store.list_runs(record.thread_id)).items if r.id == run_id]
    assert listed == [record]


async def _queue(
    database_url: str,
    thread: uuid.UUID,
    tenant: str | None,
    *,
    thread_cap: int = 100,
    tenant_cap: int = 100,
) -> str | None:
    conn = await pg.connect(database_url)
    try:
        return await rows.queue_waiting(
            conn,
            run_id=uuid.uuid4(),
            thread_id=thread,
            tenant_id=tenant,
            text="wait",
            overrides={},
            metadata={},
            idempotency_key=None,
            owner="o",
            lease=30.0,
            wait=30.0,
            thread_cap=thread_cap,
            tenant_cap=tenant_cap,
        )
    finally:
        await conn.close()


async def test_a_run_waits_only_on_a_thread_of_its_tenant(ai: AgentStore) -> None:
    a = ai.for_tenant("tenant-a")
    agent = await a.create_agent(DEFINITION, provider="openai", model="gpt-4o")
    thread = await a.create_thread(agent)
    url = str(ai.settings.database_url)
    for tenant in ("tenant-b", "default"):
        with pytest.raises(NotFoundError) as info:
            await _queue(url, thread, tenant)
        assert (info.value.kind, info.value.ident) == ("thread", thread)
    assert (await a.list_runs(thread)).items == []
    assert await _queue(url, thread, "tenant-a") is None
    assert await _queue(url, thread, None) is None  # the admin scope sees every tenant
    assert [r.status for r in (await a.list_runs(thread)).items] == ["queued", "queued"]


async def test_waiting_caps_hold_for_runs_queued_at_once(ai: AgentStore) -> None:
    """The caps are counted under advisory locks: concurrent callers never exceed them."""
    agent = await ai.create_agent(DEFINITION, provider="openai", model="gpt-4o")
    threads = [await ai.create_thread(agent) for _ in range(4)]
    url = str(ai.settings.database_url)
    results = await asyncio.gather(
        *(_queue(url, t, None, tenant_cap=3) for t in threads for _ in range(3))
    )
    assert sorted(r or "queued" for r in results) == ["queued"] * 3 + ["tenant"] * 9
    lone = await ai.create_thread(agent)
    on_one = await asyncio.gather(*(_queue(url, lone, None, thread_cap=2) for _ in range(8)))
    assert sorted(r or "queued" for r in on_one) == ["queued"] * 2 + ["thread"] * 6


@pytest.mark.parametrize("where", ["same process", "another process"])
async def test_a_waiting_run_starts_as_soon_as_the_thread_is_released(
    settings: Settings, redis_cleanup: None, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """The release is announced (in the process, and on Redis to the others): with the
    fallback re-check a minute away, only the announcement can wake the waiting run."""
    monkeypatch.setattr(runner_module, "RECHECK_SECONDS", 60.0)
    get_registry().register(
        "scripted", "roomy", ModelLimits(100_000, 1000, 100_000, 100_000_000, True, False, 3, 15)
    )
    gate = asyncio.Event()

    async def model(request: ProviderRequest) -> ProviderResponse:
        if request.messages[-1].text == "first":
            await gate.wait()
        return ProviderResponse(content=f"answer to {request.messages[-1].text}")

    here = AgentStore(settings=settings)
    there = here if where == "same process" else AgentStore(settings=settings)
    try:
        for store in {id(here): here, id(there): there}.values():
            store.register_provider("scripted", FunctionProvider(model))
        agent = await here.create_agent(DEFINITION, provider="scripted", model="roomy")
        thread = await here.create_thread(agent)
        first = asyncio.ensure_future(here.run(thread, "first"))
        await wait_until(lambda: _has_run(here, thread, "in_progress"), what="the first run")
        second = asyncio.ensure_future(there.run(thread, "second"))
        await wait_until(lambda: _has_run(here, thread, "queued"), what="the second to wait")
        await asyncio.sleep(0.2)  # it checked the thread once and sleeps until woken
        gate.set()
        assert (await asyncio.wait_for(first, 10)).content == "answer to first"
        assert (await asyncio.wait_for(second, 10)).content == "answer to second"
    finally:
        await here.close()
        if there is not here:
            await there.close()


async def _has_run(store: AgentStore, thread: uuid.UUID, status: str) -> bool:
    return any(r.status == status for r in (await store.list_runs(thread)).items)


async def test_a_waiting_run_row_keeps_what_its_caller_gave(ai: AgentStore) -> None:
    """Its overrides and metadata (listed while it waits, read by whichever process starts
    it), its owner, and the lease and wait deadline that let the sweeps expire it."""
    _, thread = await _thread(ai)
    run_id = uuid.uuid4()
    conn = await pg.connect(str(ai.settings.database_url))
    try:
        queued = await rows.queue_waiting(
            conn,
            run_id=run_id,
            thread_id=thread,
            tenant_id=None,
            text="wait",
            overrides={"temperature": 0.5},
            metadata={"order": "A-17"},
            idempotency_key="k-1",
            owner="process-7",
            lease=30.0,
            wait=600.0,
            thread_cap=100,
            tenant_cap=100,
        )
        row = await conn.fetchrow(
            "SELECT status, input, overrides, metadata, idempotency_key, owner,"
            " extract(epoch FROM lease_expires_at - now()) AS lease,"
            " extract(epoch FROM expires_at - now()) AS wait FROM runs WHERE id = $1",
            run_id,
        )
    finally:
        await conn.close()
    assert queued is None
    assert (row["status"], row["input"], row["idempotency_key"], row["owner"]) == (
        "queued",
        "wait",
        "k-1",
        "process-7",
    )
    assert json.loads(row["overrides"]) == {"temperature": 0.5}
    assert json.loads(row["metadata"]) == {"order": "A-17"}
    assert 25 < row["lease"] <= 30
    assert 595 < row["wait"] <= 600
    record = await ai.get_run(run_id)
    assert (record.status, record.metadata) == ("queued", {"order": "A-17"})


async def test_listing_the_runs_of_a_missing_thread_names_it(ai: AgentStore) -> None:
    missing = uuid.uuid4()
    with pytest.raises(NotFoundError) as info:
        await ai.list_runs(missing)
    assert (info.value.kind, info.value.ident) == ("thread", missing)
    _, thread = await _thread(ai)
    with pytest.raises(NotFoundError) as info:
        await ai.for_tenant("someone-else").list_runs(thread)
    assert (info.value.kind, info.value.ident) == ("thread", thread)


async def test_a_missing_run_is_named_when_read(ai: AgentStore) -> None:
    missing = uuid.uuid4()
    with pytest.raises(NotFoundError) as info:
        await ai.get_run(missing)
    assert (info.value.kind, info.value.ident) == ("run", missing)


async def _finished_runs(store: AgentStore, count: int) -> tuple[uuid.UUID, list[uuid.UUID]]:
    """*count* finished runs on one thread, one second apart, oldest first."""
    agent, thread = await _thread(store)
    made = [uuid.uuid4() for _ in range(count)]
    async with store.engine.begin() as conn:
        for age, run_id in zip(range(count, 0, -1), made, strict=True):
            await conn.execute(
                text(
                    "INSERT INTO runs (id, tenant_id, thread_id, agent_id, status, input, "
                    "created_at) VALUES (:id, 'default', :thread, :agent, 'completed', 'x', "
                    "now() - make_interval(secs => :age))"
                ),
                {"id": run_id, "thread": thread, "agent": agent, "age": age},
            )
    return thread, made


@pytest.mark.parametrize("order", ["asc", "desc"])
async def test_run_pages_follow_each_other_in_both_orders(ai: AgentStore, order: str) -> None:
    thread, made = await _finished_runs(ai, 5)
    expected = made if order == "asc" else made[::-1]
    first = await ai.list_runs(thread, limit=3, order=order)
    assert [r.id for r in first.items] == expected[:3] and first.next_cursor is not None
    rest = await ai.list_runs(thread, limit=3, order=order, cursor=first.next_cursor)
    assert [r.id for r in rest.items] == expected[3:] and rest.next_cursor is None
    whole = await ai.list_runs(thread, limit=5, order=order)  # exactly the rest: no more
    assert [r.id for r in whole.items] == expected and whole.next_cursor is None


async def test_cancelled_and_incomplete_runs_read_back_their_details(ai: AgentStore) -> None:
    thread, (cancelled, incomplete) = await _finished_runs(ai, 2)
    async with ai.engine.begin() as conn:
        await conn.execute(
            text("UPDATE runs SET status = 'cancelled', cancelled_at = now() WHERE id = :id"),
            {"id": cancelled},
        )
        await conn.execute(
            text(
                "UPDATE runs SET status = 'incomplete', incomplete_details = "
                '\'{"reason": "max_output_tokens"}\'::jsonb WHERE id = :id'
            ),
            {"id": incomplete},
        )
    await _check_run(ai, cancelled)
    await _check_run(ai, incomplete)
    assert (await ai.get_run(cancelled)).cancelled_at is not None
    assert (await ai.get_run(incomplete)).incomplete_details == {"reason": "max_output_tokens"}
