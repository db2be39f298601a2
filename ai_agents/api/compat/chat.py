"""``POST /v1/chat/completions``: OpenAI's Chat Completions as a stateless gateway.

The body is OpenAI's; the call goes through this server's providers like a run's model
call (:mod:`ai_agents.runs.stateless`): the tenant's provider check, its share of the
Redis rate limits, retries, circuit breakers and the fallback chain. ``model`` picks the
provider (:mod:`api.compat.catalog`); the extension ``fallbacks`` (a list of model names,
``extra_body`` in the SDKs) adds targets tried when it fails. Nothing is stored: the
answer is a ``chat.completion`` object, or ``chat.completion.chunk`` Server-Sent Events
ending with ``data: [DONE]`` (``stream: true``).

Accounted: the Prometheus counters (``ai_agents_chat_completions_total``, the shared
``ai_agents_tokens_total`` and ``ai_agents_cost_usd_total``, a latency histogram and
``ai_agents_chat_completion_errors_total``) and the tokens and cost of the ``user`` the
body names (``user_usage``; ``''`` without one).

Supported: roles ``system``/``developer`` (the leading ones are the system prompt, later
ones stay in place), ``user``, ``assistant`` (with ``tool_calls``) and ``tool``; content
as a string or text parts; function ``tools``, ``tool_choice``, ``parallel_tool_calls``,
``temperature``, ``top_p``, ``max_tokens``/``max_completion_tokens``, ``stop``,
``response_format``, ``stream``/``stream_options.include_usage``, ``user``,
``metadata``; ``seed`` is accepted and ignored; ``n`` must be 1. Images, audio and files
in messages, logprobs and several choices are not supported (a 400 naming the
parameter); any other parameter is a 400 ``Unrecognized request argument supplied``.
Streamed tool calls arrive whole (one delta per call, after the text), as the gateway
announces a tool call once its arguments are complete.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

from litestar import MediaType, Response, post
from litestar.background_tasks import BackgroundTask
from litestar.datastructures import State
from litestar.response import Stream

from ai_agents.api.auth import Principal
from ai_agents.api.compat import ids
from ai_agents.api.compat.catalog import public_model_name
from ai_agents.api.compat.chat_request import ChatRequest, parse_request
from ai_agents.api.compat.errors import openai_error_body
from ai_agents.api.errors import public_error
from ai_agents.api.metrics import RUN_BUCKETS, Metrics
from ai_agents.errors import AgentsError
from ai_agents.messages import ToolCall
from ai_agents.providers.base import ProviderResponse
from ai_agents.response import TextDeltaEvent
from ai_agents.runs.gateway import ModelAnswer
from ai_agents.runs.stateless import StatelessCall, call_model, charge_user

log = logging.getLogger("api.compat.chat")

TAGS = ["openai: chat"]


def _finish_reason(response: ProviderResponse) -> str:
    if response.tool_calls:
        return "tool_calls"
    reason = response.finish_reason
    return reason if reason in ("stop", "length", "content_filter") else "stop"


def _call_ids(calls: list[ToolCall]) -> list[ToolCall]:
    """Every call with a unique, non-empty id: the client sends it back with the result."""
    seen: set[str] = set()
    out: list[ToolCall] = []
    for call in calls:
        ident = call.id if call.id and call.id not in seen else f"call_{uuid.uuid4().hex[:24]}"
        seen.add(ident)
        out.append(ToolCall(ident, call.name, call.arguments))
    return out


def _wire_call(call: ToolCall) -> dict[str, Any]:
    return {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
    }


def usage_object(answer: ModelAnswer) -> dict[str, int]:
    usage = answer.response.usage
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
    }


def completion_object(ident: str, created: int, answer: ModelAnswer) -> dict[str, Any]:
    """The answer as OpenAI's ``chat.completion``."""
    response = answer.response
    message: dict[str, Any] = {
        "role": "assistant",
        "content": response.content or (None if response.tool_calls else ""),
        "refusal": None,
    }
    if response.tool_calls:
        message["tool_calls"] = [_wire_call(c) for c in response.tool_calls]
    return {
        "id": ident,
        "object": "chat.completion",
        "created": created,
        "model": public_model_name(answer.provider, answer.model),
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": _finish_reason(response),
                "logprobs": None,
            }
        ],
        "usage": usage_object(answer),
    }


@dataclass(slots=True)
class _Chunks:
    """``chat.completion.chunk`` objects of one streamed answer."""

    ident: str
    created: int
    model: str
    include_usage: bool

    def chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.ident,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
        }
        if self.include_usage:
            out["usage"] = None  # as OpenAI: present on every chunk, set on the last one
        return out

    def ending(self, answer: ModelAnswer) -> list[dict[str, Any]]:
        """The tool calls, the finish chunk and (when asked for) the usage chunk."""
        self.model = public_model_name(answer.provider, answer.model)
        response = answer.response
        out = [
            self.chunk({"tool_calls": [{"index": i, **_wire_call(call)}]})
            for i, call in enumerate(response.tool_calls)
        ]
        out.append(self.chunk({}, _finish_reason(response)))
        if self.include_usage:
            out.append({**self.chunk({}), "choices": [], "usage": usage_object(answer)})
        return out


def _sse(data: dict[str, Any] | str) -> bytes:
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"data: {text}\n\n".encode()


# --- accounting -----------------------------------------------------------------------


@dataclass(slots=True)
class _Accounting:
    """Metrics and the user's usage row for one call."""

    metrics: Metrics
    principal: Principal
    call: StatelessCall
    stream: bool
    started: float

    async def answered(self, answer: ModelAnswer) -> ModelAnswer:
        """Count *answer* and return it with unique tool call ids."""
        answer.response.tool_calls = _call_ids(answer.response.tool_calls)
        usage = answer.response.usage
        pm = (("provider", answer.provider), ("model", answer.model))
        m = self.metrics
        m.inc(
            "ai_agents_chat_completions_total",
            "Chat completions answered (/v1/chat/completions)",
            (*pm, ("stream", str(self.stream).lower())),
        )
        for direction, count in (("input", usage.input_tokens), ("output", usage.output_tokens)):
            m.inc(
                "ai_agents_tokens_total",
                "Tokens used by API runs",
                (*pm, ("direction", direction)),
                count,
            )
        m.inc("ai_agents_cost_usd_total", "Cost of API runs (USD)", pm, answer.cost)
        m.observe(
            "ai_agents_chat_completion_duration_seconds",
            "Chat completion latency",
            time.perf_counter() - self.started,
            (("stream", str(self.stream).lower()),),
            RUN_BUCKETS,
        )
        try:
            await charge_user(
                self.principal.tenant_store.engine,
                self.call.tenant_id,
                self.call.user_id,
                usage,
                answer.cost,
            )
        except AgentsError as exc:  # the answer is worth more than its bookkeeping
            log.warning("chat completion usage not recorded: %s", exc)
        return answer

    def failed(self, exc: BaseException) -> None:
        self.metrics.inc(
            "ai_agents_chat_completion_errors_total",
            "Chat completions that ended in an error",
            (("code", getattr(exc, "code", "internal_error")),),
        )


# --- streaming ------------------------------------------------------------------------

_END = object()


class _Pump:
    """The gateway call in its own task, its events in a queue the response reads.

    As for streamed runs (:mod:`api.streaming`): a client that disconnects cancels the
    response's scope; the call, in its own task, is cancelled once and unwinds normally
    (releasing its rate-limit reservation)."""

    def __init__(
        self,
        events: AsyncIterator[TextDeltaEvent | ModelAnswer],
        accounting: _Accounting,
        tasks: set[asyncio.Task[None]],
    ) -> None:
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._accounting = accounting
        self._task = asyncio.create_task(self._run(events))
        tasks.add(self._task)
        self._task.add_done_callback(tasks.discard)

    async def _run(self, events: AsyncIterator[TextDeltaEvent | ModelAnswer]) -> None:
        try:
            async with aclosing(events) as stream:  # type: ignore[type-var]
                async for event in stream:
                    if isinstance(event, ModelAnswer):
                        event = await self._accounting.answered(event)
                    self._queue.put_nowait(event)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._accounting.failed(exc)
            self._queue.put_nowait(exc)
        finally:
            self._queue.put_nowait(_END)

    async def next(self) -> Any:
        """The next event, an exception, or ``_END``."""
        return await self._queue.get()

    def cancel(self) -> None:
        if not self._task.done():
            self._task.cancel()


def _stream_error(exc: BaseException) -> dict[str, Any]:
    """A failure after the stream started, as OpenAI's in-stream error object."""
    if isinstance(exc, AgentsError):
        status, code, message, details = public_error(exc)
        return openai_error_body(status, message, param=details.get("field"), code=code)
    log.error("streamed chat completion failed unexpectedly", exc_info=exc)
    return openai_error_body(500, "internal server error")


async def _body(pump: _Pump, first: Any, chunks: _Chunks) -> AsyncIterator[bytes]:
    try:
        yield _sse(chunks.chunk({"role": "assistant", "content": "", "refusal": None}))
        item = first
        while item is not _END:
            if isinstance(item, BaseException):
                yield _sse(_stream_error(item))
                return
            if isinstance(item, ModelAnswer):
                for chunk in chunks.ending(item):
                    yield _sse(chunk)
                yield _sse("[DONE]")
                return
            if item.text:
                yield _sse(chunks.chunk({"content": item.text}))
            item = await pump.next()
    finally:
        pump.cancel()


async def _streamed(
    chat: ChatRequest,
    events: AsyncIterator[TextDeltaEvent | ModelAnswer],
    accounting: _Accounting,
    state: State,
) -> Response[Any]:
    """The SSE response; an error before the first event is an ordinary HTTP error."""
    pump = _Pump(events, accounting, state.run_tasks)
    try:
        first = await pump.next()
    except BaseException:
        pump.cancel()
        raise
    if isinstance(first, BaseException):
        raise first
    primary = chat.call.targets[0]
    chunks = _Chunks(
        ids.new_id(ids.CHAT_COMPLETION),
        int(time.time()),
        public_model_name(primary.provider, primary.model),
        chat.include_usage,
    )
    return Stream(
        _body(pump, first, chunks),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        background=BackgroundTask(pump.cancel),
    )


# --- handler --------------------------------------------------------------------------


@post("/chat/completions", tags=TAGS, summary="Create a chat completion", status_code=200)
async def create_chat_completion(
    data: dict[str, Any], principal: Principal, state: State
) -> Response[Any]:
    runner = principal.tenant_store.runner
    ceiling = runner.loop.defaults.ceilings.max_output_tokens
    chat = parse_request(data, principal.tenant_id, ceiling)
    accounting = _Accounting(state.metrics, principal, chat.call, chat.stream, time.perf_counter())
    events = call_model(runner.loop.models, chat.call, stream=chat.stream)
    if chat.stream:
        return await _streamed(chat, events, accounting, state)
    answer: ModelAnswer | None = None
    try:
        async for event in events:
            if isinstance(event, ModelAnswer):
                answer = event
    except Exception as exc:
        accounting.failed(exc)
        raise
    assert answer is not None
    answer = await accounting.answered(answer)
    body = completion_object(ids.new_id(ids.CHAT_COMPLETION), int(time.time()), answer)
    return Response(body, status_code=200, media_type=MediaType.JSON)


HANDLERS = [create_chat_completion]
