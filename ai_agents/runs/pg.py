"""Runs on PostgreSQL: the turn loop's storage port and every run-row operation.

Each method takes a pooled connection for one short statement (or one short
transaction) and gives it back: a run never holds a connection while its model thinks,
its tools run, or it waits for a busy thread.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID

import asyncpg

from ai_agents.db import memory as memory_rows
from ai_agents.db import messages as message_rows
from ai_agents.db.engine import autocommit, driver_connection, translate_errors
from ai_agents.db.scope import Scope
from ai_agents.embeddings import Embedder
from ai_agents.errors import RunExpired
from ai_agents.memory.base import LoadPlan
from ai_agents.messages import Message
from ai_agents.providers.fallback import Dispatcher
from ai_agents.records import AgentRecord, Page, ThreadRecord
from ai_agents.runs import rows
from ai_agents.runs.records import RunRecord, RunStep
from ai_agents.runs.turn import Completion, Preloaded, RunTicket, StepWrite, TurnState
from ai_agents.runtime import Runtime

log = logging.getLogger("ai_agents.run")


class RunLost(RunExpired):
    """The run is no longer this process's to write (cancelled, or its lease ran out)."""


class PgRuns:
    """Run rows and the turn loop's storage, on the runtime's connection pool."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        embedder: Callable[[], Embedder],
        dispatcher: Callable[[], Dispatcher],
        on_release: Callable[[UUID], None],
    ) -> None:
        self.runtime = runtime
        self._embedder = embedder
        self._dispatcher = dispatcher
        #: Called with a thread id when a run left it and other runs wait for it.
        self._on_release = on_release
        #: Called after a turn was saved (memory extraction); failures are logged only.
        self.after_turn: list[Callable[[RunTicket, Completion], Awaitable[None]]] = []

    @asynccontextmanager
    async def _apg(self, operation: str) -> AsyncIterator[Any]:
        """The asyncpg connection of a pooled connection, for one short piece of work."""
        with translate_errors(operation):
            async with driver_connection(self.runtime.engine) as apg:
                yield apg

    # --- claiming a thread ------------------------------------------------------------

    async def claim(
        self,
        scope: Scope,
        thread_id: UUID,
        ticket: dict[str, Any],
        history: Callable[[Any], LoadPlan] | None = None,
    ) -> tuple[Any, Preloaded | None]:
        """CLAIM: the thread+agent row, with ``run_created_at`` set when the run holds it.

        When it does and *history* gives the memory plan of that row, the history is read
        on the same connection, by a second statement: its snapshot is taken after the
        claim, so it holds every turn saved before this run took the thread.
        """
        async with self._apg("start run") as apg:
            row = await apg.fetchrow(
                rows.CLAIM,
                thread_id,
                scope.tenant_id,
                ticket["idempotency_key"],
                ticket["id"],
                ticket["input"],
                json.dumps(ticket["overrides"]),
                json.dumps(ticket["metadata"]),
                ticket["owner"],
                self.runtime.settings.run_lease_seconds,
            )
            if row is None or row["run_created_at"] is None or history is None:
                return row, None
            plan = history(row)
            last, first = await _history(apg, thread_id, plan)
        return row, Preloaded(plan, last, first)

    async def queue(
        self, scope: Scope, thread_id: UUID, ticket: dict[str, Any], wait: float
    ) -> str | None:
        """Record a run waiting for the busy thread; the cap reached, if one was."""
        settings = self.runtime.settings
        async with self._apg("queue run") as apg:
            return await rows.queue_waiting(
                apg,
                run_id=ticket["id"],
                thread_id=thread_id,
                tenant_id=scope.tenant_id,
                text=ticket["input"],
                overrides=ticket["overrides"],
                metadata=ticket["metadata"],
                idempotency_key=ticket["idempotency_key"],
                owner=ticket["owner"],
                lease=self.runtime.settings.run_lease_seconds,
                wait=wait,
                thread_cap=settings.max_waiting_runs_per_thread,
                tenant_cap=settings.max_waiting_runs_per_tenant,
            )

    async def start(self, run_id: UUID, owner: str) -> Any | None:
        """START a queued run: its thread+agent row with ``run_created_at`` when it took
        the thread; otherwise ``run_status`` (``queued`` while the thread is busy or an
        older caller waits first). None: the run does not exist."""
        async with self._apg("start run") as apg:
            try:
                return await apg.fetchrow(
                    rows.START, run_id, owner, self.runtime.settings.run_lease_seconds
                )
            except (asyncpg.UniqueViolationError, asyncpg.DeadlockDetectedError):
                # The thread's active run is still there (or, should PostgreSQL ever pick
                # this attempt as a deadlock victim, it simply tries again later).
                return {"run_created_at": None, "run_status": "queued"}

    async def resume(
        self, scope: Scope, run_id: UUID, owner: str, required: dict[str, Any]
    ) -> Any | None:
        async with self._apg("resume run") as apg:
            return await apg.fetchrow(
                rows.RESUME,
                run_id,
                scope.tenant_id,
                owner,
                self.runtime.settings.run_lease_seconds,
                json.dumps(required),
            )

    async def sweep(self, *, thread_id: UUID | None = None, run_id: UUID | None = None) -> int:
        """Expire runs whose lease passed (all, one thread's, or one run); announce the
        threads they free. Returns how many."""
        async with self._apg("expire runs") as apg:
            if thread_id is not None:
                gone = await apg.fetch(rows.SWEEP_THREAD, thread_id)
            elif run_id is not None:
                gone = await apg.fetch(rows.SWEEP_RUN, run_id)
            else:
                gone = await apg.fetch(rows.SWEEP_ALL)
        for row in gone:
            self._on_release(row["thread_id"])
        return len(gone)

    async def heartbeat(self, run_ids: list[UUID], owner: str) -> dict[UUID, str]:
        """Extend the leases of this process's runs; {run still ours: its status}."""
        async with self._apg("run heartbeat") as apg:
            found = await apg.fetch(
                rows.HEARTBEAT, run_ids, owner, self.runtime.settings.run_lease_seconds
            )
        return {r["id"]: r["status"] for r in found}

    async def finish(
        self,
        run_id: UUID,
        status: str,
        error: dict[str, Any] | None,
        *,
        owner: str | None,
        state: TurnState | None = None,
    ) -> bool:
        """End a run without saving a turn (failed, cancelled, expired). False: it had
        already ended."""
        usage = state.unrecorded if state is not None else None
        async with self._apg("finish run") as apg:
            row = await apg.fetchrow(
                rows.FINISH,
                run_id,
                status,
                json.dumps(error) if error is not None else None,
                owner,
                usage.input_tokens if usage else 0,
                usage.output_tokens if usage else 0,
                state.unrecorded_cost if state is not None else 0.0,
            )
        if row is None:
            return False
        if row["waiters"]:
            self._on_release(row["thread_id"])
        return True

    async def requeue(self, run_id: UUID, owner: str) -> None:
        """A job's run goes back to ``queued`` (its worker handed the job back)."""
        async with self._apg("requeue run") as apg:
            thread_id = await apg.fetchval(rows.REQUEUE, run_id, owner)
        if thread_id is not None:
            self._on_release(thread_id)

    async def forget(self, run_id: UUID) -> None:
        """Delete a waiting run that turned out to be a replay of an earlier saved turn."""
        async with self._apg("delete run") as apg:
            thread_id = await apg.fetchval(
                "DELETE FROM runs WHERE id = $1 AND status IN ('queued', 'in_progress') "
                "RETURNING thread_id",
                run_id,
            )
        if thread_id is not None:
            self._on_release(thread_id)

    async def replay_of(self, thread_id: UUID, key: str) -> tuple[UUID, list[Message]] | None:
        """The saved turn of an idempotency key, if there is one."""
        async with self._apg("idempotency check") as apg:
            run_id = await apg.fetchval(
                "SELECT run_id FROM messages WHERE thread_id = $1 AND idempotency_key = $2",
                thread_id,
                key,
            )
            if run_id is None:
                return None
            saved = [
                message_rows.record_to_message(r)
                for r in await apg.fetch(message_rows._BY_RUN, thread_id, run_id)
            ]
        return run_id, saved

    # --- reading and cancelling -------------------------------------------------------

    async def get(self, scope: Scope, run_id: UUID) -> RunRecord:
        await self.sweep(run_id=run_id)  # a run whose process died reads as expired
        async with self._apg("get run") as apg:
            return await rows.get(apg, scope.tenant_id, run_id)

    async def list_runs(
        self, scope: Scope, thread_id: UUID, *, limit: int, cursor: str | None, order: str
    ) -> Page[RunRecord]:
        await self.sweep(thread_id=thread_id)
        async with self._apg("list runs") as apg:
            return await rows.list_runs(
                apg, scope.tenant_id, thread_id, limit=limit, cursor=cursor, order=order
            )

    async def steps(self, scope: Scope, run_id: UUID) -> list[RunStep]:
        async with self._apg("list run steps") as apg:
            await rows.get(apg, scope.tenant_id, run_id)  # visible to this tenant?
            return [rows.to_step(r) for r in await apg.fetch(rows.STEPS, run_id)]

    async def cancel(self, scope: Scope, run_id: UUID) -> str | None:
        """Request the cancel; the run's new status, or None when it had already ended."""
        async with self._apg("cancel run") as apg:
            status = await apg.fetchval(rows.CANCEL, run_id, scope.tenant_id)
            if status == "cancelled":
                run = await rows.get(apg, scope.tenant_id, run_id)
                waiters = await apg.fetchval(
                    "SELECT EXISTS (SELECT 1 FROM runs WHERE thread_id = $1 AND status = 'queued')",
                    run.thread_id,
                )
                if waiters:
                    self._on_release(run.thread_id)
        return status  # type: ignore[no-any-return]

    # --- the turn loop's storage port -------------------------------------------------

    async def load_history(
        self, thread: ThreadRecord, plan: LoadPlan
    ) -> tuple[list[Message], list[Message]]:
        if not plan.last and not plan.first:
            return [], []
        async with self._apg("load history") as apg:
            return await _history(apg, thread.id, plan)

    async def user_facts(self, agent: AgentRecord, thread: ThreadRecord) -> str:
        wanted = agent.settings.get("use_user_memory") or agent.settings.get("memory_tools")
        if not wanted or not thread.user_id:  # memory tools: remembered facts are shown
            return ""
        with translate_errors("load user memory"):
            async with autocommit(self.runtime.engine) as conn:
                shared = await memory_rows.list_values(conn, thread.tenant_id, thread.user_id, None)
                own = await memory_rows.list_values(
                    conn, thread.tenant_id, thread.user_id, agent.id
                )
        facts = {**shared, **own}
        return "\n".join(f"- {k}: {v}" for k, v in facts.items())

    def memory_services(self, agent: AgentRecord, thread: ThreadRecord) -> _MemoryServices:
        return _MemoryServices(self, agent, thread)

    async def write_steps(self, ticket: RunTicket, steps: Sequence[StepWrite]) -> None:
        if not steps:
            return
        async with self._apg("write run steps") as apg:
            owned = await apg.fetchval(
                rows.WRITE_STEPS,
                ticket.id,
                rows.steps_json([s.to_json() for s in steps]),
                ticket.owner,
            )
        if not owned:
            raise RunLost(f"run {ticket.id} was cancelled or expired; its steps were not saved")

    async def require_action(
        self,
        ticket: RunTicket,
        steps: Sequence[StepWrite],
        action: dict[str, Any],
        state: TurnState,
    ) -> None:
        async with self._apg("pause run for tool outputs") as apg:
            owned = await apg.fetchval(
                rows.REQUIRE_ACTION,
                ticket.id,
                rows.steps_json([s.to_json() for s in steps]),
                ticket.owner,
                json.dumps(action),
                self.runtime.settings.run_action_timeout,
                state.unrecorded.input_tokens,
                state.unrecorded.output_tokens,
                state.unrecorded_cost,
                state.provider,
                state.model,
            )
        if not owned:
            raise RunLost(f"run {ticket.id} was cancelled or expired before it could pause")

    async def save_turn(
        self,
        ticket: RunTicket,
        turn: list[Message],
        steps: Sequence[StepWrite],
        completion: Completion,
    ) -> list[Message]:
        """The turn, its counters, the run's completion and its last steps: one statement."""
        thread = ticket.thread
        done = message_rows.RunCompletion(
            owner=ticket.owner,
            status=completion.status,
            provider=completion.provider,
            model=completion.model,
            input_tokens=completion.usage.input_tokens,
            output_tokens=completion.usage.output_tokens,
            cost=completion.cost,
            incomplete_details=completion.incomplete_details,
            steps_json=rows.steps_json([s.to_json() for s in steps]),
        )
        try:
            with translate_errors("save turn"):
                async with autocommit(self.runtime.engine) as conn:
                    limits = await self.runtime.size_limits(conn, thread.tenant_id)
                    saved, waiters = await message_rows.append_turn(
                        conn,
                        Scope(thread.tenant_id),
                        thread.id,
                        turn,
                        limits,
                        run_id=ticket.id,
                        idempotency_key=ticket.idempotency_key,
                        memory_state=completion.memory_state,
                        completion=done,
                        job=ticket.job_success,
                    )
        except RunExpired as exc:
            if isinstance(exc, RunLost):
                raise
            raise RunLost(exc.message) from exc
        if waiters:
            self._on_release(thread.id)
        for hook in self.after_turn:
            try:
                await hook(ticket, completion)
            except Exception:  # the turn is saved; a hook never fails it
                log.exception("after-turn hook failed for run %s", ticket.id)
        return saved


async def _history(
    apg: Any, thread_id: UUID, plan: LoadPlan
) -> tuple[list[Message], list[Message]]:
    last: list[Message] = []
    first: list[Message] = []
    if plan.last:
        found = await apg.fetch(message_rows._LAST_N, thread_id, plan.last)
        last = [message_rows.record_to_message(r) for r in reversed(found)]
    if plan.first:
        found = await apg.fetch(message_rows._FIRST_M, thread_id, plan.first)
        first = [message_rows.record_to_message(r) for r in found]
    return last, first


class _MemoryServices:
    """What memory strategies may ask of the run; each read takes its own connection."""

    def __init__(self, runs: PgRuns, agent: AgentRecord, thread: ThreadRecord) -> None:
        self._runs = runs
        self._agent = agent
        self._thread = thread

    async def load_range(self, after_seq: int, before_seq: int, limit: int) -> list[Message]:
        async with self._runs._apg("load history range") as apg:
            found = await apg.fetch(
                message_rows._BETWEEN, self._thread.id, after_seq, before_seq, limit
            )
        return [message_rows.record_to_message(r) for r in found]

    async def summarize(self, previous: str | None, messages: list[Message]) -> str:
        from ai_agents.memory.summarizer import summarize

        return await summarize(self._runs._dispatcher(), self._agent, previous, messages)

    async def similar(self, text: str, before_seq: int, k: int) -> list[Message]:
        from ai_agents.memory.recall import similar_messages

        return await similar_messages(
            self._runs._embedder(), self._runs.runtime.engine, self._thread, text, before_seq, k
        )
