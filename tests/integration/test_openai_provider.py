"""OpenAIChatProvider through the real ``openai`` SDK against the strict local fake."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator

import httpx
import openai
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
from ai_agents.providers.base import (
    ProviderRequest,
    ProviderSettings,
    ResponseDone,
    ResponseFormat,
    StreamEvent,
    TextDelta,
    ToolCallReady,
    ToolSpec,
)
from ai_agents.providers.openai import OpenAIChatProvider, parse_retry_after
from tests.fakes.openai_fake import OpenAIFake
from tests.fakes.script import Reply, ScriptedError, call
from tests.fakes.server import free_port, serve

pytestmark = pytest.mark.integration

MODEL = "gpt-4o-mini"
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
    "additionalProperties": False,
}
CITY_FORMAT = ResponseFormat(
    type="json_schema", name="city_info", schema=CITY_SCHEMA, strict=True, description="A city"
)


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[OpenAIFake, str]]:
    """One fake server per module (starting/stopping uvicorn per test is slow)."""
    fake = OpenAIFake(api_key="sk-test")
    with serve(fake) as url:
        yield fake, url + "/v1"


@pytest.fixture
def fake(server: tuple[OpenAIFake, str]) -> OpenAIFake:
    server[0].script.reset()
    return server[0]


@pytest.fixture
def base_url(server: tuple[OpenAIFake, str], fake: OpenAIFake) -> str:
    return server[1]


@pytest.fixture
async def provider(base_url: str) -> AsyncIterator[OpenAIChatProvider]:
    p = OpenAIChatProvider(ProviderSettings(base_url=base_url, api_key="sk-test", timeout=5))
    yield p
    await p.aclose()


def req(messages: list[Message], **kwargs: object) -> ProviderRequest:
    return ProviderRequest(
        model=MODEL, system_prompt=str(kwargs.pop("system_prompt", "You are terse.")),
        messages=messages, **kwargs,  # type: ignore[arg-type]
    )  # fmt: skip


async def collect(p: OpenAIChatProvider, request: ProviderRequest) -> list[StreamEvent]:
    return [event async for event in p.stream(request)]


async def answer(p: OpenAIChatProvider, request: ProviderRequest, *, streaming: bool) -> object:
    return await collect(p, request) if streaming else await p.complete(request)


async def drain(events: AsyncIterator[StreamEvent], into: list[StreamEvent]) -> None:
    async for event in events:
        into.append(event)


# --- plain answers ----------------------------------------------------------------------


async def test_plain_answer(provider: OpenAIChatProvider, fake: OpenAIFake) -> None:
    response = await provider.complete(req([user("hello there")]))
    assert response.content == "echo: hello there"
    assert response.finish_reason == "stop"
    assert response.tool_calls == []
    assert response.usage.input_tokens > 0 and response.usage.output_tokens > 0
    assert not response.usage.estimated
    assert response.provider == "openai" and response.model == MODEL
    assert response.raw_id and response.raw_id.startswith("chatcmpl-")
    body = fake.requests[-1]
    assert body["messages"] == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "hello there"},
    ]
    assert "tools" not in body and "tool_choice" not in body
    assert fake.script.headers[-1]["authorization"] == "Bearer sk-test"


async def test_openai_compatible_server_is_configuration(base_url: str, fake: OpenAIFake) -> None:
    groq = OpenAIChatProvider(
        ProviderSettings(
            base_url=base_url, api_key="sk-test", name="groq", headers={"X-Extra": "1"}
        ),
        legacy_max_tokens=True,
    )
    try:
        response = await groq.complete(req([user("hi")], max_output_tokens=64, temperature=0.2))
        assert response.provider == "groq"
        assert groq.name == "groq"
        assert fake.requests[-1]["max_tokens"] == 64
        assert "max_completion_tokens" not in fake.requests[-1]
        assert fake.requests[-1]["temperature"] == 0.2
        assert fake.script.headers[-1]["x-extra"] == "1"
        client = groq.client
        await groq.complete(req([user("again")]))
        assert groq.client is client  # one pooled client per provider
    finally:
        await groq.aclose()


async def test_max_completion_tokens_and_stop(
    provider: OpenAIChatProvider, fake: OpenAIFake
) -> None:
    fake.push(Reply.text("one two STOP three"))
    response = await provider.complete(req([user("count")], max_output_tokens=10, stop=["STOP"]))
    assert response.content == "one two "
    assert fake.requests[-1]["max_completion_tokens"] == 10
    assert fake.requests[-1]["stop"] == ["STOP"]


async def test_length_finish_reason(provider: OpenAIChatProvider, fake: OpenAIFake) -> None:
    fake.push(Reply(content="truncated", finish_reason="length"))
    response = await provider.complete(req([user("long")]))
    assert response.finish_reason == "length"


async def test_env_vars_are_used(
    base_url: str, fake: OpenAIFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    p = OpenAIChatProvider()
    try:
        assert (await p.complete(req([user("env")]))).content == "echo: env"
    finally:
        await p.aclose()


async def test_missing_key_for_openai_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    p = OpenAIChatProvider()
    with pytest.raises(ProviderAuthError):
        await p.complete(req([user("hi")]))


# --- tools ------------------------------------------------------------------------------


async def test_tool_call_round_trip(provider: OpenAIChatProvider, fake: OpenAIFake) -> None:
    fake.push(
        Reply.tool_calls(call("get_weather", {"city": "Paris"}, id="call_abc")),
        Reply.text("It is sunny in Paris."),
    )
    history = [user("Weather in Paris?")]
    first = await provider.complete(req(history, tools=[WEATHER, TIME]))
    assert first.finish_reason == "tool_calls"
    assert first.tool_calls == [ToolCall("call_abc", "get_weather", {"city": "Paris"})]
    body = fake.requests[-1]
    assert body["tools"][0] == {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
    assert body["tool_choice"] == "auto"

    history += [
        assistant(first.content, first.tool_calls),
        tool_result(first.tool_calls[0], "22C, sunny"),
    ]
    second = await provider.complete(req(history, tools=[WEATHER, TIME]))
    assert second.content == "It is sunny in Paris."
    assert second.finish_reason == "stop"
    sent = fake.requests[-1]["messages"]
    assert sent[2] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_abc",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            }
        ],
    }
    assert sent[3] == {"role": "tool", "tool_call_id": "call_abc", "content": "22C, sunny"}


async def test_parallel_tool_calls_and_invalid_json(
    provider: OpenAIChatProvider, fake: OpenAIFake
) -> None:
    fake.push(
        Reply.tool_calls(
            call("get_weather", {"city": "Paris"}),
            call("get_time", {"city": "Tokyo"}),
            call("get_weather", '{"city": "Rome"'),  # truncated JSON from the model
            text="Checking.",
        ),
        Reply.text("Done."),
    )
    response = await provider.complete(req([user("two cities")], tools=[WEATHER, TIME]))
    assert response.content == "Checking."
    assert [c.name for c in response.tool_calls] == ["get_weather", "get_time", "get_weather"]
    assert response.tool_calls[1].arguments == {"city": "Tokyo"}
    assert response.tool_calls[2].arguments == {"_raw": '{"city": "Rome"'}
    assert len({c.id for c in response.tool_calls}) == 3
    history = [user("two cities"), assistant(response.content, response.tool_calls)]
    history += [tool_result(c, f"result {i}") for i, c in enumerate(response.tool_calls)]
    assert (await provider.complete(req(history, tools=[WEATHER, TIME]))).content == "Done."


@pytest.mark.parametrize(
    ("choice", "wire"),
    [
        ("auto", "auto"),
        ("none", "none"),
        ("required", "required"),
        ("get_time", {"type": "function", "function": {"name": "get_time"}}),
    ],
)
async def test_tool_choice_mapping(
    provider: OpenAIChatProvider, fake: OpenAIFake, choice: str, wire: object
) -> None:
    await provider.complete(req([user("x")], tools=[WEATHER, TIME], tool_choice=choice))
    assert fake.requests[-1]["tool_choice"] == wire


# --- streaming --------------------------------------------------------------------------


async def test_stream_text(provider: OpenAIChatProvider, fake: OpenAIFake) -> None:
    fake.push(Reply.text("Streaming works fine, thanks for asking."))
    events = await collect(provider, req([user("stream please")]))
    deltas = [e.text for e in events if isinstance(e, TextDelta)]
    assert len(deltas) > 3
    done = events[-1]
    assert isinstance(done, ResponseDone)
    assert sum(isinstance(e, ResponseDone) for e in events) == 1
    assert "".join(deltas) == done.response.content == "Streaming works fine, thanks for asking."
    assert done.response.usage.input_tokens > 0 and not done.response.usage.estimated
    assert done.response.finish_reason == "stop"
    body = fake.requests[-1]
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


async def test_stream_tool_calls(provider: OpenAIChatProvider, fake: OpenAIFake) -> None:
    fake.push(
        Reply.tool_calls(
            call("get_weather", {"city": "Paris", "unit": "celsius"}, id="call_1"),
            call("get_time", {"city": "Tokyo"}, id="call_2"),
            text="Let me check.",
        )
    )
    events = await collect(provider, req([user("x")], tools=[WEATHER, TIME]))
    ready = [e.call for e in events if isinstance(e, ToolCallReady)]
    assert ready == [
        ToolCall("call_1", "get_weather", {"city": "Paris", "unit": "celsius"}),
        ToolCall("call_2", "get_time", {"city": "Tokyo"}),
    ]
    done = events[-1]
    assert isinstance(done, ResponseDone)
    assert done.response.tool_calls == ready
    assert done.response.content == "Let me check."
    assert done.response.finish_reason == "tool_calls"
    assert done.response.usage.output_tokens > 0


# --- structured output and sampling --------------------------------------------------


async def final(p: OpenAIChatProvider, request: ProviderRequest, *, streaming: bool) -> str:
    """The answer's content; streamed, the deltas must add up to it."""
    if not streaming:
        return (await p.complete(request)).content
    events = await collect(p, request)
    done = events[-1]
    assert isinstance(done, ResponseDone)
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == done.response.content
    return done.response.content


@pytest.mark.parametrize("streaming", [False, True])
async def test_json_schema_response_format(
    provider: OpenAIChatProvider, fake: OpenAIFake, streaming: bool
) -> None:
    fake.push(Reply.text('{"city": "Paris", "population": 2102650}'))
    request = req([user("Tell me about Paris")], response_format=CITY_FORMAT)
    content = await final(provider, request, streaming=streaming)
    assert json.loads(content) == {"city": "Paris", "population": 2102650}
    body = fake.requests[-1]
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {
            "name": "city_info",
            "schema": CITY_SCHEMA,
            "strict": True,
            "description": "A city",
        },
    }
    assert body["messages"][0] == {"role": "system", "content": "You are terse."}  # unchanged
    # Unscripted, the fake answers like constrained decoding: an instance of the schema.
    content = await final(provider, request, streaming=streaming)
    assert json.loads(content) == {"city": "echo: Tell me about Paris", "population": 1}


@pytest.mark.parametrize("streaming", [False, True])
async def test_json_object_gets_the_word_json_only_when_missing(
    provider: OpenAIChatProvider, fake: OpenAIFake, streaming: bool
) -> None:
    fmt = ResponseFormat(type="json_object")
    content = await final(
        provider, req([user("Colors?")], response_format=fmt), streaming=streaming
    )
    assert json.loads(content) == {"echo": "echo: Colors?"}
    body = fake.requests[-1]
    assert body["response_format"] == {"type": "json_object"}
    assert body["messages"][0]["content"] == (
        "You are terse.\n\nAnswer with only a JSON object, no other text."
    )
    await final(provider, req([user("Colors, as Json?")], response_format=fmt), streaming=streaming)
    assert fake.requests[-1]["messages"][0]["content"] == "You are terse."
    await final(
        provider,
        req([user("Colors?")], system_prompt="", response_format=fmt, tools=[WEATHER]),
        streaming=streaming,
    )
    assert fake.requests[-1]["messages"][0] == {
        "role": "system",
        "content": "When you give your final answer (not a tool call), answer with only a "
        "JSON object, no other text.",
    }


async def test_text_response_format_sends_nothing(
    provider: OpenAIChatProvider, fake: OpenAIFake
) -> None:
    await provider.complete(req([user("hi")], response_format=ResponseFormat(type="text")))
    assert "response_format" not in fake.requests[-1]


@pytest.mark.parametrize("streaming", [False, True])
async def test_top_p_and_parallel_tool_calls(
    provider: OpenAIChatProvider, fake: OpenAIFake, streaming: bool
) -> None:
    request = req([user("x")], tools=[WEATHER], top_p=0.3, parallel_tool_calls=False)
    await answer(provider, request, streaming=streaming)
    body = fake.requests[-1]
    assert (body["top_p"], body["parallel_tool_calls"]) == (0.3, False)
    await answer(provider, req([user("x")], tools=[WEATHER]), streaming=streaming)
    assert "parallel_tool_calls" not in fake.requests[-1] and "top_p" not in fake.requests[-1]
    # Without tools the API rejects parallel_tool_calls: it is not sent.
    await answer(provider, req([user("x")], parallel_tool_calls=True), streaming=streaming)
    assert "parallel_tool_calls" not in fake.requests[-1]


# --- errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "exc_type", "status", "retry_after"),
    [
        (
            Reply.error(429, message="Rate limit reached", retry_after=2),
            ProviderRateLimited,
            429,
            2.0,
        ),
        (Reply.error(429, message="Slow down", retry_after_ms=1500), ProviderRateLimited, 429, 1.5),
        (Reply.error(503, message="Service unavailable"), ProviderOverloaded, 503, None),
        (Reply.error(529, message="Overloaded"), ProviderOverloaded, 529, None),
        (Reply.error(500, message="The server had an error"), ProviderOverloaded, 500, None),
        (Reply.error(400, message="Invalid 'messages'"), ProviderBadRequest, 400, None),
        (Reply.error(404, message="The model does not exist"), ProviderBadRequest, 404, None),
        (Reply.error(422, message="Unprocessable"), ProviderBadRequest, 422, None),
        (Reply.error(401, message="Incorrect API key provided"), ProviderAuthError, 401, None),
        (Reply.error(403, message="Country not supported"), ProviderAuthError, 403, None),
    ],
)
@pytest.mark.parametrize("streaming", [False, True])
async def test_errors_are_mapped(
    provider: OpenAIChatProvider,
    fake: OpenAIFake,
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
    assert error.provider == "openai"
    assert error.retry_after == retry_after
    assert reply.failure is not None
    assert error.vendor_message == reply.failure.message
    assert reply.failure.message in str(error)
    assert isinstance(error.__cause__, openai.APIError)


async def test_error_inside_stream(provider: OpenAIChatProvider, fake: OpenAIFake) -> None:
    fake.push(
        Reply(
            content="partial answer",
            failure=ScriptedError(500, "The server had an error", in_stream=True),
        )
    )
    events: list[StreamEvent] = []
    with pytest.raises(ProviderOverloaded) as info:
        await drain(provider.stream(req([user("x")])), events)
    assert info.value.vendor_message == "The server had an error"
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "partial answer"


async def test_bad_request_from_the_strict_fake_keeps_vendor_message(
    base_url: str,
) -> None:
    p = OpenAIChatProvider(ProviderSettings(base_url=base_url, api_key="sk-test"))
    try:
        with pytest.raises(ProviderBadRequest) as info:
            await p.complete(req([user("x")], tools=[ToolSpec(name="bad name!", description="")]))
        assert info.value.status == 400
        assert "does not match pattern" in (info.value.vendor_message or "")
    finally:
        await p.aclose()


async def test_wrong_key_is_auth_error(base_url: str) -> None:
    p = OpenAIChatProvider(ProviderSettings(base_url=base_url, api_key="sk-wrong"))
    try:
        with pytest.raises(ProviderAuthError) as info:
            await p.complete(req([user("x")]))
        assert info.value.status == 401
        assert "Incorrect API key" in (info.value.vendor_message or "")
    finally:
        await p.aclose()


@pytest.mark.parametrize("streaming", [False, True])
async def test_timeout(base_url: str, fake: OpenAIFake, streaming: bool) -> None:
    fake.push(Reply.text("too late", delay=5))
    p = OpenAIChatProvider(ProviderSettings(base_url=base_url, api_key="sk-test", timeout=0.3))
    try:
        with pytest.raises(ProviderTimeout) as info:
            await answer(p, req([user("x")]), streaming=streaming)
        assert info.value.retryable
        assert info.value.status is None
    finally:
        await p.aclose()


@pytest.mark.parametrize("streaming", [False, True])
async def test_connection_refused(streaming: bool) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    p = OpenAIChatProvider(ProviderSettings(base_url=url, api_key="sk-test", timeout=2))
    try:
        with pytest.raises(ProviderConnectionError) as info:
            await answer(p, req([user("x")]), streaming=streaming)
        assert info.value.status is None
        assert info.value.retryable
    finally:
        await p.aclose()


def test_parse_retry_after() -> None:
    assert parse_retry_after({"retry-after": "3"}) == 3.0
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "3"}) == 0.25
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None


# --- the fake is strict ----------------------------------------------------------------


async def test_fake_rejects_what_openai_rejects(base_url: str) -> None:
    client = openai.AsyncOpenAI(base_url=base_url, api_key="sk-test", max_retries=0)
    tool_calls = [
        {"id": "call_a", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    ]
    bad_histories: list[tuple[list[dict[str, object]], str]] = [
        ([{"role": "user", "content": "x"}, {"role": "tool", "tool_call_id": "call_a",
          "content": "orphan"}], "must be a response to a preceeding message"),
        ([{"role": "user", "content": "x"},
          {"role": "assistant", "content": None, "tool_calls": tool_calls},
          {"role": "user", "content": "no result"}], "did not have response messages: call_a"),
        ([{"role": "user", "content": "x"},
          {"role": "assistant", "content": None, "tool_calls": tool_calls},
          {"role": "tool", "tool_call_id": "call_b", "content": "wrong id"}],
         "must be a response to a preceeding message"),
        ([{"role": "robot", "content": "x"}], "Invalid value: 'robot'"),
        ([{"role": "user", "content": "x"},
          {"role": "assistant", "content": None, "tool_calls": [
              {"id": "call_a", "type": "function", "function": {"name": "f", "arguments": {}}}]},
          {"role": "tool", "tool_call_id": "call_a", "content": "r"}], "expected a string"),
        ([], "empty array"),
    ]  # fmt: skip
    try:
        for messages, expected in bad_histories:
            with pytest.raises(openai.BadRequestError) as info:
                await client.chat.completions.create(model=MODEL, messages=messages)  # type: ignore[arg-type]
            assert expected in info.value.message, messages
    finally:
        await client.close()


BAD_STRUCTURED_REQUESTS: list[tuple[dict[str, object], str]] = [
    ({"parallel_tool_calls": False}, "'parallel_tool_calls' is only allowed when 'tools'"),
    ({"top_p": 1.5}, "Expected a value <= 1, but got 1.5"),
    ({"temperature": -1}, "Expected a value >= 0"),
    ({"response_format": {"type": "xml"}}, "Invalid value: 'xml'"),
    ({"response_format": {"type": "json_object"}}, "must contain the word 'json'"),
    ({"response_format": {"type": "json_schema"}},
     "Missing required parameter: 'response_format.json_schema'."),
    ({"response_format": {"type": "json_schema", "json_schema": {"schema": CITY_SCHEMA}}},
     "Missing required parameter: 'response_format.json_schema.name'."),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "a b"}}},
     "'response_format.json_schema.name': string does not match pattern"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}},
     "Missing required parameter: 'response_format.json_schema.schema'."),
    ({"response_format": {"type": "json_schema", "json_schema": {
        "name": "x", "strict": True, "schema": {**CITY_SCHEMA, "required": ["city"]}}}},
     "Missing 'population'"),
    ({"response_format": {"type": "json_schema", "json_schema": {
        "name": "x", "strict": True, "schema": {"type": "object", "properties": {}}}}},
     "'additionalProperties' is required to be supplied and to be false"),
]  # fmt: skip


async def test_fake_rejects_bad_structured_output_and_sampling(base_url: str) -> None:
    headers = {"Authorization": "Bearer sk-test"}
    ok: dict[str, object] = {"model": MODEL, "messages": [{"role": "user", "content": "x"}]}
    async with httpx.AsyncClient(base_url=base_url, headers=headers) as http:
        for extra, expected in BAD_STRUCTURED_REQUESTS:
            response = await http.post("/chat/completions", json={**ok, **extra})
            assert response.status_code == 400, extra
            assert expected in response.json()["error"]["message"], extra
        loose = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}
        for extra in ({"response_format": loose}, {"top_p": 1, "temperature": 2}):
            assert (await http.post("/chat/completions", json={**ok, **extra})).status_code == 200


async def test_fake_requires_auth_header_and_model(base_url: str) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.post(f"{base_url}/chat/completions", json={"model": MODEL})
        assert response.status_code == 401
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert "didn't provide an API key" in error["message"]
        headers = {"Authorization": "Bearer sk-test"}
        response = await http.post(
            f"{base_url}/chat/completions", json={"messages": []}, headers=headers
        )
        assert response.status_code == 400
        assert response.json()["error"]["message"] == "you must provide a model parameter"
        response = await http.post(
            f"{base_url}/chat/completions", json={"model": MODEL}, headers=headers
        )
        assert response.json()["error"]["code"] == "missing_required_parameter"


# --- history repair and provider switching -------------------------------------------


def messy_history() -> list[Message]:
    interrupted = ToolCall("call_int", "get_weather", {"city": "Oslo"})
    dup1 = ToolCall("call_0", "get_time", {"city": "A"})
    dup2 = ToolCall("call_0", "get_time", {"city": "B"})
    weird = ToolCall("fc.1:weird/id+" + "x" * 40, "get_weather", {"city": "Rome"})
    nameless = ToolCall("", "get_time", {})
    return [
        system("early system note"),
        Message(role="tool", content="orphan", tool_call_id="call_gone", tool_name="x"),
        user("start"),
        assistant("", [interrupted]),  # run was interrupted: no result
        user("still there?"),
        assistant(None, [dup1, dup2]),
        tool_result(dup1, "A time"),
        tool_result(dup2, "B time"),
        system("mid-history system note"),
        assistant("and one more", [weird, nameless]),
        tool_result(weird, "Rome weather"),
        Message(role="tool", content="nameless result", tool_call_id="", tool_name="get_time"),
        user("thanks"),
    ]


async def test_messy_history_is_accepted(provider: OpenAIChatProvider, fake: OpenAIFake) -> None:
    response = await provider.complete(req(messy_history(), tools=[WEATHER, TIME]))
    assert response.content == "echo: thanks"
    sent = fake.requests[-1]["messages"]
    assert all(m.get("tool_call_id") != "call_gone" for m in sent)
    ids = [c["id"] for m in sent for c in m.get("tool_calls", [])]
    assert len(ids) == len(set(ids)) == 5 and all(len(i) <= 40 for i in ids)
    interrupted = next(m for m in sent if m.get("tool_call_id") == "call_int")
    assert "interrupted" in interrupted["content"]


async def test_anthropic_style_history_is_accepted(
    provider: OpenAIChatProvider, fake: OpenAIFake
) -> None:
    """A thread written by Claude (toolu_ ids) continues on an OpenAI-compatible model."""
    call1 = ToolCall("toolu_01A09q90qw90lq917835lq9", "get_weather", {"city": "Paris"})
    call2 = ToolCall("toolu_01B8Xk2wqLs9e4ZQ7v3Hn1Tm", "get_time", {"city": "Paris"})
    history = [
        user("Weather and time in Paris?"),
        assistant("I'll check both.", [call1, call2]),
        tool_result(call1, "sunny"),
        tool_result(call2, "error: tz db missing", is_error=True),
        assistant("Sunny; time unknown."),
        user("thanks"),
    ]
    fake.push(Reply.text("You're welcome."))
    response = await provider.complete(req(history, tools=[WEATHER, TIME]))
    assert response.content == "You're welcome."
    sent = fake.requests[-1]["messages"]
    assert [m["role"] for m in sent] == [
        "system",
        "user",
        "assistant",
        "tool",
        "tool",
        "assistant",
        "user",
    ]
    assert sent[3]["tool_call_id"] == call1.id


# --- unreadable replies (a 200 we cannot read is a retryable error, never an answer) -----

#: A proxy's error page: much longer than any error message may be.
HTML_PAGE = "<html><body><h1>502 Bad Gateway</h1>" + "<p>upstream</p>" * 400 + "</body></html>"
HI = '{"role": "assistant", "content": "hi"}'


def unreadable(error: ProviderBadResponse, problem: str) -> None:
    assert error.retryable and error.code == "provider_bad_response"
    assert error.provider == "openai"
    assert error.message.startswith("openai: unreadable reply: "), error.message
    assert problem in error.message, error.message
    assert len(error.message) <= 200


@pytest.mark.parametrize(
    ("body", "content_type", "problem"),
    [
        (HTML_PAGE, "text/html", "the body is not JSON"),
        (HTML_PAGE, "application/json", "the body is not JSON"),
        ('{"id": "chatcmpl-1", "choices": [{"mess', "application/json", "the body is not JSON"),
        ("", "application/json", "the body is not JSON"),
        ("[1, 2]", "application/json", "the body is not an object"),
        ('{"id": "chatcmpl-1", "object": "chat.completion"}', None, "'choices' is missing"),
        ('{"choices": []}', None, "'choices' is missing or empty"),
        ('{"choices": [{"message": null, "finish_reason": "stop"}]}', None, "message is not"),
        (
            '{"choices": [{"message": {"content": [{"type": "text"}]}, "finish_reason": "stop"}]}',
            None,
            "message.content is not str",
        ),
        (f'{{"choices": [{{"message": {HI}, "finish_reason": "eaten"}}]}}', None, "finish_reason"),
        (
            f'{{"choices": [{{"message": {HI}, "finish_reason": "stop"}}], "usage": {{"prompt_tokens": "3"}}}}',
            None,
            "usage.prompt_tokens is not int",
        ),
        (
            '{"choices": [{"message": {"tool_calls": [{"type": "function", "function": {}}]}}]}',
            None,
            "tool call has no name",
        ),
    ],
    ids=[
        "html",
        "html-said-json",
        "truncated",
        "empty",
        "array",
        "no-choices",
        "empty-choices",
        "message-null",
        "content-list",
        "unknown-finish",
        "usage-string",
        "call-no-name",
    ],
)
async def test_unreadable_reply_is_a_retryable_error(
    provider: OpenAIChatProvider,
    fake: OpenAIFake,
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
        (Reply.text("Hello there, my friend", cut=1), "before its finish_reason", ""),
        (Reply.text("Hello there, my friend", cut=3), "before its finish_reason", "Hello th"),
        (
            Reply.tool_calls(call("get_weather", {"city": "Paris"}), text="Let me see", cut=5),
            "before its finish_reason",
            "Let me see",
        ),
        (Reply.malformed("data: [DONE]\n\n"), "before its finish_reason", ""),
        (Reply.malformed("hello\nworld\n\n<html></html>\n\n"), "before its finish_reason", ""),
        (Reply.malformed('data: {"choices": [{"delta": {"cont'), "before its finish_reason", ""),
        (Reply.malformed("data: {not json}\n\n"), "a stream chunk is not JSON", ""),
        (Reply.malformed("data: null\n\n"), "a stream chunk is not an object", ""),
        (
            Reply.malformed(
                'data: {"choices": [{"delta": {"content": "Hi"}}]}\n\n'
                'data: {"choices": [{"delta": {}, "finish_reason": "eaten"}]}\n\n'
                "data: [DONE]\n\n"
            ),
            "unknown finish_reason",
            "Hi",
        ),
        (
            Reply.malformed(
                'data: {"choices": [{"delta": {}, "finish_reason": "stop"}]}\n\n'
                'data: {"choices": [{"delta": {"content": "late"}}]}\n\n'
                "data: [DONE]\n\n"
            ),
            "content after the finish_reason",
            "",
        ),
    ],
    ids=[
        "cut-before-text",
        "cut-in-text",
        "cut-in-tool-call",
        "only-done",
        "garbage-lines",
        "truncated-line",
        "not-json",
        "null-chunk",
        "unknown-finish",
        "text-after-finish",
    ],
)
async def test_stream_without_its_finish_is_a_retryable_error(
    provider: OpenAIChatProvider, fake: OpenAIFake, reply: Reply, problem: str, shown: str
) -> None:
    fake.push(reply)
    events: list[StreamEvent] = []
    with pytest.raises(ProviderBadResponse) as info:
        await drain(provider.stream(req([user("hi")], tools=[WEATHER])), events)
    unreadable(info.value, problem)
    assert all(isinstance(e, TextDelta) for e in events)  # no tool call, no ResponseDone
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == shown


async def test_a_complete_stream_after_a_cut_one(
    provider: OpenAIChatProvider, fake: OpenAIFake
) -> None:
    fake.push(Reply.text("Hello there", cut=2), Reply.text("Hello there"))
    with pytest.raises(ProviderBadResponse):
        await collect(provider, req([user("hi")]))
    events = await collect(provider, req([user("hi")]))  # the same connection pool
    done = events[-1]
    assert isinstance(done, ResponseDone) and done.response.content == "Hello there"


async def test_strict_client_validation_error_is_unreadable(
    base_url: str, fake: OpenAIFake
) -> None:
    client = openai.AsyncOpenAI(
        api_key="sk-test", base_url=base_url, max_retries=0, _strict_response_validation=True
    )
    p = OpenAIChatProvider(client=client)
    fake.push(Reply.malformed(HTML_PAGE, content_type="text/html"))
    try:
        with pytest.raises(ProviderBadResponse) as info:
            await p.complete(req([user("hi")]))
    finally:
        await p.aclose()
    unreadable(info.value, "Expected Content-Type response header to be `application/json`")
    assert isinstance(info.value.__cause__, openai.APIResponseValidationError)
