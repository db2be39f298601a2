"""Checks shared by ``/v1`` request bodies: unknown parameters, metadata, strings and
numbers in range, each a 400 naming the parameter as OpenAI's API does."""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from typing import Any

from ai_agents.api.compat.errors import invalid
from ai_agents.errors import ValidationError
from ai_agents.nul import nul_path
from ai_agents.runs.overrides import parse_overrides
from ai_agents.store import AgentStore

MAX_METADATA_PAIRS = 16
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 512


def reject_unknown(body: dict[str, Any], known: Collection[str]) -> None:
    for name in body:
        if name not in known:
            raise invalid(f"Unrecognized request argument supplied: {name}", name)


def metadata(value: Any, param: str = "metadata") -> dict[str, str]:
    """At most 16 pairs; keys up to 64 characters, values strings up to 512; no NUL
    character (PostgreSQL cannot store it)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise invalid(f"{param} must be an object of string values", param)
    if len(value) > MAX_METADATA_PAIRS:
        raise invalid(
            f"{param} may have at most {MAX_METADATA_PAIRS} pairs, got {len(value)}", param
        )
    where = nul_path(value, param)
    if where is not None:
        raise invalid(f"{where} must not contain NUL characters", param)
    for key, item in value.items():
        if len(key) > MAX_METADATA_KEY:
            raise invalid(
                f"{param} keys may be at most {MAX_METADATA_KEY} characters: {key[:80]!r}", param
            )
        if not isinstance(item, str):
            raise invalid(f"{param}.{key} must be a string", param)
        if len(item) > MAX_METADATA_VALUE:
            raise invalid(
                f"{param}.{key} may be at most {MAX_METADATA_VALUE} characters, got {len(item)}",
                param,
            )
    return dict(value)


def optional_text(value: Any, param: str, max_chars: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid(f"{param} must be a string", param)
    if len(value) > max_chars:
        raise invalid(f"{param} may be at most {max_chars} characters, got {len(value)}", param)
    if "\x00" in value:
        raise invalid(f"{param} must not contain NUL characters", param)
    return value


def optional_number(value: Any, param: str, low: float, high: float) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise invalid(f"{param} must be a number between {low:g} and {high:g}", param)
    if not low <= value <= high:
        raise invalid(f"{param} must be between {low:g} and {high:g}, got {value:g}", param)
    return float(value)


def check_overrides(
    store: AgentStore, overrides: dict[str, Any], renames: Mapping[str, str]
) -> None:
    """Refuse run overrides no run could use, before anything is written; the error
    names the request's parameter (*renames*: our override name → OpenAI's)."""
    try:
        store.runner.check_overrides(parse_overrides(overrides))
    except ValidationError as exc:
        name = str(exc.details.get("field") or "")
        head, dot, rest = name.partition(".")
        if head in renames:
            exc.details["field"] = renames[head] + dot + rest
        raise
