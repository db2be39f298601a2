"""OpenAI's list envelope and its query parameters.

``{"object": "list", "data": [...], "first_id", "last_id", "has_more"}``; ``limit``
1..100 (default 20), ``order`` ``asc``/``desc`` (default ``desc``: newest first),
``after``/``before``: the id of an object of the list to page from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ai_agents.api.compat.errors import invalid

MAX_LIMIT = 100
DEFAULT_LIMIT = 20


@dataclass(frozen=True, slots=True)
class ListQuery:
    limit: int
    order: str
    after: str | None
    before: str | None


def list_query(
    limit: str | None, order: str | None, after: str | None, before: str | None
) -> ListQuery:
    """The checked parameters; a 400 naming the bad one."""
    count = DEFAULT_LIMIT
    if limit is not None:
        try:
            count = int(limit)
        except ValueError:
            raise invalid(f"limit must be an integer, got {limit!r}", "limit") from None
        if not 1 <= count <= MAX_LIMIT:
            raise invalid(f"limit must be between 1 and {MAX_LIMIT}, got {count}", "limit")
    direction = order if order is not None else "desc"
    if direction not in ("asc", "desc"):
        raise invalid(f"order must be 'asc' or 'desc', got {order!r}", "order")
    return ListQuery(count, direction, after or None, before or None)


def envelope(data: Sequence[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    return {
        "object": "list",
        "data": list(data),
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": has_more,
    }
