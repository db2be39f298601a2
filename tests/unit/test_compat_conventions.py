"""``/v1`` conventions: prefixed ids, list parameters, OpenAI's error shape."""

from __future__ import annotations

import json
import uuid

import pytest
from litestar import Response

from ai_agents.api.compat import ids
from ai_agents.api.compat.errors import reshape, under_v1
from ai_agents.api.compat.lists import envelope, list_query
from ai_agents.errors import NotFoundError, ValidationError


def test_ids_round_trip_and_refuse_other_kinds() -> None:
    ident = uuid.uuid4()
    text = ids.format_id(ids.ASSISTANT, ident)
    assert text == "asst_" + ident.hex
    assert ids.parse_id(ids.ASSISTANT, text) == ident
    for bad in ("thread_" + ident.hex, "asst_" + ident.hex[:-1], "asst_" + "z" * 32, "", ident.hex):
        with pytest.raises(NotFoundError) as missing:
            ids.parse_id(ids.ASSISTANT, bad)
        assert missing.value.kind == "assistant"


def test_list_parameters() -> None:
    default = list_query(None, None, None, None)
    assert (default.limit, default.order, default.after, default.before) == (20, "desc", None, None)
    assert list_query("100", "asc", "asst_x", "").limit == 100
    assert list_query("1", "asc", "asst_x", "").before is None
    for limit in ("0", "101", "ten", "-1"):
        with pytest.raises(ValidationError) as bad:
            list_query(limit, None, None, None)
        assert bad.value.details["param"] == "limit"
    with pytest.raises(ValidationError) as order:
        list_query(None, "newest", None, None)
    assert order.value.details["param"] == "order"


def test_envelope() -> None:
    assert envelope([], False) == {
        "object": "list",
        "data": [],
        "first_id": None,
        "last_id": None,
        "has_more": False,
    }
    page = envelope([{"id": "a"}, {"id": "b"}], True)
    assert (page["first_id"], page["last_id"], page["has_more"]) == ("a", "b", True)


def _ours(status: int, code: str, details: dict[str, object]) -> Response[object]:
    body = {"code": code, "message": "what to fix", "details": details, "retry_after": None}
    return Response(body, status_code=status, headers={"Retry-After": "3"})


@pytest.mark.parametrize(
    ("status", "code", "details", "expected"),
    [
        (
            422,
            "validation_error",
            {"field": "temperature"},
            (400, "invalid_request_error", "temperature", "validation_error"),
        ),
        (
            400,
            "invalid_request",
            {"errors": [{"key": "limit"}]},
            (400, "invalid_request_error", "limit", "invalid_request"),
        ),
        (401, "unauthorized", {}, (401, "invalid_request_error", None, "invalid_api_key")),
        (
            404,
            "not_found",
            {"kind": "assistant"},
            (404, "invalid_request_error", None, "not_found"),
        ),
        (429, "rate_limited", {}, (429, "rate_limit_error", None, "rate_limit_exceeded")),
        (503, "provider_unavailable", {}, (503, "server_error", None, "provider_unavailable")),
    ],
)
def test_errors_are_reshaped(
    status: int, code: str, details: dict[str, object], expected: tuple[object, ...]
) -> None:
    reshaped = reshape(_ours(status, code, details))
    error = reshaped.content["error"]  # type: ignore[index]
    assert (reshaped.status_code, error["type"], error["param"], error["code"]) == expected
    assert error["message"] == "what to fix"
    assert reshaped.headers["Retry-After"] == "3"
    json.dumps(reshaped.content)


def test_only_v1_paths_are_reshaped() -> None:
    assert under_v1("/v1") and under_v1("/v1/assistants")
    assert not under_v1("/api/v1/agents") and not under_v1("/v10/x") and not under_v1("/mcp")
