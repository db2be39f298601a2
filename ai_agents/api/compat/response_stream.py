"""A response streamed as OpenAI's Responses events (``stream: true``).

The run's events (:meth:`~ai_agents.store.AgentStore.stream`) become
``response.created``, ``response.in_progress``, then per output item
``response.output_item.added``, for text ``response.content_part.added``,
``response.output_text.delta``..., ``response.output_text.done``,
``response.content_part.done``, for a function call
``response.function_call_arguments.delta``/``.done``, then
``response.output_item.done``; at the end ``response.completed`` (or
``response.incomplete``/``response.failed``) with the stored response. Every event has
its ``sequence_number``.

Streamed item ids are provisional: a message gets its stored id only once the run has
saved it, so the final response (``response.completed``) carries the stored ids, which
``GET /v1/responses/{id}`` shows. A failure before the run starts is an ordinary HTTP
error; one after is an ``error`` event. A client that goes away cancels the run
(nothing of its turn is saved), as a streamed ``/api/v1`` run.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any
from uuid import UUID

from litestar import Response
from litestar.response import Stream

from ai_agents.api.compat import ids
from ai_agents.api.compat.response_items import call_item
from ai_agents.api.errors import public_error
from ai_agents.errors import AgentsError
from ai_agents.response import DoneEvent, RunEvent, RunStartedEvent, TextDeltaEvent, ToolCallEvent
from ai_agents.store import AgentStore

if TYPE_CHECKING:
    from ai_agents.api.compat.responses import Started

log = logging.getLogger("api.compat.responses")

Answer = Callable[[UUID], Awaitable[dict[str, Any]]]
_END_EVENTS = {"completed": "response.completed", "incomplete": "response.incomplete"}


class _Events:
    """The event objects of one streamed response, numbered in order."""

    def __init__(self) -> None:
        self.sequence = 0
        self.index = -1
        self.message: dict[str, Any] | None = None
        self.text = ""

    def event(self, kind: str, **body: Any) -> bytes:
        data = {"type": kind, "sequence_number": self.sequence, **body}
        self.sequence += 1
        return f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()

    def text_delta(self, delta: str) -> list[bytes]:
        out: list[bytes] = []
        if self.message is None:
            self.index += 1
            self.text = ""
            self.message = {
                "id": ids.new_id(ids.MESSAGE),
                "type": "message",
                "role": "assistant",
                "status": "in_progress",
                "content": [],
            }
            out.append(self.event("response.output_item.added", output_index=self.index,
                                  item=self.message))  # fmt: skip
            out.append(
                self.event(
                    "response.content_part.added",
                    item_id=self.message["id"],
                    output_index=self.index,
                    content_index=0,
                    part=self._part(""),
                )
            )
        self.text += delta
        out.append(
            self.event(
                "response.output_text.delta",
                item_id=self.message["id"],
                output_index=self.index,
                content_index=0,
                delta=delta,
                logprobs=[],
            )
        )
        return out

    @staticmethod
    def _part(text: str) -> dict[str, Any]:
        return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}

    def close_message(self) -> list[bytes]:
        if self.message is None:
            return []
        ident, where = self.message["id"], {"output_index": self.index, "content_index": 0}
        done = {**self.message, "status": "completed", "content": [self._part(self.text)]}
        self.message = None
        return [
            self.event(
                "response.output_text.done", item_id=ident, text=self.text, logprobs=[], **where
            ),
            self.event(
                "response.content_part.done", item_id=ident, part=self._part(self.text), **where
            ),  # fmt: skip
            self.event("response.output_item.done", output_index=self.index, item=done),
        ]

    def function_call(self, event: ToolCallEvent) -> list[bytes]:
        out = self.close_message()
        self.index += 1
        item = call_item(event.call, ids.new_id("fc_"), status="in_progress")
        arguments = item["arguments"]
        where = {"item_id": item["id"], "output_index": self.index}
        out += [
            self.event(
                "response.output_item.added",
                output_index=self.index,
                item={**item, "arguments": ""},
            ),  # fmt: skip
            self.event("response.function_call_arguments.delta", delta=arguments, **where),
            self.event(
                "response.function_call_arguments.done",
                arguments=arguments,
                name=event.call.name,
                **where,
            ),
            self.event(
                "response.output_item.done",
                output_index=self.index,
                item={**item, "status": "completed"},
            ),  # fmt: skip
        ]
        return out


def _error_event(events: _Events, exc: BaseException) -> bytes:
    if isinstance(exc, AgentsError):
        _status, code, message, details = public_error(exc)
        return events.event("error", code=code, message=message, param=details.get("field"))
    log.error("streamed response failed unexpectedly", exc_info=exc)
    return events.event("error", code="server_error", message="internal server error", param=None)


async def _body(
    events: AsyncIterator[RunEvent], run_id: UUID, answer: Answer, first: dict[str, Any]
) -> AsyncIterator[bytes]:
    out = _Events()
    try:
        yield out.event("response.created", response=first)
        yield out.event("response.in_progress", response=first)
        async for event in events:
            if isinstance(event, TextDeltaEvent) and event.text:
                for chunk in out.text_delta(event.text):
                    yield chunk
            elif isinstance(event, ToolCallEvent):
                for chunk in out.function_call(event):
                    yield chunk
            elif isinstance(event, DoneEvent):
                for chunk in out.close_message():
                    yield chunk
                final = await answer(run_id)
                kind = _END_EVENTS.get(final["status"], "response.failed")
                yield out.event(kind, response=final)
                return
    except Exception as exc:
        for chunk in out.close_message():
            yield chunk
        yield _error_event(out, exc)
    finally:
        await events.aclose()  # type: ignore[attr-defined]


async def streamed(store: AgentStore, started: Started, answer: Answer) -> Response[Any]:
    """The Server-Sent Events response; an error before the run starts is raised."""
    events = started.events
    try:
        first = await anext(events)
    except BaseException:
        await events.aclose()  # type: ignore[attr-defined]
        if started.new_thread is not None:
            await store.delete_thread(started.new_thread)
        raise
    assert isinstance(first, RunStartedEvent)
    skeleton = await answer(first.run_id)
    return Stream(
        _body(events, first.run_id, answer, skeleton),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
