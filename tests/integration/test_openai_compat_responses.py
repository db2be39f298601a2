"""``/v1/responses`` and ``/v1/conversations`` through the official ``openai`` SDK against
a running server: chained responses (``previous_response_id``), function tools paused and
resumed with ``function_call_output``, streaming with the Responses events, conversations
that are threads (and threads used as conversations), errors as the SDK's classes, and
every answer checked strictly against the SDK's typed models. The OpenAI Agents SDK runs
an agent with a tool on ``/v1/responses``."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import openai
import pytest
from agents import Agent, OpenAIResponsesModel, Runner, function_tool, set_tracing_disabled
from openai.types.conversations import Conversation, ConversationDeletedResource
from openai.types.conversations.conversation_item_list import ConversationItemList
from openai.types.responses import Response, ResponseItemList

from ai_agents.api.compat import ids
from ai_agents.api.testing import RunningApi
from ai_agents.config import Settings
from ai_agents.providers.base import ProviderRequest
from ai_agents.testing import FunctionProvider, call, calls
from tests.openai_compat import sdk, serve_compat
from tests.openai_shapes import conforms

pytestmark = pytest.mark.filterwarnings("ignore:.*deprecated:DeprecationWarning")
set_tracing_disabled(True)  # the Agents SDK would export traces to OpenAI's servers

MODEL = "scripted/roomy"
WEATHER: Any = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}


class Brain:
    """The test model: each test sets ``answer`` (request -> reply)."""

    def __init__(self) -> None:
        self.answer: Callable[[ProviderRequest], Any] = lambda request: "hello"
        self.provider = FunctionProvider(lambda request: self.answer(request))

    @property
    def requests(self) -> list[ProviderRequest]:
        return self.provider.requests


def seen(request: ProviderRequest) -> list[tuple[str, str]]:
    """(role, text) of the messages a model call was given."""
    return [(m.role, m.text) for m in request.messages]


@pytest.fixture
def brain() -> Brain:
    return Brain()


@pytest.fixture
def api(settings: Settings, redis_cleanup: None, brain: Brain) -> Iterator[RunningApi]:
    with serve_compat(settings, {"scripted": brain.provider}) as running:
        yield running


@pytest.fixture
async def client(api: RunningApi) -> AsyncIterator[openai.AsyncOpenAI]:
    async with sdk(api) as c:
        yield c


#: ``Response`` fields OpenAI's OpenAPI document types without ``null`` and does not
#: require: an unset one is left out (the SDK defaults it to ``None``), never ``null``.
UNSET = ("user", "prompt_cache_options")


def response(raw: Any) -> Response:
    """*raw* checked strictly as the SDK's ``Response``, unset fields absent, not null."""
    assert [k for k in UNSET if k in raw and raw[k] is None] == [], raw
    return conforms(Response, raw, optional=UNSET)


async def create(client: openai.AsyncOpenAI, **body: Any) -> Response:
    """``responses.create``, with the raw JSON checked strictly."""
    raw = await client.responses.with_raw_response.create(**body)
    return response(raw.http_response.json())


# --- create, chain ----------------------------------------------------------------------


async def test_create_answers_and_previous_response_id_continues(
    client: openai.AsyncOpenAI, brain: Brain
) -> None:
    brain.answer = lambda request: f"echo {len(request.messages)}"
    first = await create(client, model=MODEL, input="Hi there", instructions="Be brief.")
    assert first.status == "completed"
    assert first.output_text == "echo 1"
    assert first.id.startswith("resp_") and first.instructions == "Be brief."
    assert first.usage is not None and first.usage.total_tokens > 0
    assert brain.requests[0].system_prompt == "Be brief."

    second = await create(client, model=MODEL, input="And again?", previous_response_id=first.id)
    assert second.output_text == "echo 3"
    assert second.previous_response_id == first.id
    assert seen(brain.requests[1]) == [
        ("user", "Hi there"),
        ("assistant", "echo 1"),
        ("user", "And again?"),
    ]
    assert brain.requests[1].system_prompt == ""  # instructions are not carried over

    fetched = response((await client.responses.with_raw_response.retrieve(first.id))
                       .http_response.json())  # fmt: skip
    assert fetched.output_text == "echo 1" and fetched.id == first.id
    items = await client.responses.input_items.with_raw_response.list(second.id)
    listed = conforms(ResponseItemList, items.http_response.json())
    assert [i.type for i in listed.data] == ["message"]
    assert listed.data[0].content[0].text == "And again?"  # type: ignore[union-attr]


async def test_item_inputs_and_settings_reach_the_model(
    client: openai.AsyncOpenAI, brain: Brain
) -> None:
    brain.answer = lambda request: '{"ok": true}'
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    answer = await create(
        client,
        model=MODEL,
        input=[
            {"role": "developer", "content": "Answer JSON."},
            {"role": "user", "content": [{"type": "input_text", "text": "Is it ok?"}]},
        ],
        temperature=0.3,
        top_p=0.5,
        max_output_tokens=200,
        metadata={"k": "v"},
        text={"format": {"type": "json_schema", "name": "verdict", "schema": schema}},
    )
    (request,) = brain.requests
    assert seen(request) == [("system", "Answer JSON."), ("user", "Is it ok?")]
    assert request.temperature == 0.3 and request.top_p == 0.5
    assert request.response_format is not None and request.response_format.name == "verdict"
    assert answer.metadata == {"k": "v"} and answer.max_output_tokens == 200
    assert answer.text is not None and answer.text.format is not None
    assert answer.text.format.type == "json_schema"


# --- function tools ---------------------------------------------------------------------


async def test_a_function_call_round_trip_resumes_the_run(
    client: openai.AsyncOpenAI, brain: Brain
) -> None:
    def answer(request: ProviderRequest) -> Any:
        if request.messages[-1].role == "tool":
            return f"It is {request.messages[-1].text}."
        return calls(call("get_weather", city="Paris"))

    brain.answer = answer
    first = await create(client, model=MODEL, input="Weather in Paris?", tools=[WEATHER])
    assert first.status == "completed"
    (fc,) = first.output
    assert fc.type == "function_call" and fc.name == "get_weather"
    assert json.loads(fc.arguments) == {"city": "Paris"}
    assert [t.name for t in first.tools] == ["get_weather"]  # type: ignore[union-attr]
    assert [t.name for t in brain.requests[0].tools] == ["get_weather"]

    second = await create(
        client,
        model=MODEL,
        previous_response_id=first.id,
        tools=[WEATHER],
        input=[{"type": "function_call_output", "call_id": fc.call_id, "output": "sunny"}],
    )
    assert second.id != first.id and second.previous_response_id == first.id
    assert second.output_text == "It is sunny."
    last = brain.requests[-1].messages
    assert last[-1].role == "tool" and last[-1].tool_call_id == fc.call_id
    # The first response keeps its own answer.
    again = await client.responses.retrieve(first.id)
    assert [o.type for o in again.output] == ["function_call"]
    inputs = await client.responses.input_items.list(second.id)
    assert [i.type for i in inputs.data] == ["function_call_output"]

    # A paused response must be answered with the outputs of its calls.
    brain.answer = lambda request: calls(call("get_weather", city="Oslo"))
    paused = await create(client, model=MODEL, input="Oslo?", tools=[WEATHER])
    with pytest.raises(openai.BadRequestError, match="No tool output found"):
        await client.responses.create(
            model=MODEL, previous_response_id=paused.id, input=[
                {"type": "function_call_output", "call_id": "call_other", "output": "x"}
            ],
        )  # fmt: skip


# --- the OpenAI Agents SDK --------------------------------------------------------------


async def test_the_agents_sdk_runs_an_agent_with_a_tool_on_responses(
    api: RunningApi, brain: Brain
) -> None:
    def answer(request: ProviderRequest) -> Any:
        if request.messages[-1].role == "tool":
            return f"It is {request.messages[-1].text} in Paris."
        return calls(call("get_weather", city="Paris"))

    brain.answer = answer
    asked: list[str] = []

    @function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        asked.append(city)
        return "sunny"

    client = sdk(api)
    agent = Agent(
        name="Weather",
        instructions="Answer with the weather tool.",
        tools=[get_weather],
        model=OpenAIResponsesModel(model=MODEL, openai_client=client),
    )
    result = await Runner.run(agent, "Weather in Paris?")
    await client.close()

    assert result.final_output == "It is sunny in Paris."
    assert asked == ["Paris"]
    first, second = brain.requests
    assert first.system_prompt == "Answer with the weather tool."
    assert [t.name for t in first.tools] == ["get_weather"]
    assert [m.role for m in second.messages] == ["user", "assistant", "tool"]
    assert second.messages[1].tool_calls[0].arguments == {"city": "Paris"}


# --- errors -----------------------------------------------------------------------------


async def test_errors_are_the_sdk_classes(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        await client.responses.retrieve("resp_" + "0" * 32)
    with pytest.raises(openai.NotFoundError):
        await client.responses.retrieve("nonsense")
    with pytest.raises(openai.NotFoundError):
        await client.responses.create(model=MODEL, input="x", previous_response_id="resp_1")
    with pytest.raises(openai.BadRequestError) as bad:
        await client.responses.create(model=MODEL, input="x", tools=[{"type": "web_search"}])
    assert bad.value.body["param"] == "tools[0].type"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as unknown:
        await client.responses.create(model=MODEL, input="x", extra_body={"bogus": 1})
    assert "bogus" in str(unknown.value)
    with pytest.raises(openai.BadRequestError) as no_model:
        await client.responses.create(model="no-such-model-anywhere", input="x")
    assert no_model.value.body["param"] == "model"  # type: ignore[index]
    with pytest.raises(openai.NotFoundError):
        await client.conversations.retrieve("conv_" + "0" * 32)


async def test_delete_hides_the_response(client: openai.AsyncOpenAI) -> None:
    made = await create(client, model=MODEL, input="Hi")
    deleted = await client.responses.with_raw_response.delete(made.id)
    assert deleted.http_response.json() == {
        "id": made.id,
        "object": "response.deleted",
        "deleted": True,
    }
    with pytest.raises(openai.NotFoundError):
        await client.responses.retrieve(made.id)


async def test_chaining_to_an_older_response_branches(
    client: openai.AsyncOpenAI, brain: Brain
) -> None:
    """``previous_response_id`` of a response that newer ones followed: the model sees the
    history up to that response, not the newer exchange; the original chain is unchanged."""
    brain.answer = lambda request: f"echo {request.messages[-1].text}"
    first = await create(client, model=MODEL, input="one")
    second = await create(client, model=MODEL, input="two", previous_response_id=first.id)
    branch = await create(client, model=MODEL, input="three", previous_response_id=first.id)
    assert branch.output_text == "echo three" and branch.previous_response_id == first.id
    assert seen(brain.requests[-1]) == [
        ("user", "one"),
        ("assistant", "echo one"),
        ("user", "three"),
    ]
    # The main line goes on where it stood; the branch goes on from its own answer.
    await create(client, model=MODEL, input="four", previous_response_id=second.id)
    assert [text for _role, text in seen(brain.requests[-1])] == [
        "one", "echo one", "two", "echo two", "four",
    ]  # fmt: skip
    await create(client, model=MODEL, input="five", previous_response_id=branch.id)
    assert [text for _role, text in seen(brain.requests[-1])] == [
        "one", "echo one", "three", "echo three", "five",
    ]  # fmt: skip


async def test_store_false_keeps_nothing_once_answered(
    api: RunningApi, client: openai.AsyncOpenAI, brain: Brain
) -> None:
    """``store: false``: the answer comes back, then the response (its thread, its
    messages) is gone; a response waiting for function call outputs is kept until they
    are answered, then goes too. ``store: true`` (the default) keeps it."""
    threads_before = thread_count(api)
    brain.answer = lambda request: "not kept"
    made = await create(client, model=MODEL, input="Hi", store=False)
    assert made.output_text == "not kept" and made.store is False
    with pytest.raises(openai.NotFoundError):
        await client.responses.retrieve(made.id)
    assert thread_count(api) == threads_before
    streamed = await client.responses.create(model=MODEL, input="Hi", store=False, stream=True)
    async for _event in streamed:
        pass
    assert thread_count(api) == threads_before

    def answer(request: ProviderRequest) -> Any:
        if request.messages[-1].role == "tool":
            return "done"
        return calls(call("get_weather", city="Paris"))

    brain.answer = answer
    paused = await create(client, model=MODEL, input="Weather?", tools=[WEATHER], store=False)
    (fc,) = paused.output
    assert (await client.responses.retrieve(paused.id)).id == paused.id  # waits for outputs
    final = await create(
        client,
        model=MODEL,
        previous_response_id=paused.id,
        tools=[WEATHER],
        input=[{"type": "function_call_output", "call_id": fc.call_id, "output": "sunny"}],  # type: ignore[union-attr]
    )
    assert final.output_text == "done"
    with pytest.raises(openai.NotFoundError):
        await client.responses.retrieve(paused.id)
    assert thread_count(api) == threads_before

    kept = await create(client, model=MODEL, input="Hi")
    assert (await client.responses.retrieve(kept.id)).id == kept.id
    assert thread_count(api) == threads_before + 1


def thread_count(api: RunningApi) -> int:
    async def count() -> int:
        async with api.store.engine.connect() as conn:
            found = await conn.exec_driver_sql(
                "SELECT count(*) FROM threads WHERE tenant_id = 'acme'"
            )
            return int(found.scalar_one())

    return api.call(count())


async def test_delete_of_an_unknown_response_is_an_enveloped_404(
    client: openai.AsyncOpenAI,
) -> None:
    # OpenAI's document gives this 404 the bare ``Error`` schema; every OpenAI error body
    # (and every /v1 one) is ``{"error": Error}``, which the SDK unwraps: kept so.
    with pytest.raises(openai.NotFoundError) as gone:
        await client.responses.delete("resp_" + "0" * 32)
    body = gone.value.response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert gone.value.code == "not_found"


async def test_query_parameters_are_checked(
    api: RunningApi, client: openai.AsyncOpenAI, brain: Brain
) -> None:
    brain.answer = lambda request: "ok"
    made = await create(client, model=MODEL, input="Hi")
    conv = await client.conversations.create(items=[{"role": "user", "content": "x"}])
    first = (await client.conversations.items.list(conv.id)).data[0]
    known: Any = ["message.output_text.logprobs", "reasoning.encrypted_content"]
    # Known ``include`` values are accepted (and add nothing), sent as the SDK sends
    # arrays (``include[]=``) ...
    fetched = await client.responses.with_raw_response.retrieve(made.id, include=known)
    assert response(fetched.http_response.json()).id == made.id
    await client.responses.input_items.list(made.id, include=known)
    await client.conversations.items.list(conv.id, include=known)
    await client.conversations.items.retrieve(first.id, conversation_id=conv.id, include=known)
    # ... and any other is a 400 naming ``include``.
    for call_with in (
        lambda include: client.responses.retrieve(made.id, include=include),
        lambda include: client.responses.input_items.list(made.id, include=include),
        lambda include: client.conversations.items.list(conv.id, include=include),
        lambda include: client.conversations.items.retrieve(
            first.id, conversation_id=conv.id, include=include
        ),
        lambda include: client.conversations.items.create(
            conv.id, items=[{"role": "user", "content": "y"}], include=include
        ),
    ):
        with pytest.raises(openai.BadRequestError) as bad:
            await call_with(["bogus"])
        assert bad.value.param == "include"
    # ``include=`` as OpenAI's document spells it is checked the same.
    async with httpx.AsyncClient(
        base_url=f"{api.url}/v1", headers={"Authorization": f"Bearer {client.api_key}"}
    ) as http:
        url = f"/responses/{made.id}"
        assert (await http.get(url, params={"include": known})).status_code == 200
        bad_include = await http.get(url, params={"include": "bogus"})
        assert bad_include.status_code == 400, bad_include.text
        assert bad_include.json()["error"]["param"] == "include"
        for name, value in (
            ("include_obfuscation", "null"),
            ("stream", "yes"),
            ("starting_after", "-"),
        ):
            answer = await http.get(url, params={name: value})
            assert answer.status_code == 400, (name, answer.text)
            assert answer.json()["error"]["param"] == name
        ok = await http.get(url, params={"include_obfuscation": "false", "starting_after": "-3"})
        assert ok.status_code == 200, ok.text
    # No response here runs in the background: nothing to stream on retrieve.
    with pytest.raises(openai.BadRequestError) as streamed:
        await client.responses.retrieve(made.id, stream=True)
    assert streamed.value.param == "stream"


# --- conversations ----------------------------------------------------------------------


async def test_a_conversation_is_a_thread(
    api: RunningApi, client: openai.AsyncOpenAI, brain: Brain
) -> None:
    brain.answer = lambda request: "Hello Ada."
    raw = await client.conversations.with_raw_response.create(
        items=[{"type": "message", "role": "user", "content": "I am Ada."}], metadata={"a": "b"}
    )
    conv = conforms(Conversation, raw.http_response.json())
    assert conv.metadata == {"a": "b"}
    answer = await create(client, model=MODEL, input="Greet me.", conversation=conv.id)
    assert answer.output_text == "Hello Ada."
    assert answer.conversation is not None and answer.conversation.id == conv.id
    assert seen(brain.requests[0]) == [("user", "I am Ada."), ("user", "Greet me.")]

    page = await client.conversations.items.with_raw_response.list(conv.id, order="asc")
    items = conforms(ConversationItemList, page.http_response.json())
    texts = [(i.role, i.content[0].text) for i in items.data]  # type: ignore[union-attr]
    assert texts == [("user", "I am Ada."), ("user", "Greet me."), ("assistant", "Hello Ada.")]

    # The same thread through /api/v1 and /v1/threads.
    thread = ids.format_id(ids.THREAD, ids.parse_id(ids.CONVERSATION, conv.id))
    uuid = ids.parse_id(ids.CONVERSATION, conv.id)
    native = api.call(api.store.for_tenant("acme").list_messages(uuid, limit=10))
    assert [m.text for m in native.items] == ["I am Ada.", "Greet me.", "Hello Ada."]
    listed = await client.beta.threads.messages.list(thread, order="asc")
    assert [m.content[0].text.value for m in listed.data] == [  # type: ignore[union-attr]
        "I am Ada.",
        "Greet me.",
        "Hello Ada.",
    ]

    one = await client.conversations.items.retrieve(items.data[0].id, conversation_id=conv.id)
    assert one.id == items.data[0].id
    await client.conversations.items.delete(items.data[0].id, conversation_id=conv.id)
    after = await client.conversations.items.list(conv.id)
    assert len(after.data) == 2

    updated = await client.conversations.update(conv.id, metadata={"x": "y"})
    assert updated.metadata == {"x": "y"}
    gone = await client.conversations.with_raw_response.delete(conv.id)
    conforms(ConversationDeletedResource, gone.http_response.json())
    with pytest.raises(openai.NotFoundError):
        await client.conversations.retrieve(conv.id)


async def test_a_thread_is_a_conversation(client: openai.AsyncOpenAI, brain: Brain) -> None:
    brain.answer = lambda request: "noted"
    thread = await client.beta.threads.create(messages=[{"role": "user", "content": "Remember 7."}])
    conv = "conv_" + thread.id.removeprefix("thread_")
    got = await client.conversations.retrieve(conv)
    assert got.id == conv
    added = await client.conversations.items.create(
        conv, items=[{"type": "message", "role": "user", "content": "And 8."}]
    )
    assert len(added.data) == 1
    answer = await client.responses.create(model=MODEL, input="What numbers?", conversation=conv)
    assert answer.output_text == "noted"
    assert seen(brain.requests[0]) == [
        ("user", "Remember 7."),
        ("user", "And 8."),
        ("user", "What numbers?"),
    ]
    messages = await client.beta.threads.messages.list(thread.id)
    assert messages.data[0].content[0].text.value == "noted"  # type: ignore[union-attr]


# --- streaming --------------------------------------------------------------------------


async def test_streamed_text_joins_to_the_output(client: openai.AsyncOpenAI, brain: Brain) -> None:
    brain.answer = lambda request: "one two three four"
    async with client.responses.stream(model=MODEL, input="Count") as stream:
        kinds: list[str] = []
        deltas: list[str] = []
        async for event in stream:
            kinds.append(event.type)
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
        final = await stream.get_final_response()
    assert "".join(deltas) == "one two three four" == final.output_text
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    for kind in (
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
    ):
        assert kind in kinds
    stored = await client.responses.retrieve(final.id)
    assert stored.output_text == "one two three four"


async def test_streamed_function_call(client: openai.AsyncOpenAI, brain: Brain) -> None:
    brain.answer = lambda request: calls(call("get_weather", city="Rome"))
    stream = await client.responses.create(model=MODEL, input="Rome?", tools=[WEATHER], stream=True)
    events = [event async for event in stream]
    numbers = [e.sequence_number for e in events]
    assert numbers == list(range(len(events)))
    done = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert json.loads(done[0].arguments) == {"city": "Rome"}  # type: ignore[union-attr]
    final = events[-1]
    assert final.type == "response.completed"
    assert [o.type for o in final.response.output] == ["function_call"]  # type: ignore[union-attr]


async def test_a_streamed_agents_sdk_run_on_responses(api: RunningApi, brain: Brain) -> None:
    def answer(request: ProviderRequest) -> Any:
        if request.messages[-1].role == "tool":
            return "2 + 3 = 5"
        return calls(call("add", a=2, b=3))

    brain.answer = answer

    @function_tool
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    client = sdk(api)
    agent = Agent(
        name="Calculator",
        instructions="Use the add tool.",
        tools=[add],
        model=OpenAIResponsesModel(model=MODEL, openai_client=client),
    )
    streamed = Runner.run_streamed(agent, "What is 2 + 3?")
    kinds = [event.type async for event in streamed.stream_events()]
    await client.close()

    assert streamed.final_output == "2 + 3 = 5"
    assert "raw_response_event" in kinds and "run_item_stream_event" in kinds
    assert brain.requests[1].messages[-1].text == "5"
