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
ContextOverflow                             400
ConfigurationError                          503
ValidationError, UnknownModel/ToolError     422
other UsageError                            400
NotFoundError                               404
ThreadBusyError, RunCancelled, RunExpired   409
RunStateError, ConflictError                409
InvalidStructuredOutput                     502
ProviderBadResponse (unreadable reply)      502
RateLimitTimeout                            429
RateLimitUnavailable                        503
ProviderError: retryable / not retryable    503 / 502
StorageError: invalid data (SQLSTATE 22)    422
StorageError: otherwise                     503
==========================================  ======

Litestar's own validation of parameters and bodies answers 400 (``invalid_request``);
nothing a client sends can produce a 500 with a traceback: an unexpected exception is
logged here and answered with a bare ``internal_error``.

Answers reveal nothing of the server (:func:`public_error`): a server-side failure says
what is down ("database unavailable", "model provider 'ollama' cannot be reached") and
logs the driver's message, with its hosts, ports, URLs and variable names, here; an
unknown tool names only the names asked for, never the tools the server has.
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
    ConflictError,
    InvalidStructuredOutput,
    LimitExceeded,
    NotFoundError,
    ProviderBadResponse,
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
from ai_agents.memory.context import ContextOverflow
from ai_agents.ratelimit.limiter import RequestExceedsRateLimit

log = logging.getLogger("api.errors")

_STATUS: dict[type[AgentsError], int] = {
    RequestExceedsRateLimit: 413,
    LimitExceeded: 413,
    ContextOverflow: 400,
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
    ConflictError: 409,
    InvalidStructuredOutput: 502,
    ProviderBadResponse: 502,
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
    if isinstance(exc, ProviderError) and not isinstance(exc, ProviderBadResponse):
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


#: What a provider failure is called in an answer (after ``model provider '<name>'``).
_PROVIDER_TROUBLE = {
    "provider_connection_error": "cannot be reached",
    "provider_timeout": "did not answer in time",
    "provider_overloaded": "is overloaded or failing",
    "provider_rate_limited": "is rate limiting this server",
    "provider_unavailable": "could not answer (every candidate failed or was skipped)",
    "provider_auth_error": "refused this server's credentials, or it has none",
    "provider_bad_response": "sent a reply that could not be read",
}
#: Details that name nothing of the server's own infrastructure.
_PUBLIC_DETAILS = frozenset(
    {"provider", "model", "status", "retry_after", "routing", "operation", "sqlstate"}
)


def _from_redis(exc: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if type(current).__module__.split(".")[0] == "redis":
            return True
        current = current.__cause__ or current.__context__
    return False


def _server_side_message(exc: AgentsError, status: int) -> str | None:
    """What a client is told of a failure on the server's side: what is down, never
    where. None: the library's message is fine to show (it is about the request)."""
    if isinstance(exc, ApiError | InvalidStructuredOutput):
        return None
    if isinstance(exc, ProviderError):
        if exc.code == "provider_bad_request":
            return None  # the vendor says what is wrong with the request
        trouble = _PROVIDER_TROUBLE.get(exc.code, "failed")
        return (
            f"model provider {exc.provider!r} {trouble}" if exc.provider else f"no model {trouble}"
        )
    if status < 500:
        return None
    if isinstance(exc, StorageError):
        if _from_redis(exc):
            return "Redis unavailable"
        sqlstate = exc.details.get("sqlstate")
        return f"database error (SQLSTATE {sqlstate})" if sqlstate else "database unavailable"
    if isinstance(exc, RateLimitUnavailable):
        return "rate limiter unavailable: Redis cannot be reached"
    if isinstance(exc, ConfigurationError):
        return "the server is misconfigured (the details are in its log)"
    return "internal server error"


#: Stored errors (a run's ``last_error``, a job's ``error``) whose message may name the
#: server's infrastructure, by code: what the client reads instead.
_STORED_SERVER_SIDE = {
    "storage_error": "database or Redis unavailable",
    "rate_limiter_unavailable": "rate limiter unavailable: Redis cannot be reached",
    "configuration_error": "the server is misconfigured (the details are in its log)",
    "internal_error": "internal server error",
    **{code: f"the model provider {trouble}" for code, trouble in _PROVIDER_TROUBLE.items()},
}


def public_stored_error(code: str, message: str) -> str:
    """The message of a recorded error as a client may read it (see :func:`public_error`)."""
    return _STORED_SERVER_SIDE.get(code, message)


def public_error(exc: AgentsError) -> tuple[int, str, str, dict[str, Any]]:
    """Status, code, message and details of *exc* as a client may see them.

    Server-side failures (5xx) name what is down ("database unavailable") without hosts,
    ports, URLs or environment variable names: those stay in the server log. An unknown
    tool names only the unknown names, not the tools this server has.
    """
    status = status_of(exc)
    code, message, details = exc.code, exc.message, exc.details
    public = _server_side_message(exc, status)
    if public is not None:
        message = public
        details = {k: v for k, v in details.items() if k in _PUBLIC_DETAILS}
    elif isinstance(exc, StorageError) and status == 422:
        code = "validation_error"
        message = f"invalid value: {message.split(': ', 1)[-1]}"
    elif isinstance(exc, UnknownToolError):
        unknown = [str(n) for n in details.get("unknown") or ()]
        message = f"unknown tool(s): {', '.join(unknown)}" if unknown else "unknown tool"
        details = {"field": "tools", "unknown": unknown}
    return status, code, message, details


def handle_agents_error(request: Request[Any, Any, Any], exc: AgentsError) -> Response[Any]:
    status, code, message, details = public_error(exc)
    if status == 500 and not isinstance(exc, ApiError):
        log.error("unexpected library error", exc_info=exc)
    elif status >= 500 and not isinstance(exc, ApiError):
        log.warning("%s %s -> %s %s: %s", request.method, request.url.path, status, exc.code, exc)
    return error_response(status, code, message, details, _retry_after(exc))


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
