"""Scripting shared by the vendor fakes (OpenAI, Anthropic, Ollama).

A fake owns a :class:`Script`: the test queues :class:`Reply` values and the fake pops
one per model request (when the queue is empty it *echoes* the last user message). Every
received request body is appended to ``script.requests`` (headers to
``script.headers``) for the test to inspect::

    fake = OpenAIFake()
    fake.script.push(
        Reply.tool_calls(call("get_weather", {"city": "Paris"})),
        Reply.text("It is sunny."),
        Reply.error(429, "rate_limit_error", "Slow down", retry_after=2),
    )
    with serve(fake) as url:
        ...
    assert fake.script.requests[1]["messages"][-1]["role"] == "tool"

Each fake translates a Reply to its own wire format (JSON or its streaming format). An
error's ``type`` is the vendor's error type string; when omitted each fake picks the
vendor's usual type for the status. ``Reply(delay=...)`` makes the fake wait before
answering (returns early if the client disconnects), for timeout tests.

Malformed replies (the fakes are strict about requests, not about what they are told to
answer): ``Reply.malformed(body)`` answers 200 with *body* verbatim (non-JSON, the wrong
shape, a hand-written broken stream); ``Reply.text(..., cut=n)`` streams the first *n*
chunks of the answer and ends without the vendor's terminal event.

Also here: tiny raw-ASGI helpers the fakes share (no web framework needed).
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class ScriptedCall:
    """A tool call the fake will emit. ``arguments`` may be a str (sent verbatim, so a
    test can send invalid JSON); ``id`` is generated in the vendor's style when None."""

    name: str
    arguments: dict[str, Any] | str = field(default_factory=dict)
    id: str | None = None

    def arguments_json(self) -> str:
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(self.arguments)


def call(
    name: str, arguments: dict[str, Any] | str | None = None, *, id: str | None = None
) -> ScriptedCall:
    """Shorthand for :class:`ScriptedCall`."""
    return ScriptedCall(name=name, arguments={} if arguments is None else arguments, id=id)


@dataclass(frozen=True, slots=True)
class ScriptedError:
    status: int
    message: str
    type: str | None = None  # vendor error type; None -> the fake's default for status
    code: str | None = None  # OpenAI's "code" field
    retry_after: float | str | None = None  # ``retry-after`` header (seconds or date)
    retry_after_ms: float | None = None  # ``retry-after-ms`` header
    # Streaming requests: answer 200, send some text, then the vendor's in-stream
    # error event (Anthropic ``event: error``, OpenAI ``data: {"error": ...}``).
    in_stream: bool = False


@dataclass(frozen=True, slots=True)
class Reply:
    """One scripted answer: text and/or tool calls, or an error.

    Build with ``Reply.text(...)``, ``Reply.tool_calls(...)`` or ``Reply.error(...)``.
    """

    content: str = ""
    calls: tuple[ScriptedCall, ...] = ()
    failure: ScriptedError | None = None
    delay: float = 0.0
    # Override the vendor finish/stop reason (e.g. "length" / "max_tokens").
    finish_reason: str | None = None
    # Override usage (input, output); default: computed from request and reply sizes.
    usage: tuple[int, int] | None = None
    # Prompt-cache tokens to report: read from the cache (OpenAI: part of prompt_tokens;
    # Anthropic: beside input_tokens) and written to it (Anthropic only).
    cache_read: int = 0
    cache_write: int = 0
    # Malformed replies (see :meth:`malformed`): this body, verbatim, with status 200.
    body: str | None = None
    content_type: str | None = None
    # Streaming: end the stream after this many chunks/events/lines, never sending the
    # terminal ones (OpenAI's finish chunk and [DONE], Anthropic's message_delta and
    # message_stop, Ollama's done line), as a cut connection or a broken proxy would.
    cut: int | None = None

    @classmethod
    def text(
        cls,
        content: str,
        *,
        delay: float = 0.0,
        finish_reason: str | None = None,
        cut: int | None = None,
    ) -> Reply:
        return cls(content=content, delay=delay, finish_reason=finish_reason, cut=cut)

    @classmethod
    def tool_calls(
        cls, *calls: ScriptedCall, text: str = "", delay: float = 0.0, cut: int | None = None
    ) -> Reply:
        return cls(content=text, calls=tuple(calls), delay=delay, cut=cut)

    @classmethod
    def malformed(cls, body: str, *, content_type: str | None = None) -> Reply:
        """Answer 200 with *body* verbatim (for a stream: the whole stream text, the test
        writes the SSE/NDJSON lines). ``content_type``: default the vendor's for the mode
        (JSON, or its stream type)."""
        return cls(body=body, content_type=content_type)

    @classmethod
    def error(
        cls,
        status: int,
        type: str | None = None,
        message: str = "scripted error",
        *,
        code: str | None = None,
        retry_after: float | str | None = None,
        retry_after_ms: float | None = None,
        in_stream: bool = False,
        delay: float = 0.0,
    ) -> Reply:
        return cls(
            failure=ScriptedError(
                status=status,
                message=message,
                type=type,
                code=code,
                retry_after=retry_after,
                retry_after_ms=retry_after_ms,
                in_stream=in_stream,
            ),
            delay=delay,
        )

    def error_headers(self) -> list[tuple[bytes, bytes]]:
        headers: list[tuple[bytes, bytes]] = []
        if self.failure is not None:
            if self.failure.retry_after is not None:
                headers.append((b"retry-after", str(self.failure.retry_after).encode()))
            if self.failure.retry_after_ms is not None:
                headers.append((b"retry-after-ms", str(self.failure.retry_after_ms).encode()))
        return headers


class Script:
    """Queue of replies plus a log of received requests."""

    def __init__(self, replies: Iterable[Reply] = ()) -> None:
        self.queue: deque[Reply] = deque(replies)
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []

    def push(self, *replies: Reply) -> None:
        self.queue.extend(replies)

    def reset(self) -> None:
        """Forget queued replies and received requests (to reuse one server per module)."""
        self.queue.clear()
        self.requests.clear()
        self.headers.clear()

    def next(self) -> Reply | None:
        return self.queue.popleft() if self.queue else None

    @property
    def last_request(self) -> dict[str, Any]:
        return self.requests[-1]


def echo(last_user_text: str) -> str:
    """The default answer when the queue is empty."""
    return f"echo: {last_user_text}"


def example_instance(schema: Any, text: str = "echo") -> Any:
    """A small value valid against *schema* (common keywords; ``$ref`` is not followed).

    The fakes answer with it under a JSON response format when no reply is scripted,
    as the vendor's constrained decoding would: strings are *text*.
    """
    if not isinstance(schema, dict):
        return text
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for keyword in ("anyOf", "oneOf", "allOf"):
        if schema.get(keyword):
            return example_instance(schema[keyword][0], text)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = kind[0] if kind else None
    if kind == "object" or "properties" in schema:
        properties = schema.get("properties") or {}
        return {
            key: example_instance(properties.get(key), text) for key in schema.get("required", [])
        }
    if kind == "array":
        count = 0 if schema.get("maxItems") == 0 else max(int(schema.get("minItems", 1)), 1)
        return [example_instance(schema.get("items"), text) for _ in range(count)]
    if kind == "integer":
        return int(schema.get("minimum", 1))
    if kind == "number":
        return float(schema.get("minimum", 1.5))
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return text


def estimate_tokens(value: Any) -> int:
    """Deterministic stand-in for a tokenizer: ~4 characters per token, at least 1."""
    size = len(value if isinstance(value, str) else json.dumps(value, sort_keys=True))
    return max(1, (size + 3) // 4)


def chunks(value: str, size: int = 4) -> list[str]:
    """Split text into streaming pieces."""
    return [value[i : i + size] for i in range(0, len(value), size)] or []


# --- raw ASGI helpers ---------------------------------------------------------------


async def read_body(receive: Receive) -> bytes:
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    return body


def header_map(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


async def send_json(
    send: Send, status: int, payload: Any, headers: Iterable[tuple[bytes, bytes]] = ()
) -> None:
    body = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def start_stream(send: Send, content_type: bytes = b"text/event-stream") -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", content_type), (b"cache-control", b"no-cache")],
        }
    )


async def send_chunk(send: Send, data: str) -> None:
    await send({"type": "http.response.body", "body": data.encode(), "more_body": True})


async def end_stream(send: Send) -> None:
    await send({"type": "http.response.body", "body": b""})


async def send_raw(send: Send, reply: Reply, default_type: str) -> None:
    """Answer a :meth:`Reply.malformed` reply: status 200, its body verbatim."""
    assert reply.body is not None
    body = reply.body.encode()
    content_type = reply.content_type or default_type
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", content_type.encode()),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def wait_or_disconnect(receive: Receive, seconds: float) -> bool:
    """Sleep *seconds*; return False early if the client disconnected meanwhile."""
    if seconds <= 0:
        return True

    async def disconnected() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    try:
        await asyncio.wait_for(disconnected(), timeout=seconds)
    except TimeoutError:
        return True
    return False
