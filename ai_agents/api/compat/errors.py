"""Errors under ``/v1`` in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``.

The app's exception handlers (``api.errors``) decide the status and the public message
once for the whole server; under ``/v1`` their answer is re-shaped here so the official
SDKs raise the right class (``BadRequestError`` for 400, ``AuthenticationError`` for
401, ``NotFoundError`` for 404, ``RateLimitError`` for 429, ...). OpenAI answers an
invalid parameter with 400, so our 422 becomes 400 here; ``param`` is the field the
error names.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from litestar import MediaType, Request, Response

from ai_agents.errors import ValidationError

PREFIX = "/v1"

Handler = Callable[[Request[Any, Any, Any], Any], Response[Any]]

_TYPES = {
    401: "invalid_request_error",
    403: "permission_error",
    404: "invalid_request_error",
    429: "rate_limit_error",
}
_CODES = {401: "invalid_api_key", 429: "rate_limit_exceeded"}


def under_v1(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


def error_type(status: int) -> str:
    if status >= 500:
        return "server_error"
    return _TYPES.get(status, "invalid_request_error")


def openai_error_body(
    status: int, message: str, *, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": error_type(status), "param": param, "code": code}}


def _param(details: Any) -> str | None:
    if not isinstance(details, dict):
        return None
    for key in ("param", "field"):
        value = details.get(key)
        if isinstance(value, str) and value:
            return value
    errors = details.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        name = errors[0].get("key")
        return name if isinstance(name, str) and name else None
    return None


def reshape(response: Response[Any]) -> Response[Any]:
    """The app's error answer (``{code, message, details, retry_after}``) as OpenAI's."""
    content = response.content
    if isinstance(content, bytes | str):
        try:
            content = json.loads(content)
        except ValueError:
            content = {}
    if not isinstance(content, dict):
        content = {}
    status = 400 if response.status_code == 422 else int(response.status_code or 500)
    message = str(content.get("message") or "error")
    code = _CODES.get(status) or content.get("code")
    body = openai_error_body(status, message, param=_param(content.get("details")), code=code)
    return Response(
        body, status_code=status, media_type=MediaType.JSON, headers=dict(response.headers)
    )


def v1_aware(handler: Handler) -> Handler:
    """*handler*, answering in OpenAI's shape for requests under ``/v1``."""

    def handle(request: Request[Any, Any, Any], exc: Any) -> Response[Any]:
        response = handler(request, exc)
        return reshape(response) if under_v1(request.url.path) else response

    handle.__name__ = getattr(handler, "__name__", "handle")
    return handle


def invalid(message: str, param: str | None = None) -> ValidationError:
    """A 400 ``invalid_request_error`` naming *param*."""
    return ValidationError(message, details={"param": param} if param else None)
