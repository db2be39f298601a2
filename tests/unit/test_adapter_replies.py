"""Fuzzing the adapters' reply readers: whatever a vendor sends, the answer is a valid
response or the retryable ProviderBadResponse, never another exception.

Valid replies come from the vendor fakes (their own JSON and stream builders, run in
memory) or, for Ollama, from its documented shapes; hypothesis then truncates, reorders
and mistypes them. Two levels:

- the pure readers (:func:`read_completion`, :class:`ChunkReader`, :func:`read_message`,
  :class:`EventReader`, :func:`read_chunk`) on decoded JSON;
- the whole adapter, through the vendor's SDK (or httpx for Ollama) over an in-memory
  mock transport, on raw bytes: truncated bodies, garbage lines, cut streams.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Callable, Iterator
from typing import Any, get_args

import anthropic
import httpx
import httpx2
import openai
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ai_agents.errors import ProviderBadResponse, ProviderOverloaded
from ai_agents.messages import ToolCall, user
from ai_agents.providers.anthropic import AnthropicProvider, EventReader, _AnswerTool, read_message
from ai_agents.providers.base import (
    FinishReason,
    Provider,
    ProviderRequest,
    ProviderResponse,
    ProviderSettings,
    ResponseDone,
    ResponseFormat,
    StreamEvent,
    TextDelta,
    ToolCallReady,
)
from ai_agents.providers.ollama import OllamaProvider, read_chunk
from ai_agents.providers.openai import ChunkReader, OpenAIChatProvider, read_completion
from ai_agents.providers.retry import is_retryable
from tests.fakes.anthropic_fake import AnthropicFake
from tests.fakes.openai_fake import OpenAIFake
from tests.fakes.script import Reply, ScriptedCall

MODEL = "model-x"
PROMPT = [{"role": "user", "content": "hi"}]
FUZZ = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
WIRE = settings(FUZZ, max_examples=100)

# --- what a valid answer looks like ------------------------------------------------------


def assert_valid(response: ProviderResponse, provider: str) -> None:
    assert isinstance(response, ProviderResponse)
    assert isinstance(response.content, str)
    assert response.finish_reason in get_args(FinishReason)
    for call in response.tool_calls:
        assert isinstance(call, ToolCall)
        assert isinstance(call.id, str) and call.id
        assert isinstance(call.name, str) and call.name
        assert isinstance(call.arguments, dict)
    usage = response.usage
    for count in (usage.input_tokens, usage.output_tokens):
        assert isinstance(count, int) and not isinstance(count, bool) and count >= 0
    assert response.provider == provider
    assert isinstance(response.model, str) and response.model
    assert response.raw_id is None or isinstance(response.raw_id, str)


def assert_valid_stream(events: list[StreamEvent], provider: str) -> ProviderResponse:
    *head, last = events
    assert isinstance(last, ResponseDone)
    for item in head:
        assert isinstance(item, TextDelta | ToolCallReady)
        if isinstance(item, TextDelta):
            assert isinstance(item.text, str) and item.text
    assert_valid(last.response, provider)
    return last.response


def assert_bad(exc: ProviderBadResponse, provider: str) -> None:
    assert exc.retryable and is_retryable(exc)
    assert exc.code == "provider_bad_response"
    assert exc.message.startswith(f"{provider}: unreadable reply: ")
    assert len(exc.message) <= ProviderBadResponse.MAX_MESSAGE


def _outcome(result: object) -> None:
    """Label the example for ``--hypothesis-show-statistics`` (both outcomes must occur)."""
    event("read" if result is not None else "bad reply")


def test_the_error_is_short_retryable_and_a_502() -> None:
    from ai_agents.api.errors import status_of

    error = ProviderBadResponse.of("openai", "the body is not JSON", got="<html>" + "x" * 10_000)
    assert error.retryable and is_retryable(error)
    assert error.status == 200 and error.details["provider"] == "openai"
    assert error.message.startswith("openai: unreadable reply: the body is not JSON (got '<html>")
    assert len(error.message) <= ProviderBadResponse.MAX_MESSAGE
    assert status_of(error) == 502  # the vendor's reply was bad, not our service


# --- hypothesis: JSON values and mutations -----------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**40), max_value=2**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
arguments = st.dictionaries(
    st.sampled_from(["city", "q", "n"]), st.integers(0, 9) | st.text(max_size=5), max_size=2
)
scripted_calls = st.lists(
    st.builds(ScriptedCall, name=st.sampled_from(["get_weather", "lookup"]), arguments=arguments),
    max_size=2,
)


def _paths(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, (*path, index))


def mutate(data: st.DataObject, value: Any) -> Any:
    """*value* with one part deleted, replaced by any JSON value, or given a wrong type."""
    value = copy.deepcopy(value)
    path = data.draw(st.sampled_from(list(_paths(value))))
    action = data.draw(st.sampled_from(["delete", "replace", "retype"]))
    if not path:
        return data.draw(json_values)
    parent = value
    for key in path[:-1]:
        parent = parent[key]
    key = path[-1]
    if action == "delete":
        del parent[key]
    elif action == "replace":
        parent[key] = data.draw(json_values)
    else:
        old = parent[key]
        parent[key] = data.draw(json_values.filter(lambda new: type(new) is not type(old)))
    return value


def mutate_stream(data: st.DataObject, chunks: list[Any]) -> list[Any]:
    """*chunks* truncated, reordered, thinned, repeated and/or with a mutated chunk."""
    for _ in range(data.draw(st.integers(1, 3))):
        action = data.draw(st.sampled_from(["truncate", "reorder", "drop", "repeat", "mutate"]))
        if not chunks:
            break
        index = data.draw(st.integers(0, len(chunks) - 1))
        if action == "truncate":
            chunks = chunks[:index]
        elif action == "reorder":
            chunks = data.draw(st.permutations(chunks))
        elif action == "drop":
            chunks = chunks[:index] + chunks[index + 1 :]
        elif action == "repeat":
            chunks = [*chunks[: index + 1], chunks[index], *chunks[index + 1 :]]
        else:
            chunks = [*chunks[:index], mutate(data, chunks[index]), *chunks[index + 1 :]]
    return chunks


# --- valid replies, from the fakes -------------------------------------------------------


def _asgi_body(run: Callable[[Any], Any]) -> str:
    """The body an ASGI answer function sends (run in memory)."""
    parts: list[bytes] = []

    async def send(message: Any) -> None:
        if message["type"] == "http.response.body":
            parts.append(message.get("body", b""))

    asyncio.run(run(send))
    return b"".join(parts).decode()


def sse_data(text: str) -> list[Any]:
    """The decoded ``data:`` payloads of an SSE text (without ``[DONE]``)."""
    return [
        json.loads(line[6:])
        for line in text.splitlines()
        if line.startswith("data: ") and line[6:] != "[DONE]"
    ]


def openai_body(stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"model": MODEL, "messages": PROMPT}
    if stream:
        body.update(stream=True, stream_options={"include_usage": True})
    return body


@st.composite
def openai_replies(draw: st.DrawFn) -> Reply:
    calls = tuple(draw(scripted_calls))
    finish = draw(st.sampled_from([None, "stop", "length", "content_filter"]))
    return Reply(content=draw(st.text(max_size=20)), calls=calls, finish_reason=finish)


def openai_completion(reply: Reply) -> dict[str, Any]:
    return OpenAIFake()._completion(openai_body(False), reply)


def openai_stream_text(reply: Reply) -> str:
    fake = OpenAIFake()
    return _asgi_body(lambda send: fake._stream(send, openai_body(True), reply))


ANSWER = _AnswerTool.of(
    ProviderRequest(
        model=MODEL,
        system_prompt="",
        messages=[user("hi")],
        response_format=ResponseFormat(type="json_schema", name="city", schema={"type": "object"}),
    )
)
WRAPPED = _AnswerTool.of(
    ProviderRequest(
        model=MODEL,
        system_prompt="",
        messages=[user("hi")],
        response_format=ResponseFormat(
            type="json_schema", name="cities", schema={"type": "array", "items": {}}
        ),
    )
)
answer_tools = st.sampled_from([None, ANSWER, WRAPPED])


@st.composite
def anthropic_replies(draw: st.DrawFn, answer: _AnswerTool | None) -> Reply:
    names = ["get_weather"] + ([answer.name] if answer is not None else [])
    calls = draw(
        st.lists(
            st.builds(ScriptedCall, name=st.sampled_from(names), arguments=arguments), max_size=2
        )
    )
    finish = draw(st.sampled_from([None, "end_turn", "max_tokens", "refusal", "pause_turn"]))
    return Reply(content=draw(st.text(max_size=20)), calls=tuple(calls), finish_reason=finish)


ANTHROPIC_BODY = {"model": MODEL, "max_tokens": 100, "messages": PROMPT}


def anthropic_message(reply: Reply) -> dict[str, Any]:
    return AnthropicFake()._message(ANTHROPIC_BODY, reply)


def anthropic_stream_text(reply: Reply) -> str:
    fake = AnthropicFake()
    return _asgi_body(lambda send: fake._stream(send, {**ANTHROPIC_BODY, "stream": True}, reply))


@st.composite
def ollama_lines(draw: st.DrawFn) -> list[dict[str, Any]]:
    """A valid ``/api/chat`` stream (the last line is the non-streaming body's shape)."""
    pieces = draw(st.lists(st.text(min_size=1, max_size=6), max_size=4))
    calls = [{"function": {"name": c.name, "arguments": c.arguments}} for c in draw(scripted_calls)]
    head = {"model": MODEL, "created_at": "2025-01-01T00:00:00Z", "done": False}
    lines = [{**head, "message": {"role": "assistant", "content": p}} for p in pieces]
    if calls:
        lines.append({**head, "message": {"role": "assistant", "content": "", "tool_calls": calls}})
    final = {
        **head,
        "message": {"role": "assistant", "content": ""},
        "done": True,
        "done_reason": draw(st.sampled_from([None, "stop", "length"])),
        "prompt_eval_count": draw(st.none() | st.integers(0, 500)),
        "eval_count": 7,
    }
    return [*lines, final]


def ollama_complete_body(lines: list[dict[str, Any]]) -> dict[str, Any]:
    content = "".join(line["message"]["content"] for line in lines)
    calls = [c for line in lines for c in line["message"].get("tool_calls", [])]
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:
        message["tool_calls"] = calls
    return {**lines[-1], "message": message}


# --- level 1: the pure readers -----------------------------------------------------------


def openai_complete(data: Any) -> ProviderResponse | None:
    try:
        response = read_completion(data, provider="openai", model=MODEL, prompt=PROMPT)
    except ProviderBadResponse as exc:
        assert_bad(exc, "openai")
        return None
    assert_valid(response, "openai")
    return response


def openai_stream(chunks: list[Any]) -> ProviderResponse | None:
    reader = ChunkReader("openai", MODEL)
    events: list[StreamEvent] = []
    try:
        for chunk in chunks:
            events += reader.feed(chunk)
        events.append(ResponseDone(reader.result(PROMPT)))
    except ProviderBadResponse as exc:
        assert_bad(exc, "openai")
        return None
    return assert_valid_stream(events, "openai")


@FUZZ
@given(openai_replies(), st.data())
def test_openai_completion_reader(reply: Reply, data: st.DataObject) -> None:
    payload = openai_completion(reply)
    response = openai_complete(payload)
    assert response is not None and response.content == reply.content
    assert len(response.tool_calls) == len(reply.calls)
    for _ in range(data.draw(st.integers(1, 3))):
        payload = mutate(data, payload)
    _outcome(openai_complete(payload))


@FUZZ
@given(openai_replies(), st.data())
def test_openai_stream_reader(reply: Reply, data: st.DataObject) -> None:
    chunks = sse_data(openai_stream_text(reply))
    response = openai_stream(chunks)
    assert response is not None and response.content == reply.content
    assert len(response.tool_calls) == len(reply.calls)
    assert openai_stream(chunks[:-2]) is None  # no finish chunk: never an answer
    _outcome(openai_stream(mutate_stream(data, chunks)))


def anthropic_complete(data: Any, answer: _AnswerTool | None) -> ProviderResponse | None:
    try:
        response = read_message(data, provider="anthropic", model=MODEL, answer=answer)
    except ProviderBadResponse as exc:
        assert_bad(exc, "anthropic")
        return None
    assert_valid(response, "anthropic")
    return response


def anthropic_stream(chunks: list[Any], answer: _AnswerTool | None) -> ProviderResponse | None:
    reader = EventReader("anthropic", MODEL, answer)
    events: list[StreamEvent] = []
    try:
        for chunk in chunks:
            events += reader.feed(chunk)
        events += reader.end()
    except ProviderBadResponse as exc:
        assert_bad(exc, "anthropic")
        return None
    return assert_valid_stream(events, "anthropic")


@FUZZ
@given(answer_tools.flatmap(lambda a: st.tuples(st.just(a), anthropic_replies(a))), st.data())
def test_anthropic_message_reader(
    case: tuple[_AnswerTool | None, Reply], data: st.DataObject
) -> None:
    answer, reply = case
    payload = anthropic_message(reply)
    response = anthropic_complete(payload, answer)
    assert response is not None
    for _ in range(data.draw(st.integers(1, 3))):
        payload = mutate(data, payload)
    _outcome(anthropic_complete(payload, answer))


@FUZZ
@given(answer_tools.flatmap(lambda a: st.tuples(st.just(a), anthropic_replies(a))), st.data())
def test_anthropic_event_reader(
    case: tuple[_AnswerTool | None, Reply], data: st.DataObject
) -> None:
    answer, reply = case
    chunks = sse_data(anthropic_stream_text(reply))
    complete = anthropic_complete(anthropic_message(reply), answer)
    streamed = anthropic_stream(chunks, answer)
    assert streamed is not None and complete is not None
    assert (streamed.content, streamed.finish_reason) == (complete.content, complete.finish_reason)
    assert [c.name for c in streamed.tool_calls] == [c.name for c in complete.tool_calls]
    assert anthropic_stream(chunks[:-1], answer) is None  # no message_stop: never an answer
    _outcome(anthropic_stream(mutate_stream(data, chunks), answer))


def ollama_read(lines: list[Any]) -> tuple[str, list[tuple[str, dict[str, Any]]]] | None:
    """What the adapter's loop does with the lines: text and calls up to a done line."""
    text: list[str] = []
    calls: list[ToolCall] = []
    try:
        for line in lines:
            piece, found, done = read_chunk(line, provider="ollama")
            text.append(piece)
            calls += found
            if done:
                for call in calls:
                    assert call.id and call.name and isinstance(call.arguments, dict)
                return "".join(text), [(c.name, c.arguments) for c in calls]
    except ProviderBadResponse as exc:
        assert_bad(exc, "ollama")
        return None
    except ProviderOverloaded:  # an {"error": ...} line: the model runner failed
        assert any(isinstance(line, dict) and line.get("error") for line in lines)
        return None
    return None


@FUZZ
@given(ollama_lines(), st.data())
def test_ollama_chunk_reader(lines: list[dict[str, Any]], data: st.DataObject) -> None:
    read = ollama_read(lines)
    assert read is not None
    assert read[0] == "".join(line["message"]["content"] for line in lines)
    assert ollama_read([ollama_complete_body(lines)]) == read
    assert ollama_read(lines[:-1]) is None
    _outcome(ollama_read(mutate_stream(data, lines)))
    _outcome(ollama_read([mutate(data, ollama_complete_body(lines))]))


# --- level 2: raw bytes through the whole adapter ----------------------------------------


@st.composite
def damaged(draw: st.DrawFn, text: str) -> str:
    """*text* cut short, with garbage lines put in, or with a span replaced."""
    action = draw(st.sampled_from(["cut", "garbage", "splice"]))
    at = draw(st.integers(0, len(text)))
    if action == "cut":
        return text[:at]
    lines = text.split("\n")
    if action == "garbage":
        junk = draw(
            st.sampled_from(["data: {", "data: nope", "data: null", "data: []", "<html>", "\x00"])
            | st.text(max_size=12)
        )
        index = draw(st.integers(0, len(lines)))
        return "\n".join([*lines[:index], junk, *lines[index:]])
    end = draw(st.integers(at, min(len(text), at + 10)))
    return text[:at] + draw(st.text(max_size=6)) + text[end:]


REQUEST = ProviderRequest(model=MODEL, system_prompt="Be terse.", messages=[user("hi")])


async def _call(provider: Provider, stream: bool) -> list[StreamEvent] | ProviderResponse:
    try:
        if stream:
            return [event async for event in provider.stream(REQUEST)]
        return await provider.complete(REQUEST)
    finally:
        await provider.aclose()


def through(make: Callable[[bytes, str], Provider], body: str, stream: bool) -> object:
    """The adapter's answer to a 200 with *body* (``None``: it raised ProviderBadResponse)."""
    content_type = "text/event-stream" if stream else "application/json"
    provider = make(body.encode(), content_type)
    try:
        result = asyncio.run(_call(provider, stream))
    except ProviderBadResponse as exc:
        assert_bad(exc, provider.name)
        return None
    if isinstance(result, list):
        return assert_valid_stream(result, provider.name)
    assert_valid(result, provider.name)
    return result


def _openai(body: bytes, content_type: str) -> Provider:
    transport = httpx2.MockTransport(
        lambda request: httpx2.Response(200, content=body, headers={"content-type": content_type})
    )
    client = openai.AsyncOpenAI(
        api_key="sk-test",
        base_url="http://fake/v1",
        max_retries=0,
        http_client=httpx2.AsyncClient(transport=transport),
    )
    return OpenAIChatProvider(client=client)


def _anthropic(body: bytes, content_type: str) -> Provider:
    transport = httpx2.MockTransport(
        lambda request: httpx2.Response(200, content=body, headers={"content-type": content_type})
    )
    client = anthropic.AsyncAnthropic(
        api_key="ak-test",
        base_url="http://fake",
        max_retries=0,
        http_client=httpx2.AsyncClient(transport=transport),
    )
    return AnthropicProvider(client=client, max_tokens=100)


def _ollama(body: bytes, content_type: str) -> Provider:
    transport = httpx.MockTransport(
        lambda request: httpx.Response(200, content=body, headers={"content-type": content_type})
    )
    client = httpx.AsyncClient(transport=transport, base_url="http://fake")
    return OllamaProvider(
        ProviderSettings(base_url="http://fake"), native_tools=True, client=client
    )


def cut_before_end(data: st.DataObject, text: str, separator: str, terminal: int) -> str:
    """*text* (frames ending with *separator*) cut at a frame boundary before its last
    *terminal* frames: a stream that ends cleanly, without its terminal event."""
    frames = [frame + separator for frame in text.split(separator) if frame]
    return "".join(frames[: data.draw(st.integers(0, len(frames) - terminal))])


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
@WIRE
@given(reply=openai_replies(), data=st.data())
def test_openai_adapter_on_damaged_bytes(stream: bool, reply: Reply, data: st.DataObject) -> None:
    text = openai_stream_text(reply) if stream else json.dumps(openai_completion(reply))
    assert through(_openai, text, stream) is not None
    _outcome(through(_openai, data.draw(damaged(text)), stream))
    if stream:  # the finish chunk, the usage chunk and [DONE] are the terminal frames
        assert through(_openai, cut_before_end(data, text, "\n\n", 3), stream) is None


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
@WIRE
@given(reply=anthropic_replies(None), data=st.data())
def test_anthropic_adapter_on_damaged_bytes(
    stream: bool, reply: Reply, data: st.DataObject
) -> None:
    text = anthropic_stream_text(reply) if stream else json.dumps(anthropic_message(reply))
    assert through(_anthropic, text, stream) is not None
    _outcome(through(_anthropic, data.draw(damaged(text)), stream))
    if stream:  # message_stop is the terminal event
        assert through(_anthropic, cut_before_end(data, text, "\n\n", 1), stream) is None


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
@WIRE
@given(lines=ollama_lines(), data=st.data())
def test_ollama_adapter_on_damaged_bytes(
    stream: bool, lines: list[dict[str, Any]], data: st.DataObject
) -> None:
    if stream:
        text = "".join(json.dumps(line) + "\n" for line in lines)
    else:
        text = json.dumps(ollama_complete_body(lines))
    assert through(_ollama, text, stream) is not None
    _outcome(through(_ollama, data.draw(damaged(text)), stream))
    if stream:  # the done line is the terminal one
        assert through(_ollama, cut_before_end(data, text, "\n", 1), stream) is None
    else:
        not_done = {**ollama_complete_body(lines), "done": False}
        assert through(_ollama, json.dumps(not_done), stream) is None
