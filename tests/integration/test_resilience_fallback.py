"""Issue 4, acceptance 3: fallback chains through store.run with the strict vendor fakes.

The primary (OpenAI fake) answers 503; the fallback (Anthropic fake) answers, with tool
calls in the history that the strict Anthropic fake accepts; the saved message records
the provider and model that answered and why the primary was skipped.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from ai_agents import AgentDefinition, AgentStore
from ai_agents.errors import (
    ProviderBadRequest,
    ProviderBadResponse,
    ProviderOverloaded,
    ProviderUnavailable,
)
from ai_agents.providers.anthropic import AnthropicProvider
from ai_agents.providers.base import ProviderSettings
from ai_agents.providers.openai import OpenAIChatProvider
from ai_agents.providers.registry import ModelLimits, get_registry
from ai_agents.response import DoneEvent, TextDeltaEvent
from ai_agents.testing import ScriptedProvider
from ai_agents.tools.decorator import tool
from ai_agents.tools.registry import ToolRegistry
from tests.fakes.anthropic_fake import AnthropicFake
from tests.fakes.openai_fake import OpenAIFake
from tests.fakes.script import Reply, call

GPT = "gpt-4o-mini"
CLAUDE = "claude-haiku-4-5"
RETRY = {"base_delay": 0.01, "max_delay": 0.05}
SKIP_503 = {
    "provider": "openai",
    "model": GPT,
    "reason": "retries_exhausted",
    "error": "provider_overloaded",
    "status": 503,
    "attempts": 3,
}


@pytest.fixture(scope="module")
def fakes() -> Iterator[tuple[OpenAIFake, AnthropicFake, str, str]]:
    from contextlib import ExitStack

    from tests.fakes.server import serve

    openai_fake = OpenAIFake(api_key="sk-test")
    anthropic_fake = AnthropicFake(api_key="ak-test")
    with ExitStack() as stack:
        openai_url = stack.enter_context(serve(openai_fake)) + "/v1"
        anthropic_url = stack.enter_context(serve(anthropic_fake))
        yield openai_fake, anthropic_fake, openai_url, anthropic_url


@pytest.fixture
async def ai(store: AgentStore, fakes: tuple[OpenAIFake, AnthropicFake, str, str]) -> AgentStore:
    openai_fake, anthropic_fake, openai_url, anthropic_url = fakes
    openai_fake.script.reset()
    anthropic_fake.script.reset()
    registry = ToolRegistry()

    @tool(registry=registry)
    def add(a: int, b: int) -> int:
        """Add two integers.

        Args:
            a: first addend
            b: second addend
        """
        return a + b

    store.use_tools(registry)
    store.register_provider(
        "openai",
        OpenAIChatProvider(ProviderSettings(base_url=openai_url, api_key="sk-test", timeout=5)),
    )
    store.register_provider(
        "anthropic",
        AnthropicProvider(ProviderSettings(base_url=anthropic_url, api_key="ak-test", timeout=5)),
    )
    return store


async def _thread(store: AgentStore, **settings: Any) -> Any:
    agent = await store.create_agent(
        AgentDefinition(name="fb", role="You add numbers.", tools=["add"]),
        provider="openai",
        model=GPT,
        fallbacks=[{"provider": "anthropic", "model": CLAUDE}],
        settings={"retry": RETRY, **settings},
    )
    return await store.create_thread(agent)


async def test_503s_fall_back_to_anthropic_with_tool_calls_in_history(
    ai: AgentStore, fakes: tuple[OpenAIFake, AnthropicFake, str, str]
) -> None:
    openai_fake, anthropic_fake, _, _ = fakes
    thread = await _thread(ai)

    # Turn 1, all OpenAI: a tool call, its result, the answer.
    openai_fake.push(Reply.tool_calls(call("add", {"a": 2, "b": 3})), Reply.text("2 + 3 = 5."))
    first = await ai.run(thread, "What is 2 + 3?")
    assert (first.provider, first.content) == ("openai", "2 + 3 = 5.")

    # Turn 2: OpenAI asks for a tool, then fails with 503s; Anthropic finishes the turn
    # with both turns' tool calls and results in its history.
    openai_fake.push(
        Reply.tool_calls(call("add", {"a": 1, "b": 1})),
        *[Reply.error(503, message="The server is overloaded") for _ in range(3)],
    )
    anthropic_fake.push(Reply.text("1 + 1 = 2."))
    response = await ai.run(thread, "And 1 + 1?")

    assert response.content == "1 + 1 = 2."
    assert (response.provider, response.model) == ("anthropic", CLAUDE)
    assert len(openai_fake.requests) == 2 + 1 + 3
    assert len(anthropic_fake.requests) == 1  # accepted by the strict fake on the first try
    sent = anthropic_fake.requests[0]
    assert sent["model"] == CLAUDE
    blocks = [
        block["type"]
        for message in sent["messages"]
        if isinstance(message["content"], list)
        for block in message["content"]
    ]
    assert blocks.count("tool_use") == 2
    assert blocks.count("tool_result") == 2

    saved = (await ai.list_messages(thread)).items[4:]
    assert [m.role for m in saved] == ["user", "assistant", "tool", "assistant"]
    assert (saved[1].provider, saved[1].model) == ("openai", GPT)
    assert saved[2].content == "2"
    answer = saved[3]
    assert (answer.provider, answer.model) == ("anthropic", CLAUDE)
    routing = answer.metadata["routing"]
    assert routing["provider"] == "anthropic"
    assert routing["skipped"] == [SKIP_503]
    assert routing["factors"] == ["fallback"]
    assert "routing" not in saved[1].metadata  # the first call was uneventful

    assert response.routing["provider"] == "anthropic"
    assert response.routing["skipped"] == [SKIP_503]
    assert response.routing["factors"] == ["fallback"]
    assert response.routing["attempts"] == 1 + 3 + 1
    assert [c["provider"] for c in response.routing["calls"]] == ["openai", "anthropic"]
    # The rate limiter counted the call where it went.
    assert (await ai.runner.rate_window("anthropic", CLAUDE)).requests == 1

    # Turn 3: OpenAI is healthy again and gets Anthropic's answer in its history.
    openai_fake.push(Reply.text("Anything else?"))
    third = await ai.run(thread, "Thanks")
    assert third.provider == "openai"
    assert third.routing["skipped"] == []
    wire = openai_fake.requests[-1]["messages"]
    assert {"role": "assistant", "content": "1 + 1 = 2."} in wire


async def test_streamed_run_falls_back_before_any_text(
    ai: AgentStore, fakes: tuple[OpenAIFake, AnthropicFake, str, str]
) -> None:
    openai_fake, anthropic_fake, _, _ = fakes
    thread = await _thread(ai)
    openai_fake.push(*[Reply.error(503) for _ in range(3)])
    anthropic_fake.push(Reply.text("Streaming from the fallback."))
    events = [event async for event in ai.stream(thread, "hello")]
    text = "".join(e.text for e in events if isinstance(e, TextDeltaEvent))
    assert text == "Streaming from the fallback."
    done = events[-1]
    assert isinstance(done, DoneEvent)
    assert done.response.provider == "anthropic"
    assert anthropic_fake.requests[0]["stream"] is True


async def test_a_400_does_not_fall_back(
    ai: AgentStore, fakes: tuple[OpenAIFake, AnthropicFake, str, str]
) -> None:
    openai_fake, anthropic_fake, _, _ = fakes
    thread = await _thread(ai)
    openai_fake.push(Reply.error(400, message="Invalid 'messages'"))
    with pytest.raises(ProviderBadRequest):
        await ai.run(thread, "hello")
    assert len(openai_fake.requests) == 1
    assert anthropic_fake.requests == []
    assert (await ai.get_thread(thread)).message_count == 0


async def test_every_target_failing_raises_provider_unavailable(
    ai: AgentStore, fakes: tuple[OpenAIFake, AnthropicFake, str, str]
) -> None:
    openai_fake, anthropic_fake, _, _ = fakes
    thread = await _thread(ai)
    openai_fake.push(*[Reply.error(503) for _ in range(3)])
    anthropic_fake.push(*[Reply.error(529, "overloaded_error") for _ in range(3)])
    with pytest.raises(ProviderUnavailable) as caught:
        await ai.run(thread, "hello")
    assert isinstance(caught.value.__cause__, ProviderOverloaded)
    skipped = caught.value.details["routing"]["skipped"]
    assert [(s["provider"], s["reason"], s["status"]) for s in skipped] == [
        ("openai", "retries_exhausted", 503),
        ("anthropic", "retries_exhausted", 529),
    ]
    assert (await ai.get_thread(thread)).message_count == 0  # nothing of the turn saved


async def test_open_breaker_skips_the_primary_without_calling_it(
    ai: AgentStore, fakes: tuple[OpenAIFake, AnthropicFake, str, str]
) -> None:
    openai_fake, anthropic_fake, _, _ = fakes
    thread = await _thread(ai, retry={**RETRY, "max_attempts": 5})
    openai_fake.push(*[Reply.error(503) for _ in range(5)])  # 5 = default failure_threshold
    first = await ai.run(thread, "one")
    assert first.provider == "anthropic"
    assert first.routing["skipped"][0]["reason"] == "breaker_opened"
    second = await ai.run(thread, "two")
    assert second.provider == "anthropic"
    assert second.routing["skipped"][0]["reason"] == "breaker_open"
    assert second.routing["skipped"][0]["retry_in"] > 20  # default recovery: 30 s
    assert len(openai_fake.requests) == 5
    (status,) = await ai.runner.breakers.status()
    assert (status.provider, status.state) == ("openai", "open")


async def test_fallback_whose_context_is_too_small_is_skipped(store: AgentStore) -> None:
    registry = get_registry()
    registry.register(
        "scripted_a", "big", ModelLimits(100_000, 100, 10_000, 10**8, True, False, 0, 0)
    )
    registry.register("scripted_b", "small", ModelLimits(40, 10, 10_000, 10**8, True, False, 0, 0))
    store.register_provider(
        "scripted_a", ScriptedProvider([ProviderOverloaded("down", provider="a", status=503)])
    )
    small = ScriptedProvider(["never"])
    store.register_provider("scripted_b", small)
    agent = await store.create_agent(
        AgentDefinition(name="ctx", role="You answer. " * 20),
        provider="scripted_a",
        model="big",
        fallbacks=[{"provider": "scripted_b", "model": "small"}],
    )
    thread = await store.create_thread(agent)
    with pytest.raises(ProviderUnavailable) as caught:
        await store.run(thread, "hello " * 30)
    reasons = [s["reason"] for s in caught.value.details["routing"]["skipped"]]
    assert reasons == ["retries_exhausted", "context_window"]  # test models: one attempt
    assert small.requests == []


async def test_a_fallback_this_process_cannot_build_is_skipped(
    store: AgentStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VLLM_BASE_URL", raising=False)
    limits = ModelLimits(100_000, 100, 10_000, 10**8, True, False, 0, 0)
    get_registry().register("scripted_a", "big", limits)
    get_registry().register("scripted_b", "big", limits)
    store.register_provider(
        "scripted_a", ScriptedProvider([ProviderOverloaded("down", provider="a", status=503)])
    )
    store.register_provider("scripted_b", ScriptedProvider(["from b"]))
    agent = await store.create_agent(
        AgentDefinition(name="nc", role="You answer."),
        provider="scripted_a",
        model="big",
        fallbacks=[
            {"provider": "vllm", "model": "qwen"},
            {"provider": "scripted_b", "model": "big"},
        ],
    )
    response = await store.run(await store.create_thread(agent), "hello")
    assert (response.provider, response.content) == ("scripted_b", "from b")
    assert [s["reason"] for s in response.routing["skipped"]] == [
        "retries_exhausted",
        "not_configured",
    ]


# --- unreadable replies: retried, then the fallback; never an empty saved answer ----------

SKIP_UNREADABLE = {**SKIP_503, "error": "provider_bad_response", "status": 200}


async def test_unreadable_200s_fall_back_to_anthropic(
    ai: AgentStore, fakes: tuple[OpenAIFake, AnthropicFake, str, str]
) -> None:
    openai_fake, anthropic_fake, _, _ = fakes
    thread = await _thread(ai)
    openai_fake.push(
        Reply.malformed("<html><h1>502 Bad Gateway</h1></html>", content_type="text/html"),
        Reply.malformed('{"id": "chatcmpl-1", "choices": [{"mess'),
        Reply.malformed('{"choices": [{"message": null, "finish_reason": "stop"}]}'),
    )
    anthropic_fake.push(Reply.text("Claude answers."))
    response = await ai.run(thread, "hello")

    assert (response.provider, response.content) == ("anthropic", "Claude answers.")
    assert response.routing["skipped"] == [SKIP_UNREADABLE]
    assert len(openai_fake.requests) == 3  # retried like a 5xx
    saved = (await ai.list_messages(thread)).items
    assert [(m.role, m.content, m.provider) for m in saved] == [
        ("user", "hello", None),
        ("assistant", "Claude answers.", "anthropic"),
    ]


async def test_streamed_run_cut_after_text_saves_nothing(
    ai: AgentStore, fakes: tuple[OpenAIFake, AnthropicFake, str, str]
) -> None:
    openai_fake, anthropic_fake, _, _ = fakes
    thread = await _thread(ai)
    openai_fake.push(Reply.text("Hello there, my friend", cut=3))  # no finish chunk, no [DONE]
    events: list[Any] = []
    with pytest.raises(ProviderBadResponse) as caught:
        await _drain(ai.stream(thread, "hello"), events)
    assert "before its finish_reason" in caught.value.message
    assert "".join(e.text for e in events if isinstance(e, TextDeltaEvent)) == "Hello th"
    assert not any(isinstance(e, DoneEvent) for e in events)
    # Text was shown: no retry, no fallback, and nothing of the turn saved.
    assert len(openai_fake.requests) == 1
    assert anthropic_fake.requests == []
    assert (await ai.get_thread(thread)).message_count == 0
    assert (await ai.list_messages(thread)).items == []


async def test_streamed_run_cut_before_any_text_falls_back(
    ai: AgentStore, fakes: tuple[OpenAIFake, AnthropicFake, str, str]
) -> None:
    openai_fake, anthropic_fake, _, _ = fakes
    thread = await _thread(ai)
    openai_fake.push(*[Reply.text("never shown", cut=1) for _ in range(3)])  # the role chunk
    anthropic_fake.push(Reply.text("Streaming from the fallback."))
    events = [event async for event in ai.stream(thread, "hello")]
    text = "".join(e.text for e in events if isinstance(e, TextDeltaEvent))
    assert text == "Streaming from the fallback."
    done = events[-1]
    assert isinstance(done, DoneEvent) and done.response.provider == "anthropic"
    assert done.response.routing["skipped"] == [SKIP_UNREADABLE]
    saved = (await ai.list_messages(thread)).items
    assert [(m.role, m.content) for m in saved] == [
        ("user", "hello"),
        ("assistant", "Streaming from the fallback."),
    ]


async def _drain(events: AsyncIterator[Any], into: list[Any]) -> None:
    async for event in events:
        into.append(event)
