"""AgentRunner: starts, waits for, resumes and cancels runs; the turn loop does the turn.

A run is a row (``runs``), never a held connection:

1. **claim**: one statement inserts the run as ``in_progress`` and loads the thread and
   agent. PostgreSQL allows one active run per thread (a partial unique index), so a
   second run finds the thread busy: ``on_busy="reject"`` raises
   :class:`ThreadBusyError`; ``"enqueue"`` records a ``queued`` run and waits, holding no
   connection, for the thread's release (Redis pub/sub, re-checked every second) up to
   ``busy_timeout``. At most ``max_waiting_runs_per_thread`` runs wait per thread, and
   ``max_waiting_runs_per_tenant`` per tenant.
2. **execute**: the run's own task runs :class:`~ai_agents.runs.loop.TurnLoop`. The
   process's :class:`~ai_agents.runs.supervisor.RunSupervisor` extends its lease; a
   cancel from any process interrupts the task; nothing of an unsaved turn is kept.
3. **end**: the loop saves the turn and completes the row in one transaction, or pauses
   in ``requires_action`` for client tool outputs (:meth:`submit_tool_outputs` resumes
   it in any process), or the driver records the failure/cancel on the row.

With an idempotency key, a turn already saved under that key is returned again
(``replayed=True``) instead of running twice.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, Literal
from uuid import UUID

from ai_agents.agent_settings import Ceilings
from ai_agents.db.engine import parse_uuid
from ai_agents.db.messages import JobSuccess
from ai_agents.db.scope import Scope
from ai_agents.embeddings import Embedder, HashingEmbedder
from ai_agents.errors import (
    AgentsError,
    NotFoundError,
    RunCancelled,
    RunExpired,
    RunStateError,
    ThreadBusyError,
    UsageError,
    ValidationError,
)
from ai_agents.memory.base import LoadPlan
from ai_agents.nul import nul_path
from ai_agents.observability import genai
from ai_agents.observability.logs import log_fields
from ai_agents.providers.base import Provider
from ai_agents.providers.breaker import BreakerConfig, CircuitBreakers
from ai_agents.providers.factory import ProviderFactory
from ai_agents.providers.fallback import Dispatcher
from ai_agents.providers.registry import ModelLimits, get_registry
from ai_agents.providers.retry import RetryPolicy
from ai_agents.ratelimit.limiter import RateLimits, WindowUsage
from ai_agents.records import AgentRecord, ThreadRecord
from ai_agents.response import AgentResponse, DoneEvent, RunEvent, RunStartedEvent
from ai_agents.runs import rows
from ai_agents.runs.gateway import ModelGateway, RateLimitAdmissions
from ai_agents.runs.loop import LoopDefaults, Progress, Resume, TurnLoop
from ai_agents.runs.overrides import RunOverrides
from ai_agents.runs.pg import PgRuns, RunLost
from ai_agents.runs.records import RunRecord, RunStep, ToolOutput
from ai_agents.runs.supervisor import RECHECK_SECONDS, SWEEP_EVERY, RunSupervisor
from ai_agents.runs.turn import RunTicket, response_from_saved
from ai_agents.runtime import Runtime
from ai_agents.tokens import TokenCounter, default_counter
from ai_agents.tools.registry import ToolRegistry, default_registry
from ai_agents.tools.sources import ToolSource

MAX_INPUT_CHARS = 1_000_000
BusyPolicy = Literal["enqueue", "reject"]
CancelCheck = Callable[[], Awaitable[bool]]
_END = object()


@dataclass(slots=True, kw_only=True)
class RunOptions:
    on_busy: BusyPolicy = "enqueue"
    busy_timeout: float = 300.0
    idempotency_key: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    should_cancel: CancelCheck | None = None
    stream: bool = False
    overrides: RunOverrides = field(default_factory=RunOverrides)


class _GatewayWithLimits(ModelGateway):
    def tokens_per_minute(self, provider: str, model: str, limits: ModelLimits) -> int | None:
        return self.admissions.model_limits(provider, model, limits).tpm


class AgentRunner:
    """Runs turns for one store. Shares its runtime; holds providers, tools and limiters."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        tools: ToolRegistry | None = None,
        counter: TokenCounter | None = None,
        tool_store: Any = None,
    ) -> None:
        self.runtime = runtime
        self.providers = ProviderFactory(runtime.settings)
        self.tools = tools or default_registry()
        self.counter = counter or default_counter()
        self.embedder: Embedder = HashingEmbedder()
        self.admissions = RateLimitAdmissions(runtime)
        # Retries -> circuit breaker -> fallbacks for every model call (providers/fallback.py).
        extra = runtime.settings.extra
        self.breakers = CircuitBreakers(
            lambda: runtime.redis, runtime.keys, BreakerConfig.from_sources(extra.get("breaker"))
        )
        self.dispatcher = Dispatcher(
            self.providers, self.breakers, retry=RetryPolicy.from_mapping(extra.get("retry") or {})
        )
        self.runs = PgRuns(
            runtime,
            embedder=lambda: self.embedder,
            dispatcher=lambda: self.dispatcher,
            on_release=lambda thread_id: self.supervisor.release(thread_id),
        )
        self.supervisor = RunSupervisor(runtime, self.runs)
        self.loop = TurnLoop(
            storage=self.runs,
            models=_GatewayWithLimits(self.dispatcher, self.admissions, self.counter),
            tools=self.tools,
            providers=self.providers,
            counter=self.counter,
            defaults=LoopDefaults(
                max_tool_iterations=runtime.settings.max_tool_iterations,
                tool_timeout=runtime.settings.tool_timeout,
                ceilings=Ceilings.of(runtime.settings),
            ),
            tool_store=tool_store,
        )

    @property
    def rate_limit_overrides(self) -> dict[tuple[str, str], RateLimits]:
        """Per-process overrides of the registry's RPM/TPM, by (provider, model)."""
        return self.admissions.overrides

    async def rate_window(self, provider: str, model: str) -> WindowUsage:
        return await self.admissions.window(provider, model)

    def register_provider(self, name: str, provider: Provider) -> None:
        self.providers.register(name, provider)

    def use_tools(self, tools: ToolRegistry) -> None:
        self.tools = self.loop.tools = tools

    def add_tool_source(self, source: ToolSource) -> None:
        """Offer the tools of *source* (MCP servers, memory tools) to every run."""
        self.loop.tool_sources.append(source)

    async def aclose(self) -> None:
        for source in self.loop.tool_sources:
            await source.aclose()
        await self.supervisor.aclose()
        await self.providers.aclose()

    # --- starting runs ----------------------------------------------------------------

    async def run(
        self, scope: Scope, thread_id: UUID | str, text: str | None, options: RunOptions
    ) -> AgentResponse:
        begun = await self._begin(scope, thread_id, text, options)
        if isinstance(begun, AgentResponse):
            return begun
        return await self._launch(begun, options, sink=None)

    async def events(
        self, scope: Scope, thread_id: UUID | str, text: str | None, options: RunOptions
    ) -> AsyncGenerator[RunEvent, None]:
        """The run's events: ``RunStartedEvent`` first (the row exists), ``DoneEvent`` last."""
        begun = await self._begin(scope, thread_id, text, options)
        if isinstance(begun, AgentResponse):
            yield RunStartedEvent(begun.run_id, begun.thread_id)
            yield DoneEvent(begun)
            return
        yield RunStartedEvent(begun.id, begun.thread.id)
        async for event in self._stream(begun, options):
            yield event

    async def run_job(
        self,
        scope: Scope,
        run_id: UUID,
        thread_id: UUID,
        options: RunOptions,
        *,
        started: Any | None = None,
        success: JobSuccess | None = None,
    ) -> AgentResponse:
        """Execute the queued run of a background job (waits while its thread is busy).

        *started*: what the job's claim answered for the run's start (``runs.rows.START``'s
        row), used in place of the first start. *success*: the job, recorded as succeeded
        by the turn's save (``success.row`` is set when it was).
        """
        begun = await self._wait_and_start(
            scope, run_id, thread_id, options, job=True, first=started
        )
        if isinstance(begun, AgentResponse):
            return begun
        begun.job_success = success
        return await self._launch(begun, options, sink=None)

    async def _begin(
        self, scope: Scope, thread_id: UUID | str, text: str | None, options: RunOptions
    ) -> RunTicket | AgentResponse:
        """Claim the thread for a new run (or wait for it); a replayed turn's response.

        *text* ``None``: a run without input, answering the thread as it stands (its
        ``input`` is recorded as ``""``, and its turn adds no user message)."""
        ident = parse_uuid(thread_id, "thread")
        if text is None:
            validate_metadata(options.metadata)
        else:
            validate_input(text, options.metadata)
        self.check_overrides(options.overrides)
        run_id = uuid.uuid4()
        data = {
            "id": run_id,
            "input": text or "",
            "overrides": options.overrides.to_json(),
            "parsed": options.overrides,
            "metadata": dict(options.metadata),
            "idempotency_key": options.idempotency_key,
            "owner": self.supervisor.owner,
        }
        overrides = options.overrides

        decoded: list[tuple[ThreadRecord, AgentRecord]] = []

        def history_plan(row: Any) -> LoadPlan:
            decoded.append(rows.thread_and_agent(row))
            strategy, config = self.loop.memory_of(decoded[-1][1], overrides)
            return strategy.plan(config)

        for attempt in (1, 2):
            row, preloaded = await self.runs.claim(scope, ident, data, history_plan)
            if row is None:
                raise NotFoundError("thread", ident)
            if row["prior_run_id"] is not None:
                return await self._replay(ident, options.idempotency_key)
            if row["run_created_at"] is not None:
                ticket = self._ticket(row, data, decoded[-1] if decoded else None)
                ticket.preloaded = preloaded
                return ticket
            if not row["agent__is_active"]:
                raise UsageError(f"agent {row['agent_id']} is deactivated; reactivate it to run")
            # Busy. A run whose process died holds the thread until its lease passes.
            if attempt == 1 and not await self.runs.sweep(thread_id=ident):
                break
        if options.on_busy == "reject":
            raise ThreadBusyError(ident)
        full = await self.runs.queue(scope, ident, data, options.busy_timeout)
        if full is not None:
            settings = self.runtime.settings
            error = ThreadBusyError(ident)
            error.message = (
                f"thread {ident} is busy and already has "
                f"{settings.max_waiting_runs_per_thread} runs waiting"
                if full == "thread"
                else f"thread {ident} is busy and this tenant already has "
                f"{settings.max_waiting_runs_per_tenant} runs waiting"
            )
            error.args = (error.message,)
            error.details["waiting_cap"] = full
            raise error
        return await self._wait_and_start(scope, run_id, ident, options, job=False)

    async def _wait_and_start(
        self,
        scope: Scope,
        run_id: UUID,
        thread_id: UUID,
        options: RunOptions,
        *,
        job: bool,
        first: Any | None = None,
    ) -> RunTicket | AgentResponse:
        """Wait, holding no connection, until the queued run takes its thread."""
        clock = asyncio.get_running_loop()
        deadline = clock.time() + options.busy_timeout
        owner = self.supervisor.owner
        checks = 0
        try:
            with self.supervisor.waiting(run_id), self.supervisor.signals.watch(thread_id) as woken:
                while True:
                    woken.clear()
                    row = first if first is not None else await self.runs.start(run_id, owner)
                    first = None
                    if row is None:
                        raise NotFoundError("run", run_id)
                    if row["run_created_at"] is not None:
                        break
                    status = row["run_status"]
                    if status in ("completed", "incomplete"):
                        run = await self.runs.get(scope, run_id)
                        return await self._replay(thread_id, run.idempotency_key)
                    if status == "cancelled":
                        raise RunCancelled("the run was cancelled while it waited for its thread")
                    if status not in ("queued", "failed", "expired", "in_progress"):
                        raise RunStateError(f"run {run_id} is {status}; it cannot start")
                    if status == "expired" and not job:
                        raise ThreadBusyError(thread_id)
                    checks += 1
                    if checks % SWEEP_EVERY == 0 and await self.runs.sweep(thread_id=thread_id):
                        continue  # a dead run held the thread
                    remaining = deadline - clock.time()
                    if remaining <= 0:
                        if not job:
                            await self.runs.finish(
                                run_id,
                                "expired",
                                {"code": "thread_busy", "message": "the thread stayed busy"},
                                owner=owner,
                            )
                        raise ThreadBusyError(thread_id)
                    pause = RECHECK_SECONDS * random.uniform(0.75, 1.25)
                    with suppress(TimeoutError):
                        await asyncio.wait_for(woken.wait(), min(remaining, pause))
        except asyncio.CancelledError:
            if not job:  # the caller stopped waiting: the queued run goes away
                await asyncio.shield(
                    self.runs.finish(
                        run_id,
                        "cancelled",
                        {"code": "cancelled", "message": "caller gone"},
                        owner=owner,
                    )
                )
            raise
        if not row["agent__is_active"]:
            error = UsageError(f"agent {row['agent_id']} is deactivated; reactivate it to run")
            await self.runs.finish(run_id, "failed", _error(error), owner=owner)
            raise error
        # The start answered the run itself, so nothing is read again before the turn.
        data = {
            "id": run_id,
            "input": row["run_input"],
            "overrides": rows.json_value(row["run_overrides"]) or {},
            "metadata": rows.json_value(row["run_metadata"]) or {},
            "idempotency_key": row["run_idempotency_key"],
            "owner": owner,
            "job_id": row["run_job_id"],
        }
        if row["saved_run_id"] is not None:  # saved while this run waited: one turn per key
            replay = await self.runs.replay_of(thread_id, row["run_idempotency_key"])
            if replay is not None:
                await self.runs.forget(run_id)
                return response_from_saved(thread_id, *replay)
        return self._ticket(row, data)

    def _ticket(
        self,
        row: Any,
        data: dict[str, Any],
        decoded: tuple[ThreadRecord, AgentRecord] | None = None,
    ) -> RunTicket:
        thread, agent = decoded or rows.thread_and_agent(row)
        return RunTicket(
            id=data["id"],
            owner=data["owner"],
            thread=thread,
            agent=agent,
            input=data["input"],
            overrides=data.get("parsed") or RunOverrides.from_json(data["overrides"]),
            metadata=dict(data["metadata"]),
            idempotency_key=data["idempotency_key"],
            job_id=data.get("job_id"),
            created_at=row.get("run_created_at"),
        )

    async def _replay(self, thread_id: UUID, key: str | None) -> AgentResponse:
        assert key is not None
        replay = await self.runs.replay_of(thread_id, key)
        if replay is None:  # pragma: no cover - the key's turn was deleted meanwhile
            raise NotFoundError("turn", key)
        return response_from_saved(thread_id, *replay)

    def check_overrides(self, overrides: RunOverrides) -> None:
        """Reject a provider, model or tool the run could never use, before it starts."""
        if overrides.provider is not None and not self.providers.known(overrides.provider):
            raise ValidationError(
                f"unknown provider {overrides.provider!r}", details={"field": "provider"}
            )
        if overrides.model is not None and overrides.provider is not None:
            get_registry().get(overrides.provider, overrides.model)
        if overrides.tools is not None:
            self.tools.resolve(overrides.tools)

    # --- executing --------------------------------------------------------------------

    async def _launch(
        self,
        ticket: RunTicket,
        options: RunOptions,
        *,
        sink: Callable[[RunEvent], None] | None,
        resume: Resume | None = None,
    ) -> AgentResponse:
        task = self.supervisor.launch(ticket.id, self._drive(ticket, options, sink, resume))
        return await task  # type: ignore[no-any-return]

    async def _stream(
        self, ticket: RunTicket, options: RunOptions, resume: Resume | None = None
    ) -> AsyncGenerator[RunEvent, None]:
        queue: asyncio.Queue[Any] = asyncio.Queue()
        task = self.supervisor.launch(
            ticket.id, self._drive(ticket, options, queue.put_nowait, resume)
        )
        task.add_done_callback(lambda _: queue.put_nowait(_END))
        try:
            while True:
                item = await queue.get()
                if item is _END:
                    break
                yield item
            await task  # raises the run's error, if it failed
        finally:
            if not task.done():
                task.cancel()
                with suppress(BaseException):
                    await task

    async def _drive(
        self,
        ticket: RunTicket,
        options: RunOptions,
        sink: Callable[[RunEvent], None] | None,
        resume: Resume | None,
    ) -> AgentResponse:
        """The run's task, in its log fields and its ``invoke_agent`` span."""
        ids = {"run_id": str(ticket.id), "thread_id": str(ticket.thread.id)}
        if ticket.job_id is not None:
            ids["job_id"] = str(ticket.job_id)
        with log_fields(**ids), genai.agent_run(ticket) as span:
            response = await self._drive_run(ticket, options, sink, resume)
            span.done(response)
            return response

    async def _drive_run(
        self,
        ticket: RunTicket,
        options: RunOptions,
        sink: Callable[[RunEvent], None] | None,
        resume: Resume | None,
    ) -> AgentResponse:
        """The loop, then the row's end when the loop did not save it.

        A run that ends without its save still records the usage its model calls spent
        (``progress.state``) on its row. The thread's and user's counters are not
        touched: they count saved messages, and nothing of the turn was saved.
        """
        response: AgentResponse | None = None
        owner = ticket.owner
        progress = Progress()
        try:
            async for event in self.loop.execute(
                ticket,
                stream=options.stream,
                resume=resume,
                should_cancel=options.should_cancel,
                settling=lambda: self.supervisor.settling(ticket.id),
                progress=progress,
            ):
                if sink is not None:
                    sink(event)
                if isinstance(event, DoneEvent):
                    response = event.response
        except asyncio.CancelledError:
            live = self.supervisor.live(ticket.id)
            reason = live.reason if live is not None else None
            if reason is None:  # the caller went away (disconnect, timeout, worker shutdown)
                if ticket.job_id is not None:  # the job is handed back: its run waits again
                    await asyncio.shield(self.runs.requeue(ticket.id, owner))
                else:
                    await asyncio.shield(
                        self.runs.finish(
                            ticket.id,
                            "cancelled",
                            {"code": "cancelled", "message": "the caller stopped the run"},
                            owner=owner,
                            state=progress.state,
                        )
                    )
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            if reason == "lost":
                raise RunExpired(
                    f"run {ticket.id} was taken from this process (cancelled or expired); "
                    "nothing of its turn was saved"
                ) from None
            await self.runs.finish(
                ticket.id,
                "cancelled",
                {"code": "cancelled", "message": "the run was cancelled"},
                owner=owner,
                state=progress.state,
            )
            raise RunCancelled("the run was cancelled; nothing of this turn was saved") from None
        except RunLost as exc:
            await self.runs.finish(
                ticket.id, "expired", _error(exc), owner=owner, state=progress.state
            )
            raise
        except RunCancelled as exc:
            await self.runs.finish(
                ticket.id, "cancelled", _error(exc), owner=owner, state=progress.state
            )
            raise
        except BaseException as exc:
            with suppress(Exception):
                await asyncio.shield(
                    self.runs.finish(
                        ticket.id, "failed", _error(exc), owner=owner, state=progress.state
                    )
                )
            raise
        assert response is not None, "a run always ends with a DoneEvent"
        return response

    # --- after the start --------------------------------------------------------------

    async def submit_tool_outputs(
        self,
        scope: Scope,
        run_id: UUID | str,
        outputs: Iterable[ToolOutput | dict[str, Any]],
        options: RunOptions,
    ) -> AgentResponse:
        ticket, resume = await self._resume(scope, run_id, outputs)
        return await self._launch(ticket, options, sink=None, resume=resume)

    async def stream_tool_outputs(
        self,
        scope: Scope,
        run_id: UUID | str,
        outputs: Iterable[ToolOutput | dict[str, Any]],
        options: RunOptions,
    ) -> AsyncGenerator[RunEvent, None]:
        ticket, resume = await self._resume(scope, run_id, outputs)
        yield RunStartedEvent(ticket.id, ticket.thread.id)
        async for event in self._stream(ticket, options, resume):
            yield event

    async def _resume(
        self,
        scope: Scope,
        run_id: UUID | str,
        outputs: Iterable[ToolOutput | dict[str, Any]],
    ) -> tuple[RunTicket, Resume]:
        ident = parse_uuid(run_id, "run")
        run = await self.runs.get(scope, ident)
        if run.status != "requires_action" or run.required_action is None:
            raise RunStateError(
                f"run {ident} is {run.status}: tool outputs are only accepted while it is "
                "requires_action",
                details={"run_id": str(ident), "status": run.status},
            )
        expected = [c["id"] for c in run.required_action["tool_calls"]]
        by_id = parse_outputs(outputs, expected)
        row = await self.runs.resume(scope, ident, self.supervisor.owner, run.required_action)
        if row is None:
            current = await self.runs.get(scope, ident)
            raise RunStateError(
                f"run {ident} is {current.status}: it no longer waits for tool outputs",
                details={"run_id": str(ident), "status": current.status},
            )
        steps = await self.runs.steps(scope, ident)
        ticket = self._ticket(
            row,
            {
                "id": run.id,
                "input": run.input,
                "overrides": run.overrides,
                "metadata": run.metadata,
                "idempotency_key": run.idempotency_key,
                "owner": self.supervisor.owner,
                "job_id": run.job_id,
            },
        )
        return ticket, Resume(steps=steps, outputs=by_id)

    async def cancel(self, scope: Scope, run_id: UUID | str) -> RunRecord:
        """Cancel a run in any state and any process (queued, in progress, awaiting tool
        outputs): nothing of its turn is saved. A finished run is returned unchanged."""
        ident = parse_uuid(run_id, "run")
        status = await self.runs.cancel(scope, ident)
        if status == "cancelling" and not self.supervisor.interrupt(ident, "cancelled"):
            await self.supervisor.signals.publish_cancel(ident)
        return await self.runs.get(scope, ident)

    async def get_run(self, scope: Scope, run_id: UUID | str) -> RunRecord:
        return await self.runs.get(scope, parse_uuid(run_id, "run"))

    async def list_steps(self, scope: Scope, run_id: UUID | str) -> list[RunStep]:
        return await self.runs.steps(scope, parse_uuid(run_id, "run"))


def parse_outputs(
    outputs: Iterable[ToolOutput | dict[str, Any]], expected: list[str]
) -> dict[str, ToolOutput]:
    """Validate submitted outputs: exactly one per awaited call, each a string."""
    if isinstance(outputs, dict | str) or not isinstance(outputs, Iterable):
        raise ValidationError(
            "tool_outputs must be a list of {tool_call_id, output}",
            details={"field": "tool_outputs"},
        )
    by_id: dict[str, ToolOutput] = {}
    for i, item in enumerate(outputs):
        where = f"tool_outputs[{i}]"
        if isinstance(item, dict):
            try:
                item = ToolOutput(
                    tool_call_id=item["tool_call_id"],
                    output=item.get("output", ""),
                    is_error=bool(item.get("is_error", False)),
                )
            except KeyError:
                raise ValidationError(
                    f"{where} needs a tool_call_id", details={"field": where}
                ) from None
        if not isinstance(item, ToolOutput):
            raise ValidationError(
                f"{where} must be a ToolOutput or a mapping", details={"field": where}
            )
        if not isinstance(item.output, str):
            raise ValidationError(
                f"{where}.output must be a string", details={"field": f"{where}.output"}
            )
        if "\x00" in item.output:
            raise ValidationError(
                f"{where}.output contains a NUL character (U+0000), which cannot be stored",
                details={"field": f"{where}.output"},
            )
        if item.tool_call_id not in expected:
            raise ValidationError(
                f"{where}: the run does not wait for tool call {item.tool_call_id!r} "
                f"(it waits for {', '.join(expected)})",
                details={"field": f"{where}.tool_call_id"},
            )
        if item.tool_call_id in by_id:
            raise ValidationError(
                f"{where}: tool call {item.tool_call_id!r} has two outputs",
                details={"field": f"{where}.tool_call_id"},
            )
        by_id[item.tool_call_id] = item
    missing = [i for i in expected if i not in by_id]
    if missing:
        raise ValidationError(
            f"missing outputs for tool call(s): {', '.join(missing)}",
            details={"field": "tool_outputs", "missing": missing},
        )
    return by_id


def validate_input(text: str, metadata: dict[str, Any] | None = None) -> None:
    """Check a run's input (and metadata) before the run exists or any model is called:
    what PostgreSQL could not store (U+0000) would otherwise fail the save, after the
    tokens were spent."""
    if not isinstance(text, str) or not text.strip():
        raise ValidationError("run input must be a non-empty string", details={"field": "input"})
    if len(text) > MAX_INPUT_CHARS:
        raise ValidationError(
            f"run input is too long ({len(text)} characters; the limit is {MAX_INPUT_CHARS})",
            details={"field": "input"},
        )
    if "\x00" in text:
        raise ValidationError(
            "run input contains a NUL character (U+0000), which cannot be stored",
            details={"field": "input"},
        )
    validate_metadata(metadata)


def validate_metadata(metadata: dict[str, Any] | None) -> None:
    where = nul_path(metadata, "metadata")
    if where is not None:
        raise ValidationError(
            f"{where} contains a NUL character (U+0000), which cannot be stored",
            details={"field": where},
        )


def _error(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, AgentsError):
        return {"code": exc.code, "message": exc.message}
    return {"code": "internal_error", "message": f"{type(exc).__name__}: {exc}"[:2000]}
