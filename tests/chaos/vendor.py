"""A model vendor with a fault switch: OpenAI's Chat Completions wire format, misbehaving
on demand. Run as its own process: ``python -m tests.chaos.vendor --port P``.

Healthy (``ok``), it answers ``POST /v1/chat/completions`` after a short random latency,
as JSON or as SSE chunks (``stream: true``, with the usage chunk when
``stream_options.include_usage``):

- a user message containing ``tool`` (when the request offers tools) gets one call of
  the first tool, ``{"code": "<the message's last word>"}``;
- anything else gets ``answer to <last user message>`` (after a tool result:
  ``answer to <...> (tool said <result>)``).

``POST /_chaos/mode`` with ``{"mode": ...}`` switches every later request to a fault:

- ``hang``: accept the request and never answer (until the mode changes; then 503);
- ``truncate``: start a correct answer and drop the connection halfway through it;
- ``garbage``: answer 200 with something that is not the format: invalid JSON, HTML,
  JSON of the wrong shape, SSE data lines that are not JSON, a stream without chunks.

``GET /_chaos/stats`` counts requests per mode. Own code rather than ``tests/fakes``:
the chaos run needs fault modes and a separate process, the fakes need neither.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import time
from collections import Counter
from typing import Any

Scope = dict[str, Any]
MODES = ("ok", "hang", "truncate", "garbage")


class Truncated(Exception):
    """Raised mid-response on purpose: the server then drops the connection."""


class ChaosVendor:
    def __init__(self, latency: tuple[float, float] = (0.05, 0.3)) -> None:
        self.mode = "ok"
        self.latency = latency
        self.stats: Counter[str] = Counter()
        self._ids = itertools.count(1)
        self._garbage = itertools.count()

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        path, method = scope["path"], scope["method"]
        if path == "/_chaos/mode" and method == "POST":
            mode = json.loads(body or b"{}").get("mode")
            if mode not in MODES:
                await _json(send, 400, {"error": f"mode must be one of {MODES}"})
                return
            self.mode = mode
            await _json(send, 200, {"mode": mode})
        elif path == "/_chaos/stats":
            await _json(send, 200, {"mode": self.mode, "requests": dict(self.stats)})
        elif path.endswith("/chat/completions") and method == "POST":
            await self._completion(json.loads(body), send)
        else:
            await _json(send, 404, {"error": {"message": "not found", "type": "not_found"}})

    async def _completion(self, request: dict[str, Any], send: Any) -> None:
        mode = self.mode
        self.stats[mode] += 1
        stream = bool(request.get("stream"))
        if mode == "hang":
            while self.mode == "hang":
                await asyncio.sleep(0.2)
            await _json(send, 503, _error("overloaded after a hang", "server_error"))
            return
        await asyncio.sleep(random.uniform(*self.latency))
        if mode == "garbage":
            await self._garbage_reply(stream, send)
            return
        reply = _reply(request)
        ident = f"chatcmpl-chaos{next(self._ids)}"
        if stream:
            await self._stream(request, reply, ident, send, truncate=mode == "truncate")
            return
        data = json.dumps(_completion_body(request, reply, ident)).encode()
        if mode == "truncate":
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(data)),
            ]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send(
                {"type": "http.response.body", "body": data[: len(data) // 2], "more_body": True}
            )
            raise Truncated("dropping the connection halfway through the body")
        await _raw(send, 200, data)

    async def _stream(
        self,
        request: dict[str, Any],
        reply: dict[str, Any],
        ident: str,
        send: Any,
        *,
        truncate: bool,
    ) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )
        chunks = _stream_chunks(request, reply, ident)
        for n, chunk in enumerate(chunks):
            if truncate and n == max(1, len(chunks) // 2):
                raise Truncated("dropping the connection halfway through the stream")
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await asyncio.sleep(0.01)
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})

    async def _garbage_reply(self, stream: bool, send: Any) -> None:
        kind = next(self._garbage) % 4
        if stream:
            bodies = [
                b'data: {"id": "chatcmpl-x", "choices": [{"delta": {"content": "hi\n\n',
                b"<html><body>502 Bad Gateway</body></html>",
                b"data: [DONE]\n\n",  # a stream that ends before any chunk
                b'data: {"unexpected": true}\n\ndata: [DONE]\n\n',
            ]
            await _raw(send, 200, bodies[kind], content_type=b"text/event-stream")
            return
        bodies = [
            b'{"id": "chatcmpl-x", "choices": [{"message": {"content": "hi',
            b"<html><body>502 Bad Gateway</body></html>",
            b'{"unexpected": true}',
            b'{"id": "x", "object": "chat.completion", "choices": []}',
        ]
        await _raw(send, 200, bodies[kind])


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            content = message.get("content")
            return content if isinstance(content, str) else json.dumps(content)
    return ""


def _reply(request: dict[str, Any]) -> dict[str, Any]:
    """``{"content": ...}`` or ``{"tool_call": {...}}`` for this request."""
    messages = request.get("messages") or []
    last = messages[-1] if messages else {}
    question = _last_user_text(messages)
    tools = request.get("tools") or []
    if last.get("role") == "user" and tools and "tool" in question.split():
        name = tools[0]["function"]["name"]
        code = question.split()[-1]
        call_id = f"call_{random.getrandbits(48):012x}"
        return {"tool_call": {"id": call_id, "name": name, "arguments": json.dumps({"code": code})}}
    if last.get("role") == "tool":
        return {"content": f"answer to {question} (tool said {last.get('content')})"}
    return {"content": f"answer to {question}"}


def _usage(request: dict[str, Any], reply: dict[str, Any]) -> dict[str, int]:
    prompt = max(1, len(json.dumps(request.get("messages", []))) // 4)
    completion = max(1, len(json.dumps(reply)) // 4)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _completion_body(request: dict[str, Any], reply: dict[str, Any], ident: str) -> dict[str, Any]:
    if "tool_call" in reply:
        call = reply["tool_call"]
        message: dict[str, Any] = {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call["id"],
                    "type": "function",
                    "function": {"name": call["name"], "arguments": call["arguments"]},
                }
            ],
        }
        finish = "tool_calls"
    else:
        message = {"role": "assistant", "content": reply["content"]}
        finish = "stop"
    return {
        "id": ident,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.get("model", "chaos"),
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
        "usage": _usage(request, reply),
    }


def _stream_chunks(request: dict[str, Any], reply: dict[str, Any], ident: str) -> list[bytes]:
    model = request.get("model", "chaos")
    created = int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
        data = {
            "id": ident,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            **extra,
        }
        return f"data: {json.dumps(data)}\n\n".encode()

    out = [chunk({"role": "assistant", "content": ""})]
    if "tool_call" in reply:
        call = reply["tool_call"]
        out.append(
            chunk(
                {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": call["id"],
                            "type": "function",
                            "function": {"name": call["name"], "arguments": ""},
                        }
                    ]
                }
            )
        )
        args = call["arguments"]
        half = len(args) // 2
        for part in (args[:half], args[half:]):
            out.append(chunk({"tool_calls": [{"index": 0, "function": {"arguments": part}}]}))
        out.append(chunk({}, "tool_calls"))
    else:
        words = reply["content"].split(" ")
        for n, word in enumerate(words):
            out.append(chunk({"content": word if n == 0 else f" {word}"}))
        out.append(chunk({}, "stop"))
    if (request.get("stream_options") or {}).get("include_usage"):
        usage = {
            "id": ident,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [],
            "usage": _usage(request, reply),
        }
        out.append(f"data: {json.dumps(usage)}\n\n".encode())
    return out


def _error(message: str, kind: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


async def _raw(
    send: Any, status: int, data: bytes, content_type: bytes = b"application/json"
) -> None:
    headers = [(b"content-type", content_type), (b"content-length", b"%d" % len(data))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


async def _json(send: Any, status: int, payload: Any) -> None:
    await _raw(send, status, json.dumps(payload).encode())


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(
        ChaosVendor(),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_keep_alive=30,
    )


if __name__ == "__main__":
    main()
