"""The shared prompted-tools mechanism (:mod:`ai_agents.providers.prompted_tools`) and the
choice between native and prompted tools every adapter makes (``native_tools_for``)."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from ai_agents.messages import (
    IMAGES_KEY,
    ImageInput,
    Message,
    ToolCall,
    assistant,
    tool_result,
    user,
)
from ai_agents.providers.anthropic import AnthropicProvider
from ai_agents.providers.base import (
    ProviderRequest,
    ProviderResponse,
    ProviderSettings,
    ResponseDone,
    ResponseFormat,
    StreamEvent,
    TextDelta,
    ToolCallReady,
    ToolSpec,
)
from ai_agents.providers.ollama import OllamaProvider
from ai_agents.providers.openai import OpenAIChatProvider
from ai_agents.providers.prompted_tools import PromptedTools, prompted_for, text_history
from ai_agents.providers.registry import ModelRegistry
from ai_agents.tools.parser import render_tool_call, render_tool_result

ADD = ToolSpec(name="add", description="Add two integers.")
CLOCK = ToolSpec(name="clock", description="The time.")
CALL = ToolCall(id="call_1", name="add", arguments={"a": 2, "b": 3})
XML_CALL = (
    '<tool_call>\n<name>add</name>\n<arguments>\n{"a": 2, "b": 3}\n</arguments>\n</tool_call>'
)
PNG = "data:image/png;base64," + base64.b64encode(b"png").decode()


def request(**changes: object) -> ProviderRequest:
    base = ProviderRequest(model="m", system_prompt="Be terse.", messages=[user("2+3?")])
    return replace(base, **changes)  # type: ignore[arg-type]


# --- which models get prompted tools -------------------------------------------------------


async def test_native_tools_come_from_the_registry_for_every_adapter() -> None:
    registry = ModelRegistry()
    registry.update("vllm", "plain-model", supports_tools=False)
    registry.update("vllm", "tool-model", supports_tools=True)
    vllm = OpenAIChatProvider(ProviderSettings(name="vllm", base_url="http://x"))
    vllm._registry = registry
    assert not vllm.native_tools_for("plain-model")
    assert vllm.native_tools_for("tool-model")
    # Unknown: today's behaviour (native), even on a local provider with default limits.
    assert vllm.native_tools_for("never-registered")
    # Known to the adapter kind when not to the provider name.
    assert vllm.native_tools_for("gpt-4o")
    assert not vllm.native_tools_for("o1-mini")  # the registry: no tools
    assert not OpenAIChatProvider().native_tools_for("o1-mini")  # the default registry
    anthropic = AnthropicProvider()
    anthropic._registry = registry
    assert anthropic.native_tools_for("claude-haiku-4-5")
    assert anthropic.native_tools_for("claude-from-the-future")
    ollama = OllamaProvider(ProviderSettings(base_url="http://127.0.0.1:9"), registry=registry)
    try:
        assert ollama.native_tools_for("llama3.1:8b")
        assert not ollama.native_tools_for("gemma2:2b")
        assert not ollama.native_tools_for("never-pulled")  # Ollama: prompted when unknown
    finally:
        await ollama.aclose()


def test_the_native_tools_option_overrides_the_registry() -> None:
    assert not OpenAIChatProvider(native_tools=False).native_tools_for("gpt-4o")
    assert OpenAIChatProvider(native_tools=True).native_tools_for("o1-mini")
    picky = AnthropicProvider(native_tools=lambda model: model.startswith("claude-"))
    assert picky.native_tools_for("claude-haiku-4-5")
    assert not picky.native_tools_for("other")
    assert prompted_for(picky, request(model="claude-haiku-4-5", tools=[ADD])) is None
    assert prompted_for(picky, request(model="other", tools=[ADD])) is not None


# --- the request -----------------------------------------------------------------------------


def test_the_request_describes_the_tools_and_sends_none() -> None:
    prompted = PromptedTools.of(request(tools=[ADD, CLOCK], tool_choice="add"))
    sent = prompted.request
    assert sent.tools == () and sent.tool_choice == "auto"
    assert sent.system_prompt.startswith("Be terse.\n\n# Tools")
    assert "### add" in sent.system_prompt and "### clock" not in sent.system_prompt
    assert sent.system_prompt.endswith("You must answer with a call of the tool `add`.")
    assert prompted.known_tools == frozenset({"add"})
    none = PromptedTools.of(request(tools=[ADD], tool_choice="none"))
    assert none.known_tools is None and none.request.system_prompt == "Be terse."


def test_history_is_text_with_turns_merged_and_images_kept() -> None:
    pic = Message(
        role="user", content="And this?", metadata={IMAGES_KEY: [ImageInput(PNG).to_json()]}
    )
    history = [
        user("2+3?"),
        assistant("Let me add.", [CALL]),
        tool_result(CALL, "5"),
        pic,
        assistant(None, [replace(CALL, id="call_2")]),
        tool_result(replace(CALL, id="call_2"), "boom", is_error=True),
    ]
    out = text_history(history)
    assert [m.role for m in out] == ["user", "assistant", "user", "assistant", "user"]
    assert all(not m.tool_calls and m.tool_call_id is None for m in out)
    assert out[1].content == f"Let me add.\n\n{render_tool_call(CALL)}"
    assert out[2].content == f"{render_tool_result('add', 'call_1', '5')}\n\nAnd this?"
    assert [i.url for i in out[2].images] == [PNG]
    assert out[4].content == render_tool_result("add", "call_2", "boom", is_error=True)
    assert history[3].images and history[1].tool_calls  # the inputs are untouched


def test_a_json_format_with_tools_becomes_an_instruction() -> None:
    fmt = ResponseFormat(type="json_schema", name="sum", schema={"type": "object"})
    with_tools = PromptedTools.of(request(tools=[ADD], response_format=fmt))
    assert with_tools.request.response_format is None  # would forbid the XML call
    assert with_tools.request.system_prompt.endswith(
        "When you give your final answer (not a tool call), answer with only JSON, no other "
        'text. It must be valid against this JSON schema: {"type": "object"}'
    )
    alone = PromptedTools.of(request(response_format=fmt))
    assert alone.request.response_format == fmt  # the adapter sends it natively
    tool_less = PromptedTools.of(request(response_format=fmt), keep_response_format=False)
    assert tool_less.request.response_format is None
    assert "Answer with only JSON" in tool_less.request.system_prompt


# --- the answer --------------------------------------------------------------------------------


def test_calls_are_parsed_out_of_the_answer() -> None:
    prompted = PromptedTools.of(request(tools=[ADD]))
    answer = prompted.read(ProviderResponse(content=f"Let me add.\n\n{XML_CALL}"))
    assert answer.content == "Let me add."
    assert answer.finish_reason == "tool_calls"
    assert [(c.name, c.arguments) for c in answer.tool_calls] == [("add", {"a": 2, "b": 3})]
    assert answer.tool_calls[0].id.startswith("call_")
    one = PromptedTools.of(request(tools=[ADD], parallel_tool_calls=False))
    assert len(one.read(ProviderResponse(content=XML_CALL * 2)).tool_calls) == 1
    assert len(prompted.read(ProviderResponse(content=XML_CALL * 2)).tool_calls) == 2
    plain = prompted.read(ProviderResponse(content="5.", finish_reason="length"))
    assert (plain.content, plain.tool_calls, plain.finish_reason) == ("5.", [], "length")


async def _events(*pieces: str) -> AsyncIterator[StreamEvent]:
    for piece in pieces:
        yield TextDelta(piece)
    yield ResponseDone(ProviderResponse(content="".join(pieces)))


@pytest.mark.parametrize("cut", [1, 3, 7, 20])
async def test_the_stream_holds_back_the_call(cut: int) -> None:
    text = f"Let me add. {XML_CALL}"
    pieces = [text[i : i + cut] for i in range(0, len(text), cut)]
    prompted = PromptedTools.of(request(tools=[ADD]))
    events = [e async for e in prompted.stream(_events(*pieces))]
    shown = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert shown == "Let me add."
    calls = [e.call for e in events if isinstance(e, ToolCallReady)]
    assert [(c.name, c.arguments) for c in calls] == [("add", {"a": 2, "b": 3})]
    done = events[-1]
    assert isinstance(done, ResponseDone)
    assert done.response.tool_calls == calls and done.response.content == "Let me add."
    assert done.response.finish_reason == "tool_calls"


async def test_the_option_is_provider_configuration() -> None:
    """``AI_AGENTS_PROVIDERS`` entries (and ``configure``) pass ``native_tools`` on."""
    from ai_agents.providers.factory import ProviderFactory

    factory = ProviderFactory()
    factory.configure("plainvllm", adapter="openai", base_url="http://x/v1", native_tools=False)
    try:
        provider = factory.get("plainvllm")
        assert not provider.native_tools_for("gpt-4o")
        assert prompted_for(provider, request(tools=[ADD])) is not None
    finally:
        await factory.aclose()
