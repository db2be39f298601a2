"""The one retry loop for model calls (the vendor SDKs' own retries are off).

Why here and not in the SDKs: one policy for every vendor, errors already mapped to
:mod:`ai_agents.errors`, and the circuit breaker and fallback chain (see
:mod:`ai_agents.providers.fallback`) can see every attempt.

Rules:

- Only *retryable* errors are retried: ``ProviderRateLimited`` (429),
  ``ProviderOverloaded`` (5xx/529), ``ProviderTimeout`` and ``ProviderConnectionError``
  (their ``retryable`` flag). A 400/401/404 is raised at once.
- The wait before attempt *n + 1* is exponential with jitter:
  ``uniform((1 - jitter) * d, d)`` with ``d = min(max_delay, base_delay * 2 ** (n - 1))``.
- A ``retry-after`` sent by the vendor replaces that wait (it is honoured exactly, plus
  up to 10 % jitter so many workers do not return at the same instant).
- Bounds: at most ``max_attempts`` attempts, and no new attempt is *started* when the
  wait would end after ``max_total`` seconds since the first attempt (a retry-after
  longer than what is left means "give up now", so a fallback can answer instead of the
  caller waiting). An attempt already running is bounded by the provider's own timeout.

Policies come from ``agent.settings["retry"]`` (per agent), else
``Settings.extra["retry"]``, else the defaults below. The in-process test models of
:mod:`ai_agents.testing` get one attempt unless a policy is given, so a scripted error
surfaces exactly as scripted.
"""

from __future__ import annotations

import datetime
import email.utils
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, Literal

from ai_agents.errors import (
    LimitExceeded,
    NotFoundError,
    ProviderError,
    ProviderUnavailable,
    RunCancelled,
    UsageError,
    ValidationError,
)

__all__ = ["IN_PROCESS_KINDS", "RetryPolicy", "backoff", "is_retryable"]

#: Adapter kinds that run in-process (no transport to be flaky): one attempt by default.
IN_PROCESS_KINDS = frozenset({"scripted", "function"})


def is_retryable(exc: BaseException, attempt: Literal["call", "job"] = "call") -> bool:
    """Whether another *attempt* after *exc* may succeed: the one retry verdict of the library.

    ``"call"`` (the retry loop of model calls, :mod:`ai_agents.providers.fallback`): trying
    the same provider again may help, i.e. a vendor error flagged ``retryable`` (429, 5xx,
    timeout, connection); never :class:`~ai_agents.errors.ProviderUnavailable` (our own
    verdict that every candidate was skipped or failed, not the vendor's) and never an
    error that is not the vendor's.

    ``"job"`` (a background job run again later by the job queue, :mod:`ai_agents.jobs`):
    vendor hiccups and infrastructure, not mistakes. A vendor error is retried when it is
    flagged ``retryable``, ``ProviderUnavailable`` included (breakers close, fallbacks
    recover); any other error is retried (storage, rate-limit waits, busy threads,
    unexpected exceptions) unless it is a usage error, a missing object, an exceeded
    limit or a cancel.
    """
    if isinstance(exc, ProviderError):
        return exc.retryable and (attempt == "job" or not isinstance(exc, ProviderUnavailable))
    if attempt == "call":
        return False
    return not isinstance(exc, UsageError | NotFoundError | LimitExceeded | RunCancelled)


def backoff(
    attempt: int,
    base: float,
    cap: float,
    *,
    jitter: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """The exponential backoff of every retry (model calls, background jobs, pool nodes).

    The wait after failed attempt number *attempt* (1-based) is
    ``d = min(cap, base * 2 ** (attempt - 1))``; with a *jitter* (0 to 1) it is drawn
    from ``uniform((1 - jitter) * d, d)`` (with *rng*, else the ``random`` module), without
    one it is exactly ``d``.
    """
    ceiling: float = min(cap, base * 2 ** max(0, attempt - 1))
    if jitter is None:
        return ceiling
    return (rng or random).uniform(ceiling * (1 - jitter), ceiling)


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How often and how long one provider is retried before the next one is tried."""

    max_attempts: int = 3
    base_delay: float = 0.5
    max_delay: float = 8.0
    max_total: float = 60.0
    #: Fraction of the exponential delay that is randomized (0: none, 1: full jitter).
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if (
            isinstance(self.max_attempts, bool)
            or not isinstance(self.max_attempts, int)
            or self.max_attempts < 1
        ):
            raise ValidationError(
                f"retry.max_attempts must be an integer >= 1, got {self.max_attempts!r}",
                details={"field": "retry.max_attempts"},
            )
        for name in ("base_delay", "max_delay", "max_total"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValidationError(
                    f"retry.{name} must be a number >= 0, got {value!r}",
                    details={"field": f"retry.{name}"},
                )
        if not isinstance(self.jitter, int | float) or not 0 <= self.jitter <= 1:
            raise ValidationError(
                f"retry.jitter must be between 0 and 1, got {self.jitter!r}",
                details={"field": "retry.jitter"},
            )

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], base: RetryPolicy | None = None) -> RetryPolicy:
        """A policy from ``{"max_attempts": 5, ...}`` (unknown keys are an error)."""
        if not isinstance(data, Mapping):
            raise ValidationError("retry must be a mapping", details={"field": "retry"})
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValidationError(
                f"unknown retry setting(s): {', '.join(sorted(unknown))}",
                details={"field": "retry", "allowed": sorted(known)},
            )
        return replace(base or cls(), **dict(data))

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """Jittered exponential wait after failed attempt number *attempt* (1-based)."""
        return backoff(attempt, self.base_delay, self.max_delay, jitter=self.jitter, rng=rng)

    def delay(
        self, attempt: int, retry_after: float | None, rng: random.Random | None = None
    ) -> float:
        """Wait before the next attempt: the vendor's retry-after, else :meth:`backoff`."""
        if retry_after is not None and retry_after >= 0:
            return retry_after * (1 + (rng or random).uniform(0, 0.1))
        return self.backoff(attempt, rng)

    def next_wait(
        self,
        attempt: int,
        elapsed: float,
        retry_after: float | None,
        rng: random.Random | None = None,
    ) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``, or ``None`` to stop retrying.

        *elapsed*: seconds since the first attempt started.
        """
        if attempt >= self.max_attempts:
            return None
        if retry_after is not None and elapsed + retry_after > self.max_total:
            return None
        wait = self.delay(attempt, retry_after, rng)
        if elapsed + wait > self.max_total:
            return None
        return wait


def parse_retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``retry-after`` (seconds or HTTP date)."""
    if headers is None:
        return None
    value = headers.get("retry-after-ms")
    if value:
        try:
            return max(0.0, float(value) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # an HTTP date is GMT
        when = when.replace(tzinfo=datetime.UTC)
    return max(0.0, when.timestamp() - time.time())
