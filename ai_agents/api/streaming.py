"""Streamed runs as Server-Sent Events.

The run does not execute inside the HTTP response: a separate task consumes
``store.stream(...)`` into a queue and the response reads the queue. Why: when the client
disconnects, the server cancels the response's scope and every await in it keeps being
cancelled, so a run executing there could not release its thread lock cleanly. Here the
response only cancels the run task (once, plain asyncio), the runner unwinds normally,
nothing of the unfinished turn is saved (turns are all-or-nothing) and the lock is freed.

Events (``event:`` name, JSON ``data:``)::

    run_started  {"run_id", "thread_id"}: the run row exists (cancel it by id)
    text_delta   {"text": "..."}
    tool_call    {"id", "name", "arguments"}
    tool_result  {"id", "name", "result", "is_error"}
    done         the run's response (same as a synchronous run's body)
    error        the error schema ({"code", "message", "details", "retry_after"})

The first event after ``run_started`` is awaited before the response starts, so a run that
fails at once
(unknown thread, busy thread with ``on_busy="reject"``, provider down) is an ordinary
HTTP error with its status, not a 200 stream holding one error event.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from typing import Any

from ai_agents.api.errors import error_body, public_error
from ai_agents.errors import AgentsError
from ai_agents.response import (
    AgentResponse,
    DoneEvent,
    RunEvent,
    RunStartedEvent,
    TextDeltaEvent,
    ToolCallEvent,
    ToolResultEvent,
)

log = logging.getLogger("api.streaming")
_END = object()


def event_payload(event: RunEvent) -> tuple[str, dict[str, Any]]:
    if isinstance(event, RunStartedEvent):
        return "run_started", {"run_id": str(event.run_id), "thread_id": str(event.thread_id)}
    if isinstance(event, TextDeltaEvent):
        return "text_delta", {"text": event.text}
    if isinstance(event, ToolCallEvent):
        return "tool_call", event.call.to_json()
    if isinstance(event, ToolResultEvent):
        return "tool_result", {
            "id": event.call.id,
            "name": event.call.name,
            "result": event.result,
            "is_error": event.is_error,
        }
    return "done", event.response.to_json()


def encode_sse(name: str, data: dict[str, Any]) -> bytes:
    # json.dumps escapes newlines, so the data always fits one "data:" line.
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


class RunStream:
    """A streamed run executing in its own task; the response reads its events."""

    def __init__(
        self,
        events: AsyncIterator[RunEvent],
        tasks: set[asyncio.Task[None]],
        *,
        on_done: Callable[[AgentResponse, float], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._started = time.perf_counter()
        self._on_done = on_done
        self._on_error = on_error
        self._task = asyncio.create_task(self._pump(events))
        tasks.add(self._task)
        self._task.add_done_callback(tasks.discard)

    async def _pump(self, events: AsyncIterator[RunEvent]) -> None:
        try:
            async with aclosing(events) as stream:  # type: ignore[type-var]
                async for event in stream:
                    if isinstance(event, DoneEvent) and self._on_done is not None:
                        self._on_done(event.response, time.perf_counter() - self._started)
                    self._queue.put_nowait(event)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if self._on_error is not None:
                self._on_error(exc)
            self._queue.put_nowait(exc)
        finally:
            self._queue.put_nowait(_END)

    async def first(self) -> list[RunEvent]:
        """The events up to the first one after ``run_started`` (raising the run's error
        if it failed before producing anything: then the answer is an HTTP error)."""
        opening: list[RunEvent] = []
        while True:
            item = await self._queue.get()
            if isinstance(item, BaseException):
                raise item
            if item is _END:
                return opening
            opening.append(item)
            if not isinstance(item, RunStartedEvent):
                return opening

    def cancel(self) -> None:
        if not self._task.done():
            self._task.cancel()

    async def body(self, first: list[RunEvent]) -> AsyncIterator[bytes]:
        """The SSE bytes: the opening events, then the rest as the run produces them."""
        try:
            for event in first:
                yield encode_sse(*event_payload(event))
            while True:
                item = await self._queue.get()
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    yield encode_sse("error", _error_data(item))
                    continue
                yield encode_sse(*event_payload(item))
        finally:
            self.cancel()


def _error_data(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, AgentsError):
        status, code, message, details = public_error(exc)
        if status >= 500:
            log.warning("streamed run failed -> %s %s: %s", status, exc.code, exc)
        body = error_body(code, message, details, getattr(exc, "retry_after", None))
        body["status"] = status
        return body
    log.error("streamed run failed unexpectedly", exc_info=exc)
    return {**error_body("internal_error", "internal server error"), "status": 500}
