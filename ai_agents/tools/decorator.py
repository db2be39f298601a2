"""``@tool``: turn a typed Python function into a tool a model can call.

The JSON schema comes from the signature and type hints (through pydantic), parameter
descriptions from the docstring (Google ``Args:`` or Sphinx ``:param x:`` style). Every
problem in a signature is reported at decoration time in one error. At call time the
model's arguments are validated against the same pydantic model; a validation error or
an exception from the tool becomes the tool result the model sees, never a crash.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import json
import re
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, overload
from uuid import UUID

import pydantic

from ai_agents.errors import UsageError
from ai_agents.providers.base import ToolSpec

if TYPE_CHECKING:
    from ai_agents.store import AgentStore

_NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolContext:
    """What a tool may learn about the run calling it (declare a parameter of this type)."""

    thread_id: UUID
    agent_id: UUID
    tenant_id: str
    user_id: str | None
    run_id: UUID
    store: AgentStore | None = None
    extras: dict[str, Any] = field(default_factory=dict)


class ToolDefinitionError(UsageError):
    """A function cannot become a tool; the message lists every problem."""

    code = "invalid_tool"


@dataclass(frozen=True, slots=True)
class ToolOutcome:
    """The text the model sees, and whether it reports a failure."""

    content: str
    is_error: bool = False


@dataclass(slots=True, kw_only=True)
class Tool:
    name: str
    description: str
    fn: Callable[..., Any]
    parameters: dict[str, Any]
    args_model: type[pydantic.BaseModel]
    context_param: str | None = None
    timeout: float | None = None

    @property
    def spec(self) -> ToolSpec:
        return ToolSpec(name=self.name, description=self.description, parameters=self.parameters)

    def validate(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """Validated keyword arguments, or a pydantic ValidationError."""
        model = self.args_model.model_validate(arguments)
        return {name: getattr(model, name) for name in type(model).model_fields}

    async def invoke(
        self, arguments: dict[str, Any], context: ToolContext | None, *, time_limit: float | None
    ) -> ToolOutcome:
        """Validate, call (sync tools in a thread), bound by the timeout, never raise."""
        try:
            kwargs = self.validate(arguments)
        except pydantic.ValidationError as exc:
            return ToolOutcome(_describe_validation_error(self.name, exc), is_error=True)
        if self.context_param:
            kwargs[self.context_param] = context
        limit = self.timeout if self.timeout is not None else time_limit
        try:
            async with asyncio.timeout(limit):
                if inspect.iscoroutinefunction(self.fn):
                    result = await self.fn(**kwargs)
                else:
                    result = await asyncio.to_thread(self.fn, **kwargs)
                    if inspect.isawaitable(result):
                        result = await result
        except TimeoutError:
            return ToolOutcome(f"Error: tool {self.name} timed out after {limit} s", is_error=True)
        except Exception as exc:  # the model must see any tool failure, not the caller
            return ToolOutcome(f"Error: {type(exc).__name__}: {exc}", is_error=True)
        return ToolOutcome(serialize_result(result))


def serialize_result(result: Any) -> str:
    if isinstance(result, str):
        return result
    if isinstance(result, pydantic.BaseModel):
        return result.model_dump_json()
    if dataclasses.is_dataclass(result) and not isinstance(result, type):
        result = dataclasses.asdict(result)
    return json.dumps(result, default=str, ensure_ascii=False)


def _describe_validation_error(name: str, exc: pydantic.ValidationError) -> str:
    problems = "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'arguments'}: {err['msg']}"
        for err in exc.errors()
    )
    return f"Error: invalid arguments for tool {name}: {problems}"


def parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """Summary text and per-parameter descriptions (Google or Sphinx style)."""
    if not doc:
        return "", {}
    doc = inspect.cleandoc(doc)
    params: dict[str, str] = {}
    for match in re.finditer(r"^:param\s+(?:\S+\s+)?(\w+):\s*(.+)$", doc, re.MULTILINE):
        params[match.group(1)] = match.group(2).strip()
    section = re.search(
        r"^(?:Args|Arguments|Parameters):\s*\n(.*?)(?:\n\S|\Z)", doc, re.MULTILINE | re.DOTALL
    )
    if section:
        current = None
        for line in section.group(1).splitlines():
            m = re.match(r"^\s+(\w+)(?:\s*\([^)]*\))?:\s*(.*)$", line)
            if m and (current is None or len(line) - len(line.lstrip()) <= 4):
                current = m.group(1)
                params[current] = m.group(2).strip()
            elif current and line.strip():
                params[current] += " " + line.strip()
    summary = re.split(
        r"\n\s*\n|^(?:Args|Arguments|Parameters|Returns|Raises):|^:param",
        doc,
        maxsplit=1,
        flags=re.MULTILINE,
    )[0]
    return " ".join(summary.split()), params


def build_tool(
    fn: Callable[..., Any],
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = None,
) -> Tool:
    tool_name = name or fn.__name__
    problems: list[str] = []
    if not _NAME_RE.match(tool_name):
        problems.append(f"name {tool_name!r} must match [a-zA-Z0-9_-]{{1,64}}")
    summary, param_docs = parse_docstring(fn.__doc__)
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except Exception as exc:  # unresolvable forward references
        raise ToolDefinitionError(f"tool {tool_name}: cannot resolve type hints: {exc}") from exc
    fields: dict[str, Any] = {}
    context_param = None
    for param in inspect.signature(fn).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            problems.append(f"parameter {param.name}: *args/**kwargs are not supported")
            continue
        if param.name not in hints:
            problems.append(f"parameter {param.name}: missing type annotation")
            continue
        hint = hints[param.name]
        if hint is ToolContext or (
            typing.get_origin(hint) in (typing.Union, __import__("types").UnionType)
            and ToolContext in typing.get_args(hint)
        ):
            context_param = param.name
            continue
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[param.name] = (
            hint,
            pydantic.Field(default=default, description=param_docs.get(param.name)),
        )
    desc = description or summary
    if not desc:
        problems.append("no description: pass description=... or write a docstring")
    if problems:
        raise ToolDefinitionError(f"tool {tool_name} is invalid: " + "; ".join(problems))
    try:
        args_model = pydantic.create_model(  # type: ignore[call-overload]
            f"{tool_name}_arguments", __config__=pydantic.ConfigDict(extra="forbid"), **fields
        )
        schema = args_model.model_json_schema()
    except (pydantic.PydanticSchemaGenerationError, pydantic.PydanticUserError, TypeError) as exc:
        raise ToolDefinitionError(f"tool {tool_name}: unsupported parameter type: {exc}") from exc
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        prop.pop("title", None)
    return Tool(
        name=tool_name,
        description=desc,
        fn=fn,
        parameters=schema,
        args_model=args_model,
        context_param=context_param,
        timeout=timeout,
    )


F = typing.TypeVar("F", bound=Callable[..., Any])


@overload
def tool(fn: F, /) -> F: ...
@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = None,
    registry: Any = None,
) -> Callable[[F], F]: ...


def tool(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = None,
    registry: Any = None,
) -> Any:
    """Register a sync or async function as a tool (in the default registry unless given).

    The function is returned unchanged (still directly callable); its :class:`Tool` is
    available as ``fn.__ai_tool__``.
    """

    def wrap(func: Callable[..., Any]) -> Callable[..., Any]:
        from ai_agents.tools.registry import default_registry

        built = build_tool(func, name=name, description=description, timeout=timeout)
        (registry or default_registry()).register(built)
        func.__ai_tool__ = built  # type: ignore[attr-defined]
        return func

    return wrap(fn) if fn is not None else wrap


ToolFunction = Callable[..., Any | Awaitable[Any]]
