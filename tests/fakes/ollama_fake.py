"""A strict fake Ollama server (plain ASGI), served over real HTTP with ``serve``.

Endpoints: ``POST /api/chat`` (JSON or NDJSON stream; ``stream`` defaults to true like
the real server), ``GET /api/tags``, ``GET /api/version``, ``POST /api/show``.

It rejects what the real server rejects (and, to catch adapter bugs, a little more):

- a model that is not in its model list -> 404
  ``{"error": "model \\"x\\" not found, try pulling it first"}`` (``x`` == ``x:latest``);
- ``tools`` for a model not configured as tool-capable -> 400
  ``{"error": "registry.ollama.ai/library/x does not support tools"}``;
- malformed bodies -> 400: invalid JSON, missing model, unknown top-level or message
  keys, a role outside system/user/assistant/tool, non-string content, ``tool_calls``
  on a non-assistant message or with arguments that are not an object, a ``tool``
  message that does not follow an assistant message with ``tool_calls``, malformed
  ``tools`` entries, badly typed ``options`` (temperature, top_p, num_predict, stop), a
  ``format`` that is neither ``"json"`` nor a JSON schema object;
- ``format`` together with ``tools`` -> 400 (stricter than Ollama, which accepts it and
  then returns no tool calls: an adapter must not send both).

Under a ``format`` and with an empty queue the answer is JSON, as Ollama's constrained
decoding makes it: the schema's :func:`~tests.fakes.script.example_instance`, or
``{"echo": ...}`` for ``"json"``.

Scripting (thread-safe; the server runs in another thread)::

    fake = FakeOllama(models=["llama3.1:8b", "gemma2:2b"], tool_models=["llama3.1:8b"])
    fake.reply_text("Hello!")
    fake.reply_tool_calls({"name": "get_weather", "arguments": {"city": "Paris"}})
    fake.reply_error(429, "too many requests", headers={"retry-after": "3"})
    fake.reply_hang(5.0)                      # never answers (client timeout tests)
    fake.reply_malformed("<html>502</html>")   # 200 with this body verbatim
    fake.reply_text("Hello!", cut=2)          # stream: 2 lines, then no done line
    fake.reply_xml_tool_call("search", {"q": "x"}, prose="Let me search.", fence=True)
    with serve(fake) as url:
        ...
    fake.requests[-1]                          # the JSON bodies received by /api/chat

With an empty queue the server echoes the last user message (``echo: ...``).
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tests.fakes.script import example_instance

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

ROLES = {"system", "user", "assistant", "tool"}
TOP_LEVEL_KEYS = {
    "model",
    "messages",
    "tools",
    "format",
    "options",
    "stream",
    "keep_alive",
    "think",
}
MESSAGE_KEYS = {"role", "content", "images", "tool_calls", "tool_name", "thinking"}


@dataclass(slots=True)
class Reply:
    """One scripted answer of ``/api/chat``."""

    content: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    done_reason: str = "stop"
    prompt_eval_count: int | None = None
    eval_count: int | None = None
    status: int = 200
    error: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    hang: float | None = None
    # Streaming: report this error as an NDJSON line after the content (mid-stream error).
    stream_error: str | None = None
    # Leave out the usage counters (old servers / cached prompts).
    no_usage: bool = False
    # Malformed replies: this body verbatim with status 200 (a stream: the NDJSON text).
    body: str | None = None
    content_type: str | None = None
    # Streaming: end after this many lines, without the final ``done: true`` line.
    cut: int | None = None


class BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _full_name(model: str) -> str:
    return model if ":" in model else f"{model}:latest"


def _split_stream(content: str) -> list[str]:
    """Split like a tokenizer would: small pieces, whitespace kept with the next word."""
    return re.findall(r"\s*\S{1,6}|\s+$", content) or ([content] if content else [])


class FakeOllama:
    """ASGI app imitating Ollama's chat API; see the module docstring."""

    def __init__(
        self,
        models: Iterable[str] = ("llama3.1:8b", "gemma2:2b"),
        tool_models: Iterable[str] = ("llama3.1:8b",),
        *,
        version: str = "0.6.5",
    ) -> None:
        self.models = [_full_name(m) for m in models]
        self.tool_models = {_full_name(m) for m in tool_models}
        self.version = version
        self.requests: list[dict[str, Any]] = []
        self._queue: deque[Reply] = deque()
        self._lock = threading.Lock()

    # --- scripting --------------------------------------------------------------

    def add_model(self, name: str, *, tools: bool = False) -> None:
        with self._lock:
            self.models.append(_full_name(name))
            if tools:
                self.tool_models.add(_full_name(name))

    def reply(self, reply: Reply) -> FakeOllama:
        with self._lock:
            self._queue.append(reply)
        return self

    def reply_text(self, content: str, **kwargs: Any) -> FakeOllama:
        return self.reply(Reply(content=content, **kwargs))

    def reply_tool_calls(
        self, *calls: Mapping[str, Any], content: str = "", **kwargs: Any
    ) -> FakeOllama:
        """Native tool calls: each ``{"name": ..., "arguments": {...}}``."""
        wire = [
            {"function": {"name": c["name"], "arguments": dict(c.get("arguments") or {})}}
            for c in calls
        ]
        return self.reply(Reply(content=content, tool_calls=wire, **kwargs))

    def reply_error(
        self, status: int, message: str, *, headers: Mapping[str, str] | None = None
    ) -> FakeOllama:
        return self.reply(Reply(status=status, error=message, headers=dict(headers or {})))

    def reply_malformed(self, body: str, *, content_type: str | None = None) -> FakeOllama:
        """Answer 200 with *body* verbatim (default type: JSON, or NDJSON for a stream)."""
        return self.reply(Reply(body=body, content_type=content_type))

    def reply_hang(self, seconds: float = 30.0) -> FakeOllama:
        """Accept the request and answer nothing for *seconds* (until the client leaves)."""
        return self.reply(Reply(hang=seconds))

    def reply_xml_tool_call(
        self,
        name: str,
        arguments: Mapping[str, Any],
        *,
        prose: str = "",
        after: str = "",
        fence: bool = False,
        style: str = "messy",
        **kwargs: Any,
    ) -> FakeOllama:
        """Answer like a small model given XML tool instructions: prose + ``<tool_call>``.

        See :func:`xml_tool_call_text` for ``style``; ``fence`` wraps the block in a
        Markdown code fence; ``after`` is prose written after the call.
        """
        return self.reply_text(
            xml_tool_call_text(name, arguments, prose=prose, after=after, fence=fence, style=style),
            **kwargs,
        )

    def reset(self) -> None:
        """Forget queued replies and received requests (for a server shared by tests)."""
        with self._lock:
            self._queue.clear()
            self.requests.clear()

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._queue)

    @property
    def last_request(self) -> dict[str, Any]:
        assert self.requests, "the fake Ollama received no /api/chat request"
        return self.requests[-1]

    def _next_reply(self, body: dict[str, Any]) -> Reply:
        with self._lock:
            if self._queue:
                return self._queue.popleft()
        users = [m for m in body.get("messages") or [] if m.get("role") == "user"]
        last = users[-1].get("content", "") if users else ""
        fmt = body.get("format")
        if isinstance(fmt, dict):
            return Reply(content=json.dumps(example_instance(fmt, f"echo: {last}")))
        if fmt == "json":
            return Reply(content=json.dumps({"echo": f"echo: {last}"}))
        return Reply(content=f"echo: {last}")

    # --- ASGI -------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        method, path = scope["method"], scope["path"]
        if path == "/api/version" and method == "GET":
            await _json(send, 200, {"version": self.version})
        elif path == "/api/tags" and method == "GET":
            await _json(send, 200, {"models": [self._model_info(m) for m in self.models]})
        elif path == "/api/show" and method == "POST":
            await self._show(receive, send)
        elif path == "/api/chat" and method == "POST":
            await self._chat(receive, send)
        elif path in ("/api/chat", "/api/show", "/api/tags", "/api/version"):
            await _text(send, 405, "405 method not allowed")
        else:
            await _text(send, 404, "404 page not found")

    def _model_info(self, name: str) -> dict[str, Any]:
        return {
            "name": name,
            "model": name,
            "modified_at": "2025-01-01T00:00:00Z",
            "size": 4_920_000_000,
            "digest": "0" * 64,
            "details": {
                "format": "gguf",
                "family": name.split(":")[0],
                "parameter_size": "8B",
                "quantization_level": "Q4_K_M",
            },
        }

    async def _show(self, receive: Receive, send: Send) -> None:
        try:
            body = json.loads(await _read_body(receive) or b"{}")
            name = _full_name(str(body.get("model") or body.get("name") or ""))
        except (ValueError, AttributeError):
            await _json(send, 400, {"error": "invalid request body"})
            return
        if name not in self.models:
            await _json(send, 404, {"error": f"model '{name.split(':')[0]}' not found"})
            return
        capabilities = ["completion"] + (["tools"] if name in self.tool_models else [])
        await _json(
            send,
            200,
            {
                "details": self._model_info(name)["details"],
                "capabilities": capabilities,
                "model_info": {},
            },
        )

    async def _chat(self, receive: Receive, send: Send) -> None:
        raw = await _read_body(receive)
        try:
            body = json.loads(raw)
        except ValueError as exc:
            await _json(send, 400, {"error": f"invalid character in request body: {exc}"})
            return
        if isinstance(body, dict):
            self.requests.append(body)
        try:
            model, stream = self._validate(body)
        except BadRequest as exc:
            await _json(send, exc.status, {"error": exc.message})
            return
        reply = self._next_reply(body)
        if reply.hang is not None:
            await _wait_disconnect(receive, reply.hang)
            return
        if reply.status != 200:
            await _json(send, reply.status, {"error": reply.error or "error"}, reply.headers)
            return
        if reply.body is not None:
            default = "application/x-ndjson" if stream else "application/json; charset=utf-8"
            await _text(send, 200, reply.body, reply.content_type or default)
            return
        prompt_tokens = reply.prompt_eval_count
        if prompt_tokens is None:
            prompt_tokens = max(1, len(json.dumps(body.get("messages"))) // 4)
        eval_tokens = reply.eval_count
        if eval_tokens is None:
            eval_tokens = max(1, len(reply.content) // 4 + 10 * len(reply.tool_calls))
        final: dict[str, Any] = {
            "done": True,
            "done_reason": reply.done_reason,
            "total_duration": 123_456_789,
            "load_duration": 1_234_567,
            "prompt_eval_count": prompt_tokens,
            "prompt_eval_duration": 12_345_678,
            "eval_count": eval_tokens,
            "eval_duration": 98_765_432,
        }
        if reply.no_usage:
            for key in ("prompt_eval_count", "eval_count", "prompt_eval_duration", "eval_duration"):
                final.pop(key)
        if not stream:
            message: dict[str, Any] = {"role": "assistant", "content": reply.content}
            if reply.tool_calls:
                message["tool_calls"] = reply.tool_calls
            await _json(
                send, 200, {"model": model, "created_at": _now(), "message": message, **final}
            )
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/x-ndjson")],
            }
        )

        sent = 0

        async def line(obj: dict[str, Any]) -> None:
            nonlocal sent
            if reply.cut is not None and sent >= reply.cut:
                return
            sent += 1
            await send(
                {
                    "type": "http.response.body",
                    "body": json.dumps(obj).encode() + b"\n",
                    "more_body": True,
                }
            )

        for piece in _split_stream(reply.content):
            await line(
                {
                    "model": model,
                    "created_at": _now(),
                    "message": {"role": "assistant", "content": piece},
                    "done": False,
                }
            )
        if reply.tool_calls:
            await line(
                {
                    "model": model,
                    "created_at": _now(),
                    "message": {"role": "assistant", "content": "", "tool_calls": reply.tool_calls},
                    "done": False,
                }
            )
        if reply.stream_error:
            await line({"error": reply.stream_error})
        elif reply.cut is None:
            await line(
                {
                    "model": model,
                    "created_at": _now(),
                    "message": {"role": "assistant", "content": ""},
                    **final,
                }
            )
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    # --- validation -------------------------------------------------------------

    def _validate(self, body: Any) -> tuple[str, bool]:
        if not isinstance(body, dict):
            raise BadRequest(400, "request body must be a JSON object")
        unknown = set(body) - TOP_LEVEL_KEYS
        if unknown:
            raise BadRequest(400, f"unknown fields: {sorted(unknown)}")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise BadRequest(400, "model is required")
        full = _full_name(model)
        if full not in self.models:
            raise BadRequest(404, f'model "{model}" not found, try pulling it first')
        stream = body.get("stream", True)
        if not isinstance(stream, bool):
            raise BadRequest(400, "stream must be a boolean")
        tools = body.get("tools")
        if tools is not None:
            if full not in self.tool_models:
                raise BadRequest(
                    400, f"registry.ollama.ai/library/{model.split(':')[0]} does not support tools"
                )
            _validate_tools(tools)
        fmt = body.get("format")
        if fmt not in (None, "", "json") and not isinstance(fmt, dict):
            raise BadRequest(
                400, f'invalid format: {json.dumps(fmt)}; expected "json" or a JSON schema'
            )
        if fmt and tools:
            raise BadRequest(400, "format with tools: the model could not call a tool (fake)")
        _validate_options(body.get("options"))
        messages = body.get("messages")
        if messages is None:
            messages = []
        if not isinstance(messages, list):
            raise BadRequest(400, "messages must be an array")
        _validate_messages(messages)
        return model, stream


def _validate_tools(tools: Any) -> None:
    if not isinstance(tools, list):
        raise BadRequest(400, "tools must be an array")
    for tool in tools:
        if not isinstance(tool, dict) or tool.get("type") != "function":
            raise BadRequest(400, f"invalid tool (type must be 'function'): {tool!r}")
        fn = tool.get("function")
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
            raise BadRequest(400, f"invalid tool function: {tool!r}")
        params = fn.get("parameters")
        if params is not None and (not isinstance(params, dict) or params.get("type") != "object"):
            raise BadRequest(400, f"tool parameters must be an object schema: {tool!r}")


def _validate_options(options: Any) -> None:
    if options is None:
        return
    if not isinstance(options, dict):
        raise BadRequest(400, "options must be an object")
    for name in ("temperature", "top_p"):
        value = options.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise BadRequest(400, f"option {name} must be a number")
    num = options.get("num_predict")
    if num is not None and (isinstance(num, bool) or not isinstance(num, int)):
        raise BadRequest(400, "option num_predict must be an integer")
    stop = options.get("stop")
    if stop is not None and (
        not isinstance(stop, list) or not all(isinstance(s, str) for s in stop)
    ):
        raise BadRequest(400, "option stop must be an array of strings")


def _validate_messages(messages: Sequence[Any]) -> None:
    pending_tool_turn = False
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise BadRequest(400, f"messages[{i}] must be an object")
        unknown = set(message) - MESSAGE_KEYS
        if unknown:
            raise BadRequest(400, f"messages[{i}]: unknown fields {sorted(unknown)}")
        role = message.get("role")
        if role not in ROLES:
            raise BadRequest(400, f"messages[{i}]: invalid role {role!r}")
        content = message.get("content", "")
        if not isinstance(content, str):
            raise BadRequest(400, f"messages[{i}]: content must be a string")
        images = message.get("images")
        if images is not None and (
            not isinstance(images, list) or not all(_is_base64(x) for x in images)
        ):
            raise BadRequest(400, f"messages[{i}]: images must be base64 strings")
        tool_calls = message.get("tool_calls")
        if tool_calls is not None:
            if role != "assistant":
                raise BadRequest(400, f"messages[{i}]: tool_calls on a {role} message")
            if not isinstance(tool_calls, list):
                raise BadRequest(400, f"messages[{i}]: tool_calls must be an array")
            for call in tool_calls:
                fn = call.get("function") if isinstance(call, dict) else None
                if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
                    raise BadRequest(400, f"messages[{i}]: invalid tool call {call!r}")
                if not isinstance(fn.get("arguments", {}), dict):
                    raise BadRequest(
                        400,
                        f"messages[{i}]: json: cannot unmarshal string into Go struct "
                        "field ToolCallFunction.messages.tool_calls.function.arguments",
                    )
        if role == "tool":
            if not pending_tool_turn:
                raise BadRequest(
                    400,
                    f"messages[{i}]: tool message must follow an assistant message with tool_calls",
                )
            if "tool_name" in message and not isinstance(message["tool_name"], str):
                raise BadRequest(400, f"messages[{i}]: tool_name must be a string")
        elif role == "assistant":
            pending_tool_turn = bool(tool_calls)
        else:
            pending_tool_turn = False


def xml_tool_call_text(
    name: str,
    arguments: Mapping[str, Any],
    *,
    prose: str = "",
    after: str = "",
    fence: bool = False,
    style: str = "messy",
) -> str:
    """The text a small local model writes when it calls a tool the XML way.

    ``style``: ``"xml"`` is the format the tool instructions ask for
    (``<tool_call><name>..</name><arguments>{json}</arguments></tool_call>``);
    ``"messy"`` is that format as small models drift from it (odd spacing and line
    breaks, single-quoted Python-style arguments with a trailing comma);
    ``"json"`` is the Hermes/Qwen style (``<tool_call>{"name": .., "arguments": ..}``).
    """
    if style == "xml":
        block = (
            f"<tool_call>\n<name>{name}</name>\n<arguments>\n{json.dumps(dict(arguments))}"
            "\n</arguments>\n</tool_call>"
        )
    elif style == "messy":
        items = ", ".join(f"{k!r}: {v!r}" for k, v in arguments.items())
        block = (
            f"<tool_call>\n  <name> {name} </name>\n\n  <arguments>{{ {items}, }}"
            "</arguments>\n</tool_call >"
        )
    elif style == "json":
        block = f"<tool_call>{json.dumps({'name': name, 'arguments': dict(arguments)})}</tool_call>"
    else:
        raise ValueError(f"unknown style {style!r}")
    if fence:
        block = f"```xml\n{block}\n```"
    return "\n\n".join(p for p in (prose, block, after) if p)


# --- ASGI helpers ---------------------------------------------------------------------


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        event = await receive()
        if event["type"] == "http.disconnect":
            break
        chunks.append(event.get("body", b""))
        if not event.get("more_body"):
            break
    return b"".join(chunks)


async def _wait_disconnect(receive: Receive, seconds: float) -> None:
    async def until_disconnect() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    try:
        await asyncio.wait_for(until_disconnect(), timeout=seconds)
    except TimeoutError:
        pass


async def _json(
    send: Send, status: int, obj: Any, headers: Mapping[str, str] | None = None
) -> None:
    body = json.dumps(obj).encode()
    raw_headers = [
        (b"content-type", b"application/json; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
    ]
    raw_headers += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


async def _text(
    send: Send, status: int, text: str, content_type: str = "text/plain; charset=utf-8"
) -> None:
    body = text.encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type.encode()),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _is_base64(value: Any) -> bool:
    if not isinstance(value, str) or not value:
        return False
    try:
        base64.b64decode(value, validate=True)
    except ValueError:
        return False
    return True
