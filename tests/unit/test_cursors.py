"""Pagination cursors: round trip, and a clear error for anything malformed."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from ai_agents.errors import ValidationError
from ai_agents.records import decode_time_cursor, encode_cursor


def test_time_cursor_round_trip() -> None:
    when = datetime(2026, 11, 22, 4, 5, 6, 789, tzinfo=UTC)
    ident = uuid.uuid4()
    assert decode_time_cursor(encode_cursor(when, ident)) == (when, ident)


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage!!",
        encode_cursor("not a date", uuid.uuid4()),
        encode_cursor(datetime.now(UTC), "not-a-uuid"),
        encode_cursor(datetime.now(UTC)),
    ],
)
def test_malformed_cursors_are_validation_errors(cursor: str) -> None:
    with pytest.raises(ValidationError, match="malformed pagination cursor"):
        decode_time_cursor(cursor)
