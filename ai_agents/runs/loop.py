"""The turn loop: prepare, call the model, run tools, persist (design section 12).

:class:`TurnLoop` runs one claimed run (a :class:`RunTicket`) to its end and yields the
run's events. It talks to the outside through two small ports, so it runs the same on
PostgreSQL + Redis (:mod:`ai_agents.runs.pg`, :mod:`ai_agents.runs.gateway`) and on the
in-memory fakes of the unit tests:

- :class:`TurnStorage`: history reads, step writes, the pause for client tool outputs,
  and the final save of the turn (one transaction that also completes the run);
- :class:`ModelCaller`: one model call with rate limits, retries and fallbacks.

Phases, in order, for every model call of the run:

1. **prepare** (once): memory strategy, tools (server and client), routing plan, system
   prompt, token budget, and the run's overrides applied to all of them;
2. **call**: the memory strategy fits the history, the model answers (streamed deltas
   pass through); a ``response_format`` answer is checked and retried once;
3. **tools**: server tools run concurrently; client tools pause the run in
   ``requires_action`` (resumed by :meth:`TurnLoop.execute` with ``resume=``);
4. **persist**: the whole turn, its counters, the run's status and its last steps, in
   one transaction. A failure at any earlier step saves nothing of the turn.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol
from uuid import UUID

from ai_agents.agent_settings import AgentSettings, Ceilings, read_settings
from ai_agents.errors import (
    InvalidStructuredOutput,
    RunCancelled,
    RunStateError,
    ValidationError,
)
from ai_agents.memory import MemoryInput, get_strategy
from ai_agents.memory.base import LoadPlan, MemoryServices, MemoryStrategy
from ai_agents.messages import Message, ToolCall
from ai_agents.nul import NUL, nul_path, without_nul
from ai_agents.observability import genai
from ai_agents.providers.base import (
    Provider,
    ProviderRequest,
    ProviderResponse,
    ResponseFormat,
    ToolSpec,
)
from ai_agents.providers.registry import ModelLimits, get_registry
from ai_agents.providers.routing import Plan, RoutingInput, plan_run
from ai_agents.records import AgentRecord, ThreadRecord
from ai_agents.response import (
    AgentResponse,
    DoneEvent,
    RunEvent,
    TextDeltaEvent,
    ToolCallEvent,
    ToolCallRecord,
    ToolResultEvent,
)
from ai_agents.runs.gateway import ESTIMATED_OUTPUT_CAP, ModelAnswer
from ai_agents.runs.overrides import RunOverrides, client_tool_specs
from ai_agents.runs.records import RunStep, ToolOutput
from ai_agents.runs.structured import answer_problem, correction
from ai_agents.runs.turn import (
    Completion,
    RunTicket,
    StepWrite,
    TurnState,
    assistant_message_id,
    finish_of,
    new_message_id,
    opening_turn,
    rebuild,
    tool_message,
    with_ids,
)
from ai_agents.tokens import TokenCounter
from ai_agents.tools.decorator import Tool, ToolContext, ToolOutcome
from ai_agents.tools.registry import ToolRegistry
from ai_agents.tools.sources import ToolSource, gather_tools

log = logging.getLogger("ai_agents.run")

CancelCheck = Callable[[], Awaitable[bool]]


# --- ports ------------------------------------------------------------------------------


class TurnStorage(Protocol):
    """What the loop needs of the database. Each call takes a connection and gives it back."""

    async def load_history(
        self, thread: ThreadRecord, plan: LoadPlan
    ) -> tuple[list[Message], list[Message]]:
        """(the last ``plan.last`` messages, the first ``plan.first``), oldest first."""

    async def user_facts(self, agent: AgentRecord, thread: ThreadRecord) -> str: ...

    def memory_services(self, agent: AgentRecord, thread: ThreadRecord) -> MemoryServices: ...

    async def write_steps(self, ticket: RunTicket, steps: Sequence[StepWrite]) -> None:
        """Insert or update steps; raises when the run is no longer this process's."""

    async def require_action(
        self,
        ticket: RunTicket,
        steps: Sequence[StepWrite],
        action: dict[str, Any],
        state: TurnState,
    ) -> None:
        """Pause the run for client tool outputs (steps, usage so far, required action)."""

    async def save_turn(
        self,
        ticket: RunTicket,
        turn: list[Message],
        steps: Sequence[StepWrite],
        completion: Completion,
    ) -> list[Message]:
        """Save the turn and complete the run in one transaction; the saved messages."""


class ModelCaller(Protocol):
    def call(
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
    ) -> AsyncIterator[TextDeltaEvent | ModelAnswer]: ...

    def tokens_per_minute(self, provider: str, model: str, limits: ModelLimits) -> int | None: ...


class ProviderLookup(Protocol):
    def get(self, name: str) -> Provider: ...


@dataclass(slots=True, kw_only=True)
class LoopDefaults:
    """Deployment defaults for agents that set none, and the ceilings over every agent."""

    max_tool_iterations: int = 10
    tool_timeout: float = 60.0
    ceilings: Ceilings = field(default_factory=Ceilings)


@dataclass(slots=True)
class Progress:
    """What a run has done so far, for its driver: the turn's state once the run has one.

    A run that fails after model calls (a tool loop that overflows the context, a save
    refused) has spent tokens no saved turn accounts for; its driver records
    ``state.unrecorded`` on the run row when it ends the run.
    """

    state: TurnState | None = None


@dataclass(slots=True, kw_only=True)
class Resume:
    """A run paused in ``requires_action``, with the client's outputs."""

    steps: list[RunStep]
    outputs: dict[str, ToolOutput]


# --- phase 1: prepare -------------------------------------------------------------------


@dataclass(slots=True, kw_only=True)
class TurnPlan:
    strategy: MemoryStrategy
    memory_config: dict[str, Any]
    history: list[Message]
    first: list[Message]
    server_tools: dict[str, Tool]
    client_tools: set[str]
    specs: list[ToolSpec]
    route: Plan
    provider: str
    model: str
    limits: ModelLimits
    system_prompt: str
    #: The agent's settings, validated (``read_settings``).
    settings: AgentSettings
    max_iterations: int
    tool_timeout: float
    #: Output tokens reserved per call (the budget, the rate-limit estimate).
    max_output: int
    #: Output cap sent to the vendor (``None``: the vendor's default, within the ceiling).
    request_max_output: int | None
    budget: int
    response_format: ResponseFormat | None
    services: MemoryServices
    count: Callable[[Message], int]


class TurnLoop:
    def __init__(
        self,
        *,
        storage: TurnStorage,
        models: ModelCaller,
        tools: ToolRegistry,
        providers: ProviderLookup,
        counter: TokenCounter,
        defaults: LoopDefaults,
        tool_store: Any = None,
        tool_sources: list[ToolSource] | None = None,
    ) -> None:
        self.storage = storage
        self.models = models
        self.tools = tools
        self.providers = providers
        self.counter = counter
        self.defaults = defaults
        #: Given to tools as ``ToolContext.store`` (the store that runs them).
        self.tool_store = tool_store
        #: Run-time tools besides the registry's (MCP servers, memory tools).
        self.tool_sources: list[ToolSource] = tool_sources if tool_sources is not None else []

    async def execute(
        self,
        ticket: RunTicket,
        *,
        stream: bool = False,
        resume: Resume | None = None,
        should_cancel: CancelCheck | None = None,
        settling: Callable[[], None] | None = None,
        progress: Progress | None = None,
    ) -> AsyncGenerator[RunEvent, None]:
        """Run *ticket* to its end (saved, or paused for tool outputs); yield its events.

        *settling* is called right before the run writes its end (the save, or the pause).
        *progress* is given the turn's state as soon as it exists.
        """
        started = time.perf_counter()
        plan = await self.prepare(ticket)
        if resume is None:
            state = TurnState(turn=opening_turn(ticket))
        else:
            state = rebuild(ticket, resume.steps)
        if progress is not None:
            progress.state = state
        if resume is not None:
            for event in self._apply_outputs(state, resume):
                yield event
        context = ToolContext(
            thread_id=ticket.thread.id,
            agent_id=ticket.agent.id,
            tenant_id=ticket.thread.tenant_id,
            user_id=ticket.thread.user_id,
            run_id=ticket.id,
            store=self.tool_store,
        )
        while not self._budget_spent(ticket, state):
            await _check_cancel(should_cancel)
            # --- phase 2: call
            answer: ModelAnswer | None = None
            async for item in self._call(ticket, plan, state, stream):
                if isinstance(item, ModelAnswer):
                    answer = item
                else:
                    yield item
            assert answer is not None
            assistant = state.turn[-1]
            cut = self._completion_cut(ticket, state, answer.response)
            if not assistant.tool_calls:
                state.finish = (
                    "max_completion_tokens" if cut else finish_of(answer.response.finish_reason)
                )
                if cut:
                    state.incomplete = {"reason": "max_completion_tokens"}
                break
            for call in assistant.tool_calls:
                yield ToolCallEvent(call)
            if state.iteration >= plan.max_iterations or cut:
                reason = "max_completion_tokens" if cut else "max_tool_iterations"
                for record in self._not_executed(state, assistant, reason, plan.max_iterations):
                    yield ToolResultEvent(record.call, record.result, record.is_error)
                state.finish = reason  # type: ignore[assignment]
                if cut:
                    state.incomplete = {"reason": reason}
                break
            # --- phase 3: tools
            results, pending = await self._run_tools(state, plan, assistant, context)
            for record in results:
                yield ToolResultEvent(record.call, record.result, record.is_error)
            if pending:
                if settling is not None:
                    settling()
                await self.storage.require_action(
                    ticket, state.unwritten(), required_action(pending), state
                )
                state.written()
                state.recorded()
                yield DoneEvent(self._response(ticket, state, plan, [], paused=pending))
                return
            await self.storage.write_steps(ticket, state.unwritten())
            state.written()
            state.iteration += 1
        # --- phase 4: persist
        await _check_cancel(should_cancel)
        if settling is not None:
            settling()
        if ticket.job_success is None:
            saved = await self._persist(ticket, plan, state)
            response = self._response(ticket, state, plan, saved)
        else:
            # The job's result is saved with the turn: the response is made before the
            # save (every message keeps the id it is saved with, so it is the same).
            for message in state.turn:
                message.id = message.id or uuid.uuid4()
            response = self._response(ticket, state, plan, state.turn)
            ticket.job_success.result = response.to_json()
            await self._persist(ticket, plan, state)
        if log.isEnabledFor(logging.INFO):
            self._log_finished(ticket, response, state, started)
        yield DoneEvent(response)

    def _log_finished(
        self, ticket: RunTicket, response: AgentResponse, state: TurnState, started: float
    ) -> None:
        log.info(
            "run finished",
            extra={
                "thread_id": str(ticket.thread.id),
                "run_id": str(ticket.id),
                "provider": response.provider,
                "model": response.model,
                "finish_reason": response.finish_reason,
                "status": response.status,
                "routing_factors": response.routing.get("factors"),
                "input_tokens": state.total.input_tokens,
                "output_tokens": state.total.output_tokens,
                "duration_ms": round((time.perf_counter() - started) * 1000, 1),
            },
        )

    # --- phase 1 ------------------------------------------------------------------------

    @staticmethod
    def memory_of(agent: AgentRecord, ov: RunOverrides) -> tuple[MemoryStrategy, dict[str, Any]]:
        """The run's memory strategy and its configuration (``truncation`` overrides)."""
        if ov.truncation is not None and ov.truncation.type == "last_messages":
            return get_strategy("last_messages"), {"max_messages": ov.truncation.last_messages}
        return get_strategy(agent.memory_strategy), agent.memory_config

    async def prepare(self, ticket: RunTicket) -> TurnPlan:
        agent, thread, ov = ticket.agent, ticket.thread, ticket.overrides
        # First: a value saved before settings were validated stops the run here, with
        # its field, before anything else is read or any model is called.
        settings = read_settings(agent.settings)
        strategy, memory_config = self.memory_of(agent, ov)
        load = strategy.plan(memory_config)
        preloaded = ticket.preloaded
        if preloaded is not None and preloaded.plan == load:
            history, first = preloaded.last, preloaded.first
        else:
            history, first = await self.storage.load_history(thread, load)
        facts = await self.storage.user_facts(agent, thread)

        names = list(ov.tools) if ov.tools is not None else agent.definition.tools
        server = self.tools.resolve(names)
        taken = {t.name for t in server}
        for extra in await gather_tools(self.tool_sources, agent, thread):
            if extra.name not in taken:  # a registered tool keeps its name
                server.append(extra)
                taken.add(extra.name)
        client = list(ov.client_tools) if ov.client_tools is not None else agent.client_tools
        specs = [t.spec for t in server] + client_tool_specs(client)
        route = self._route(ticket, [*first, *history], bool(specs))
        primary = route.targets[0]
        provider, model = primary.provider, primary.model
        limits = get_registry().get(provider, model)
        if not limits.supports_vision and any(m.images for m in (*first, *history)):
            raise ValidationError(
                f"the model {provider}/{model} does not take images, and this thread's "
                "history holds one; run it on a model that does (supports_vision)",
                details={"field": "model"},
            )

        system_prompt = ov.instructions if ov.instructions is not None else agent.system_prompt()
        if facts:
            system_prompt += "\n\n# Known facts about this user\n" + facts
        if ov.additional_instructions:
            system_prompt += "\n\n" + ov.additional_instructions

        def count(message: Message) -> int:
            return self.counter.count_message(message, provider=provider, model=model)

        fixed = self.counter.count_request(system_prompt, (), specs, provider=provider, model=model)
        max_output, request_max_output = self._output_cap(settings, limits)
        budget = limits.context_window - max_output - fixed
        tpm = self.models.tokens_per_minute(provider, model, limits)
        if tpm is not None:
            # A request the per-minute token limit can never admit would fail at once:
            # trim the history to what one window can hold instead.
            budget = min(budget, tpm - min(max_output, ESTIMATED_OUTPUT_CAP) - fixed)
        if ov.max_prompt_tokens is not None:
            budget = min(budget, ov.max_prompt_tokens - fixed)
        return TurnPlan(
            strategy=strategy,
            memory_config=memory_config,
            history=history,
            first=first,
            server_tools={t.name: t for t in server},
            client_tools={t["name"] for t in client},
            specs=specs,
            route=route,
            provider=provider,
            model=model,
            limits=limits,
            system_prompt=system_prompt,
            settings=settings,
            max_iterations=min(
                settings.max_tool_iterations or self.defaults.max_tool_iterations,
                self.defaults.ceilings.max_tool_iterations,
            ),
            tool_timeout=settings.tool_timeout or self.defaults.tool_timeout,
            max_output=max_output,
            request_max_output=request_max_output,
            budget=budget,
            response_format=ov.response_format,
            services=self.storage.memory_services(agent, thread),
            count=count,
        )

    def _output_cap(self, settings: AgentSettings, limits: ModelLimits) -> tuple[int, int | None]:
        """(tokens reserved per call, the cap sent to the vendor). Never above the model's
        ``max_output`` nor the deployment's ceiling (an agent saved before it was lowered,
        or run on another model by an override or its routing, gets the lower one)."""
        cap = min(limits.max_output, self.defaults.ceilings.max_output_tokens)
        if settings.max_output_tokens is not None:
            value = min(settings.max_output_tokens, cap)
            return value, value
        # Unset: the vendor's default, unless the model allows more than the ceiling.
        return cap, cap if limits.max_output > cap else None

    def _route(self, ticket: RunTicket, loaded: list[Message], tools_required: bool) -> Plan:
        """Targets of this run: primary + fallbacks, or the auto-routing decision."""
        agent, ov = ticket.agent, ticket.overrides
        provider = ov.provider or agent.provider
        model = ov.model or agent.model
        registry = get_registry()

        def routing_input() -> RoutingInput:
            # Only called for auto-routed agents: a rough count is enough for a budget rule.
            p, m = agent.provider, agent.model
            tokens = self.counter.count_text(ticket.input, provider=p, model=m) + sum(
                msg.token_count or self.counter.count_text(msg.text, provider=p, model=m)
                for msg in loaded
            )
            routing = ticket.metadata.get("routing")
            force = routing.get("force_provider") if isinstance(routing, dict) else None
            return RoutingInput(
                text=ticket.input,
                history=[msg.text for msg in loaded],
                tools_required=tools_required,
                estimated_tokens=tokens,
                force_provider=force,
            )

        return plan_run(
            provider,
            model,
            agent.fallbacks,
            agent.settings,
            routing_input,
            native_tools=lambda t: self.providers.get(t.provider).native_tools_for(t.model),
            is_local=registry.is_local,
        )

    # --- phase 2 ------------------------------------------------------------------------

    async def _call(
        self, ticket: RunTicket, plan: TurnPlan, state: TurnState, stream: bool
    ) -> AsyncIterator[TextDeltaEvent | ModelAnswer]:
        """One model call (two when a structured answer is rejected once)."""
        agent, ov = ticket.agent, ticket.overrides
        prepared = await plan.strategy.prepare(
            MemoryInput(
                thread=ticket.thread,
                config=plan.memory_config,
                history=plan.history,
                first=plan.first,
                current=state.turn,
                budget=plan.budget,
                count=plan.count,
            ),
            plan.services,
        )
        if prepared.state is not None:
            state.memory_state = prepared.state
            ticket.thread.memory_state = prepared.state
        prompt = plan.system_prompt
        if prepared.system_addendum:
            prompt += "\n\n" + prepared.system_addendum
        choice = ov.tool_choice or "auto"
        if state.iteration > 0 and choice not in ("auto", "none"):
            choice = "auto"  # a forced tool call applies to the run's first model call
        max_output = plan.request_max_output
        if ov.max_completion_tokens is not None:
            remaining = max(1, ov.max_completion_tokens - state.total.output_tokens)
            max_output = min(max_output or plan.max_output, remaining)
        request = ProviderRequest(
            model=plan.model,
            system_prompt=prompt,
            messages=[*prepared.history, *state.turn],
            tools=plan.specs,
            temperature=(
                ov.temperature if ov.temperature is not None else plan.settings.temperature
            ),
            top_p=ov.top_p,
            max_output_tokens=max_output,
            tool_choice=choice,
            parallel_tool_calls=ov.parallel_tool_calls,
            response_format=plan.response_format,
        )
        rejected: tuple[ModelAnswer, str] | None = None
        for attempt in (1, 2):
            answer: ModelAnswer | None = None
            async for item in self.models.call(
                plan.route,
                request,
                specs=plan.specs,
                agent=agent,
                thread=ticket.thread,
                max_output=plan.max_output,
                stream=stream,
                retry=plan.settings.retry,
            ):
                if isinstance(item, ModelAnswer):
                    answer = item
                elif NUL in item.text:
                    yield TextDeltaEvent(without_nul(item.text))
                else:
                    yield item
            assert answer is not None
            # The one place model output is made storable: before it is checked, saved,
            # written to a step, or given to a tool as arguments.
            response = _storable(answer.response)
            problem = self._format_problem(plan.response_format, response)
            if problem is None:
                break
            if attempt == 2:
                state.charge(response.usage, answer.cost)  # spent: the failed run records it
                await _settle([answer, *(r[0] for r in [rejected] if r)])
                raise InvalidStructuredOutput(
                    f"the model's answer did not match the run's response_format twice: {problem}",
                    details={"problem": problem, "answer": response.content[:2000]},
                )
            rejected = (answer, problem)
            state.charge(response.usage, answer.cost)
            state.waited += answer.waited
            request = ProviderRequest(
                **{
                    **_fields(request),
                    "messages": [
                        *request.messages,
                        Message(role="assistant", content=response.content),
                        correction(plan.response_format, problem),  # type: ignore[arg-type]
                    ],
                }
            )
        assert answer is not None
        state.charge(response.usage, answer.cost)
        state.waited += answer.waited
        state.routes.append(answer.record)
        state.final = response
        state.provider, state.model = answer.provider, answer.model
        metadata: dict[str, Any] = {
            "finish_reason": response.finish_reason,
            "iteration": state.iteration,
            "rate_limit": {"admitted_at": answer.admitted_at, "waited": round(answer.waited, 4)},
        }
        if answer.record.eventful or plan.route.decision:
            metadata["routing"] = _routing_metadata(answer, plan.route)
        input_tokens, output_tokens, cost = (
            response.usage.input_tokens,
            response.usage.output_tokens,
            answer.cost,
        )
        if rejected is not None:
            first, problem = rejected
            metadata["structured_output_retry"] = problem
            input_tokens += first.response.usage.input_tokens
            output_tokens += first.response.usage.output_tokens
            cost += first.cost
        assistant = Message(
            id=assistant_message_id(ticket.id, state.iteration),
            role="assistant",
            content=response.content or None,
            tool_calls=with_ids(response.tool_calls),
            provider=answer.provider,
            model=answer.model,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost=cost,
            metadata=metadata,
        )
        state.turn.append(assistant)
        state.model_step(assistant, response, state.iteration)
        state.pending_recordings.extend(
            a.recorded for a in [answer, *(r[0] for r in [rejected] if r)] if a.recorded
        )
        yield answer

    def _format_problem(self, fmt: ResponseFormat | None, response: ProviderResponse) -> str | None:
        if fmt is None or not fmt.is_json or response.tool_calls:
            return None
        return answer_problem(fmt, response.content)

    # --- phase 3 ------------------------------------------------------------------------

    async def _run_tools(
        self, state: TurnState, plan: TurnPlan, assistant: Message, context: ToolContext
    ) -> tuple[list[ToolCallRecord], list[ToolCall]]:
        """Run the server tools among *assistant*'s calls; return their results and the
        client calls left for the caller (the run pauses for those)."""
        calls = assistant.tool_calls
        client = [
            c for c in calls if c.name in plan.client_tools and c.name not in plan.server_tools
        ]
        server = [c for c in calls if c not in client]
        outcomes = dict(
            zip((c.id for c in server), await self._execute(server, plan, context), strict=True)
        )
        entries, records = [], []
        for call in calls:
            outcome = outcomes.get(call.id)
            message_id = new_message_id()
            entries.append(
                {
                    **call.to_json(),
                    "client": outcome is None,
                    "output": outcome.content if outcome else None,
                    "is_error": outcome.is_error if outcome else False,
                    "message_id": str(message_id),
                }
            )
            if outcome is None:
                continue
            records.append(ToolCallRecord(call, outcome.content, outcome.is_error))
            if not client:  # a paused step's results join the turn when it resumes
                state.turn.append(tool_message(call, outcome.content, outcome.is_error, message_id))
        state.records.extend(records)
        state.tool_step(entries, done=not client)
        return records, client

    async def _execute(
        self, calls: list[ToolCall], plan: TurnPlan, context: ToolContext
    ) -> list[ToolOutcome]:
        async def one(call: ToolCall) -> ToolOutcome:
            tool = plan.server_tools.get(call.name)
            if tool is None:
                known = ", ".join([*plan.server_tools, *sorted(plan.client_tools)]) or "none"
                return ToolOutcome(
                    f"Error: unknown tool {call.name!r} (available: {known})", is_error=True
                )
            if "_raw" in call.arguments and len(call.arguments) == 1:
                return ToolOutcome(
                    f"Error: arguments for {call.name} were not valid JSON: "
                    f"{call.arguments['_raw']!r}",
                    is_error=True,
                )
            with genai.tool_call(call.name, call.id, tool.description) as span:
                outcome = await tool.invoke(call.arguments, context, time_limit=plan.tool_timeout)
                if outcome.is_error:
                    genai.tool_failed(span, outcome.content)
            if NUL in outcome.content:  # a tool's text is saved as the tool message
                outcome = ToolOutcome(without_nul(outcome.content), is_error=outcome.is_error)
            return outcome

        return list(await asyncio.gather(*(one(c) for c in calls)))

    def _apply_outputs(self, state: TurnState, resume: Resume) -> list[RunEvent]:
        """Complete the paused tool step with the client's outputs: every result joins the
        turn, in the order of the model's calls."""
        step = state.steps[-1]
        if step.type != "tool_calls" or step.status != "in_progress":
            raise RunStateError("the run has no tool calls waiting for outputs")
        events: list[RunEvent] = []
        for entry in step.details["tool_calls"]:
            call = ToolCall.from_json(entry)
            if entry.get("output") is None:
                output = resume.outputs[call.id]
                entry["output"], entry["is_error"] = output.output, output.is_error
                events.append(ToolResultEvent(call, output.output, output.is_error))
            state.records.append(ToolCallRecord(call, entry["output"], bool(entry["is_error"])))
            state.turn.append(
                tool_message(call, entry["output"], bool(entry["is_error"]), _message_id(entry))
            )
        step.status = "completed"
        step.dirty = True
        return events

    def _not_executed(
        self, state: TurnState, assistant: Message, reason: str, max_iterations: int
    ) -> list[ToolCallRecord]:
        """Results for tool calls the run will not execute (the thread stays consistent)."""
        text = (
            f"Not executed: this run reached its limit of {max_iterations} tool iterations."
            if reason == "max_tool_iterations"
            else "Not executed: this run reached its max_completion_tokens."
        )
        entries, records = [], []
        for call in assistant.tool_calls:
            message_id = new_message_id()
            state.turn.append(tool_message(call, text, True, message_id))
            records.append(ToolCallRecord(call, text, True))
            entries.append(
                {
                    **call.to_json(),
                    "client": False,
                    "output": text,
                    "is_error": True,
                    "message_id": str(message_id),
                }
            )
        state.records.extend(records)
        state.tool_step(entries, done=True)
        return records

    # --- budgets ------------------------------------------------------------------------

    def _budget_spent(self, ticket: RunTicket, state: TurnState) -> bool:
        """Before a model call: has a run budget run out? (then the run ends incomplete)."""
        ov = ticket.overrides
        if not state.called:
            return False
        for name, used in (
            ("max_prompt_tokens", state.total.input_tokens),
            ("max_completion_tokens", state.total.output_tokens),
        ):
            limit = getattr(ov, name)
            if limit is not None and used >= limit:
                state.incomplete = {"reason": name}
                state.finish = name  # type: ignore[assignment]
                return True
        return False

    def _completion_cut(
        self, ticket: RunTicket, state: TurnState, response: ProviderResponse
    ) -> bool:
        limit = ticket.overrides.max_completion_tokens
        return (
            limit is not None
            and response.finish_reason == "length"
            and state.total.output_tokens >= limit
        )

    # --- phase 4 ------------------------------------------------------------------------

    async def _persist(self, ticket: RunTicket, plan: TurnPlan, state: TurnState) -> list[Message]:
        # The rate-limit corrections of the run's calls land while the turn is saved; the
        # run returns once both are done (the window is exact when the caller goes on).
        settle = asyncio.ensure_future(_settle_recordings(state))
        try:
            return await self._save(ticket, plan, state)
        finally:
            await settle

    async def _save(self, ticket: RunTicket, plan: TurnPlan, state: TurnState) -> list[Message]:
        for message in state.turn:
            plan.count(message)  # fills token_count, persisted with the row
        completion = Completion(
            status="incomplete" if state.incomplete else "completed",
            provider=state.provider,
            model=state.model,
            usage=state.unrecorded,
            cost=state.unrecorded_cost,
            incomplete_details=state.incomplete,
            memory_state=state.memory_state,
        )
        return await self.storage.save_turn(ticket, state.turn, state.unwritten(), completion)

    def _response(
        self,
        ticket: RunTicket,
        state: TurnState,
        plan: TurnPlan,
        saved: list[Message],
        *,
        paused: list[ToolCall] | None = None,
    ) -> AgentResponse:
        last = state.last_answer
        content = last.content if last is not None else ""
        routing = _run_routing(state, plan.route) if state.routes else {}
        if paused:
            status, finish = "requires_action", "requires_action"
        else:
            status = "incomplete" if state.incomplete else "completed"
            finish = state.finish
        return AgentResponse(
            content=content or "",
            thread_id=ticket.thread.id,
            run_id=ticket.id,
            finish_reason=finish,  # type: ignore[arg-type]
            tool_calls=list(state.records),
            usage=state.total,
            cost=state.cost,
            provider=state.provider,
            model=state.model,
            message_ids=[m.id for m in saved if m.id],
            rate_limit_wait=state.waited,
            routing=routing,
            status=status,  # type: ignore[arg-type]
            required_action=list(paused or []),
            incomplete_details=state.incomplete,
        )


# --- helpers ------------------------------------------------------------------------------


def required_action(calls: list[ToolCall]) -> dict[str, Any]:
    """The run row's ``required_action``: the client calls awaiting outputs."""
    return {
        "type": "submit_tool_outputs",
        "tool_calls": [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in calls],
    }


def _message_id(entry: dict[str, Any]) -> UUID | None:
    value = entry.get("message_id")
    return UUID(value) if value else None


def _storable(response: ProviderResponse) -> ProviderResponse:
    """*response* with U+0000 replaced (PostgreSQL cannot store it; see :mod:`ai_agents.nul`)
    in its text and its tool calls (ids, names, argument keys and values)."""
    if (
        NUL not in response.content
        and nul_path([c.to_json() for c in response.tool_calls], "") is None
    ):
        return response
    return replace(
        response,
        content=without_nul(response.content),
        tool_calls=[
            ToolCall(
                id=without_nul(c.id), name=without_nul(c.name), arguments=without_nul(c.arguments)
            )
            for c in response.tool_calls
        ],
    )


def _fields(request: ProviderRequest) -> dict[str, Any]:
    return {name: getattr(request, name) for name in request.__dataclass_fields__}


async def _settle(answers: list[ModelAnswer]) -> None:
    pending = [a.recorded for a in answers if a.recorded is not None]
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)


async def _settle_recordings(state: TurnState) -> None:
    if state.pending_recordings:
        await asyncio.gather(*state.pending_recordings, return_exceptions=True)
        state.pending_recordings.clear()


async def _check_cancel(should_cancel: CancelCheck | None) -> None:
    if should_cancel is not None and await should_cancel():
        raise RunCancelled("the run was cancelled; nothing of this turn was saved")


def _routing_metadata(answer: ModelAnswer, plan: Plan) -> dict[str, Any]:
    """What the saved assistant message keeps about how its call was routed."""
    out = answer.record.to_json()
    if plan.decision:
        out["decision"] = plan.decision
    return out


def _run_routing(state: TurnState, plan: Plan) -> dict[str, Any]:
    """``AgentResponse.routing``: who answered, every skip and retry, and the decision."""
    routes = state.routes
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
