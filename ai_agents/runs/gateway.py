"""One model call of a run: rate-limit admission, then retries, breakers and fallbacks.

:class:`ModelGateway` is what the turn loop calls; it yields text deltas while the
answer streams and ends with a :class:`ModelAnswer` (the response, who gave it, its cost,
the rate-limit wait). :class:`RateLimitAdmissions` owns the Redis limiters of the
(provider, model) windows, the calling tenant's share of them and per-user windows.

Admission of a target, in order: the tenant may use the provider (and, for a local
adapter, the model: :meth:`ProviderFactory.check`; a fallback it may not use is skipped
as ``not_allowed``), then the rate limiter, which waits at most
``Settings.rate_limit_max_wait`` seconds and otherwise raises ``RateLimitTimeout``
(HTTP 429 with ``Retry-After``).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Sequence
from dataclasses import dataclass
from typing import Any

from ai_agents.errors import ConfigurationError, ValidationError
from ai_agents.messages import Message
from ai_agents.observability import genai
from ai_agents.providers.base import (
    Provider,
    ProviderRequest,
    ProviderResponse,
    ResponseDone,
    TextDelta,
    ToolCallReady,
    ToolSpec,
    Usage,
)
from ai_agents.providers.fallback import Dispatched, Dispatcher, RoutingRecord, SkipTarget
from ai_agents.providers.registry import ModelLimits, get_registry
from ai_agents.providers.routing import Plan, Target
from ai_agents.ratelimit.limiter import RateLimits, RedisRateLimiter, Reservation, WindowUsage
from ai_agents.records import AgentRecord, ThreadRecord
from ai_agents.response import TextDeltaEvent
from ai_agents.runtime import Runtime
from ai_agents.tokens import TokenCounter

log = logging.getLogger("ai_agents.run")

#: Output tokens reserved in the rate-limit window before the answer's size is known.
ESTIMATED_OUTPUT_CAP = 1024

#: Limiters (per provider, model and tenant) kept per process, least recently used out.
_MAX_CACHED_LIMITERS = 1024


@dataclass(slots=True)
class ModelAnswer:
    """A model call's answer and how it was obtained."""

    response: ProviderResponse
    provider: str
    model: str
    record: RoutingRecord
    cost: float
    waited: float
    admitted_at: float | None
    #: The rate-limit window's usage correction, running alongside the turn.
    recorded: Awaitable[None] | None = None


class RateLimitAdmissions:
    """The Redis rate-limit windows a call waits on (model-wide with the tenant's share,
    and per user)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        #: Per-process overrides of the registry's RPM/TPM (benchmarks, tests, operators).
        self.overrides: dict[tuple[str, str], RateLimits] = {}
        self._limiters: OrderedDict[tuple[str, str, str], RedisRateLimiter] = OrderedDict()

    def model_limits(self, provider: str, model: str, limits: ModelLimits) -> RateLimits:
        return self.overrides.get((provider, model), RateLimits(rpm=limits.rpm, tpm=limits.tpm))

    def tenant_weight(self, tenant: str) -> int:
        """The tenant's weight in shared windows (``rate_limit_tenant_weights``, else 1)."""
        weight = self.runtime.settings.rate_limit_tenant_weights.get(tenant, 1)
        if isinstance(weight, bool) or not isinstance(weight, int) or weight < 1:
            raise ConfigurationError(
                f"rate_limit_tenant_weights[{tenant!r}] must be a positive integer, got {weight!r}"
            )
        return weight

    @property
    def max_wait(self) -> float:
        return self.runtime.settings.rate_limit_max_wait

    def limiter(
        self,
        provider: str,
        model: str,
        limits: ModelLimits,
        agent: AgentRecord,
        thread: ThreadRecord,
    ) -> RedisRateLimiter:
        """The model's window with the thread tenant's share, plus the user's window when
        the agent sets ``user_rpm``/``user_tpm``.

        Limiters without a user window are cached per process (LRU). A per-user limiter
        is built per call (no I/O) so it uses the agent's current settings and the cache
        does not grow with the number of users. User windows are per tenant.
        """
        tenant = thread.tenant_id
        user_rpm = agent.settings.get("user_rpm")
        user_tpm = agent.settings.get("user_tpm")
        if thread.user_id and (user_rpm or user_tpm):
            user = ("user", f"{tenant}:{thread.user_id}", RateLimits(user_rpm, user_tpm))
            return self._new(provider, model, limits, scopes=[user], tenant=tenant)
        key = (provider, model, tenant)
        limiter = self._limiters.get(key)
        if limiter is None:
            limiter = self._limiters[key] = self._new(provider, model, limits, tenant=tenant)
            if len(self._limiters) > _MAX_CACHED_LIMITERS:
                self._limiters.popitem(last=False)
        else:
            self._limiters.move_to_end(key)
        return limiter

    def _new(
        self,
        provider: str,
        model: str,
        limits: ModelLimits,
        scopes: Sequence[tuple[str, str, RateLimits]] = (),
        tenant: str | None = None,
    ) -> RedisRateLimiter:
        settings = self.runtime.settings
        return RedisRateLimiter(
            self.runtime.redis,
            self.runtime.keys,
            provider=provider,
            model=model,
            limits=self.model_limits(provider, model, limits),
            scopes=scopes,
            fail_open=settings.rate_limit_fail_open,
            window_seconds=settings.rate_limit_window,
            tenant=tenant,
            tenant_weight=self.tenant_weight(tenant) if tenant is not None else 1,
        )

    async def window(self, provider: str, model: str) -> WindowUsage:
        """Current use of the (provider, model) window, for display."""
        limits = get_registry().get(provider, model)
        return await self._new(provider, model, limits).usage()


@dataclass(slots=True)
class _Admission:
    limiter: RedisRateLimiter
    reservation: Reservation
    limits: ModelLimits


async def _release(admission: _Admission) -> None:
    await admission.limiter.release(admission.reservation)


class ModelGateway:
    """Calls the model for the turn loop (production: dispatcher + Redis rate limits)."""

    def __init__(
        self, dispatcher: Dispatcher, admissions: RateLimitAdmissions, counter: TokenCounter
    ) -> None:
        self.dispatcher = dispatcher
        self.admissions = admissions
        self.counter = counter
        self._recording: set[asyncio.Task[None]] = set()

    async def call(
        self,
        route: Plan,
        request: ProviderRequest,
        *,
        specs: Sequence[ToolSpec],
        agent: AgentRecord,
        thread: ThreadRecord,
        max_output: int,
        stream: bool,
        retry: Any = None,
    ) -> AsyncIterator[TextDeltaEvent | ModelAnswer]:
        primary = route.targets[0]
        primary_limits = get_registry().get(primary.provider, primary.model)

        async def admit(target: Target) -> _Admission:
            try:
                self.dispatcher.providers.check(
                    target.provider, target.model, tenant=thread.tenant_id
                )
            except ValidationError:
                if target == primary:
                    raise
                raise SkipTarget("not_allowed") from None
            # The rate limits of the provider/model actually called (fallbacks too).
            limits = (
                primary_limits
                if target == primary
                else get_registry().get(target.provider, target.model)
            )
            reserve = min(max_output, ESTIMATED_OUTPUT_CAP)
            estimate = self.counter.count_request(
                request.system_prompt,
                request.messages,
                specs,
                provider=target.provider,
                model=target.model,
            )
            if target != primary and estimate + reserve > limits.context_window:
                raise SkipTarget("context_window")
            limiter = self.admissions.limiter(target.provider, target.model, limits, agent, thread)
            reservation = await limiter.wait_if_needed(
                estimate + reserve, max_wait=self.admissions.max_wait
            )
            return _Admission(limiter, reservation, limits)

        dispatched: Dispatched[_Admission] | None = None
        async for event in self.dispatcher.dispatch(
            route,
            request,
            call=lambda p, r: genai.model_call(p.name, r, _call(p, r, stream)),
            admit=admit,
            release=_release,
            retry=retry,
        ):
            if isinstance(event, Dispatched):
                dispatched = event
            else:
                yield event
        assert dispatched is not None
        response, target = dispatched.response, dispatched.target
        admission = dispatched.admission
        if not response.usage.total_tokens:
            response.usage = self._estimate_usage(target, request, response)
        # Correcting the window's token count overlaps with the rest of the turn.
        recorded = asyncio.ensure_future(
            admission.limiter.record_request(admission.reservation, response.usage.total_tokens)
        )
        self._recording.add(recorded)
        recorded.add_done_callback(self._recorded)
        yield ModelAnswer(
            response=response,
            provider=target.provider,
            model=response.model or target.model,
            record=dispatched.record,
            cost=admission.limits.cost(
                response.usage.input_tokens,
                response.usage.output_tokens,
                cache_read_tokens=response.usage.cache_read_tokens,
                cache_write_tokens=response.usage.cache_write_tokens,
            ),
            waited=admission.reservation.waited,
            admitted_at=admission.reservation.admitted_at,
            recorded=recorded,
        )

    def _recorded(self, task: asyncio.Task[None]) -> None:
        self._recording.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("rate-limit usage correction failed: %s", task.exception())

    def _estimate_usage(
        self, target: Target, request: ProviderRequest, response: ProviderResponse
    ) -> Usage:
        """Our own count when the vendor reported no usage (marked as an estimate)."""
        answer = Message(role="assistant", content=response.content, tool_calls=response.tool_calls)
        p, m = target.provider, target.model
        return Usage(
            self.counter.count_request(
                request.system_prompt, request.messages, request.tools, provider=p, model=m
            ),
            self.counter.count_message(answer, provider=p, model=m),
            estimated=True,
        )


async def _call(
    provider: Provider, request: ProviderRequest, stream: bool
) -> AsyncIterator[TextDeltaEvent | ResponseDone]:
    if not stream:
        yield ResponseDone(await provider.complete(request))
        return
    async for event in provider.stream(request):
        if isinstance(event, TextDelta):
            yield TextDeltaEvent(event.text)
        elif isinstance(event, ResponseDone):
            yield event
        elif isinstance(event, ToolCallReady):
            continue  # announced after validation as ToolCallEvent
