"""The turn loop on in-memory fakes: no PostgreSQL, no Redis, no network.

The loop's two ports (:class:`TurnStorage`, :class:`ModelCaller`) are implemented here
in a few lines each, which is what lets these tests drive every phase (prepare, call,
tools, persist) and every ending (saved, paused for client tools, resumed, incomplete,
failed) directly.
"""

from __future__ import annotations

import asyncio
import copy
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from ai_agents.definition import AgentDefinition
from ai_agents.errors import InvalidStructuredOutput, RunCancelled
from ai_agents.memory.base import LoadPlan
from ai_agents.messages import Message
from ai_agents.providers.base import Provider, ProviderRequest, ToolSpec, Usage
from ai_agents.providers.fallback import RoutingRecord
from ai_agents.providers.registry import ModelLimits, get_registry
from ai_agents.providers.routing import Plan
from ai_agents.records import AgentRecord, ThreadRecord
from ai_agents.response import (
    DoneEvent,
    RunEvent,
    TextDeltaEvent,
    ToolCallEvent,
    ToolResultEvent,
)
from ai_agents.runs.gateway import ModelAnswer
from ai_agents.runs.loop import LoopDefaults, Resume, TurnLoop
from ai_agents.runs.overrides import parse_overrides
from ai_agents.runs.records import RunStep, ToolOutput
from ai_agents.runs.turn import Completion, RunTicket, StepWrite, TurnState
from ai_agents.testing import ScriptedProvider, ScriptItem, call, calls
from ai_agents.tokens import default_counter
from ai_agents.tools.decorator import tool
from ai_agents.tools.registry import ToolRegistry

WEATHER = {
    "name": "get_weather",
    "description": "Weather (the caller looks it up).",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


@dataclass
class MemoryStorage:
    """The storage port in memory: a thread's history, step rows, pauses and saves."""

    history: list[Message] = field(default_factory=list)
    steps: dict[int, StepWrite] = field(default_factory=dict)
    step_writes: list[list[int]] = field(default_factory=list)
    paused: list[dict[str, Any]] = field(default_factory=list)
    saved: list[list[Message]] = field(default_factory=list)
    completions: list[Completion] = field(default_factory=list)

    async def load_history(
        self, thread: ThreadRecord, plan: LoadPlan
    ) -> tuple[list[Message], list[Message]]:
        return self.history[-plan.last :] if plan.last else [], self.history[: plan.first]

    async def user_facts(self, agent: AgentRecord, thread: ThreadRecord) -> str:
        return ""

    def memory_services(self, agent: AgentRecord, thread: ThreadRecord) -> Any:
        return None

    async def write_steps(self, ticket: RunTicket, steps: Sequence[StepWrite]) -> None:
        self.step_writes.append([s.seq for s in steps])
        self._keep(steps)

    async def require_action(
        self,
        ticket: RunTicket,
        steps: Sequence[StepWrite],
        action: dict[str, Any],
        state: TurnState,
    ) -> None:
        self._keep(steps)
        self.paused.append(action)

    async def save_turn(
        self,
        ticket: RunTicket,
        turn: list[Message],
        steps: Sequence[StepWrite],
        completion: Completion,
    ) -> list[Message]:
        self._keep(steps)
        self.saved.append(list(turn))
        self.completions.append(completion)
        self.history.extend(turn)
        return list(turn)

    def _keep(self, steps: Sequence[StepWrite]) -> None:
        for step in steps:
            self.steps[step.seq] = copy.deepcopy(step)

    def rows(self, run_id: uuid.UUID) -> list[RunStep]:
        """The step rows, as a resumed run reads them back."""
        return [
            RunStep(
                id=uuid.uuid4(),
                run_id=run_id,
                thread_id=uuid.uuid4(),
                seq=s.seq,
                type=s.type,
                status=s.status,
                details=s.details,
                provider=s.provider,
                model=s.model,
                input_tokens=s.input_tokens,
                output_tokens=s.output_tokens,
                cost=s.cost,
            )
            for s in sorted(self.steps.values(), key=lambda s: s.seq)
        ]


class DirectModels:
    """The model port without rate limits, retries or fallbacks: the first target answers."""

    def __init__(self, providers: dict[str, Provider]) -> None:
        self.providers = providers

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
        target = route.targets[0]
        response = await self.providers[target.provider].complete(request)
        if stream and response.content:
            yield TextDeltaEvent(response.content)
        yield ModelAnswer(
            response=response,
            provider=target.provider,
            model=target.model,
            record=RoutingRecord(target.provider, target.model, attempts=1),
            cost=0.001,
            waited=0.0,
            admitted_at=None,
        )

    def tokens_per_minute(self, provider: str, model: str, limits: ModelLimits) -> int | None:
        return None

    def get(self, name: str) -> Provider:
        return self.providers[name]


@pytest.fixture(autouse=True)
def fake_model() -> Iterator[None]:
    registry = get_registry()
    snapshot = registry._snapshot()
    registry.register("fake", "m", ModelLimits(50_000, 500, 10**6, 10**9, True, False, 1, 2))
    yield
    registry._restore(snapshot)


@pytest.fixture
def tools() -> ToolRegistry:
    registry = ToolRegistry()

    @tool(registry=registry)
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    return registry


def _ticket(*, tools: list[str] = (), client: bool = False, **overrides: Any) -> RunTicket:  # type: ignore[assignment]
    agent = AgentRecord(
        id=uuid.uuid4(),
        tenant_id="t",
        definition=AgentDefinition(name="A", role="You help.", tools=list(tools)),
        provider="fake",
        model="m",
        client_tools=[WEATHER] if client else [],
    )
    thread = ThreadRecord(id=uuid.uuid4(), tenant_id="t", agent_id=agent.id)
    return RunTicket(
        id=uuid.uuid4(),
        owner="unit",
        thread=thread,
        agent=agent,
        input="hello",
        overrides=parse_overrides(overrides),
    )


def _loop(
    script: list[ScriptItem], tools: ToolRegistry, storage: MemoryStorage
) -> tuple[TurnLoop, ScriptedProvider]:
    provider = ScriptedProvider(script)
    models = DirectModels({"fake": provider})
    loop = TurnLoop(
        storage=storage,
        models=models,
        tools=tools,
        providers=models,
        counter=default_counter(),
        defaults=LoopDefaults(max_tool_iterations=3, tool_timeout=5.0),
    )
    return loop, provider


async def _events(loop: TurnLoop, ticket: RunTicket, **kw: Any) -> list[RunEvent]:
    return [e async for e in loop.execute(ticket, **kw)]


async def test_plain_answer_is_saved_with_one_step(tools: ToolRegistry) -> None:
    storage = MemoryStorage()
    loop, _ = _loop(["Hi there."], tools, storage)
    events = await _events(loop, _ticket(), stream=True)
    assert isinstance(events[0], TextDeltaEvent) and isinstance(events[-1], DoneEvent)
    (turn,) = storage.saved
    assert [(m.role, m.text) for m in turn] == [("user", "hello"), ("assistant", "Hi there.")]
    assert [s.type for s in storage.steps.values()] == ["message_creation"]
    assert storage.steps[1].details["message_id"] == str(turn[1].id)
    assert storage.completions[0].status == "completed"
    assert storage.step_writes == []  # no tool iteration: everything in the final save


async def test_tool_loop_writes_each_iteration_then_saves_the_turn(tools: ToolRegistry) -> None:
    storage = MemoryStorage()
    loop, provider = _loop([calls(call("add", a=2, b=5)), "7"], tools, storage)
    events = await _events(loop, _ticket(tools=["add"]))
    kinds = [type(e) for e in events]
    assert kinds == [ToolCallEvent, ToolResultEvent, DoneEvent]
    assert storage.step_writes == [[1, 2]]  # the iteration's steps, before the next call
    (turn,) = storage.saved
    assert [m.role for m in turn] == ["user", "assistant", "tool", "assistant"]
    assert turn[2].text == "7" and provider.requests[1].messages[-1].role == "tool"
    done = events[-1]
    assert isinstance(done, DoneEvent) and done.response.content == "7"


async def test_client_tool_pauses_then_resumes(tools: ToolRegistry) -> None:
    storage = MemoryStorage()
    ticket = _ticket(tools=["add"], client=True)
    first = calls(call("add", a=1, b=1), call("get_weather", city="Oslo"))
    first.usage = Usage(100, 10)
    script = [first, "2 and snow"]
    loop, provider = _loop(script, tools, storage)
    events = await _events(loop, ticket)
    done = events[-1]
    assert isinstance(done, DoneEvent) and done.response.status == "requires_action"
    assert storage.saved == []
    (action,) = storage.paused
    assert [c["name"] for c in action["tool_calls"]] == ["get_weather"]
    assert storage.steps[2].status == "in_progress"

    call_id = action["tool_calls"][0]["id"]
    resume = Resume(steps=storage.rows(ticket.id), outputs={call_id: ToolOutput(call_id, "snow")})
    events = await _events(loop, ticket, resume=resume)
    assert isinstance(events[0], ToolResultEvent) and events[0].result == "snow"
    (turn,) = storage.saved
    assert [(m.role, m.text) for m in turn] == [
        ("user", "hello"),
        ("assistant", ""),
        ("tool", "2"),
        ("tool", "snow"),
        ("assistant", "2 and snow"),
    ]
    assert storage.steps[2].status == "completed"
    # The resumed call saw the same turn the model would have seen without the pause.
    assert [m.role for m in provider.requests[1].messages] == [m.role for m in turn[:-1]]
    # Usage charged before the pause is not charged to the run row again.
    resumed = events[-1]
    assert isinstance(resumed, DoneEvent)
    charged = storage.completions[0].usage
    total = resumed.response.usage
    assert (
        total.input_tokens - charged.input_tokens,
        total.output_tokens - charged.output_tokens,
    ) == (
        100,
        10,
    )


async def test_max_tool_iterations_answers_every_call(tools: ToolRegistry) -> None:
    storage = MemoryStorage()
    script = [calls(call("add", a=1, b=1)) for _ in range(4)]
    loop, _ = _loop(script, tools, storage)
    events = await _events(loop, _ticket(tools=["add"]))
    done = events[-1]
    assert isinstance(done, DoneEvent) and done.response.finish_reason == "max_tool_iterations"
    (turn,) = storage.saved
    assert turn[-1].role == "tool" and turn[-1].is_error
    assert "Not executed" in turn[-1].text


async def test_structured_output_retry_and_failure(tools: ToolRegistry) -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "n", "schema": {"type": "object"}}}
    storage = MemoryStorage()
    loop, provider = _loop(["nope", '{"a": 1}'], tools, storage)
    events = await _events(loop, _ticket(response_format=fmt))
    assert isinstance(events[-1], DoneEvent) and events[-1].response.content == '{"a": 1}'
    assert len(provider.requests) == 2

    storage = MemoryStorage()
    loop, _ = _loop(["nope", "still nope"], tools, storage)
    with pytest.raises(InvalidStructuredOutput):
        await _events(loop, _ticket(response_format=fmt))
    assert storage.saved == []


async def test_cancel_check_stops_before_the_save(tools: ToolRegistry) -> None:
    storage = MemoryStorage()
    loop, _ = _loop([calls(call("add", a=1, b=2)), "3"], tools, storage)
    checks = 0

    async def cancelled() -> bool:
        nonlocal checks
        checks += 1
        return checks > 2  # before the call, before the 2nd call, then before the save

    with pytest.raises(RunCancelled):
        await _events(loop, _ticket(tools=["add"]), should_cancel=cancelled)
    assert storage.saved == []


async def test_model_failure_saves_nothing(tools: ToolRegistry) -> None:
    storage = MemoryStorage()
    loop, _ = _loop([calls(call("add", a=1, b=2)), RuntimeError("vendor down")], tools, storage)
    with pytest.raises(RuntimeError, match="vendor down"):
        await _events(loop, _ticket(tools=["add"]))
    assert storage.saved == [] and storage.history == []


async def test_history_from_storage_reaches_the_model(tools: ToolRegistry) -> None:
    storage = MemoryStorage(
        history=[Message(role="user", content="earlier"), Message(role="assistant", content="ok")]
    )
    loop, provider = _loop(["fine"], tools, storage)
    await _events(loop, _ticket(truncation={"type": "last_messages", "last_messages": 1}))
    assert [m.text for m in provider.requests[0].messages] == ["ok", "hello"]
    await asyncio.sleep(0)
