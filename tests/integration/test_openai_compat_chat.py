"""``/v1/models`` and ``/v1/chat/completions`` through the official ``openai`` SDK.

The server's ``openai`` provider points at the strict fake of OpenAI's Chat Completions
API (:mod:`tests.fakes.openai_fake`), so every test checks both ends: what the SDK gets
back from this server (validated strictly against the SDK's own types) and what this
server sent on to the vendor.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from openai.types import Model
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from ai_agents.api.testing import RunningApi, running_api
from ai_agents.config import Settings
from ai_agents.providers.base import ProviderRequest, ProviderSettings
from ai_agents.providers.openai import OpenAIChatProvider
from ai_agents.testing import FunctionProvider
from tests.fakes.openai_fake import OpenAIFake
from tests.fakes.script import Reply, ScriptedError, call
from tests.fakes.server import serve
from tests.prometheus_text import sample

pytestmark = pytest.mark.integration

JSON = dict[str, Any]
MODEL = "gpt-5.4"  # a current (not deprecated) OpenAI model of the registry
TENANT = "acme"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
CITY_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
    "required": ["city", "population"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def vendor() -> Iterator[tuple[OpenAIFake, str]]:
    """One fake OpenAI per module (starting uvicorn per test is slow)."""
    fake = OpenAIFake(api_key="sk-vendor")
    with serve(fake) as url:
        yield fake, url + "/v1"


@pytest.fixture
def fake(vendor: tuple[OpenAIFake, str]) -> OpenAIFake:
    vendor[0].script.reset()
    return vendor[0]


@pytest.fixture
def backup() -> FunctionProvider:
    return FunctionProvider(lambda request: "from the backup")


@pytest.fixture
def api(
    settings: Settings,
    redis_cleanup: None,
    vendor: tuple[OpenAIFake, str],
    fake: OpenAIFake,
    backup: FunctionProvider,
) -> Iterator[RunningApi]:
    upstream = OpenAIChatProvider(
        ProviderSettings(base_url=vendor[1], api_key="sk-vendor", timeout=5)
    )
    with running_api(settings, providers={"openai": upstream, "backup": backup}) as running:
        yield running


@pytest.fixture
def client(api: RunningApi) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=api.url + "/v1", api_key=api.create_key(TENANT), max_retries=0, timeout=30
    ) as c:
        yield c


def create(client: openai.OpenAI, **kwargs: Any) -> tuple[ChatCompletion, JSON]:
    """A chat completion through the SDK, validated strictly, and its raw JSON."""
    raw = client.chat.completions.with_raw_response.create(**kwargs)
    body: JSON = raw.http_response.json()
    completion = ChatCompletion.model_validate(body, strict=True)
    assert completion == raw.parse()
    return completion, body


def raw_stream(api: RunningApi, client: openai.OpenAI, body: JSON) -> list[JSON | str]:
    """The ``data:`` payloads of a streamed completion, each chunk validated strictly."""
    out: list[JSON | str] = []
    headers = {"Authorization": f"Bearer {client.api_key}"}
    url = api.url + "/v1/chat/completions"
    with httpx.stream("POST", url, json=body, headers=headers, timeout=30) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if not line:
                continue
            assert line.startswith("data: "), line
            data = line.removeprefix("data: ")
            if data == "[DONE]":
                out.append(data)
                continue
            chunk = json.loads(data)
            ChatCompletionChunk.model_validate(chunk, strict=True)
            out.append(chunk)
    return out


def usage_of(api: RunningApi, user: str) -> tuple[int, int]:
    totals = api.call(api.store.for_tenant(TENANT).usage(user_id=user))
    return totals.input_tokens, totals.output_tokens


# --- models ---------------------------------------------------------------------------


def test_models_list_and_retrieve(client: openai.OpenAI) -> None:
    raw = client.models.with_raw_response.list()
    body = raw.http_response.json()
    assert body["object"] == "list"
    models = [Model.model_validate(item, strict=True) for item in body["data"]]
    ids = [m.id for m in models]
    assert MODEL in ids
    assert "gpt-4o-mini" not in ids  # deprecated: left out
    assert len(ids) == len(set(ids))
    assert {m.id for m in client.models.list()} == set(ids)  # the SDK's own paging
    assert all(m.object == "model" and m.owned_by for m in models)
    gpt = next(m for m in models if m.id == MODEL)
    assert gpt.owned_by == "openai"

    retrieved = client.models.with_raw_response.retrieve(MODEL).http_response.json()
    assert Model.model_validate(retrieved, strict=True) == gpt
    # Ids are the names /v1 takes back as ``model``, a slash included.
    slashed = next(m for m in models if "/" in m.id)
    assert client.models.retrieve(slashed.id) == slashed
    assert client.models.retrieve("gpt-4o-mini").id == "gpt-4o-mini"  # still callable


def test_unknown_model_is_not_found(client: openai.OpenAI) -> None:
    for name in ("no-such-model", "openai/no-such-model", "gpt-0-imaginary"):
        with pytest.raises(openai.NotFoundError) as caught:
            client.models.retrieve(name)
        error = caught.value.body
        assert isinstance(error, dict) and name in error["message"]


# --- chat completions -----------------------------------------------------------------


def test_completion(client: openai.OpenAI, fake: OpenAIFake, api: RunningApi) -> None:
    completion, body = create(
        client,
        model=MODEL,
        messages=[
            {"role": "developer", "content": "Be terse."},
            {"role": "user", "content": [{"type": "text", "text": "hello "}, {"type": "text", "text": "there"}]},
        ],
        temperature=0.5,
        max_completion_tokens=100,
        stop=["END"],
        seed=7,
        user="user-1",
        metadata={"purpose": "test"},
    )  # fmt: skip
    sent = fake.requests[-1]
    assert sent["messages"] == [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "hello there"},
    ]
    assert sent["model"] == MODEL and sent["temperature"] == 0.5 and sent["stop"] == ["END"]
    assert sent["max_completion_tokens"] == 100

    assert completion.id.startswith("chatcmpl-") and len(completion.id) > len("chatcmpl-")
    assert completion.object == "chat.completion" and completion.model == MODEL
    assert completion.created > 1_700_000_000
    [choice] = completion.choices
    assert choice.index == 0 and choice.finish_reason == "stop"
    assert choice.message.role == "assistant" and choice.message.content == "echo: hello there"
    assert body["choices"][0]["message"]["refusal"] is None
    assert body["choices"][0]["logprobs"] is None
    assert "tool_calls" not in body["choices"][0]["message"]
    usage = completion.usage
    assert usage is not None and usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens

    # Accounted: the user's usage totals and the Prometheus counters.
    assert usage_of(api, "user-1") == (usage.prompt_tokens, usage.completion_tokens)
    metrics = api.app.state.metrics.render()
    labels = {"provider": "openai", "model": "gpt-5.4", "stream": "false"}
    assert sample(metrics, "ai_agents_chat_completions_total", **labels) == 1


def test_stream(client: openai.OpenAI, fake: OpenAIFake, api: RunningApi) -> None:
    fake.script.push(Reply.text("Streaming works well."))
    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "stream please"}],
            stream=True,
            stream_options={"include_usage": True},
            user="user-2",
        )
    )
    assert fake.requests[-1]["messages"] == [{"role": "user", "content": "stream please"}]
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Streaming works well."
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 1
    finish = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finish[-1] == "stop" and set(finish[:-1]) == {None}
    *body, last = chunks
    assert last.choices == [] and last.usage is not None and last.usage.total_tokens > 0
    assert all(c.usage is None for c in body)
    assert len({c.id for c in chunks}) == 1 and chunks[0].id.startswith("chatcmpl-")
    assert {c.model for c in chunks} == {MODEL}
    assert usage_of(api, "user-2") == (last.usage.prompt_tokens, last.usage.completion_tokens)
    metrics = api.app.state.metrics.render()
    assert sample(metrics, "ai_agents_chat_completions_total", stream="true") == 1


def test_stream_wire_format(client: openai.OpenAI, fake: OpenAIFake, api: RunningApi) -> None:
    fake.script.push(Reply.text("Two words."))
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": True}
    events = raw_stream(api, client, body)
    assert events[-1] == "[DONE]"
    chunks = [e for e in events[:-1] if isinstance(e, dict)]
    assert len(chunks) == len(events) - 1
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert "usage" not in chunks[-1]  # without stream_options.include_usage: no usage chunk
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)


def test_tool_call_round_trip(client: openai.OpenAI, fake: OpenAIFake) -> None:
    fake.script.push(
        Reply.tool_calls(call("get_weather", {"city": "Paris"})),
        Reply.text("It is sunny in Paris."),
    )
    messages: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    first, body = create(
        client, model=MODEL, messages=messages, tools=[WEATHER], tool_choice="auto",
        parallel_tool_calls=False,
    )  # fmt: skip
    sent = fake.requests[-1]
    assert sent["tools"][0]["function"]["name"] == "get_weather"
    assert sent["parallel_tool_calls"] is False
    [choice] = first.choices
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    [tool_call] = choice.message.tool_calls or []
    assert tool_call.type == "function" and tool_call.id
    assert tool_call.function.name == "get_weather"
    assert json.loads(tool_call.function.arguments) == {"city": "Paris"}

    messages += [
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": tool_call.id, "content": "sunny, 24C"},
    ]
    second, _ = create(client, model=MODEL, messages=messages, tools=[WEATHER])
    assert second.choices[0].message.content == "It is sunny in Paris."
    assert second.choices[0].finish_reason == "stop"
    # The strict fake accepted the history: the result answers the call it was given.
    assistant, result = fake.requests[-1]["messages"][-2:]
    assert assistant["role"] == "assistant"
    [echoed] = assistant["tool_calls"]
    assert echoed["function"]["name"] == "get_weather"
    assert json.loads(echoed["function"]["arguments"]) == {"city": "Paris"}
    assert result == {"role": "tool", "tool_call_id": echoed["id"], "content": "sunny, 24C"}


def test_streamed_tool_call(client: openai.OpenAI, fake: OpenAIFake) -> None:
    fake.script.push(Reply.tool_calls(call("get_weather", {"city": "Oslo"}), text="Checking."))
    with client.chat.completions.stream(
        model=MODEL,
        messages=[{"role": "user", "content": "Weather in Oslo?"}],
        tools=[WEATHER],  # type: ignore[list-item]
    ) as stream:
        final = stream.get_final_completion()
    [choice] = final.choices
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Checking."
    [tool_call] = choice.message.tool_calls or []
    assert tool_call.function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(tool_call.function.arguments) == {"city": "Oslo"}  # type: ignore[union-attr]


def test_response_format_json_schema(client: openai.OpenAI, fake: OpenAIFake) -> None:
    fmt = {
        "type": "json_schema",
        "json_schema": {"name": "city_info", "schema": CITY_SCHEMA, "strict": True},
    }
    completion, _ = create(
        client,
        model=MODEL,
        messages=[{"role": "user", "content": "Tell me about Paris."}],
        response_format=fmt,
    )
    assert fake.requests[-1]["response_format"] == fmt
    answer = json.loads(completion.choices[0].message.content or "")
    assert set(answer) == {"city", "population"} and isinstance(answer["population"], int)


def test_fallback_when_the_primary_is_down(
    client: openai.OpenAI, fake: OpenAIFake, backup: FunctionProvider
) -> None:
    fake.script.push(*[Reply.error(503, message="overloaded")] * 10)
    completion, _ = create(
        client,
        model=MODEL,
        messages=[{"role": "user", "content": "anyone?"}],
        extra_body={"fallbacks": ["backup/m1"]},
    )
    assert completion.choices[0].message.content == "from the backup"
    assert completion.model == "backup/m1"
    [request] = backup.requests
    assert isinstance(request, ProviderRequest) and request.messages[-1].text == "anyone?"


# --- errors ---------------------------------------------------------------------------


def _error(exc: openai.APIStatusError) -> JSON:
    body = exc.response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]  # type: ignore[no-any-return]


def test_unknown_parameter(client: openai.OpenAI, fake: OpenAIFake) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "x"}], extra_body={"foo": 1}
        )
    error = _error(caught.value)
    assert error["message"] == "Unrecognized request argument supplied: foo"
    assert error["param"] == "foo" and error["type"] == "invalid_request_error"
    assert fake.requests == []


def test_several_choices_are_refused(client: openai.OpenAI, fake: OpenAIFake) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "x"}], n=2
        )
    assert _error(caught.value)["param"] == "n"
    assert fake.requests == []


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"model": "no-such-model"}, "model"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
        ({"temperature": 3}, "temperature"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"stream_options": {"include_usage": True}}, "stream_options"),
        (
            {"messages": [{"role": "tool", "tool_call_id": "call_1", "content": "x"}]},
            "messages[0].tool_call_id",
        ),
        ({"response_format": {"type": "yaml"}}, "response_format.type"),
    ],
)
def test_invalid_bodies(client: openai.OpenAI, fake: OpenAIFake, change: JSON, param: str) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "x"}], **change}
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(**body)
    assert _error(caught.value)["param"] == param
    assert fake.requests == []


def test_bad_key(api: RunningApi, fake: OpenAIFake) -> None:
    with openai.OpenAI(base_url=api.url + "/v1", api_key="sk-wrong", max_retries=0) as bad:
        with pytest.raises(openai.AuthenticationError) as caught:
            bad.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}])
        assert _error(caught.value)["code"] == "invalid_api_key"
        with pytest.raises(openai.AuthenticationError):
            bad.models.list()
    assert fake.requests == []


def test_vendor_error_is_reshaped(client: openai.OpenAI, fake: OpenAIFake) -> None:
    fake.script.push(Reply.error(400, message="the vendor refused"))
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}])
    assert caught.value.status_code == 502
    assert _error(caught.value)["type"] == "server_error"


def test_error_after_the_stream_started(client: openai.OpenAI, fake: OpenAIFake) -> None:
    broken = ScriptedError(500, "vendor broke", in_stream=True)
    fake.script.push(Reply(content="Half an answer", failure=broken))
    received: list[str] = []
    chunks = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "x"}], stream=True
    )
    with pytest.raises(openai.APIError) as caught:
        received.extend(c.delta.content or "" for chunk in chunks for c in chunk.choices)
    assert "".join(received) == "Half an answer"  # sent before the failure
    error = caught.value.body
    assert isinstance(error, dict) and error["type"] == "server_error"
    assert "openai" in error["message"]
