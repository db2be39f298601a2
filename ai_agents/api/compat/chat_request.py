"""The body of ``POST /v1/chat/completions``, checked: OpenAI's parameters into one
:class:`ChatRequest` for the gateway, or a 400 naming the parameter at fault (see
:mod:`api.compat.chat` for what is supported)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ai_agents.api.compat import fields
from ai_agents.api.compat.catalog import resolve_model
from ai_agents.api.compat.errors import invalid
from ai_agents.messages import Message, ToolCall
from ai_agents.providers.base import ProviderRequest, ToolSpec
from ai_agents.providers.registry import get_registry
from ai_agents.providers.routing import Target
from ai_agents.runs.overrides import (
    client_tool_specs,
    parse_client_tools,
    parse_response_format,
)
from ai_agents.runs.stateless import StatelessCall, output_cap

MAX_MESSAGES = 10_000
MAX_TOOLS = 128
MAX_STOP = 4
MAX_FALLBACKS = 4
MAX_USER = 256
_ROLES = ("system", "developer", "user", "assistant", "tool")

_FIELDS = (
    "model",
    "messages",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "stop",
    "response_format",
    "stream",
    "stream_options",
    "user",
    "metadata",
    "n",
    "seed",
    "fallbacks",
)
#: OpenAI parameters accepted at their default value only (clients send them as such).
_DEFAULT_ONLY: dict[str, tuple[Any, ...]] = {
    "presence_penalty": (None, 0, 0.0),
    "frequency_penalty": (None, 0, 0.0),
    "logprobs": (None, False),
    "top_logprobs": (None, 0),
    "logit_bias": (None, {}),
    "store": (None, False),
    "service_tier": (None, "auto", "default"),
}
#: Keys a message may carry (``name`` and null ``refusal``/``audio``/``function_call``
#: are ignored).
_MESSAGE_KEYS = frozenset(
    ("role", "content", "name", "tool_calls", "tool_call_id", "refusal", "audio", "function_call")
)


# --- request --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatRequest:
    """A checked chat completions body."""

    call: StatelessCall
    stream: bool
    include_usage: bool


def _text_parts(parts: list[Any], param: str, allowed: tuple[str, ...]) -> str:
    texts: list[str] = []
    for i, part in enumerate(parts):
        where = f"{param}[{i}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind not in allowed:
            if kind in ("image_url", "input_audio", "file"):
                raise invalid(f"{where}: {kind} content is not supported by this server", where)
            raise invalid(f"{where}.type must be one of {', '.join(allowed)}", f"{where}.type")
        text = part.get(kind)
        if not isinstance(text, str):
            raise invalid(f"{where}.{kind} must be a string", f"{where}.{kind}")
        texts.append(text)
    return "".join(texts)


def _content(value: Any, param: str, *, allowed: tuple[str, ...] = ("text",)) -> str | None:
    """A message's content as text: a string, or an array of text parts (joined)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list):
        return _text_parts(value, param, allowed)
    raise invalid(f"{param} must be a string or an array of content parts", param)


def _arguments(value: Any, param: str) -> dict[str, Any]:
    """A tool call's ``function.arguments`` (a JSON string) as the dict the providers use;
    text that is not a JSON object is kept under ``_raw``, as stored tool calls are."""
    if not isinstance(value, str):
        raise invalid(f"{param} must be a string of JSON", param)
    try:
        parsed = json.loads(value) if value.strip() else {}
    except ValueError:
        return {"_raw": value}
    return parsed if isinstance(parsed, dict) else {"_raw": value}


def _tool_calls(value: Any, param: str) -> list[ToolCall]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise invalid(f"{param} must be an array", param)
    calls: list[ToolCall] = []
    for i, item in enumerate(value):
        where = f"{param}[{i}]"
        if not isinstance(item, dict) or item.get("type", "function") != "function":
            raise invalid(f"{where} must be a function tool call", where)
        ident, function = item.get("id"), item.get("function")
        if not isinstance(ident, str) or not ident:
            raise invalid(f"{where}.id must be a non-empty string", f"{where}.id")
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise invalid(f"{where}.function.name must be a string", f"{where}.function.name")
        arguments = _arguments(function.get("arguments", "{}"), f"{where}.function.arguments")
        calls.append(ToolCall(ident, function["name"], arguments))
    return calls


def _message(item: Any, i: int, call_names: dict[str, str]) -> Message:
    """One wire message as an internal one (*call_names*: tool call id -> tool name)."""
    where = f"messages[{i}]"
    if not isinstance(item, dict):
        raise invalid(f"{where} must be an object", where)
    for key in item:
        if key not in _MESSAGE_KEYS:
            raise invalid(f"Unrecognized request argument supplied: {where}.{key}", where)
    role = item.get("role")
    if role not in _ROLES:
        raise invalid(f"{where}.role must be one of {', '.join(_ROLES)}", f"{where}.role")
    param = f"{where}.content"
    if role == "assistant":
        calls = _tool_calls(item.get("tool_calls"), f"{where}.tool_calls")
        content = _content(item.get("content"), param, allowed=("text", "refusal"))
        if not content and not calls:
            raise invalid(f"{where}: an assistant message needs content or tool_calls", param)
        call_names.update((c.id, c.name) for c in calls)
        return Message(role="assistant", content=content or None, tool_calls=calls)
    content = _content(item.get("content"), param)
    if content is None:
        raise invalid(f"{param} is required", param)
    if role == "tool":
        call_id = item.get("tool_call_id")
        if not isinstance(call_id, str) or call_id not in call_names:
            raise invalid(
                f"{where}: a tool message must answer a tool_call_id of a preceding "
                "assistant message's tool_calls",
                f"{where}.tool_call_id",
            )
        return Message(
            role="tool", content=content, tool_call_id=call_id, tool_name=call_names[call_id]
        )
    return Message(role="system" if role == "developer" else role, content=content)


def _messages(value: Any) -> tuple[str, list[Message]]:
    """(system prompt, history): the leading system/developer messages are the prompt."""
    if not isinstance(value, list) or not value:
        raise invalid("messages must be a non-empty array", "messages")
    if len(value) > MAX_MESSAGES:
        raise invalid(f"messages may have at most {MAX_MESSAGES} entries", "messages")
    call_names: dict[str, str] = {}
    history = [_message(item, i, call_names) for i, item in enumerate(value)]
    lead = 0
    while lead < len(history) and history[lead].role == "system":
        lead += 1
    prompt = "\n\n".join(m.text for m in history[:lead])
    return prompt, history[lead:]


def _tools(value: Any) -> list[ToolSpec]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise invalid("tools must be an array", "tools")
    if len(value) > MAX_TOOLS:
        raise invalid(f"tools may have at most {MAX_TOOLS} entries, got {len(value)}", "tools")
    for i, tool in enumerate(value):
        if not isinstance(tool, dict) or tool.get("type") != "function":
            raise invalid(f"tools[{i}].type must be 'function'", f"tools[{i}].type")
    return client_tool_specs(parse_client_tools(value, "tools"))


def _tool_choice(value: Any, tools: list[ToolSpec]) -> str:
    if value is None:
        return "auto"
    if not tools:
        raise invalid("tool_choice is only allowed when tools are specified", "tool_choice")
    if value in ("auto", "none", "required"):
        return str(value)
    function = value.get("function") if isinstance(value, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    if not isinstance(value, dict) or value.get("type") != "function" or not isinstance(name, str):
        raise invalid(
            "tool_choice must be 'auto', 'none', 'required' or "
            "{'type': 'function', 'function': {'name': ...}}",
            "tool_choice",
        )
    if name not in {t.name for t in tools}:
        raise invalid(f"tool_choice names {name!r}, which is not in tools", "tool_choice")
    return name


def _stop(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    stops = [value] if isinstance(value, str) else value
    if (
        not isinstance(stops, list)
        or len(stops) > MAX_STOP
        or not all(isinstance(s, str) and s for s in stops)
    ):
        raise invalid(f"stop must be a string or an array of up to {MAX_STOP} strings", "stop")
    return tuple(stops)


def _positive_int(value: Any, param: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise invalid(f"{param} must be a positive integer", param)
    return value


def _boolean(value: Any, param: str) -> bool | None:
    if value is not None and not isinstance(value, bool):
        raise invalid(f"{param} must be a boolean", param)
    return value


def _include_usage(options: Any, stream: bool) -> bool:
    if options is None:
        return False
    if not stream:
        raise invalid("stream_options is only allowed when stream is true", "stream_options")
    if not isinstance(options, dict):
        raise invalid("stream_options must be an object", "stream_options")
    for key in options:
        if key not in ("include_usage", "include_obfuscation"):
            raise invalid(f"Unrecognized request argument supplied: stream_options.{key}", key)
    return bool(_boolean(options.get("include_usage"), "stream_options.include_usage"))


def _unsupported(body: dict[str, Any]) -> None:
    """Known OpenAI parameters this server only takes at their default value."""
    if body.get("n") not in (None, 1):
        raise invalid("n must be 1: this server answers with one choice", "n")
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise invalid("seed must be an integer", "seed")
    for name, defaults in _DEFAULT_ONLY.items():
        if name in body and body[name] not in defaults:
            raise invalid(f"{name} is not supported by this server", name)


def _targets(body: dict[str, Any]) -> list[Target]:
    """The model the body names, then its ``fallbacks`` (each resolved like ``model``)."""
    primary = Target(*resolve_model(body.get("model")))
    chain = body.get("fallbacks")
    if chain is None:
        return [primary]
    if not isinstance(chain, list) or len(chain) > MAX_FALLBACKS:
        raise invalid(f"fallbacks must be an array of up to {MAX_FALLBACKS} models", "fallbacks")
    targets = [primary]
    for i, name in enumerate(chain):
        target = Target(*resolve_model(name, f"fallbacks[{i}]"))
        if target not in targets:
            targets.append(target)
    return targets


def parse_request(body: Any, tenant_id: str, ceiling: int) -> ChatRequest:
    """The checked body as a gateway call; a 400 naming the first bad parameter."""
    if not isinstance(body, dict):
        raise invalid("the request body must be a JSON object")
    fields.reject_unknown(body, (*_FIELDS, *_DEFAULT_ONLY))
    if "model" not in body:
        raise invalid("you must provide a model parameter", "model")
    _unsupported(body)
    targets = _targets(body)
    prompt, history = _messages(body.get("messages"))
    tools = _tools(body.get("tools"))
    requested = _positive_int(body.get("max_completion_tokens"), "max_completion_tokens")
    if requested is None:
        requested = _positive_int(body.get("max_tokens"), "max_tokens")
    limits = get_registry().get(targets[0].provider, targets[0].model)
    reserve, cap = output_cap(limits, ceiling, requested)
    stream = bool(_boolean(body.get("stream"), "stream"))
    fields.metadata(body.get("metadata"))
    request = ProviderRequest(
        model=targets[0].model,
        system_prompt=prompt,
        messages=history,
        tools=tools,
        temperature=fields.optional_number(body.get("temperature"), "temperature", 0, 2),
        top_p=fields.optional_number(body.get("top_p"), "top_p", 0, 1),
        max_output_tokens=cap,
        tool_choice=_tool_choice(body.get("tool_choice"), tools),
        stop=_stop(body.get("stop")),
        parallel_tool_calls=_boolean(body.get("parallel_tool_calls"), "parallel_tool_calls"),
        response_format=parse_response_format(body.get("response_format")),
    )
    user = fields.optional_text(body.get("user"), "user", MAX_USER)
    call = StatelessCall(
        tenant_id=tenant_id, user_id=user or None, targets=targets, request=request,
        max_output=reserve,
    )  # fmt: skip
    return ChatRequest(
        call=call, stream=stream, include_usage=_include_usage(body.get("stream_options"), stream)
    )


# --- answer ---------------------------------------------------------------------------
