"""Checking an answer against the run's ``response_format`` (JSON object or JSON schema)."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from ai_agents.messages import Message
from ai_agents.providers.base import ResponseFormat


def answer_problem(fmt: ResponseFormat, text: str) -> str | None:
    """Why *text* does not satisfy *fmt* (``None``: it does)."""
    if not fmt.is_json:
        return None
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, TypeError) as exc:
        return f"the answer is not valid JSON ({exc})"
    if fmt.type == "json_object":
        return None if isinstance(value, dict) else "the answer is JSON but not an object"
    assert fmt.schema is not None
    errors = sorted(_validator(json.dumps(fmt.schema, sort_keys=True)).iter_errors(value), key=str)
    if not errors:
        return None
    first = errors[0]
    where = "/".join(str(p) for p in first.absolute_path) or "(root)"
    return f"the answer does not match the schema {fmt.name!r} at {where}: {first.message}"


@lru_cache(maxsize=256)
def _validator(schema_json: str) -> Any:
    from jsonschema import Draft202012Validator

    return Draft202012Validator(json.loads(schema_json))


def correction(fmt: ResponseFormat, problem: str) -> Message:
    """The note sent with the retry of an answer that did not match (never saved)."""
    shape = (
        "a JSON object" if fmt.type == "json_object" else f"JSON matching the schema {fmt.name!r}"
    )
    return Message(
        role="user",
        content=(
            f"Your previous answer was rejected: {problem}. Answer again with only {shape}, "
            "and nothing else."
        ),
    )
