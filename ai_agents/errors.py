"""The library's exceptions: one root, a few clear branches.

- ``UsageError`` and its children: the developer passed something wrong (bad id,
  unknown model, invalid definition). Fix the call.
- ``NotFoundError``: the object does not exist (or belongs to another tenant).
- ``RunError`` and its children: a run could not complete (limits, busy thread).
- ``ProviderError`` and its children: the LLM vendor answered with an error or not at
  all; they carry provider, status, vendor message and retry-after.
- ``StorageError``: PostgreSQL or Redis failed underneath us (driver error chained).
"""

from __future__ import annotations

import reprlib
from typing import Any


class AgentsError(Exception):
    """Root of every exception raised by ai_agents."""

    code: str = "error"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details or {}


# --- usage mistakes ---------------------------------------------------------------


class UsageError(AgentsError):
    """A call was made with arguments that can never work."""

    code = "invalid_request"


class ValidationError(UsageError, ValueError):
    """An argument failed validation; ``details`` names the field."""

    code = "validation_error"


class ConfigurationError(UsageError):
    """Settings (env vars, config file, provider keys) are missing or inconsistent."""

    code = "configuration_error"


class ConflictError(UsageError):
    """The object cannot be created as asked: one with the same unique name exists."""

    code = "conflict"


class UnknownModelError(UsageError, LookupError):
    """The model-limits registry does not know this provider/model."""

    code = "unknown_model"


class UnknownToolError(UsageError, LookupError):
    """An agent names a tool that is not registered."""

    code = "unknown_tool"


class NotFoundError(AgentsError, LookupError):
    """The object does not exist (or is not visible to the caller's tenant)."""

    code = "not_found"

    def __init__(self, kind: str, ident: object) -> None:
        super().__init__(f"{kind} {ident} not found", details={"kind": kind, "id": str(ident)})
        self.kind = kind
        self.ident = ident


# --- run failures -----------------------------------------------------------------


class RunError(AgentsError):
    """A run (or write) could not complete; the thread is left consistent."""

    code = "run_error"


class LimitExceeded(RunError):
    """A write would exceed a size limit (thread, user or tenant); nothing was written."""

    code = "limit_exceeded"

    def __init__(self, scope: str, limit: int, current: int, attempted: int) -> None:
        super().__init__(
            f"{scope} size limit exceeded: {current} + {attempted} bytes > {limit} bytes",
            details={"scope": scope, "limit": limit, "current": current, "attempted": attempted},
        )
        self.scope = scope
        self.limit = limit


class ThreadBusyError(RunError):
    """Another run holds the thread and the caller asked not to wait."""

    code = "thread_busy"

    def __init__(self, thread_id: object) -> None:
        super().__init__(
            f"thread {thread_id} is busy with another run", details={"thread_id": str(thread_id)}
        )


class RateLimitUnavailable(RunError):
    """The Redis rate limiter could not be reached and the run refused to go unlimited."""

    code = "rate_limiter_unavailable"


class RateLimitTimeout(RunError):
    """Waiting for the rate-limit window took longer than the caller allowed."""

    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message, details={"retry_after": retry_after})
        self.retry_after = retry_after


class RunCancelled(RunError):
    """The run was cancelled at a safe point; what was saved before stays consistent."""

    code = "cancelled"


class RunExpired(RunError):
    """The run's lease ran out (its process stalled) or nobody answered it in time;
    nothing of its turn was saved and the thread is free."""

    code = "run_expired"


class RunStateError(UsageError):
    """The run is not in a state that allows this (e.g. outputs for a run that is not
    waiting for them, or that wait for other tool calls)."""

    code = "invalid_run_state"


class InvalidStructuredOutput(RunError):
    """The model's answer did not match the run's ``response_format``, twice."""

    code = "invalid_structured_output"


# --- provider errors --------------------------------------------------------------


class ProviderError(AgentsError):
    """The LLM vendor failed. ``retryable`` says whether trying again may help."""

    code = "provider_error"
    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        status: int | None = None,
        retry_after: float | None = None,
        vendor_message: str | None = None,
    ) -> None:
        super().__init__(
            message,
            details={
                "provider": provider,
                "status": status,
                "retry_after": retry_after,
                "vendor_message": vendor_message,
            },
        )
        self.provider = provider
        self.status = status
        self.retry_after = retry_after
        self.vendor_message = vendor_message


class ProviderRateLimited(ProviderError):
    """HTTP 429 from the vendor."""

    code = "provider_rate_limited"
    retryable = True


class ProviderOverloaded(ProviderError):
    """HTTP 529/503 (or another 5xx): the vendor is overloaded or failing."""

    code = "provider_overloaded"
    retryable = True


class ProviderBadRequest(ProviderError):
    """HTTP 400/404/422: the vendor rejected the request; retrying will not help."""

    code = "provider_bad_request"


class ProviderAuthError(ProviderError):
    """HTTP 401/403: missing, wrong or unauthorized API key."""

    code = "provider_auth_error"


class ProviderTimeout(ProviderError):
    """The vendor did not answer in time."""

    code = "provider_timeout"
    retryable = True


class ProviderConnectionError(ProviderError):
    """The vendor could not be reached (DNS, refused, reset)."""

    code = "provider_connection_error"
    retryable = True


class ProviderBadResponse(ProviderError):
    """The vendor answered (HTTP 200) but the reply cannot be read: not JSON, the wrong
    shape, a value we do not know (a finish reason), or a stream that ended before its
    final event. Retryable: it comes from a vendor or proxy having a bad moment, and
    nothing of the reply is used, so a retry or a fallback may answer."""

    code = "provider_bad_response"
    retryable = True

    #: At most this many characters of a message (no whole body in logs and API errors).
    MAX_MESSAGE = 200

    @classmethod
    def of(
        cls, provider: str, problem: str, *, got: object = None, status: int | None = 200
    ) -> ProviderBadResponse:
        """``"{provider}: unreadable reply: {problem} (got ...)"``, capped, with a short
        excerpt of *got* (the offending value, never the whole body)."""
        message = f"{provider}: unreadable reply: {problem}"
        if got is not None:
            message += f" (got {_excerpt.repr(got)})"
        if len(message) > cls.MAX_MESSAGE:
            message = message[: cls.MAX_MESSAGE - 3] + "..."
        return cls(message, provider=provider, status=status)


class ProviderUnavailable(ProviderError):
    """Every candidate provider was skipped or failed (open breakers, exhausted fallbacks)."""

    code = "provider_unavailable"
    retryable = True


def _excerpt_repr() -> reprlib.Repr:
    """A ``repr`` that stays short on any value (reprlib cuts long strings and containers)."""
    short = reprlib.Repr()
    short.maxstring = short.maxother = 60
    short.maxlevel = 2
    return short


_excerpt = _excerpt_repr()


# --- storage ----------------------------------------------------------------------


class StorageError(AgentsError):
    """PostgreSQL or Redis failed; the driver error is chained as ``__cause__``."""

    code = "storage_error"
