"""Checks a ``/v1`` answer against the ``openai`` SDK's own typed model, strictly.

``conforms(Assistant, raw)``: pydantic's strict validation (right types, no ``None``
where the SDK's type has none, no int where a string belongs) plus presence of every
field the SDK declares: OpenAI sends nullable fields as ``null`` rather than leaving
them out, and clients index them (``assistant.description``) without a default.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)


def conforms(model: type[M], raw: Any, *, optional: tuple[str, ...] = ()) -> M:
    """*raw* validated strictly as *model*; every declared field present (but *optional*)."""
    assert isinstance(raw, dict), f"{model.__name__}: not an object: {raw!r}"
    missing = [
        name
        for name, info in model.model_fields.items()
        if (info.alias or name) not in raw and name not in optional
    ]
    assert not missing, f"{model.__name__}: fields missing: {missing}"
    return model.model_validate(raw, strict=True)
