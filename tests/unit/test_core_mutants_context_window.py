"""Context-window arithmetic, pinned exactly (:mod:`ai_agents.memory.context`): whole
blocks only, the longest suffix that fits, and the overflow of the current turn."""

from __future__ import annotations

import pytest

from ai_agents.memory.context import ContextOverflow, blocks, fit_recent, require_fit, tokens
from ai_agents.messages import Message, ToolCall, assistant, tool_result, user


def size(message: Message) -> int:
    return len(message.text) or 1


def test_a_call_and_its_results_are_one_block_and_strays_are_dropped() -> None:
    a, b = ToolCall("a", "t", {}), ToolCall("b", "t", {})
    asking = assistant(None, [a, b])
    history = [
        tool_result(a, "stray before any call"),
        user("q"),
        tool_result(a, "stray after a user message"),
        asking,
        tool_result(a, "A"),
        Message(role="tool", content="answers another call", tool_call_id="zz"),
        tool_result(b, "B"),
        assistant("plain"),
        tool_result(b, "stray after a plain answer"),
    ]
    grouped = blocks(history)
    assert [[m.content for m in block] for block in grouped] == [
        ["q"],
        [None, "A", "B"],
        ["plain"],
    ]
    assert grouped[1][0] is asking


def test_the_longest_suffix_of_whole_blocks_that_fits() -> None:
    a = ToolCall("a", "t", {})
    history = [user("aaaa"), assistant(None, [a]), tool_result(a, "bb"), user("ccc")]
    # Blocks cost 4, 1 + 2, 3.
    assert [m.content for m in fit_recent(history, 3, size)] == ["ccc"]
    assert [m.content for m in fit_recent(history, 5, size)] == ["ccc"]
    assert [m.content for m in fit_recent(history, 6, size)] == [None, "bb", "ccc"]
    assert [m.content for m in fit_recent(history, 9, size)] == [None, "bb", "ccc"]
    assert [m.content for m in fit_recent(history, 10, size)] == ["aaaa", None, "bb", "ccc"]
    assert fit_recent(history, 2, size) == []
    # An older block that would fit is not taken past one that does not.
    assert [m.content for m in fit_recent([user("x"), user("yyyyyy"), user("z")], 3, size)] == ["z"]


def test_tokens_are_summed() -> None:
    assert tokens([user("ab"), user("cde")], size) == 5
    assert tokens([], size) == 0


def test_the_budget_left_after_the_current_turn() -> None:
    assert require_fit([user("abc")], 10, size) == 7
    assert require_fit([user("abc")], 3, size) == 0
    with pytest.raises(ContextOverflow) as exc:
        require_fit([user("abcd"), user("e")], 4, size)
    assert exc.value.code == "context_overflow"
    assert exc.value.details == {"needed": 5, "available": 4}
    assert str(exc.value) == (
        "the input needs 5 tokens but only 4 fit the model's context window "
        "(after the system prompt, tool definitions and reserved output)"
    )
