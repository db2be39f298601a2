"""``response_format`` json_schema end to end: store.run through each vendor's strict fake.

The fakes speak the vendors' wire formats and reject what the real APIs reject; these tests
assert the fields each adapter put on the wire, that the saved answer is JSON valid against
the schema, and that an invalid answer is retried once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack

import jsonschema
import pytest

from ai_agents import AgentDefinition, AgentStore
from ai_agents.providers.anthropic import AnthropicProvider
from ai_agents.providers.base import ProviderSettings
from ai_agents.providers.ollama import OllamaProvider
from ai_agents.providers.openai import OpenAIChatProvider
from tests.fakes import ollama_fake
from tests.fakes.anthropic_fake import AnthropicFake
from tests.fakes.ollama_fake import FakeOllama
from tests.fakes.openai_fake import OpenAIFake
from tests.fakes.script import Reply, call

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
GOOD = {"city": "Paris", "celsius": 21}


@pytest.fixture(scope="module")
def fakes() -> Iterator[tuple[OpenAIFake, AnthropicFake, FakeOllama, dict[str, str]]]:
    from tests.fakes.server import serve

    openai_fake, anthropic_fake, ollama = (
        OpenAIFake(api_key="sk-test"),
        AnthropicFake(api_key="ak-test"),
        FakeOllama(),
    )
    with ExitStack() as stack:
        urls = {
            "openai": stack.enter_context(serve(openai_fake)) + "/v1",
            "anthropic": stack.enter_context(serve(anthropic_fake)),
            "ollama": stack.enter_context(serve(ollama)),
        }
        yield openai_fake, anthropic_fake, ollama, urls


@pytest.fixture
def ai(
    store: AgentStore, fakes: tuple[OpenAIFake, AnthropicFake, FakeOllama, dict[str, str]]
) -> AgentStore:
    openai_fake, anthropic_fake, ollama, urls = fakes
    openai_fake.script.reset()
    anthropic_fake.script.reset()
    ollama.requests.clear()
    store.register_provider(
        "openai", OpenAIChatProvider(ProviderSettings(base_url=urls["openai"], api_key="sk-test"))
    )
    store.register_provider(
        "anthropic",
        AnthropicProvider(ProviderSettings(base_url=urls["anthropic"], api_key="ak-test")),
    )
    store.register_provider("ollama", OllamaProvider(ProviderSettings(base_url=urls["ollama"])))
    return store


async def _thread(store: AgentStore, provider: str, model: str) -> object:
    agent = await store.create_agent(
        AgentDefinition(name="W", role="You report the weather."), provider=provider, model=model
    )
    return await store.create_thread(agent)


async def _saved_answer(store: AgentStore, thread: object) -> object:
    (_, answer) = (await store.list_messages(thread)).items  # type: ignore[arg-type]
    value = json.loads(answer.text)
    jsonschema.validate(value, SCHEMA)
    return value


async def test_openai_native_json_schema(ai: AgentStore, fakes: tuple) -> None:  # type: ignore[type-arg]
    openai_fake = fakes[0]
    thread = await _thread(ai, "openai", "gpt-4o-mini")
    openai_fake.push(Reply.text('{"city": "Paris"}'), Reply.text(json.dumps(GOOD)))
    response = await ai.run(thread, "Weather in Paris?", response_format=FORMAT)
    assert json.loads(response.content) == GOOD
    first, retry = openai_fake.requests
    assert first["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "weather", "schema": SCHEMA, "strict": True},
    }
    assert "celsius" in retry["messages"][-1]["content"]  # the retry names the problem
    assert await _saved_answer(ai, thread) == GOOD


async def test_anthropic_forced_output_tool(ai: AgentStore, fakes: tuple) -> None:  # type: ignore[type-arg]
    anthropic_fake = fakes[1]
    thread = await _thread(ai, "anthropic", "claude-haiku-4-5")
    anthropic_fake.push(Reply.tool_calls(call("weather", GOOD)))
    response = await ai.run(thread, "Weather in Paris?", response_format=FORMAT)
    assert json.loads(response.content) == GOOD
    (sent,) = anthropic_fake.requests
    assert sent["tool_choice"] == {"type": "tool", "name": "weather"}
    assert [t["name"] for t in sent["tools"]] == ["weather"]
    assert sent["tools"][0]["input_schema"] == SCHEMA
    assert await _saved_answer(ai, thread) == GOOD


async def test_ollama_format_schema(ai: AgentStore, fakes: tuple) -> None:  # type: ignore[type-arg]
    ollama: FakeOllama = fakes[2]
    thread = await _thread(ai, "ollama", "llama3.1:8b")
    ollama.reply(ollama_fake.Reply(content=json.dumps(GOOD)))
    response = await ai.run(thread, "Weather in Paris?", response_format=FORMAT)
    assert json.loads(response.content) == GOOD
    (sent,) = [r for r in ollama.requests if "messages" in r]
    assert sent["format"] == SCHEMA
    assert await _saved_answer(ai, thread) == GOOD
