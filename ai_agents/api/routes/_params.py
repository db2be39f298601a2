"""Query parameters shared by the listings, with their documented bounds."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from litestar.params import Parameter

from ai_agents.errors import ValidationError
from ai_agents.records import decode_cursor

MAX_SEQ = 2**62

Limit = Annotated[int, Parameter(ge=1, le=1000, description="Page size (1-1000).", required=False)]
Cursor = Annotated[
    str | None,
    Parameter(max_length=500, description="`next_cursor` of the previous page.", required=False),
]
Seq = Annotated[
    int | None,
    Parameter(ge=0, le=MAX_SEQ, description="Exclusive message seq bound.", required=False),
]


def checked_cursor(cursor: str | None) -> str | None:
    """A keyset cursor whose parts parse, so a forged one is a 422, not a server error."""
    if cursor is None:
        return None
    created, ident = decode_cursor(cursor, 2)
    try:
        datetime.fromisoformat(created)
        UUID(ident)
    except ValueError as exc:
        raise ValidationError("malformed pagination cursor", details={"field": "cursor"}) from exc
    return cursor
