"""Per-run overrides: what one run changes of its agent's configuration.

    await store.run(thread_id, "Summarize", model="gpt-4o-mini", provider="openai",
                    additional_instructions="Answer in French.", temperature=0.2,
                    response_format={"type": "json_schema", "json_schema": {...}})

Every field is optional; ``None`` keeps the agent's own value. Overrides are validated
before the run starts (a :class:`ValidationError` names the field) and are stored on the
run row as given, so a resumed run (``submit_tool_outputs``, another process) uses the
same ones.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields
from typing import Any

from ai_agents.errors import ValidationError
from ai_agents.providers.base import ResponseFormat, ToolSpec

TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_CHOICES = ("auto", "none", "required")
_MAX_INSTRUCTIONS = 256_000


@dataclass(frozen=True, slots=True, kw_only=True)
class Truncation:
    """How much history a run sends: ``auto`` (the memory strategy) or the last N messages."""

    type: str = "auto"
    last_messages: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RunOverrides:
    provider: str | None = None
    model: str | None = None
    #: Replaces the agent's compiled system prompt.
    instructions: str | None = None
    #: Appended to the system prompt (the agent's or ``instructions``).
    additional_instructions: str | None = None
    #: Server tool names replacing the agent's tools.
    tools: tuple[str, ...] | None = None
    #: Client function tools (``{name, description, parameters}``) replacing the agent's.
    client_tools: tuple[dict[str, Any], ...] | None = None
    #: ``auto`` | ``none`` | ``required`` | a tool name.
    tool_choice: str | None = None
    parallel_tool_calls: bool | None = None
    temperature: float | None = None
    top_p: float | None = None
    #: Prompt tokens the whole run may use (over all its model calls); over it the run
    #: ends ``incomplete``. Each call's history is also trimmed to fit it.
    max_prompt_tokens: int | None = None
    #: Completion tokens the whole run may use; over it the run ends ``incomplete``.
    max_completion_tokens: int | None = None
    truncation: Truncation | None = None
    response_format: ResponseFormat | None = None

    @property
    def is_empty(self) -> bool:
        return all(getattr(self, f.name) is None for f in fields(self))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            if f.name == "truncation":
                value = {k: v for k, v in asdict(value).items() if v is not None}
            elif f.name == "response_format":
                value = response_format_json(value)
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> RunOverrides:
        return parse_overrides(data or {})


def response_format_json(fmt: ResponseFormat) -> dict[str, Any]:
    """OpenAI's wire shape of a response format."""
    if fmt.type != "json_schema":
        return {"type": fmt.type}
    schema: dict[str, Any] = {"name": fmt.name, "schema": fmt.schema, "strict": fmt.strict}
    if fmt.description:
        schema["description"] = fmt.description
    return {"type": "json_schema", "json_schema": schema}


def parse_response_format(value: Any) -> ResponseFormat | None:
    """``"text"``/``"json_object"``, OpenAI's ``{"type": ..., "json_schema": {...}}``, or a
    :class:`ResponseFormat`."""
    field_name = "response_format"
    if value is None or isinstance(value, ResponseFormat):
        return value
    if isinstance(value, str):
        value = {"type": value}
    if not isinstance(value, dict):
        raise ValidationError(
            "response_format must be a mapping like {'type': 'json_object'}",
            details={"field": field_name},
        )
    kind = value.get("type")
    if kind in ("text", "json_object"):
        return ResponseFormat(type=kind)
    if kind != "json_schema":
        raise ValidationError(
            "response_format.type must be 'text', 'json_object' or 'json_schema'",
            details={"field": f"{field_name}.type"},
        )
    spec = value.get("json_schema")
    if not isinstance(spec, dict):
        raise ValidationError(
            "response_format json_schema needs a 'json_schema' mapping with 'name' and 'schema'",
            details={"field": f"{field_name}.json_schema"},
        )
    name = spec.get("name", "response")
    if not isinstance(name, str) or not TOOL_NAME.match(name):
        raise ValidationError(
            "response_format.json_schema.name must match [a-zA-Z0-9_-]{1,64}",
            details={"field": f"{field_name}.json_schema.name"},
        )
    schema = spec.get("schema")
    if not isinstance(schema, dict):
        raise ValidationError(
            "response_format.json_schema.schema must be a JSON schema object",
            details={"field": f"{field_name}.json_schema.schema"},
        )
    _check_schema(schema, f"{field_name}.json_schema.schema")
    description = spec.get("description")
    if description is not None and not isinstance(description, str):
        raise ValidationError(
            "response_format.json_schema.description must be a string",
            details={"field": f"{field_name}.json_schema.description"},
        )
    return ResponseFormat(
        type="json_schema",
        name=name,
        schema=schema,
        strict=bool(spec.get("strict", False)),
        description=description,
    )


def _check_schema(schema: dict[str, Any], field_name: str) -> None:
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise ValidationError(
            f"{field_name} is not a valid JSON schema: {exc.message}",
            details={"field": field_name},
        ) from exc


def parse_client_tools(value: Any, field_name: str = "client_tools") -> tuple[dict[str, Any], ...]:
    """Function tools the caller executes: ``{name, description?, parameters?}`` each
    (OpenAI's ``{"type": "function", "function": {...}}`` is accepted too)."""
    if not isinstance(value, list | tuple):
        raise ValidationError(f"{field_name} must be a list", details={"field": field_name})
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, item in enumerate(value):
        where = f"{field_name}[{i}]"
        if isinstance(item, dict) and item.get("type") == "function":
            item = item.get("function")
        if not isinstance(item, dict):
            raise ValidationError(
                f"{where} must be a mapping with 'name'", details={"field": where}
            )
        name = item.get("name")
        if not isinstance(name, str) or not TOOL_NAME.match(name):
            raise ValidationError(
                f"{where}.name must match [a-zA-Z0-9_-]{{1,64}}", details={"field": f"{where}.name"}
            )
        if name in seen:
            raise ValidationError(
                f"{where}: tool {name!r} is listed twice", details={"field": f"{where}.name"}
            )
        seen.add(name)
        description = item.get("description", "")
        if not isinstance(description, str):
            raise ValidationError(
                f"{where}.description must be a string", details={"field": f"{where}.description"}
            )
        parameters = item.get("parameters") or {"type": "object", "properties": {}}
        if not isinstance(parameters, dict) or parameters.get("type", "object") != "object":
            raise ValidationError(
                f"{where}.parameters must be a JSON schema of type object",
                details={"field": f"{where}.parameters"},
            )
        _check_schema(parameters, f"{where}.parameters")
        out.append({"name": name, "description": description, "parameters": parameters})
    return tuple(out)


def client_tool_specs(tools: tuple[dict[str, Any], ...] | list[dict[str, Any]]) -> list[ToolSpec]:
    return [
        ToolSpec(name=t["name"], description=t.get("description", ""), parameters=t["parameters"])
        for t in tools
    ]


def parse_overrides(data: dict[str, Any]) -> RunOverrides:
    """Validate overrides given as keyword arguments or JSON (unknown keys are errors)."""
    if not isinstance(data, dict):
        raise ValidationError("run overrides must be a mapping")
    known = {f.name for f in fields(RunOverrides)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValidationError(
            f"unknown run override(s): {', '.join(unknown)}",
            details={"fields": unknown, "allowed": sorted(known)},
        )
    values: dict[str, Any] = {k: v for k, v in data.items() if v is not None}
    for name in ("provider", "model"):
        if name in values and (not isinstance(values[name], str) or not values[name].strip()):
            raise ValidationError(f"{name} must be a non-empty string", details={"field": name})
    if "provider" in values and "model" not in values:
        raise ValidationError("a provider override needs a model too", details={"field": "model"})
    for name in ("instructions", "additional_instructions"):
        if name in values:
            text = values[name]
            if not isinstance(text, str) or len(text) > _MAX_INSTRUCTIONS:
                raise ValidationError(
                    f"{name} must be a string of at most {_MAX_INSTRUCTIONS} characters",
                    details={"field": name},
                )
    if "tools" in values:
        tools = values["tools"]
        if not isinstance(tools, list | tuple) or not all(isinstance(t, str) and t for t in tools):
            raise ValidationError("tools must be a list of tool names", details={"field": "tools"})
        values["tools"] = tuple(tools)
    if "client_tools" in values:
        values["client_tools"] = parse_client_tools(values["client_tools"])
    if "tool_choice" in values:
        choice = values["tool_choice"]
        if isinstance(choice, dict):  # OpenAI: {"type": "function", "function": {"name": x}}
            choice = (choice.get("function") or {}).get("name")
        if not isinstance(choice, str) or not (choice in _CHOICES or TOOL_NAME.match(choice)):
            raise ValidationError(
                "tool_choice must be 'auto', 'none', 'required' or a tool name",
                details={"field": "tool_choice"},
            )
        values["tool_choice"] = choice
    if "parallel_tool_calls" in values and not isinstance(values["parallel_tool_calls"], bool):
        raise ValidationError(
            "parallel_tool_calls must be true or false", details={"field": "parallel_tool_calls"}
        )
    for name, low, high in (("temperature", 0.0, 2.0), ("top_p", 0.0, 1.0)):
        if name in values:
            value = values[name]
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not (low <= value <= high)
            ):
                raise ValidationError(
                    f"{name} must be a number between {low:g} and {high:g}",
                    details={"field": name},
                )
            values[name] = float(value)
    for name in ("max_prompt_tokens", "max_completion_tokens"):
        if name in values:
            value = values[name]
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValidationError(f"{name} must be a positive integer", details={"field": name})
    if "truncation" in values:
        values["truncation"] = _truncation(values["truncation"])
    if "response_format" in values:
        values["response_format"] = parse_response_format(values["response_format"])
    return RunOverrides(**values)


def _truncation(value: Any) -> Truncation:
    if isinstance(value, Truncation):
        return value
    if isinstance(value, str):
        value = {"type": value}
    if not isinstance(value, dict):
        raise ValidationError(
            "truncation must be {'type': 'auto'} or {'type': 'last_messages', 'last_messages': N}",
            details={"field": "truncation"},
        )
    kind = value.get("type")
    if kind == "auto":
        return Truncation(type="auto")
    if kind == "last_messages":
        n = value.get("last_messages")
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 1000:
            raise ValidationError(
                "truncation.last_messages must be an integer between 1 and 1000",
                details={"field": "truncation.last_messages"},
            )
        return Truncation(type="last_messages", last_messages=n)
    raise ValidationError(
        "truncation.type must be 'auto' or 'last_messages'", details={"field": "truncation.type"}
    )
