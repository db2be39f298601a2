"""The local provider on the real SmolLM2-135M-Instruct model (llama.cpp in-process).

Nothing about the model is faked: the answers are whatever the 135M model writes, so the
tests assert what the platform guarantees (answers arrive through ``store.run`` and
``store.stream``, usage is llama.cpp's, the turn is persisted, tool XML never leaks into
the stream) rather than what the model says.
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from contextlib import aclosing

import pytest

from ai_agents import AgentDefinition, AgentStore
from ai_agents.errors import ConfigurationError
from ai_agents.messages import user
from ai_agents.providers.base import ProviderRequest, ResponseDone, TextDelta, ToolSpec
from ai_agents.providers.local import (
    _MODELS,
    DEFAULT_MODEL,
    LocalLlamaProvider,
    local_model_status,
)
from ai_agents.response import DoneEvent, TextDeltaEvent, ToolCallEvent, ToolResultEvent
from ai_agents.tools.decorator import tool
from ai_agents.tools.registry import ToolRegistry

requires_llama = pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None,
    reason="llama-cpp-python is not installed (pip install 'ai-agents[local]')",
)

SETTINGS = {"temperature": 0.0, "max_output_tokens": 40}


async def make_agent(store: AgentStore, tools: list[str] | None = None) -> str:
    agent_id = await store.create_agent(
        AgentDefinition(
            name="Helper",
            role="You are a helpful assistant. Answer in one short sentence.",
            tools=tools or [],
        ),
        provider="local",
        model=DEFAULT_MODEL,
        settings={**SETTINGS, "max_tool_iterations": 2},
    )
    return str(await store.create_thread(agent_id, user_id="u1"))


def test_status_says_what_is_there() -> None:
    ok, detail = local_model_status()
    if importlib.util.find_spec("llama_cpp") is None:
        assert not ok and "pip install 'ai-agents[local]'" in detail
    else:
        assert ok, detail
        assert detail.startswith(f"{DEFAULT_MODEL} (") and "MB) via llama-cpp-python" in detail


def test_missing_llama_cpp_is_a_clear_configuration_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # as if not installed
    with pytest.raises(ConfigurationError) as err:
        LocalLlamaProvider()
    assert "pip install 'ai-agents[local]'" in err.value.message
    assert "OPENAI_API_KEY" in err.value.message
    ok, detail = local_model_status()
    assert not ok and "llama-cpp-python is not installed" in detail


@requires_llama
def test_unknown_model_names_are_configuration_errors() -> None:
    provider = LocalLlamaProvider()
    with pytest.raises(ConfigurationError, match="unknown local model 'gpt-9'"):
        provider.model_path("gpt-9")


@pytest.mark.slow
@requires_llama
async def test_run_answers_with_llama_cpp_usage_and_persists(store: AgentStore) -> None:
    thread_id = await make_agent(store)
    response = await store.run(thread_id, "What is the capital of France?")
    assert response.content.strip()
    assert response.finish_reason in ("stop", "length")
    assert (response.provider, response.model) == ("local", DEFAULT_MODEL)
    assert response.usage.input_tokens > 20  # the compiled system prompt + question
    assert 0 < response.usage.output_tokens <= SETTINGS["max_output_tokens"]
    assert not response.usage.estimated
    assert response.cost == 0.0
    messages = (await store.list_messages(thread_id)).items
    assert [(m.role, m.text) for m in messages] == [
        ("user", "What is the capital of France?"),
        ("assistant", response.content),
    ]
    usage = await store.usage(thread_id=thread_id)
    assert (usage.input_tokens, usage.output_tokens) == (
        response.usage.input_tokens,
        response.usage.output_tokens,
    )


@pytest.mark.slow
@requires_llama
async def test_stream_yields_deltas_and_the_same_persisted_answer(store: AgentStore) -> None:
    thread_id = await make_agent(store)
    deltas: list[str] = []
    done: DoneEvent | None = None
    async for event in store.stream(thread_id, "Name three colors."):
        if isinstance(event, TextDeltaEvent):
            deltas.append(event.text)
        elif isinstance(event, DoneEvent):
            done = event
    assert done is not None
    assert len(deltas) > 1  # really streamed, token by token
    assert "".join(deltas) == done.response.content
    assert done.response.usage.input_tokens > 20 and done.response.usage.output_tokens > 0
    saved = (await store.list_messages(thread_id)).items
    assert saved[-1].role == "assistant" and saved[-1].text == done.response.content


@pytest.mark.slow
@requires_llama
async def test_stream_and_complete_agree_on_text_and_usage() -> None:
    provider = LocalLlamaProvider()
    request = ProviderRequest(
        model=DEFAULT_MODEL,
        system_prompt="You are a helpful assistant.",
        messages=[user("Say hello to Ada.")],
        temperature=0.0,
        max_output_tokens=24,
    )
    complete = await provider.complete(request)
    pieces: list[str] = []
    final = None
    async for event in provider.stream(request):
        if isinstance(event, TextDelta):
            pieces.append(event.text)
        elif isinstance(event, ResponseDone):
            final = event.response
    assert final is not None
    assert final.content == complete.content == "".join(pieces)  # greedy: same tokens
    assert final.usage == complete.usage  # llama.cpp's counts, streamed or not
    loaded = next(iter(_MODELS.values()))
    tokens, _stop, _criteria = loaded.prompt(provider.prepare(request).messages)
    assert complete.usage.input_tokens == len(tokens)
    assert len(_MODELS) == 1  # one model instance per process
    await provider.aclose()


@pytest.mark.slow
@requires_llama
async def test_closing_a_stream_early_frees_the_model() -> None:
    provider = LocalLlamaProvider()
    request = ProviderRequest(
        model=DEFAULT_MODEL,
        system_prompt="You are a storyteller.",
        messages=[user("Tell me a long story about a dragon.")],
        temperature=0.0,
        max_output_tokens=400,
    )
    async with aclosing(provider.stream(request)) as events:
        async for event in events:
            assert isinstance(event, TextDelta)
            break
    # The generation stopped at the next token and released the lock: both of these
    # run (one after the other on the one model instance) and complete.
    short = ProviderRequest(
        model=DEFAULT_MODEL,
        system_prompt="",
        messages=[user("Hi")],
        temperature=0.0,
        max_output_tokens=8,
    )
    first, second = await asyncio.wait_for(
        asyncio.gather(provider.complete(short), provider.complete(short)), 120
    )
    assert first.content == second.content
    assert first.usage.output_tokens <= 8


@pytest.mark.slow
@requires_llama
async def test_tools_are_offered_as_xml_and_never_leak_into_the_stream(store: AgentStore) -> None:
    registry = ToolRegistry()

    @tool(registry=registry)
    def get_weather(city: str) -> str:
        """The current weather in a city.

        Args:
            city: the city's name
        """
        return f"Sunny, 22 C in {city}"

    store.extensions["tool_registry"] = registry
    thread_id = await make_agent(store, tools=["get_weather"])
    provider = store.runner.providers.get("local")
    assert isinstance(provider, LocalLlamaProvider)
    prepared = provider.prepare(
        ProviderRequest(
            model=DEFAULT_MODEL,
            system_prompt="sys",
            messages=[user("x")],
            tools=[ToolSpec(name="get_weather", description="The current weather in a city.")],
        )
    )
    assert "<tool_call>" in prepared.messages[0]["content"]  # the XML protocol is offered

    text: list[str] = []
    calls, results = [], []
    done = None
    async for event in store.stream(thread_id, "What is the weather in Paris?"):
        if isinstance(event, TextDeltaEvent):
            text.append(event.text)
        elif isinstance(event, ToolCallEvent):
            calls.append(event.call)
        elif isinstance(event, ToolResultEvent):
            results.append(event.result)
        elif isinstance(event, DoneEvent):
            done = event.response
    assert done is not None
    assert "<tool_call" not in "".join(text)
    assert len(results) == len(calls)  # every call the model made was executed
    saved = (await store.list_messages(thread_id)).items
    assert [m.role for m in saved].count("tool") == len(calls)
    assert saved[-1].role == "assistant"
