"""Per-run overrides and structured output, end to end through store.run."""

from __future__ import annotations

import json
import uuid

import pytest

from ai_agents import AgentDefinition, AgentStore
from ai_agents.errors import InvalidStructuredOutput, UnknownModelError, ValidationError
from ai_agents.providers.base import ProviderResponse, Usage
from ai_agents.providers.registry import ModelLimits, get_registry
from ai_agents.testing import ScriptedProvider, call, calls
from ai_agents.tools.decorator import tool
from ai_agents.tools.registry import ToolRegistry

SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "celsius": {"type": "number"}},
    "required": ["city", "celsius"],
    "additionalProperties": False,
}
FORMAT = {
    "type": "json_schema",
    "json_schema": {"name": "weather", "schema": SCHEMA, "strict": True},
}


@pytest.fixture
async def ai(store: AgentStore) -> AgentStore:
    limits = ModelLimits(100_000, 1000, 100_000, 100_000_000, True, False, 3, 15)
    get_registry().register("scripted", "roomy", limits)
    get_registry().register("scripted", "other", limits)
    registry = ToolRegistry()

    @tool(registry=registry)
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    store.use_tools(registry)
    return store


async def _thread(store: AgentStore, provider: ScriptedProvider, **agent: object) -> uuid.UUID:
    store.register_provider("scripted", provider)
    agent_id = await store.create_agent(
        AgentDefinition(name="Helper", role="You help.", tools=agent.pop("tools", [])),  # type: ignore[arg-type]
        provider="scripted",
        model="roomy",
        **agent,  # type: ignore[arg-type]
    )
    return await store.create_thread(agent_id)


async def test_overrides_reach_the_model_and_the_run_row(ai: AgentStore) -> None:
    provider = ScriptedProvider([calls(call("add", a=1, b=1)), "two"])
    thread = await _thread(ai, provider, tools=["add"], settings={"temperature": 0.9})
    response = await ai.run(
        thread,
        "1+1?",
        model="other",
        instructions="You are terse.",
        additional_instructions="Answer in French.",
        tool_choice="required",
        parallel_tool_calls=False,
        temperature=0.1,
        top_p=0.5,
    )
    first, second = provider.requests
    assert first.model == "other" and response.model == "other"
    assert first.system_prompt == "You are terse.\n\nAnswer in French."
    assert (first.tool_choice, second.tool_choice) == ("required", "auto")
    assert first.parallel_tool_calls is False and first.top_p == 0.5
    assert first.temperature == 0.1  # the override beats the agent's 0.9
    run = await ai.get_run(response.run_id)
    assert run.model == "other"
    assert run.overrides == {
        "model": "other",
        "instructions": "You are terse.",
        "additional_instructions": "Answer in French.",
        "tool_choice": "required",
        "parallel_tool_calls": False,
        "temperature": 0.1,
        "top_p": 0.5,
    }


async def test_tools_override_and_truncation(ai: AgentStore) -> None:
    provider = ScriptedProvider(["a", "b", "c", "d"])
    thread = await _thread(ai, provider, tools=["add"])
    await ai.run(thread, "one")
    await ai.run(thread, "two")
    await ai.run(
        thread, "three", tools=[], truncation={"type": "last_messages", "last_messages": 2}
    )
    third = provider.requests[2]
    assert third.tools == []
    assert [m.text for m in third.messages] == ["two", "b", "three"]
    await ai.run(thread, "four")
    assert [t.name for t in provider.requests[3].tools] == ["add"]  # only that run


async def test_bad_overrides_are_refused_before_the_run_exists(ai: AgentStore) -> None:
    thread = await _thread(ai, ScriptedProvider([]))
    with pytest.raises(ValidationError, match="unknown run override"):
        await ai.run(thread, "x", modle="gpt")
    with pytest.raises(ValidationError) as err:
        await ai.run(thread, "x", temperature=7)
    assert err.value.details["field"] == "temperature"
    with pytest.raises(ValidationError, match="unknown provider"):
        await ai.run(thread, "x", provider="nope", model="m")
    with pytest.raises(UnknownModelError):
        await ai.run(thread, "x", provider="openai", model="no-such-model")
    with pytest.raises(ValidationError) as err:
        await ai.run(thread, "x", response_format={"type": "json_schema", "json_schema": {}})
    assert err.value.details["field"] == "response_format.json_schema.schema"
    with pytest.raises(ValidationError):
        await ai.run(thread, "x", tool_choice="sometimes!")
    assert (await ai.list_runs(thread)).items == []


async def test_max_completion_tokens_ends_incomplete(ai: AgentStore) -> None:
    cut = ProviderResponse(content="A long answ", finish_reason="length", usage=Usage(20, 8))
    provider = ScriptedProvider([cut])
    thread = await _thread(ai, provider)
    response = await ai.run(thread, "tell me everything", max_completion_tokens=8)
    assert provider.requests[0].max_output_tokens == 8
    assert response.status == "incomplete"
    assert response.incomplete_details == {"reason": "max_completion_tokens"}
    run = await ai.get_run(response.run_id)
    assert run.status == "incomplete" and run.incomplete_details == {
        "reason": "max_completion_tokens"
    }
    saved = [m.text for m in (await ai.list_messages(thread)).items]
    assert saved == ["tell me everything", "A long answ"]


async def test_max_prompt_tokens_ends_incomplete_after_the_tool_results(ai: AgentStore) -> None:
    first = ProviderResponse(
        tool_calls=calls(call("add", a=2, b=2)).tool_calls,
        finish_reason="tool_calls",
        usage=Usage(300, 5),
    )
    provider = ScriptedProvider([first, "never asked"])
    thread = await _thread(ai, provider, tools=["add"])
    response = await ai.run(thread, "2+2", max_prompt_tokens=300)
    assert len(provider.requests) == 1
    assert response.status == "incomplete" and response.finish_reason == "max_prompt_tokens"
    roles = [m.role for m in (await ai.list_messages(thread)).items]
    assert roles == ["user", "assistant", "tool"]  # the call keeps its result


async def test_structured_output_is_validated_and_retried_once(ai: AgentStore) -> None:
    good = json.dumps({"city": "Paris", "celsius": 21})
    provider = ScriptedProvider(['{"city": "Paris"}', good])
    thread = await _thread(ai, provider)
    response = await ai.run(thread, "weather?", response_format=FORMAT)
    assert json.loads(response.content) == {"city": "Paris", "celsius": 21}
    fmt = provider.requests[0].response_format
    assert fmt is not None and fmt.type == "json_schema" and fmt.schema == SCHEMA and fmt.strict
    retry = provider.requests[1].messages
    assert retry[-2].text == '{"city": "Paris"}'
    assert "celsius" in retry[-1].text and retry[-1].role == "user"
    saved = (await ai.list_messages(thread)).items
    assert [m.text for m in saved] == ["weather?", good]  # the rejected answer is not saved
    assert "celsius" in saved[1].metadata["structured_output_retry"]


async def test_structured_output_invalid_twice_fails_the_run(ai: AgentStore) -> None:
    provider = ScriptedProvider(["not json", '{"city": 3, "celsius": 1}'])
    thread = await _thread(ai, provider)
    with pytest.raises(InvalidStructuredOutput, match="city"):
        await ai.run(thread, "weather?", response_format=FORMAT)
    (run,) = (await ai.list_runs(thread)).items
    assert run.status == "failed"
    assert run.last_error is not None and run.last_error["code"] == "invalid_structured_output"
    assert (await ai.list_messages(thread)).items == []


async def test_json_object_format(ai: AgentStore) -> None:
    provider = ScriptedProvider(['["a list"]', '{"ok": true}'])
    thread = await _thread(ai, provider)
    response = await ai.run(thread, "json please", response_format={"type": "json_object"})
    assert json.loads(response.content) == {"ok": True}
    assert provider.requests[0].response_format is not None
