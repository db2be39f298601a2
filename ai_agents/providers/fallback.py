"""The dispatcher: one model call through retries, circuit breakers and a fallback chain.

For each target of a :class:`~ai_agents.providers.routing.Plan` in order:

1. **breaker** (:mod:`ai_agents.providers.breaker`): open -> skip (``breaker_open``)
   without touching the vendor;
2. **admission**: the caller's hook (the runner waits on the Redis rate limiter of *this*
   provider/model; it may refuse a target by raising :class:`SkipTarget`);
3. **retry loop** (:mod:`ai_agents.providers.retry`): retryable errors are retried with
   backoff; every vendor failure is counted by the breaker, and a breaker that opens
   stops the loop at once (``breaker_opened``); exhausted retries give
   ``retries_exhausted`` (or ``retry_after_too_long``) and the next target is tried;
4. a **non-retryable** error (400, 401, ...) is raised at once: the next provider would
   most likely reject the same request, and hiding a bug behind a fallback helps no one.

Streaming: events are passed through as they arrive; once one has been yielded a failure
is raised as is (the caller already showed part of an answer), so retries and fallbacks
only happen before the first event.

The request is re-targeted for each fallback (``model``, and ``max_output_tokens``
clamped to that model's limit); adapters convert the internal history to their own wire
format, so switching vendor mid-thread, with tool calls in the history, is safe.

The result carries a routing record: ``{provider, model, attempts, skipped: [{provider,
model, reason, ...}], factors}``. When every target fails the error is
:class:`~ai_agents.errors.ProviderUnavailable` (the last vendor error chained), except for
a single target whose own error is re-raised unchanged; either way ``details["routing"]``
holds the record.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ai_agents.errors import ConfigurationError, ProviderError, ProviderUnavailable
from ai_agents.providers.base import Provider, ProviderRequest, ProviderResponse, ResponseDone
from ai_agents.providers.breaker import CircuitBreakers, Permit, counts_as_failure, endpoint_of
from ai_agents.providers.registry import get_registry
from ai_agents.providers.retry import IN_PROCESS_KINDS, RetryPolicy, is_retryable
from ai_agents.providers.routing import Plan, Skip, Target

if TYPE_CHECKING:
    from ai_agents.providers.factory import ProviderFactory

__all__ = ["Dispatched", "Dispatcher", "RoutingRecord", "SkipTarget"]

log = logging.getLogger("ai_agents.dispatch")

A = TypeVar("A")
E = TypeVar("E")


class SkipTarget(Exception):  # noqa: N818 - a signal, not an error
    """Raised by an admission hook to leave a target out (e.g. its context is too small)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(slots=True)
class RoutingRecord:
    """How one model call was routed (saved under the message's ``metadata["routing"]``)."""

    provider: str
    model: str
    #: Requests sent for this call, over every target tried (each skip has its own count).
    attempts: int
    skipped: list[Skip] = field(default_factory=list)
    factors: list[str] = field(default_factory=list)
    #: Seconds slept between attempts (backoff / retry-after), over all targets.
    waited: float = 0.0

    @property
    def eventful(self) -> bool:
        """Anything worth saving with the message (a skip, a retry, a routing factor)?"""
        return bool(self.skipped or self.attempts > 1 or self.factors)

    def to_json(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "model": self.model,
            "attempts": self.attempts,
            "skipped": [s.to_json() for s in self.skipped],
            "factors": list(self.factors),
            "waited": round(self.waited, 3),
        }


@dataclass(slots=True)
class Dispatched(Generic[A]):
    """The answer, which target gave it, the admission used, and the routing record."""

    response: ProviderResponse
    target: Target
    admission: A
    record: RoutingRecord


async def _no_admit(target: Target) -> None:
    return None


async def _no_release(admission: object) -> None:
    return None


async def _complete(provider: Provider, request: ProviderRequest) -> AsyncIterator[ResponseDone]:
    yield ResponseDone(await provider.complete(request))


def _skip(target: Target, reason: str, **details: Any) -> Skip:
    return Skip(provider=target.provider, model=target.model, reason=reason, **details)


def _failed(
    target: Target, exc: ProviderError, attempts: int, policy: RetryPolicy, opened: bool
) -> Skip:
    """Why a target that was tried is left behind."""
    if opened:
        reason = "breaker_opened"
    elif exc.retry_after is not None and attempts < policy.max_attempts:
        reason = "retry_after_too_long"
    else:
        reason = "retries_exhausted"
    return _skip(
        target,
        reason,
        error=exc.code,
        status=exc.status,
        attempts=attempts,
        retry_in=exc.retry_after,
    )


class _Probe:
    """A half-open probe lease held by this call, handed back unless it got a verdict."""

    def __init__(self, breakers: CircuitBreakers, provider: str, url: str, held: bool) -> None:
        self._breakers = breakers
        self._provider = provider
        self._url = url
        self.pending = held

    def used(self) -> None:
        self.pending = False

    async def release(self) -> None:
        if self.pending:
            self.pending = False
            await self._breakers.release_probe(self._provider, self._url)


def _retarget(request: ProviderRequest, target: Target) -> ProviderRequest:
    if request.model == target.model:
        return request
    limits = get_registry().find(target.provider, target.model)
    max_output = request.max_output_tokens
    if max_output is not None and limits is not None:
        max_output = min(max_output, limits.max_output)
    return replace(request, model=target.model, max_output_tokens=max_output)


class Dispatcher:
    """Calls providers for the runner (and anyone else) through the resilience layers."""

    def __init__(
        self,
        providers: ProviderFactory,
        breakers: CircuitBreakers,
        *,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.providers = providers
        self.breakers = breakers
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._clock = clock
        self._rng = rng

    def _wait(
        self, policy: RetryPolicy, attempt: int, started: float, exc: ProviderError
    ) -> float | None:
        return policy.next_wait(attempt, self._clock() - started, exc.retry_after, self._rng)

    def policy_for(self, provider: Provider, override: Mapping[str, Any] | None) -> RetryPolicy:
        """The agent's ``settings["retry"]`` over the default; test models: one attempt."""
        if override:
            return RetryPolicy.from_mapping(override, self.retry)
        if provider.kind in IN_PROCESS_KINDS:
            return replace(self.retry, max_attempts=1)
        return self.retry

    async def complete(
        self,
        plan: Plan | Sequence[Target],
        request: ProviderRequest,
        *,
        retry: Mapping[str, Any] | None = None,
    ) -> Dispatched[None]:
        """Non-streaming convenience: the dispatched answer of *request*."""
        result: Dispatched[None] | None = None
        async for event in self.dispatch(
            plan, request, call=_complete, admit=_no_admit, release=_no_release, retry=retry
        ):
            if isinstance(event, Dispatched):
                result = event
        assert result is not None
        return result

    async def dispatch(
        self,
        plan: Plan | Sequence[Target],
        request: ProviderRequest,
        *,
        call: Callable[[Provider, ProviderRequest], AsyncIterator[E | ResponseDone]],
        admit: Callable[[Target], Awaitable[A]],
        release: Callable[[A], Awaitable[None]],
        retry: Mapping[str, Any] | None = None,
    ) -> AsyncIterator[E | Dispatched[A]]:
        """Yield *call*'s events (except :class:`ResponseDone`), then one :class:`Dispatched`.

        *call(provider, request)* yields events ending with a ``ResponseDone``; *admit*
        runs before the first attempt on a target (its result is handed to *release* if
        that target does not answer, and returned in :class:`Dispatched` if it does).
        """
        if not isinstance(plan, Plan):
            plan = Plan(targets=list(plan))
        skipped = list(plan.skipped)
        total_attempts = 0
        waited = 0.0
        last_error: ProviderError | None = None

        def record(target: Target, model: str | None = None) -> RoutingRecord:
            factors = list(plan.factors)
            if target != plan.targets[0]:
                factors.append("fallback")
            return RoutingRecord(
                target.provider,
                model or target.model,
                total_attempts,
                list(skipped),
                factors,
                waited,
            )

        for index, target in enumerate(plan.targets):
            try:
                provider = self.providers.get(target.provider)
            except ConfigurationError:
                if index == 0:
                    raise
                # A fallback this process cannot build must not hide the primary's failure.
                skipped.append(_skip(target, "not_configured"))
                continue
            url = endpoint_of(provider)
            permit = await self.breakers.allow(target.provider, url)
            if not permit.allowed:
                skipped.append(_skip(target, "breaker_open", retry_in=permit.retry_in))
                continue
            probe = _Probe(self.breakers, target.provider, url, permit.probe)
            try:
                admission = await admit(target)
            except SkipTarget as exc:
                await probe.release()
                skipped.append(_skip(target, exc.reason))
                continue
            except BaseException:
                await probe.release()
                raise
            policy = self.policy_for(provider, retry)
            wire = _retarget(request, target)
            started = self._clock()
            attempt = 0
            held = True  # admission not yet handed back or over
            try:
                while True:
                    attempt += 1
                    total_attempts += 1
                    produced = False
                    response: ProviderResponse | None = None
                    try:
                        async for event in call(provider, wire):
                            if isinstance(event, ResponseDone):
                                response = event.response
                            else:
                                produced = True
                                yield event
                    except ProviderError as exc:
                        last_error = exc
                        opened = False
                        if counts_as_failure(exc):
                            probe.used()  # a failed probe re-opens the breaker
                            state = await self.breakers.record_failure(
                                target.provider, url, f"{exc.code}: {exc.message}"
                            )
                            opened = state.state == "open"
                        else:
                            await probe.release()  # 4xx/429: no verdict on health
                        if produced or not is_retryable(exc):
                            exc.details["routing"] = record(target).to_json()
                            raise
                        wait = None if opened else self._wait(policy, attempt, started, exc)
                        if wait is None:
                            skipped.append(_failed(target, exc, attempt, policy, opened))
                            break
                        log.info(
                            "retrying provider call",
                            extra={
                                "provider": target.provider,
                                "model": target.model,
                                "attempt": attempt,
                                "error": exc.code,
                                "wait": round(wait, 3),
                            },
                        )
                        waited += wait
                        await self._sleep(wait)
                        continue
                    if response is None:
                        raise RuntimeError(f"{target.provider}: the call ended without a response")
                    await self.breakers.record_success(
                        target.provider, url, Permit(True, permit.state, probe=probe.pending)
                    )
                    probe.used()
                    held = False
                    done = record(target, response.model or None)
                    if done.skipped:
                        log.info(
                            "answered by fallback",
                            extra={
                                "provider": done.provider,
                                "model": done.model,
                                "skipped": [s.to_json() for s in done.skipped],
                            },
                        )
                    yield Dispatched(response, target, admission, done)
                    return
            finally:
                await probe.release()  # a probe that ended without a verdict
                if held:
                    held = False
                    await release(admission)

        summary = "; ".join(f"{s.provider}/{s.model}: {s.reason}" for s in skipped)
        routing = RoutingRecord("", "", total_attempts, skipped, list(plan.factors), waited)
        if len(plan.targets) == 1 and last_error is not None:
            last_error.details["routing"] = routing.to_json()
            raise last_error
        retry_in = [s.retry_in for s in skipped if s.retry_in is not None]
        error = ProviderUnavailable(
            f"no provider could answer ({summary or 'no targets'})",
            provider=plan.targets[0].provider if plan.targets else "",
            retry_after=min(retry_in) if retry_in else None,
        )
        error.details["routing"] = routing.to_json()
        raise error from last_error
