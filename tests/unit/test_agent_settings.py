"""Agent settings (one typed schema, bounded by deployment ceilings) and U+0000 handling.

The schema is checked in isolation; the turn loop runs on the in-memory fakes of
``test_turn_loop`` to show what a run reads (validated, capped values) and that model
output holding NUL is made storable in one place before it is saved or given to a tool.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from ai_agents.agent_settings import (
    SETTINGS_KEYS,
    Ceilings,
    read_settings,
    validate_settings,
)
from ai_agents.errors import InvalidStructuredOutput, ValidationError
from ai_agents.nul import nul_path, without_nul
from ai_agents.providers.base import ProviderResponse, Usage
from ai_agents.records import AgentRecord
from ai_agents.response import DoneEvent, TextDeltaEvent, ToolResultEvent
from ai_agents.runner import parse_outputs, validate_input
from ai_agents.runs.loop import LoopDefaults, Progress, TurnLoop
from ai_agents.runs.turn import RunTicket
from ai_agents.testing import ScriptedProvider, ScriptItem, call, calls
from ai_agents.tokens import default_counter
from ai_agents.tools.decorator import tool
from ai_agents.tools.registry import ToolRegistry
from tests.unit.test_turn_loop import DirectModels, MemoryStorage, _ticket, fake_model

__all__ = ["fake_model"]  # the fake model's registry entry, for every test here

CEILINGS = Ceilings(max_tool_iterations=50, max_output_tokens=128_000)


def _field(data: Any, **kw: Any) -> str:
    with pytest.raises(ValidationError) as info:
        validate_settings(data, ceilings=kw.pop("ceilings", CEILINGS), **kw)
    field: str = info.value.details["field"]
    return field


# --- the schema -----------------------------------------------------------------------


def test_valid_settings_pass_and_null_means_default() -> None:
    data = {
        "max_tool_iterations": 50,
        "tool_timeout": 30,
        "max_output_tokens": 4000,
        "temperature": 0.2,
        "use_user_memory": True,
        "user_rpm": 5,
        "user_tpm": 10_000,
        "retry": {"max_attempts": 2},
        "routing": {"local": {"provider": "ollama", "model": "m"}},
    }
    settings = validate_settings(data, ceilings=CEILINGS, model_max_output=4000)
    assert settings.tool_timeout == 30.0 and settings.max_tool_iterations == 50
    empty = validate_settings(dict.fromkeys(SETTINGS_KEYS), ceilings=CEILINGS)
    assert empty.max_tool_iterations is None and empty.retry is None


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"max_tool_iterations": "abc"}, "settings.max_tool_iterations"),
        ({"max_tool_iterations": -5}, "settings.max_tool_iterations"),
        ({"max_tool_iterations": 0}, "settings.max_tool_iterations"),
        ({"max_tool_iterations": True}, "settings.max_tool_iterations"),
        ({"max_tool_iterations": 2.0}, "settings.max_tool_iterations"),
        ({"tool_timeout": "x"}, "settings.tool_timeout"),
        ({"tool_timeout": 0}, "settings.tool_timeout"),
        ({"tool_timeout": math.inf}, "settings.tool_timeout"),
        ({"tool_timeout": 86_401}, "settings.tool_timeout"),
        ({"max_output_tokens": "lots"}, "settings.max_output_tokens"),
        ({"max_output_tokens": 0}, "settings.max_output_tokens"),
        ({"temperature": 2.5}, "settings.temperature"),
        ({"temperature": "warm"}, "settings.temperature"),
        ({"use_user_memory": "yes"}, "settings.use_user_memory"),
        ({"use_user_memory": 1}, "settings.use_user_memory"),
        ({"user_rpm": "x"}, "settings.user_rpm"),
        ({"user_rpm": 0}, "settings.user_rpm"),
        ({"user_tpm": 10**20}, "settings.user_tpm"),
        ({"retry": "often"}, "settings.retry"),
        ({"retry": {"max_attempts": 0}}, "settings.retry.max_attempts"),
        ({"retry": {"max_attempts": "3"}}, "settings.retry.max_attempts"),
        ({"retry": {"attempts": 3}}, "settings.retry"),
        ({"routing": ["local"]}, "settings.routing"),
    ],
)
def test_a_bad_value_names_its_field(data: dict[str, Any], field: str) -> None:
    assert _field(data) == field


def test_ceilings_bound_iterations_and_output() -> None:
    ceilings = Ceilings(max_tool_iterations=5, max_output_tokens=1000)
    assert _field({"max_tool_iterations": 100_000}, ceilings=ceilings) == (
        "settings.max_tool_iterations"
    )
    with pytest.raises(ValidationError, match="at most 5 .*max_tool_iterations_ceiling"):
        validate_settings({"max_tool_iterations": 6}, ceilings=ceilings)
    validate_settings({"max_tool_iterations": 5}, ceilings=ceilings)
    with pytest.raises(ValidationError, match="at most 1000 .*max_output_tokens_ceiling"):
        validate_settings({"max_output_tokens": 1_000_000}, ceilings=ceilings)
    # The model's own max_output is the lower bound when it is lower.
    with pytest.raises(ValidationError, match="at most 500 .*the model's max_output"):
        validate_settings({"max_output_tokens": 501}, ceilings=ceilings, model_max_output=500)
    validate_settings({"max_output_tokens": 500}, ceilings=ceilings, model_max_output=500)


def test_unknown_keys_are_rejected_with_the_allowed_list() -> None:
    with pytest.raises(ValidationError, match="unknown agent setting.*max_iterations") as info:
        validate_settings({"max_iterations": 3}, ceilings=CEILINGS)
    assert info.value.details == {
        "field": "settings.max_iterations",
        "allowed": list(SETTINGS_KEYS),
    }
    assert _field("not a mapping") == "settings"


def test_read_settings_ignores_unknown_keys_and_names_a_stored_bad_value() -> None:
    assert read_settings({"old_key": 1, "temperature": 0.5}).temperature == 0.5
    with pytest.raises(ValidationError, match="update the agent's settings") as info:
        read_settings({"max_tool_iterations": "abc"})
    assert info.value.details["field"] == "settings.max_tool_iterations"


# --- NUL --------------------------------------------------------------------------------


def test_nul_path_and_without_nul() -> None:
    assert nul_path("fine", "input") is None
    assert nul_path("a\x00b", "input") == "input"
    assert nul_path({"tags": ["ok", "b\x00d"]}, "metadata") == "metadata.tags[1]"
    assert nul_path({"k\x00": 1}, "metadata") == "metadata.k\\u0000"
    clean = {"a": ["x"], "b": 1}
    assert without_nul(clean) is clean  # nothing to replace: the same object
    assert without_nul({"k\x00": ["a\x00", {"n": "\x00"}], "i": 2}) == {
        "k\ufffd": ["a\ufffd", {"n": "\ufffd"}],
        "i": 2,
    }


def test_run_input_and_client_tool_outputs_with_nul_are_refused() -> None:
    with pytest.raises(ValidationError, match="NUL") as info:
        validate_input("hello\x00")
    assert info.value.details["field"] == "input"
    with pytest.raises(ValidationError) as info:
        validate_input("hello", {"a": {"b": "\x00"}})
    assert info.value.details["field"] == "metadata.a.b"
    with pytest.raises(ValidationError) as info:
        parse_outputs([{"tool_call_id": "c1", "output": "sn\x00w"}], ["c1"])
    assert info.value.details["field"] == "tool_outputs[0].output"


# --- the turn loop --------------------------------------------------------------------


def _agent_ticket(settings: dict[str, Any], **kw: Any) -> RunTicket:
    ticket = _ticket(**kw)
    agent: AgentRecord = ticket.agent
    agent.settings = settings
    return ticket


def _loop(
    script: list[ScriptItem],
    tools: ToolRegistry,
    storage: MemoryStorage,
    ceilings: Ceilings = CEILINGS,
) -> tuple[TurnLoop, ScriptedProvider]:
    provider = ScriptedProvider(script)
    models = DirectModels({"fake": provider})
    loop = TurnLoop(
        storage=storage,
        models=models,
        tools=tools,
        providers=models,
        counter=default_counter(),
        defaults=LoopDefaults(max_tool_iterations=3, tool_timeout=5.0, ceilings=ceilings),
    )
    return loop, provider


@pytest.fixture
def echo() -> tuple[ToolRegistry, list[dict[str, Any]]]:
    registry = ToolRegistry()
    seen: list[dict[str, Any]] = []

    @tool(registry=registry)
    def note(text: str, tags: list[str]) -> str:
        """Keep a note; answers with a NUL of its own."""
        seen.append({"text": text, "tags": tags})
        return f"kept\x00{text}"

    return registry, seen


async def test_a_stored_bad_setting_stops_the_run_before_any_model_call(
    echo: tuple[ToolRegistry, list[dict[str, Any]]],
) -> None:
    storage = MemoryStorage()
    loop, provider = _loop(["never sent"], echo[0], storage)
    with pytest.raises(ValidationError) as info:
        _ = [e async for e in loop.execute(_agent_ticket({"tool_timeout": "x"}))]
    assert info.value.details["field"] == "settings.tool_timeout"
    assert provider.requests == [] and storage.saved == []


async def test_a_lowered_ceiling_caps_an_agent_saved_before(
    echo: tuple[ToolRegistry, list[dict[str, Any]]],
) -> None:
    storage = MemoryStorage()
    forever = calls(call("note", text="again", tags=[]))
    ceilings = Ceilings(max_tool_iterations=4, max_output_tokens=300)
    loop, provider = _loop([forever] * 5, echo[0], storage, ceilings)
    ticket = _agent_ticket(
        {"max_tool_iterations": 100_000, "max_output_tokens": 100_000}, tools=["note"]
    )
    events = [e async for e in loop.execute(ticket)]
    provider.assert_complete()  # 4 iterations + the call whose tools are not executed
    done = events[-1]
    assert isinstance(done, DoneEvent) and done.response.finish_reason == "max_tool_iterations"
    assert len(echo[1]) == 4
    assert {r.max_output_tokens for r in provider.requests} == {300}


async def test_output_cap_is_the_ceiling_when_the_model_allows_more(
    echo: tuple[ToolRegistry, list[dict[str, Any]]],
) -> None:
    # The fake model's max_output is 500.
    for ceiling, sent in ((200, 200), (128_000, None)):
        loop, provider = _loop(
            ["ok"], echo[0], MemoryStorage(), Ceilings(max_output_tokens=ceiling)
        )
        _ = [e async for e in loop.execute(_agent_ticket({}))]
        assert provider.requests[0].max_output_tokens == sent
    loop, provider = _loop(["ok"], echo[0], MemoryStorage())
    _ = [e async for e in loop.execute(_agent_ticket({"max_output_tokens": 10_000}))]
    assert provider.requests[0].max_output_tokens == 500  # the model's own max_output


async def test_nul_from_the_model_and_a_tool_is_replaced_before_save_and_tools(
    echo: tuple[ToolRegistry, list[dict[str, Any]]],
) -> None:
    tools, seen = echo
    storage = MemoryStorage()
    first = calls(call("note", text="a\x00b", tags=["x\x00"]), content="Noting\x00 it.")
    loop, _ = _loop([first, "Done\x00."], tools, storage)
    events = [e async for e in loop.execute(_agent_ticket({}, tools=["note"]), stream=True)]

    assert seen == [{"text": "a\ufffdb", "tags": ["x\ufffd"]}]  # the tool ran, arguments clean
    (turn,) = storage.saved
    assert [m.role for m in turn] == ["user", "assistant", "tool", "assistant"]
    assert turn[1].content == "Noting\ufffd it."
    assert turn[1].tool_calls[0].arguments == {"text": "a\ufffdb", "tags": ["x\ufffd"]}
    assert turn[2].content == "kept\ufffda\ufffdb"
    assert turn[3].content == "Done\ufffd."
    steps = str([s.details for s in storage.steps.values()])
    assert "\x00" not in steps
    deltas = [e.text for e in events if isinstance(e, TextDeltaEvent)]
    results = [e.result for e in events if isinstance(e, ToolResultEvent)]
    assert deltas and not any("\x00" in t for t in deltas + results)


async def test_progress_holds_the_usage_of_a_run_that_fails(
    echo: tuple[ToolRegistry, list[dict[str, Any]]],
) -> None:
    bad = [ProviderResponse(content="not json", usage=Usage(7, 3)) for _ in range(2)]
    loop, _ = _loop(list(bad), echo[0], MemoryStorage())
    progress = Progress()
    ticket = _ticket(response_format={"type": "json_object"})
    with pytest.raises(InvalidStructuredOutput):
        _ = [e async for e in loop.execute(ticket, progress=progress)]
    assert progress.state is not None
    assert progress.state.unrecorded == Usage(14, 6)  # both rejected answers were spent
