"""``stream: true`` on ``/v1`` runs: the run's events as OpenAI's Assistants stream.

The run executes in a task of the app's ``run_tasks`` (:class:`RunEvents`), as
``/api/v1`` streaming does (:mod:`api.streaming`): the response only reads its events,
and a client that disconnects cancels the run (it ends ``cancelled``; nothing of its turn
is saved). The request waits for ``run_started`` only, so an error before it (a busy
thread, an inactive assistant) is an ordinary HTTP error; after it, how the run ended is
read from its row and sent as ``thread.run.failed``/``cancelled``/``expired``.

:class:`AssistantEvents` turns our events (text deltas, tool calls, tool results, done)
into OpenAI's: the run's lifecycle, a ``message_creation`` step and a ``thread.message``
per model call that writes text, a ``tool_calls`` step per batch of tool calls, then
``done`` / ``[DONE]``. The message's id is the id it is saved with
(:func:`ai_agents.runs.turn.assistant_message_id`), so the SDK's ``get_final_messages()``
and ``messages.list`` name the same messages; the last message's ``completed`` event is
the saved message itself. Step ids are the stream's own (the step rows get theirs from
PostgreSQL when they are written, after the events): ``uuid5(run, "step:<seq>")``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

from ai_agents.api.compat import ids
from ai_agents.api.compat.objects import message_citations, message_object
from ai_agents.api.compat.run_objects import run_object, search_details, step_id, tool_call_entry
from ai_agents.errors import AgentsError
from ai_agents.files.search import FILE_SEARCH
from ai_agents.messages import ToolCall
from ai_agents.records import AgentRecord
from ai_agents.response import (
    DoneEvent,
    RunEvent,
    RunStartedEvent,
    TextDeltaEvent,
    ToolCallEvent,
    ToolResultEvent,
)
from ai_agents.runs.records import RunStep
from ai_agents.runs.turn import assistant_message_id
from ai_agents.store import AgentStore

log = logging.getLogger("api.compat.runs")
_END = object()
#: How a run that stopped with an error ended, by its row's status.
_ENDED = ("failed", "cancelled", "cancelling", "expired")

Event = tuple[str, Any]


def encode(name: str, data: Any) -> bytes:
    """One Server-Sent Event; ``json.dumps`` escapes newlines, so data is one line."""
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"event: {name}\ndata: {text}\n\n".encode()


class _NotStarted(RuntimeError):
    """The events ended before ``run_started`` (never expected)."""


class RunEvents:
    """A run's events, produced by a task of *tasks* into a queue."""

    def __init__(self, events: AsyncIterator[RunEvent], tasks: set[asyncio.Task[None]]) -> None:
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._task = asyncio.create_task(self._pump(events))
        tasks.add(self._task)
        self._task.add_done_callback(tasks.discard)

    @classmethod
    async def open(
        cls, events: AsyncIterator[RunEvent], tasks: set[asyncio.Task[None]]
    ) -> tuple[RunEvents, RunStartedEvent]:
        """Start the run; once it has started, its events and ``run_started`` (or the
        error that kept it from starting, the run task ended)."""
        stream = cls(events, tasks)
        try:
            item = await stream._queue.get()
        except BaseException:
            stream.cancel()
            raise
        if isinstance(item, RunStartedEvent):
            return stream, item
        stream.cancel()
        if isinstance(item, BaseException):
            raise item
        raise _NotStarted("the run ended before it started")

    async def _pump(self, events: AsyncIterator[RunEvent]) -> None:
        try:
            async with aclosing(events) as stream:  # type: ignore[type-var]
                async for event in stream:
                    self._queue.put_nowait(event)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._queue.put_nowait(exc)
        finally:
            self._queue.put_nowait(_END)

    async def rest(self) -> AsyncIterator[RunEvent | Exception]:
        """The events after ``run_started``, and the run's error if it failed."""
        while True:
            item = await self._queue.get()
            if item is _END:
                return
            yield item

    def cancel(self) -> None:
        if not self._task.done():
            self._task.cancel()


class AssistantEvents:
    """OpenAI's Assistants events for one streamed run (or resumption) of *agent*."""

    def __init__(
        self,
        store: AgentStore,
        agent: AgentRecord,
        started: RunStartedEvent,
        *,
        steps: list[RunStep] | None = None,
    ) -> None:
        """*steps*: the steps of a run resumed with tool outputs, as they were paused."""
        self.store = store
        self.agent = agent
        self.run_id = started.run_id
        self.thread_id = started.thread_id
        self.resumed = steps is not None
        #: The agent's own function tools (a call of one is never the built-in search).
        self.client_names = {str(t.get("name")) for t in agent.client_tools}
        done = [s for s in steps or [] if s.type == "message_creation"]
        #: The model call text belongs to (a resumed run: the one that asked for the
        #: tools; the next call is one more), and the next step's ``seq``.
        self.iteration = int(done[-1].details.get("iteration", 0)) if done else 0
        self.seq = max((s.seq for s in steps or []), default=0) + 1
        self.message: dict[str, Any] | None = None
        self.message_step: dict[str, Any] | None = None
        self.tool_step: dict[str, Any] | None = None
        self.tool_calls: list[dict[str, Any]] = []
        #: A model call ended in tool calls: the next text is the next model call's.
        self.after_tools = False
        #: The tool calls of a model call are arriving (no result yet).
        self.calling = False
        #: ``thread.run.step.created`` of the tool step was sent by this stream.
        self.announced = False
        if steps:
            self._paused(steps[-1])

    # --- objects --------------------------------------------------------------------------

    def _ids(self) -> dict[str, Any]:
        return {
            "assistant_id": ids.format_id(ids.ASSISTANT, self.agent.id),
            "thread_id": ids.format_id(ids.THREAD, self.thread_id),
            "run_id": ids.format_id(ids.RUN, self.run_id),
        }

    def _step(self, kind: str, details: dict[str, Any]) -> dict[str, Any]:
        seq = self.seq
        self.seq += 1
        return {
            "id": step_id(self.run_id, seq),
            "object": "thread.run.step",
            "created_at": int(time.time()),
            **self._ids(),
            "type": kind,
            "status": "in_progress",
            "step_details": details,
            "last_error": None,
            "expired_at": None,
            "cancelled_at": None,
            "failed_at": None,
            "completed_at": None,
            "metadata": {},
            "usage": None,
        }

    def _paused(self, step: RunStep) -> None:
        """The tool step a resumed run completes (its step id is the paused stream's)."""
        self.seq = step.seq
        self.tool_step = self._step("tool_calls", {"type": "tool_calls", "tool_calls": []})
        self.tool_calls = [
            _entry(ToolCall.from_json(c), c.get("output"), client=bool(c.get("client")))
            for c in step.details.get("tool_calls") or []
        ]
        self.after_tools = True
        self.calling = self.announced = False

    async def _run(self, status: str | None = None) -> dict[str, Any]:
        data = run_object(await self.store.get_run(self.run_id), self.agent)
        if status is not None:  # the run as it was announced: created, then queued
            data.update(status=status, started_at=None)
        return data

    # --- the run's lifecycle --------------------------------------------------------------

    async def opening(self) -> list[Event]:
        """``thread.run.created`` (a new run), ``queued``, ``in_progress``."""
        queued = await self._run("queued")
        events: list[Event] = [] if self.resumed else [("thread.run.created", queued)]
        events.append(("thread.run.queued", queued))
        events.append(("thread.run.in_progress", await self._run()))
        return events

    async def on(self, event: RunEvent) -> list[Event]:
        if isinstance(event, TextDeltaEvent):
            return self._text(event.text)
        if isinstance(event, ToolCallEvent):
            return self._tool_call(event.call)
        if isinstance(event, ToolResultEvent):
            return self._tool_result(event)
        if isinstance(event, DoneEvent):
            return await self._done()
        return []

    def _text(self, text: str) -> list[Event]:
        events: list[Event] = []
        if self.after_tools:  # the next model call answers the tools' results
            events += self._close_tools("completed")
            self.iteration += 1
        if self.message is None:
            events += self._open_message()
        assert self.message is not None
        self.message["content"][0]["text"]["value"] += text
        delta = {
            "id": self.message["id"],
            "object": "thread.message.delta",
            "delta": {
                "content": [
                    {"index": 0, "type": "text", "text": {"value": text, "annotations": []}}
                ]
            },
        }
        return [*events, ("thread.message.delta", delta)]

    def _open_message(self) -> list[Event]:
        ident = ids.format_id(ids.MESSAGE, assistant_message_id(self.run_id, self.iteration))
        step = self._step(
            "message_creation",
            {"type": "message_creation", "message_creation": {"message_id": ident}},
        )
        message = {
            "id": ident,
            "object": "thread.message",
            "created_at": int(time.time()),
            **self._ids(),
            "role": "assistant",
            "content": [],
            "attachments": [],
            "metadata": {},
            "status": "in_progress",
            "completed_at": None,
            "incomplete_at": None,
            "incomplete_details": None,
        }
        self.message_step = step
        events: list[Event] = [
            ("thread.run.step.created", step),
            ("thread.run.step.in_progress", step),
            ("thread.message.created", _copy(message)),
            ("thread.message.in_progress", _copy(message)),
        ]
        message["content"] = [{"type": "text", "text": {"value": "", "annotations": []}}]
        self.message = message
        return events

    def _close_message(self, saved: dict[str, Any] | None = None) -> list[Event]:
        """The open message done: *saved* (the stored message) or as streamed."""
        if self.message is None or self.message_step is None:
            return []
        message = saved or {**self.message, "status": "completed", "completed_at": int(time.time())}
        step = _ended(self.message_step, "completed")
        self.message = self.message_step = None
        return [("thread.message.completed", message), ("thread.run.step.completed", step)]

    def _tool_call(self, call: ToolCall) -> list[Event]:
        events: list[Event] = []
        if self.tool_step is None or not self.calling:  # a model call's first tool call
            if self.message is not None:
                events += self._close_message()
            else:
                if self.after_tools:  # it follows the last batch's results, without text
                    events += self._close_tools("completed")
                    self.iteration += 1
                self.seq += 1  # the model call's own step: not shown, it wrote no text
            self.tool_step = self._step("tool_calls", {"type": "tool_calls", "tool_calls": []})
            self.tool_calls = []
            self.after_tools = self.calling = self.announced = True
            events += [
                ("thread.run.step.created", self.tool_step),
                ("thread.run.step.in_progress", self.tool_step),
            ]
        index = len(self.tool_calls)
        self.tool_calls.append(_entry(call, None, client=call.name in self.client_names))
        return [*events, self._step_delta({"index": index, **self.tool_calls[index]})]

    def _tool_result(self, event: ToolResultEvent) -> list[Event]:
        self.calling = False
        for index, entry in enumerate(self.tool_calls):
            if entry["id"] != event.call.id:
                continue
            if entry["type"] == FILE_SEARCH:
                entry[FILE_SEARCH] = search_details(event.result, with_content=False)
                output = {"index": index, "type": FILE_SEARCH, FILE_SEARCH: entry[FILE_SEARCH]}
            else:
                entry["function"]["output"] = event.result
                output = {"index": index, "type": "function", "function": {"output": event.result}}
            if not self.announced:  # the paused step: this stream's handler never saw it
                return []
            return [self._step_delta(output)]
        return []

    def _step_delta(self, call: dict[str, Any]) -> Event:
        assert self.tool_step is not None
        return (
            "thread.run.step.delta",
            {
                "id": self.tool_step["id"],
                "object": "thread.run.step.delta",
                "delta": {"step_details": {"type": "tool_calls", "tool_calls": [call]}},
            },
        )

    def _close_tools(self, status: str) -> list[Event]:
        step, self.tool_step = self.tool_step, None
        self.after_tools = False
        if step is None:
            return []
        details = {"type": "tool_calls", "tool_calls": self.tool_calls}
        return [(f"thread.run.step.{status}", _ended({**step, "step_details": details}, status))]

    async def _done(self) -> list[Event]:
        run = await self.store.get_run(self.run_id)
        if run.status == "requires_action":
            return [("thread.run.requires_action", run_object(run, self.agent))]
        events = self._close_message(await self._saved_message())
        events += self._close_tools("completed")
        name = "incomplete" if run.status == "incomplete" else "completed"
        return [*events, (f"thread.run.{name}", run_object(run, self.agent))]

    async def _saved_message(self) -> dict[str, Any] | None:
        if self.message is None:
            return None
        ident = ids.parse_id(ids.MESSAGE, self.message["id"])
        try:
            message, _ = await self.store.get_message(self.thread_id, ident)
        except AgentsError:  # not saved (never expected after done): as streamed
            return None
        citations = await message_citations(self.store, [message])
        return message_object(
            message, assistant_ids={self.run_id: self.agent.id}, citations=citations
        )

    async def failed(self, exc: Exception) -> list[Event]:
        """The run stopped with *exc*: how its row says it ended, else an ``error``."""
        try:
            run = await self.store.get_run(self.run_id)
        except Exception:
            run = None
        if run is None or run.status not in _ENDED:
            log.warning("streamed /v1 run %s failed: %s", self.run_id, exc)
            return [("error", _error_object(exc))]
        step_status = "cancelled" if run.status == "cancelling" else run.status
        events: list[Event] = []
        for step in (self.message_step, self.tool_step):
            if step is not None:
                events.append((f"thread.run.step.{step_status}", _ended(step, step_status)))
        self.message = self.message_step = self.tool_step = None
        return [*events, (f"thread.run.{run.status}", run_object(run, self.agent))]


def _entry(call: ToolCall, output: Any, *, client: bool) -> dict[str, Any]:
    return tool_call_entry(call.id, call.name, call.arguments, output, client=client)


def _ended(step: dict[str, Any], status: str) -> dict[str, Any]:
    now = int(time.time())
    stamp = {"completed": "completed_at", "failed": "failed_at", "cancelled": "cancelled_at"}
    done = {**step, "status": status}
    if status in stamp:
        done[stamp[status]] = now
    if status == "expired":
        done["expired_at"] = now
    if status == "failed":
        done["last_error"] = {"code": "server_error", "message": "the run failed"}
    return done


def _copy(message: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(message))  # type: ignore[no-any-return]


def _error_object(exc: Exception) -> dict[str, Any]:
    message = exc.message if isinstance(exc, AgentsError) else "internal server error"
    return {"message": message, "type": "server_error", "param": None, "code": "server_error"}


async def sse_body(
    translator: AssistantEvents, stream: RunEvents, opening: list[Event]
) -> AsyncIterator[bytes]:
    """The SSE bytes of a streamed run, ``event: done`` / ``data: [DONE]`` last. Leaving
    early (the client went away) cancels the run."""
    try:
        for name, data in [*opening, *await translator.opening()]:
            yield encode(name, data)
        async for item in stream.rest():
            if isinstance(item, Exception):
                events = await translator.failed(item)
            else:
                events = await translator.on(item)
            for name, data in events:
                yield encode(name, data)
        yield encode("done", "[DONE]")
    finally:
        stream.cancel()
