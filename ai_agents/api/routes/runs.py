"""Runs: start one on a thread (synchronous, streamed as SSE, or in the background), list
a thread's runs, read a run and its steps, cancel it, and answer its client tool calls.

Another tenant's run or thread is a 404 everywhere (the store scopes every query).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any, Literal
from uuid import UUID

from litestar import MediaType, Response, get, post
from litestar.background_tasks import BackgroundTask
from litestar.datastructures import State
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Parameter
from litestar.response import Stream

from ai_agents.api.auth import Principal
from ai_agents.api.metrics import Metrics
from ai_agents.api.openapi import StreamedRunOperation, errors
from ai_agents.api.routes._params import Cursor, Limit, checked_cursor
from ai_agents.api.schemas import (
    JobOut,
    RunCreate,
    RunOut,
    RunPage,
    RunRecordOut,
    RunStepList,
    ToolOutputsSubmit,
    job_out,
    run_record_out,
    run_step_out,
)
from ai_agents.api.streaming import RunStream
from ai_agents.errors import AgentsError, ValidationError
from ai_agents.response import AgentResponse, RunEvent

TAGS = ["runs"]
_SSE_EVENTS = "run_started, text_delta, tool_call, tool_result, done, error"


def _record(metrics: Metrics, mode: str) -> Callable[[AgentResponse, float], None]:
    def done(response: AgentResponse, seconds: float) -> None:
        if response.status == "requires_action":
            return  # counted once, with the whole run's usage, when it ends
        metrics.run_finished(
            mode=mode,
            provider=response.provider,
            model=response.model,
            seconds=seconds,
            input_tokens=response.usage.input_tokens,
            output_tokens=response.usage.output_tokens,
            cost=response.cost,
        )

    return done


def _failed(metrics: Metrics, mode: str) -> Callable[[BaseException], None]:
    def failed(exc: BaseException) -> None:
        metrics.run_failed(mode=mode, code=getattr(exc, "code", "internal_error"))

    return failed


async def _sse(events: AsyncIterator[RunEvent], state: State) -> Response[Any]:
    """Serve a streamed run; an error before its first event is an ordinary HTTP error."""
    metrics: Metrics = state.metrics
    stream = RunStream(
        events,
        state.run_tasks,
        on_done=_record(metrics, "stream"),
        on_error=_failed(metrics, "stream"),
    )
    try:
        first = await stream.first()
    except BaseException:
        stream.cancel()
        raise
    return Stream(
        stream.body(first),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        background=BackgroundTask(stream.cancel),
    )


async def _sync(run: Callable[[], Awaitable[AgentResponse]], state: State) -> Response[Any]:
    """Serve a synchronous run (or resumption) as its ``AgentResponse`` JSON."""
    metrics: Metrics = state.metrics
    started = time.perf_counter()
    try:
        response = await run()
    except AgentsError as exc:
        metrics.run_failed(mode="sync", code=exc.code)
        raise
    _record(metrics, "sync")(response, time.perf_counter() - started)
    return Response(response.to_json(), status_code=200, media_type=MediaType.JSON)


@post(
    "/threads/{thread_id:uuid}/runs",
    tags=TAGS,
    summary="Run the agent on a thread",
    status_code=200,
    operation_class=StreamedRunOperation,
    opt=errors(409, 422, 502),
    responses={
        200: ResponseSpec(
            data_container=RunOut,
            generate_examples=False,
            description="The saved turn, or the run waiting in `requires_action` (with "
            f"`stream: true`: Server-Sent Events {_SSE_EVENTS}).",
        ),
        202: ResponseSpec(
            data_container=JobOut,
            generate_examples=False,
            description="`background: true`: the queued job.",
        ),
    },
)
async def create_run(
    thread_id: UUID,
    data: RunCreate,
    principal: Principal,
    state: State,
    idempotency_header: Annotated[
        str | None,
        Parameter(
            header="Idempotency-Key",
            min_length=1,
            max_length=200,
            required=False,
            description="Same as the body's `idempotency_key`.",
        ),
    ] = None,
) -> Response[Any]:
    """One turn: the user's ``input`` and the agent's answer are saved together (or nothing).

    - default: waits for the answer and returns it;
    - ``stream: true``: Server-Sent Events as the answer is produced (``run_started``
      first, with the run id);
    - ``background: true``: 202 with a job to poll at ``GET /jobs/{id}``.

    A run already in progress on the thread is waited for (``on_busy: "enqueue"``, up to
    ``busy_timeout`` seconds; the run is ``queued`` meanwhile) or refused with 409
    (``on_busy: "reject"``). The per-run overrides (``model``, ``instructions``,
    ``temperature``, ...) change this run only. When the model calls a client tool the
    answer has ``status: "requires_action"``: send the outputs to
    ``POST /runs/{run_id}/tool_outputs``.
    """
    store = principal.store
    if data.stream and data.background:
        raise ValidationError(
            "stream and background cannot both be true", details={"field": "background"}
        )
    idempotency_key = data.idempotency_key or idempotency_header
    busy_timeout = data.busy_timeout or state.api_config.busy_timeout
    overrides = data.overrides()

    if idempotency_key and (data.stream or data.background):
        raise ValidationError(
            "idempotency keys apply to synchronous runs only (a background job is "
            "already run exactly once; a stream cannot be replayed)",
            details={"field": "idempotency_key"},
        )

    if data.background:
        return await _background(principal, data, thread_id, overrides)

    common: dict[str, Any] = {
        "on_busy": data.on_busy,
        "busy_timeout": busy_timeout,
        "metadata": data.metadata,
        **overrides,
    }
    if data.stream:
        return await _sse(store.stream(thread_id, data.input, **common), state)
    return await _sync(
        lambda: store.run(thread_id, data.input, idempotency_key=idempotency_key, **common),
        state,
    )


async def _background(
    principal: Principal, data: RunCreate, thread_id: UUID, overrides: dict[str, Any]
) -> Response[Any]:
    # The answer is built from the job as committed: no second read that could fail (and
    # tell the client to retry) after the job exists.
    job = await principal.store.submit_run(
        thread_id, data.input, priority=data.priority, metadata=data.metadata, **overrides
    )
    return Response(
        job_out(job),
        status_code=202,
        media_type=MediaType.JSON,
        headers={"Location": f"/api/v1/jobs/{job.id}"},
    )


@get("/threads/{thread_id:uuid}/runs", tags=TAGS, summary="List a thread's runs", opt=errors(422))
async def list_runs(
    thread_id: UUID,
    principal: Principal,
    limit: Limit = 20,
    cursor: Cursor = None,
    order: Annotated[
        Literal["asc", "desc"],
        Parameter(description="By creation time: `desc` (default) newest first."),
    ] = "desc",
) -> RunPage:
    """Every run of the thread, whatever its status; pass ``next_cursor`` back as
    ``cursor`` (with the same ``order``) for the next page."""
    page = await principal.store.list_runs(
        thread_id, limit=limit, cursor=checked_cursor(cursor), order=order
    )
    return RunPage(
        data=[run_record_out(r) for r in page.items],
        next_cursor=page.next_cursor,
        has_more=page.has_more,
    )


@get("/runs/{run_id:uuid}", tags=TAGS, summary="Get a run")
async def get_run(run_id: UUID, principal: Principal) -> RunRecordOut:
    """Status, the model used, overrides, the required action, error, usage and times.
    A run whose process died reads as ``expired`` once its lease has passed."""
    return run_record_out(await principal.store.get_run(run_id))


@get("/runs/{run_id:uuid}/steps", tags=TAGS, summary="List a run's steps")
async def list_run_steps(run_id: UUID, principal: Principal) -> RunStepList:
    """The run's steps in order: each model call, each batch of tool calls."""
    steps = await principal.store.list_run_steps(run_id)
    return RunStepList(data=[run_step_out(s) for s in steps])


@post("/runs/{run_id:uuid}/cancel", tags=TAGS, summary="Cancel a run", status_code=200)
async def cancel_run(run_id: UUID, principal: Principal) -> RunRecordOut:
    """Cancel a run wherever it is: ``queued``, ``in_progress`` (in any process; the model
    call in flight is abandoned) or ``requires_action``. Nothing of its turn is saved.
    The answer may be ``cancelling`` until the run's process has stopped it; a finished
    run is returned unchanged."""
    return run_record_out(await principal.store.cancel_run(run_id))


@post(
    "/runs/{run_id:uuid}/tool_outputs",
    tags=TAGS,
    summary="Submit client tool outputs",
    status_code=200,
    operation_class=StreamedRunOperation,
    opt=errors(409, 422, 502),
    responses={
        200: ResponseSpec(
            data_container=RunOut,
            generate_examples=False,
            description="The run's next answer: completed, or `requires_action` again "
            f"(with `stream: true`: Server-Sent Events {_SSE_EVENTS}).",
        )
    },
)
async def submit_tool_outputs(
    run_id: UUID, data: ToolOutputsSubmit, principal: Principal, state: State
) -> Response[Any]:
    """Resume a run in ``requires_action`` with exactly one output per call of its
    ``required_action``. A run in another status is a 409; a missing, unknown or repeated
    ``tool_call_id`` is a 422."""
    store = principal.store
    outputs = [
        {"tool_call_id": o.tool_call_id, "output": o.output, "is_error": o.is_error}
        for o in data.tool_outputs
    ]
    if data.stream:
        return await _sse(store.stream_tool_outputs(run_id, outputs), state)
    return await _sync(lambda: store.submit_tool_outputs(run_id, outputs), state)


HANDLERS = [create_run, list_runs, get_run, list_run_steps, cancel_run, submit_tool_outputs]
