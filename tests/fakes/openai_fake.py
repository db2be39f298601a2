"""A strict fake of OpenAI's Chat Completions API (``POST /v1/chat/completions``).

Speaks the real wire format (JSON, and SSE ``data: {...}`` chunks ending with
``data: [DONE]``, plus the usage chunk when ``stream_options.include_usage``) and rejects
what the real API rejects, with the real error body
``{"error": {"message", "type", "param", "code"}}`` and status:

- 401 when the ``Authorization: Bearer`` header is missing (or, when the fake was given
  an ``api_key``, wrong);
- 400 for: unparseable JSON; unknown top-level parameters; missing ``model`` or
  ``messages``; an empty ``messages`` array; invalid roles; a ``tool`` message without
  ``tool_call_id`` or whose ``tool_call_id`` does not answer a still-unanswered
  ``tool_calls`` id of the immediately preceding assistant message; an assistant
  message with ``tool_calls`` not followed by tool messages for every id; a tool call
  whose ``function.arguments`` is not a string, whose ``type`` is not ``function``, or
  whose id is missing or longer than 40 characters; an assistant message with neither
  content nor tool calls; malformed ``tools``; ``tool_choice`` without ``tools`` or
  naming an unknown tool; ``stream_options`` without ``stream``; ``parallel_tool_calls``
  without ``tools`` or not a boolean; ``temperature`` outside 0..2, ``top_p`` outside
  0..1; a ``response_format`` whose type is not text/json_object/json_schema, a
  ``json_schema`` without ``name`` (or a name not matching ``^[a-zA-Z0-9_-]{1,64}$``) or
  without an object ``schema``, a ``strict`` schema that breaks the strict-mode rules
  (every object needs ``additionalProperties: false`` and all its properties in
  ``required``), ``json_object`` when no message contains the word "json".

Models in ``no_tool_models`` are served as by a vLLM server started without a tool-call
parser: a request for one of them carrying ``tools``, ``tool_choice``, a ``tool``
message or an assistant message with ``tool_calls`` is rejected with 400 (vLLM's
message for ``tools``: ``"auto" tool choice requires --enable-auto-tool-choice and
--tool-call-parser to be set``).

Replies come from ``fake.script`` (see :mod:`tests.fakes.script`); with an empty queue
the fake echoes the last user message (as JSON under a JSON ``response_format``: the
schema's :func:`~tests.fakes.script.example_instance`, or ``{"echo": ...}``). Usage
numbers are computed from the request. ``Reply.malformed(body)`` answers *body* verbatim;
``cut=n`` sends the first *n* ``data:`` chunks (the first is the role chunk) and ends
without the finish chunk, the usage chunk and ``[DONE]``.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from typing import Any

from tests.fakes.script import (
    Receive,
    Reply,
    Scope,
    Script,
    Send,
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

KNOWN_PARAMETERS = frozenset(
    {
        "model", "messages", "tools", "tool_choice", "parallel_tool_calls", "temperature",
        "top_p", "n", "stream", "stream_options", "stop", "max_tokens",
        "max_completion_tokens", "presence_penalty", "frequency_penalty", "logit_bias",
        "logprobs", "top_logprobs", "user", "seed", "response_format", "service_tier",
        "store", "metadata", "reasoning_effort", "modalities", "audio", "prediction",
        "web_search_options", "functions", "function_call", "safety_identifier",
        "prompt_cache_key", "verbosity",
    }
)  # fmt: skip
ROLES = ("system", "developer", "user", "assistant", "tool", "function")
TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
DEFAULT_ERROR_TYPES: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_denied", None),
    404: ("invalid_request_error", "model_not_found"),
    422: ("invalid_request_error", None),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
    503: ("service_unavailable", None),
}


class RequestRejected(Exception):
    def __init__(
        self, message: str, param: str | None = None, code: str | None = None, status: int = 400
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code
        self.status = status


def error_body(
    message: str, type_: str = "invalid_request_error", param: str | None = None,
    code: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def validate_request(body: Any) -> None:
    """Raise :class:`RequestRejected` the way the real API would."""
    if not isinstance(body, dict):
        raise RequestRejected("Invalid type for request body: expected an object.")
    for key in body:
        if key not in KNOWN_PARAMETERS:
            raise RequestRejected(f"Unrecognized request argument supplied: {key}")
    if "model" not in body:
        raise RequestRejected("you must provide a model parameter")
    if not isinstance(body["model"], str):
        raise RequestRejected("Invalid type for 'model'.", "model", "invalid_type")
    if "messages" not in body:
        raise RequestRejected(
            "Missing required parameter: 'messages'.", "messages", "missing_required_parameter"
        )
    messages = body["messages"]
    if not isinstance(messages, list):
        raise RequestRejected("Invalid type for 'messages'.", "messages", "invalid_type")
    if not messages:
        raise RequestRejected(
            "Invalid 'messages': empty array. Expected an array with minimum length 1, "
            "but got an empty array instead.",
            "messages",
            "empty_array",
        )
    _validate_messages(messages)
    tool_names = _validate_tools(body)
    _validate_tool_choice(body, tool_names)
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise RequestRejected("Invalid type for 'stream'.", "stream", "invalid_type")
    if body.get("stream_options") is not None and not stream:
        raise RequestRejected(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            "stream_options",
        )
    stop = body.get("stop")
    if stop is not None and not isinstance(stop, str | list):
        raise RequestRejected("Invalid type for 'stop'.", "stop", "invalid_type")
    _validate_sampling(body)
    parallel = body.get("parallel_tool_calls")
    if parallel is not None:
        if not isinstance(parallel, bool):
            raise RequestRejected(
                "Invalid type for 'parallel_tool_calls': expected a boolean.",
                "parallel_tool_calls",
                "invalid_type",
            )
        if not tool_names:
            raise RequestRejected(
                "Invalid value for 'parallel_tool_calls': 'parallel_tool_calls' is only "
                "allowed when 'tools' are specified.",
                "parallel_tool_calls",
            )
    _validate_response_format(body.get("response_format"), messages)


def _validate_sampling(body: dict[str, Any]) -> None:
    for name, high in (("temperature", 2), ("top_p", 1)):
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise RequestRejected(f"Invalid type for '{name}'.", name, "invalid_type")
        if value < 0:
            raise RequestRejected(
                f"Invalid '{name}': decimal below minimum value. Expected a value >= 0, but "
                f"got {value} instead.",
                name,
                "decimal_below_min_value",
            )
        if value > high:
            raise RequestRejected(
                f"Invalid '{name}': decimal above maximum value. Expected a value <= {high}, "
                f"but got {value} instead.",
                name,
                "decimal_above_max_value",
            )


def _validate_response_format(fmt: Any, messages: list[Any]) -> None:
    if fmt is None:
        return
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind not in ("text", "json_object", "json_schema"):
        raise RequestRejected(
            f"Invalid value: '{kind}'. Supported values are: 'json_object', 'json_schema', "
            "and 'text'.",
            "response_format.type",
            "invalid_value",
        )
    if kind == "json_object":
        if "json" not in json.dumps([m.get("content") for m in messages]).lower():
            raise RequestRejected(
                "'messages' must contain the word 'json' in some form, to use "
                "'response_format' of type 'json_object'.",
                "messages",
            )
        return
    if kind != "json_schema":
        return
    spec = fmt.get("json_schema")
    if not isinstance(spec, dict):
        raise RequestRejected(
            "Missing required parameter: 'response_format.json_schema'.",
            "response_format.json_schema",
            "missing_required_parameter",
        )
    for extra in spec:
        if extra not in ("name", "schema", "strict", "description"):
            raise RequestRejected(
                f"Unrecognized request argument supplied: response_format.json_schema.{extra}"
            )
    name = spec.get("name")
    if not isinstance(name, str):
        raise RequestRejected(
            "Missing required parameter: 'response_format.json_schema.name'.",
            "response_format.json_schema.name",
            "missing_required_parameter",
        )
    if not TOOL_NAME.fullmatch(name):
        raise RequestRejected(
            "Invalid 'response_format.json_schema.name': string does not match pattern. "
            "Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$'.",
            "response_format.json_schema.name",
            "invalid_value",
        )
    schema = spec.get("schema")
    if not isinstance(schema, dict):
        raise RequestRejected(
            "Missing required parameter: 'response_format.json_schema.schema'.",
            "response_format.json_schema.schema",
            "missing_required_parameter",
        )
    strict = spec.get("strict", False)
    if not isinstance(strict, bool | None):
        raise RequestRejected(
            "Invalid type for 'response_format.json_schema.strict': expected a boolean.",
            "response_format.json_schema.strict",
            "invalid_type",
        )
    if strict:
        _check_strict_schema(schema, name, ())


def _check_strict_schema(schema: Any, name: str, path: tuple[str, ...]) -> None:
    """Structured Outputs' strict-mode rules (the ones an adapter could get wrong)."""
    if not isinstance(schema, dict):
        return
    where = f"context=({', '.join(repr(p) for p in path)})"
    if schema.get("type") == "object" or "properties" in schema:
        if schema.get("additionalProperties") is not False:
            raise RequestRejected(
                f"Invalid schema for response_format '{name}': In {where}, "
                "'additionalProperties' is required to be supplied and to be false.",
                "response_format",
                "invalid_json_schema",
            )
        properties = schema.get("properties") or {}
        missing = [key for key in properties if key not in (schema.get("required") or [])]
        if missing:
            raise RequestRejected(
                f"Invalid schema for response_format '{name}': In {where}, 'required' is "
                "required to be supplied and to be an array including every key in "
                f"properties. Missing '{missing[0]}'.",
                "response_format",
                "invalid_json_schema",
            )
        for key, sub in properties.items():
            _check_strict_schema(sub, name, (*path, "properties", key))
    if "items" in schema:
        _check_strict_schema(schema["items"], name, (*path, "items"))
    for keyword in ("anyOf", "allOf"):
        for i, sub in enumerate(schema.get(keyword) or []):
            _check_strict_schema(sub, name, (*path, keyword, str(i)))
    for keyword in ("$defs", "definitions"):
        for key, sub in (schema.get(keyword) or {}).items():
            _check_strict_schema(sub, name, (*path, keyword, key))


def _validate_messages(messages: list[Any]) -> None:
    pending: list[str] | None = None  # ids of the last assistant's calls still unanswered
    pending_at = 0
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise RequestRejected(f"Invalid type for 'messages[{i}]'.", f"messages[{i}]")
        role = message.get("role")
        if role not in ROLES:
            raise RequestRejected(
                f"Invalid value: '{role}'. Supported values are: 'system', 'assistant', "
                "'user', 'function', 'tool', and 'developer'.",
                f"messages[{i}].role",
                "invalid_value",
            )
        if role == "tool":
            call_id = message.get("tool_call_id")
            if not isinstance(call_id, str):
                raise RequestRejected(
                    "Missing parameter 'tool_call_id': messages with role 'tool' must have "
                    "a 'tool_call_id'.",
                    f"messages.[{i}].tool_call_id",
                )
            if pending is None or call_id not in pending:
                raise RequestRejected(
                    "Invalid parameter: messages with role 'tool' must be a response to a "
                    "preceeding message with 'tool_calls'.",
                    f"messages.[{i}].role",
                )
            pending.remove(call_id)
            if not isinstance(message.get("content"), str | list):
                raise RequestRejected(
                    f"Invalid type for 'messages[{i}].content'.", f"messages[{i}].content"
                )
            continue
        if pending:
            raise _unanswered(pending, pending_at)
        pending = None
        content = message.get("content")
        if role == "assistant":
            tool_calls = message.get("tool_calls")
            if tool_calls is not None:
                pending = _validate_tool_calls(tool_calls, i)
                pending_at = i
            if content is None and not tool_calls:
                raise RequestRejected(
                    "Invalid value for 'content': expected a string, got null.",
                    f"messages.[{i}].content",
                )
        elif "content" not in message:
            raise RequestRejected(
                f"Missing required parameter: 'messages[{i}].content'.",
                f"messages[{i}].content",
                "missing_required_parameter",
            )
        if content is not None and not isinstance(content, str | list):
            raise RequestRejected(
                f"Invalid type for 'messages[{i}].content'.",
                f"messages[{i}].content",
                "invalid_type",
            )
        if isinstance(content, list):
            _validate_parts(content, i, role)
    if pending:
        raise _unanswered(pending, pending_at)


_IMAGE_DATA = re.compile(r"^data:image/(png|jpeg|gif|webp);base64,[A-Za-z0-9+/=]+$")


def _validate_parts(parts: list[Any], i: int, role: Any) -> None:
    """Content parts as Chat Completions takes them: text everywhere, images from users."""
    for k, part in enumerate(parts):
        where = f"messages[{i}].content[{k}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            if not isinstance(part.get("text"), str):
                raise RequestRejected(f"Missing required parameter: '{where}.text'.", where)
        elif kind == "image_url":
            if role != "user":
                raise RequestRejected(
                    f"Invalid '{where}': image_url is only supported in messages with role 'user'.",
                    where,
                )
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else None
            if not isinstance(url, str) or not (
                url.startswith(("https://", "http://")) or _IMAGE_DATA.match(url)
            ):
                raise RequestRejected(
                    f"Invalid '{where}.image_url.url': expected a URL or a base64 image.",
                    f"{where}.image_url.url",
                )
            if image.get("detail", "auto") not in ("auto", "low", "high"):
                raise RequestRejected(f"Invalid value: '{where}.image_url.detail'.", where)
        else:
            raise RequestRejected(
                f"Invalid value: '{kind}'. Supported values are: 'text' and 'image_url'.",
                f"{where}.type",
            )


def _unanswered(pending: list[str], index: int) -> RequestRejected:
    return RequestRejected(
        "An assistant message with 'tool_calls' must be followed by tool messages responding "
        "to each 'tool_call_id'. The following tool_call_ids did not have response messages: "
        + ", ".join(pending),
        f"messages.[{index}].role",
    )


def _validate_tool_calls(tool_calls: Any, i: int) -> list[str]:
    if not isinstance(tool_calls, list):
        raise RequestRejected(f"Invalid type for 'messages[{i}].tool_calls'.", "invalid_type")
    ids: list[str] = []
    for k, tool_call in enumerate(tool_calls):
        where = f"messages[{i}].tool_calls[{k}]"
        if not isinstance(tool_call, dict):
            raise RequestRejected(f"Invalid type for '{where}'.", where, "invalid_type")
        call_id = tool_call.get("id")
        if not isinstance(call_id, str):
            raise RequestRejected(
                f"Missing required parameter: '{where}.id'.",
                f"{where}.id",
                "missing_required_parameter",
            )
        if len(call_id) > 40:
            raise RequestRejected(
                f"Invalid '{where}.id': string too long. Expected a string with maximum "
                f"length 40, but got a string with length {len(call_id)} instead.",
                f"{where}.id",
                "string_above_max_length",
            )
        if tool_call.get("type") != "function":
            raise RequestRejected(
                f"Invalid value: '{tool_call.get('type')}'. Supported values are: 'function'.",
                f"{where}.type",
                "invalid_value",
            )
        function = tool_call.get("function")
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise RequestRejected(
                f"Missing required parameter: '{where}.function.name'.",
                f"{where}.function.name",
                "missing_required_parameter",
            )
        arguments = function.get("arguments")
        if not isinstance(arguments, str):
            got = "an object" if isinstance(arguments, dict) else type(arguments).__name__
            raise RequestRejected(
                f"Invalid type for '{where}.function.arguments': expected a string, but got "
                f"{got} instead.",
                f"{where}.function.arguments",
                "invalid_type",
            )
        ids.append(call_id)
    return ids


def _validate_tools(body: dict[str, Any]) -> set[str]:
    tools = body.get("tools")
    if tools is None:
        return set()
    if not isinstance(tools, list):
        raise RequestRejected("Invalid type for 'tools'.", "tools", "invalid_type")
    names: set[str] = set()
    for k, tool in enumerate(tools):
        if not isinstance(tool, dict) or tool.get("type") != "function":
            raise RequestRejected(
                f"Invalid value for 'tools[{k}].type'.", f"tools[{k}].type", "invalid_value"
            )
        function = tool.get("function")
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise RequestRejected(
                f"Missing required parameter: 'tools[{k}].function.name'.",
                f"tools[{k}].function.name",
                "missing_required_parameter",
            )
        if not TOOL_NAME.fullmatch(function["name"]):
            raise RequestRejected(
                f"Invalid 'tools[{k}].function.name': string does not match pattern. "
                "Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$'.",
                f"tools[{k}].function.name",
                "invalid_value",
            )
        parameters = function.get("parameters")
        if parameters is not None and not isinstance(parameters, dict):
            raise RequestRejected(
                f"Invalid type for 'tools[{k}].function.parameters'.",
                f"tools[{k}].function.parameters",
                "invalid_type",
            )
        names.add(function["name"])
    return names


def _validate_tool_choice(body: dict[str, Any], tool_names: set[str]) -> None:
    choice = body.get("tool_choice")
    if choice is None:
        return
    if not tool_names:
        raise RequestRejected(
            "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are "
            "specified.",
            "tool_choice",
        )
    if isinstance(choice, str):
        if choice not in ("auto", "none", "required"):
            raise RequestRejected(
                f"Invalid value: '{choice}'. Supported values are: 'none', 'auto', and 'required'.",
                "tool_choice",
                "invalid_value",
            )
        return
    name = (choice.get("function") or {}).get("name") if isinstance(choice, dict) else None
    if not isinstance(choice, dict) or choice.get("type") != "function" or name is None:
        raise RequestRejected("Invalid value for 'tool_choice'.", "tool_choice", "invalid_value")
    if name not in tool_names:
        raise RequestRejected(
            f"Invalid value for 'tool_choice': tool '{name}' not found in 'tools'.",
            "tool_choice",
        )


def reject_tools(body: dict[str, Any]) -> None:
    """What a vLLM server without a tool-call parser rejects (``no_tool_models``)."""
    if "tools" in body or "tool_choice" in body:
        raise RequestRejected(
            '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser '
            "to be set",
            "tools",
        )
    for i, message in enumerate(body["messages"]):
        if message.get("role") == "tool" or message.get("tool_calls"):
            raise RequestRejected(
                f"messages[{i}]: this model's chat template has no tool messages",
                f"messages[{i}]",
            )


def last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return " ".join(
                    str(p.get("text", "")) for p in content if isinstance(p, dict)
                ).strip()
    return ""


def default_answer(body: dict[str, Any]) -> str:
    """The answer with an empty script: the echo, as JSON under a JSON response format."""
    text = echo(last_user_text(body["messages"]))
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_schema":
        return json.dumps(example_instance(fmt["json_schema"]["schema"], text))
    if fmt.get("type") == "json_object":
        return json.dumps({"echo": text})
    return text


class OpenAIFake:
    """ASGI app: ``with serve(OpenAIFake()) as url`` then use ``base_url=url + "/v1"``.

    ``api_key``: when set, any other bearer token is rejected with 401.
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
        if scope["method"] != "POST" or scope["path"].rstrip("/") != "/v1/chat/completions":
            await send_json(
                send,
                404,
                error_body(f"Invalid URL ({scope['method']} {scope['path']})"),
            )
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
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        if not token:
            await send_json(
                send,
                401,
                error_body(
                    "You didn't provide an API key. You need to provide your API key in an "
                    "Authorization header using Bearer auth (i.e. Authorization: Bearer "
                    "YOUR_KEY), or as the password field (with blank username) if you're "
                    "accessing the API from your browser and are prompted for a username and "
                    "password. You can obtain an API key from "
                    "https://platform.openai.com/account/api-keys."
                ),
            )
            return
        if self.api_key is not None and token != self.api_key:
            await send_json(
                send,
                401,
                error_body(
                    f"Incorrect API key provided: {token[:3]}***. You can find your API key "
                    "at https://platform.openai.com/account/api-keys.",
                    code="invalid_api_key",
                ),
            )
            return
        if body is None:
            await send_json(
                send,
                400,
                error_body(
                    "We could not parse the JSON body of your request. (HINT: This likely "
                    "means you aren't using your HTTP library correctly. The OpenAI API "
                    "expects a JSON payload, but what was sent was not valid JSON.)"
                ),
            )
            return
        try:
            validate_request(body)
            if body["model"] in self.no_tool_models:
                reject_tools(body)
        except RequestRejected as exc:
            await send_json(
                send, exc.status, error_body(exc.message, param=exc.param, code=exc.code)
            )
            return

        reply = self.script.next() or Reply.text(default_answer(body))
        if reply.delay and not await wait_or_disconnect(receive, reply.delay):
            return
        stream = bool(body.get("stream"))
        if reply.body is not None:
            await send_raw(send, reply, "text/event-stream" if stream else "application/json")
            return
        failure = reply.failure
        if failure is not None and not (failure.in_stream and stream):
            type_, code = DEFAULT_ERROR_TYPES.get(
                failure.status,
                ("server_error" if failure.status >= 500 else "invalid_request_error", None),
            )
            await send_json(
                send,
                failure.status,
                error_body(failure.message, failure.type or type_, None, failure.code or code),
                [*reply.error_headers(), (b"x-request-id", b"req_fake")],
            )
            return
        if stream:
            await self._stream(send, body, reply)
        else:
            await send_json(send, 200, self._completion(body, reply))

    # --- answers --------------------------------------------------------------------

    def _answer(
        self, body: dict[str, Any], reply: Reply
    ) -> tuple[str, list[dict[str, Any]], str, dict[str, Any]]:
        content = reply.content
        finish = "tool_calls" if reply.calls else "stop"
        stop = body.get("stop")
        for sequence in [stop] if isinstance(stop, str) else stop or []:
            if sequence and sequence in content:
                content = content[: content.index(sequence)]
        finish = reply.finish_reason or finish
        calls = [
            {
                "id": c.id or f"call_{next(self._ids):024d}",
                "type": "function",
                "function": {"name": c.name, "arguments": c.arguments_json()},
            }
            for c in reply.calls
        ]
        if reply.usage is not None:
            prompt, completion = reply.usage
        else:
            prompt = estimate_tokens([body["messages"], body.get("tools") or []])
            completion = (
                estimate_tokens(content + json.dumps(calls))
                if calls
                else (estimate_tokens(content))
            )
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": reply.cache_read, "audio_tokens": 0},
        }
        return content, calls, finish, usage

    def _completion(self, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        content, calls, finish, usage = self._answer(body, reply)
        message: dict[str, Any] = {
            "role": "assistant",
            "content": content if content or not calls else None,
            "refusal": None,
        }
        if calls:
            message["tool_calls"] = calls
        return {
            "id": f"chatcmpl-fake{next(self._ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
            ],
            "usage": usage,
            "system_fingerprint": "fp_fake",
        }

    async def _stream(self, send: Send, body: dict[str, Any], reply: Reply) -> None:
        content, calls, finish, usage = self._answer(body, reply)
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        base = {
            "id": f"chatcmpl-fake{next(self._ids)}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": body["model"],
            "system_fingerprint": "fp_fake",
        }

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> str:
            data: dict[str, Any] = {
                **base,
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
                ],
            }
            if include_usage:
                data["usage"] = None
            return f"data: {json.dumps(data)}\n\n"

        await start_stream(send)
        frames = [chunk({"role": "assistant", "content": "", "refusal": None})]
        frames += [chunk({"content": piece}) for piece in chunks(content)]
        if reply.failure is not None:  # in-stream error
            failure = reply.failure
            error = error_body(failure.message, failure.type or "server_error", None, failure.code)
            for frame in [*frames, f"data: {json.dumps(error)}\n\n"]:
                await send_chunk(send, frame)
            await end_stream(send)
            return
        for index, tool_call in enumerate(calls):
            function = tool_call["function"]
            head = {
                "index": index,
                "id": tool_call["id"],
                "type": "function",
                "function": {"name": function["name"], "arguments": ""},
            }
            frames.append(chunk({"tool_calls": [head]}))
            for piece in chunks(function["arguments"], 7):
                part = {"index": index, "function": {"arguments": piece}}
                frames.append(chunk({"tool_calls": [part]}))
        if reply.cut is not None:  # a cut stream: no finish chunk, usage or [DONE]
            frames = frames[: reply.cut]
        else:
            frames.append(chunk({}, finish))
        for frame in frames:
            await send_chunk(send, frame)
        if reply.cut is not None:
            await end_stream(send)
            return
        if include_usage:
            data = {**base, "choices": [], "usage": usage}
            await send_chunk(send, f"data: {json.dumps(data)}\n\n")
        await send_chunk(send, "data: [DONE]\n\n")
        await end_stream(send)
