"""Runs without input and threads without an agent: OpenAI's flow of adding messages to
a thread, then running an assistant on it.

- ``store.run(thread, None)`` answers the thread as it stands: no user message of its
  own, the messages added before are the model's last ones, nothing duplicated on
  resumption after ``requires_action``.
- ``create_unassigned_thread`` gives a thread to the tenant's placeholder agent (one per
  tenant, inactive: it cannot run); ``assign_agent`` moves a thread to an agent, never
  while a run holds it, never to another tenant's agent.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from ai_agents.config import Settings
from ai_agents.db.assignment import PLACEHOLDER_CREATOR
from ai_agents.definition import AgentDefinition
from ai_agents.errors import NotFoundError, ThreadBusyError, UsageError, ValidationError
from ai_agents.messages import Message
from ai_agents.providers.registry import ModelLimits, get_registry
from ai_agents.store import AgentStore
from ai_agents.testing import ScriptedProvider, call, calls

WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


@pytest.fixture
async def ai(settings: Settings, redis_cleanup: None) -> AsyncIterator[AgentStore]:
    get_registry().register(
        "scripted", "roomy", ModelLimits(100_000, 1000, 100_000, 100_000_000, True, False, 3, 15)
    )
    store = AgentStore(settings=settings)
    try:
        yield store
    finally:
        await store.close()


async def _agent(store: AgentStore, provider: ScriptedProvider, **kwargs: object) -> object:
    store.register_provider("scripted", provider)
    return await store.create_agent(
        AgentDefinition(name="Helper", role="You help."),
        provider="scripted",
        model="roomy",
        **kwargs,  # type: ignore[arg-type]
    )


def _shape(messages: list[Message]) -> list[tuple[str, str | None]]:
    return [(m.role, m.content) for m in messages]


async def test_a_run_without_input_answers_the_messages_added_before(ai: AgentStore) -> None:
    provider = ScriptedProvider(["Paris."])
    agent = await _agent(ai, provider)
    thread = await ai.create_unassigned_thread(metadata={"from": "v1"})
    await ai.add_messages(
        thread,
        [
            Message(role="user", content="I am planning a trip."),
            Message(role="user", content="Capital of France?"),
        ],
    )
    # Nobody answers an unassigned thread.
    with pytest.raises(UsageError):
        await ai.run(thread, None)
    await ai.assign_agent(thread, agent)  # type: ignore[arg-type]
    answer = await ai.run(thread, None)
    assert answer.content == "Paris."
    (request,) = provider.requests
    assert _shape(list(request.messages))[-2:] == [
        ("user", "I am planning a trip."),
        ("user", "Capital of France?"),
    ]
    saved = (await ai.list_messages(thread)).items
    assert _shape(saved) == [
        ("user", "I am planning a trip."),
        ("user", "Capital of France?"),
        ("assistant", "Paris."),
    ]
    run = await ai.get_run(answer.run_id)
    assert (run.status, run.input) == ("completed", "")
    thread_record = await ai.get_thread(thread)
    assert thread_record.agent_id == agent and thread_record.message_count == 3


async def test_a_run_without_input_resumes_after_tool_outputs_without_duplicates(
    ai: AgentStore,
) -> None:
    provider = ScriptedProvider([calls(call("get_weather", city="Oslo")), "Snow in Oslo."])
    agent = await _agent(ai, provider, client_tools=[WEATHER])
    thread = await ai.create_thread(agent)  # type: ignore[arg-type]
    await ai.add_message(thread, "user", "Weather in Oslo?")
    paused = await ai.run(thread, None)
    assert paused.status == "requires_action"
    (pending,) = paused.required_action
    done = await ai.submit_tool_outputs(
        paused.run_id, [{"tool_call_id": pending.id, "output": "snow"}]
    )
    assert done.status == "completed" and done.content == "Snow in Oslo."
    saved = (await ai.list_messages(thread)).items
    assert [m.role for m in saved] == ["user", "assistant", "tool", "assistant"]
    assert saved[0].content == "Weather in Oslo?"
    assert provider.requests[1].messages[-1].role == "tool"


async def test_input_is_still_checked_when_given(ai: AgentStore) -> None:
    agent = await _agent(ai, ScriptedProvider([]))
    thread = await ai.create_thread(agent)  # type: ignore[arg-type]
    for text in ("", "   "):
        with pytest.raises(ValidationError):
            await ai.run(thread, text)


async def test_one_placeholder_agent_per_tenant(ai: AgentStore) -> None:
    acme = ai.for_tenant("acme")
    threads = await asyncio.gather(*(acme.create_unassigned_thread() for _ in range(6)))
    holders = {(await acme.get_thread(t)).agent_id for t in threads}
    assert len(holders) == 1
    (holder,) = holders
    placeholder = await acme.get_agent(holder)
    assert not placeholder.is_active and placeholder.created_by == PLACEHOLDER_CREATOR
    other = await ai.for_tenant("globex").create_unassigned_thread()
    assert (await ai.for_tenant("globex").get_thread(other)).agent_id != holder
    # Listed nowhere active agents are.
    assert holder not in {a.id for a in (await acme.list_agents()).items}


async def test_assignment_refuses_busy_threads_other_tenants_and_inactive_agents(
    ai: AgentStore,
) -> None:
    provider = ScriptedProvider([calls(call("get_weather", city="Rome"))])
    acme = ai.for_tenant("acme")
    acme.register_provider("scripted", provider)
    first = await acme.create_agent(
        AgentDefinition(name="A", role="r"),
        provider="scripted",
        model="roomy",
        client_tools=[WEATHER],
    )
    second = await acme.create_agent(
        AgentDefinition(name="B", role="r"), provider="scripted", model="roomy"
    )
    thread = await acme.create_thread(first)
    paused = await acme.run(thread, "Weather in Rome?")
    assert paused.status == "requires_action"
    with pytest.raises(ThreadBusyError):
        await acme.assign_agent(thread, second)
    await acme.assign_agent(thread, first)  # the agent it already has: nothing to move
    await acme.cancel_run(paused.run_id)

    async def settled() -> bool:
        return (await acme.get_run(paused.run_id)).status == "cancelled"

    for _ in range(100):
        if await settled():
            break
        await asyncio.sleep(0.05)
    await acme.assign_agent(thread, second)
    assert (await acme.get_thread(thread)).agent_id == second

    theirs = await ai.for_tenant("globex").create_agent(
        AgentDefinition(name="G", role="r"), provider="scripted", model="roomy"
    )
    with pytest.raises(NotFoundError):
        await acme.assign_agent(thread, theirs)
    with pytest.raises(NotFoundError):  # the admin view sees both, and still refuses
        await ai.for_tenant(None).assign_agent(thread, theirs)
    await acme.deactivate_agent(first)
    with pytest.raises(UsageError):
        await acme.assign_agent(thread, first)
    assert (await acme.get_thread(thread)).agent_id == second
