"""``/v1/threads/{thread_id}/runs``, ``/v1/threads/runs`` and run steps: OpenAI's runs.

Creating a run gives the thread to the run's assistant (``store.assign_agent``), adds
``additional_messages``, starts the run in the background and answers at once with the
run (``in_progress``); the client polls it, as with OpenAI. The run's overrides
(``model``, ``instructions``, ``tools``, ``temperature``...) are this server's per-run
overrides (:mod:`ai_agents.runs.overrides`), validated before anything is written, so a
refused run leaves the thread as it was. One run at a time holds a thread: a second one
is a 400 naming the active run, as OpenAI answers.

When the model calls a function tool the run waits in ``requires_action``;
``submit_tool_outputs`` resumes it, again in the background. Cancel works in any
process; nothing of a cancelled run's turn is saved. With ``stream: true`` the answer is
OpenAI's Assistants event stream instead (:mod:`api.compat.run_events`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any, TypeVar
from uuid import UUID

from litestar import Response, get, post
from litestar.background_tasks import BackgroundTask
from litestar.datastructures import State
from litestar.params import Parameter
from litestar.response import Stream

from ai_agents.api.auth import Principal
from ai_agents.api.compat import attachments, fields, ids, tool_resources
from ai_agents.api.compat.assistants import MAX_INSTRUCTIONS, find_assistant, parse_tools
from ai_agents.api.compat.catalog import resolve_model
from ai_agents.api.compat.errors import invalid
from ai_agents.api.compat.lists import ListQuery, envelope, list_query
from ai_agents.api.compat.objects import load_new_messages, new_messages, thread_object
from ai_agents.api.compat.run_events import AssistantEvents, Event, RunEvents, sse_body
from ai_agents.api.compat.run_objects import run_object, shown, step_object
from ai_agents.api.compat.run_objects import step_id as public_step_id
from ai_agents.api.compat.run_tasks import start_in_background
from ai_agents.api.compat.threads import with_resources
from ai_agents.errors import NotFoundError, RunStateError, ThreadBusyError, ValidationError
from ai_agents.files.search import FILE_SEARCH
from ai_agents.messages import Message
from ai_agents.records import AgentRecord
from ai_agents.response import RunEvent, RunStartedEvent
from ai_agents.runs import listing
from ai_agents.runs.records import RunRecord, RunStep
from ai_agents.store import AgentStore

TAGS = ["openai: runs"]
MAX_TOOL_OUTPUTS = 128
MAX_OUTPUT_CHARS = 512_000

#: What a run may change of its assistant (create, and create-and-run).
_OVERRIDES = (
    "model",
    "instructions",
    "tools",
    "metadata",
    "temperature",
    "top_p",
    "max_prompt_tokens",
    "max_completion_tokens",
    "truncation_strategy",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
    "stream",
)
_CREATE = ("assistant_id", "additional_instructions", "additional_messages", *_OVERRIDES)
_CREATE_AND_RUN = ("assistant_id", "thread", "tool_resources", *_OVERRIDES)
_THREAD = ("messages", "metadata", "tool_resources")
#: Our override names → OpenAI's parameters, for the ``param`` of a 400.
_PARAMS = {"client_tools": "tools", "truncation": "truncation_strategy"}
_RESOURCES = "tool_resources"

Limit = Annotated[str | None, Parameter(query="limit", required=False)]
Order = Annotated[str | None, Parameter(query="order", required=False)]
After = Annotated[str | None, Parameter(query="after", required=False)]
Before = Annotated[str | None, Parameter(query="before", required=False)]
#: OpenAI's ``include[]`` of run steps: file_search result contents, the only value it
#: takes (the passages the search gave the model); an unknown value is a 400 naming it,
#: as OpenAI answers.
Include = Annotated[list[str] | None, Parameter(query="include[]", required=False)]
_CONTENT = "step_details.tool_calls[*].file_search.results[*].content"


def _with_content(include: list[str] | None) -> bool:
    """Does ``include[]`` ask for the passages of file_search results? (400 when unknown)"""
    for value in include or ():
        if value != _CONTENT:
            raise invalid(f"include[] must be one of: {_CONTENT}; got {value!r}", "include[]")
    return bool(include)


# --- request bodies ---------------------------------------------------------------------


def _body(data: Any, known: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise invalid("the request body must be a JSON object")
    fields.reject_unknown(data, known)
    if data.get("stream") is not None and not isinstance(data["stream"], bool):
        raise invalid("stream must be a boolean", "stream")
    return data


def _tool_choice(value: Any) -> Any:
    if isinstance(value, dict):
        kind = value.get("type")
        if kind == FILE_SEARCH:
            return FILE_SEARCH
        if kind == "code_interpreter":
            raise invalid(f"tool_choice: the {kind} tool is not supported by this server")
        name = (value.get("function") or {}).get("name") if kind == "function" else None
        if not isinstance(name, str):
            raise invalid(
                "tool_choice must be 'none', 'auto', 'required' or "
                "{'type': 'function', 'function': {'name': ...}}",
                "tool_choice",
            )
        return name
    return value


def _wanted(body: dict[str, Any], agent: AgentRecord) -> dict[str, Any]:
    """The per-run overrides *body* asks for, with the assistant's ``top_p`` and
    ``response_format`` when the run does not set them (the loop knows only the agent's
    own settings)."""
    extra = agent.assistant_fields
    wanted: dict[str, Any] = {}
    if body.get("model") is not None:
        wanted["provider"], wanted["model"] = resolve_model(body["model"])
    for name in ("instructions", "additional_instructions"):
        wanted[name] = fields.optional_text(body.get(name), name, MAX_INSTRUCTIONS)
    if body.get("tools") is not None:
        _, wanted["client_tools"], wanted["tools"] = parse_tools(body["tools"])
    wanted["temperature"] = fields.optional_number(body.get("temperature"), "temperature", 0, 2)
    top_p = body.get("top_p")
    wanted["top_p"] = fields.optional_number(
        top_p if top_p is not None else extra.get("top_p"), "top_p", 0, 1
    )
    for name in ("max_prompt_tokens", "max_completion_tokens", "parallel_tool_calls"):
        wanted[name] = body.get(name)
    wanted["truncation"] = body.get("truncation_strategy")
    wanted["tool_choice"] = _tool_choice(body.get("tool_choice"))
    fmt = body.get("response_format")
    if fmt is None:
        fmt = extra.get("response_format")
    wanted["response_format"] = None if fmt == "auto" else fmt
    return {k: v for k, v in wanted.items() if v is not None}


# --- reading ------------------------------------------------------------------------------


async def _thread(store: AgentStore, thread_id: str) -> UUID:
    ident = ids.parse_id(ids.THREAD, thread_id)
    try:
        await store.get_thread(ident)
    except NotFoundError:
        raise NotFoundError("thread", thread_id) from None
    return ident


async def _run(store: AgentStore, thread_id: str, run_id: str) -> RunRecord:
    """The run *run_id* of the thread *thread_id*; a 404 when it is another thread's."""
    thread = ids.parse_id(ids.THREAD, thread_id)
    ident = ids.parse_id(ids.RUN, run_id)
    try:
        run = await store.get_run(ident)
    except NotFoundError:
        run = None
    if run is None or run.thread_id != thread:
        raise NotFoundError("run", run_id)
    return run


async def _agents(store: AgentStore, runs: list[RunRecord]) -> dict[UUID, AgentRecord]:
    found: dict[UUID, AgentRecord] = {}
    for run in runs:
        if run.agent_id not in found:
            found[run.agent_id] = await store.get_agent(run.agent_id)
    return found


async def _answer(store: AgentStore, run: RunRecord) -> dict[str, Any]:
    return run_object(run, (await _agents(store, [run]))[run.agent_id])


# --- starting -----------------------------------------------------------------------------


async def _busy(store: AgentStore, thread: UUID) -> ValidationError:
    active = await listing.active_run(store.engine, store.scope, thread)
    holder = f" {ids.format_id(ids.RUN, active)}" if active else ""
    return invalid(f"Thread {ids.format_id(ids.THREAD, thread)} already has an active run{holder}.")


T = TypeVar("T")
Starter = Callable[[AsyncIterator[RunEvent]], Awaitable[T]]


def _background(state: State) -> Starter[UUID]:
    return lambda events: start_in_background(events, state.run_tasks)


def _streamed(state: State) -> Starter[tuple[RunEvents, RunStartedEvent]]:
    return lambda events: RunEvents.open(events, state.run_tasks)


def _sse(
    store: AgentStore,
    agent: AgentRecord,
    opened: tuple[RunEvents, RunStartedEvent],
    *,
    opening: list[Event] | None = None,
    steps: list[RunStep] | None = None,
) -> Response[Any]:
    """The started run's events as OpenAI's Assistants stream (``text/event-stream``)."""
    stream, started = opened
    translator = AssistantEvents(store, agent, started, steps=steps)
    return Stream(
        sse_body(translator, stream, opening or []),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        background=BackgroundTask(stream.cancel),
    )


async def _launch(
    principal: Principal,
    start: Starter[T],
    thread: UUID,
    agent: AgentRecord,
    *,
    messages: list[Message],
    metadata: dict[str, str],
    overrides: dict[str, Any],
) -> T:
    """Give the thread to *agent*, add *messages*, start the run (*start*: in the
    background, or streamed); what *start* gives once the run has started.

    A run already holding the thread is refused before *messages* are added (a run
    that takes the thread between that check and this run's start still leaves them).
    """
    store = principal.tenant_store
    try:
        if await listing.active_run(store.engine, store.scope, thread) is not None:
            raise ThreadBusyError(thread)
        await store.assign_agent(thread, agent.id)
        if messages:
            await store.add_messages(thread, messages)
            await attachments.index(principal, thread, messages)
        events = store.stream(thread, None, on_busy="reject", metadata=metadata, **overrides)
        return await start(events)
    except ThreadBusyError:
        raise await _busy(store, thread) from None


@post("/threads/{thread_id:str}/runs", tags=TAGS, summary="Create a run", status_code=200)
async def create_run(
    thread_id: str,
    data: dict[str, Any],
    principal: Principal,
    state: State,
    include: Include = None,
) -> Response[Any]:
    _with_content(include)
    store = principal.tenant_store
    body = _body(data, _CREATE)
    if "assistant_id" not in body:
        raise invalid("you must provide an assistant_id parameter", "assistant_id")
    thread = await _thread(store, thread_id)
    agent = await find_assistant(store, body["assistant_id"])
    overrides = _wanted(body, agent)
    fields.check_overrides(store, overrides, _PARAMS)
    messages = new_messages(body.get("additional_messages"), "additional_messages")
    await load_new_messages(principal, messages)
    metadata = fields.metadata(body.get("metadata"))
    launch: dict[str, Any] = {"messages": messages, "metadata": metadata, "overrides": overrides}
    if body.get("stream"):
        return _sse(
            store, agent, await _launch(principal, _streamed(state), thread, agent, **launch)
        )
    run_id = await _launch(principal, _background(state), thread, agent, **launch)
    return Response(run_object(await store.get_run(run_id), agent))


@post("/threads/runs", tags=TAGS, summary="Create a thread and run it", status_code=200)
async def create_thread_and_run(
    data: dict[str, Any], principal: Principal, state: State
) -> Response[Any]:
    store = principal.tenant_store
    body = _body(data, _CREATE_AND_RUN)
    if "assistant_id" not in body:
        raise invalid("you must provide an assistant_id parameter", "assistant_id")
    spec = body.get("thread") or {}
    if not isinstance(spec, dict):
        raise invalid("thread must be an object", "thread")
    for name in spec:
        if name not in _THREAD:
            raise invalid(
                f"Unrecognized request argument supplied: thread.{name}", f"thread.{name}"
            )
    messages = new_messages(spec.get("messages"), "thread.messages")
    await load_new_messages(principal, messages)
    thread_metadata = fields.metadata(spec.get("metadata"), "thread.metadata")
    agent = await find_assistant(store, body["assistant_id"])
    overrides = _wanted(body, agent)
    fields.check_overrides(store, overrides, _PARAMS)
    metadata = fields.metadata(body.get("metadata"))
    # The run's resources and its new thread's are both the thread's: it is this run's.
    given = [
        await tool_resources.checked(principal, spec.get(_RESOURCES), f"thread.{_RESOURCES}"),
        await tool_resources.checked(principal, body.get(_RESOURCES), _RESOURCES),
    ]
    thread_metadata = with_resources(
        thread_metadata, await tool_resources.stored_all(principal, given)
    )
    thread = await store.create_unassigned_thread(metadata=thread_metadata)
    launch: dict[str, Any] = {"messages": messages, "metadata": metadata, "overrides": overrides}
    try:
        if body.get("stream"):
            created = thread_object(await store.get_thread(thread))
            opened = await _launch(principal, _streamed(state), thread, agent, **launch)
            return _sse(store, agent, opened, opening=[("thread.created", created)])
        run_id = await _launch(principal, _background(state), thread, agent, **launch)
    except Exception:
        # The thread is this request's own: a run that could not start takes it along.
        await store.delete_thread(thread)
        raise
    return Response(run_object(await store.get_run(run_id), agent))


# --- reading, changing, cancelling ----------------------------------------------------------


@get("/threads/{thread_id:str}/runs/{run_id:str}", tags=TAGS, summary="Retrieve a run")
async def retrieve_run(thread_id: str, run_id: str, principal: Principal) -> dict[str, Any]:
    store = principal.tenant_store
    return await _answer(store, await _run(store, thread_id, run_id))


@get("/threads/{thread_id:str}/runs", tags=TAGS, summary="List runs")
async def list_runs(
    thread_id: str,
    principal: Principal,
    limit: Limit = None,
    order: Order = None,
    after: After = None,
    before: Before = None,
) -> dict[str, Any]:
    store = principal.tenant_store
    query = list_query(limit, order, after, before)
    thread = await _thread(store, thread_id)
    await store.runner.runs.sweep(thread_id=thread)  # a run whose process died: expired
    found, has_more = await listing.page_runs(
        store.engine,
        store.scope,
        thread,
        limit=query.limit,
        order=query.order,
        after=ids.parse_id(ids.RUN, query.after) if query.after else None,
        before=ids.parse_id(ids.RUN, query.before) if query.before else None,
    )
    agents = await _agents(store, found)
    return envelope([run_object(r, agents[r.agent_id]) for r in found], has_more)


@post(
    "/threads/{thread_id:str}/runs/{run_id:str}", tags=TAGS, summary="Modify a run", status_code=200
)
async def modify_run(
    thread_id: str, run_id: str, data: dict[str, Any], principal: Principal
) -> dict[str, Any]:
    store = principal.tenant_store
    body = _body(data, ("metadata",))
    run = await _run(store, thread_id, run_id)
    if "metadata" in body:
        run = await listing.set_metadata(
            store.engine, store.scope, run.id, fields.metadata(body["metadata"])
        )
    return await _answer(store, run)


@post(
    "/threads/{thread_id:str}/runs/{run_id:str}/cancel",
    tags=TAGS,
    summary="Cancel a run",
    status_code=200,
)
async def cancel_run(thread_id: str, run_id: str, principal: Principal) -> dict[str, Any]:
    store = principal.tenant_store
    run = await _run(store, thread_id, run_id)
    if run.is_terminal:
        raise invalid(f"Cannot cancel run with status '{run.status}'.")
    return await _answer(store, await store.cancel_run(run.id))


def _tool_outputs(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise invalid("tool_outputs must be a non-empty array", "tool_outputs")
    if len(value) > MAX_TOOL_OUTPUTS:
        raise invalid(f"tool_outputs may have at most {MAX_TOOL_OUTPUTS} entries", "tool_outputs")
    outputs: list[dict[str, Any]] = []
    for i, item in enumerate(value):
        where = f"tool_outputs[{i}]"
        if not isinstance(item, dict):
            raise invalid(f"{where} must be an object", where)
        for name in item:
            if name not in ("tool_call_id", "output"):
                raise invalid(f"Unrecognized request argument supplied: {where}.{name}", where)
        call_id = item.get("tool_call_id")
        if not isinstance(call_id, str) or not call_id:
            raise invalid(f"{where}.tool_call_id must be a string", f"{where}.tool_call_id")
        output = fields.optional_text(item.get("output"), f"{where}.output", MAX_OUTPUT_CHARS)
        outputs.append({"tool_call_id": call_id, "output": output or ""})
    return outputs


@post(
    "/threads/{thread_id:str}/runs/{run_id:str}/submit_tool_outputs",
    tags=TAGS,
    summary="Submit tool outputs to a run",
    status_code=200,
)
async def submit_tool_outputs(
    thread_id: str, run_id: str, data: dict[str, Any], principal: Principal, state: State
) -> Response[Any]:
    store = principal.tenant_store
    body = _body(data, ("tool_outputs", "stream"))
    run = await _run(store, thread_id, run_id)
    if run.status != "requires_action":
        raise invalid(f'Runs in status "{run.status}" do not accept tool outputs.')
    outputs = _tool_outputs(body.get("tool_outputs"))
    events = store.stream_tool_outputs(run.id, outputs)
    try:
        if body.get("stream"):
            steps = await store.list_run_steps(run.id)  # as paused: the stream goes on
            opened = await _streamed(state)(events)
            return _sse(store, await store.get_agent(run.agent_id), opened, steps=steps)
        await _background(state)(events)
    except RunStateError as exc:  # it left requires_action meanwhile
        raise invalid(exc.message) from None
    return Response(await _answer(store, await store.get_run(run.id)))


# --- steps ------------------------------------------------------------------------------------


def _page(items: list[RunStep], query: ListQuery) -> tuple[list[RunStep], bool]:
    """OpenAI's paging over a run's (few) steps, by step ids."""
    ordered = sorted(items, key=lambda s: s.seq, reverse=query.order == "desc")
    position = {public_step_id(s.run_id, s.seq): i for i, s in enumerate(ordered)}
    start, end = 0, len(ordered)
    for cursor, is_after in ((query.after, True), (query.before, False)):
        if cursor is None:
            continue
        if cursor not in position:
            raise NotFoundError("run step", cursor)
        if is_after:
            start = max(start, position[cursor] + 1)
        else:
            end = min(end, position[cursor])
    window = ordered[start:end]
    if query.before is not None and query.after is None:
        return window[-query.limit :], len(window) > query.limit
    return window[: query.limit], len(window) > query.limit


@get("/threads/{thread_id:str}/runs/{run_id:str}/steps", tags=TAGS, summary="List run steps")
async def list_run_steps(
    thread_id: str,
    run_id: str,
    principal: Principal,
    limit: Limit = None,
    order: Order = None,
    after: After = None,
    before: Before = None,
    include: Include = None,
) -> dict[str, Any]:
    content = _with_content(include)
    store = principal.tenant_store
    query = list_query(limit, order, after, before)
    run = await _run(store, thread_id, run_id)
    steps = [s for s in await store.list_run_steps(run.id) if shown(s)]
    page, has_more = _page(steps, query)
    return envelope([step_object(s, run, with_content=content) for s in page], has_more)


@get(
    "/threads/{thread_id:str}/runs/{run_id:str}/steps/{step_id:str}",
    tags=TAGS,
    summary="Retrieve a run step",
)
async def retrieve_run_step(
    thread_id: str, run_id: str, step_id: str, principal: Principal, include: Include = None
) -> dict[str, Any]:
    content = _with_content(include)
    store = principal.tenant_store
    ids.parse_id(ids.STEP, step_id)  # a 404 for an id of another kind
    run = await _run(store, thread_id, run_id)
    for step in await store.list_run_steps(run.id):
        if public_step_id(step.run_id, step.seq) == step_id and shown(step):
            return step_object(step, run, with_content=content)
    raise NotFoundError("run step", step_id)


HANDLERS = [
    create_run,
    create_thread_and_run,
    retrieve_run,
    list_runs,
    modify_run,
    cancel_run,
    submit_tool_outputs,
    list_run_steps,
    retrieve_run_step,
]
