"""The turn a run saves, rebuilt and replayed, pinned exactly: the cases the mutation
run (``make mutation``) showed unchecked in :mod:`ai_agents.runs.turn`.

- ``rebuild``: a run resumed after client tool outputs (in any process) rebuilds its
  turn, usage, cost, iteration and route from its step rows alone.
- ``response_from_saved``: an idempotent replay answers the saved turn's response.
- ``StepWrite`` / ``TurnState``: what a run writes as its steps and charges as usage.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from ai_agents.definition import AgentDefinition
from ai_agents.messages import Message, ToolCall
from ai_agents.providers.base import ProviderResponse, Usage
from ai_agents.records import AgentRecord, ThreadRecord
from ai_agents.response import ToolCallRecord
from ai_agents.runs.records import RunStep
from ai_agents.runs.turn import (
    RunTicket,
    StepWrite,
    TurnState,
    finish_of,
    rebuild,
    response_from_saved,
    tool_message,
    user_message,
    with_ids,
)

RUN = uuid.uuid4()
THREAD = uuid.uuid4()


def _ticket(**metadata: Any) -> RunTicket:
    agent = AgentRecord(
        id=uuid.uuid4(),
        tenant_id="t",
        definition=AgentDefinition(name="A", role="You help."),
        provider="fake",
        model="m",
    )
    thread = ThreadRecord(id=THREAD, tenant_id="t", agent_id=agent.id)
    return RunTicket(
        id=RUN, owner="unit", thread=thread, agent=agent, input="hello", metadata=metadata
    )


def _step(seq: int, type_: str, status: str, details: dict[str, Any], **kw: Any) -> RunStep:
    return RunStep(
        id=uuid.uuid4(),
        run_id=RUN,
        thread_id=THREAD,
        seq=seq,
        type=type_,  # type: ignore[arg-type]
        status=status,  # type: ignore[arg-type]
        details=details,
        **kw,
    )


# --- rebuild ------------------------------------------------------------------------------


def test_a_resumed_turn_is_rebuilt_exactly_from_its_steps() -> None:
    first_id, result_id, second_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    lookup = {"id": "c1", "name": "lookup", "arguments": {"q": "x"}}
    steps = [
        _step(
            1,
            "message_creation",
            "completed",
            {
                "message_id": str(first_id),
                "content": "let me look",
                "tool_calls": [lookup],
                "iteration": 0,
                "metadata": {"finish_reason": "tool_calls"},
            },
            provider="p1",
            model="m1",
            input_tokens=10,
            output_tokens=3,
            cost=0.25,
        ),
        _step(
            2,
            "tool_calls",
            "completed",
            {"tool_calls": [{**lookup, "output": "found", "message_id": str(result_id)}]},
        ),
        _step(
            3,
            "message_creation",
            "completed",
            {
                "message_id": str(second_id),
                "content": None,
                "tool_calls": [{"id": "c2", "name": "weather", "arguments": {}}],
                "iteration": 4,
            },
            provider="p2",
            model="m2",
            input_tokens=20,
            output_tokens=5,
            cost=0.5,
        ),
        # The paused step: completed by the resume, so not (yet) part of the turn.
        _step(
            4,
            "tool_calls",
            "in_progress",
            {"tool_calls": [{"id": "c2", "name": "weather", "arguments": {}, "output": None}]},
        ),
    ]
    state = rebuild(_ticket(source="web"), steps)

    assert state.turn == [
        Message(
            id=uuid.uuid5(RUN, "input"), role="user", content="hello", metadata={"source": "web"}
        ),
        Message(
            id=first_id,
            role="assistant",
            content="let me look",
            tool_calls=[ToolCall("c1", "lookup", {"q": "x"})],
            provider="p1",
            model="m1",
            input_tokens=10,
            output_tokens=3,
            cost=0.25,
            metadata={"finish_reason": "tool_calls"},
        ),
        Message(
            id=result_id,
            role="tool",
            content="found",
            tool_call_id="c1",
            tool_name="lookup",
            metadata={},
        ),
        Message(
            id=second_id,
            role="assistant",
            content=None,
            tool_calls=[ToolCall("c2", "weather", {})],
            provider="p2",
            model="m2",
            input_tokens=20,
            output_tokens=5,
            cost=0.5,
            metadata={},
        ),
    ]
    assert state.records == [ToolCallRecord(ToolCall("c1", "lookup", {"q": "x"}), "found", False)]
    assert state.total == Usage(30, 8)
    assert state.cost == 0.75
    assert state.iteration == 5  # the next model call follows iteration 4
    assert (state.provider, state.model) == ("p2", "m2")
    # Usage already on the run row is not charged again.
    assert state.unrecorded == Usage() and state.unrecorded_cost == 0.0
    assert [(s.seq, s.type, s.status, s.dirty) for s in state.steps] == [
        (1, "message_creation", "completed", False),
        (2, "tool_calls", "completed", False),
        (3, "message_creation", "completed", False),
        (4, "tool_calls", "in_progress", False),
    ]
    assert state.steps[0].details == steps[0].details
    assert state.steps[0].details is not steps[0].details
    assert (state.steps[2].provider, state.steps[2].model) == ("p2", "m2")
    assert (state.steps[2].input_tokens, state.steps[2].output_tokens) == (20, 5)
    assert state.steps[2].cost == 0.5


def test_a_rebuilt_error_result_keeps_its_error_and_gets_an_id() -> None:
    call_json = {"id": "c1", "name": "lookup", "arguments": {}}
    steps = [
        _step(1, "message_creation", "completed", {"message_id": str(uuid.uuid4())}),
        _step(
            2,
            "tool_calls",
            "completed",
            {"tool_calls": [{**call_json, "output": "boom", "is_error": True}]},
        ),
    ]
    state = rebuild(_ticket(), steps)
    assistant, result = state.turn[1], state.turn[2]
    # A step without optional details: no calls, no text, iteration 0 done.
    assert (assistant.tool_calls, assistant.content, assistant.metadata) == ([], None, {})
    assert state.iteration == 1
    assert (state.provider, state.model) == ("", "")
    assert (result.content, result.metadata, result.tool_call_id) == (
        "boom",
        {"is_error": True},
        "c1",
    )
    assert isinstance(result.id, uuid.UUID)
    assert state.records == [ToolCallRecord(ToolCall("c1", "lookup", {}), "boom", True)]


# --- the replayed response ----------------------------------------------------------------


def _saved() -> list[Message]:
    c1 = ToolCall("c1", "lookup", {"q": "x"})
    return [
        Message(id=uuid.uuid4(), role="user", content="hi"),
        Message(
            id=uuid.uuid4(),
            role="assistant",
            content=None,
            tool_calls=[c1, ToolCall("c9", "never", {})],
            provider="p1",
            model="m1",
            input_tokens=10,
            output_tokens=2,
            cost=0.5,
        ),
        Message(
            id=uuid.uuid4(),
            role="tool",
            content="bad",
            tool_call_id="c1",
            tool_name="lookup",
            metadata={"is_error": True},
        ),
        Message(
            id=uuid.uuid4(),
            role="assistant",
            content="the answer",
            provider="p2",
            model="m2",
            input_tokens=7,
            output_tokens=3,
            cost=0.25,
            metadata={"finish_reason": "length"},
        ),
    ]


def test_a_replayed_response_is_the_saved_turn() -> None:
    saved = _saved()
    response = response_from_saved(THREAD, RUN, saved)
    assert (response.thread_id, response.run_id) == (THREAD, RUN)
    assert response.content == "the answer"
    assert response.finish_reason == "length"
    assert response.usage == Usage(17, 5)
    assert response.cost == 0.75
    assert (response.provider, response.model) == ("p2", "m2")
    assert response.message_ids == [m.id for m in saved]
    assert response.tool_calls == [
        ToolCallRecord(ToolCall("c1", "lookup", {"q": "x"}), "bad", True)
    ]
    assert response.replayed is True


def test_a_replay_ending_in_tool_calls_ran_out_of_iterations() -> None:
    saved = _saved()[:3]
    response = response_from_saved(THREAD, RUN, saved)
    assert response.finish_reason == "max_tool_iterations"
    assert (response.content, response.provider, response.model) == ("", "p1", "m1")


def test_a_replay_without_an_answer_is_empty() -> None:
    user = Message(id=uuid.uuid4(), role="user", content="hi")
    response = response_from_saved(THREAD, RUN, [user])
    assert (response.content, response.provider, response.model) == ("", "", "")
    assert response.finish_reason == "stop"
    assert response.usage == Usage() and response.cost == 0.0
    assert response.message_ids == [user.id]


def test_a_replayed_answer_without_usage_or_reason_counts_zero_and_stops() -> None:
    answer = Message(id=uuid.uuid4(), role="assistant", content="ok")
    response = response_from_saved(THREAD, RUN, [answer])
    assert response.finish_reason == "stop"
    assert response.usage == Usage(0, 0) and response.cost == 0.0
    assert (response.provider, response.model) == ("", "")


def test_only_length_and_content_filter_are_kept_as_finish_reasons() -> None:
    assert finish_of("length") == "length"
    assert finish_of("content_filter") == "content_filter"
    assert finish_of("tool_calls") == "stop"
    assert finish_of("stop") == "stop"


# --- steps and charges --------------------------------------------------------------------


def test_a_step_is_written_as_exactly_its_fields() -> None:
    write = StepWrite(
        seq=3,
        type="message_creation",
        status="completed",
        details={"content": "x"},
        provider="p",
        model="m",
        input_tokens=4,
        output_tokens=2,
        cost=0.5,
    )
    assert write.to_json() == {
        "seq": 3,
        "type": "message_creation",
        "status": "completed",
        "details": {"content": "x"},
        "provider": "p",
        "model": "m",
        "input_tokens": 4,
        "output_tokens": 2,
        "cost": 0.5,
    }
    assert write.dirty is True


def test_model_and_tool_steps_are_numbered_and_detailed() -> None:
    state = TurnState(turn=[])
    assert state.next_seq == 1 and not state.called
    answer = Message(
        id=uuid.uuid4(),
        role="assistant",
        content="hm",
        tool_calls=[ToolCall("c1", "lookup", {})],
        provider="p",
        model="m",
        input_tokens=5,
        output_tokens=1,
        cost=0.125,
        metadata={"k": "v"},
    )
    state.model_step(answer, ProviderResponse(content="hm", finish_reason="tool_calls"), 2)
    (step,) = state.steps
    assert step.to_json() == {
        "seq": 1,
        "type": "message_creation",
        "status": "completed",
        "details": {
            "message_id": str(answer.id),
            "content": "hm",
            "tool_calls": [{"id": "c1", "name": "lookup", "arguments": {}}],
            "finish_reason": "tool_calls",
            "iteration": 2,
            "metadata": {"k": "v"},
        },
        "provider": "p",
        "model": "m",
        "input_tokens": 5,
        "output_tokens": 1,
        "cost": 0.125,
    }
    assert state.called
    bare = Message(id=uuid.uuid4(), role="assistant", content="x")
    state.model_step(bare, ProviderResponse(content="x"), 3)
    assert (state.steps[1].seq, state.steps[1].input_tokens, state.steps[1].cost) == (2, 0, 0.0)
    assert state.steps[1].output_tokens == 0

    pending = state.tool_step([{"id": "c1"}], done=False)
    done = state.tool_step([{"id": "c2"}], done=True)
    assert (pending.seq, pending.type, pending.status) == (3, "tool_calls", "in_progress")
    assert (done.seq, done.status, done.details) == (4, "completed", {"tool_calls": [{"id": "c2"}]})
    assert state.unwritten() == state.steps
    state.written()
    assert state.unwritten() == []
    assert state.last_answer is None  # the turn holds no message yet


def test_charges_add_up_until_recorded_on_the_run_row() -> None:
    state = TurnState(turn=[])
    state.charge(Usage(3, 1), 0.5)
    state.charge(Usage(2, 2), 0.25)
    assert (state.total, state.cost) == (Usage(5, 3), 0.75)
    assert (state.unrecorded, state.unrecorded_cost) == (Usage(5, 3), 0.75)
    state.recorded()
    assert (state.unrecorded, state.unrecorded_cost) == (Usage(), 0.0)
    state.charge(Usage(1, 0), 0.125)
    assert (state.total, state.cost) == (Usage(6, 3), 0.875)
    assert (state.unrecorded, state.unrecorded_cost) == (Usage(1, 0), 0.125)


def test_the_last_answer_is_the_last_assistant_message() -> None:
    first = Message(role="assistant", content="a")
    last = Message(role="assistant", content="b")
    state = TurnState(turn=[Message(role="user", content="q"), first, last, Message(role="tool")])
    assert state.last_answer is last


# --- messages of the turn -----------------------------------------------------------------


def test_tool_and_user_messages_of_the_turn() -> None:
    call = ToolCall("c1", "lookup", {})
    ident = uuid.uuid4()
    ok = tool_message(call, "fine", False, ident)
    assert (ok.id, ok.role, ok.content, ok.metadata) == (ident, "tool", "fine", {})
    assert (ok.tool_call_id, ok.tool_name) == ("c1", "lookup")
    failed = tool_message(call, "boom", True, None)
    assert failed.metadata == {"is_error": True} and isinstance(failed.id, uuid.UUID)
    metadata = {"k": "v"}
    ticket = _ticket(**metadata)
    message = user_message(ticket)
    assert message == Message(
        id=uuid.uuid5(RUN, "input"), role="user", content="hello", metadata={"k": "v"}
    )
    assert message.metadata is not ticket.metadata


def test_saved_tool_calls_get_unique_non_empty_ids() -> None:
    calls = [
        ToolCall("a", "one", {"x": 1}),
        ToolCall("", "two", {}),
        ToolCall("a", "three", {}),
        ToolCall("b", "four", {}),
    ]
    out = with_ids(calls)
    assert [(c.name, c.arguments) for c in out] == [(c.name, c.arguments) for c in calls]
    assert out[0].id == "a" and out[3].id == "b"
    for fresh in (out[1].id, out[2].id):
        assert re.fullmatch(r"call_[0-9a-f]{24}", fresh)
    assert len({c.id for c in out}) == 4
