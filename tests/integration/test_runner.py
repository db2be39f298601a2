"""store.run scenarios with the library's scripted test models (issue 5, acceptance 1-2)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from ai_agents import AgentDefinition, AgentStore
from ai_agents.config import Settings
from ai_agents.errors import NotFoundError, ProviderOverloaded, ThreadBusyError, UnknownToolError
from ai_agents.messages import Message, ToolCall
from ai_agents.providers.base import ProviderRequest, ProviderResponse
from ai_agents.providers.registry import ModelLimits, get_registry
from ai_agents.response import DoneEvent, TextDeltaEvent, ToolCallEvent, ToolResultEvent
from ai_agents.testing import FunctionProvider, ScriptedProvider, call, calls
from ai_agents.tools.decorator import ToolContext, tool
from ai_agents.tools.registry import ToolRegistry
from tests.integration.serial_support import InFlight, serialized_lengths
from tests.waiting import wait_until

TINY = ModelLimits(
    context_window=700,
    max_output=100,
    rpm=100_000,
    tpm=100_000_000,
    supports_tools=True,
    supports_vision=False,
    cost_per_1m_input=1.0,
    cost_per_1m_output=2.0,
)


@pytest.fixture
def tools() -> ToolRegistry:
    registry = ToolRegistry()

    @tool(registry=registry)
    def add(a: int, b: int) -> int:
        """Add two integers.

        Args:
            a: first addend
            b: second addend
        """
        return a + b

    @tool(registry=registry)
    async def explode(reason: str) -> str:
        """Always fails."""
        raise RuntimeError(f"exploded: {reason}")

    @tool(registry=registry)
    async def whoami(ctx: ToolContext) -> str:
        """Says which thread and user called."""
        return f"{ctx.thread_id}/{ctx.user_id}"

    return registry


@pytest.fixture
def registry_models() -> None:
    registry = get_registry()
    registry.register("scripted", "tiny", TINY)
    registry.register(
        "scripted",
        "roomy",
        ModelLimits(100_000, 1000, 100_000, 100_000_000, True, False, 3.0, 15.0),
    )


@pytest.fixture
async def ai(store: AgentStore, tools: ToolRegistry, registry_models: None) -> AgentStore:
    store.use_tools(tools)
    return store


async def _thread(
    store: AgentStore,
    provider: object,
    *,
    model: str = "roomy",
    tools: list[str] | None = None,
    memory: str = "last_messages",
    memory_config: dict[str, object] | None = None,
    settings: dict[str, object] | None = None,
    user_id: str = "u1",
) -> uuid.UUID:
    store.register_provider("scripted", provider)  # type: ignore[arg-type]
    agent = await store.create_agent(
        AgentDefinition(name="Helper", role="You help.", tools=tools or []),
        provider="scripted",
        model=model,
        memory_strategy=memory,
        memory_config=memory_config or {},
        settings=settings or {},
    )
    return await store.create_thread(agent, user_id=user_id)


async def _messages(store: AgentStore, thread_id: uuid.UUID) -> list[Message]:
    return (await store.list_messages(thread_id, limit=1000)).items


async def test_plain_answer(ai: AgentStore) -> None:
    provider = ScriptedProvider(["Check-out is at 11am."])
    thread_id = await _thread(ai, provider)
    response = await ai.run(thread_id, "What's the checkout time?")
    provider.assert_complete()

    assert response.content == "Check-out is at 11am."
    assert response.finish_reason == "stop"
    assert response.usage.input_tokens > 0
    assert response.usage.output_tokens > 0
    expected_cost = (response.usage.input_tokens * 3.0 + response.usage.output_tokens * 15.0) / 1e6
    assert response.cost == pytest.approx(expected_cost)
    saved = await _messages(ai, thread_id)
    assert [(m.role, m.content) for m in saved] == [
        ("user", "What's the checkout time?"),
        ("assistant", "Check-out is at 11am."),
    ]
    assert response.message_ids == [m.id for m in saved]
    assert saved[1].provider == "scripted"
    assert saved[1].model == "roomy"
    assert saved[1].input_tokens == response.usage.input_tokens
    assert saved[1].cost == pytest.approx(expected_cost)
    assert all(m.token_count and m.token_count > 0 for m in saved)
    request = provider.requests[0]
    assert request.system_prompt.startswith("# Role\nYou help.")
    assert [m.role for m in request.messages] == ["user"]
    usage = await ai.usage(thread_id=thread_id)
    assert usage.input_tokens == response.usage.input_tokens
    assert usage.cost == pytest.approx(expected_cost)
    user_usage = await ai.usage(user_id="u1")
    assert user_usage.output_tokens == response.usage.output_tokens


async def test_tool_loop_of_three_calls(ai: AgentStore) -> None:
    provider = ScriptedProvider(
        [
            calls(call("add", a=1, b=2)),
            calls(call("add", a=3, b=3)),
            calls(call("add", a=6, b=4)),
            "The total is 10.",
        ]
    )
    thread_id = await _thread(ai, provider, tools=["add"])
    response = await ai.run(thread_id, "Add things up")
    provider.assert_complete()
    assert response.content == "The total is 10."
    assert [r.result for r in response.tool_calls] == ["3", "6", "10"]
    saved = await _messages(ai, thread_id)
    assert [m.role for m in saved] == ["user"] + ["assistant", "tool"] * 3 + ["assistant"]
    for assistant, result in zip(saved[1:7:2], saved[2:7:2], strict=True):
        assert result.tool_call_id == assistant.tool_calls[0].id
    # The last request carried all three call/result pairs.
    last = provider.requests[-1]
    assert [m.role for m in last.messages] == ["user"] + ["assistant", "tool"] * 3
    assert last.tools[0].name == "add"
    assert last.tools[0].parameters["properties"]["a"]["description"] == "first addend"


async def test_parallel_tool_calls_run_concurrently(ai: AgentStore, tools: ToolRegistry) -> None:
    started: list[str] = []
    both_started = asyncio.Event()

    @tool(registry=tools)
    async def slow(name: str) -> str:
        """Waits until both parallel calls have started."""
        started.append(name)
        if len(started) == 2:
            both_started.set()
        await asyncio.wait_for(both_started.wait(), timeout=5)
        return f"done {name}"

    provider = ScriptedProvider(
        [calls(call("slow", name="a"), call("slow", name="b")), "Both done."]
    )
    thread_id = await _thread(ai, provider, tools=["slow"])
    response = await ai.run(thread_id, "Do both")
    assert sorted(started) == ["a", "b"]
    assert [r.result for r in response.tool_calls] == ["done a", "done b"]
    saved = await _messages(ai, thread_id)
    assert [m.role for m in saved] == ["user", "assistant", "tool", "tool", "assistant"]
    assert [m.tool_call_id for m in saved[2:4]] == [c.id for c in saved[1].tool_calls]


async def test_tool_that_raises_and_bad_arguments_go_back_to_the_model(ai: AgentStore) -> None:
    provider = ScriptedProvider(
        [
            calls(call("explode", reason="test"), call("add", a="one", b=2), call("nope")),
            "Sorry, something went wrong.",
        ]
    )
    thread_id = await _thread(ai, provider, tools=["explode", "add"])
    response = await ai.run(thread_id, "Try")
    results = [r.result for r in response.tool_calls]
    assert all(r.is_error for r in response.tool_calls)
    assert results[0] == "Error: RuntimeError: exploded: test"
    assert "invalid arguments for tool add" in results[1]
    assert "a:" in results[1]
    assert "unknown tool 'nope'" in results[2]
    saved = await _messages(ai, thread_id)
    assert [m.is_error for m in saved if m.role == "tool"] == [True, True, True]
    # The model saw the errors as tool results.
    assert [m.role for m in provider.requests[1].messages][-3:] == ["tool", "tool", "tool"]
    assert response.content == "Sorry, something went wrong."


async def test_tool_context(ai: AgentStore) -> None:
    provider = ScriptedProvider([calls(call("whoami")), "ok"])
    thread_id = await _thread(ai, provider, tools=["whoami"])
    response = await ai.run(thread_id, "who?")
    assert response.tool_calls[0].result == f"{thread_id}/u1"


async def test_max_iterations_stops_with_a_finish_reason(ai: AgentStore) -> None:
    provider = ScriptedProvider([calls(call("add", a=1, b=1))] * 3)
    thread_id = await _thread(ai, provider, tools=["add"], settings={"max_tool_iterations": 2})
    response = await ai.run(thread_id, "loop forever")
    provider.assert_complete()
    assert response.finish_reason == "max_tool_iterations"
    saved = await _messages(ai, thread_id)
    assert [m.role for m in saved] == ["user"] + ["assistant", "tool"] * 3
    assert saved[-1].is_error
    assert "Not executed" in (saved[-1].content or "")
    # The thread stays valid: every call has its result, and it can go on.
    provider.add("Sorry, I stopped.")
    again = await ai.run(thread_id, "and now?")
    assert again.content == "Sorry, I stopped."


async def test_provider_failure_saves_nothing(ai: AgentStore) -> None:
    provider = ScriptedProvider(
        [
            calls(call("add", a=1, b=1)),
            ProviderOverloaded("down", provider="scripted", status=503),
        ]
    )
    thread_id = await _thread(ai, provider, tools=["add"])
    with pytest.raises(ProviderOverloaded):
        await ai.run(thread_id, "hello")
    thread = await ai.get_thread(thread_id)
    assert thread.message_count == 0
    assert await _messages(ai, thread_id) == []


async def test_unknown_tools_and_strategies_fail_at_create_time(ai: AgentStore) -> None:
    ai.register_provider("scripted", ScriptedProvider([]))
    with pytest.raises(UnknownToolError, match="nope"):
        await ai.create_agent(
            AgentDefinition(name="x", role="y", tools=["add", "nope"]),
            provider="scripted",
            model="roomy",
        )
    from ai_agents.errors import UnknownModelError, ValidationError

    with pytest.raises(ValidationError, match="unknown memory strategy"):
        await ai.create_agent(
            AgentDefinition(name="x", role="y"),
            provider="scripted",
            model="roomy",
            memory_strategy="magic",
        )
    with pytest.raises(ValidationError, match="max_messages"):
        await ai.create_agent(
            AgentDefinition(name="x", role="y"),
            provider="scripted",
            model="roomy",
            memory_config={"max_messages": 0},
        )
    with pytest.raises(UnknownModelError):
        await ai.create_agent(
            AgentDefinition(name="x", role="y"), provider="openai", model="gpt-nonexistent"
        )
    agent = await ai.create_agent(
        AgentDefinition(name="x", role="y"), provider="scripted", model="roomy"
    )
    with pytest.raises(UnknownToolError):
        await ai.update_agent(agent, tools=["nope"])


async def test_run_on_unknown_thread(ai: AgentStore) -> None:
    with pytest.raises(NotFoundError):
        await ai.run(uuid.uuid4(), "hi")


async def test_user_memory_in_system_prompt(ai: AgentStore) -> None:
    provider = ScriptedProvider(["Hi Ada"])
    thread_id = await _thread(ai, provider, settings={"use_user_memory": True})
    await ai.set_memory("u1", "name", "Ada")
    await ai.run(thread_id, "hello")
    assert "# Known facts about this user\n- name: Ada" in provider.requests[0].system_prompt


async def test_idempotency_key_replays_instead_of_duplicating(ai: AgentStore) -> None:
    provider = ScriptedProvider([calls(call("add", a=2, b=2)), "Four."])
    thread_id = await _thread(ai, provider, tools=["add"])
    first = await ai.run(thread_id, "2+2?", idempotency_key="job-1")
    again = await ai.run(thread_id, "2+2?", idempotency_key="job-1")
    assert again.replayed
    assert again.content == "Four."
    assert again.run_id == first.run_id
    assert again.message_ids == first.message_ids
    assert [r.result for r in again.tool_calls] == ["4"]
    assert (await ai.get_thread(thread_id)).message_count == 4


async def test_stream_events(ai: AgentStore) -> None:
    provider = ScriptedProvider([calls(call("add", a=1, b=2)), "The answer is three, friend."])
    thread_id = await _thread(ai, provider, tools=["add"])
    events = [e async for e in ai.stream(thread_id, "1+2?")]
    kinds = [type(e) for e in events]
    assert kinds.index(ToolCallEvent) < kinds.index(ToolResultEvent) < kinds.index(TextDeltaEvent)
    assert isinstance(events[-1], DoneEvent)
    text = "".join(e.text for e in events if isinstance(e, TextDeltaEvent))
    assert text == "The answer is three, friend."
    assert events[-1].response.content == text
    assert (await ai.get_thread(thread_id)).message_count == 4


async def test_concurrent_runs_on_one_thread_never_interleave(ai: AgentStore) -> None:
    """Acceptance 2: 20 concurrent runs -> one model call at a time, each run seeing every
    turn saved before it, and 20 user messages each followed by its answer.

    The saved order alone cannot show overlapping runs (a turn is saved in one
    statement): the model counts its calls in flight and the history each call received
    (more cases in test_run_serialization.py).
    """
    model = InFlight()
    thread_id = await _thread(ai, FunctionProvider(model))
    inputs = [f"question {i}" for i in range(20)]
    responses = await asyncio.wait_for(
        asyncio.gather(*(ai.run(thread_id, q) for q in inputs)), timeout=45
    )
    assert model.most == 1, f"{model.most} model calls were in flight on one thread at once"
    assert sorted(model.lengths) == serialized_lengths(20)
    assert sorted(r.content for r in responses) == sorted(f"answer to {q}" for q in inputs)
    saved = await _messages(ai, thread_id)
    assert len(saved) == 40
    for user, answer_msg in zip(saved[::2], saved[1::2], strict=True):
        assert user.role == "user"
        assert answer_msg.role == "assistant"
        assert answer_msg.content == f"answer to {user.content}"
    assert sorted(m.content for m in saved[::2]) == sorted(inputs)


async def test_reject_policy_fails_fast_for_the_losers(ai: AgentStore) -> None:
    release = asyncio.Event()

    async def slow(request: ProviderRequest) -> ProviderResponse:
        await release.wait()
        return ProviderResponse(content="done")

    provider = FunctionProvider(slow)
    thread_id = await _thread(ai, provider)
    first = asyncio.create_task(ai.run(thread_id, "first", on_busy="reject"))
    await wait_until(lambda: bool(provider.requests), what="the first run to call the model")
    losers = await asyncio.gather(
        *(ai.run(thread_id, f"other {i}", on_busy="reject") for i in range(5)),
        return_exceptions=True,
    )
    assert all(isinstance(e, ThreadBusyError) for e in losers)
    assert "busy" in str(losers[0])
    release.set()
    assert (await asyncio.wait_for(first, timeout=30)).content == "done"
    assert [m.content for m in await _messages(ai, thread_id)] == ["first", "done"]


# --- memory strategies on a long thread with a tiny window -------------------------------


async def _long_thread(store: AgentStore, thread_id: uuid.UUID, turns: int) -> None:
    batch: list[Message] = []
    for i in range(turns):
        batch.append(Message(role="user", content=f"Question number {i} about the property?"))
        if i % 3 == 0:
            c = ToolCall(f"call_{i}", "add", {"a": i, "b": 1})
            batch.append(Message(role="assistant", tool_calls=[c]))
            batch.append(
                Message(role="tool", content=str(i + 1), tool_call_id=c.id, tool_name="add")
            )
        batch.append(Message(role="assistant", content=f"Answer number {i}: it is fine."))
    await store.add_messages(thread_id, batch)


def _assert_valid_request(request: ProviderRequest, user_input: str) -> None:
    from ai_agents.tokens import default_counter

    counter = default_counter()
    tokens = counter.count_request(
        request.system_prompt, request.messages, request.tools, provider="scripted", model="tiny"
    )
    assert tokens <= TINY.context_window - TINY.max_output, tokens
    assert request.system_prompt.startswith("# Role")
    assert request.messages[-1].role == "user"
    assert request.messages[-1].content == user_input
    pending: set[str] = set()
    for m in request.messages:
        if m.role == "tool":
            assert m.tool_call_id in pending, "tool result without its call"
            pending.discard(m.tool_call_id)
        else:
            assert not pending, "tool call without its result"
        if m.tool_calls:
            pending = {c.id for c in m.tool_calls}
    assert not pending


@pytest.mark.parametrize(
    ("strategy", "config"),
    [
        ("last_messages", {"max_messages": 200}),
        ("first_last", {"preserve_first": 4, "max_messages": 200}),
        ("summarize", {"max_messages": 200, "summarize_batch": 5}),
        ("vector", {"recent": 10, "top_k": 3}),
    ],
)
async def test_each_strategy_fits_a_small_window(
    ai: AgentStore, strategy: str, config: dict[str, object]
) -> None:
    def answer(request: ProviderRequest) -> ProviderResponse:
        if request.system_prompt.startswith("You maintain a running summary"):
            return ProviderResponse(content="Summary: many property questions, all fine.")
        return ProviderResponse(content="Fine.")

    provider = FunctionProvider(answer)
    thread_id = await _thread(
        ai, provider, model="tiny", memory=strategy, memory_config=config, tools=["add"]
    )
    await _long_thread(ai, thread_id, 60)
    user_input = "Question number 7 about the property?"
    await ai.run(thread_id, user_input)
    main_requests = [r for r in provider.requests if not r.system_prompt.startswith("You maintain")]
    request = main_requests[-1]
    _assert_valid_request(request, user_input)
    assert len(request.messages) > 1  # some history made it in
    if strategy == "first_last":
        assert request.messages[0].content == "Question number 0 about the property?"
    if strategy == "vector":
        recalled = [m.content for m in request.messages[:-1]]
        assert "Question number 7 about the property?" in recalled


async def test_summarize_persists_and_reuses_the_summary(ai: AgentStore) -> None:
    summaries: list[ProviderRequest] = []

    def answer(request: ProviderRequest) -> ProviderResponse:
        if request.system_prompt.startswith("You maintain a running summary"):
            summaries.append(request)
            return ProviderResponse(content=f"Summary v{len(summaries)}")
        return ProviderResponse(content="Fine.")

    provider = FunctionProvider(answer)
    thread_id = await _thread(
        ai,
        provider,
        memory="summarize",
        memory_config={"max_messages": 4, "summarize_batch": 6},
    )
    for i in range(5):
        await ai.add_messages(
            thread_id,
            [Message(role="user", content=f"q{i}"), Message(role="assistant", content=f"a{i}")],
        )
    await ai.run(thread_id, "first run")
    assert len(summaries) == 1
    state = (await ai.get_thread(thread_id)).memory_state
    assert state["summary"] == "Summary v1"
    assert state["summary_through_seq"] == 6
    assert "Summary v1" in provider.requests[-1].system_prompt
    # Only the messages that left the window were summarized, not the whole thread.
    assert "q0" in summaries[0].messages[0].content
    assert "a4" not in summaries[0].messages[0].content

    await ai.run(thread_id, "second run")  # 2 more left the window: below the batch size
    assert len(summaries) == 1
    assert "Summary v1" in provider.requests[-1].system_prompt
    for i in range(3):
        await ai.run(thread_id, f"run {i}")
    assert len(summaries) == 2
    second = summaries[1].messages[0].content or ""
    assert "Summary v1" in second  # incremental: previous summary + new messages only
    assert "q0" not in second
    assert (await ai.get_thread(thread_id)).memory_state["summary"] == "Summary v2"


async def test_history_is_trimmed_to_what_the_tpm_limit_admits(ai: AgentStore) -> None:
    """A long thread on a low-TPM model is trimmed to one window, not refused."""
    get_registry().register(
        "scripted", "low-tpm", ModelLimits(100_000, 100, 100_000, 400, True, False, 0, 0)
    )
    provider = FunctionProvider(lambda r: "fine")
    thread_id = await _thread(ai, provider, model="low-tpm", memory_config={"max_messages": 200})
    await _long_thread(ai, thread_id, 40)
    response = await ai.run(thread_id, "one more question")
    assert response.content == "fine"
    from ai_agents.tokens import default_counter

    request = provider.requests[-1]
    tokens = default_counter().count_request(
        request.system_prompt, request.messages, request.tools, provider="scripted", model="low-tpm"
    )
    assert tokens + 100 <= 400
    assert len(request.messages) > 1


async def test_busy_timeout_must_be_positive(ai: AgentStore) -> None:
    from ai_agents.errors import ValidationError

    thread_id = await _thread(ai, ScriptedProvider([]))
    with pytest.raises(ValidationError, match="busy_timeout"):
        await ai.run(thread_id, "hi", busy_timeout=0)


async def test_enqueue_policy_gives_up_after_busy_timeout(ai: AgentStore) -> None:
    release = asyncio.Event()

    async def slow(request: ProviderRequest) -> ProviderResponse:
        await release.wait()
        return ProviderResponse(content="done")

    provider = FunctionProvider(slow)
    thread_id = await _thread(ai, provider)
    first = asyncio.create_task(ai.run(thread_id, "first"))
    await wait_until(lambda: bool(provider.requests), what="the first run to call the model")
    with pytest.raises(ThreadBusyError):
        await ai.run(thread_id, "second", busy_timeout=0.2)
    release.set()
    assert (await asyncio.wait_for(first, timeout=30)).content == "done"
    # The waiter's connection went back clean: the thread runs again at once.
    provider2 = ScriptedProvider(["again"])
    ai.register_provider("scripted", provider2)
    assert (await ai.run(thread_id, "third", busy_timeout=1)).content == "again"


async def _admitted_at(store: AgentStore, thread_id: uuid.UUID, response: Any) -> float:
    """When the rate limiter admitted the run's model call (Redis server time)."""
    saved = await _messages(store, thread_id)
    (answer,) = [m for m in saved if m.id in response.message_ids and m.role == "assistant"]
    return float(answer.metadata["rate_limit"]["admitted_at"])


async def test_per_user_limit_is_per_tenant_and_follows_the_agent(
    settings: object, redis_cleanup: None, registry_models: None
) -> None:
    """user_rpm throttles one user, not the same user id in another tenant; edits apply.

    A throttled call is told by when it was admitted (a full window after the call that
    held its place), which no load on the machine can shorten; a call that was not
    throttled waited one Redis round trip, far below half a window.
    """
    from dataclasses import replace

    window = 2.0
    store = AgentStore(settings=replace(settings, rate_limit_window=window))  # type: ignore[type-var]
    try:
        store.register_provider("scripted", FunctionProvider(lambda r: "ok"))

        async def thread_in(tenant: str) -> tuple[AgentStore, uuid.UUID, uuid.UUID]:
            view = store.for_tenant(tenant)
            agent = await view.create_agent(
                AgentDefinition(name="x", role="y"),
                provider="scripted",
                model="roomy",
                settings={"user_rpm": 2},
            )
            return view, agent, await view.create_thread(agent, user_id="same-user")

        a, agent_a, thread_a = await thread_in("tenant-a")
        b, _agent_b, thread_b = await thread_in("tenant-b")
        first = [await a.run(thread_a, f"q{i}") for i in range(2)]
        assert max(r.rate_limit_wait for r in first) < window / 2
        # A's window is full: the same user id in B has its own window.
        assert (await b.run(thread_b, "q")).rate_limit_wait < window / 2
        third = await a.run(thread_a, "q2")  # waited until the first call left the window
        admitted = [await _admitted_at(a, thread_a, r) for r in [*first, third]]
        assert admitted[2] - admitted[0] >= window - 0.001, admitted

        await a.update_agent(agent_a, settings={"user_rpm": 1})
        await asyncio.sleep(window + 0.05)  # every earlier call left the window
        r0 = await a.run(thread_a, "r0")
        assert r0.rate_limit_wait < window / 2
        r1 = await a.run(thread_a, "r1")  # the new limit applies: one call per window
        gap = await _admitted_at(a, thread_a, r1) - await _admitted_at(a, thread_a, r0)
        assert gap >= window - 0.001, gap
    finally:
        await store.close()


# --- hardening: agent settings at run time, usage of failed runs, NUL ------------------


async def _store_settings(store: AgentStore, thread_id: uuid.UUID, settings: str) -> None:
    """Write an agent's settings as a row saved before they were validated."""
    from sqlalchemy import text

    agent_id = (await store.get_thread(thread_id)).agent_id
    async with store.engine.begin() as conn:
        await conn.execute(
            text("UPDATE agents SET settings = :s WHERE id = :id"), {"s": settings, "id": agent_id}
        )


async def _only_run(store: AgentStore, thread_id: uuid.UUID) -> Any:
    (run,) = (await store.list_runs(thread_id)).items
    return run


async def test_a_stored_bad_setting_fails_the_run_before_any_model_call(ai: AgentStore) -> None:
    from ai_agents.errors import ValidationError

    provider = ScriptedProvider(["never sent"])
    thread_id = await _thread(ai, provider)
    await _store_settings(ai, thread_id, '{"max_tool_iterations": "abc"}')
    with pytest.raises(ValidationError, match="update the agent's settings") as info:
        await ai.run(thread_id, "hello")
    assert info.value.details["field"] == "settings.max_tool_iterations"
    assert provider.requests == []
    run = await _only_run(ai, thread_id)
    assert run.status == "failed" and run.last_error["code"] == "validation_error"


async def test_a_tool_loop_is_bounded_by_the_ceiling_at_run_time(
    settings: Settings, redis_cleanup: None, tools: ToolRegistry, registry_models: None
) -> None:
    """An agent saved before the ceiling was lowered runs with the ceiling."""
    from dataclasses import replace

    store = AgentStore(settings=replace(settings, max_tool_iterations_ceiling=3))
    try:
        store.use_tools(tools)
        provider = FunctionProvider(lambda r: call("add", a=1, b=1))  # always a tool call
        thread_id = await _thread(store, provider, tools=["add"])
        await _store_settings(store, thread_id, '{"max_tool_iterations": 100000}')
        response = await store.run(thread_id, "loop")
        assert response.finish_reason == "max_tool_iterations"
        assert len(provider.requests) == 4  # 3 iterations + the call that is not executed
    finally:
        await store.close()


async def test_a_failed_run_records_the_usage_it_spent(ai: AgentStore) -> None:
    """A tool loop that outgrows the context fails (400 over HTTP); its calls are counted."""
    from ai_agents.memory.context import ContextOverflow

    provider = FunctionProvider(lambda r: call("add", a=123456789, b=987654321))
    thread_id = await _thread(
        ai, provider, model="tiny", tools=["add"], settings={"max_tool_iterations": 50}
    )
    with pytest.raises(ContextOverflow):
        await ai.run(thread_id, "add forever")
    assert 1 < len(provider.requests) < 50
    run = await _only_run(ai, thread_id)
    assert run.status == "failed" and run.last_error["code"] == "context_overflow"
    assert run.input_tokens > 0 and run.output_tokens > 0
    assert run.cost == pytest.approx((run.input_tokens * 1.0 + run.output_tokens * 2.0) / 1e6)
    steps = await ai.list_run_steps(run.id)
    assert run.input_tokens == sum(s.input_tokens for s in steps)
    # The thread's counters count saved messages: nothing of the turn was saved.
    thread = await ai.get_thread(thread_id)
    assert (thread.message_count, thread.input_tokens) == (0, 0)


async def test_input_with_nul_is_refused_before_any_model_call(ai: AgentStore) -> None:
    from ai_agents.errors import ValidationError

    provider = ScriptedProvider(["never sent"])
    thread_id = await _thread(ai, provider)
    with pytest.raises(ValidationError, match="NUL") as info:
        await ai.run(thread_id, "hello\x00world")
    assert info.value.details["field"] == "input"
    with pytest.raises(ValidationError) as info:
        await ai.run(thread_id, "hello", metadata={"source": "we\x00b"})
    assert info.value.details["field"] == "metadata.source"
    assert provider.requests == []
    assert (await ai.list_runs(thread_id)).items == []


async def test_nul_in_model_output_is_replaced_and_the_turn_saved(
    ai: AgentStore, tools: ToolRegistry
) -> None:
    seen: list[str] = []

    @tool(registry=tools)
    def shout(text: str) -> str:
        """Echo in capitals."""
        seen.append(text)
        return text.upper() + "\x00"

    provider = ScriptedProvider(
        [calls(call("shout", text="hi\x00there"), content="Calling\x00."), "Said\x00 it."]
    )
    thread_id = await _thread(ai, provider, tools=["shout"])
    response = await ai.run(thread_id, "shout hi")
    provider.assert_complete()
    assert seen == ["hi\ufffdthere"]  # the tool ran, with the character replaced
    saved = await _messages(ai, thread_id)
    assert [(m.role, m.content) for m in saved] == [
        ("user", "shout hi"),
        ("assistant", "Calling\ufffd."),
        ("tool", "HI\ufffdTHERE\ufffd"),
        ("assistant", "Said\ufffd it."),
    ]
    assert saved[1].tool_calls[0].arguments == {"text": "hi\ufffdthere"}
    assert response.content == "Said\ufffd it." and response.status == "completed"
