"""``POST /threads/{id}/runs``: run the agent synchronously, streamed (SSE) or in the background."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated, Any
from uuid import UUID

from litestar import MediaType, Response, post
from litestar.background_tasks import BackgroundTask
from litestar.datastructures import State
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Parameter
from litestar.response import Stream

from ai_agents.errors import AgentsError, ValidationError
from ai_agents.response import AgentResponse
from api.auth import Principal
from api.metrics import Metrics
from api.schemas import JobOut, RunCreate, RunOut, job_out
from api.streaming import RunStream

TAGS = ["runs"]


def _record(metrics: Metrics, mode: str) -> Callable[[AgentResponse, float], None]:
    def done(response: AgentResponse, seconds: float) -> None:
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


@post(
    "/threads/{thread_id:uuid}/runs",
    tags=TAGS,
    summary="Run the agent on a thread",
    status_code=200,
    responses={
        200: ResponseSpec(
            data_container=RunOut,
            description="The saved turn (or, with `stream: true`, Server-Sent Events: "
            "text_delta, tool_call, tool_result, done, error).",
        ),
        202: ResponseSpec(data_container=JobOut, description="`background: true`: the queued job."),
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
    - ``stream: true``: Server-Sent Events as the answer is produced;
    - ``background: true``: 202 with a job to poll at ``GET /jobs/{id}``.

    A run already in progress on the thread is waited for (``on_busy: "enqueue"``, up to
    ``busy_timeout`` seconds) or refused with 409 (``on_busy: "reject"``).
    """
    store = principal.store
    metrics: Metrics = state.metrics
    if data.stream and data.background:
        raise ValidationError(
            "stream and background cannot both be true", details={"field": "background"}
        )
    idempotency_key = data.idempotency_key or idempotency_header
    busy_timeout = data.busy_timeout or state.api_config.busy_timeout

    if idempotency_key and (data.stream or data.background):
        raise ValidationError(
            "idempotency keys apply to synchronous runs only (a background job is "
            "already run exactly once; a stream cannot be replayed)",
            details={"field": "idempotency_key"},
        )

    if data.background:
        return await _background(principal, data, thread_id)

    if data.stream:
        stream = RunStream(
            store.stream(
                thread_id,
                data.input,
                on_busy=data.on_busy,
                busy_timeout=busy_timeout,
                metadata=data.metadata,
            ),
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

    started = time.perf_counter()
    try:
        response = await store.run(
            thread_id,
            data.input,
            on_busy=data.on_busy,
            busy_timeout=busy_timeout,
            idempotency_key=idempotency_key,
            metadata=data.metadata,
        )
    except AgentsError as exc:
        metrics.run_failed(mode="sync", code=exc.code)
        raise
    _record(metrics, "sync")(response, time.perf_counter() - started)
    return Response(response.to_json(), status_code=200, media_type=MediaType.JSON)


async def _background(principal: Principal, data: RunCreate, thread_id: UUID) -> Response[Any]:
    store = principal.store
    job_id = await store.enqueue_run(
        thread_id, data.input, priority=data.priority, metadata=data.metadata
    )
    return Response(
        job_out(await store.get_job(job_id)),
        status_code=202,
        media_type=MediaType.JSON,
        headers={"Location": f"/api/v1/jobs/{job_id}"},
    )


HANDLERS = [create_run]
