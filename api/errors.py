"""One error schema for every failure, with the right HTTP status.

Every error answer is ``{"code", "message", "details", "retry_after"}`` (the seed's
error-handling architecture): ``code`` is the library's stable error code (or an HTTP
one such as ``not_found``), ``message`` says what to fix, ``details`` names the field or
object, ``retry_after`` (seconds, also sent as a ``Retry-After`` header) is set when
waiting helps.

Status mapping (first match along the exception's class hierarchy):

==========================================  ======
library error                               status
==========================================  ======
LimitExceeded, RequestExceedsRateLimit      413
ConfigurationError                          503
ValidationError, UnknownModel/ToolError     422
other UsageError                            400
NotFoundError                               404
ThreadBusyError, RunCancelled, RunExpired   409
RunStateError                               409
InvalidStructuredOutput                     502
RateLimitTimeout                            429
RateLimitUnavailable                        503
ProviderError: retryable / not retryable    503 / 502
StorageError: invalid data (SQLSTATE 22)    422
StorageError: otherwise                     503
==========================================  ======

Litestar's own validation of parameters and bodies answers 400 (``invalid_request``);
nothing a client sends can produce a 500 with a traceback: an unexpected exception is
logged here and answered with a bare ``internal_error``.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from typing import Any

from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException

from ai_agents.errors import (
    AgentsError,
    ConfigurationError,
    InvalidStructuredOutput,
    LimitExceeded,
    NotFoundError,
    ProviderError,
    RateLimitTimeout,
    RateLimitUnavailable,
    RunCancelled,
    RunError,
    RunExpired,
    RunStateError,
    StorageError,
    ThreadBusyError,
    UnknownModelError,
    UnknownToolError,
    UsageError,
    ValidationError,
)
from ai_agents.queue.rate_limiter import RequestExceedsRateLimit

log = logging.getLogger("api.errors")

_STATUS: dict[type[AgentsError], int] = {
    RequestExceedsRateLimit: 413,
    LimitExceeded: 413,
    ConfigurationError: 503,
    ValidationError: 422,
    UnknownModelError: 422,
    UnknownToolError: 422,
    UsageError: 400,
    NotFoundError: 404,
    ThreadBusyError: 409,
    RunCancelled: 409,
    RunExpired: 409,
    RunStateError: 409,
    InvalidStructuredOutput: 502,
    RateLimitTimeout: 429,
    RateLimitUnavailable: 503,
    RunError: 500,
    AgentsError: 500,
}

_HTTP_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "request_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    500: "internal_error",
    503: "service_unavailable",
}


class ApiError(AgentsError):
    """An error raised by the HTTP layer itself (auth, scopes, rate limit per key)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, details=details)
        self.status = status
        self.code = code
        self.retry_after = retry_after


def unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message)


def forbidden(message: str) -> ApiError:
    return ApiError(403, "forbidden", message)


def _jsonable(value: Any) -> Any:
    """Details as plain JSON (ids, datetimes and the like become strings)."""
    try:
        return json.loads(json.dumps(value, default=str))
    except (TypeError, ValueError):
        return {"repr": repr(value)}


def error_body(
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    retry_after: float | None = None,
) -> dict[str, Any]:
    return {
        "code": code,
        "message": message,
        "details": _jsonable(details or {}),
        "retry_after": retry_after,
    }


def error_response(
    status: int,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    retry_after: float | None = None,
) -> Response[dict[str, Any]]:
    headers = {}
    if retry_after is not None:
        retry_after = round(max(retry_after, 0.0), 3)
        headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    return Response(
        error_body(code, message, details, retry_after),
        status_code=status,
        media_type=MediaType.JSON,
        headers=headers,
    )


def status_of(exc: AgentsError) -> int:
    """The HTTP status for a library error (see the table in the module docstring)."""
    if isinstance(exc, ApiError):
        return exc.status
    if isinstance(exc, ProviderError):
        return 503 if exc.retryable else 502
    if isinstance(exc, StorageError):
        sqlstate = str(exc.details.get("sqlstate") or "")
        # Class 22 "data exception": the value itself is invalid (a NUL byte, an
        # out-of-range number...). The client sent it, so it is a validation error.
        return 422 if sqlstate.startswith("22") else 503
    for cls in type(exc).__mro__:
        if cls in _STATUS:
            return _STATUS[cls]
    return 500


def _retry_after(exc: AgentsError) -> float | None:
    value = getattr(exc, "retry_after", None)
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def handle_agents_error(request: Request[Any, Any, Any], exc: AgentsError) -> Response[Any]:
    status = status_of(exc)
    if status >= 500 and not isinstance(exc, ApiError):
        log.warning("%s %s -> %s %s: %s", request.method, request.url.path, status, exc.code, exc)
    code = exc.code
    message = exc.message
    if isinstance(exc, StorageError) and status == 422:
        code = "validation_error"
        message = f"invalid value: {message.split(': ', 1)[-1]}"
    elif status == 500:
        log.error("unexpected library error", exc_info=exc)
    return error_response(status, code, message, exc.details, _retry_after(exc))


def handle_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    details: dict[str, Any] = {}
    if isinstance(exc, ValidationException):
        if isinstance(exc.extra, list):
            details["errors"] = exc.extra
        elif isinstance(exc.extra, dict):
            details.update(exc.extra)
    message = str(exc.detail) if exc.detail else _HTTP_CODES.get(status, "error")
    code = _HTTP_CODES.get(status, "http_error")
    if status == 413:
        message = "request body too large"
        config = request.app.state.get("api_config")
        if config is not None:
            details["max_body_bytes"] = config.max_body_bytes
    headers = dict(exc.headers or {})
    response = error_response(status, code, message, details)
    for name, value in headers.items():
        response.headers[name] = value
    if status >= 500:
        log.error("%s %s -> %s", request.method, request.url.path, status, exc_info=exc)
    return response


def handle_unicode_error(request: Request[Any, Any, Any], exc: UnicodeError) -> Response[Any]:
    reason = getattr(exc, "reason", str(exc))
    return error_response(400, "invalid_request", f"invalid text encoding: {reason}")


def handle_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal_error", "internal server error")


EXCEPTION_HANDLERS: dict[
    int | type[Exception], Callable[[Request[Any, Any, Any], Any], Response[Any]]
] = {
    AgentsError: handle_agents_error,
    HTTPException: handle_http_exception,
    UnicodeError: handle_unicode_error,
    Exception: handle_unexpected,
}
