"""An OpenAI-compatible chat-completions server that answers instantly (bench only).

Run as its own process (``python bench/_instant_openai.py PORT``) so its CPU time does
not count against the client being measured.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import uvicorn

_COUNTER = 0


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    global _COUNTER
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["path"].endswith("/chat/completions"):
        request = json.loads(body)
        _COUNTER += 1
        prompt_tokens = sum(len(str(m.get("content", ""))) // 4 + 4 for m in request["messages"])
        payload = {
            "id": f"chatcmpl-{_COUNTER}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": request["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "Check-out is at 11am."},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": 7,
                "total_tokens": prompt_tokens + 7,
            },
        }
        status, data = 200, json.dumps(payload).encode()
    else:
        status, data = 404, b'{"error": {"message": "not found"}}'
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": data})


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
