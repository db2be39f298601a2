"""The body of ``POST /v1/responses``, checked: a 400 naming the parameter at fault, or
one :class:`ResponseRequest` whose ``overrides`` are the run's per-run overrides
(:mod:`ai_agents.runs.overrides`): ``model`` → provider/model, ``instructions``,
function ``tools`` → client tools, ``tool_choice``, ``parallel_tool_calls``,
``temperature``, ``top_p``, ``max_output_tokens`` → ``max_completion_tokens``,
``text.format`` → ``response_format``.

Accepted and not applied (documented): ``include`` (nothing to include: no logprobs,
no reasoning), ``reasoning``, ``truncation`` (the thread's memory strategy trims),
``user``, ``safety_identifier``, ``prompt_cache_key``, ``prompt_cache_retention``;
``service_tier`` only ``auto``/``default``; ``top_logprobs`` only 0.

``include`` is checked the same way where it is a query parameter (retrieving a
response, listing its input items or a conversation's items): :func:`check_include`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from litestar.params import Parameter

from ai_agents.api.compat import fields
from ai_agents.api.compat.assistants import MAX_INSTRUCTIONS
from ai_agents.api.compat.catalog import resolve_model
from ai_agents.api.compat.errors import invalid

MAX_TOOLS = 128
_FIELDS = (
    "model",
    "input",
    "instructions",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "temperature",
    "top_p",
    "max_output_tokens",
    "text",
    "metadata",
    "previous_response_id",
    "conversation",
    "store",
    "stream",
    "stream_options",
    "background",
    "include",
    "truncation",
    "user",
    "safety_identifier",
    "prompt_cache_key",
    "prompt_cache_retention",
    "service_tier",
    "reasoning",
    "top_logprobs",
    "max_tool_calls",
)
_TOOL_KEYS = ("type", "name", "description", "parameters", "strict", "defer_loading")


#: OpenAI's ``IncludeEnum``: extra output data a response or its items may carry. This
#: server has none of it (no web or file search, code interpreter, computer use, input
#: images, reasoning, logprobs), so each value is accepted and adds nothing; any other
#: value is a 400, as OpenAI's.
INCLUDABLE = frozenset(
    {
        "file_search_call.results",
        "web_search_call.results",
        "web_search_call.action.sources",
        "message.input_image.image_url",
        "computer_call_output.output.image_url",
        "code_interpreter_call.outputs",
        "reasoning.encrypted_content",
        "message.output_text.logprobs",
    }
)
#: ``include`` as a query parameter: ``include=...`` as OpenAI's document spells it, and
#: ``include[]=...`` as the ``openai`` SDK sends arrays in a query.
Include = Annotated[list[str] | None, Parameter(query="include", required=False)]
IncludeBrackets = Annotated[list[str] | None, Parameter(query="include[]", required=False)]


def check_include(*values: Any) -> None:
    """A 400 naming ``include`` unless each of *values* is ``None`` or a list of
    :data:`INCLUDABLE` values."""
    for value in values:
        if value is None:
            continue
        if not isinstance(value, list) or not all(isinstance(i, str) for i in value):
            raise invalid("include must be an array of strings", "include")
        for item in value:
            if item not in INCLUDABLE:
                raise invalid(
                    f"include values must be among: {', '.join(sorted(INCLUDABLE))}; got {item!r}",
                    "include",
                )


@dataclass(slots=True, kw_only=True)
class ResponseRequest:
    input: Any
    overrides: dict[str, Any]
    #: What the response object echoes and the run does not keep (stored on the run).
    echo: dict[str, Any]
    metadata: dict[str, str]
    previous_response_id: str | None = None
    conversation: str | None = None
    stream: bool = False
    background: bool = False
    tools: list[dict[str, Any]] = field(default_factory=list)


def _boolean(value: Any, param: str) -> bool | None:
    if value is not None and not isinstance(value, bool):
        raise invalid(f"{param} must be a boolean", param)
    return value


def _string(value: Any, param: str, max_chars: int = 512) -> str | None:
    return fields.optional_text(value, param, max_chars)


def _tools(value: Any) -> list[dict[str, Any]]:
    """The function tools as given (normalized): ``{type, name, description, parameters,
    strict}``; any other tool kind is a 400 naming it."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise invalid("tools must be an array", "tools")
    if len(value) > MAX_TOOLS:
        raise invalid(f"tools may have at most {MAX_TOOLS} entries", "tools")
    out: list[dict[str, Any]] = []
    for i, tool in enumerate(value):
        where = f"tools[{i}]"
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind != "function":
            raise invalid(
                f"{where}.type: the {kind!r} tool is not supported by this server "
                "(function tools only)",
                f"{where}.type",
            )
        for key in tool:
            if key not in _TOOL_KEYS:
                raise invalid(f"Unrecognized request argument supplied: {where}.{key}", where)
        strict = _boolean(tool.get("strict"), f"{where}.strict")
        out.append(
            {
                "type": "function",
                "name": tool.get("name"),
                "description": tool.get("description"),
                "parameters": tool.get("parameters"),
                "strict": True if strict is None else strict,
            }
        )
    return out


def _tool_choice(value: Any) -> str | None:
    if value is None or value in ("auto", "none", "required"):
        return value  # type: ignore[no-any-return]
    if isinstance(value, dict) and value.get("type") == "function":
        name = value.get("name")
        if isinstance(name, str) and name:
            return name
    raise invalid(
        "tool_choice must be 'auto', 'none', 'required' or {'type': 'function', 'name': ...}",
        "tool_choice",
    )


def _text_format(value: Any) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(``text`` as echoed, the run's ``response_format``)."""
    if value is None:
        return {"format": {"type": "text"}, "verbosity": "medium"}, None
    if not isinstance(value, dict):
        raise invalid("text must be an object", "text")
    for key in value:
        if key not in ("format", "verbosity"):
            raise invalid(f"Unrecognized request argument supplied: text.{key}", "text")
    verbosity = value.get("verbosity") or "medium"
    if verbosity not in ("low", "medium", "high"):
        raise invalid("text.verbosity must be 'low', 'medium' or 'high'", "text.verbosity")
    fmt = value.get("format") or {"type": "text"}
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind in ("text", "json_object"):
        return {"format": {"type": kind}, "verbosity": verbosity}, (
            None if kind == "text" else {"type": "json_object"}
        )
    if kind != "json_schema":
        raise invalid(
            "text.format.type must be 'text', 'json_object' or 'json_schema'", "text.format.type"
        )
    spec = {k: fmt[k] for k in ("name", "schema", "description", "strict") if k in fmt}
    echoed = {
        "type": "json_schema",
        "name": fmt.get("name"),
        "schema": fmt.get("schema"),
        "description": fmt.get("description"),
        "strict": bool(fmt.get("strict", False)),
    }
    return {"format": echoed, "verbosity": verbosity}, {"type": "json_schema", "json_schema": spec}


def _defaults_only(body: dict[str, Any]) -> None:
    if body.get("service_tier") not in (None, "auto", "default"):
        raise invalid("service_tier must be 'auto' or 'default' on this server", "service_tier")
    if body.get("top_logprobs") not in (None, 0):
        raise invalid("top_logprobs is not supported by this server", "top_logprobs")
    if body.get("max_tool_calls") is not None:
        raise invalid("max_tool_calls is not supported by this server", "max_tool_calls")
    if body.get("truncation") not in (None, "auto", "disabled"):
        raise invalid("truncation must be 'auto' or 'disabled'", "truncation")
    check_include(body.get("include"))
    reasoning = body.get("reasoning")
    if reasoning is not None and not isinstance(reasoning, dict):
        raise invalid("reasoning must be an object", "reasoning")
    for name in ("user", "safety_identifier", "prompt_cache_key"):
        _string(body.get(name), name)
    if body.get("prompt_cache_retention") not in (None, "in_memory", "24h"):
        raise invalid(
            "prompt_cache_retention must be 'in_memory' or '24h'", "prompt_cache_retention"
        )


def _conversation(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, dict):
        value = value.get("id")
    if not isinstance(value, str) or not value:
        raise invalid("conversation must be a conversation id or {'id': ...}", "conversation")
    return value


def _max_output(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise invalid("max_output_tokens must be a positive integer", "max_output_tokens")
    return value


def parse_request(body: Any) -> ResponseRequest:
    """The checked body; a 400 naming the first bad parameter."""
    if not isinstance(body, dict):
        raise invalid("the request body must be a JSON object")
    fields.reject_unknown(body, _FIELDS)
    if body.get("model") is None:
        raise invalid("you must provide a model parameter", "model")
    if body.get("input") is None:
        raise invalid("you must provide an input parameter", "input")
    _defaults_only(body)
    provider, model = resolve_model(body["model"])
    tools = _tools(body.get("tools"))
    text, response_format = _text_format(body.get("text"))
    max_output = _max_output(body.get("max_output_tokens"))
    overrides: dict[str, Any] = {
        "provider": provider,
        "model": model,
        "instructions": fields.optional_text(
            body.get("instructions"), "instructions", MAX_INSTRUCTIONS
        ),
        "temperature": fields.optional_number(body.get("temperature"), "temperature", 0, 2),
        "top_p": fields.optional_number(body.get("top_p"), "top_p", 0, 1),
        "max_completion_tokens": max_output,
        "tool_choice": _tool_choice(body.get("tool_choice")),
        "parallel_tool_calls": _boolean(body.get("parallel_tool_calls"), "parallel_tool_calls"),
        "response_format": response_format,
    }
    if tools:
        overrides["client_tools"] = [
            {k: t[k] for k in ("name", "description", "parameters") if t[k] is not None}
            for t in tools
        ]
    previous = _string(body.get("previous_response_id"), "previous_response_id", 200)
    conversation = _conversation(body.get("conversation"))
    if previous and conversation:
        raise invalid(
            "previous_response_id and conversation cannot both be given", "previous_response_id"
        )
    store = _boolean(body.get("store"), "store")
    echo = {
        "text": text,
        "tools": tools,
        "max_output_tokens": max_output,
        "truncation": body.get("truncation") or "disabled",
        "store": True if store is None else store,
        "user": body.get("user"),
        "safety_identifier": body.get("safety_identifier"),
        "prompt_cache_key": body.get("prompt_cache_key"),
        "previous_response_id": previous,
        "conversation": conversation,
    }
    return ResponseRequest(
        input=body["input"],
        overrides={k: v for k, v in overrides.items() if v is not None},
        echo=echo,
        metadata=fields.metadata(body.get("metadata")),
        previous_response_id=previous,
        conversation=conversation,
        stream=bool(_boolean(body.get("stream"), "stream")),
        background=bool(_boolean(body.get("background"), "background")),
        tools=tools,
    )
