"""``/v1/responses``: OpenAI's Responses API, stored on threads.

A response is a run: ``POST /v1/responses`` adds its ``input`` to a thread and runs the
tenant's responses agent (:mod:`ai_agents.responses_agent`) on it with the request's
model, instructions, tools and settings as per-run overrides
(:mod:`api.compat.response_request`). The thread is

- a new one (no ``previous_response_id``, no ``conversation``), deleted again once the
  response is answered when it says ``store: false`` (unless it waits for function call
  outputs);
- the thread of ``previous_response_id``: the conversation goes on from that response;
  when newer exchanges follow it there, from a copy of the thread up to it (a branch);
- the thread behind ``conversation`` (``conv_<hex>`` is ``thread_<hex>``).

When the model calls a function tool, the run pauses (``requires_action``) and the
response completes with its ``function_call`` items. The next request naming it in
``previous_response_id`` with a ``function_call_output`` for each call resumes that run
(``store.submit_tool_outputs``): the answer is a new response (a segment of the same
run, :mod:`api.compat.response_objects`).

The call waits for the run (or streams it, ``stream: true``, with the Responses event
names: :mod:`api.compat.response_stream`). A failure before the run starts leaves no new
thread behind; a model failure is the HTTP error (429, 5xx...), as chat completions'.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass
from typing import Annotated, Any
from uuid import UUID

from litestar import Response, delete, get, post
from litestar.params import Parameter

from ai_agents.api.auth import Principal
from ai_agents.api.compat import fields, ids
from ai_agents.api.compat.errors import invalid
from ai_agents.api.compat.lists import list_query
from ai_agents.api.compat.response_items import item_list, message_items, parse_input
from ai_agents.api.compat.response_objects import (
    META_KEY,
    Segment,
    find_segment,
    parse_response_id,
    response_meta,
    response_object,
    segment_inputs,
    segments,
)
from ai_agents.api.compat.response_request import (
    Include,
    IncludeBrackets,
    ResponseRequest,
    check_include,
    parse_request,
)
from ai_agents.api.compat.response_stream import streamed
from ai_agents.errors import NotFoundError, RunStateError, ThreadBusyError
from ai_agents.messages import Message
from ai_agents.response import RunEvent, RunStartedEvent
from ai_agents.responses_agent import responses_agent
from ai_agents.runs import listing
from ai_agents.runs.records import RunRecord
from ai_agents.store import AgentStore

TAGS = ["openai: responses"]
_PARAMS = {"client_tools": "tools", "max_completion_tokens": "max_output_tokens"}


# --- finding ----------------------------------------------------------------------------


async def find_response(store: AgentStore, response_id: str) -> tuple[RunRecord, Segment]:
    """The run and segment behind *response_id*; a 404 naming it otherwise."""
    run_id, index = parse_response_id(response_id)
    try:
        run = await store.get_run(run_id)
    except NotFoundError:
        raise NotFoundError("response", response_id) from None
    meta = response_meta(run)
    if meta is None or meta.get("deleted"):
        raise NotFoundError("response", response_id)
    steps = await store.list_run_steps(run.id)
    return run, find_segment(run, steps, index, response_id)


async def _answer(store: AgentStore, run_id: UUID, index: int | None = None) -> dict[str, Any]:
    """The response object of *run_id*'s segment *index* (its last one: ``None``)."""
    run = await store.get_run(run_id)
    found = segments(await store.list_run_steps(run_id))
    if index is None:
        return response_object(run, found[-1])
    if index < len(found):
        return response_object(run, found[index])
    return response_object(run, Segment(index, [], None, True))  # not begun yet


# --- starting ---------------------------------------------------------------------------


@dataclass(slots=True)
class Started:
    """A response under way: its events (``run_started`` first) and what to clean up."""

    events: AsyncIterator[RunEvent]
    #: The thread this request made (deleted again if the run never starts).
    new_thread: UUID | None
    #: The segment of the run this response is (:mod:`api.compat.response_objects`).
    index: int = 0
    #: A ``store: false`` conversation's own thread, deleted once the response is answered.
    unstored: UUID | None = None


async def _conversation_thread(store: AgentStore, conversation: str) -> UUID:
    ident = ids.parse_id(ids.CONVERSATION, conversation)
    try:
        await store.get_thread(ident)
    except NotFoundError:
        raise NotFoundError("conversation", conversation) from None
    return ident


def _resume_outputs(run: RunRecord, request: ResponseRequest) -> list[dict[str, Any]]:
    """The outputs for the calls *run* waits for; a 400 when the input does not answer
    each of them (and only them)."""
    pending = [c["id"] for c in (run.required_action or {}).get("tool_calls") or []]
    parsed = parse_input(request.input)
    if parsed.messages and any(m.role != "tool" for m in parsed.messages):
        raise invalid(
            "the previous response is waiting for function call outputs: the input may only "
            "hold function_call_output items answering its calls",
            "input",
        )
    for call_id in pending:
        if call_id not in parsed.outputs:
            raise invalid(f"No tool output found for function call {call_id}.", "input")
    extra = [c for c in parsed.outputs if c not in pending]
    if extra:
        raise invalid(
            f"No tool call found for function call output with call_id {extra[0]}.", "input"
        )
    return [{"tool_call_id": c, "output": parsed.outputs[c]} for c in pending]


def _new_messages(request: ResponseRequest) -> list[Message]:
    parsed = parse_input(request.input)
    orphans = [c for c in parsed.outputs if c not in parsed.calls]
    if orphans:
        raise invalid(
            f"No tool call found for function call output with call_id {orphans[0]}.", "input"
        )
    if not parsed.messages:
        raise invalid("input must hold at least one message or item", "input")
    return parsed.messages


async def _run_on(
    store: AgentStore,
    thread: UUID,
    request: ResponseRequest,
    messages: list[Message],
    *,
    conversation: str | None,
    new_thread: bool,
) -> Started:
    holder = await store.holding_run(thread)
    if holder is not None:
        raise invalid(
            f"Another response ({ids.format_id(ids.RESPONSE, holder)}) is in progress on "
            "this conversation; wait for it to finish.",
            "previous_response_id" if request.previous_response_id else "conversation",
        )
    await store.assign_agent(thread, await responses_agent(store))
    saved = await store.add_messages(thread, messages)
    meta = {
        **request.echo,
        "conversation": conversation,
        "input": [str(m.id) for m in saved],
    }
    events = store.stream(
        thread,
        None,
        on_busy="reject",
        metadata={**request.metadata, META_KEY: meta},
        **request.overrides,
    )
    return Started(events, thread if new_thread else None)


async def _start(store: AgentStore, request: ResponseRequest) -> Started:
    """Start the response *request* asks for (nothing is written when it is refused)."""
    fields.check_overrides(store, request.overrides, _PARAMS)
    if request.previous_response_id:
        run, segment = await find_response(store, request.previous_response_id)
        if run.status == "requires_action":
            if not segment.is_last:
                raise invalid("that response's function calls were already answered", "input")
            outputs = _resume_outputs(run, request)
            events = store.stream_tool_outputs(run.id, outputs)
            meta = response_meta(run) or {}
            own = not meta.get("conversation") and not meta.get("previous_response_id")
            unstored = run.thread_id if own and meta.get("store") is False else None
            return Started(events, None, segment.index + 1, unstored)
        messages = _new_messages(request)
        branch = await _branch_point(store, run) if segment.is_last else None
        if branch is not None:  # an older response: go on from it, on a copy
            fork = await store.fork_thread(run.thread_id, up_to_message_id=branch)
            return await _on_new_thread(store, fork, request, messages)
        return await _run_on(
            store,
            run.thread_id,
            request,
            messages,
            conversation=(response_meta(run) or {}).get("conversation"),
            new_thread=False,
        )
    messages = _new_messages(request)
    if request.conversation:
        thread = await _conversation_thread(store, request.conversation)
        return await _run_on(
            store, thread, request, messages, conversation=request.conversation, new_thread=False
        )
    return await _on_new_thread(store, await store.create_unassigned_thread(), request, messages)


async def _on_new_thread(
    store: AgentStore, thread: UUID, request: ResponseRequest, messages: list[Message]
) -> Started:
    """The response on *thread*, made for it (deleted again if the run cannot start)."""
    try:
        started = await _run_on(
            store, thread, request, messages, conversation=None, new_thread=True
        )
    except BaseException:
        await store.delete_thread(thread)
        raise
    if request.echo.get("store") is False:
        started.unstored = thread
    return started


async def _branch_point(store: AgentStore, run: RunRecord) -> UUID | None:
    """The last message of *run*'s response when newer exchanges follow it on its thread
    (a response chained to it then starts from a copy of the thread up to there, as
    OpenAI's chains branch); None when it is the thread's latest."""
    mine, _, _ = await store.page_listed_messages(run.thread_id, limit=1, run_id=run.id)
    latest, _, _ = await store.page_listed_messages(run.thread_id, limit=1)
    if not mine or not latest or latest[0].id == mine[0].id:
        return None
    return mine[0].id


async def _finish(store: AgentStore, started: Started) -> UUID:
    """Consume the run's events to the end; the run's id."""
    run_id: UUID | None = None
    try:
        async with aclosing(started.events) as events:  # type: ignore[type-var]
            async for event in events:
                if isinstance(event, RunStartedEvent):
                    run_id = event.run_id
    except BaseException:
        if run_id is None and started.new_thread is not None:
            await store.delete_thread(started.new_thread)
        raise
    assert run_id is not None
    return run_id


# --- handlers ---------------------------------------------------------------------------


@post("/responses", tags=TAGS, summary="Create a response", status_code=200)
async def create_response(data: Any, principal: Principal) -> Response[Any]:
    store = principal.tenant_store
    request = parse_request(data)
    if request.background:
        raise invalid("background: true is not supported by this server yet", "background")
    try:
        started = await _start(store, request)
    except ThreadBusyError:
        raise invalid("Another response is in progress on this conversation.") from None
    except RunStateError as exc:
        raise invalid(exc.message, "previous_response_id") from None

    async def answer(run_id: UUID) -> dict[str, Any]:
        body = await _answer(store, run_id, started.index)
        await _forget_unstored(store, started, run_id)
        return body

    if request.stream:
        return await streamed(store, started, answer)
    return Response(await answer(await _finish(store, started)))


async def _forget_unstored(store: AgentStore, started: Started, run_id: UUID) -> None:
    """``store: false`` on a new conversation: its thread goes once the response is
    answered (kept while it waits for function call outputs, which name it)."""
    if started.unstored is None:
        return
    if (await store.get_run(run_id)).status != "requires_action":
        await store.delete_thread(started.unstored)


Query = Annotated[str | None, Parameter(required=False)]


def _query_flag(value: str | None, name: str) -> bool:
    if value in (None, "false"):
        return False
    if value == "true":
        return True
    raise invalid(f"{name} must be true or false", name)


@get("/responses/{response_id:str}", tags=TAGS, summary="Retrieve a response")
async def retrieve_response(
    response_id: str,
    principal: Principal,
    include: Include = None,
    include_brackets: IncludeBrackets = None,
    stream: Query = None,
    starting_after: Query = None,
    include_obfuscation: Query = None,
) -> dict[str, Any]:
    """``stream`` replays a background response's events at OpenAI; responses here are
    never in the background (each is complete when created), so it is a 400, and
    ``starting_after``/``include_obfuscation``, which only shape that stream, are only
    checked."""
    check_include(include, include_brackets)
    _query_flag(include_obfuscation, "include_obfuscation")
    if starting_after is not None and not re.fullmatch(r"-?[0-9]+", starting_after):
        raise invalid("starting_after must be an integer", "starting_after")
    if _query_flag(stream, "stream"):
        raise invalid(
            "stream is not supported on retrieve: no response runs in the background", "stream"
        )
    run, segment = await find_response(principal.tenant_store, response_id)
    return response_object(run, segment)


@delete("/responses/{response_id:str}", tags=TAGS, summary="Delete a response", status_code=200)
async def delete_response(response_id: str, principal: Principal) -> dict[str, Any]:
    """Marks the response deleted (a 404 from then on); the thread's messages stay: they
    belong to its conversation (delete the conversation or the thread to remove them)."""
    store = principal.tenant_store
    run, _segment = await find_response(store, response_id)
    meta = {**(response_meta(run) or {}), "deleted": True}
    await listing.set_metadata(store.engine, store.scope, run.id, {**run.metadata, META_KEY: meta})
    return {"id": response_id, "object": "response.deleted", "deleted": True}


async def _input_items(store: AgentStore, run: RunRecord, segment: Segment) -> list[dict[str, Any]]:
    if segment.index > 0:
        return segment_inputs(segment)
    items: list[dict[str, Any]] = []
    for ident in (response_meta(run) or {}).get("input") or []:
        try:
            message, _agent = await store.get_message(run.thread_id, UUID(str(ident)))
        except NotFoundError:
            continue  # deleted from the conversation since
        items.extend(message_items(message))
    return items


@get("/responses/{response_id:str}/input_items", tags=TAGS, summary="List input items")
async def list_input_items(
    response_id: str,
    principal: Principal,
    limit: Annotated[str | None, Parameter(query="limit", required=False)] = None,
    order: Annotated[str | None, Parameter(query="order", required=False)] = None,
    after: Annotated[str | None, Parameter(query="after", required=False)] = None,
    before: Annotated[str | None, Parameter(query="before", required=False)] = None,
    include: Include = None,
    include_brackets: IncludeBrackets = None,
) -> dict[str, Any]:
    check_include(include, include_brackets)
    store = principal.tenant_store
    query = list_query(limit, order, after, before)
    run, segment = await find_response(store, response_id)
    items = await _input_items(store, run, segment)
    if query.order == "desc":
        items.reverse()
    position = {item["id"]: i for i, item in enumerate(items)}
    start, end = 0, len(items)
    if query.after is not None:
        if query.after not in position:
            raise NotFoundError("item", query.after)
        start = position[query.after] + 1
    if query.before is not None:
        if query.before not in position:
            raise NotFoundError("item", query.before)
        end = position[query.before]
    window = items[start:end]
    return item_list(window[: query.limit], len(window) > query.limit)


HANDLERS = [create_response, retrieve_response, delete_response, list_input_items]
