"""U+0000 (NUL): PostgreSQL ``text`` and ``jsonb`` cannot store it.

What a caller sends is checked (:func:`nul_path`): a run input, a message or run metadata
holding NUL is refused with a :class:`~ai_agents.errors.ValidationError` naming the field,
before anything is sent to a model. What a model or a tool produces cannot be refused
(the tokens are spent), so the turn loop replaces NUL with U+FFFD, the Unicode
replacement character, before the turn is saved and before a tool sees its arguments
(:func:`without_nul`).
"""

from __future__ import annotations

from typing import Any, TypeVar

__all__ = ["NUL", "REPLACEMENT", "nul_path", "without_nul"]

NUL = "\x00"
REPLACEMENT = "\ufffd"

T = TypeVar("T")


def nul_path(value: Any, path: str) -> str | None:
    """Where in *value* (strings, and the keys and values of lists and mappings) a NUL is,
    as a field path from *path* (``metadata.tags[2]``); ``None`` if there is none."""
    if isinstance(value, str):
        return path if NUL in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and NUL in key:
                return where.replace(NUL, "\\u0000")
            found = nul_path(item, where)
            if found is not None:
                return found
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            found = nul_path(item, f"{path}[{i}]")
            if found is not None:
                return found
    return None


def without_nul(value: T) -> T:
    """*value* with NUL replaced in every string, mapping key and nested item (the same
    object when there is none, so the common case allocates nothing)."""
    if isinstance(value, str):
        return value.replace(NUL, REPLACEMENT) if NUL in value else value  # type: ignore[return-value]
    if isinstance(value, dict):
        if nul_path(value, "") is None:
            return value
        return {without_nul(k): without_nul(v) for k, v in value.items()}  # type: ignore[return-value]
    if isinstance(value, list):
        if nul_path(value, "") is None:
            return value
        return [without_nul(v) for v in value]  # type: ignore[return-value]
    return value
