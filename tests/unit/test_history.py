"""normalize_history and the id/merge helpers used by every vendor adapter."""

from __future__ import annotations

import copy

from ai_agents.messages import Message, ToolCall, assistant, system, tool_result, user
from ai_agents.providers.history import (
    ANTHROPIC_TOOL_ID_PATTERN,
    INTERRUPTED_RESULT,
    merge_consecutive,
    normalize_history,
    remap_tool_ids,
    to_id_safe,
)


def call(id_: str, name: str = "lookup", **arguments: object) -> ToolCall:
    return ToolCall(id=id_, name=name, arguments=dict(arguments))


def result(id_: str | None, content: str, name: str | None = "lookup") -> Message:
    return Message(role="tool", content=content, tool_call_id=id_, tool_name=name)


def shape(messages: list[Message]) -> list[tuple[str, str | None, tuple[str, ...]]]:
    return [(m.role, m.tool_call_id, tuple(c.id for c in m.tool_calls)) for m in messages]


def assert_well_formed(messages: list[Message]) -> None:
    """Every call answered once, right after its call, in order; ids unique; no orphans."""
    seen: set[str] = set()
    i = 0
    while i < len(messages):
        m = messages[i]
        assert m.role != "tool", f"orphan tool message at {i}"
        if m.role == "assistant" and m.tool_calls:
            ids = [c.id for c in m.tool_calls]
            assert all(ids) and not seen & set(ids) and len(set(ids)) == len(ids)
            seen.update(ids)
            answers = [r.tool_call_id for r in messages[i + 1 : i + 1 + len(ids)]]
            assert answers == ids
            i += 1 + len(ids)
        else:
            i += 1


def test_clean_history_is_unchanged_and_not_mutated() -> None:
    c = call("call_a", q="x")
    history = [system("be nice"), user("hi"), assistant("", [c]), tool_result(c, "42")]
    history.append(assistant("done"))
    before = copy.deepcopy(history)
    out = normalize_history(history)
    assert shape(out) == shape(history)
    assert [m.content for m in out] == [m.content for m in history]
    assert out is not history
    # Messages without tool traffic are shared (cheap); tool messages are copies.
    assert out[1] is history[1]
    assert out[2].tool_calls is not history[2].tool_calls
    assert history == before


def test_interrupted_call_gets_error_result_and_call_is_kept() -> None:
    a, b = call("call_a"), call("call_b")
    history = [user("hi"), assistant("working", [a, b]), tool_result(a, "ok"), user("well?")]
    out = normalize_history(history)
    assert_well_formed(out)
    assert [m.role for m in out] == ["user", "assistant", "tool", "tool", "user"]
    synthesized = out[3]
    assert synthesized.tool_call_id == "call_b"
    assert synthesized.tool_name == "lookup"
    assert synthesized.content == INTERRUPTED_RESULT
    assert synthesized.is_error
    assert not out[2].is_error


def test_call_at_end_of_history_without_result() -> None:
    out = normalize_history([user("hi"), assistant(None, [call("call_a")])])
    assert_well_formed(out)
    assert out[-1].content == INTERRUPTED_RESULT


def test_results_are_reordered_to_call_order() -> None:
    a, b, c = call("a"), call("b"), call("c")
    history = [
        user("hi"),
        assistant(None, [a, b, c]),
        tool_result(c, "C"),
        tool_result(a, "A"),
        tool_result(b, "B"),
    ]
    out = normalize_history(history)
    assert [m.content for m in out[2:]] == ["A", "B", "C"]


def test_orphan_results_are_dropped() -> None:
    a = call("call_a")
    history = [
        result("call_zz", "orphan at start"),
        user("hi"),
        result("call_zz", "orphan after user"),
        assistant("plain answer"),
        result("call_zz", "orphan after plain assistant"),
        user("again"),
        assistant(None, [a]),
        tool_result(a, "ok"),
        result("call_other", "answers nothing in this turn"),
        tool_result(a, "second answer to the same call"),
        user("later"),
        tool_result(a, "late answer after a user message"),
    ]
    out = normalize_history(history)
    assert_well_formed(out)
    assert [m.content for m in out if m.role == "tool"] == ["ok"]
    assert [m.role for m in out] == ["user", "assistant", "user", "assistant", "tool", "user"]


def test_missing_ids_are_synthesized_and_results_matched_by_name() -> None:
    history = [
        user("hi"),
        assistant(None, [call("", "alpha"), call("", "beta")]),
        result(None, "B", name="beta"),
        result("", "A", name="alpha"),
    ]
    out = normalize_history(history)
    assert_well_formed(out)
    assert [c.id for c in out[1].tool_calls] == ["call_1_0", "call_1_1"]
    assert [(m.tool_call_id, m.content) for m in out[2:]] == [("call_1_0", "A"), ("call_1_1", "B")]


def test_duplicate_ids_in_one_message_are_remapped_in_order() -> None:
    history = [
        user("hi"),
        assistant(None, [call("call_0", n=1), call("call_0", n=2)]),
        result("call_0", "first"),
        result("call_0", "second"),
    ]
    out = normalize_history(history)
    assert_well_formed(out)
    ids = [c.id for c in out[1].tool_calls]
    assert ids[0] == "call_0" and ids[1] == "call_1_1"
    assert [(m.tool_call_id, m.content) for m in out[2:]] == [
        ("call_0", "first"),
        ("call_1_1", "second"),
    ]


def test_duplicate_ids_across_turns_are_remapped() -> None:
    history = [
        user("hi"),
        assistant(None, [call("call_0")]),
        result("call_0", "turn 1"),
        user("more"),
        assistant(None, [call("call_0")]),
        result("call_0", "turn 2"),
    ]
    out = normalize_history(history)
    assert_well_formed(out)
    assert out[4].tool_calls[0].id == "call_4_0"
    assert (out[5].tool_call_id, out[5].content) == ("call_4_0", "turn 2")
    assert (out[2].tool_call_id, out[2].content) == ("call_0", "turn 1")


def test_synthesized_ids_avoid_existing_ids() -> None:
    history = [
        user("hi"),
        assistant(None, [call("call_1_0"), call("")]),
        result("call_1_0", "x"),
    ]
    out = normalize_history(history)
    assert_well_formed(out)
    assert out[1].tool_calls[1].id == "call_1_1"
    history = [user("hi"), assistant(None, [call(""), call("call_1_0")])]
    out = normalize_history(history)
    assert_well_formed(out)
    ids = [c.id for c in out[1].tool_calls]
    assert ids[1] == "call_1_0" and ids[0] != "call_1_0"


def test_system_messages_kept_and_moved_after_results() -> None:
    a = call("call_a")
    history = [
        system("rules"),
        user("hi"),
        assistant(None, [a]),
        system("mid-call note"),
        tool_result(a, "ok"),
        system("later note"),
        user("bye"),
    ]
    out = normalize_history(history)
    assert_well_formed(out)
    assert [(m.role, m.content) for m in out] == [
        ("system", "rules"),
        ("user", "hi"),
        ("assistant", None),
        ("tool", "ok"),
        ("system", "mid-call note"),
        ("system", "later note"),
        ("user", "bye"),
    ]


def test_arguments_and_metadata_are_copied() -> None:
    a = call("call_a", q="x")
    history = [user("hi"), assistant(None, [a]), tool_result(a, "boom", is_error=True)]
    out = normalize_history(history)
    out[1].tool_calls[0].arguments["q"] = "changed"
    out[2].metadata["extra"] = 1
    assert a.arguments == {"q": "x"}
    assert history[2].metadata == {"is_error": True}
    assert out[2].is_error


def test_empty_history() -> None:
    assert normalize_history([]) == []


# --- merge_consecutive ----------------------------------------------------------------


def test_merge_consecutive_same_roles() -> None:
    a = call("call_a")
    history = [
        user("one"),
        user(""),
        user("two"),
        assistant("x"),
        assistant(None, [a]),
        tool_result(a, "r1"),
        tool_result(a, "r2"),
        user("three"),
    ]
    before = copy.deepcopy(history)
    out = merge_consecutive(history)
    assert [m.role for m in out] == ["user", "assistant", "tool", "tool", "user"]
    assert out[0].content == "one\n\ntwo"
    assert out[1].content == "x" and [c.id for c in out[1].tool_calls] == ["call_a"]
    assert history == before


def test_merge_consecutive_respects_roles() -> None:
    history = [system("a"), system("b"), user("c"), user("d")]
    out = merge_consecutive(history, roles=("system",), separator=" ")
    assert [(m.role, m.content) for m in out] == [("system", "a b"), ("user", "c"), ("user", "d")]


# --- ids --------------------------------------------------------------------------------


def test_to_id_safe_keeps_valid_ids() -> None:
    for good in ("toolu_01A09q90qw90lq917835lq9", "call_abc", "x-1"):
        assert to_id_safe(good) == good


def test_to_id_safe_maps_invalid_ids_deterministically() -> None:
    weird = ["call.1", "call:1", "call 1", "fc/abc+def==", "", "ü"]
    mapped = [to_id_safe(w) for w in weird]
    assert all(ANTHROPIC_TOOL_ID_PATTERN.fullmatch(m) for m in mapped)
    assert mapped == [to_id_safe(w) for w in weird]  # deterministic
    assert len(set(mapped)) == len(weird)  # no collisions ("call.1" vs "call:1")


def test_to_id_safe_max_length() -> None:
    long_id = "toolu_" + "x" * 60
    short = to_id_safe(long_id, None, max_length=40)
    assert len(short) <= 40
    assert short == to_id_safe(long_id, None, max_length=40)
    assert short != to_id_safe(long_id + "y", None, max_length=40)
    assert to_id_safe("call.1", None, max_length=40) == "call.1"  # no pattern: only length


def test_remap_tool_ids_maps_call_and_result_consistently() -> None:
    c = call("call.weird:1")
    history = [user("hi"), assistant(None, [c]), tool_result(c, "ok")]
    out = remap_tool_ids(history, to_id_safe)
    assert out[1].tool_calls[0].id == out[2].tool_call_id
    assert ANTHROPIC_TOOL_ID_PATTERN.fullmatch(out[2].tool_call_id or "")
    assert history[1].tool_calls[0].id == "call.weird:1"
