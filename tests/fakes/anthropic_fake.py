"""A strict fake of Anthropic's Messages API (``POST /v1/messages``).

Speaks the real wire format (JSON, and SSE with the real event names ``message_start``,
``content_block_start``, ``ping``, ``content_block_delta`` (``text_delta`` /
``input_json_delta``), ``content_block_stop``, ``message_delta``, ``message_stop``,
``error``) and rejects what the real API rejects (stricter where noted) with the real
error body ``{"type": "error", "error": {"type", "message"}, "request_id"}``:

- 401 ``authentication_error`` when neither ``x-api-key`` nor ``Authorization`` is sent
  (or, when the fake was given an ``api_key``, a different key);
- 400 ``invalid_request_error`` for: a missing ``anthropic-version`` header; unparseable
  JSON; unknown top-level fields; missing ``model``, ``max_tokens`` (or < 1) or
  ``messages``; an empty ``messages`` list; a ``system`` role inside ``messages``; roles
  other than user/assistant; a first message that is not ``user``; two consecutive
  messages with the same role (the real API now merges consecutive user turns; this
  fake is strict); a message with empty content (except the final assistant message);
  ``temperature``/``top_p``/``top_k`` with ``anthropic-version: 2026-10-21`` or later
  (the version SDK 2.x sends); empty or whitespace-only ``text`` blocks; trailing whitespace in a final assistant
  message; ``tool_use`` outside assistant messages or ``tool_result`` outside user
  messages; ``tool_use``/``tool_result`` ids not matching ``^[a-zA-Z0-9_-]+$``;
  duplicate ``tool_use`` ids; a ``tool_use`` whose ``input`` is not an object; a
  ``tool_result`` without a matching ``tool_use`` in the previous assistant message; a
  ``tool_use`` not answered by a ``tool_result`` in the next user message;
  ``tool_result`` blocks that are not at the start of the user message; malformed
  ``system``, ``tools``, ``tool_choice`` (unknown keys, a non-boolean
  ``disable_parallel_tool_use`` or one on ``none``, a tool name not offered) or
  ``stop_sequences``.

Models in ``no_tool_models`` are served without tool support: a request for one of them
carrying ``tools``, ``tool_choice``, ``tool_use`` or ``tool_result`` blocks is rejected
with 400 ``invalid_request_error``.

Replies come from ``fake.script`` (see :mod:`tests.fakes.script`); with an empty queue
the fake echoes the last user message, except that a ``tool_choice`` of type ``tool``
(or ``any``: the first tool) is obeyed as the API does: the reply is a ``tool_use`` of
that tool whose input is the schema's :func:`~tests.fakes.script.example_instance`.
Usage numbers are computed from the request. ``Reply.malformed(body)`` answers *body*
verbatim; ``cut=n`` sends the first *n* SSE events (``message_start`` first, a ``ping``
after the first block start) and ends without ``message_delta`` and ``message_stop``.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
from typing import Any

from tests.fakes.script import (
    Receive,
    Reply,
    Scope,
    Script,
    Send,
    call,
    chunks,
    echo,
    end_stream,
    estimate_tokens,
    example_instance,
    header_map,
    read_body,
    send_chunk,
    send_json,
    send_raw,
    start_stream,
    wait_or_disconnect,
)

KNOWN_FIELDS = frozenset(
    {
        "model", "messages", "max_tokens", "system", "metadata", "stop_sequences", "stream",
        "temperature", "top_k", "top_p", "tools", "tool_choice", "thinking", "service_tier",
        "container", "mcp_servers", "context_management", "output_config", "inference_geo",
        "cache_control", "diagnostics", "speed", "user_profile_id", "workspace_id",
    }
)  # fmt: skip
#: Removed in API version 2026-10-21 ("temperature: Extra inputs are not permitted").
SAMPLING_FIELDS = ("temperature", "top_k", "top_p")
NEW_API_VERSION = "2026-10-21"
ID_PATTERN = re.compile(r"^[a-zA-Z0-9_-]+$")
TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
BLOCK_TYPES = frozenset(
    {"text", "image", "document", "tool_use", "tool_result", "thinking", "redacted_thinking",
     "search_result", "server_tool_use", "web_search_tool_result", "container_upload"}
)  # fmt: skip
DEFAULT_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


class RequestRejected(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def error_body(type_: str, message: str) -> dict[str, Any]:
    return {
        "type": "error",
        "error": {"type": type_, "message": message},
        "request_id": "req_fake",
    }


def validate_request(body: Any, api_version: str = NEW_API_VERSION) -> None:
    """Raise :class:`RequestRejected` the way the real API would (or stricter)."""
    if not isinstance(body, dict):
        raise RequestRejected("Input should be a valid dictionary")
    for key in body:
        if key not in KNOWN_FIELDS or (key in SAMPLING_FIELDS and api_version >= NEW_API_VERSION):
            raise RequestRejected(f"{key}: Extra inputs are not permitted")
    for key in ("model", "max_tokens", "messages"):
        if key not in body:
            raise RequestRejected(f"{key}: Field required")
    if not isinstance(body["model"], str) or not body["model"]:
        raise RequestRejected("model: Input should be a valid string")
    max_tokens = body["max_tokens"]
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise RequestRejected("max_tokens: Input should be greater than or equal to 1")
    _validate_system(body.get("system"))
    tool_names = _validate_tools(body.get("tools"))
    _validate_tool_choice(body.get("tool_choice"), tool_names)
    stops = body.get("stop_sequences")
    if stops is not None and (
        not isinstance(stops, list) or not all(isinstance(s, str) and s.strip() for s in stops)
    ):
        raise RequestRejected("stop_sequences: each stop sequence must contain non-whitespace")
    if not isinstance(body.get("stream", False), bool):
        raise RequestRejected("stream: Input should be a valid boolean")
    _validate_messages(body["messages"])


def _validate_system(system: Any) -> None:
    if system is None or isinstance(system, str):
        return
    if not isinstance(system, list):
        raise RequestRejected("system: Input should be a valid list")
    for k, block in enumerate(system):
        if not isinstance(block, dict) or block.get("type") != "text":
            raise RequestRejected(f"system.{k}.type: Input should be 'text'")
        if not isinstance(block.get("text"), str) or not block["text"].strip():
            raise RequestRejected(f"system.{k}.text: text content blocks must be non-empty")


def _validate_tools(tools: Any) -> set[str]:
    if tools is None:
        return set()
    if not isinstance(tools, list):
        raise RequestRejected("tools: Input should be a valid list")
    names: set[str] = set()
    for k, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise RequestRejected(f"tools.{k}: Input should be a valid dictionary")
        if tool.get("type") not in (None, "custom"):
            names.add(str(tool.get("name")))  # server tools: not validated here
            continue
        name = tool.get("name")
        if not isinstance(name, str) or not TOOL_NAME.fullmatch(name):
            raise RequestRejected(
                f"tools.{k}.custom.name: String should match pattern '^[a-zA-Z0-9_-]{{1,128}}$'"
            )
        if name in names:
            raise RequestRejected("tools: Tool names must be unique.")
        schema = tool.get("input_schema")
        if not isinstance(schema, dict):
            raise RequestRejected(f"tools.{k}.custom.input_schema: Field required")
        if schema.get("type") != "object":
            raise RequestRejected(f"tools.{k}.custom.input_schema.type: Input should be 'object'")
        description = tool.get("description")
        if description is not None and not isinstance(description, str):
            raise RequestRejected(f"tools.{k}.custom.description: Input should be a valid string")
        for extra in tool:
            if extra not in ("name", "description", "input_schema", "type", "cache_control"):
                raise RequestRejected(f"tools.{k}.custom.{extra}: Extra inputs are not permitted")
        names.add(name)
    return names


def _validate_tool_choice(choice: Any, tool_names: set[str]) -> None:
    if choice is None:
        return
    if not isinstance(choice, dict) or choice.get("type") not in ("auto", "any", "tool", "none"):
        raise RequestRejected(
            "tool_choice: Input tag does not match any of the expected tags: "
            "'auto', 'any', 'tool', 'none'"
        )
    allowed = {"type", "disable_parallel_tool_use"} | (
        {"name"} if choice["type"] == "tool" else set()
    )
    if choice["type"] == "none":
        allowed = {"type"}
    for extra in choice:
        if extra not in allowed:
            raise RequestRejected(
                f"tool_choice.{choice['type']}.{extra}: Extra inputs are not permitted"
            )
    if not isinstance(choice.get("disable_parallel_tool_use", False), bool):
        raise RequestRejected(
            f"tool_choice.{choice['type']}.disable_parallel_tool_use: Input should be a "
            "valid boolean"
        )
    if choice["type"] in ("any", "tool") and not tool_names:
        raise RequestRejected("tool_choice: may only be specified while providing tools")
    if choice["type"] == "tool":
        name = choice.get("name")
        if not isinstance(name, str):
            raise RequestRejected("tool_choice.tool.name: Field required")
        if name not in tool_names:
            raise RequestRejected(f"Tool '{name}' not found in provided tools")


def _validate_messages(messages: Any) -> None:
    if not isinstance(messages, list):
        raise RequestRejected("messages: Input should be a valid list")
    if not messages:
        raise RequestRejected("messages: at least one message is required")
    seen_tool_use: set[str] = set()
    previous_uses: list[str] = []  # tool_use ids of the previous (assistant) message
    previous_role: str | None = None
    last = len(messages) - 1
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise RequestRejected(f"messages.{i}: Input should be a valid dictionary")
        role = message.get("role")
        if role == "system":
            raise RequestRejected(
                'messages: Unexpected role "system". The Messages API accepts a top-level '
                '`system` parameter, not "system" as an input message role.'
            )
        if role not in ("user", "assistant"):
            raise RequestRejected(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        if i == 0 and role != "user":
            raise RequestRejected('messages: first message must use the "user" role')
        if role == previous_role:
            raise RequestRejected(
                'messages: roles must alternate between "user" and "assistant", but found '
                f'multiple "{role}" roles in a row'
            )
        for extra in message:
            if extra not in ("role", "content"):
                raise RequestRejected(f"messages.{i}.{extra}: Extra inputs are not permitted")
        blocks = _blocks(
            message.get("content"), i, final_assistant=(i == last and role == "assistant")
        )
        uses: list[str] = []
        results: list[str] = []
        seen_other = False
        for k, block in enumerate(blocks):
            where = f"messages.{i}.content.{k}"
            kind = block.get("type")
            if kind not in BLOCK_TYPES:
                raise RequestRejected(f"{where}.type: Input tag '{kind}' does not match any tag")
            if kind == "text":
                text = block.get("text")
                if not isinstance(text, str):
                    raise RequestRejected(f"{where}.text: Field required")
                if not text:
                    raise RequestRejected(f"{where}.text: text content blocks must be non-empty")
                if not text.strip():
                    raise RequestRejected(
                        f"{where}.text: text content blocks must contain non-whitespace text"
                    )
            if kind == "image":
                _validate_image(block, where, role)
            if kind == "tool_use":
                if role != "assistant":
                    raise RequestRejected(
                        f"{where}: `tool_use` blocks can only be in `assistant` messages"
                    )
                tool_id = block.get("id")
                if not isinstance(tool_id, str) or not ID_PATTERN.fullmatch(tool_id):
                    raise RequestRejected(
                        f"{where}.id: String should match pattern '^[a-zA-Z0-9_-]+$'"
                    )
                if tool_id in seen_tool_use:
                    raise RequestRejected(
                        f"messages: `tool_use` ids must be unique (duplicate: {tool_id})"
                    )
                if not isinstance(block.get("name"), str) or not block["name"]:
                    raise RequestRejected(f"{where}.name: Field required")
                if not isinstance(block.get("input"), dict):
                    raise RequestRejected(f"{where}.input: Input should be a valid dictionary")
                seen_tool_use.add(tool_id)
                uses.append(tool_id)
            elif kind == "tool_result":
                if role != "user":
                    raise RequestRejected(
                        f"{where}: `tool_result` blocks can only be in `user` messages"
                    )
                tool_id = block.get("tool_use_id")
                if not isinstance(tool_id, str) or not ID_PATTERN.fullmatch(tool_id):
                    raise RequestRejected(
                        f"{where}.tool_use_id: String should match pattern '^[a-zA-Z0-9_-]+$'"
                    )
                if seen_other:
                    raise RequestRejected(
                        f"messages.{i}: `tool_result` blocks must come first in the content, "
                        "before any other blocks"
                    )
                if tool_id not in previous_uses:
                    raise RequestRejected(
                        f"{where}: unexpected `tool_use_id` found in `tool_result` blocks: "
                        f"{tool_id}. Each `tool_result` block must have a corresponding "
                        "`tool_use` block in the previous message."
                    )
                _validate_result_content(block, where)
                results.append(tool_id)
            else:
                seen_other = True
        if role == "user" and previous_uses:
            missing = [t for t in previous_uses if t not in results]
            if missing:
                raise RequestRejected(
                    f"messages.{i - 1}: `tool_use` ids were found without `tool_result` blocks "
                    f"immediately after: {', '.join(missing)}. Each `tool_use` block must have "
                    "a corresponding `tool_result` block in the next message."
                )
        previous_uses = uses
        previous_role = role
    if previous_uses:
        raise RequestRejected(
            f"messages.{last}: `tool_use` ids were found without `tool_result` blocks "
            f"immediately after: {', '.join(previous_uses)}. Each `tool_use` block must have "
            "a corresponding `tool_result` block in the next message."
        )


def _blocks(content: Any, i: int, *, final_assistant: bool) -> list[dict[str, Any]]:
    if isinstance(content, str):
        if not content and not final_assistant:
            raise RequestRejected(
                f"messages.{i}: all messages must have non-empty content except for the "
                "optional final assistant message"
            )
        if final_assistant and content != content.rstrip():
            raise RequestRejected("final assistant content cannot end with trailing whitespace")
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise RequestRejected(f"messages.{i}.content: Field required")
    if not content and not final_assistant:
        raise RequestRejected(
            f"messages.{i}: all messages must have non-empty content except for the optional "
            "final assistant message"
        )
    for k, block in enumerate(content):
        if not isinstance(block, dict):
            raise RequestRejected(f"messages.{i}.content.{k}: Input should be a valid dictionary")
    if final_assistant and content:
        tail = content[-1]
        if (
            tail.get("type") == "text"
            and str(tail.get("text", "")) != str(tail.get("text", "")).rstrip()
        ):
            raise RequestRejected("final assistant content cannot end with trailing whitespace")
    return list(content)


def _validate_result_content(block: dict[str, Any], where: str) -> None:
    content = block.get("content")
    if content is None or isinstance(content, str):
        pass
    elif isinstance(content, list):
        for k, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") not in ("text", "image", "document"):
                raise RequestRejected(f"{where}.content.{k}: Input tag does not match")
            if part["type"] == "text" and not str(part.get("text", "")).strip():
                raise RequestRejected(
                    f"{where}.content.{k}.text: text content blocks must be non-empty"
                )
    else:
        raise RequestRejected(f"{where}.content: Input should be a valid string or list")
    if "is_error" in block and not isinstance(block["is_error"], bool):
        raise RequestRejected(f"{where}.is_error: Input should be a valid boolean")


def last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        texts = [b.get("text", "") for b in content if b.get("type") == "text"]
        if not texts:
            for block in content:
                if block.get("type") == "tool_result":
                    inner = block.get("content")
                    if isinstance(inner, str):
                        texts.append(inner)
                    elif isinstance(inner, list):
                        texts.extend(p.get("text", "") for p in inner if p.get("type") == "text")
        return " ".join(texts).strip()
    return ""


def default_reply(body: dict[str, Any]) -> Reply:
    """The reply with an empty script: the echo, or the forced tool's call."""
    text = echo(last_user_text(body["messages"]))
    choice = body.get("tool_choice") or {}
    tools = body.get("tools") or []
    if choice.get("type") in ("tool", "any") and tools:
        name = choice.get("name") or tools[0]["name"]
        tool = next(t for t in tools if t.get("name") == name)
        return Reply.tool_calls(call(name, example_instance(tool.get("input_schema"), text)))
    return Reply.text(text)


def reject_tools(body: dict[str, Any]) -> None:
    """What a model served without tool support rejects (``no_tool_models``)."""
    if "tools" in body or "tool_choice" in body:
        raise RequestRejected(f"tools: {body['model']} does not support tool use")
    for i, message in enumerate(body["messages"]):
        content = message.get("content")
        for block in content if isinstance(content, list) else []:
            if block.get("type") in ("tool_use", "tool_result"):
                raise RequestRejected(
                    f"messages.{i}: {body['model']} does not support {block['type']} blocks"
                )


class AnthropicFake:
    """ASGI app: ``with serve(AnthropicFake()) as url`` then use ``base_url=url``.

    ``api_key``: when set, any other key is rejected with 401.
    ``no_tool_models``: models served without tool support (see the module docstring).
    ``fake.script`` holds the reply queue and ``fake.requests`` the received bodies.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        replies: tuple[Reply, ...] = (),
        no_tool_models: tuple[str, ...] = (),
    ) -> None:
        self.script = Script(replies)
        self.api_key = api_key
        self.no_tool_models = no_tool_models
        self._ids = itertools.count(1)

    @property
    def requests(self) -> list[dict[str, Any]]:
        return self.script.requests

    def push(self, *replies: Reply) -> None:
        self.script.push(*replies)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["method"] != "POST" or scope["path"].rstrip("/") != "/v1/messages":
            await send_json(send, 404, error_body("not_found_error", "Not Found"))
            return
        headers = header_map(scope)
        raw = await read_body(receive)
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if isinstance(body, dict):
            self.script.requests.append(body)
            self.script.headers.append(headers)

        auth = headers.get("authorization", "")
        key = headers.get("x-api-key") or (
            auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        )
        if not key:
            await send_json(
                send, 401, error_body("authentication_error", "x-api-key header is required")
            )
            return
        if self.api_key is not None and key != self.api_key:
            await send_json(send, 401, error_body("authentication_error", "invalid x-api-key"))
            return
        if not headers.get("anthropic-version"):
            await send_json(
                send,
                400,
                error_body("invalid_request_error", "anthropic-version: header is required"),
            )
            return
        if body is None:
            await send_json(
                send,
                400,
                error_body(
                    "invalid_request_error",
                    "There was an issue with your request body: invalid JSON.",
                ),
            )
            return
        try:
            validate_request(body, headers["anthropic-version"])
            if body["model"] in self.no_tool_models:
                reject_tools(body)
        except RequestRejected as exc:
            await send_json(send, 400, error_body("invalid_request_error", exc.message))
            return

        reply = self.script.next() or default_reply(body)
        if reply.delay and not await wait_or_disconnect(receive, reply.delay):
            return
        stream = bool(body.get("stream"))
        if reply.body is not None:
            await send_raw(send, reply, "text/event-stream" if stream else "application/json")
            return
        failure = reply.failure
        if failure is not None and not (failure.in_stream and stream):
            type_ = failure.type or DEFAULT_ERROR_TYPES.get(
                failure.status, "api_error" if failure.status >= 500 else "invalid_request_error"
            )
            await send_json(
                send,
                failure.status,
                error_body(type_, failure.message),
                [*reply.error_headers(), (b"request-id", b"req_fake")],
            )
            return
        if stream:
            await self._stream(send, body, reply)
        else:
            await send_json(send, 200, self._message(body, reply))

    # --- answers --------------------------------------------------------------------

    def _answer(self, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        content = reply.content
        stop_reason = "tool_use" if reply.calls else "end_turn"
        stop_sequence = None
        for sequence in body.get("stop_sequences") or []:
            if sequence in content:
                content = content[: content.index(sequence)]
                stop_reason, stop_sequence = "stop_sequence", sequence
                break
        blocks: list[dict[str, Any]] = []
        if content:
            blocks.append({"type": "text", "text": content})
        for c in reply.calls:
            blocks.append(
                {
                    "type": "tool_use",
                    "id": c.id or f"toolu_01fake{next(self._ids):016d}",
                    "name": c.name,
                    "input": c.arguments,  # a str is only sent as-is when streaming
                }
            )
        if reply.usage is not None:
            input_tokens, output_tokens = reply.usage
        else:
            input_tokens = estimate_tokens(
                [body.get("system") or "", body["messages"], body.get("tools") or []]
            )
            output_tokens = estimate_tokens(blocks)
        return {
            "id": f"msg_01fake{next(self._ids):016d}",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": blocks,
            "stop_reason": reply.finish_reason or stop_reason,
            "stop_sequence": stop_sequence,
            "usage": {
                "input_tokens": input_tokens,
                "output_tokens": output_tokens,
                "cache_creation_input_tokens": reply.cache_write,
                "cache_read_input_tokens": reply.cache_read,
            },
        }

    def _message(self, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        message = self._answer(body, reply)
        for block in message["content"]:
            if block["type"] == "tool_use" and isinstance(block["input"], str):
                block["input"] = json.loads(block["input"])
        return message

    async def _stream(self, send: Send, body: dict[str, Any], reply: Reply) -> None:
        message = self._answer(body, reply)

        frames: list[str] = []

        def event(name: str, data: dict[str, Any]) -> None:
            frames.append(f"event: {name}\ndata: {json.dumps(data)}\n\n")

        async def flush() -> None:
            for frame in frames:
                await send_chunk(send, frame)
            await end_stream(send)

        usage = message["usage"]
        start = {
            **message,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {**usage, "output_tokens": 1},
        }
        await start_stream(send)
        event("message_start", {"type": "message_start", "message": start})
        for index, block in enumerate(message["content"]):
            if block["type"] == "text":
                head: dict[str, Any] = {"type": "text", "text": ""}
            else:
                head = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            event(
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": head},
            )
            if index == 0:
                event("ping", {"type": "ping"})
            if block["type"] == "text":
                for piece in chunks(block["text"]):
                    delta = {"type": "text_delta", "text": piece}
                    event(
                        "content_block_delta",
                        {"type": "content_block_delta", "index": index, "delta": delta},
                    )
                if reply.failure is not None:
                    break
            else:
                raw = block["input"]
                arguments = raw if isinstance(raw, str) else json.dumps(raw)
                for piece in ["", *chunks(arguments, 7)]:
                    delta = {"type": "input_json_delta", "partial_json": piece}
                    event(
                        "content_block_delta",
                        {"type": "content_block_delta", "index": index, "delta": delta},
                    )
            event("content_block_stop", {"type": "content_block_stop", "index": index})
        if reply.failure is not None:  # in-stream error
            failure = reply.failure
            event("error", error_body(failure.type or "overloaded_error", failure.message))
            await flush()
            return
        if reply.cut is not None:  # a cut stream: no message_delta, no message_stop
            del frames[reply.cut :]
            await flush()
            return
        event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {
                    "stop_reason": message["stop_reason"],
                    "stop_sequence": message["stop_sequence"],
                },
                "usage": {"output_tokens": usage["output_tokens"]},
            },
        )
        event("message_stop", {"type": "message_stop"})
        await flush()


_MEDIA_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")


def _validate_image(block: dict[str, Any], where: str, role: Any) -> None:
    """An image block: a base64 source of a known media type, or a URL source."""
    if role != "user":
        raise RequestRejected(f"{where}: image blocks can only be in `user` messages")
    source = block.get("source")
    kind = source.get("type") if isinstance(source, dict) else None
    if kind == "base64":
        assert isinstance(source, dict)
        if source.get("media_type") not in _MEDIA_TYPES:
            raise RequestRejected(
                f"{where}.source.base64.media_type: Input should be one of {_MEDIA_TYPES}"
            )
        data = source.get("data")
        try:
            base64.b64decode(str(data), validate=True)
        except ValueError:
            raise RequestRejected(f"{where}.source.base64.data: invalid base64") from None
    elif kind == "url":
        assert isinstance(source, dict)
        if not str(source.get("url", "")).startswith(("https://", "http://")):
            raise RequestRejected(f"{where}.source.url.url: must be an http(s) URL")
    else:
        raise RequestRejected(f"{where}.source: Input tag '{kind}' does not match any tag")
