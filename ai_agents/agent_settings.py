"""An agent's ``settings``: one typed schema, checked when the agent is saved and again
when it runs.

Why both: a value the runner cannot use (``max_tool_iterations: "abc"``, a negative
timeout, a million output tokens) must be refused when the agent is created or updated,
with a :class:`~ai_agents.errors.ValidationError` naming the field
(``settings.max_tool_iterations``), instead of failing every later run. A row saved before
this check existed, or before the deployment lowered a ceiling, is read through the same
schema when a run starts: a value of the wrong type stops the run before any model call
(a ``ValidationError``, never a 500), and a value over a ceiling is lowered to it.

| key | type | bounds | default when absent |
| --- | --- | --- | --- |
| ``max_tool_iterations`` | int | 1 .. ``Settings.max_tool_iterations_ceiling`` | ``Settings.max_tool_iterations`` |
| ``tool_timeout`` | number (s) | > 0, <= 86400 | ``Settings.tool_timeout`` |
| ``max_output_tokens`` | int | 1 .. ``Settings.max_output_tokens_ceiling`` and the model's ``max_output`` | the model's ``max_output`` (capped by the ceiling) |
| ``temperature`` | number | 0 .. 2 | the vendor's |
| ``use_user_memory`` | bool | | false |
| ``memory_tools`` | bool | | false: no ``remember``/``forget``/``recall`` tools |
| ``memory_scope`` | ``"user"`` or ``"agent"`` | | ``"user"`` (facts shared by the user's agents) |
| ``memory_extraction`` | bool | | false: no fact extraction after turns |
| ``user_rpm`` / ``user_tpm`` | int | >= 1 | no per-user limit |
| ``retry`` | mapping | :meth:`RetryPolicy.from_mapping` | the deployment's policy |
| ``routing`` | mapping | :func:`~ai_agents.providers.routing.validate_agent_routing` | no routing |

Every key may be ``null`` (the default). Unknown keys are rejected at save time with the
list of allowed keys (free-form data belongs in the agent's ``metadata``); at run time
they are ignored, so an agent saved with an old key still runs.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticError

from ai_agents.errors import ValidationError

if TYPE_CHECKING:
    from ai_agents.config import Settings

__all__ = [
    "MAX_TOOL_TIMEOUT",
    "SETTINGS_KEYS",
    "AgentSettings",
    "Ceilings",
    "prefixed",
    "read_settings",
    "validate_settings",
]

#: Longest per-call tool timeout an agent may set (seconds).
MAX_TOOL_TIMEOUT = 86_400.0
#: Per-user limits above these are typos, not limits (and overflow the limiter's floats).
_MAX_USER_RPM = 10_000_000
_MAX_USER_TPM = 10_000_000_000


class AgentSettings(BaseModel):
    """The settings the runner reads. Strict: ``"5"`` is not an integer, ``1`` not a bool."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, allow_inf_nan=False)

    #: Bound of the tool loop (model calls that may execute tools, per run).
    max_tool_iterations: int | None = Field(default=None, ge=1)
    #: Per-call timeout (seconds) of tools that set none themselves.
    tool_timeout: float | None = Field(default=None, gt=0, le=MAX_TOOL_TIMEOUT)
    #: Output cap sent to the vendor, and reserved in the token budget.
    max_output_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    #: Append the user's memory facts to the system prompt (threads with a user_id).
    use_user_memory: bool | None = None
    #: Offer the built-in ``remember``/``forget``/``recall`` tools (threads with a user_id;
    #: see ai_agents/memory/tools.py). The user's facts are then also in the system prompt.
    memory_tools: bool | None = None
    #: Where memory tools and extraction write: ``user`` (shared by all the tenant's agents
    #: for that user) or ``agent`` (this agent's own facts about the user).
    memory_scope: Literal["user", "agent"] | None = None
    #: After each completed turn, a background job extracts durable facts about the user
    #: (``Settings.memory_extraction_model`` or the agent's model).
    memory_extraction: bool | None = None
    user_rpm: int | None = Field(default=None, ge=1, le=_MAX_USER_RPM)
    user_tpm: int | None = Field(default=None, ge=1, le=_MAX_USER_TPM)
    #: Retry policy of model calls, validated by ``RetryPolicy.from_mapping``.
    retry: dict[str, Any] | None = None
    #: Routing policy, validated by ``validate_agent_routing`` (it needs the provider).
    routing: dict[str, Any] | None = None


SETTINGS_KEYS: tuple[str, ...] = tuple(AgentSettings.model_fields)


@dataclass(frozen=True, slots=True, kw_only=True)
class Ceilings:
    """Deployment-wide upper bounds (``Settings.max_tool_iterations_ceiling``, ...)."""

    max_tool_iterations: int = 50
    max_output_tokens: int = 128_000

    @classmethod
    def of(cls, settings: Settings) -> Ceilings:
        return cls(
            max_tool_iterations=settings.max_tool_iterations_ceiling,
            max_output_tokens=settings.max_output_tokens_ceiling,
        )


def validate_settings(
    data: Any, *, ceilings: Ceilings, model_max_output: int | None = None
) -> AgentSettings:
    """Settings of an agent being saved: types, bounds, ceilings, known keys, ``retry``.

    *model_max_output*: the primary model's ``max_output`` (``None`` for auto-routed
    agents, whose model is chosen per run). ``routing`` is checked by the caller, which
    knows the agent's provider and model.
    """
    if not isinstance(data, Mapping):
        raise ValidationError("settings must be a mapping", details={"field": "settings"})
    unknown = sorted(str(k) for k in data if k not in SETTINGS_KEYS)
    if unknown:
        raise ValidationError(
            f"unknown agent setting(s): {', '.join(unknown)} (allowed: "
            f"{', '.join(SETTINGS_KEYS)}; free-form data belongs in the agent's metadata)",
            details={"field": f"settings.{unknown[0]}", "allowed": list(SETTINGS_KEYS)},
        )
    settings = _parse(data, stored=False)
    iterations = settings.max_tool_iterations
    if iterations is not None and iterations > ceilings.max_tool_iterations:
        raise ValidationError(
            f"settings.max_tool_iterations must be at most {ceilings.max_tool_iterations} "
            f"(the deployment's max_tool_iterations_ceiling), got {iterations}",
            details={"field": "settings.max_tool_iterations"},
        )
    output = settings.max_output_tokens
    if output is not None:
        limit, source = ceilings.max_output_tokens, "the deployment's max_output_tokens_ceiling"
        if model_max_output is not None and model_max_output < limit:
            limit, source = model_max_output, "the model's max_output"
        if output > limit:
            raise ValidationError(
                f"settings.max_output_tokens must be at most {limit} ({source}), got {output}",
                details={"field": "settings.max_output_tokens"},
            )
    if settings.retry is not None:
        from ai_agents.providers.retry import RetryPolicy

        with prefixed("settings"):
            RetryPolicy.from_mapping(settings.retry)
    return settings


def read_settings(data: Mapping[str, Any]) -> AgentSettings:
    """Settings of an agent about to run. Unknown keys (an older version's) are ignored; a
    value of the wrong type (saved before validation) stops the run with its field."""
    return _parse({k: v for k, v in data.items() if k in SETTINGS_KEYS}, stored=True)


def _parse(data: Mapping[str, Any], *, stored: bool) -> AgentSettings:
    try:
        return AgentSettings.model_validate(dict(data))
    except PydanticError as exc:
        error = exc.errors(include_url=False)[0]
        field = "settings." + ".".join(str(p) for p in error["loc"])
        value = repr(error.get("input"))
        if len(value) > 80:
            value = value[:77] + "..."
        message = f"{field}: {error['msg'][:1].lower()}{error['msg'][1:]}, got {value}"
        if stored:
            message = f"the agent's {message}; update the agent's settings"
        raise ValidationError(message, details={"field": field}) from None


@contextmanager
def prefixed(prefix: str) -> Iterator[None]:
    """Re-raise a :class:`ValidationError` whose ``details.field`` is relative (``retry``,
    ``routing.prefer``) with the path from the agent (``settings.routing.prefer``)."""
    try:
        yield
    except ValidationError as exc:
        field = exc.details.get("field")
        if isinstance(field, str) and not field.startswith(prefix + "."):
            exc.details["field"] = f"{prefix}.{field}"
        raise
