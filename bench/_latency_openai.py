"""An OpenAI-compatible chat-completions server with a realistic latency (bench only).

Run as its own process (``python bench/_latency_openai.py PORT --latency-ms 300
--jitter-ms 100``) so its CPU time does not count against the load. It speaks the real
wire format: ``POST /v1/chat/completions`` answers a ``chat.completion`` JSON body with
``usage`` after the latency, or with ``stream: true`` Server-Sent Events
(``data: {chunk}`` lines: the role chunk, the answer word by word, the finish chunk, the
usage chunk when ``stream_options.include_usage``, then ``data: [DONE]``), the first
chunk after about a third of the latency and the others spread over the rest.

The answer is ``answer to <the last user message>``, so a check can tell which question
an assistant message answers. ``GET /_stats`` returns ``{"completions": n, "streams": n}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from typing import Any

Scope = dict[str, Any]

_STATS = {"completions": 0, "streams": 0}
_LATENCY = (0.3, 0.1)  # seconds: mean, +/- jitter (uniform)


def _latency() -> float:
    mean, jitter = _LATENCY
    return max(0.0, mean + random.uniform(-jitter, jitter))


def _question(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            content = message.get("content")
            return content if isinstance(content, str) else json.dumps(content)
    return ""


def _usage(request: dict[str, Any], answer: str) -> dict[str, int]:
    prompt = max(1, len(json.dumps(request.get("messages", []))) // 4)
    completion = max(1, len(answer) // 4)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


async def _send_json(send: Any, status: int, payload: Any) -> None:
    data = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(data))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


async def _completion(request: dict[str, Any], send: Any) -> None:
    started = time.monotonic()
    total = _latency()
    answer = f"answer to {_question(request.get('messages') or [])}"
    ident = f"chatcmpl-load{random.getrandbits(48):012x}"
    model = request.get("model", "load-model")
    created = int(time.time())
    if not request.get("stream"):
        _STATS["completions"] += 1
        await asyncio.sleep(total)
        await _send_json(
            send,
            200,
            {
                "id": ident,
                "object": "chat.completion",
                "created": created,
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": answer},
                        "finish_reason": "stop",
                        "logprobs": None,
                    }
                ],
                "usage": _usage(request, answer),
            },
        )
        return

    _STATS["streams"] += 1

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        data = {
            "id": ident,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        return f"data: {json.dumps(data)}\n\n".encode()

    words = answer.split(" ")
    pieces = [chunk({"role": "assistant", "content": ""})]
    pieces += [chunk({"content": w if n == 0 else f" {w}"}) for n, w in enumerate(words)]
    pieces.append(chunk({}, "stop"))
    if (request.get("stream_options") or {}).get("include_usage"):
        usage = {
            "id": ident,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [],
            "usage": _usage(request, answer),
        }
        pieces.append(f"data: {json.dumps(usage)}\n\n".encode())
    pieces.append(b"data: [DONE]\n\n")

    await asyncio.sleep(total / 3)
    headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    step = (total - total / 3) / max(1, len(pieces) - 1)
    for n, piece in enumerate(pieces):
        last = n == len(pieces) - 1
        await send({"type": "http.response.body", "body": piece, "more_body": not last})
        if not last:
            # Keep to the schedule (the first chunk at total/3, the last at total).
            due = started + total / 3 + step * (n + 1)
            await asyncio.sleep(max(0.0, due - time.monotonic()))


async def app(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    path, method = scope["path"], scope["method"]
    if path.endswith("/chat/completions") and method == "POST":
        await _completion(json.loads(body), send)
    elif path == "/_stats":
        await _send_json(send, 200, _STATS)
    else:
        await _send_json(send, 404, {"error": {"message": "not found", "type": "not_found"}})


def main() -> None:
    import uvicorn

    global _LATENCY
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("port", type=int)
    parser.add_argument("--latency-ms", type=float, default=300.0)
    parser.add_argument("--jitter-ms", type=float, default=100.0)
    args = parser.parse_args()
    _LATENCY = (args.latency_ms / 1000, args.jitter_ms / 1000)
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_keep_alive=60,
        backlog=4096,
    )


if __name__ == "__main__":
    main()
