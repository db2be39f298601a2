"""Prompted (XML) tools through the OpenAI-compatible and Anthropic adapters.

An agent with a function tool runs on a model registered with ``supports_tools=false``
behind the strict vendor fakes, which serve that model *without* tool support: any
request carrying ``tools`` (or tool messages/blocks) is a 400, as from a vLLM server
started without a tool-call parser. The tool still runs: described in the system prompt,
called by the model in XML, parsed back into the same tool calls native calling yields,
its result shown to the model as text, and the thread holds the usual assistant call,
tool result and answer.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import replace
from typing import Any

import pytest

from ai_agents import AgentDefinition, AgentStore
from ai_agents.errors import ProviderBadRequest
from ai_agents.messages import ToolCall, user
from ai_agents.providers.anthropic import AnthropicProvider
from ai_agents.providers.base import ProviderRequest, ProviderSettings, ResponseFormat, ToolSpec
from ai_agents.providers.openai import OpenAIChatProvider
from ai_agents.providers.registry import get_registry
from ai_agents.response import DoneEvent, TextDeltaEvent, ToolCallEvent, ToolResultEvent
from ai_agents.tools.decorator import tool
from ai_agents.tools.parser import render_tool_call, render_tool_result
from ai_agents.tools.registry import ToolRegistry
from tests.fakes.anthropic_fake import AnthropicFake
from tests.fakes.ollama_fake import xml_tool_call_text
from tests.fakes.openai_fake import OpenAIFake
from tests.fakes.script import Reply
from tests.fakes.server import serve

pytestmark = pytest.mark.integration

#: Served by the fakes without tool support, registered with ``supports_tools=false``.
PLAIN_MODEL = "tiny-chat-notools"
CLAUDE = "claude-plain-notools"
QUESTION = "What is 2 + 3?"
CALL_TEXT = xml_tool_call_text("add", {"a": 2, "b": 3}, prose="Let me add.", style="xml")


@pytest.fixture(scope="module")
def fakes() -> Iterator[tuple[OpenAIFake, AnthropicFake, str, str]]:
    openai_fake = OpenAIFake(api_key="sk-test", no_tool_models=(PLAIN_MODEL,))
    anthropic_fake = AnthropicFake(api_key="ak-test", no_tool_models=(CLAUDE,))
    with ExitStack() as stack:
        openai_url = stack.enter_context(serve(openai_fake)) + "/v1"
        anthropic_url = stack.enter_context(serve(anthropic_fake))
        yield openai_fake, anthropic_fake, openai_url, anthropic_url


@pytest.fixture
def openai_fake(fakes: tuple[OpenAIFake, AnthropicFake, str, str]) -> OpenAIFake:
    fakes[0].script.reset()
    return fakes[0]


@pytest.fixture
def anthropic_fake(fakes: tuple[OpenAIFake, AnthropicFake, str, str]) -> AnthropicFake:
    fakes[1].script.reset()
    return fakes[1]


@pytest.fixture
def ai(store: AgentStore, fakes: tuple[OpenAIFake, AnthropicFake, str, str]) -> AgentStore:
    _, _, openai_url, anthropic_url = fakes
    registry = get_registry()  # restored after each test by the autouse fixture
    # The models file's way: a partial entry for a vLLM model (vllm is a local provider).
    registry.update("vllm", PLAIN_MODEL, supports_tools=False)
    # A complete entry for an Anthropic model without tools.
    registry.register(
        "anthropic",
        CLAUDE,
        replace(registry.get("anthropic", "claude-haiku-4-5"), supports_tools=False),
    )
    tools = ToolRegistry()

    @tool(registry=tools)
    def add(a: int, b: int) -> int:
        """Add two integers.

        Args:
            a: first addend
            b: second addend
        """
        return a + b

    store.use_tools(tools)
    settings = ProviderSettings(base_url=openai_url, api_key="sk-test", timeout=5, name="vllm")
    store.register_provider("vllm", OpenAIChatProvider(settings))
    store.register_provider(
        "anthropic",
        AnthropicProvider(ProviderSettings(base_url=anthropic_url, api_key="ak-test", timeout=5)),
    )
    return store


async def _thread(store: AgentStore, provider: str, model: str) -> Any:
    agent = await store.create_agent(
        AgentDefinition(name="adder", role="You add numbers.", tools=["add"]),
        provider=provider,
        model=model,
    )
    return await store.create_thread(agent)


async def _check_thread(store: AgentStore, thread: Any) -> str:
    """The thread holds user, assistant call, tool result, answer; returns the call id."""
    saved = (await store.list_messages(thread)).items
    assert [m.role for m in saved] == ["user", "assistant", "tool", "assistant"]
    asked, called, result, answer = saved
    assert asked.content == QUESTION
    assert called.content == "Let me add."  # the prose, without the XML
    assert [(c.name, c.arguments) for c in called.tool_calls] == [("add", {"a": 2, "b": 3})]
    call = called.tool_calls[0]
    assert call.id
    assert (result.tool_call_id, result.tool_name, result.content) == (call.id, "add", "5")
    assert answer.content == "2 + 3 = 5."
    assert answer.tool_calls == []
    return call.id


def _openai_requests_are_plain(fake: OpenAIFake, call_id: str) -> None:
    first, second = fake.requests
    for body in (first, second):
        assert body["model"] == PLAIN_MODEL
        assert "tools" not in body and "tool_choice" not in body
    system = first["messages"][0]
    assert system["role"] == "system"
    assert "You add numbers." in system["content"]
    assert "<tool_call>" in system["content"] and "add" in system["content"]
    assert [m["role"] for m in first["messages"]] == ["system", "user"]
    # The second request shows the call and its result to the model as text.
    assert [m["role"] for m in second["messages"]] == ["system", "user", "assistant", "user"]
    called, result = second["messages"][2:]
    assert called["content"] == f"Let me add.\n\n{render_tool_call(_saved_call(call_id))}"
    assert result["content"] == render_tool_result("add", call_id, "5")


def _saved_call(call_id: str) -> ToolCall:
    return ToolCall(id=call_id, name="add", arguments={"a": 2, "b": 3})


async def test_openai_compatible_model_without_tools_gets_prompted_tools(
    ai: AgentStore, openai_fake: OpenAIFake
) -> None:
    thread = await _thread(ai, "vllm", PLAIN_MODEL)
    openai_fake.push(Reply.text(CALL_TEXT), Reply.text("2 + 3 = 5."))
    response = await ai.run(thread, QUESTION)
    assert response.content == "2 + 3 = 5."
    assert [(c.call.name, c.result) for c in response.tool_calls] == [("add", "5")]
    call_id = await _check_thread(ai, thread)
    _openai_requests_are_plain(openai_fake, call_id)


async def test_the_fake_rejects_native_tools_for_that_model(
    ai: AgentStore, openai_fake: OpenAIFake
) -> None:
    """The same run with native tools forced fails: the fake really is tool-less."""
    provider = ai.runner.providers.get("vllm")
    assert isinstance(provider, OpenAIChatProvider)
    provider.native_tools = True
    request = ProviderRequest(
        model=PLAIN_MODEL,
        system_prompt="s",
        messages=[user(QUESTION)],
        tools=[_tool_spec()],
    )
    with pytest.raises(ProviderBadRequest, match="tool-call-parser"):
        await provider.complete(request)
    assert "tools" in openai_fake.requests[-1]


def _tool_spec() -> ToolSpec:
    return ToolSpec(name="add", description="Add two integers.")


async def test_streamed_run_holds_back_the_xml(ai: AgentStore, openai_fake: OpenAIFake) -> None:
    thread = await _thread(ai, "vllm", PLAIN_MODEL)
    openai_fake.push(Reply.text(CALL_TEXT), Reply.text("2 + 3 = 5."))
    events = [event async for event in ai.stream(thread, QUESTION)]
    text = "".join(e.text for e in events if isinstance(e, TextDeltaEvent))
    assert "<" not in text and "tool_call" not in text
    assert text.startswith("Let me add.") and text.endswith("2 + 3 = 5.")
    calls = [e.call for e in events if isinstance(e, ToolCallEvent)]
    assert [(c.name, c.arguments) for c in calls] == [("add", {"a": 2, "b": 3})]
    results = [e for e in events if isinstance(e, ToolResultEvent)]
    assert [(r.call.id, r.result, r.is_error) for r in results] == [(calls[0].id, "5", False)]
    done = [e for e in events if isinstance(e, DoneEvent)]
    assert len(done) == 1 and done[0].response.content == "2 + 3 = 5."
    call_id = await _check_thread(ai, thread)
    assert call_id == calls[0].id
    _openai_requests_are_plain(openai_fake, call_id)
    assert all(body["stream"] is True for body in openai_fake.requests)


async def test_anthropic_model_without_tools_gets_prompted_tools(
    ai: AgentStore, anthropic_fake: AnthropicFake
) -> None:
    thread = await _thread(ai, "anthropic", CLAUDE)
    anthropic_fake.push(Reply.text(CALL_TEXT), Reply.text("2 + 3 = 5."))
    response = await ai.run(thread, QUESTION)
    assert response.content == "2 + 3 = 5."
    call_id = await _check_thread(ai, thread)
    first, second = anthropic_fake.requests
    for body in (first, second):
        assert "tools" not in body and "tool_choice" not in body
    assert "<tool_call>" in first["system"]
    assert [m["role"] for m in second["messages"]] == ["user", "assistant", "user"]
    called, result = second["messages"][1:]
    assert called["content"] == [
        {"type": "text", "text": f"Let me add.\n\n{render_tool_call(_saved_call(call_id))}"}
    ]
    assert result["content"] == [{"type": "text", "text": render_tool_result("add", call_id, "5")}]


async def test_anthropic_structured_output_without_tools_is_an_instruction(
    fakes: tuple[OpenAIFake, AnthropicFake, str, str], anthropic_fake: AnthropicFake
) -> None:
    """A JSON answer is an output tool on Anthropic: a model without tools is asked for
    the JSON in the system prompt instead (no tool reaches the server)."""
    get_registry().register(
        "anthropic",
        CLAUDE,
        replace(get_registry().get("anthropic", "claude-haiku-4-5"), supports_tools=False),
    )
    provider = AnthropicProvider(ProviderSettings(base_url=fakes[3], api_key="ak-test"))
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    anthropic_fake.push(Reply.text('{"n": 5}'))
    try:
        response = await provider.complete(
            ProviderRequest(
                model=CLAUDE,
                system_prompt="Count.",
                messages=[user("How many?")],
                response_format=ResponseFormat(type="json_schema", name="count", schema=schema),
            )
        )
    finally:
        await provider.aclose()
    assert response.content == '{"n": 5}'
    body = anthropic_fake.requests[-1]
    assert "tools" not in body
    assert body["system"].startswith("Count.\n\nAnswer with only JSON")
    assert '"required": ["n"]' in body["system"]
