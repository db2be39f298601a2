"""Issue 4, acceptance 4: one full store.run per auto-routing rule.

``provider="auto"`` agents route between a local Ollama fake (``gemma2:2b``: no native
tools) and the OpenAI fake (``gpt-4o-mini`` as "cloud", ``gpt-4o`` as "strong"). Each
test shows which provider answered (the fakes' request logs agree) and why
(``response.routing["decision"]``, also saved with the message).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import pytest

from ai_agents import AgentDefinition, AgentStore
from ai_agents.errors import ProviderOverloaded
from ai_agents.providers.base import ProviderSettings
from ai_agents.providers.ollama import OllamaProvider
from ai_agents.providers.openai import OpenAIChatProvider
from ai_agents.tools.decorator import tool
from ai_agents.tools.registry import ToolRegistry
from tests.fakes.ollama_fake import FakeOllama
from tests.fakes.openai_fake import OpenAIFake
from tests.fakes.script import Reply, call
from tests.fakes.server import serve

LOCAL = {"provider": "ollama", "model": "gemma2:2b"}
CLOUD = {"provider": "openai", "model": "gpt-4o-mini"}
STRONG = {"provider": "openai", "model": "gpt-4o"}
POLICY: dict[str, Any] = {
    "local": LOCAL,
    "cloud": CLOUD,
    "strong": STRONG,
    "token_budget": 2000,
    "complexity_threshold": 0.5,
}
COMPLEX = (
    "Please analyze and compare the architecture, explain the algorithm design, evaluate the "
    "implementation and optimize the technical details in a comprehensive way."
)

Fakes = tuple[FakeOllama, OpenAIFake]


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[FakeOllama, OpenAIFake, str, str]]:
    ollama = FakeOllama(models=["llama3.1:8b", "gemma2:2b"], tool_models=["llama3.1:8b"])
    openai_fake = OpenAIFake(api_key="sk-test")
    with ExitStack() as stack:
        ollama_url = stack.enter_context(serve(ollama))
        openai_url = stack.enter_context(serve(openai_fake)) + "/v1"
        yield ollama, openai_fake, ollama_url, openai_url


@pytest.fixture
async def ai(
    store: AgentStore, servers: tuple[FakeOllama, OpenAIFake, str, str]
) -> tuple[AgentStore, FakeOllama, OpenAIFake]:
    ollama, openai_fake, ollama_url, openai_url = servers
    ollama.reset()
    openai_fake.script.reset()
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
        "ollama", OllamaProvider(ProviderSettings(base_url=ollama_url, name="ollama", timeout=5))
    )
    store.register_provider(
        "openai",
        OpenAIChatProvider(ProviderSettings(base_url=openai_url, api_key="sk-test", timeout=5)),
    )
    return store, ollama, openai_fake


async def _thread(
    store: AgentStore,
    *,
    tools: list[str] | None = None,
    fallbacks: list[dict[str, str]] | None = None,
    **policy: Any,
) -> Any:
    agent = await store.create_agent(
        AgentDefinition(name="router", role="You help.", tools=tools or []),
        provider="auto",
        model="auto",
        fallbacks=fallbacks,
        settings={
            "routing": {**POLICY, **policy},
            "retry": {"base_delay": 0.01, "max_delay": 0.02},
        },
    )
    return await store.create_thread(agent)


async def _saved_decision(store: AgentStore, thread: Any) -> dict[str, Any]:
    last = (await store.list_messages(thread)).items[-1]
    decision: dict[str, Any] = last.metadata["routing"]["decision"]
    return decision


async def test_default_rule_prefers_local(
    ai: tuple[AgentStore, FakeOllama, OpenAIFake], caplog: pytest.LogCaptureFixture
) -> None:
    store, ollama, openai_fake = ai
    thread = await _thread(store)
    with caplog.at_level(logging.INFO, logger="ai_agents.routing"):
        response = await store.run(thread, "Hello there")
    assert (response.provider, response.model) == ("ollama", "gemma2:2b")
    assert response.content == "echo: Hello there"
    decision = response.routing["decision"]
    assert (decision["target"], decision["factors"]) == ("local", ["default"])
    assert len(ollama.requests) == 1 and openai_fake.requests == []
    assert await _saved_decision(store, thread) == decision
    logged = [r for r in caplog.records if r.getMessage() == "routing decision"]
    assert len(logged) == 1 and logged[0].factors == ["default"]  # type: ignore[attr-defined]


async def test_privacy_rule_keeps_the_run_local(
    ai: tuple[AgentStore, FakeOllama, OpenAIFake],
) -> None:
    store, ollama, openai_fake = ai
    # Without the privacy rule this agent would use the cloud (prefer) and fall back to it.
    thread = await _thread(store, prefer="cloud", fallbacks=[CLOUD])
    response = await store.run(thread, "My password is hunter2, keep it safe")
    assert (response.provider, response.model) == ("ollama", "gemma2:2b")
    decision = response.routing["decision"]
    assert decision["factors"] == ["privacy"]
    assert decision["privacy_matches"] == ["password"]
    assert response.routing["skipped"] == [
        {"provider": "openai", "model": "gpt-4o-mini", "reason": "privacy_local_only"}
    ]
    assert openai_fake.requests == []
    assert "hunter2" not in str(response.routing)

    # The local node failing does not leak the run to the cloud either.
    for _ in range(3):
        ollama.reply_error(503, "model runner crashed")
    with pytest.raises(ProviderOverloaded) as caught:
        await store.run(thread, "the password again: hunter2")
    assert openai_fake.requests == []
    reasons = [s["reason"] for s in caught.value.details["routing"]["skipped"]]
    assert reasons == ["privacy_local_only", "retries_exhausted"]


async def test_tools_rule_picks_a_native_tool_provider(
    ai: tuple[AgentStore, FakeOllama, OpenAIFake],
) -> None:
    store, ollama, openai_fake = ai
    thread = await _thread(store, tools=["add"])
    openai_fake.push(Reply.tool_calls(call("add", {"a": 2, "b": 3})), Reply.text("2 + 3 = 5"))
    response = await store.run(thread, "What is 2 + 3?")
    assert (response.provider, response.model) == ("openai", "gpt-4o-mini")
    assert response.content == "2 + 3 = 5"
    decision = response.routing["decision"]
    assert (decision["target"], decision["factors"]) == ("cloud", ["tools_native"])
    assert decision["tools_required"] is True
    assert ollama.requests == []
    assert openai_fake.requests[0]["tools"][0]["function"]["name"] == "add"


async def test_tools_rule_with_xml_injection_allowed_stays_local(
    ai: tuple[AgentStore, FakeOllama, OpenAIFake],
) -> None:
    store, ollama, openai_fake = ai
    thread = await _thread(store, tools=["add"], allow_xml_tools=True)
    ollama.reply_xml_tool_call("add", {"a": 2, "b": 3}, prose="Let me add.")
    ollama.reply_text("2 + 3 = 5")
    response = await store.run(thread, "What is 2 + 3?")
    assert (response.provider, response.model) == ("ollama", "gemma2:2b")
    assert response.tool_calls[0].result == "5"
    assert response.routing["decision"]["factors"] == ["default"]
    first = ollama.requests[0]
    assert "tools" not in first  # XML injection: tools are described in the system prompt
    assert "add" in first["messages"][0]["content"]
    assert openai_fake.requests == []


async def test_token_budget_rule_picks_the_strong_model(
    ai: tuple[AgentStore, FakeOllama, OpenAIFake],
) -> None:
    store, ollama, openai_fake = ai
    thread = await _thread(store)
    response = await store.run(thread, "Hi there. " * 1500)
    assert (response.provider, response.model) == ("openai", "gpt-4o")
    decision = response.routing["decision"]
    assert (decision["target"], decision["factors"]) == ("strong", ["token_budget"])
    assert decision["estimated_tokens"] > 2000
    assert decision["complexity_score"] < 0.5
    assert openai_fake.requests[0]["model"] == "gpt-4o"
    assert ollama.requests == []


async def test_complexity_rule_picks_the_strong_model(
    ai: tuple[AgentStore, FakeOllama, OpenAIFake],
) -> None:
    store, ollama, openai_fake = ai
    thread = await _thread(store)
    response = await store.run(thread, COMPLEX)
    assert (response.provider, response.model) == ("openai", "gpt-4o")
    decision = response.routing["decision"]
    assert decision["factors"] == ["complexity"]
    assert decision["complexity_score"] > 0.5
    assert decision["estimated_tokens"] < 2000
    assert ollama.requests == []


async def test_force_provider_overrides_the_rules(
    ai: tuple[AgentStore, FakeOllama, OpenAIFake],
) -> None:
    store, ollama, openai_fake = ai
    thread = await _thread(store, force_provider="cloud")
    response = await store.run(thread, COMPLEX)  # complexity alone would pick "strong"
    assert (response.provider, response.model) == ("openai", "gpt-4o-mini")
    assert response.routing["decision"]["factors"] == ["force_provider"]
    # Per run, through the run's metadata (saved with the user message).
    response = await store.run(thread, "Hello", metadata={"routing": {"force_provider": "local"}})
    assert (response.provider, response.model) == ("ollama", "gemma2:2b")
    assert response.routing["decision"]["factors"] == ["force_provider"]
    assert [r["model"] for r in openai_fake.requests] == ["gpt-4o-mini"]
    assert len(ollama.requests) == 1
