"""The OpenAI Agents SDK (``openai-agents``) runs an agent with a tool on this server.

Its model backend is this server's ``/v1/chat/completions`` (``OpenAIChatCompletionsModel``
over an ``AsyncOpenAI`` client pointed at ``/v1``), which reaches a strict fake OpenAI
through our own provider: the SDK's tool loop (call → our function → result → answer)
must survive both hops unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import openai
import pytest
from agents import Agent, OpenAIChatCompletionsModel, Runner, function_tool, set_tracing_disabled

from ai_agents.api.testing import RunningApi, running_api
from ai_agents.config import Settings
from ai_agents.providers.base import ProviderSettings
from ai_agents.providers.openai import OpenAIChatProvider
from tests.fakes.openai_fake import OpenAIFake
from tests.fakes.script import Reply, call
from tests.fakes.server import serve

set_tracing_disabled(True)  # the SDK would export traces to OpenAI's servers


@pytest.fixture
def vendor() -> Iterator[tuple[OpenAIFake, str]]:
    fake = OpenAIFake(api_key="sk-vendor")
    with serve(fake) as url:
        yield fake, url + "/v1"


@pytest.fixture
def api(
    settings: Settings, redis_cleanup: None, vendor: tuple[OpenAIFake, str]
) -> Iterator[RunningApi]:
    upstream = OpenAIChatProvider(ProviderSettings(base_url=vendor[1], api_key="sk-vendor"))
    with running_api(settings, providers={"openai": upstream}) as running:
        yield running


async def test_an_agent_with_a_tool_runs_on_chat_completions(
    api: RunningApi, vendor: tuple[OpenAIFake, str]
) -> None:
    fake = vendor[0]
    fake.push(
        Reply.tool_calls(call("get_weather", {"city": "Paris"})),
        Reply.text("It is sunny in Paris."),
    )
    asked: list[str] = []

    @function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        asked.append(city)
        return f"sunny in {city}"

    client = openai.AsyncOpenAI(
        base_url=f"{api.url}/v1", api_key=api.create_key("acme"), max_retries=0
    )
    agent = Agent(
        name="Weather",
        instructions="Answer with the weather tool.",
        tools=[get_weather],
        model=OpenAIChatCompletionsModel(model="gpt-4o", openai_client=client),
    )
    result = await Runner.run(agent, "Weather in Paris?")
    await client.close()

    assert result.final_output == "It is sunny in Paris."
    assert asked == ["Paris"]
    first, second = fake.script.requests
    assert first["messages"][0] == {"role": "system", "content": "Answer with the weather tool."}
    assert [t["function"]["name"] for t in first["tools"]] == ["get_weather"]
    tool_message = second["messages"][-1]
    assert tool_message["role"] == "tool"
    assert tool_message["content"] == "sunny in Paris"
    (tool_call,) = second["messages"][-2]["tool_calls"]
    assert json.loads(tool_call["function"]["arguments"]) == {"city": "Paris"}
    assert tool_call["id"] == tool_message["tool_call_id"]


async def test_a_streamed_agent_run_with_a_tool(
    api: RunningApi, vendor: tuple[OpenAIFake, str]
) -> None:
    fake = vendor[0]
    fake.push(Reply.tool_calls(call("add", {"a": 2, "b": 3})), Reply.text("2 + 3 = 5"))

    @function_tool
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    client = openai.AsyncOpenAI(
        base_url=f"{api.url}/v1", api_key=api.create_key("acme"), max_retries=0
    )
    agent = Agent(
        name="Calculator",
        instructions="Use the add tool.",
        tools=[add],
        model=OpenAIChatCompletionsModel(model="gpt-4o", openai_client=client),
    )
    streamed = Runner.run_streamed(agent, "What is 2 + 3?")
    kinds = [event.type async for event in streamed.stream_events()]
    await client.close()

    assert streamed.final_output == "2 + 3 = 5"
    assert "raw_response_event" in kinds and "run_item_stream_event" in kinds
    second = fake.script.requests[1]
    assert second["stream"] is True
    assert second["messages"][-1]["role"] == "tool" and second["messages"][-1]["content"] == "5"
