"""``stream: true`` on ``/v1`` runs through the official ``openai`` SDK, unchanged:
``runs.stream`` with an event handler, a function tool answered with
``submit_tool_outputs_stream``, ``create_and_run_stream``, every raw event checked
strictly against the SDK's ``AssistantStreamEvent`` types, a disconnect that cancels the
run, and an error before the stream as an ordinary ``BadRequestError``."""

from __future__ import annotations

import asyncio
import json
import typing
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import openai
import pytest
from openai import AsyncAssistantEventHandler
from openai.types.beta import AssistantStreamEvent
from openai.types.beta.threads import Message, Run, TextDelta
from openai.types.beta.threads.runs import ToolCall
from pydantic import BaseModel
from typing_extensions import override

from ai_agents.api.compat import ids
from ai_agents.api.testing import RunningApi
from ai_agents.config import Settings
from ai_agents.messages import Message as StoredMessage
from ai_agents.providers.base import ProviderRequest
from ai_agents.testing import FunctionProvider, call, calls
from tests.openai_compat import Gate, serve_compat
from tests.openai_shapes import conforms

pytestmark = pytest.mark.filterwarnings("ignore:.*deprecated:DeprecationWarning")

WEATHER: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
ANSWER = "The capital of France is Paris, a city on the Seine."
#: The SDK's event classes by event name.
EVENT_TYPES: dict[str, type[BaseModel]] = {
    typing.get_args(cls.model_fields["event"].annotation)[0]: cls
    for cls in typing.get_args(typing.get_args(AssistantStreamEvent)[0])
}


class Brain:
    def __init__(self) -> None:
        self.answer: Callable[[ProviderRequest], Any] = lambda request: ANSWER
        self.provider = FunctionProvider(lambda request: self.answer(request))


class Collector(AsyncAssistantEventHandler):
    """Records every event and what the SDK's callbacks were given."""

    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []
        self.deltas: list[str] = []
        self.created_calls: list[ToolCall] = []
        self.done_calls: list[ToolCall] = []

    @override
    async def on_event(self, event: AssistantStreamEvent) -> None:
        self.names.append(event.event)

    @override
    async def on_text_delta(self, delta: TextDelta, snapshot: Any) -> None:
        self.deltas.append(delta.value or "")

    @override
    async def on_tool_call_created(self, tool_call: ToolCall) -> None:
        self.created_calls.append(tool_call)

    @override
    async def on_tool_call_done(self, tool_call: ToolCall) -> None:
        self.done_calls.append(tool_call)


@pytest.fixture
def brain() -> Brain:
    return Brain()


@pytest.fixture
def api(settings: Settings, redis_cleanup: None, brain: Brain) -> Iterator[RunningApi]:
    with serve_compat(settings, {"scripted": brain.provider}) as running:
        yield running


@pytest.fixture
def key(api: RunningApi) -> str:
    return api.create_key("acme")


@pytest.fixture
async def client(api: RunningApi, key: str) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=f"{api.url}/v1", api_key=key, max_retries=0) as c:
        yield c


def new_thread(api: RunningApi, *texts: str) -> str:
    store = api.store.for_tenant("acme")

    async def make() -> Any:
        thread = await store.create_unassigned_thread()
        await store.add_messages(thread, [StoredMessage(role="user", content=t) for t in texts])
        return thread

    return ids.format_id(ids.THREAD, api.call(make()))


def thread_texts(api: RunningApi, thread_id: str) -> list[tuple[str, str]]:
    store = api.store.for_tenant("acme")
    page = api.call(store.list_messages(ids.parse_id(ids.THREAD, thread_id), limit=100))
    return [(m.role, m.text) for m in page.items]


async def assistant(client: openai.AsyncOpenAI, **fields: Any) -> str:
    made = await client.beta.assistants.create(model="scripted/roomy", **fields)
    return made.id


async def listed(client: openai.AsyncOpenAI, thread: str, run: str) -> list[Message]:
    page = await client.beta.threads.messages.list(thread_id=thread, run_id=run, order="asc")
    return page.data


def weather(request: ProviderRequest) -> Any:
    tool = [m for m in request.messages if m.role == "tool"]
    if not tool:
        return calls(call("get_weather", city="Paris"))
    return f"It is {tool[-1].text} in Paris today."


# --- the SDK's helpers ----------------------------------------------------------------------


async def test_runs_stream_delivers_openais_events_and_the_saved_message(
    api: RunningApi, client: openai.AsyncOpenAI
) -> None:
    asst = await assistant(client, instructions="You know capitals.")
    thread = new_thread(api, "Capital of France?")
    handler = Collector()
    async with client.beta.threads.runs.stream(
        thread_id=thread, assistant_id=asst, event_handler=handler
    ) as stream:
        chunks = [text async for text in stream.text_deltas]
        run = await stream.get_final_run()
        messages = await stream.get_final_messages()

    deltas = handler.names.count("thread.message.delta")
    assert deltas >= 2  # the test model streams its answer in pieces
    assert handler.names == [
        "thread.run.created",
        "thread.run.queued",
        "thread.run.in_progress",
        "thread.run.step.created",
        "thread.run.step.in_progress",
        "thread.message.created",
        "thread.message.in_progress",
        *["thread.message.delta"] * deltas,
        "thread.message.completed",
        "thread.run.step.completed",
        "thread.run.completed",
    ]
    assert "".join(chunks) == "".join(handler.deltas) == ANSWER
    assert run.status == "completed" and run.thread_id == thread and run.assistant_id == asst
    assert run.usage is not None and run.usage.total_tokens > 0
    assert handler.current_run is not None and handler.current_run.id == run.id
    # The streamed message is the saved one: same id, text, times.
    assert [m.model_dump() for m in messages] == [
        m.model_dump() for m in await listed(client, thread, run.id)
    ]
    assert messages[0].content[0].type == "text"
    assert messages[0].content[0].text.value == ANSWER
    assert thread_texts(api, thread) == [("user", "Capital of France?"), ("assistant", ANSWER)]
    # The message step of the stream names the same message.
    step = (await handler.get_final_run_steps())[0]
    assert step.step_details.type == "message_creation"
    assert step.step_details.message_creation.message_id == messages[0].id
    listed_steps = await client.beta.threads.runs.steps.list(run_id=run.id, thread_id=thread)
    assert [x.id for x in listed_steps.data] == [step.id]


async def test_a_function_tool_streams_to_requires_action_then_resumes_streamed(
    api: RunningApi, client: openai.AsyncOpenAI, brain: Brain
) -> None:
    brain.answer = weather
    asst = await assistant(client, instructions="Use the tool.", tools=[WEATHER])
    thread = new_thread(api, "Weather in Paris?")

    first = Collector()
    async with client.beta.threads.runs.stream(
        thread_id=thread, assistant_id=asst, event_handler=first
    ) as stream:
        paused = await stream.get_final_run()
    assert paused.status == "requires_action"
    assert first.names[-1] == "thread.run.requires_action"
    assert "thread.message.created" not in first.names  # the call wrote no text
    assert first.names[3:6] == [
        "thread.run.step.created",
        "thread.run.step.in_progress",
        "thread.run.step.delta",
    ]
    assert paused.required_action is not None
    (wanted,) = paused.required_action.submit_tool_outputs.tool_calls
    assert (wanted.function.name, json.loads(wanted.function.arguments)) == (
        "get_weather",
        {"city": "Paris"},
    )
    assert [c.id for c in first.created_calls] == [wanted.id]
    assert [c.id for c in first.done_calls] == [wanted.id]
    assert first.created_calls[0].type == "function"
    assert first.done_calls[0].function.arguments == wanted.function.arguments  # type: ignore[union-attr]
    step = (await first.get_final_run_steps())[0]
    assert step.type == "tool_calls"

    second = Collector()
    async with client.beta.threads.runs.submit_tool_outputs_stream(
        run_id=paused.id,
        thread_id=thread,
        tool_outputs=[{"tool_call_id": wanted.id, "output": "sunny"}],
        event_handler=second,
    ) as stream:
        done = await stream.get_final_run()
        messages = await stream.get_final_messages()
    assert done.status == "completed" and done.id == paused.id
    assert second.names[:3] == [
        "thread.run.queued",
        "thread.run.in_progress",
        "thread.run.step.completed",  # the tool step, with its output
    ]
    assert second.names[-1] == "thread.run.completed"
    assert "".join(second.deltas) == "It is sunny in Paris today."
    assert [m.model_dump() for m in messages] == [
        m.model_dump() for m in await listed(client, thread, done.id)
    ]
    steps = await client.beta.threads.runs.steps.list(run_id=done.id, thread_id=thread, order="asc")
    listed_steps = steps.data
    assert [s.type for s in listed_steps] == ["tool_calls", "message_creation"]
    assert listed_steps[1].step_details.message_creation.message_id == messages[0].id  # type: ignore[union-attr]
    # The steps streamed are the steps listed: same ids (a step is announced before its
    # row is written, and both take the id of the run and the step's place).
    streamed = [x.id for x in await first.get_final_run_steps()]
    streamed += [x.id for x in await second.get_final_run_steps()]
    assert list(dict.fromkeys(streamed)) == [x.id for x in listed_steps]
    again = await client.beta.threads.runs.steps.retrieve(
        streamed[-1], thread_id=thread, run_id=done.id
    )
    assert again.type == "message_creation"


async def test_create_and_run_stream_makes_the_thread_first(
    api: RunningApi, client: openai.AsyncOpenAI
) -> None:
    asst = await assistant(client, instructions="You know capitals.")
    handler = Collector()
    async with client.beta.threads.create_and_run_stream(
        assistant_id=asst,
        thread={"messages": [{"role": "user", "content": "Capital of France?"}]},
        event_handler=handler,
    ) as stream:
        run = await stream.get_final_run()
        messages = await stream.get_final_messages()
    assert handler.names[:2] == ["thread.created", "thread.run.created"]
    assert run.status == "completed"
    assert thread_texts(api, run.thread_id) == [
        ("user", "Capital of France?"),
        ("assistant", ANSWER),
    ]
    assert [m.model_dump() for m in messages] == [
        m.model_dump() for m in await listed(client, run.thread_id, run.id)
    ]


# --- the wire -------------------------------------------------------------------------------


def parse_sse(raw: str) -> list[tuple[str, str]]:
    events = []
    for block in raw.split("\n\n"):
        if not block.strip():
            continue
        lines = block.split("\n")
        assert len(lines) == 2 and lines[0].startswith("event: ") and lines[1].startswith("data: ")
        events.append((lines[0][len("event: ") :], lines[1][len("data: ") :]))
    return events


def check_event(name: str, data: str) -> None:
    """*data* strictly valid as the SDK's event *name*, and its object every field present."""
    event_type = EVENT_TYPES[name]
    payload = json.loads(data)
    # ThreadCreated.enabled (realtime transcription) is an optional flag OpenAI leaves out.
    conforms(event_type, {"event": name, "data": payload}, optional=("enabled",))
    inner = event_type.model_fields["data"].annotation
    assert isinstance(inner, type) and issubclass(inner, BaseModel)
    conforms(inner, payload)


async def test_every_raw_event_validates_strictly_and_the_stream_ends_with_done(
    api: RunningApi, client: openai.AsyncOpenAI, key: str, brain: Brain
) -> None:
    brain.answer = weather
    asst = await assistant(client, instructions="Use the tool.", tools=[WEATHER])
    thread = new_thread(api, "Weather in Paris?")
    headers = {"Authorization": f"Bearer {key}", "OpenAI-Beta": "assistants=v2"}
    async with httpx.AsyncClient(base_url=f"{api.url}/v1", headers=headers, timeout=30) as http:
        response = await http.post(
            f"/threads/{thread}/runs", json={"assistant_id": asst, "stream": True}
        )
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        paused = parse_sse(response.text)
        run = Run.model_validate(json.loads(paused[-2][1]))
        (wanted,) = run.required_action.submit_tool_outputs.tool_calls  # type: ignore[union-attr]
        resumed = await http.post(
            f"/threads/{thread}/runs/{run.id}/submit_tool_outputs",
            json={"tool_outputs": [{"tool_call_id": wanted.id, "output": "sunny"}], "stream": True},
        )
        assert resumed.status_code == 200
        finished = parse_sse(resumed.text)
        created = await http.post(
            "/threads/runs",
            json={
                "assistant_id": asst,
                "stream": True,
                "thread": {"messages": [{"role": "user", "content": "Hi"}]},
                "tools": [],
            },
        )
        brand_new = parse_sse(created.text)
    names = set()
    for events in (paused, finished, brand_new):
        assert events[-1] == ("done", "[DONE]")
        for name, data in events[:-1]:
            check_event(name, data)
            names.add(name)
    assert paused[-2][0] == "thread.run.requires_action"
    assert finished[-2][0] == brand_new[-2][0] == "thread.run.completed"
    assert brand_new[0][0] == "thread.created"
    assert {
        "thread.run.step.delta",
        "thread.message.delta",
        "thread.message.completed",
        "thread.run.step.completed",
    } <= names


# --- ends and errors ------------------------------------------------------------------------


async def test_a_client_that_disconnects_cancels_the_run(
    api: RunningApi, client: openai.AsyncOpenAI, key: str, brain: Brain
) -> None:
    gate = Gate()
    brain.answer = gate
    asst = await assistant(client, instructions="Slow.")
    thread = new_thread(api, "Take your time.")
    headers = {"Authorization": f"Bearer {key}"}
    body = {"assistant_id": asst, "stream": True}
    async with (
        httpx.AsyncClient(base_url=f"{api.url}/v1", headers=headers, timeout=30) as http,
        http.stream("POST", f"/threads/{thread}/runs", json=body) as response,
    ):
        assert response.status_code == 200
        run_id = None
        async for line in response.aiter_lines():
            if line.startswith("data: ") and run_id is None:
                run_id = json.loads(line[len("data: ") :])["id"]
            if line == "event: thread.run.in_progress":
                break
        await gate.wait_entered()
    assert run_id is not None
    status = ""
    for _ in range(200):
        status = (await client.beta.threads.runs.retrieve(run_id, thread_id=thread)).status
        if status == "cancelled":
            break
        await asyncio.sleep(0.05)
    gate.opened.set()
    assert status == "cancelled"
    assert thread_texts(api, thread) == [("user", "Take your time.")]


async def test_a_busy_thread_is_a_bad_request_before_any_event(
    api: RunningApi, client: openai.AsyncOpenAI, brain: Brain
) -> None:
    gate = Gate()
    brain.answer = gate
    asst = await assistant(client, instructions="Slow.")
    thread = new_thread(api, "Take your time.")
    holder = await client.beta.threads.runs.create(thread_id=thread, assistant_id=asst)
    await gate.wait_entered()
    try:
        with pytest.raises(openai.BadRequestError) as refused:
            async with client.beta.threads.runs.stream(
                thread_id=thread, assistant_id=asst, event_handler=Collector()
            ) as stream:
                await stream.until_done()
        assert f"already has an active run {holder.id}" in refused.value.message
        with pytest.raises(openai.BadRequestError):
            async with client.beta.threads.runs.submit_tool_outputs_stream(
                run_id=holder.id,
                thread_id=thread,
                tool_outputs=[{"tool_call_id": "call_x", "output": "x"}],
                event_handler=Collector(),
            ) as stream:
                await stream.until_done()
    finally:
        gate.opened.set()
    done = await client.beta.threads.runs.poll(holder.id, thread_id=thread, poll_interval_ms=50)
    assert done.status == "completed"
    assert thread_texts(api, thread) == [("user", "Take your time."), ("assistant", "finally")]


async def test_a_run_that_fails_mid_stream_ends_with_thread_run_failed(
    api: RunningApi, client: openai.AsyncOpenAI, brain: Brain
) -> None:
    def broken(request: ProviderRequest) -> Any:
        raise RuntimeError("the model fell over")

    brain.answer = broken
    asst = await assistant(client, instructions="Fails.")
    thread = new_thread(api, "Hello?")
    handler = Collector()
    async with client.beta.threads.runs.stream(
        thread_id=thread, assistant_id=asst, event_handler=handler
    ) as stream:
        run = await stream.get_final_run()
    assert handler.names[-1] == "thread.run.failed"
    assert run.status == "failed" and run.last_error is not None
    assert run.last_error.code == "server_error"
    assert thread_texts(api, thread) == [("user", "Hello?")]
