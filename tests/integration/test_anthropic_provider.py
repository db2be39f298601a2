"""AnthropicProvider through the real ``anthropic`` SDK against the strict local fake."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest

from ai_agents.errors import (
    ProviderAuthError,
    ProviderBadRequest,
    ProviderBadResponse,
    ProviderConnectionError,
    ProviderError,
    ProviderOverloaded,
    ProviderRateLimited,
    ProviderTimeout,
)
from ai_agents.messages import Message, ToolCall, assistant, system, tool_result, user
from ai_agents.providers.anthropic import (
    OUTPUT_TOOL_DESCRIPTION,
    PLACEHOLDER_USER_TEXT,
    AnthropicProvider,
)
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
from ai_agents.providers.history import ANTHROPIC_TOOL_ID_PATTERN, INTERRUPTED_RESULT
from ai_agents.providers.openai import OpenAIChatProvider
from tests.fakes.anthropic_fake import AnthropicFake
from tests.fakes.openai_fake import OpenAIFake
from tests.fakes.script import Reply, ScriptedError, call
from tests.fakes.server import free_port, serve

pytestmark = pytest.mark.integration

MODEL = "claude-haiku-4-5"
WEATHER = ToolSpec(
    name="get_weather",
    description="Current weather for a city",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}},
)
TIME = ToolSpec(name="get_time", description="Current time in a city")
CITY_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
    "required": ["city", "population"],
}
CITY_FORMAT = ResponseFormat(
    type="json_schema", name="city info!", schema=CITY_SCHEMA, description="A city"
)
CITY_TOOL = {"name": "city_info", "description": "A city", "input_schema": CITY_SCHEMA}


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[AnthropicFake, str]]:
    """One fake server per module (starting/stopping uvicorn per test is slow)."""
    fake = AnthropicFake(api_key="sk-ant-test")
    with serve(fake) as url:
        yield fake, url


@pytest.fixture
def fake(server: tuple[AnthropicFake, str]) -> AnthropicFake:
    server[0].script.reset()
    return server[0]


@pytest.fixture
def base_url(server: tuple[AnthropicFake, str], fake: AnthropicFake) -> str:
    return server[1]


@pytest.fixture
async def provider(base_url: str) -> AsyncIterator[AnthropicProvider]:
    p = AnthropicProvider(ProviderSettings(base_url=base_url, api_key="sk-ant-test", timeout=5))
    yield p
    await p.aclose()


def req(messages: list[Message], **kwargs: Any) -> ProviderRequest:
    system_prompt = kwargs.pop("system_prompt", "You are terse.")
    return ProviderRequest(model=MODEL, system_prompt=system_prompt, messages=messages, **kwargs)


async def collect(p: AnthropicProvider, request: ProviderRequest) -> list[StreamEvent]:
    return [event async for event in p.stream(request)]


async def answer(p: AnthropicProvider, request: ProviderRequest, *, streaming: bool) -> object:
    return await collect(p, request) if streaming else await p.complete(request)


async def drain(events: AsyncIterator[StreamEvent], into: list[StreamEvent]) -> None:
    async for event in events:
        into.append(event)


# --- plain answers ----------------------------------------------------------------------


async def test_plain_answer(provider: AnthropicProvider, fake: AnthropicFake) -> None:
    response = await provider.complete(req([user("hello there")]))
    assert response.content == "echo: hello there"
    assert response.finish_reason == "stop"
    assert response.tool_calls == []
    assert response.usage.input_tokens > 0 and response.usage.output_tokens > 0
    assert not response.usage.estimated
    assert response.provider == "anthropic" and response.model == MODEL
    assert response.raw_id and response.raw_id.startswith("msg_")
    body = fake.requests[-1]
    assert body["system"] == "You are terse."
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "hello there"}]}
    ]
    assert isinstance(body["max_tokens"], int) and body["max_tokens"] > 0
    assert "tools" not in body and "tool_choice" not in body
    headers = fake.script.headers[-1]
    # SDK 2.x sends the key as a bearer token; older versions used x-api-key.
    key = headers.get("x-api-key") or headers["authorization"].removeprefix("Bearer ")
    assert key == "sk-ant-test" and headers["anthropic-version"]


async def test_request_options(base_url: str, fake: AnthropicFake) -> None:
    p = AnthropicProvider(
        ProviderSettings(
            base_url=base_url, api_key="sk-ant-test", name="claude-eu", headers={"X-Extra": "1"}
        ),
        max_tokens=777,
    )
    try:
        fake.push(Reply.text("one two STOP three"))
        response = await p.complete(req([user("count")], stop=["STOP"], temperature=0.1))
        # API 2026-10-21 rejects sampling parameters: temperature is not sent.
        assert "temperature" not in fake.requests[-1]
        assert response.content == "one two "
        assert response.finish_reason == "stop"
        assert response.provider == "claude-eu"
        body = fake.requests[-1]
        assert body["max_tokens"] == 777
        assert body["stop_sequences"] == ["STOP"]
        assert fake.script.headers[-1]["x-extra"] == "1"
        await p.complete(req([user("x")], max_output_tokens=12))
        assert fake.requests[-1]["max_tokens"] == 12
        client = p.client
        await p.complete(req([user("y")]))
        assert p.client is client
    finally:
        await p.aclose()


async def test_max_tokens_stop_reason(provider: AnthropicProvider, fake: AnthropicFake) -> None:
    fake.push(Reply(content="truncat", finish_reason="max_tokens"))
    assert (await provider.complete(req([user("long")]))).finish_reason == "length"


async def test_env_vars_are_used(base_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_BASE_URL", base_url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    p = AnthropicProvider()
    try:
        assert (await p.complete(req([user("env")]))).content == "echo: env"
    finally:
        await p.aclose()


async def test_missing_key(base_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ANTHROPIC_CONFIG_DIR", str(tmp_path))
    p = AnthropicProvider(ProviderSettings(base_url=base_url))
    try:
        with pytest.raises(ProviderAuthError):
            await p.complete(req([user("hi")]))
    finally:
        await p.aclose()


# --- tools ------------------------------------------------------------------------------


async def test_tool_call_round_trip(provider: AnthropicProvider, fake: AnthropicFake) -> None:
    fake.push(
        Reply.tool_calls(
            call("get_weather", {"city": "Paris"}, id="toolu_01A09q90qw90lq917835lq9"),
            text="Let me look.",
        ),
        Reply.text("It is sunny in Paris."),
    )
    history = [user("Weather in Paris?")]
    first = await provider.complete(req(history, tools=[WEATHER, TIME]))
    assert first.finish_reason == "tool_calls"
    assert first.content == "Let me look."
    assert first.tool_calls == [
        ToolCall("toolu_01A09q90qw90lq917835lq9", "get_weather", {"city": "Paris"})
    ]
    body = fake.requests[-1]
    assert body["tools"] == [
        {
            "name": "get_weather",
            "description": "Current weather for a city",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
        {
            "name": "get_time",
            "description": "Current time in a city",
            "input_schema": {"type": "object", "properties": {}},
        },
    ]
    assert body["tool_choice"] == {"type": "auto"}

    history += [
        assistant(first.content, first.tool_calls),
        tool_result(first.tool_calls[0], "22C, sunny"),
    ]
    second = await provider.complete(req(history, tools=[WEATHER, TIME]))
    assert second.content == "It is sunny in Paris."
    sent = fake.requests[-1]["messages"]
    assert sent[1] == {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Let me look."},
            {
                "type": "tool_use",
                "id": "toolu_01A09q90qw90lq917835lq9",
                "name": "get_weather",
                "input": {"city": "Paris"},
            },
        ],
    }
    assert sent[2] == {
        "role": "user",
        "content": [
            {
                "type": "tool_result",
                "tool_use_id": "toolu_01A09q90qw90lq917835lq9",
                "content": "22C, sunny",
            }
        ],
    }


async def test_several_tool_calls_and_results_in_one_user_message(
    provider: AnthropicProvider, fake: AnthropicFake
) -> None:
    fake.push(
        Reply.tool_calls(call("get_weather", {"city": "Paris"}), call("get_time", {"city": "Oslo"}))
    )
    response = await provider.complete(req([user("x")], tools=[WEATHER, TIME]))
    a, b = response.tool_calls
    history = [
        user("x"),
        assistant(None, response.tool_calls),
        tool_result(b, "noon"),
        tool_result(a, "boom", is_error=True),
        user("and now?"),
    ]
    await provider.complete(req(history, tools=[WEATHER, TIME]))
    sent = fake.requests[-1]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert sent[1]["content"][0]["type"] == "tool_use"  # empty text omitted
    assert sent[2]["content"] == [
        {"type": "tool_result", "tool_use_id": a.id, "content": "boom", "is_error": True},
        {"type": "tool_result", "tool_use_id": b.id, "content": "noon"},
        {"type": "text", "text": "and now?"},
    ]


@pytest.mark.parametrize(
    ("choice", "wire"),
    [
        ("auto", {"type": "auto"}),
        ("none", {"type": "none"}),
        ("required", {"type": "any"}),
        ("get_time", {"type": "tool", "name": "get_time"}),
    ],
)
async def test_tool_choice_mapping(
    provider: AnthropicProvider, fake: AnthropicFake, choice: str, wire: object
) -> None:
    await provider.complete(req([user("x")], tools=[WEATHER, TIME], tool_choice=choice))
    assert fake.requests[-1]["tool_choice"] == wire


# --- streaming --------------------------------------------------------------------------


async def test_stream_text(provider: AnthropicProvider, fake: AnthropicFake) -> None:
    fake.push(Reply.text("Streaming works fine, thanks for asking."))
    events = await collect(provider, req([user("stream please")]))
    deltas = [e.text for e in events if isinstance(e, TextDelta)]
    assert len(deltas) > 3
    done = events[-1]
    assert isinstance(done, ResponseDone)
    assert sum(isinstance(e, ResponseDone) for e in events) == 1
    assert "".join(deltas) == done.response.content == "Streaming works fine, thanks for asking."
    assert done.response.usage.input_tokens > 0 and done.response.usage.output_tokens > 1
    assert done.response.finish_reason == "stop"
    assert done.response.raw_id and done.response.raw_id.startswith("msg_")
    assert fake.requests[-1]["stream"] is True


async def test_stream_tool_calls(provider: AnthropicProvider, fake: AnthropicFake) -> None:
    fake.push(
        Reply.tool_calls(
            call("get_weather", {"city": "Paris", "unit": "celsius"}, id="toolu_1"),
            call("get_time", {}, id="toolu_2"),
            call("get_time", '{"city": "Ro', id="toolu_3"),  # broken JSON from the model
            text="Let me check.",
        )
    )
    events = await collect(provider, req([user("x")], tools=[WEATHER, TIME]))
    ready = [e.call for e in events if isinstance(e, ToolCallReady)]
    assert ready == [
        ToolCall("toolu_1", "get_weather", {"city": "Paris", "unit": "celsius"}),
        ToolCall("toolu_2", "get_time", {}),
        ToolCall("toolu_3", "get_time", {"_raw": '{"city": "Ro'}),
    ]
    done = events[-1]
    assert isinstance(done, ResponseDone)
    assert done.response.tool_calls == ready
    assert done.response.content == "Let me check."
    assert done.response.finish_reason == "tool_calls"


# --- structured output through the output tool -----------------------------------------


async def respond(
    p: AnthropicProvider, request: ProviderRequest, *, streaming: bool
) -> ProviderResponse:
    """The response; streamed, its text deltas must add up to its content."""
    if not streaming:
        return await p.complete(request)
    events = await collect(p, request)
    done = events[-1]
    assert isinstance(done, ResponseDone)
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == done.response.content
    calls = [e.call for e in events if isinstance(e, ToolCallReady)]
    assert calls == done.response.tool_calls
    kinds = [type(e) for e in events if isinstance(e, TextDelta | ToolCallReady)]
    assert kinds == sorted(kinds, key=lambda kind: kind is ToolCallReady)  # text first
    return done.response


@pytest.mark.parametrize("streaming", [False, True])
async def test_json_schema_answer_through_the_forced_output_tool(
    provider: AnthropicProvider, fake: AnthropicFake, streaming: bool
) -> None:
    fake.push(Reply.tool_calls(call("city_info", {"city": "Paris", "population": 2102650})))
    request = req([user("Paris?")], response_format=CITY_FORMAT)
    response = await respond(provider, request, streaming=streaming)
    assert json.loads(response.content) == {"city": "Paris", "population": 2102650}
    assert response.tool_calls == [] and response.finish_reason == "stop"
    body = fake.requests[-1]
    assert body["tools"] == [CITY_TOOL]
    assert body["tool_choice"] == {"type": "tool", "name": "city_info"}
    # Text the model writes before the answer is not part of the JSON content.
    fake.push(Reply.tool_calls(call("city_info", {"city": "Rome", "population": 1}), text="Sure:"))
    response = await respond(provider, request, streaming=streaming)
    assert json.loads(response.content) == {"city": "Rome", "population": 1}
    # Unscripted, the fake obeys tool_choice: a call of the output tool.
    response = await respond(provider, request, streaming=streaming)
    assert json.loads(response.content) == {"city": "echo: Paris?", "population": 1}


@pytest.mark.parametrize("streaming", [False, True])
async def test_json_object_and_non_object_schemas(
    provider: AnthropicProvider, fake: AnthropicFake, streaming: bool
) -> None:
    request = req([user("x")], response_format=ResponseFormat(type="json_object"))
    response = await respond(provider, request, streaming=streaming)
    assert (response.content, response.finish_reason) == ("{}", "stop")
    assert fake.requests[-1]["tools"] == [
        {
            "name": "response",
            "description": OUTPUT_TOOL_DESCRIPTION,
            "input_schema": {"type": "object"},
        }
    ]
    # A schema whose root is not an object is wrapped (input_schema must be an object).
    colors = {"type": "array", "items": {"type": "string"}}
    fmt = ResponseFormat(type="json_schema", name="colors", schema=colors)
    fake.push(Reply.tool_calls(call("colors", {"value": ["red", "blue"]})))
    response = await respond(provider, req([user("x")], response_format=fmt), streaming=streaming)
    assert json.loads(response.content) == ["red", "blue"]
    assert fake.requests[-1]["tools"][0]["input_schema"] == {
        "type": "object",
        "properties": {"value": colors},
        "required": ["value"],
    }
    # Its definitions move to the new root, where "#/$defs/..." points.
    tagged = {
        "type": "array",
        "items": {"$ref": "#/$defs/tag"},
        "$defs": {"tag": {"type": "string"}},
    }
    fmt = ResponseFormat(type="json_schema", name="tags", schema=tagged)
    fake.push(Reply.tool_calls(call("tags", {"value": ["a"]})))
    response = await respond(provider, req([user("x")], response_format=fmt), streaming=streaming)
    assert json.loads(response.content) == ["a"]
    assert fake.requests[-1]["tools"][0]["input_schema"] == {
        "type": "object",
        "properties": {"value": {"type": "array", "items": {"$ref": "#/$defs/tag"}}},
        "required": ["value"],
        "$defs": {"tag": {"type": "string"}},
    }
    assert fmt.schema == tagged  # the request's schema is not modified


@pytest.mark.parametrize("streaming", [False, True])
async def test_text_without_the_output_tool_is_kept(
    provider: AnthropicProvider, fake: AnthropicFake, streaming: bool
) -> None:
    """Cut off before calling the output tool: the text is the (invalid) answer."""
    fake.push(Reply(content="Let me think about", finish_reason="max_tokens"))
    request = req([user("x")], response_format=CITY_FORMAT)
    response = await respond(provider, request, streaming=streaming)
    assert (response.content, response.finish_reason) == ("Let me think about", "length")


@pytest.mark.parametrize("streaming", [False, True])
async def test_output_tool_beside_real_tools(
    provider: AnthropicProvider, fake: AnthropicFake, streaming: bool
) -> None:
    fake.push(
        Reply.tool_calls(call("get_weather", {"city": "Paris"}, id="toolu_w"), text="Checking."),
        Reply.tool_calls(call("city_info", {"city": "Paris", "population": 3})),
    )
    history = [user("Paris?")]
    request = req(history, tools=[WEATHER], response_format=CITY_FORMAT)
    first = await respond(provider, request, streaming=streaming)
    assert first.tool_calls == [ToolCall("toolu_w", "get_weather", {"city": "Paris"})]
    assert (first.content, first.finish_reason) == ("Checking.", "tool_calls")
    body = fake.requests[-1]
    assert [t["name"] for t in body["tools"]] == ["get_weather", "city_info"]
    assert body["tool_choice"] == {"type": "any"}  # a real tool, or the answer
    history += [
        assistant(first.content, first.tool_calls),
        tool_result(first.tool_calls[0], "sunny"),
    ]
    second = await respond(
        provider, req(history, tools=[WEATHER], response_format=CITY_FORMAT), streaming=streaming
    )
    assert json.loads(second.content) == {"city": "Paris", "population": 3}
    assert (second.tool_calls, second.finish_reason) == ([], "stop")


@pytest.mark.parametrize(
    ("choice", "parallel", "names", "wire"),
    [
        ("auto", None, ["get_weather", "get_time", "get_weather_2"], {"type": "any"}),
        ("none", None, ["get_weather", "get_time", "get_weather_2"],
         {"type": "tool", "name": "get_weather_2"}),
        # A forced real tool: no output tool this time, the answer comes later.
        ("required", None, ["get_weather", "get_time"], {"type": "any"}),
        ("get_time", None, ["get_weather", "get_time"], {"type": "tool", "name": "get_time"}),
        ("auto", False, ["get_weather", "get_time", "get_weather_2"],
         {"type": "any", "disable_parallel_tool_use": True}),
        ("get_time", False, ["get_weather", "get_time"],
         {"type": "tool", "name": "get_time", "disable_parallel_tool_use": True}),
    ],
)  # fmt: skip
async def test_output_tool_and_tool_choice(
    provider: AnthropicProvider,
    fake: AnthropicFake,
    choice: str,
    parallel: bool | None,
    names: list[str],
    wire: dict[str, Any],
) -> None:
    # The format's name collides with a real tool: the output tool gets another.
    fmt = ResponseFormat(type="json_object", name="get_weather")
    request = req(
        [user("x")], tools=[WEATHER, TIME], tool_choice=choice, parallel_tool_calls=parallel,
        response_format=fmt,
    )  # fmt: skip
    await provider.complete(request)
    body = fake.requests[-1]
    assert [t["name"] for t in body["tools"]] == names
    assert body["tool_choice"] == wire


@pytest.mark.parametrize(
    ("choice", "wire"),
    [
        ("auto", {"type": "auto", "disable_parallel_tool_use": True}),
        ("required", {"type": "any", "disable_parallel_tool_use": True}),
        ("get_time", {"type": "tool", "name": "get_time", "disable_parallel_tool_use": True}),
        ("none", {"type": "none"}),  # the API accepts no flag there
    ],
)
async def test_parallel_tool_calls_false_and_top_p(
    provider: AnthropicProvider, fake: AnthropicFake, choice: str, wire: dict[str, Any]
) -> None:
    request = req(
        [user("x")], tools=[WEATHER, TIME], tool_choice=choice, parallel_tool_calls=False, top_p=0.5
    )
    await provider.complete(request)
    body = fake.requests[-1]
    assert body["tool_choice"] == wire
    assert "top_p" not in body  # API 2026-10-21 rejects sampling parameters
    await provider.complete(req([user("x")], tools=[WEATHER], parallel_tool_calls=True))
    assert fake.requests[-1]["tool_choice"] == {"type": "auto"}


# --- errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "exc_type", "status", "retry_after"),
    [
        (Reply.error(429, message="Number of requests exceeded", retry_after=2),
         ProviderRateLimited, 429, 2.0),
        (Reply.error(529, message="Overloaded"), ProviderOverloaded, 529, None),
        (Reply.error(503, message="Service unavailable"), ProviderOverloaded, 503, None),
        (Reply.error(500, message="Internal server error"), ProviderOverloaded, 500, None),
        (Reply.error(400, message="messages: bad"), ProviderBadRequest, 400, None),
        (Reply.error(404, message="model: not found"), ProviderBadRequest, 404, None),
        (Reply.error(413, message="Request exceeds the maximum size"), ProviderBadRequest, 413,
         None),
        (Reply.error(401, message="invalid x-api-key"), ProviderAuthError, 401, None),
        (Reply.error(403, message="Your API key does not have permission"), ProviderAuthError,
         403, None),
    ],
)  # fmt: skip
@pytest.mark.parametrize("streaming", [False, True])
async def test_errors_are_mapped(
    provider: AnthropicProvider,
    fake: AnthropicFake,
    reply: Reply,
    exc_type: type[ProviderError],
    status: int,
    retry_after: float | None,
    streaming: bool,
) -> None:
    fake.push(reply)
    with pytest.raises(exc_type) as info:
        await answer(provider, req([user("x")]), streaming=streaming)
    error = info.value
    assert error.status == status
    assert error.provider == "anthropic"
    assert error.retry_after == retry_after
    assert reply.failure is not None
    assert error.vendor_message == reply.failure.message
    assert isinstance(error.__cause__, anthropic.APIStatusError)


async def test_overloaded_error_inside_stream(
    provider: AnthropicProvider, fake: AnthropicFake
) -> None:
    fake.push(
        Reply(
            content="partial answer",
            failure=ScriptedError(529, "Overloaded", type="overloaded_error", in_stream=True),
        )
    )
    events: list[StreamEvent] = []
    with pytest.raises(ProviderOverloaded) as info:
        await drain(provider.stream(req([user("x")])), events)
    assert info.value.status == 529
    assert info.value.vendor_message == "Overloaded"
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "partial answer"


async def test_wrong_key_is_auth_error(base_url: str) -> None:
    p = AnthropicProvider(ProviderSettings(base_url=base_url, api_key="sk-ant-wrong"))
    try:
        with pytest.raises(ProviderAuthError) as info:
            await p.complete(req([user("x")]))
        assert info.value.status == 401
        assert info.value.vendor_message == "invalid x-api-key"
    finally:
        await p.aclose()


@pytest.mark.parametrize("streaming", [False, True])
async def test_timeout(base_url: str, fake: AnthropicFake, streaming: bool) -> None:
    fake.push(Reply.text("too late", delay=5))
    p = AnthropicProvider(ProviderSettings(base_url=base_url, api_key="sk-ant-test", timeout=0.3))
    try:
        with pytest.raises(ProviderTimeout) as info:
            await answer(p, req([user("x")]), streaming=streaming)
        assert info.value.retryable and info.value.status is None
    finally:
        await p.aclose()


@pytest.mark.parametrize("streaming", [False, True])
async def test_connection_refused(streaming: bool) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    p = AnthropicProvider(ProviderSettings(base_url=url, api_key="sk-ant-test", timeout=2))
    try:
        with pytest.raises(ProviderConnectionError) as info:
            await answer(p, req([user("x")]), streaming=streaming)
        assert info.value.status is None and info.value.retryable
    finally:
        await p.aclose()


# --- the fake is strict ----------------------------------------------------------------


def text(value: str) -> list[dict[str, Any]]:
    return [{"type": "text", "text": value}]


USE = {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}
TOOL = {"name": "f", "input_schema": {"type": "object"}}
RESULT = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "r"}

BAD_REQUESTS: list[tuple[dict[str, Any], str]] = [
    ({"model": MODEL, "messages": [{"role": "user", "content": "x"}]}, "max_tokens: Field required"),
    ({"messages": [{"role": "user", "content": "x"}]}, "model: Field required"),
    ({"messages": [{"role": "system", "content": "x"}]}, 'Unexpected role "system"'),
    ({"messages": [{"role": "tool", "content": "x"}]}, "Input should be 'user' or 'assistant'"),
    ({"messages": [{"role": "assistant", "content": "x"}]}, "first message must use the"),
    ({"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]},
     "roles must alternate"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": ""}]}]},
     "text content blocks must be non-empty"),
    ({"messages": [{"role": "user", "content": text(" ")}]}, "non-whitespace text"),
    ({"messages": [{"role": "user", "content": ""}]}, "must have non-empty content"),
    ({"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y "}]},
     "trailing whitespace"),
    ({"messages": [{"role": "user", "content": [RESULT]}]}, "unexpected `tool_use_id`"),
    ({"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": [USE]},
                   {"role": "user", "content": "no result"}]},
     "`tool_use` ids were found without `tool_result` blocks"),
    ({"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": [USE]}]},
     "`tool_use` ids were found without `tool_result` blocks"),
    ({"messages": [{"role": "user", "content": "x"},
                   {"role": "assistant", "content": [{**USE, "id": "call.1"}]},
                   {"role": "user", "content": [{**RESULT, "tool_use_id": "call.1"}]}]},
     "String should match pattern"),
    ({"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": [USE]},
                   {"role": "user", "content": [*text("first"), RESULT]}]},
     "`tool_result` blocks must come first"),
    ({"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": [USE]},
                   {"role": "user", "content": [RESULT]},
                   {"role": "assistant", "content": [USE]},
                   {"role": "user", "content": [RESULT]}]}, "ids must be unique"),
    ({"messages": [{"role": "user", "content": "x"}], "tools": [{"name": "f"}]},
     "input_schema: Field required"),
    ({"messages": [{"role": "user", "content": "x"}], "tool_choice": {"type": "any"}},
     "only be specified while providing tools"),
    ({"messages": [{"role": "user", "content": "x"}], "unknown": 1},
     "unknown: Extra inputs are not permitted"),
    ({"messages": [{"role": "user", "content": "x"}], "tools": [{**TOOL, "name": "f"}],
      "tool_choice": {"type": "tool", "name": "answer"}}, "Tool 'answer' not found"),
    ({"messages": [{"role": "user", "content": "x"}], "tools": [TOOL],
      "tool_choice": {"type": "none", "disable_parallel_tool_use": True}},
     "tool_choice.none.disable_parallel_tool_use: Extra inputs are not permitted"),
    ({"messages": [{"role": "user", "content": "x"}], "tools": [TOOL],
      "tool_choice": {"type": "any", "disable_parallel_tool_use": "yes"}},
     "disable_parallel_tool_use: Input should be a valid boolean"),
    ({"messages": [{"role": "user", "content": "x"}], "tools": [TOOL],
      "tool_choice": {"type": "auto", "name": "f"}},
     "tool_choice.auto.name: Extra inputs are not permitted"),
    ({"messages": [{"role": "user", "content": "x"}], "top_p": 0.5},
     "top_p: Extra inputs are not permitted"),
    ({"messages": [{"role": "user", "content": "x"}], "temperature": 1.0},
     "temperature: Extra inputs are not permitted"),
]  # fmt: skip


async def test_fake_rejects_what_anthropic_rejects(base_url: str) -> None:
    headers = {"x-api-key": "sk-ant-test", "anthropic-version": "2026-10-21"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers) as http:
        for body, expected in BAD_REQUESTS:
            payload = {"model": MODEL, "max_tokens": 10, **body}
            if "max_tokens: Field" in expected:
                payload.pop("max_tokens")
            if "model: Field" in expected:
                payload.pop("model")
            response = await http.post("/v1/messages", json=payload)
            assert response.status_code == 400, body
            error = response.json()
            assert error["type"] == "error"
            assert error["error"]["type"] == "invalid_request_error"
            assert expected in error["error"]["message"], (body, error)
        ok = {"model": MODEL, "max_tokens": 10, "messages": [{"role": "user", "content": "x"}]}
        assert (await http.post("/v1/messages", json=ok)).status_code == 200
        old_api = {"anthropic-version": "2023-06-01"}
        response = await http.post("/v1/messages", json={**ok, "temperature": 0.5}, headers=old_api)
        assert response.status_code == 200
        response = await http.post("/v1/messages", json=ok, headers={"x-api-key": ""})
        assert response.status_code == 401
        assert response.json()["error"] == {
            "type": "authentication_error",
            "message": "x-api-key header is required",
        }


# --- history repair and provider switching -------------------------------------------


def messy_history() -> list[Message]:
    interrupted = ToolCall("call_int", "get_weather", {"city": "Oslo"})
    dup1 = ToolCall("call_0", "get_time", {"city": "A"})
    dup2 = ToolCall("call_0", "get_time", {"city": "B"})
    weird = ToolCall("fc.1:weird/id+==", "get_weather", {"city": "Rome"})
    nameless = ToolCall("", "get_time", {})
    return [
        system("early system note"),
        Message(role="tool", content="orphan", tool_call_id="call_gone", tool_name="x"),
        user("start"),
        user("   "),
        assistant("", [interrupted]),  # run was interrupted: no result
        user("still there?"),
        assistant(None, [dup1, dup2]),
        tool_result(dup1, "A time"),
        tool_result(dup2, ""),
        system("mid-history system note"),
        assistant("  ", [weird, nameless]),
        tool_result(weird, "Rome weather"),
        Message(role="tool", content="nameless result", tool_call_id="", tool_name="get_time"),
        assistant(""),
        user("thanks"),
        user("really"),
    ]


async def test_messy_history_is_accepted(provider: AnthropicProvider, fake: AnthropicFake) -> None:
    for streaming in (False, True):
        if streaming:
            events = await collect(provider, req(messy_history(), tools=[WEATHER, TIME]))
            done = events[-1]
            assert isinstance(done, ResponseDone)
            response = done.response
        else:
            response = await provider.complete(req(messy_history(), tools=[WEATHER, TIME]))
        assert response.content == "echo: thanks really"  # merged into one user turn
    body = fake.requests[-1]
    assert body["system"] == "You are terse.\n\nearly system note"
    sent = body["messages"]
    roles = [m["role"] for m in sent]
    assert roles == ["user", "assistant", "user", "assistant", "user", "assistant", "user"]
    ids = [b["id"] for m in sent for b in m["content"] if b["type"] == "tool_use"]
    assert len(ids) == len(set(ids)) == 5
    assert all(ANTHROPIC_TOOL_ID_PATTERN.fullmatch(i) for i in ids)
    results = [b for m in sent for b in m["content"] if b["type"] == "tool_result"]
    assert results[0]["content"] == INTERRUPTED_RESULT and results[0]["is_error"] is True
    assert "content" not in results[2]  # empty result: no empty content
    assert {"type": "text", "text": "[System] mid-history system note"} in sent[4]["content"]


async def test_history_starting_with_assistant(
    provider: AnthropicProvider, fake: AnthropicFake
) -> None:
    await provider.complete(req([assistant("Hi! How can I help?"), user("hello")]))
    sent = fake.requests[-1]["messages"]
    assert sent[0] == {"role": "user", "content": text(PLACEHOLDER_USER_TEXT)}
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    await provider.complete(req([], system_prompt=""))
    assert fake.requests[-1]["messages"] == [
        {"role": "user", "content": text(PLACEHOLDER_USER_TEXT)}
    ]
    assert "system" not in fake.requests[-1]


async def test_openai_style_history_is_accepted(
    provider: AnthropicProvider, fake: AnthropicFake
) -> None:
    """A thread written through Chat Completions (call_ ids) continues on Claude."""
    call1 = ToolCall("call_abc123", "get_weather", {"city": "Paris"})
    call2 = ToolCall("call_8f3:xyz.1", "get_time", {"city": "Paris"})  # not Anthropic-safe
    history = [
        user("Weather and time in Paris?"),
        assistant(None, [call1, call2]),
        tool_result(call1, "sunny"),
        tool_result(call2, "14:00"),
        assistant("Sunny, 14:00."),
        user("thanks"),
    ]
    fake.push(Reply.text("You're welcome."))
    response = await provider.complete(req(history, tools=[WEATHER, TIME]))
    assert response.content == "You're welcome."
    sent = fake.requests[-1]["messages"]
    use_ids = [b["id"] for b in sent[1]["content"]]
    result_ids = [b["tool_use_id"] for b in sent[2]["content"]]
    assert use_ids == result_ids
    assert use_ids[0] == "call_abc123" and ANTHROPIC_TOOL_ID_PATTERN.fullmatch(use_ids[1])


async def test_switching_providers_mid_thread(
    provider: AnthropicProvider, fake: AnthropicFake
) -> None:
    """Claude calls a tool, OpenAI continues the thread, then Claude again."""
    openai_fake = OpenAIFake()
    with serve(openai_fake) as openai_url:
        other = OpenAIChatProvider(ProviderSettings(base_url=openai_url + "/v1", api_key="k"))
        try:
            fake.push(Reply.tool_calls(call("get_weather", {"city": "Paris"})))
            history = [user("Weather in Paris, then Rome?")]
            first = await provider.complete(req(history, tools=[WEATHER]))
            assert first.tool_calls[0].id.startswith("toolu_")
            history += [assistant(None, first.tool_calls), tool_result(first.tool_calls[0], "sun")]

            openai_fake.push(Reply.tool_calls(call("get_weather", {"city": "Rome"}, id="call_r")))
            second = await other.complete(req(history, tools=[WEATHER]))
            history += [assistant(None, second.tool_calls)]  # interrupted: no result

            third = await provider.complete(req([*history, user("go on")], tools=[WEATHER]))
            assert third.content == "echo: go on"
            sent = fake.requests[-1]["messages"]
            assert [b["id"] for b in sent[3]["content"]] == ["call_r"]
            assert sent[4]["content"][0]["content"] == INTERRUPTED_RESULT
        finally:
            await other.aclose()


# --- unreadable replies (a 200 we cannot read is a retryable error, never an answer) -----

#: A proxy's error page: much longer than any error message may be.
HTML_PAGE = "<html><body><h1>502 Bad Gateway</h1>" + "<p>upstream</p>" * 400 + "</body></html>"
TEXT_BLOCKS = '[{"type": "text", "text": "hi"}]'


def unreadable(error: ProviderBadResponse, problem: str) -> None:
    assert error.retryable and error.code == "provider_bad_response"
    assert error.provider == "anthropic"
    assert error.message.startswith("anthropic: unreadable reply: "), error.message
    assert problem in error.message, error.message
    assert len(error.message) <= 200


def sse(*events: tuple[str, dict[str, Any] | str]) -> str:
    return "".join(
        f"event: {name}\ndata: {data if isinstance(data, str) else json.dumps(data)}\n\n"
        for name, data in events
    )


START = ("message_start", {"type": "message_start", "message": {"id": "msg_1", "usage": {}}})
TEXT_START = (
    "content_block_start",
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
)
HI_DELTA = (
    "content_block_delta",
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}},
)
TEXT_STOP = ("content_block_stop", {"type": "content_block_stop", "index": 0})
END_TURN = ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"}})
STOP = ("message_stop", {"type": "message_stop"})


@pytest.mark.parametrize(
    ("body", "content_type", "problem"),
    [
        (HTML_PAGE, "text/html", "the body is not JSON"),
        ('{"type": "message", "content": [{"ty', None, "the body is not JSON"),
        ("", None, "the body is not JSON"),
        ('"message"', None, "the body is not an object"),
        ('{"type": "message", "content": "hi", "stop_reason": "end_turn"}', None, "'content'"),
        ('{"type": "message", "stop_reason": "end_turn"}', None, "'content' is not a list"),
        (f'{{"content": {TEXT_BLOCKS}, "stop_reason": "eaten"}}', None, "unknown stop_reason"),
        (f'{{"content": {TEXT_BLOCKS}, "stop_reason": null}}', None, "unknown stop_reason"),
        (
            '{"content": [{"type": "tool_use", "name": "get_weather", "input": {}}], '
            '"stop_reason": "tool_use"}',
            None,
            "tool_use block's id is missing",
        ),
        (
            f'{{"content": {TEXT_BLOCKS}, "stop_reason": "end_turn", "usage": {{"input_tokens": -1}}}}',
            None,
            "usage.input_tokens is negative",
        ),
    ],
    ids=[
        "html",
        "truncated",
        "empty",
        "string",
        "content-string",
        "no-content",
        "unknown-stop",
        "null-stop",
        "tool-use-no-id",
        "negative-usage",
    ],
)
async def test_unreadable_reply_is_a_retryable_error(
    provider: AnthropicProvider,
    fake: AnthropicFake,
    body: str,
    content_type: str | None,
    problem: str,
) -> None:
    fake.push(Reply.malformed(body, content_type=content_type))
    with pytest.raises(ProviderBadResponse) as info:
        await provider.complete(req([user("hi")]))
    unreadable(info.value, problem)
    assert info.value.status == 200
    assert "upstream</p><p>upstream" not in info.value.message  # never the whole body


@pytest.mark.parametrize(
    ("reply", "problem", "shown"),
    [
        (Reply.text("Hello there, my friend", cut=1), "before message_stop", ""),
        (Reply.text("Hello there, my friend", cut=5), "before message_stop", "Hello th"),
        (
            Reply.text("Hello there, my friend", cut=100),
            "before message_stop",
            "Hello there, my friend",
        ),
        (
            Reply.tool_calls(call("get_weather", {"city": "Paris"}), text="Let me see", cut=9),
            "before message_stop",
            "Let me see",
        ),
        (Reply.malformed("hello\nworld\n\n<html></html>\n\n"), "before message_stop", ""),
        (Reply.malformed(sse(START, ("content_block_start", "{not json"))), "is not JSON", ""),
        (Reply.malformed(sse(START, ("message_delta", "null"))), "is not an object", ""),
        (Reply.malformed(sse(HI_DELTA, START)), "content_block_delta first", ""),
        (Reply.malformed(sse(START, HI_DELTA)), "block 0, which is not open", ""),
        (Reply.malformed(sse(START, TEXT_START, HI_DELTA, STOP)), "block(s) [0] open", "Hi"),
        (Reply.malformed(sse(START, TEXT_START, HI_DELTA, TEXT_STOP, STOP)), "stop_reason", "Hi"),
        (
            Reply.malformed(sse(START, TEXT_START, TEXT_STOP, END_TURN, STOP, START)),
            "message_start after message_stop",
            "",
        ),
    ],
    ids=[
        "cut-after-start",
        "cut-in-text",
        "cut-before-message-delta",
        "cut-in-tool-use",
        "garbage-lines",
        "not-json",
        "null-event",
        "delta-before-start",
        "delta-without-block",
        "stop-with-open-block",
        "stop-without-reason",
        "event-after-stop",
    ],
)
async def test_stream_without_message_stop_is_a_retryable_error(
    provider: AnthropicProvider, fake: AnthropicFake, reply: Reply, problem: str, shown: str
) -> None:
    fake.push(reply)
    events: list[StreamEvent] = []
    with pytest.raises(ProviderBadResponse) as info:
        await drain(provider.stream(req([user("hi")], tools=[WEATHER])), events)
    unreadable(info.value, problem)
    assert all(isinstance(e, TextDelta) for e in events)  # no tool call, no ResponseDone
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == shown


async def test_a_hand_written_complete_stream_is_read(
    provider: AnthropicProvider, fake: AnthropicFake
) -> None:
    # The hand-written events above are valid once complete (newer event types skipped).
    newer = ("content_block_glimmer", {"type": "content_block_glimmer", "index": 0})
    fake.push(Reply.malformed(sse(START, TEXT_START, HI_DELTA, newer, TEXT_STOP, END_TURN, STOP)))
    events = await collect(provider, req([user("hi")]))
    done = events[-1]
    assert isinstance(done, ResponseDone)
    assert (done.response.content, done.response.finish_reason) == ("Hi", "stop")
    assert done.response.usage.estimated is False
