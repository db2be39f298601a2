"""``/v1/threads/{id}/runs``, ``/v1/threads/runs`` and run steps through the official
``openai`` SDK, unchanged, against a running server: runs start in the background and are
polled (``create_and_poll``), function tools pause them in ``requires_action``, cancel,
overrides, token limits, one active run per thread, 404s across threads and tenants, and
every answer checked strictly against the SDK's typed models."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any
from uuid import UUID

import openai
import pytest
from openai.types.beta.threads import Run
from openai.types.beta.threads.runs import RunStep

from ai_agents.api.compat import ids
from ai_agents.api.testing import RunningApi
from ai_agents.config import Settings
from ai_agents.messages import Message
from ai_agents.providers.base import ProviderRequest, ProviderResponse, Usage
from ai_agents.testing import FunctionProvider, call, calls
from tests.openai_compat import Gate, sdk, serve_compat
from tests.openai_shapes import conforms

# The SDK marks the Assistants API deprecated (OpenAI shut it down): that is the point.
pytestmark = pytest.mark.filterwarnings("ignore:.*deprecated:DeprecationWarning")

POLL_MS = 50
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


class Brain:
    """The test model: each test sets ``answer`` (request -> reply, sync or async)."""

    def __init__(self) -> None:
        self.answer: Callable[[ProviderRequest], Any] = lambda request: "hello"
        self.provider = FunctionProvider(lambda request: self.answer(request))

    @property
    def requests(self) -> list[ProviderRequest]:
        return self.provider.requests


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


def new_thread(api: RunningApi, *texts: str, tenant: str = "acme") -> str:
    """A ``/v1`` thread of *tenant* holding user messages *texts*."""
    store = api.store.for_tenant(tenant)

    async def make() -> UUID:
        thread = await store.create_unassigned_thread()
        await store.add_messages(thread, [Message(role="user", content=t) for t in texts])
        return thread

    return ids.format_id(ids.THREAD, api.call(make()))


def thread_messages(api: RunningApi, thread_id: str) -> list[tuple[str, str]]:
    store = api.store.for_tenant("acme")
    page = api.call(store.list_messages(ids.parse_id(ids.THREAD, thread_id), limit=100))
    return [(m.role, m.text) for m in page.items]


async def assistant(client: openai.AsyncOpenAI, **fields: Any) -> str:
    made = await client.beta.assistants.create(
        model="scripted/roomy", instructions=fields.pop("instructions", "You help."), **fields
    )
    return made.id


async def raw_run(client: openai.AsyncOpenAI, thread_id: str, run_id: str) -> Run:
    response = await client.beta.threads.runs.with_raw_response.retrieve(
        run_id, thread_id=thread_id
    )
    return conforms(Run, response.http_response.json())


def last_tool_output(request: ProviderRequest) -> str | None:
    tool = [m for m in request.messages if m.role == "tool"]
    return tool[-1].text if tool else None


# --- the basic flow -------------------------------------------------------------------------


async def test_create_and_poll_answers_the_thread(
    api: RunningApi, client: openai.AsyncOpenAI, brain: Brain
) -> None:
    brain.answer = lambda request: "Paris."
    asst = await assistant(client, instructions="You know capitals.")
    thread = new_thread(api, "Capital of France?")

    created = await client.beta.threads.runs.with_raw_response.create(
        thread_id=thread, assistant_id=asst, metadata={"ticket": "7"}
    )
    started = conforms(Run, created.http_response.json())
    assert started.id.startswith("run_") and started.object == "thread.run"
    # Answered at once; the fast test model may already be done.
    assert started.status in ("queued", "in_progress", "completed")
    assert (started.usage is None) == (started.status != "completed")
    assert (started.thread_id, started.assistant_id) == (thread, asst)

    run = await client.beta.threads.runs.poll(
        started.id, thread_id=thread, poll_interval_ms=POLL_MS
    )
    assert run.status == "completed"
    done = await raw_run(client, thread, run.id)
    assert done.model == "scripted/roomy"
    assert done.instructions == "You know capitals."
    assert done.metadata == {"ticket": "7"}
    assert done.usage is not None and done.usage.total_tokens > 0
    assert done.usage.total_tokens == done.usage.prompt_tokens + done.usage.completion_tokens
    assert done.completed_at is not None and done.started_at is not None
    assert (done.last_error, done.required_action, done.incomplete_details) == (None, None, None)
    assert done.truncation_strategy is not None and done.truncation_strategy.type == "auto"
    assert (done.tool_choice, done.parallel_tool_calls, done.response_format) == (
        "auto",
        True,
        "auto",
    )
    assert thread_messages(api, thread) == [("user", "Capital of France?"), ("assistant", "Paris.")]
    assert brain.requests[-1].system_prompt == "You know capitals."

    # The SDK's one-call helper does the same.
    again = await client.beta.threads.runs.create_and_poll(
        thread_id=thread, assistant_id=asst, poll_interval_ms=POLL_MS
    )
    assert again.status == "completed"
    assert thread_messages(api, thread)[1:] == [("assistant", "Paris."), ("assistant", "Paris.")]


async def test_a_function_tool_pauses_the_run_until_its_output_is_submitted(
    api: RunningApi, client: openai.AsyncOpenAI, brain: Brain
) -> None:
    def answer(request: ProviderRequest) -> Any:
        output = last_tool_output(request)
        if output is None:
            return calls(call("get_weather", city="Paris"))
        return f"It is {output} in Paris."

    brain.answer = answer
    asst = await assistant(client, tools=[WEATHER])
    thread = new_thread(api, "Weather in Paris?")

    run = await client.beta.threads.runs.create_and_poll(
        thread_id=thread, assistant_id=asst, poll_interval_ms=POLL_MS
    )
    assert run.status == "requires_action"
    paused = await raw_run(client, thread, run.id)
    assert paused.required_action is not None
    (tool_call,) = paused.required_action.submit_tool_outputs.tool_calls
    assert tool_call.type == "function" and tool_call.function.name == "get_weather"
    assert json.loads(tool_call.function.arguments) == {"city": "Paris"}
    assert paused.usage is None
    assert paused.tools[0].type == "function"
    # Nothing of the turn is in the thread while it waits.
    assert thread_messages(api, thread) == [("user", "Weather in Paris?")]

    finished = await client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id,
        thread_id=thread,
        tool_outputs=[{"tool_call_id": tool_call.id, "output": "sunny"}],
        poll_interval_ms=POLL_MS,
    )
    assert finished.status == "completed"
    assert last_tool_output(brain.requests[-1]) == "sunny"
    assert thread_messages(api, thread)[-1] == ("assistant", "It is sunny in Paris.")

    # Steps: the tool call (with its output), then the message; the model call that only
    # asked for the tool is no step of its own, as in OpenAI's listing.
    listed = await client.beta.threads.runs.steps.with_raw_response.list(
        run_id=run.id, thread_id=thread, order="asc"
    )
    body = listed.http_response.json()
    steps = [conforms(RunStep, s) for s in body["data"]]
    assert [s.type for s in steps] == ["tool_calls", "message_creation"]
    assert all(s.status == "completed" for s in steps)
    assert all(s.id.startswith("step_") and s.run_id == run.id for s in steps)
    calls_step = steps[0].step_details
    assert calls_step.type == "tool_calls"
    (made,) = calls_step.tool_calls
    assert made.type == "function"
    assert (made.id, made.function.name, made.function.output) == (
        tool_call.id,
        "get_weather",
        "sunny",
    )
    message_step = steps[1].step_details
    assert message_step.type == "message_creation"
    message_id = message_step.message_creation.message_id
    saved = api.call(
        api.store.for_tenant("acme").list_messages(ids.parse_id(ids.THREAD, thread), limit=100)
    ).items
    assert ids.parse_id(ids.MESSAGE, message_id) == saved[-1].id
    assert steps[1].usage is not None and steps[1].usage.total_tokens > 0

    fetched = await client.beta.threads.runs.steps.with_raw_response.retrieve(
        steps[0].id, thread_id=thread, run_id=run.id
    )
    assert conforms(RunStep, fetched.http_response.json()) == steps[0]
    newest = await client.beta.threads.runs.steps.list(run_id=run.id, thread_id=thread, limit=1)
    assert [s.id for s in newest.data] == [steps[1].id] and newest.has_more
    with pytest.raises(openai.NotFoundError):
        await client.beta.threads.runs.steps.retrieve(
            ids.new_id(ids.STEP), thread_id=thread, run_id=run.id
        )
    # OpenAI's include[] takes one value (file_search contents: none here); others are 400s.
    contents: Any = "step_details.tool_calls[*].file_search.results[*].content"
    included = await client.beta.threads.runs.steps.list(
        run_id=run.id, thread_id=thread, include=[contents]
    )
    assert [s.id for s in included.data] == [s.id for s in steps[::-1]]
    with pytest.raises(openai.BadRequestError) as unknown_include:
        await client.beta.threads.runs.steps.retrieve(
            steps[0].id,
            thread_id=thread,
            run_id=run.id,
            include=["step_details.secrets"],  # type: ignore[list-item]
        )
    assert unknown_include.value.body["param"] == "include[]"  # type: ignore[index]

    # A run no longer waiting takes no outputs.
    with pytest.raises(openai.BadRequestError, match="do not accept tool outputs"):
        await client.beta.threads.runs.submit_tool_outputs(
            run_id=run.id,
            thread_id=thread,
            tool_outputs=[{"tool_call_id": tool_call.id, "output": "rain"}],
        )


async def test_wrong_tool_outputs_are_refused_and_the_run_keeps_waiting(
    api: RunningApi, client: openai.AsyncOpenAI, brain: Brain
) -> None:
    brain.answer = lambda request: calls(call("get_weather", city="Oslo"))
    asst = await assistant(client, tools=[WEATHER])
    thread = new_thread(api, "Weather in Oslo?")
    run = await client.beta.threads.runs.create_and_poll(
        thread_id=thread, assistant_id=asst, poll_interval_ms=POLL_MS
    )
    assert run.status == "requires_action"
    with pytest.raises(openai.BadRequestError):
        await client.beta.threads.runs.submit_tool_outputs(
            run_id=run.id, thread_id=thread, tool_outputs=[{"tool_call_id": "nope", "output": "x"}]
        )
    assert (await raw_run(client, thread, run.id)).status == "requires_action"


async def test_create_and_run_makes_the_thread_and_runs_it(
    api: RunningApi, client: openai.AsyncOpenAI, brain: Brain
) -> None:
    brain.answer = lambda request: f"You said {len(request.messages)} things."
    asst = await assistant(client)
    created = await client.beta.threads.with_raw_response.create_and_run(
        assistant_id=asst,
        thread={
            "messages": [
                {"role": "user", "content": "one"},
                {"role": "user", "content": [{"type": "text", "text": "two"}]},
            ],
            "metadata": {"topic": "count"},
        },
        metadata={"run": "first"},
    )
    started = conforms(Run, created.http_response.json())
    assert started.thread_id.startswith("thread_")
    run = await client.beta.threads.runs.poll(
        started.id, thread_id=started.thread_id, poll_interval_ms=POLL_MS
    )
    assert run.status == "completed" and run.metadata == {"run": "first"}
    assert thread_messages(api, run.thread_id) == [
        ("user", "one"),
        ("user", "two"),
        ("assistant", "You said 2 things."),
    ]
    thread = api.call(
        api.store.for_tenant("acme").get_thread(ids.parse_id(ids.THREAD, run.thread_id))
    )
    assert thread.metadata == {"topic": "count"}
    assert ids.format_id(ids.ASSISTANT, thread.agent_id) == asst

    polled = await client.beta.threads.create_and_run_poll(
        assistant_id=asst,
        thread={"messages": [{"role": "user", "content": "hi"}]},
        poll_interval_ms=POLL_MS,
    )
    assert polled.status == "completed"
    assert thread_messages(api, polled.thread_id)[-1] == ("assistant", "You said 1 things.")


async def test_a_run_that_cannot_start_leaves_no_thread_behind(
    api: RunningApi, client: openai.AsyncOpenAI
) -> None:
    asst = await assistant(client)
    store = api.store.for_tenant("acme")
    before = api.call(store.list_threads(limit=100)).items
    with pytest.raises(openai.BadRequestError) as refused:
        await client.beta.threads.create_and_run(
            assistant_id=asst,
            thread={"messages": [{"role": "user", "content": "hi"}]},
            model="no-such-model-anywhere",
        )
    assert refused.value.body["param"] == "model"  # type: ignore[index]
    await client.beta.assistants.delete(asst)
    with pytest.raises(openai.NotFoundError):
        await client.beta.threads.create_and_run(
            assistant_id=asst, thread={"messages": [{"role": "user", "content": "hi"}]}
        )
    assert api.call(store.list_threads(limit=100)).items == before

    # A failure once the thread exists (here: the tenant's thread size limit) removes it.
    api.call(api.store.set_tenant_limits("tiny", max_thread_bytes=200))
    tiny = api.store.for_tenant("tiny")
    async with sdk(api, "tiny") as small:
        theirs = await assistant(small)
        with pytest.raises(openai.APIStatusError):
            await small.beta.threads.create_and_run(
                assistant_id=theirs, thread={"messages": [{"role": "user", "content": "x" * 500}]}
            )
    assert api.call(tiny.list_threads(limit=100)).items == []


# --- cancel and the thread's one active run ----------------------------------------------


async def test_cancel_stops_a_slow_run_and_saves_nothing_of_it(
    api: RunningApi, client: openai.AsyncOpenAI, brain: Brain
) -> None:
    gate = Gate()
    brain.answer = gate
    asst = await assistant(client)
    thread = new_thread(api, "Take your time.")
    run = await client.beta.threads.runs.create(thread_id=thread, assistant_id=asst)
    await gate.wait_entered()

    cancelling = await client.beta.threads.runs.with_raw_response.cancel(run.id, thread_id=thread)
    assert conforms(Run, cancelling.http_response.json()).status in ("cancelling", "cancelled")
    ended = await client.beta.threads.runs.poll(run.id, thread_id=thread, poll_interval_ms=POLL_MS)
    assert ended.status == "cancelled"
    cancelled = await raw_run(client, thread, run.id)
    assert cancelled.cancelled_at is not None and cancelled.last_error is None
    assert thread_messages(api, thread) == [("user", "Take your time.")]
    with pytest.raises(openai.BadRequestError, match="Cannot cancel run with status 'cancelled'"):
        await client.beta.threads.runs.cancel(run.id, thread_id=thread)

    # The thread is free again.
    gate.opened.set()
    brain.answer = lambda request: "now"
    again = await client.beta.threads.runs.create_and_poll(
        thread_id=thread, assistant_id=asst, poll_interval_ms=POLL_MS
    )
    assert again.status == "completed"
    assert thread_messages(api, thread)[-1] == ("assistant", "now")


async def test_a_second_run_on_a_busy_thread_is_a_400_naming_the_active_run(
    api: RunningApi, client: openai.AsyncOpenAI, brain: Brain
) -> None:
    gate = Gate(reply="first answer")
    brain.answer = gate
    asst = await assistant(client)
    thread = new_thread(api, "hello")
    first = await client.beta.threads.runs.create(thread_id=thread, assistant_id=asst)
    await gate.wait_entered()

    with pytest.raises(openai.BadRequestError) as busy:
        await client.beta.threads.runs.create(
            thread_id=thread,
            assistant_id=asst,
            additional_messages=[{"role": "user", "content": "me too"}],
        )
    assert busy.value.body["message"] == f"Thread {thread} already has an active run {first.id}."  # type: ignore[index]
    gate.opened.set()
    done = await client.beta.threads.runs.poll(first.id, thread_id=thread, poll_interval_ms=POLL_MS)
    assert done.status == "completed"
    # The refused run added nothing.
    assert thread_messages(api, thread) == [("user", "hello"), ("assistant", "first answer")]
    runs = await client.beta.threads.runs.list(thread_id=thread)
    assert [r.id for r in runs.data] == [first.id]


# --- overrides ---------------------------------------------------------------------------------


async def test_run_overrides_reach_the_model_and_show_on_the_run(
    api: RunningApi, client: openai.AsyncOpenAI, brain: Brain
) -> None:
    brain.answer = lambda request: '{"ok": true}'
    asst = await assistant(
        client, instructions="Assistant's own.", top_p=0.7, response_format={"type": "json_object"}
    )
    thread = new_thread(api, "old one", "old two")

    # Without overrides: the assistant's own top_p and response format are used.
    plain = await client.beta.threads.runs.create_and_poll(
        thread_id=thread, assistant_id=asst, poll_interval_ms=POLL_MS
    )
    assert plain.status == "completed"
    request = brain.requests[-1]
    assert request.top_p == 0.7
    assert request.response_format is not None and request.response_format.type == "json_object"
    shown = await raw_run(client, thread, plain.id)
    assert shown.top_p == 0.7
    assert shown.response_format is not None and shown.response_format.type == "json_object"  # type: ignore[union-attr]

    run = await client.beta.threads.runs.create_and_poll(
        thread_id=thread,
        assistant_id=asst,
        model="scripted/roomy",
        instructions="Be brief.",
        additional_instructions="Answer in French.",
        additional_messages=[{"role": "user", "content": "new question"}],
        temperature=0.2,
        top_p=0.5,
        truncation_strategy={"type": "last_messages", "last_messages": 1},
        tool_choice="none",
        parallel_tool_calls=False,
        response_format={"type": "text"},
        max_prompt_tokens=5000,
        max_completion_tokens=500,
        poll_interval_ms=POLL_MS,
    )
    assert run.status == "completed"
    request = brain.requests[-1]
    assert request.system_prompt == "Be brief.\n\nAnswer in French."
    assert (request.temperature, request.top_p) == (0.2, 0.5)
    assert request.tool_choice == "none" and request.parallel_tool_calls is False
    assert [(m.role, m.text) for m in request.messages] == [("user", "new question")]
    shown = await raw_run(client, thread, run.id)
    assert shown.instructions == "Be brief.\n\nAnswer in French."
    assert (shown.temperature, shown.top_p) == (0.2, 0.5)
    assert shown.truncation_strategy is not None
    assert shown.truncation_strategy.model_dump() == {"type": "last_messages", "last_messages": 1}
    assert (shown.tool_choice, shown.parallel_tool_calls) == ("none", False)
    assert (shown.max_prompt_tokens, shown.max_completion_tokens) == (5000, 500)
    assert thread_messages(api, thread)[-2:] == [
        ("user", "new question"),
        ("assistant", '{"ok": true}'),
    ]

    # Function tools given to the run replace the assistant's for that run.
    brain.answer = lambda request: calls(call("get_weather", city="Rome"))
    paused = await client.beta.threads.runs.create_and_poll(
        thread_id=thread,
        assistant_id=asst,
        tools=[WEATHER],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        poll_interval_ms=POLL_MS,
    )
    assert paused.status == "requires_action"
    assert [t.name for t in brain.requests[-1].tools] == ["get_weather"]
    assert brain.requests[-1].tool_choice == "get_weather"
    shown = await raw_run(client, thread, paused.id)
    assert shown.tools[0].type == "function"
    assert shown.tool_choice is not None and shown.tool_choice.model_dump() == {  # type: ignore[union-attr]
        "type": "function",
        "function": {"name": "get_weather"},
    }
    await client.beta.threads.runs.cancel(paused.id, thread_id=thread)


async def test_unsupported_and_invalid_parameters_are_400s(
    api: RunningApi, client: openai.AsyncOpenAI
) -> None:
    asst = await assistant(client)
    thread = new_thread(api, "hi")
    cases: list[tuple[dict[str, Any], str]] = [
        ({"stream": "yes"}, "stream"),
        (
            {"tools": [{"type": "file_search", "file_search": {"max_num_results": 0}}]},
            "tools[0].file_search.max_num_results",
        ),
        ({"tools": [{"type": "code_interpreter"}]}, "tools[0].type"),
        ({"temperature": 3}, "temperature"),
        (
            {"truncation_strategy": {"type": "last_messages", "last_messages": 0}},
            "truncation_strategy.last_messages",
        ),
        ({"max_completion_tokens": 0}, "max_completion_tokens"),
        (
            {"additional_messages": [{"role": "system", "content": "x"}]},
            "additional_messages[0].role",
        ),
        ({"colour": "blue"}, "colour"),
    ]
    for extra, param in cases:
        with pytest.raises(openai.BadRequestError) as refused:
            await client.beta.threads.runs.create(
                thread_id=thread, assistant_id=asst, extra_body=extra
            )
        assert refused.value.body["param"] == param, (extra, refused.value.body)  # type: ignore[index]
    # Nothing was started or added by the refused runs.
    assert (await client.beta.threads.runs.list(thread_id=thread)).data == []
    assert thread_messages(api, thread) == [("user", "hi")]


async def test_max_completion_tokens_ends_the_run_incomplete(
    api: RunningApi, client: openai.AsyncOpenAI, brain: Brain
) -> None:
    brain.answer = lambda request: ProviderResponse(
        content="A long answ", finish_reason="length", usage=Usage(20, 8)
    )
    asst = await assistant(client)
    thread = new_thread(api, "Tell me everything.")
    run = await client.beta.threads.runs.create_and_poll(
        thread_id=thread, assistant_id=asst, max_completion_tokens=8, poll_interval_ms=POLL_MS
    )
    assert run.status == "incomplete"
    assert brain.requests[-1].max_output_tokens == 8
    shown = await raw_run(client, thread, run.id)
    assert shown.incomplete_details is not None
    assert shown.incomplete_details.reason == "max_completion_tokens"
    assert shown.usage is not None and shown.usage.completion_tokens == 8


async def test_a_failed_run_reports_its_error(
    api: RunningApi, client: openai.AsyncOpenAI, brain: Brain
) -> None:
    def broken(request: ProviderRequest) -> str:
        raise RuntimeError("model exploded")

    brain.answer = broken
    asst = await assistant(client)
    thread = new_thread(api, "hi")
    run = await client.beta.threads.runs.create_and_poll(
        thread_id=thread, assistant_id=asst, poll_interval_ms=POLL_MS
    )
    assert run.status == "failed"
    shown = await raw_run(client, thread, run.id)
    assert shown.last_error is not None and shown.last_error.code == "server_error"
    assert shown.failed_at is not None and shown.usage is not None
    assert thread_messages(api, thread) == [("user", "hi")]


# --- listing, modifying, not found ----------------------------------------------------------


async def test_list_runs_pages_by_run_ids(
    api: RunningApi, client: openai.AsyncOpenAI, brain: Brain
) -> None:
    asst = await assistant(client)
    thread = new_thread(api, "hi")
    made = []
    for _ in range(4):
        run = await client.beta.threads.runs.create_and_poll(
            thread_id=thread, assistant_id=asst, poll_interval_ms=POLL_MS
        )
        made.append(run.id)

    first = await client.beta.threads.runs.with_raw_response.list(thread_id=thread, limit=2)
    body = first.http_response.json()
    for item in body["data"]:
        conforms(Run, item)
    newest = made[::-1]
    assert [r["id"] for r in body["data"]] == newest[:2]  # default order: newest first
    assert (body["object"], body["first_id"], body["last_id"], body["has_more"]) == (
        "list",
        newest[0],
        newest[1],
        True,
    )
    page = await client.beta.threads.runs.list(thread_id=thread, limit=2, after=newest[1])
    assert [r.id for r in page.data] == newest[2:] and not page.has_more
    asc = await client.beta.threads.runs.list(thread_id=thread, order="asc", after=made[0])
    assert [r.id for r in asc.data] == made[1:]
    before = await client.beta.threads.runs.list(thread_id=thread, limit=2, before=newest[3])
    assert [r.id for r in before.data] == newest[1:3]
    walked = [r.id async for r in client.beta.threads.runs.list(thread_id=thread, limit=1)]
    assert walked == newest
    with pytest.raises(openai.NotFoundError):
        await client.beta.threads.runs.list(thread_id=thread, after=ids.new_id(ids.RUN))


async def test_modify_a_runs_metadata(api: RunningApi, client: openai.AsyncOpenAI) -> None:
    asst = await assistant(client)
    thread = new_thread(api, "hi")
    run = await client.beta.threads.runs.create_and_poll(
        thread_id=thread, assistant_id=asst, metadata={"a": "1"}, poll_interval_ms=POLL_MS
    )
    updated = await client.beta.threads.runs.with_raw_response.update(
        run.id, thread_id=thread, metadata={"a": "2", "b": "3"}
    )
    assert conforms(Run, updated.http_response.json()).metadata == {"a": "2", "b": "3"}
    assert (await raw_run(client, thread, run.id)).metadata == {"a": "2", "b": "3"}
    assert (await raw_run(client, thread, run.id)).status == "completed"


async def test_runs_of_other_threads_and_tenants_are_404s(
    api: RunningApi, client: openai.AsyncOpenAI
) -> None:
    asst = await assistant(client)
    thread = new_thread(api, "hi")
    other_thread = new_thread(api, "other")
    run = await client.beta.threads.runs.create_and_poll(
        thread_id=thread, assistant_id=asst, poll_interval_ms=POLL_MS
    )
    runs = client.beta.threads.runs
    not_found: list[Any] = [
        runs.retrieve(ids.new_id(ids.RUN), thread_id=thread),
        runs.retrieve("run_nonsense", thread_id=thread),
        runs.retrieve(run.id, thread_id=other_thread),
        runs.cancel(run.id, thread_id=other_thread),
        runs.update(run.id, thread_id=other_thread, metadata={"x": "y"}),
        runs.steps.list(run_id=run.id, thread_id=other_thread),
        runs.list(thread_id=ids.new_id(ids.THREAD)),
        runs.create(thread_id=ids.new_id(ids.THREAD), assistant_id=asst),
        runs.create(thread_id=thread, assistant_id=ids.new_id(ids.ASSISTANT)),
    ]
    for attempt in not_found:
        with pytest.raises(openai.NotFoundError):
            await attempt

    async with sdk(api, "globex") as other:
        foreign = other.beta.threads.runs
        attempts: list[Any] = [
            foreign.retrieve(run.id, thread_id=thread),
            foreign.list(thread_id=thread),
            foreign.update(run.id, thread_id=thread, metadata={"x": "y"}),
            foreign.cancel(run.id, thread_id=thread),
            foreign.steps.list(run_id=run.id, thread_id=thread),
            foreign.create(thread_id=thread, assistant_id=asst),
        ]
        for attempt in attempts:
            with pytest.raises(openai.NotFoundError):
                await attempt
        # Their own thread cannot use our assistant either.
        theirs = new_thread(api, "hi", tenant="globex")
        with pytest.raises(openai.NotFoundError):
            await foreign.create(thread_id=theirs, assistant_id=asst)
    assert (await raw_run(client, thread, run.id)).metadata == {}
