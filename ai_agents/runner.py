"""AgentRunner: one turn of a thread, from user input to saved answer (design section 12).

1. Take the thread's run lock (advisory lock; policy ``enqueue`` waits, ``reject`` fails).
2. Load agent + thread (one query) and only the history the memory strategy asks for.
3. Compile the system prompt (+ known facts about the user when the agent opts in).
4. Fit the history to ``context_window - max_output - tools - system`` tokens.
5. Wait on the Redis rate limits, call the provider, record usage.
6. Execute requested tools concurrently (validated, each with a timeout); loop up to
   ``max_tool_iterations``.
7. Save the whole turn (user message, assistant tool calls, tool results, answer) in one
   transaction, and return an :class:`AgentResponse`.

A turn is all-or-nothing: if anything fails before step 7 (provider error, cancel,
crash), nothing of the turn is saved and the thread is exactly as before. With an
idempotency key, a retried turn that was already saved returns the saved answer instead
of running again (checked under the lock, so at-least-once delivery has exactly-once effect).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncConnection

from ai_agents.db import memory as memory_rows
from ai_agents.db import messages as message_rows
from ai_agents.db import threads as thread_rows
from ai_agents.db.engine import parse_uuid, translate_errors
from ai_agents.db.scope import Scope
from ai_agents.embeddings import Embedder, HashingEmbedder
from ai_agents.errors import RunCancelled, UsageError, ValidationError
from ai_agents.locks import BusyPolicy, thread_lock
from ai_agents.memory import MemoryInput, get_strategy
from ai_agents.messages import Message, ToolCall
from ai_agents.providers.base import (
    Provider,
    ProviderRequest,
    ProviderResponse,
    ResponseDone,
    TextDelta,
    ToolCallReady,
    Usage,
)
from ai_agents.providers.breaker import BreakerConfig, CircuitBreakers
from ai_agents.providers.fallback import Dispatched, Dispatcher, RoutingRecord, SkipTarget
from ai_agents.providers.registry import ModelLimits, get_registry
from ai_agents.providers.retry import RetryPolicy
from ai_agents.providers.routing import Plan, RoutingInput, Target, plan_run
from ai_agents.queue.rate_limiter import RateLimits, RedisRateLimiter, Reservation, WindowUsage
from ai_agents.records import AgentRecord, ThreadRecord
from ai_agents.response import (
    AgentResponse,
    DoneEvent,
    RunEvent,
    RunFinish,
    TextDeltaEvent,
    ToolCallEvent,
    ToolCallRecord,
    ToolResultEvent,
)
from ai_agents.tokens import TokenCounter, default_counter
from ai_agents.tools.decorator import Tool, ToolContext, ToolOutcome
from ai_agents.tools.registry import ToolRegistry, default_registry

if TYPE_CHECKING:
    from ai_agents.store import AgentStore

log = logging.getLogger("ai_agents.run")

MAX_INPUT_CHARS = 1_000_000
ESTIMATED_OUTPUT_CAP = 1024
CancelCheck = Callable[[], Awaitable[bool]]


@dataclass(slots=True, kw_only=True)
class RunOptions:
    on_busy: BusyPolicy = "enqueue"
    busy_timeout: float = 300.0
    idempotency_key: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    should_cancel: CancelCheck | None = None
    stream: bool = False


class AgentRunner:
    """Runs turns for one store. Shares its pools; holds providers, tools and limiters."""

    def __init__(
        self,
        store: AgentStore,
        *,
        tools: ToolRegistry | None = None,
        counter: TokenCounter | None = None,
    ) -> None:
        from ai_agents.providers.factory import ProviderFactory

        self.store = store
        self.providers = ProviderFactory()
        self.tools = tools or default_registry()
        self.counter = counter or default_counter()
        self.rate_limit_overrides: dict[tuple[str, str], RateLimits] = {}
        self.embedder: Embedder = HashingEmbedder()
        self._limiters: dict[tuple[str, str], RedisRateLimiter] = {}
        # Retries -> circuit breaker -> fallbacks for every model call (providers/fallback.py).
        extra = store.settings.extra
        self.breakers = CircuitBreakers(
            lambda: store.redis, store.keys, BreakerConfig.from_sources(extra.get("breaker"))
        )
        self.dispatcher = Dispatcher(
            self.providers, self.breakers, retry=RetryPolicy.from_mapping(extra.get("retry") or {})
        )

    async def aclose(self) -> None:
        await self.providers.aclose()

    # --- public -----------------------------------------------------------------------

    async def run(
        self, scope: Scope, thread_id: UUID | str, text: str, options: RunOptions
    ) -> AgentResponse:
        done: DoneEvent | None = None
        async with aclosing(self.events(scope, thread_id, text, options)) as events:
            async for event in events:
                if isinstance(event, DoneEvent):
                    done = event
        assert done is not None, "a run always ends with a DoneEvent"
        return done.response

    async def events(
        self, scope: Scope, thread_id: UUID | str, text: str, options: RunOptions
    ) -> AsyncGenerator[RunEvent, None]:
        ident = parse_uuid(thread_id, "thread")
        _validate_input(text)
        async with thread_lock(
            self.store.engine, ident, options.on_busy, wait_timeout=options.busy_timeout
        ) as conn:
            if options.idempotency_key:
                replay = await self._replay(conn, ident, options.idempotency_key)
                if replay is not None:
                    yield DoneEvent(replay)
                    return
            async for event in self._turn(scope, conn, ident, text, options):
                yield event

    # --- the turn ---------------------------------------------------------------------

    async def _turn(
        self,
        scope: Scope,
        conn: AsyncConnection,
        thread_id: UUID,
        text: str,
        options: RunOptions,
    ) -> AsyncGenerator[RunEvent, None]:
        run_id = uuid.uuid4()
        started = time.perf_counter()
        with translate_errors("load thread"):
            thread, agent = await thread_rows.get_thread_and_agent(conn, scope, thread_id)
            if not agent.is_active:
                raise UsageError(f"agent {agent.id} is deactivated; reactivate it to run")
            strategy = get_strategy(agent.memory_strategy)
            plan = strategy.plan(agent.memory_config)
            history = await message_rows.last_n(conn, thread_id, plan.last) if plan.last else []
            first = await message_rows.first_m(conn, thread_id, plan.first) if plan.first else []
            facts = await self._user_facts(conn, agent, thread)

        tools = self.tools.resolve(agent.definition.tools)
        route = self._plan(agent, text, [*first, *history], bool(tools), options)
        primary = route.targets[0]
        provider_name, model = primary.provider, primary.model
        limits = get_registry().get(provider_name, model)
        specs = [t.spec for t in tools]
        max_iterations = int(
            agent.settings.get("max_tool_iterations", self.store.settings.max_tool_iterations)
        )
        tool_timeout = float(agent.settings.get("tool_timeout", self.store.settings.tool_timeout))
        system_prompt = agent.definition.compile()
        if facts:
            system_prompt += "\n\n# Known facts about this user\n" + facts

        def count(message: Message) -> int:
            return self.counter.count_message(message, provider=provider_name, model=model)

        fixed = self.counter.count_request(
            system_prompt, (), specs, provider=provider_name, model=model
        )
        max_output = int(agent.settings.get("max_output_tokens") or limits.max_output)
        budget = limits.context_window - max_output - fixed
        tpm = self._model_limits(provider_name, model, limits).tpm
        if tpm is not None:
            # A request the per-minute token limit can never admit would fail at once:
            # trim the history to what one window can hold instead.
            budget = min(budget, tpm - min(max_output, ESTIMATED_OUTPUT_CAP) - fixed)
        services = _Services(self, conn, thread, agent)

        user_message = Message(role="user", content=text, metadata=dict(options.metadata))
        turn: list[Message] = [user_message]
        recording: set[asyncio.Task[None]] = set()
        records: list[ToolCallRecord] = []
        routes: list[RoutingRecord] = []
        total = Usage()
        cost = 0.0
        waited = 0.0
        finish: RunFinish = "stop"
        state_update: dict[str, Any] | None = None
        final: ProviderResponse | None = None
        context = ToolContext(
            thread_id=thread.id,
            agent_id=agent.id,
            tenant_id=thread.tenant_id,
            user_id=thread.user_id,
            run_id=run_id,
            store=self.store,
        )

        for iteration in range(max_iterations + 1):
            prepared = await strategy.prepare(
                MemoryInput(
                    thread=thread,
                    config=agent.memory_config,
                    history=history,
                    first=first,
                    current=turn,
                    budget=budget,
                    count=count,
                ),
                services,
            )
            if prepared.state is not None:
                state_update = prepared.state
                thread.memory_state = prepared.state
            prompt = system_prompt
            if prepared.system_addendum:
                prompt += "\n\n" + prepared.system_addendum
            request = ProviderRequest(
                model=model,
                system_prompt=prompt,
                messages=[*prepared.history, *turn],
                tools=specs,
                temperature=agent.settings.get("temperature"),
                max_output_tokens=agent.settings.get("max_output_tokens"),
            )
            await _check_cancel(options)

            async def admit(target: Target, request: ProviderRequest = request) -> _Admission:
                # The rate limits of the provider/model actually called (fallbacks too).
                t_limits = (
                    limits
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
                if target != primary and estimate + reserve > t_limits.context_window:
                    raise SkipTarget("context_window")
                limiter = self._limiter(target.provider, target.model, t_limits, agent, thread)
                reservation = await limiter.wait_if_needed(estimate + reserve)
                return _Admission(limiter, reservation, t_limits)

            dispatched: Dispatched[_Admission] | None = None
            async for event in self.dispatcher.dispatch(
                route,
                request,
                call=lambda p, r: self._call(p, r, options.stream),
                admit=admit,
                release=_release,
                retry=agent.settings.get("retry"),
            ):
                if isinstance(event, Dispatched):
                    dispatched = event
                else:
                    yield event
            assert dispatched is not None
            response, answered = dispatched.response, dispatched.target
            admission = dispatched.admission
            reservation = admission.reservation
            waited += reservation.waited
            routes.append(dispatched.record)
            if not response.usage.total_tokens:
                response.usage = self._estimate_usage(
                    answered.provider, answered.model, request, response
                )
            # Correcting the rate-limit window overlaps with the rest of the turn; the
            # turn waits for it before saving (see _settle).
            _in_background(
                admission.limiter.record_request(reservation, response.usage.total_tokens),
                recording,
            )
            call_cost = admission.limits.cost(
                response.usage.input_tokens, response.usage.output_tokens
            )
            total = total + response.usage
            cost += call_cost
            final = response
            metadata: dict[str, Any] = {
                "finish_reason": response.finish_reason,
                "iteration": iteration,
                "rate_limit": {
                    "admitted_at": reservation.admitted_at,
                    "waited": round(reservation.waited, 4),
                },
            }
            if dispatched.record.eventful or route.decision:
                metadata["routing"] = _routing_metadata(dispatched.record, route)
            assistant = Message(
                role="assistant",
                content=response.content or None,
                tool_calls=_with_ids(response.tool_calls),
                provider=answered.provider,
                model=response.model or answered.model,
                input_tokens=response.usage.input_tokens,
                output_tokens=response.usage.output_tokens,
                cost=call_cost,
                metadata=metadata,
            )
            turn.append(assistant)
            if not assistant.tool_calls:
                finish = _finish(response.finish_reason)
                break
            for call in assistant.tool_calls:
                yield ToolCallEvent(call)
            if iteration == max_iterations:
                finish = "max_tool_iterations"
                outcomes = [
                    ToolOutcome(
                        f"Not executed: this run reached its limit of {max_iterations} tool "
                        "iterations.",
                        is_error=True,
                    )
                    for _ in assistant.tool_calls
                ]
            else:
                outcomes = await self._execute(assistant.tool_calls, tools, context, tool_timeout)
            for call, outcome in zip(assistant.tool_calls, outcomes, strict=True):
                turn.append(
                    Message(
                        role="tool",
                        content=outcome.content,
                        tool_call_id=call.id,
                        tool_name=call.name,
                        metadata={"is_error": True} if outcome.is_error else {},
                    )
                )
                records.append(ToolCallRecord(call, outcome.content, outcome.is_error))
                yield ToolResultEvent(call, outcome.content, outcome.is_error)

        await asyncio.gather(*recording)
        await _check_cancel(options)
        for message in turn:
            count(message)  # fills token_count, persisted with the row
        saved = await self._save(
            scope, conn, thread, turn, run_id, options.idempotency_key, state_update
        )
        assert final is not None
        response_obj = AgentResponse(
            content=final.content if finish != "max_tool_iterations" else (final.content or ""),
            thread_id=thread.id,
            run_id=run_id,
            finish_reason=finish,
            tool_calls=records,
            usage=total,
            cost=cost,
            provider=routes[-1].provider,
            model=final.model or routes[-1].model,
            message_ids=[m.id for m in saved if m.id],
            rate_limit_wait=waited,
            routing=_run_routing(routes, route),
        )
        log.info(
            "run finished",
            extra={
                "thread_id": str(thread.id),
                "run_id": str(run_id),
                "provider": response_obj.provider,
                "model": response_obj.model,
                "finish_reason": finish,
                "routing_factors": response_obj.routing.get("factors"),
                "input_tokens": total.input_tokens,
                "output_tokens": total.output_tokens,
                "duration_ms": round((time.perf_counter() - started) * 1000, 1),
            },
        )
        yield DoneEvent(response_obj)

    def _plan(
        self,
        agent: AgentRecord,
        text: str,
        loaded: list[Message],
        tools_required: bool,
        options: RunOptions,
    ) -> Plan:
        """Targets of this run: primary + fallbacks, or the auto-routing decision."""
        registry = get_registry()

        def routing_input() -> RoutingInput:
            # Only called for auto-routed agents: a rough count is enough for a budget rule.
            p, m = agent.provider, agent.model
            tokens = self.counter.count_text(text, provider=p, model=m) + sum(
                msg.token_count or self.counter.count_text(msg.text, provider=p, model=m)
                for msg in loaded
            )
            overrides = options.metadata.get("routing")
            force = overrides.get("force_provider") if isinstance(overrides, dict) else None
            return RoutingInput(
                text=text,
                history=[msg.text for msg in loaded],
                tools_required=tools_required,
                estimated_tokens=tokens,
                force_provider=force,
            )

        return plan_run(
            agent.provider,
            agent.model,
            agent.fallbacks,
            agent.settings,
            routing_input,
            native_tools=lambda t: self.providers.get(t.provider).native_tools_for(t.model),
            is_local=registry.is_local,
        )

    async def _call(
        self, provider: Provider, request: ProviderRequest, stream: bool
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

    async def _execute(
        self,
        calls: list[ToolCall],
        tools: list[Tool],
        context: ToolContext,
        time_limit: float,
    ) -> list[ToolOutcome]:
        by_name = {t.name: t for t in tools}

        async def one(call: ToolCall) -> ToolOutcome:
            tool = by_name.get(call.name)
            if tool is None:
                known = ", ".join(by_name) or "none"
                return ToolOutcome(
                    f"Error: unknown tool {call.name!r} (available: {known})", is_error=True
                )
            if "_raw" in call.arguments and len(call.arguments) == 1:
                return ToolOutcome(
                    f"Error: arguments for {call.name} were not valid JSON: "
                    f"{call.arguments['_raw']!r}",
                    is_error=True,
                )
            return await tool.invoke(call.arguments, context, time_limit=time_limit)

        return list(await asyncio.gather(*(one(c) for c in calls)))

    async def _save(
        self,
        scope: Scope,
        conn: AsyncConnection,
        thread: ThreadRecord,
        turn: list[Message],
        run_id: UUID,
        idempotency_key: str | None,
        state: dict[str, Any] | None,
    ) -> list[Message]:
        with translate_errors("save turn"):
            limits = await self.store._limits(conn, thread.tenant_id)
            # One transaction: the whole turn, its counters and the memory state.
            saved = await message_rows.append(
                conn,
                scope,
                thread.id,
                turn,
                limits,
                run_id=run_id,
                idempotency_key=idempotency_key,
                memory_state=state,
            )
        return saved

    async def _replay(
        self, conn: AsyncConnection, thread_id: UUID, key: str
    ) -> AgentResponse | None:
        with translate_errors("idempotency check"):
            run_id = await thread_rows.find_turn(conn, thread_id, key)
            if run_id is None:
                return None
            saved = await message_rows.by_run(conn, thread_id, run_id)
        return response_from_saved(thread_id, run_id, saved)

    async def _user_facts(
        self, conn: AsyncConnection, agent: AgentRecord, thread: ThreadRecord
    ) -> str:
        if not agent.settings.get("use_user_memory") or not thread.user_id:
            return ""
        shared = await memory_rows.list_values(conn, thread.tenant_id, thread.user_id, None)
        own = await memory_rows.list_values(conn, thread.tenant_id, thread.user_id, agent.id)
        facts = {**shared, **own}
        return "\n".join(f"- {k}: {v}" for k, v in facts.items())

    def _limiter(
        self,
        provider: str,
        model: str,
        limits: ModelLimits,
        agent: AgentRecord,
        thread: ThreadRecord,
    ) -> RedisRateLimiter:
        """The limiter of one call: the model's window, plus the user's when the agent sets one.

        Model limiters are cached per process. A per-user limiter is built per call (cheap:
        no I/O) so it always uses the agent's current ``user_rpm``/``user_tpm`` and the
        cache does not grow with the number of users. User windows are per tenant.
        """
        user_rpm = agent.settings.get("user_rpm")
        user_tpm = agent.settings.get("user_tpm")
        if thread.user_id and (user_rpm or user_tpm):
            user = ("user", f"{thread.tenant_id}:{thread.user_id}", RateLimits(user_rpm, user_tpm))
            return self._new_limiter(provider, model, limits, scopes=[user])
        limiter = self._limiters.get((provider, model))
        if limiter is None:
            limiter = self._limiters[(provider, model)] = self._new_limiter(provider, model, limits)
        return limiter

    def _model_limits(self, provider: str, model: str, limits: ModelLimits) -> RateLimits:
        """The registry's RPM/TPM for the model, unless overridden for this runner."""
        return self.rate_limit_overrides.get(
            (provider, model), RateLimits(rpm=limits.rpm, tpm=limits.tpm)
        )

    def _new_limiter(
        self,
        provider: str,
        model: str,
        limits: ModelLimits,
        scopes: Sequence[tuple[str, str, RateLimits]] = (),
    ) -> RedisRateLimiter:
        return RedisRateLimiter(
            self.store.redis,
            self.store.keys,
            provider=provider,
            model=model,
            limits=self._model_limits(provider, model, limits),
            scopes=scopes,
            fail_open=self.store.settings.rate_limit_fail_open,
            window_seconds=self.store.settings.rate_limit_window,
        )

    def _estimate_usage(
        self, provider: str, model: str, request: ProviderRequest, response: ProviderResponse
    ) -> Usage:
        """Our own count when the vendor reported no usage (marked as an estimate)."""
        answer = Message(role="assistant", content=response.content, tool_calls=response.tool_calls)
        return Usage(
            self.counter.count_request(
                request.system_prompt,
                request.messages,
                request.tools,
                provider=provider,
                model=model,
            ),
            self.counter.count_message(answer, provider=provider, model=model),
            estimated=True,
        )

    async def rate_window(self, provider: str, model: str) -> WindowUsage:
        """Current use of the (provider, model) rate-limit window, for display."""
        limits = get_registry().get(provider, model)
        return await self._new_limiter(provider, model, limits).usage()


@dataclass(slots=True)
class _Services:
    """What memory strategies may ask of the run (reads on the run's own connection)."""

    runner: AgentRunner
    conn: AsyncConnection
    thread: ThreadRecord
    agent: AgentRecord

    async def load_range(self, after_seq: int, before_seq: int, limit: int) -> list[Message]:
        with translate_errors("load history range"):
            rows = await message_rows.between(
                self.conn, self.thread.id, after_seq, before_seq, limit
            )
        return rows

    async def summarize(self, previous: str | None, messages: list[Message]) -> str:
        from ai_agents.memory.summarizer import summarize

        return await summarize(self.runner, self.agent, previous, messages)

    async def similar(self, text: str, before_seq: int, k: int) -> list[Message]:
        from ai_agents.memory.recall import similar_messages

        return await similar_messages(self.runner, self.conn, self.thread, text, before_seq, k)


def response_from_saved(thread_id: UUID, run_id: UUID, saved: list[Message]) -> AgentResponse:
    """Rebuild the response of a turn that is already in the thread (idempotent replay)."""
    results = {m.tool_call_id: m for m in saved if m.role == "tool"}
    records = []
    total = Usage()
    cost = 0.0
    for m in saved:
        if m.role == "assistant":
            total = total + Usage(m.input_tokens or 0, m.output_tokens or 0)
            cost += m.cost or 0.0
            for call in m.tool_calls:
                result = results.get(call.id)
                if result is not None:
                    records.append(ToolCallRecord(call, result.text, result.is_error))
    last = next((m for m in reversed(saved) if m.role == "assistant"), None)
    finish: RunFinish = "stop"
    if last is not None and last.tool_calls:
        finish = "max_tool_iterations"
    elif last is not None:
        finish = _finish(str(last.metadata.get("finish_reason", "stop")))
    return AgentResponse(
        content=(last.text if last else ""),
        thread_id=thread_id,
        run_id=run_id,
        finish_reason=finish,
        tool_calls=records,
        usage=total,
        cost=cost,
        provider=(last.provider or "") if last else "",
        model=(last.model or "") if last else "",
        message_ids=[m.id for m in saved if m.id],
        replayed=True,
    )


@dataclass(slots=True)
class _Admission:
    """A rate-limit reservation on the provider/model a call actually went to."""

    limiter: RedisRateLimiter
    reservation: Reservation
    limits: ModelLimits


async def _release(admission: _Admission) -> None:
    await admission.limiter.release(admission.reservation)


def _routing_metadata(record: RoutingRecord, plan: Plan) -> dict[str, Any]:
    """What the saved assistant message keeps about how its call was routed."""
    out = record.to_json()
    if plan.decision:
        out["decision"] = plan.decision
    return out


def _run_routing(routes: list[RoutingRecord], plan: Plan) -> dict[str, Any]:
    """``AgentResponse.routing``: who answered, every skip and retry, and the decision."""
    last = routes[-1]
    skipped: list[dict[str, Any]] = []
    for record in routes:
        for skip in record.skipped:
            entry = skip.to_json()
            if entry not in skipped:
                skipped.append(entry)
    factors = list(dict.fromkeys(f for record in routes for f in record.factors))
    return {
        "provider": last.provider,
        "model": last.model,
        "attempts": sum(r.attempts for r in routes),
        "skipped": skipped,
        "factors": factors,
        "decision": plan.decision,
        "calls": [r.to_json() for r in routes],
    }


def _finish(reason: str) -> RunFinish:
    if reason in ("length", "content_filter"):
        return reason  # type: ignore[return-value]
    return "stop"


def _with_ids(calls: list[ToolCall]) -> list[ToolCall]:
    """Every saved tool call has a unique, non-empty id (some vendors omit or repeat them)."""
    seen: set[str] = set()
    out = []
    for call in calls:
        ident = call.id
        if not ident or ident in seen:
            ident = f"call_{uuid.uuid4().hex[:24]}"
        seen.add(ident)
        out.append(ToolCall(ident, call.name, call.arguments))
    return out


def _validate_input(text: str) -> None:
    if not isinstance(text, str) or not text.strip():
        raise ValidationError("run input must be a non-empty string", details={"field": "input"})
    if len(text) > MAX_INPUT_CHARS:
        raise ValidationError(
            f"run input is too long ({len(text)} characters; the limit is {MAX_INPUT_CHARS})",
            details={"field": "input"},
        )


async def _check_cancel(options: RunOptions) -> None:
    if options.should_cancel is not None and await options.should_cancel():
        raise RunCancelled("the run was cancelled; nothing of this turn was saved")


def _in_background(coro: Awaitable[None], pending: set[asyncio.Task[None]]) -> None:
    """Run *coro* alongside the turn; a failure is logged, never left unretrieved."""
    task: asyncio.Task[None] = asyncio.ensure_future(coro)
    pending.add(task)

    def settled(done: asyncio.Task[None]) -> None:
        pending.discard(done)
        if not done.cancelled() and done.exception() is not None:
            log.warning("rate-limit usage correction failed: %s", done.exception())

    task.add_done_callback(settled)
