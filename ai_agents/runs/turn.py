"""The state of one turn while it runs, its steps, and the response it ends with.

A turn is the user's message plus every assistant message and tool result the run adds.
Nothing of it reaches the thread until the run saves it in one transaction; until then
the run's steps (``run_steps``) hold the in-progress state, and a run resumed in another
process (``submit_tool_outputs``) rebuilds its turn from them.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from ai_agents.memory.base import LoadPlan
from ai_agents.messages import Message, ToolCall
from ai_agents.providers.base import ProviderResponse, Usage
from ai_agents.providers.fallback import RoutingRecord
from ai_agents.records import AgentRecord, ThreadRecord
from ai_agents.response import AgentResponse, RunFinish, ToolCallRecord
from ai_agents.runs.overrides import RunOverrides
from ai_agents.runs.records import RunStep, StepStatus, StepType

if TYPE_CHECKING:
    from ai_agents.db.messages import JobSuccess


@dataclass(frozen=True, slots=True)
class Preloaded:
    """History read when the run claimed its thread, and the memory plan it followed."""

    plan: LoadPlan
    last: list[Message]
    first: list[Message]


@dataclass(slots=True, kw_only=True)
class RunTicket:
    """A run this process executes: its row's identity, what it runs on, what it was given."""

    id: UUID
    owner: str
    thread: ThreadRecord
    agent: AgentRecord
    input: str
    overrides: RunOverrides = field(default_factory=RunOverrides)
    metadata: dict[str, Any] = field(default_factory=dict)
    idempotency_key: str | None = None
    job_id: UUID | None = None
    created_at: datetime | None = None
    preloaded: Preloaded | None = None
    #: A job's run: the job whose success the turn's save records with it.
    job_success: JobSuccess | None = None


@dataclass(slots=True, kw_only=True)
class StepWrite:
    """A step as the run writes it (inserted, or updated by ``seq``)."""

    seq: int
    type: StepType
    status: StepStatus
    details: dict[str, Any]
    provider: str | None = None
    model: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    #: Changed since the run last wrote its steps.
    dirty: bool = True

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "type": self.type,
            "status": self.status,
            "details": self.details,
            "provider": self.provider,
            "model": self.model,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost": self.cost,
        }

    @classmethod
    def of(cls, step: RunStep) -> StepWrite:
        return cls(
            seq=step.seq,
            type=step.type,
            status=step.status,
            details=dict(step.details),
            provider=step.provider,
            model=step.model,
            input_tokens=step.input_tokens,
            output_tokens=step.output_tokens,
            cost=step.cost,
            dirty=False,
        )


@dataclass(slots=True, kw_only=True)
class Completion:
    """How the run ends when its turn is saved."""

    status: str  # "completed" | "incomplete"
    provider: str
    model: str
    #: Usage and cost not yet added to the run row (a resumed run added its earlier part).
    usage: Usage
    cost: float
    incomplete_details: dict[str, Any] | None = None
    memory_state: dict[str, Any] | None = None


@dataclass(slots=True, kw_only=True)
class TurnState:
    turn: list[Message]
    steps: list[StepWrite] = field(default_factory=list)
    records: list[ToolCallRecord] = field(default_factory=list)
    routes: list[RoutingRecord] = field(default_factory=list)
    total: Usage = field(default_factory=Usage)
    cost: float = 0.0
    #: Usage and cost the run row does not have yet.
    unrecorded: Usage = field(default_factory=Usage)
    unrecorded_cost: float = 0.0
    waited: float = 0.0
    finish: RunFinish = "stop"
    final: ProviderResponse | None = None
    memory_state: dict[str, Any] | None = None
    incomplete: dict[str, Any] | None = None
    #: Iteration of the tool loop the next model call is.
    iteration: int = 0
    provider: str = ""
    model: str = ""
    #: Rate-limit usage corrections still running (awaited before the save).
    pending_recordings: list[Awaitable[None]] = field(default_factory=list)

    def unwritten(self) -> list[StepWrite]:
        return [s for s in self.steps if s.dirty]

    def written(self) -> None:
        for step in self.steps:
            step.dirty = False

    @property
    def called(self) -> bool:
        """Has the run made a model call yet?"""
        return any(s.type == "message_creation" for s in self.steps)

    @property
    def last_answer(self) -> Message | None:
        return next((m for m in reversed(self.turn) if m.role == "assistant"), None)

    def charge(self, usage: Usage, cost: float) -> None:
        self.total = self.total + usage
        self.cost += cost
        self.unrecorded = self.unrecorded + usage
        self.unrecorded_cost += cost

    def recorded(self) -> None:
        """The usage so far was added to the run row (the run paused for tool outputs)."""
        self.unrecorded = Usage()
        self.unrecorded_cost = 0.0

    @property
    def next_seq(self) -> int:
        return len(self.steps) + 1

    def model_step(self, assistant: Message, response: ProviderResponse, iteration: int) -> None:
        self.steps.append(
            StepWrite(
                seq=self.next_seq,
                type="message_creation",
                status="completed",
                details={
                    "message_id": str(assistant.id),
                    "content": assistant.content,
                    "tool_calls": [c.to_json() for c in assistant.tool_calls],
                    "finish_reason": response.finish_reason,
                    "iteration": iteration,
                    "metadata": assistant.metadata,
                },
                provider=assistant.provider,
                model=assistant.model,
                input_tokens=assistant.input_tokens or 0,
                output_tokens=assistant.output_tokens or 0,
                cost=assistant.cost or 0.0,
            )
        )

    def tool_step(self, entries: list[dict[str, Any]], *, done: bool) -> StepWrite:
        step = StepWrite(
            seq=self.next_seq,
            type="tool_calls",
            status="completed" if done else "in_progress",
            details={"tool_calls": entries},
        )
        self.steps.append(step)
        return step


def new_message_id() -> UUID:
    return uuid.uuid4()


def assistant_message_id(run_id: UUID, iteration: int) -> UUID:
    """The id the assistant message of the run's model call *iteration* is saved with.

    Derived, not random (like the input's :func:`user_message`), so it is known before the
    call answers: a streamed run names the message its text deltas build (OpenAI's
    ``thread.message.created``) with the id the thread will list. A run makes one model
    call per iteration, and a resumed run goes on from its last one.
    """
    return uuid.uuid5(run_id, f"assistant:{iteration}")


def tool_message(call: ToolCall, content: str, is_error: bool, ident: UUID | None) -> Message:
    return Message(
        id=ident or new_message_id(),
        role="tool",
        content=content,
        tool_call_id=call.id,
        tool_name=call.name,
        metadata={"is_error": True} if is_error else {},
    )


def user_message(ticket: RunTicket) -> Message:
    return Message(
        id=uuid.uuid5(ticket.id, "input"),
        role="user",
        content=ticket.input,
        metadata=dict(ticket.metadata),
    )


def opening_turn(ticket: RunTicket) -> list[Message]:
    """What the turn starts with: the run's input as the user's message, or nothing for a
    run without input (it answers the thread as it stands: ``store.run(thread, None)``,
    the OpenAI flow of adding messages, then creating a run)."""
    return [user_message(ticket)] if ticket.input else []


def rebuild(ticket: RunTicket, steps: list[RunStep]) -> TurnState:
    """The turn of a run that paused for client tool outputs, from its steps."""
    state = TurnState(turn=opening_turn(ticket))
    for step in steps:
        write = StepWrite.of(step)
        state.steps.append(write)
        d = write.details
        if write.type == "message_creation":
            calls = [ToolCall.from_json(c) for c in d.get("tool_calls") or []]
            message = Message(
                id=UUID(d["message_id"]),
                role="assistant",
                content=d.get("content"),
                tool_calls=calls,
                provider=write.provider,
                model=write.model,
                input_tokens=write.input_tokens,
                output_tokens=write.output_tokens,
                cost=write.cost,
                metadata=dict(d.get("metadata") or {}),
            )
            state.turn.append(message)
            usage = Usage(write.input_tokens, write.output_tokens)
            state.total = state.total + usage
            state.cost += write.cost
            state.iteration = int(d.get("iteration", 0)) + 1
            state.provider, state.model = write.provider or "", write.model or ""
        elif write.status == "completed":  # the paused step is completed by the resume
            for entry in d.get("tool_calls") or []:
                call = ToolCall.from_json(entry)
                state.turn.append(
                    tool_message(call, entry["output"], bool(entry.get("is_error")), _uuid(entry))
                )
                state.records.append(
                    ToolCallRecord(call, entry["output"], bool(entry.get("is_error")))
                )
    return state


def _uuid(entry: dict[str, Any]) -> UUID | None:
    value = entry.get("message_id")
    return UUID(value) if value else None


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
        finish = finish_of(str(last.metadata.get("finish_reason", "stop")))
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


def finish_of(reason: str) -> RunFinish:
    if reason in ("length", "content_filter"):
        return reason  # type: ignore[return-value]
    return "stop"


def with_ids(calls: list[ToolCall]) -> list[ToolCall]:
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
