"""Saving a turn on the real PostgreSQL, pinned exactly: the cases the mutation run
(``make mutation``) showed unchecked in :mod:`ai_agents.db.messages` (``append_turn``
and its refusals), :mod:`ai_agents.runs.pg` (``save_turn``, ``replay_of``) and the
idempotent replay."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import text

from ai_agents import AgentDefinition, AgentStore
from ai_agents import runner as runner_module
from ai_agents.db import messages as message_rows
from ai_agents.db.scope import Scope
from ai_agents.errors import LimitExceeded, NotFoundError, RunExpired
from ai_agents.messages import Message, ToolCall
from ai_agents.providers.base import ProviderRequest, ProviderResponse, Usage
from ai_agents.providers.registry import ModelLimits, get_registry
from ai_agents.testing import FunctionProvider
from tests.waiting import wait_until

DEFINITION = AgentDefinition(name="Saver", role="You help.")


async def _thread(store: AgentStore, user_id: str | None = "u1") -> uuid.UUID:
    agent = await store.create_agent(DEFINITION, provider="openai", model="gpt-4o")
    return await store.create_thread(agent, user_id=user_id)


async def test_every_field_of_a_saved_message_is_kept(store: AgentStore) -> None:
    thread = await _thread(store)
    ident = uuid.uuid4()
    run_id = uuid.uuid4()
    call = ToolCall("c1", "lookup", {"q": "x"})
    batch = [
        Message(
            id=ident,
            role="assistant",
            content="let me see",
            tool_calls=[call],
            metadata={"k": "v"},
            token_count=7,
            provider="openai",
            model="gpt-4o",
            input_tokens=11,
            output_tokens=3,
            cost=0.5,
        ),
        Message(role="tool", content="found", tool_call_id="c1", tool_name="lookup"),
    ]
    saved = await store.add_messages(thread, batch, run_id=run_id, idempotency_key="k1")
    first, second = saved
    assert (first.id, first.seq, first.thread_id) == (ident, 1, thread)
    assert (second.seq, second.thread_id) == (2, thread)
    assert isinstance(second.id, uuid.UUID) and second.id != ident
    assert first.created_at is not None and second.created_at is not None
    assert (first.role, first.content, first.tool_calls, first.metadata) == (
        "assistant",
        "let me see",
        [call],
        {"k": "v"},
    )
    assert (first.token_count, first.provider, first.model) == (7, "openai", "gpt-4o")
    assert (first.input_tokens, first.output_tokens, first.cost) == (11, 3, 0.5)
    assert (second.tool_call_id, second.tool_name) == ("c1", "lookup")
    # What was read back is what was returned.
    listed = (await store.list_messages(thread)).items
    assert [(m.id, m.seq, m.content, m.tool_calls, m.metadata) for m in listed] == [
        (m.id, m.seq, m.content, m.tool_calls, m.metadata) for m in saved
    ]
    assert (listed[0].provider, listed[0].input_tokens, listed[0].cost) == ("openai", 11, 0.5)
    record = await store.get_thread(thread)
    assert (record.message_count, record.last_seq) == (2, 2)
    assert record.total_bytes == sum(m.byte_size() for m in batch)


@pytest.mark.parametrize(
    ("scope", "limits", "first", "second"),
    [
        ("thread", {"max_thread_bytes": 100, "max_user_bytes": 1000}, 60, 50),
        ("user", {"max_thread_bytes": 1000, "max_user_bytes": 100}, 70, 40),
        ("tenant", {"max_total_bytes": 100}, 80, 30),
    ],
)
async def test_a_refused_save_names_its_limit_and_both_sizes(
    store: AgentStore, scope: str, limits: dict[str, int], first: int, second: int
) -> None:
    await store.set_tenant_limits("default", **limits)
    one = await _thread(store)
    other = (
        one
        if scope == "thread"
        else await store.create_thread(
            (await store.get_thread(one)).agent_id, user_id="u1" if scope == "user" else "u2"
        )
    )
    await store.add_message(one, "user", "a" * first)
    with pytest.raises(LimitExceeded) as info:
        await store.add_message(other, "user", "b" * second)
    assert info.value.details == {
        "scope": scope,
        "limit": 100,
        "current": first,
        "attempted": second,
    }
    assert info.value.scope == scope and info.value.limit == 100


async def test_saving_to_a_missing_thread_is_not_found(store: AgentStore) -> None:
    missing = uuid.uuid4()
    with pytest.raises(NotFoundError) as info:
        await store.add_messages(missing, [Message(role="user", content="hi")])
    assert (info.value.kind, info.value.ident) == ("thread", missing)


async def test_a_delivery_waiting_behind_its_own_key_replays_the_saved_turn(
    store: AgentStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two deliveries of one request: the second waits for the thread, finds the first's
    turn saved under the key, gives its run row back and answers the saved turn; a third
    run waiting behind it is woken at once (the fallback re-check is a minute away)."""
    monkeypatch.setattr(runner_module, "RECHECK_SECONDS", 60.0)
    get_registry().register(
        "scripted", "roomy", ModelLimits(100_000, 1000, 100_000, 100_000_000, True, False, 3, 15)
    )
    gate = asyncio.Event()
    calls: list[str] = []

    async def model(request: ProviderRequest) -> ProviderResponse:
        calls.append(request.messages[-1].text)
        await gate.wait()
        return ProviderResponse(content="answered once", usage=Usage(5, 2))

    store.register_provider("scripted", FunctionProvider(model))
    agent = await store.create_agent(DEFINITION, provider="scripted", model="roomy")
    thread = await store.create_thread(agent)
    first = asyncio.ensure_future(store.run(thread, "pay", idempotency_key="order-1"))
    await wait_until(lambda: calls == ["pay"], timeout=15, what="the first run's call")
    second = asyncio.ensure_future(store.run(thread, "pay", idempotency_key="order-1"))
    await wait_until(lambda: _queued(store, thread), timeout=15, what="the second to wait")
    third = asyncio.ensure_future(store.run(thread, "next"))
    await wait_until(lambda: _queued(store, thread, 2), timeout=15, what="the third to wait")
    gate.set()
    done, again, after = await asyncio.wait_for(asyncio.gather(first, second, third), 10)

    assert (done.replayed, again.replayed) == (False, True)
    assert again.run_id == done.run_id and again.content == "answered once"
    assert again.message_ids == done.message_ids and again.usage == done.usage
    # The waiting delivery's run row is gone, and the thread is free at once.
    assert {r.id for r in (await store.list_runs(thread)).items} == {done.run_id, after.run_id}
    assert (await store.get_thread(thread)).message_count == 4
    assert after.content == "answered once" and not after.replayed
    assert calls == ["pay", "next"]


async def _queued(store: AgentStore, thread: uuid.UUID, count: int = 1) -> bool:
    runs = (await store.list_runs(thread)).items
    return sum(r.status == "queued" for r in runs) == count


async def test_a_turn_of_a_run_no_longer_ours_is_refused_and_nothing_is_saved(
    store: AgentStore,
) -> None:
    thread = await _thread(store)
    lost = uuid.uuid4()  # no such run row: as if it had expired and been swept
    done = message_rows.RunCompletion(
        owner="someone",
        status="completed",
        provider="openai",
        model="gpt-4o",
        input_tokens=1,
        output_tokens=1,
        cost=0.0,
        incomplete_details=None,
        steps_json="[]",
    )
    async with store.engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        with pytest.raises(RunExpired) as info:
            await message_rows.append_turn(
                conn,
                Scope(None),
                thread,
                [Message(role="user", content="hi")],
                message_rows.SizeLimits(10_000, 10_000),
                run_id=lost,
                completion=done,
            )
    assert str(info.value) == (
        f"run {lost} was cancelled or expired before its turn was saved; nothing of it was saved"
    )
    assert info.value.message == str(info.value)
    assert (await store.get_thread(thread)).message_count == 0


async def test_an_append_records_its_run_and_the_memory_state(store: AgentStore) -> None:
    thread = await _thread(store)
    run_id = uuid.uuid4()
    async with store.engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        (saved,) = await message_rows.append(
            conn,
            Scope(None),
            thread,
            [Message(role="user", content="hi")],
            message_rows.SizeLimits(10_000, 10_000),
            run_id=run_id,
            memory_state={"summary": "so far"},
        )
        row = (
            await conn.execute(text("SELECT run_id FROM messages WHERE id = :id"), {"id": saved.id})
        ).one()
    assert row[0] == run_id
    assert (await store.get_thread(thread)).memory_state == {"summary": "so far"}
