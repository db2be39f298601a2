"""OllamaProvider against the strict fake Ollama server (real HTTP on loopback)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from ai_agents.errors import (
    ProviderBadRequest,
    ProviderBadResponse,
    ProviderConnectionError,
    ProviderError,
    ProviderOverloaded,
    ProviderRateLimited,
    ProviderTimeout,
)
from ai_agents.messages import Message, ToolCall, assistant, tool_result, user
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
    Usage,
)
from ai_agents.providers.ollama import OllamaProvider, _ProseFilter, ollama_base_url
from ai_agents.tools.parser import (
    parse_tool_calls,
    render_tool_call,
    render_tool_instructions,
    render_tool_result,
)
from tests.fakes.ollama_fake import FakeOllama, Reply, xml_tool_call_text
from tests.fakes.server import free_port, serve

pytestmark = pytest.mark.integration

TOOL_MODEL = "llama3.1:8b"  # native tools (registry and fake agree)
SMALL_MODEL = "gemma2:2b"  # no native tools: XML injection

WEATHER = ToolSpec(
    name="get_weather",
    description="Current weather of a city.",
    parameters={
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
)
CLOCK = ToolSpec(name="get_time", description="The current time.")
CITY_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
    "required": ["city", "population"],
}
CITY = ResponseFormat(type="json_schema", name="city", schema=CITY_SCHEMA)
CITY_INSTRUCTION = (
    "with only JSON, no other text. It must be valid against this JSON schema: "
    + json.dumps(CITY_SCHEMA)
)


def _tool_json_for_fake() -> dict[str, Any]:
    return {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[FakeOllama, str]]:
    fake = FakeOllama(models=[TOOL_MODEL, SMALL_MODEL], tool_models=[TOOL_MODEL])
    with serve(fake) as url:
        yield fake, url


@pytest.fixture
def fake(server: tuple[FakeOllama, str]) -> FakeOllama:
    server[0].reset()
    return server[0]


@pytest.fixture
async def provider(server: tuple[FakeOllama, str]) -> AsyncIterator[OllamaProvider]:
    # Native or XML tools per model come from the model registry (llama3.1: native tools;
    # gemma2: none).
    p = OllamaProvider(ProviderSettings(base_url=server[1], timeout=5))
    yield p
    await p.aclose()


def request(
    model: str = TOOL_MODEL,
    messages: list[Message] | None = None,
    *,
    tools: tuple[ToolSpec, ...] = (),
    **kwargs: Any,
) -> ProviderRequest:
    return ProviderRequest(
        model=model,
        system_prompt="You are terse.",
        messages=messages or [user("Hi")],
        tools=tools,
        **kwargs,
    )


async def collect(p: OllamaProvider, req: ProviderRequest) -> list[StreamEvent]:
    return [event async for event in p.stream(req)]


async def call_model(p: OllamaProvider, req: ProviderRequest, *, streaming: bool) -> object:
    if streaming:
        return await collect(p, req)
    return await p.complete(req)


# --- plain answers ----------------------------------------------------------------


async def test_plain_answer(fake: FakeOllama, provider: OllamaProvider) -> None:
    fake.reply_text("Hello there.", prompt_eval_count=12, eval_count=3)
    response = await provider.complete(request(temperature=0.2, max_output_tokens=50, stop=["###"]))
    assert response.content == "Hello there."
    assert response.finish_reason == "stop"
    assert response.tool_calls == []
    assert response.usage == Usage(12, 3)
    assert response.provider == "ollama"
    assert response.model == TOOL_MODEL
    body = fake.last_request
    assert body["model"] == TOOL_MODEL
    assert body["stream"] is False
    assert body["messages"] == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Hi"},
    ]
    assert body["options"] == {"temperature": 0.2, "num_predict": 50, "stop": ["###"]}
    assert "tools" not in body


async def test_length_finish_and_estimated_usage(
    fake: FakeOllama, provider: OllamaProvider
) -> None:
    fake.reply(Reply(content="cut sho", done_reason="length", no_usage=True))
    response = await provider.complete(request())
    assert response.finish_reason == "length"
    assert response.usage.estimated
    assert response.usage.input_tokens > 0
    assert response.usage.output_tokens > 0


async def test_name_from_settings_and_env_host(
    fake: FakeOllama, server: tuple[FakeOllama, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OLLAMA_HOST", server[1].removeprefix("http://"))
    p = OllamaProvider(ProviderSettings(name="local-gpu"), native_tools=False)
    try:
        response = await p.complete(request())
    finally:
        await p.aclose()
    assert response.content == "echo: Hi"  # the fake's default reply
    assert response.provider == "local-gpu"


def test_base_url_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OLLAMA_HOST", raising=False)
    assert ollama_base_url() == "http://127.0.0.1:11434"
    assert ollama_base_url("http://box:8080/") == "http://box:8080"
    monkeypatch.setenv("OLLAMA_HOST", "0.0.0.0")
    assert ollama_base_url() == "http://0.0.0.0:11434"
    monkeypatch.setenv("OLLAMA_HOST", "gpu.lan:9999")
    assert ollama_base_url() == "http://gpu.lan:9999"
    monkeypatch.setenv("OLLAMA_HOST", "https://ollama.example.com")
    assert ollama_base_url() == "https://ollama.example.com"
    assert ollama_base_url("http://explicit:1") == "http://explicit:1"


# --- native tools -----------------------------------------------------------------


async def test_native_tool_call_round_trip(fake: FakeOllama, provider: OllamaProvider) -> None:
    fake.reply_tool_calls({"name": "get_weather", "arguments": {"city": "Paris"}})
    first = await provider.complete(request(tools=(WEATHER, CLOCK)))
    assert first.finish_reason == "tool_calls"
    assert len(first.tool_calls) == 1
    call = first.tool_calls[0]
    assert call.name == "get_weather"
    assert call.arguments == {"city": "Paris"}
    assert call.id  # Ollama sends no ids: synthesized
    body = fake.last_request
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather of a city.",
                "parameters": WEATHER.parameters,
            },
        },
        {
            "type": "function",
            "function": {
                "name": "get_time",
                "description": "The current time.",
                "parameters": {"type": "object", "properties": {}},
            },
        },
    ]

    fake.reply_text("It is 22C and sunny in Paris.")
    history = [
        user("Weather in Paris?"),
        assistant(None, [call]),
        tool_result(call, "22C, sunny"),
    ]
    second = await provider.complete(request(messages=history, tools=(WEATHER, CLOCK)))
    assert second.content == "It is 22C and sunny in Paris."
    assert second.finish_reason == "stop"
    sent = fake.last_request["messages"]
    assert sent[1:] == [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}],
        },
        {"role": "tool", "content": "22C, sunny", "tool_name": "get_weather"},
    ]


async def test_native_error_result_and_tool_choice(
    fake: FakeOllama, provider: OllamaProvider
) -> None:
    call = ToolCall(id="call_1", name="get_weather", arguments={"city": "X"})
    history = [
        user("?"),
        assistant("Checking.", [call]),
        tool_result(call, "no such city", is_error=True),
    ]
    await provider.complete(request(messages=history, tools=(WEATHER,), tool_choice="none"))
    body = fake.last_request
    assert "tools" not in body
    assert body["messages"][-1] == {
        "role": "tool",
        "content": "Error: no such city",
        "tool_name": "get_weather",
    }

    await provider.complete(request(tools=(WEATHER, CLOCK), tool_choice="get_time"))
    body = fake.last_request
    assert [t["function"]["name"] for t in body["tools"]] == ["get_time"]
    assert "get_time" in body["messages"][0]["content"]


async def test_native_streaming_text_and_tool_calls(
    fake: FakeOllama, provider: OllamaProvider
) -> None:
    fake.reply_text(
        "The quick brown fox jumps over the lazy dog.", prompt_eval_count=20, eval_count=11
    )
    events = await collect(provider, request())
    deltas = [e.text for e in events if isinstance(e, TextDelta)]
    assert len(deltas) > 3
    assert "".join(deltas) == "The quick brown fox jumps over the lazy dog."
    done = events[-1]
    assert isinstance(done, ResponseDone)
    assert [e for e in events if isinstance(e, ResponseDone)] == [done]
    assert done.response.content == "The quick brown fox jumps over the lazy dog."
    assert done.response.usage == Usage(20, 11)
    assert fake.last_request["stream"] is True

    fake.reply_tool_calls(
        {"name": "get_weather", "arguments": {"city": "Oslo"}},
        {"name": "get_time", "arguments": {}},
        content="Let me look.",
    )
    events = await collect(provider, request(tools=(WEATHER, CLOCK)))
    ready = [e.call for e in events if isinstance(e, ToolCallReady)]
    assert [(c.name, c.arguments) for c in ready] == [
        ("get_weather", {"city": "Oslo"}),
        ("get_time", {}),
    ]
    assert len({c.id for c in ready}) == 2
    done = events[-1]
    assert isinstance(done, ResponseDone)
    assert done.response.tool_calls == ready
    assert done.response.finish_reason == "tool_calls"
    assert done.response.content == "Let me look."


# --- errors -----------------------------------------------------------------------


@pytest.mark.parametrize("streaming", [False, True])
async def test_unknown_model_is_bad_request(
    fake: FakeOllama, provider: OllamaProvider, streaming: bool
) -> None:
    with pytest.raises(ProviderBadRequest) as info:
        await call_model(provider, request(model="mistral:7b"), streaming=streaming)
    err = info.value
    assert err.status == 404
    assert err.provider == "ollama"
    assert err.vendor_message == 'model "mistral:7b" not found, try pulling it first'
    assert not err.retryable


async def test_tools_for_a_model_without_tools_is_bad_request(
    server: tuple[FakeOllama, str], fake: FakeOllama
) -> None:
    # Forcing native tools on a model the server says cannot use them.
    p = OllamaProvider(ProviderSettings(base_url=server[1]), native_tools=True)
    try:
        with pytest.raises(ProviderBadRequest) as info:
            await p.complete(request(model=SMALL_MODEL, tools=(WEATHER,)))
    finally:
        await p.aclose()
    assert info.value.status == 400
    assert info.value.vendor_message == "registry.ollama.ai/library/gemma2 does not support tools"


@pytest.mark.parametrize(
    ("status", "headers", "error", "retry_after"),
    [
        (400, None, ProviderBadRequest, None),
        (429, {"retry-after": "3"}, ProviderRateLimited, 3.0),
        (429, None, ProviderRateLimited, None),
        (503, None, ProviderOverloaded, None),
        (500, None, ProviderOverloaded, None),
    ],
)
@pytest.mark.parametrize("streaming", [False, True])
async def test_http_errors(
    fake: FakeOllama,
    provider: OllamaProvider,
    status: int,
    headers: dict[str, str] | None,
    error: type[ProviderError],
    retry_after: float | None,
    streaming: bool,
) -> None:
    fake.reply_error(status, f"failure {status}", headers=headers)
    with pytest.raises(error) as info:
        await call_model(provider, request(), streaming=streaming)
    assert type(info.value) is error
    assert info.value.status == status
    assert info.value.retry_after == retry_after
    assert info.value.vendor_message == f"failure {status}"


@pytest.mark.parametrize("streaming", [False, True])
async def test_timeout(server: tuple[FakeOllama, str], fake: FakeOllama, streaming: bool) -> None:
    fake.reply_hang(10)
    p = OllamaProvider(ProviderSettings(base_url=server[1], timeout=0.3), native_tools=False)
    try:
        with pytest.raises(ProviderTimeout) as info:
            await call_model(p, request(), streaming=streaming)
    finally:
        await p.aclose()
    assert info.value.retryable


@pytest.mark.parametrize("streaming", [False, True])
async def test_connection_refused(streaming: bool) -> None:
    p = OllamaProvider(
        ProviderSettings(base_url=f"http://127.0.0.1:{free_port()}", timeout=2),
        native_tools=False,
    )
    try:
        with pytest.raises(ProviderConnectionError) as info:
            await call_model(p, request(), streaming=streaming)
    finally:
        await p.aclose()
    assert info.value.retryable
    assert info.value.status is None


async def test_error_in_the_middle_of_a_stream(fake: FakeOllama, provider: OllamaProvider) -> None:
    fake.reply(Reply(content="partial answer", stream_error="llama runner process has terminated"))
    events: list[StreamEvent] = []

    async def consume() -> None:
        async for event in provider.stream(request()):
            events.append(event)

    with pytest.raises(ProviderOverloaded) as info:
        await consume()
    assert info.value.vendor_message == "llama runner process has terminated"
    assert all(isinstance(e, TextDelta) for e in events)


# --- XML tool injection -----------------------------------------------------------


async def test_xml_injection_round_trip(fake: FakeOllama, provider: OllamaProvider) -> None:
    assert provider.native_tools_for(TOOL_MODEL)
    assert not provider.native_tools_for(SMALL_MODEL)
    fake.reply_xml_tool_call("get_weather", {"city": "Paris"}, prose="Let me check.", fence=True)
    first = await provider.complete(
        request(SMALL_MODEL, [user("Weather in Paris?")], tools=(WEATHER, CLOCK))
    )
    body = fake.last_request
    assert "tools" not in body
    system = body["messages"][0]
    assert system["role"] == "system"
    assert system["content"].startswith("You are terse.")
    assert render_tool_instructions([WEATHER, CLOCK]) in system["content"]

    assert first.finish_reason == "tool_calls"
    assert [(c.name, c.arguments) for c in first.tool_calls] == [("get_weather", {"city": "Paris"})]
    call = first.tool_calls[0]
    assert call.id
    assert first.content == "Let me check."

    fake.reply_text("It is 22C and sunny in Paris.")
    history = [
        user("Weather in Paris?"),
        assistant(first.content, first.tool_calls),
        tool_result(call, "22C, sunny"),
    ]
    second = await provider.complete(request(SMALL_MODEL, history, tools=(WEATHER, CLOCK)))
    assert second.content == "It is 22C and sunny in Paris."
    assert second.finish_reason == "stop"
    assert second.tool_calls == []
    body = fake.last_request
    assert "tools" not in body
    messages = body["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert all(set(m) == {"role", "content"} for m in messages)
    assert messages[2]["content"].startswith("Let me check.")
    assert render_tool_call(call) in messages[2]["content"]
    assert messages[3]["content"] == render_tool_result("get_weather", call.id, "22C, sunny")


async def test_xml_results_of_one_turn_share_one_user_message(
    fake: FakeOllama, provider: OllamaProvider
) -> None:
    a = ToolCall(id="call_a", name="get_weather", arguments={"city": "Oslo"})
    b = ToolCall(id="call_b", name="get_time", arguments={})
    history = [
        user("Weather and time?"),
        assistant(None, [a, b]),
        tool_result(a, "cold"),
        tool_result(b, "boom", is_error=True),
        user("And tomorrow?"),
    ]
    await provider.complete(request(SMALL_MODEL, history, tools=(WEATHER, CLOCK)))
    messages = fake.last_request["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    last = messages[-1]["content"]
    assert render_tool_result("get_weather", "call_a", "cold") in last
    assert render_tool_result("get_time", "call_b", "boom", is_error=True) in last
    assert last.endswith("And tomorrow?")


async def test_xml_tool_choice_none_offers_nothing(
    fake: FakeOllama, provider: OllamaProvider
) -> None:
    fake.reply_xml_tool_call("get_weather", {"city": "Paris"})
    response = await provider.complete(request(SMALL_MODEL, tools=(WEATHER,), tool_choice="none"))
    assert fake.last_request["messages"][0]["content"] == "You are terse."
    assert response.tool_calls == []  # nothing offered: the text is not parsed


@pytest.mark.parametrize("style", ["xml", "messy", "json"])
@pytest.mark.parametrize("fence", [False, True])
async def test_xml_streaming_never_shows_raw_xml(
    fake: FakeOllama, provider: OllamaProvider, fence: bool, style: str
) -> None:
    fake.reply_xml_tool_call(
        "get_weather",
        {"city": "Lima"},
        prose="Sure, let me look that up.",
        fence=fence,
        style=style,
    )
    events = await collect(provider, request(SMALL_MODEL, tools=(WEATHER,)))
    deltas = [e.text for e in events if isinstance(e, TextDelta)]
    streamed = "".join(deltas)
    assert "<" not in streamed
    assert "`" not in streamed
    assert "tool_call" not in streamed
    assert streamed == "Sure, let me look that up."
    ready = [e.call for e in events if isinstance(e, ToolCallReady)]
    assert [(c.name, c.arguments) for c in ready] == [("get_weather", {"city": "Lima"})]
    done = events[-1]
    assert isinstance(done, ResponseDone)
    assert done.response.tool_calls == ready
    assert done.response.finish_reason == "tool_calls"
    assert done.response.content == "Sure, let me look that up."
    assert [e.type for e in events][-2:] == ["tool_call", "response_done"]


async def test_xml_streaming_passes_prose_and_plain_code_blocks(
    fake: FakeOllama, provider: OllamaProvider
) -> None:
    answer = "Here is the code:\n\n```python\nprint('a < b')\n```\n\nRun it with python3."
    fake.reply_text(answer)
    events = await collect(provider, request(SMALL_MODEL, tools=(WEATHER,)))
    deltas = [e.text for e in events if isinstance(e, TextDelta)]
    assert len(deltas) > 3
    assert "".join(deltas) == answer
    done = events[-1]
    assert isinstance(done, ResponseDone)
    assert done.response.content == answer
    assert done.response.tool_calls == []
    assert done.response.finish_reason == "stop"


async def test_xml_streaming_prose_after_the_call_comes_at_the_end(
    fake: FakeOllama, provider: OllamaProvider
) -> None:
    fake.reply_xml_tool_call("get_time", {}, prose="One moment.", after="I will wait.")
    events = await collect(provider, request(SMALL_MODEL, tools=(CLOCK,)))
    deltas = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert deltas == "One moment.\n\nI will wait."
    assert [e.type for e in events][-2:] == ["tool_call", "response_done"]
    done = events[-1]
    assert isinstance(done, ResponseDone)
    assert done.response.content == deltas


@pytest.mark.parametrize(
    "answer",
    [
        "Plain prose, no tools at all. 1 < 2 and `x` is fine.",
        "Let me check.\n\n" + xml_tool_call_text("get_weather", {"city": "Rome"}),
        "Checking:\n"
        + xml_tool_call_text("get_weather", {"city": "Rome"}, fence=True)
        + "\n\nDone.",
        "Code:\n```python\nprint(1)\n```\nthen <toolbar> is just html.",
        xml_tool_call_text("get_weather", {"city": "Rome"}, style="json"),
        "Two: "
        + xml_tool_call_text("get_weather", {"city": "A"}, style="xml")
        + xml_tool_call_text("get_time", {}, style="messy"),
    ],
)
def test_prose_filter_at_every_split(answer: str) -> None:
    """Whatever the chunking, no raw call XML is streamed and the deltas add up."""
    expected = parse_tool_calls(answer, known_tools={"get_weather", "get_time"})
    has_calls = bool(expected.calls)
    for cut in range(1, len(answer)):
        for size in (1, 3):
            pieces = [answer[:cut]] + [answer[i : i + size] for i in range(cut, len(answer), size)]
            filt = _ProseFilter(frozenset({"get_weather", "get_time"}))
            streamed = "".join(filt.feed(p) for p in pieces)
            if has_calls:
                assert "<tool_call" not in streamed, (cut, size, streamed)
                assert "<name>" not in streamed
            rest, parsed = filt.finish()
            assert streamed + rest == parsed.text, (cut, size)
            assert [c.name for c in parsed.calls] == [c.name for c in expected.calls]


# --- the fake itself --------------------------------------------------------------


# --- structured output and sampling ------------------------------------------------


async def respond(p: OllamaProvider, req: ProviderRequest, *, streaming: bool) -> ProviderResponse:
    """The response; streamed, its events must add up to it."""
    if not streaming:
        return await p.complete(req)
    events = await collect(p, req)
    done = events[-1]
    assert isinstance(done, ResponseDone)
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == done.response.content
    assert [e.call for e in events if isinstance(e, ToolCallReady)] == done.response.tool_calls
    return done.response


@pytest.mark.parametrize("streaming", [False, True])
@pytest.mark.parametrize("model", [TOOL_MODEL, SMALL_MODEL])
async def test_format_and_top_p_without_tools(
    fake: FakeOllama, provider: OllamaProvider, model: str, streaming: bool
) -> None:
    req = request(model, [user("Paris?")], response_format=CITY, top_p=0.4)
    response = await respond(provider, req, streaming=streaming)
    assert json.loads(response.content) == {"city": "echo: Paris?", "population": 1}
    body = fake.last_request
    assert body["format"] == CITY_SCHEMA
    assert body["options"] == {"top_p": 0.4}
    # Ollama advises giving the schema in the prompt too.
    assert body["messages"][0]["content"] == f"You are terse.\n\nAnswer {CITY_INSTRUCTION}"
    req = request(model, [user("Paris?")], response_format=ResponseFormat(type="json_object"))
    response = await respond(provider, req, streaming=streaming)
    assert json.loads(response.content) == {"echo": "echo: Paris?"}
    body = fake.last_request
    assert body["format"] == "json"
    assert body["messages"][0]["content"].endswith("Answer with only a JSON object, no other text.")
    await respond(provider, request(model, response_format=ResponseFormat()), streaming=streaming)
    assert "format" not in fake.last_request


@pytest.mark.parametrize("model", [TOOL_MODEL, SMALL_MODEL])
async def test_format_is_not_sent_when_tools_are_offered(
    fake: FakeOllama, provider: OllamaProvider, model: str
) -> None:
    """``format`` would keep the model from calling tools: the instruction asks instead."""
    fake.reply_text('{"city": "Paris", "population": 3}')
    response = await provider.complete(request(model, tools=(WEATHER,), response_format=CITY))
    assert json.loads(response.content) == {"city": "Paris", "population": 3}
    body = fake.last_request
    assert "format" not in body
    system = body["messages"][0]["content"]
    assert system.endswith(
        f"When you give your final answer (not a tool call), answer {CITY_INSTRUCTION}"
    )
    assert ("tools" in body) == (model == TOOL_MODEL)
    assert ("<tool_call>" in system) == (model == SMALL_MODEL)
    # Tools withheld (tool_choice "none"): nothing keeps format away.
    await provider.complete(
        request(model, tools=(WEATHER,), response_format=CITY, tool_choice="none")
    )
    assert fake.last_request["format"] == CITY_SCHEMA


@pytest.mark.parametrize("streaming", [False, True])
@pytest.mark.parametrize("model", [TOOL_MODEL, SMALL_MODEL])
async def test_parallel_tool_calls_false_keeps_the_first_call(
    fake: FakeOllama, provider: OllamaProvider, model: str, streaming: bool
) -> None:
    def reply() -> None:
        if model == TOOL_MODEL:
            fake.reply_tool_calls(
                {"name": "get_weather", "arguments": {"city": "Oslo"}}, {"name": "get_time"}
            )
        else:
            fake.reply_text(
                xml_tool_call_text("get_weather", {"city": "Oslo"}, style="xml")
                + "\n"
                + xml_tool_call_text("get_time", {}, style="xml")
            )

    reply()
    req = request(model, tools=(WEATHER, CLOCK), parallel_tool_calls=False)
    response = await respond(provider, req, streaming=streaming)
    assert [(c.name, c.arguments) for c in response.tool_calls] == [
        ("get_weather", {"city": "Oslo"})
    ]
    assert response.finish_reason == "tool_calls"
    assert "parallel_tool_calls" not in fake.last_request  # Ollama has no such option
    reply()
    response = await respond(provider, request(model, tools=(WEATHER, CLOCK)), streaming=streaming)
    assert [c.name for c in response.tool_calls] == ["get_weather", "get_time"]


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({"model": "nope", "messages": []}, 404, 'model "nope" not found'),
        ({"model": SMALL_MODEL, "messages": [], "format": "xml"}, 400, "invalid format"),
        ({"model": SMALL_MODEL, "messages": [], "format": ["json"]}, 400, "invalid format"),
        (
            {
                "model": TOOL_MODEL,
                "messages": [],
                "format": "json",
                "tools": [_tool_json_for_fake()],
            },
            400,
            "format with tools",
        ),
        ({"model": SMALL_MODEL, "messages": [], "options": {"top_p": "0.5"}}, 400, "top_p"),
        ({"messages": []}, 400, "model is required"),
        ({"model": SMALL_MODEL, "messages": [{"role": "bot", "content": "x"}]}, 400, "role"),
        ({"model": SMALL_MODEL, "messages": [{"role": "user", "content": 1}]}, 400, "string"),
        (
            {"model": SMALL_MODEL, "messages": [{"role": "user", "content": "x", "name": "a"}]},
            400,
            "unknown fields",
        ),
        ({"model": SMALL_MODEL, "messages": [], "temperature": 1}, 400, "unknown fields"),
        (
            {"model": TOOL_MODEL, "messages": [{"role": "tool", "content": "x"}]},
            400,
            "must follow an assistant message with tool_calls",
        ),
        (
            {
                "model": TOOL_MODEL,
                "messages": [
                    {
                        "role": "assistant",
                        "content": "",
                        "tool_calls": [{"function": {"name": "f", "arguments": "{}"}}],
                    }
                ],
            },
            400,
            "cannot unmarshal string",
        ),
        (
            {"model": SMALL_MODEL, "messages": [], "tools": [_tool_json_for_fake()]},
            400,
            "registry.ollama.ai/library/gemma2 does not support tools",
        ),
        (
            {"model": TOOL_MODEL, "messages": [], "tools": [{"name": "f"}]},
            400,
            "invalid tool",
        ),
        (
            {"model": TOOL_MODEL, "messages": [], "options": {"num_predict": "5"}},
            400,
            "num_predict",
        ),
    ],
)
async def test_fake_rejects_what_ollama_rejects(
    server: tuple[FakeOllama, str], fake: FakeOllama, body: dict[str, Any], status: int, error: str
) -> None:
    async with httpx.AsyncClient(base_url=server[1]) as client:
        response = await client.post("/api/chat", json=body)
    assert response.status_code == status
    assert error in response.json()["error"]


async def test_fake_metadata_endpoints_and_default_stream(
    server: tuple[FakeOllama, str], fake: FakeOllama
) -> None:
    async with httpx.AsyncClient(base_url=server[1]) as client:
        tags = (await client.get("/api/tags")).json()
        version = (await client.get("/api/version")).json()
        body = {"model": "gemma2:2b", "messages": [{"role": "user", "content": "yo"}]}
        streamed = await client.post("/api/chat", json=body)
        missing = await client.get("/api/nothing")
    assert [m["name"] for m in tags["models"]] == [TOOL_MODEL, SMALL_MODEL]
    assert version["version"]
    assert streamed.headers["content-type"] == "application/x-ndjson"  # stream defaults on
    lines = [json.loads(line) for line in streamed.text.splitlines()]
    assert "".join(line["message"]["content"] for line in lines) == "echo: yo"
    assert lines[-1]["done"] is True
    assert {"prompt_eval_count", "eval_count", "done_reason", "total_duration"} <= set(lines[-1])
    assert missing.status_code == 404


# --- unreadable replies (a 200 we cannot read is a retryable error, never an answer) -----

#: A proxy's error page: much longer than any error message may be.
HTML_PAGE = "<html><body><h1>502 Bad Gateway</h1>" + "<p>upstream</p>" * 400 + "</body></html>"
HI = '{"role": "assistant", "content": "hi"}'


def unreadable(error: ProviderBadResponse, problem: str) -> None:
    assert error.retryable and error.code == "provider_bad_response"
    assert error.provider == "ollama"
    assert error.message.startswith("ollama: unreadable reply: "), error.message
    assert problem in error.message, error.message
    assert len(error.message) <= 200


async def drain(events: AsyncIterator[StreamEvent], into: list[StreamEvent]) -> None:
    async for event in events:
        into.append(event)


def lines(*chunks: dict[str, Any] | str) -> str:
    return "".join((c if isinstance(c, str) else json.dumps(c)) + "\n" for c in chunks)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (HTML_PAGE, "the body is not JSON"),
        ('{"model": "llama3.1:8b", "message": {"role": "assis', "the body is not JSON"),
        ("", "the body is not JSON"),
        ("[]", "the reply is not an object"),
        ('{"model": "llama3.1:8b", "done": true}', "'message' is not an object"),
        ('{"message": null, "done": true}', "'message' is not an object"),
        ('{"message": {"content": ["hi"]}, "done": true}', "message.content is not str"),
        (f'{{"message": {HI}, "done": false}}', "not done"),
        (f'{{"message": {HI}}}', "not done"),
        (f'{{"message": {HI}, "done": "yes"}}', "'done' is not bool"),
        (f'{{"message": {HI}, "done": true, "done_reason": "load"}}', "unknown done_reason"),
        (
            '{"message": {"content": "", "tool_calls": [{"function": {"arguments": {}}}]}, '
            '"done": true}',
            "a tool call has no name",
        ),
    ],
    ids=[
        "html",
        "truncated",
        "empty",
        "array",
        "no-message",
        "message-null",
        "content-list",
        "done-false",
        "no-done",
        "done-string",
        "done-reason-load",
        "call-no-name",
    ],
)
async def test_unreadable_reply_is_a_retryable_error(
    fake: FakeOllama, provider: OllamaProvider, body: str, problem: str
) -> None:
    fake.reply_malformed(body)
    with pytest.raises(ProviderBadResponse) as info:
        await provider.complete(request())
    unreadable(info.value, problem)
    assert info.value.status == 200
    assert "upstream</p><p>upstream" not in info.value.message  # never the whole body


@pytest.mark.parametrize(
    ("reply", "problem", "shown"),
    [
        (Reply(content="Hello there, my friend", cut=0), "before its final", ""),
        (Reply(content="Hello there, my friend", cut=2), "before its final", "Hello there,"),
        (
            Reply(
                content="Let me see",
                tool_calls=[{"function": {"name": "get_weather", "arguments": {}}}],
                cut=3,
            ),
            "before its final",
            "Let me see",
        ),
        (Reply(body=HTML_PAGE), "a stream line is not JSON", ""),
        (
            Reply(body=lines({"message": {"content": "Hi"}, "done": False}, "{tru")),
            "not JSON",
            "Hi",
        ),
        (Reply(body=lines("[1]")), "the reply is not an object", ""),
        (Reply(body=lines({"message": {"content": 5}, "done": False})), "not str", ""),
        (Reply(body=lines({"message": {"content": "Hi"}, "done": 1})), "'done' is not bool", ""),
        (
            Reply(body=lines({"message": {"content": "Hi"}, "done": True, "done_reason": "?"})),
            "unknown done_reason",
            "",  # the line is checked before its text is used
        ),
    ],
    ids=[
        "cut-before-text",
        "cut-in-text",
        "cut-after-tool-call",
        "html",
        "truncated-line",
        "array-line",
        "content-int",
        "done-int",
        "unknown-done-reason",
    ],
)
async def test_stream_without_its_done_line_is_a_retryable_error(
    fake: FakeOllama, provider: OllamaProvider, reply: Reply, problem: str, shown: str
) -> None:
    fake.reply(reply)
    events: list[StreamEvent] = []
    with pytest.raises(ProviderBadResponse) as info:
        await drain(provider.stream(request()), events)
    unreadable(info.value, problem)
    assert not any(isinstance(e, ResponseDone) for e in events)
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == shown
