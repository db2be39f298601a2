"""History repair, pinned exactly: the cases the mutation run (``make mutation``) showed
unchecked in :mod:`ai_agents.providers.history`.

Each test names the rule of the module's docstrings it holds; the exact ids and texts
are the documented ones (``call_<message>_<call>``, ``<cleaned>_<12 hex of sha256>``).
"""

from __future__ import annotations

import hashlib
import re

from ai_agents.messages import Message, ToolCall, assistant, user
from ai_agents.providers.history import (
    INTERRUPTED_RESULT,
    merge_consecutive,
    normalize_history,
    remap_tool_ids,
    to_id_safe,
)
from tests.unit.test_history import call, result


def digest(tool_id: str) -> str:
    return hashlib.sha256(tool_id.encode()).hexdigest()[:12]


# --- normalize_history: results without an id ---------------------------------------------


def test_an_idless_result_answers_the_idless_call_first() -> None:
    history = [
        user("hi"),
        assistant(None, [call("call_a"), call("")]),
        result(None, "for the idless call"),
    ]
    out = normalize_history(history)
    # The result goes to the second call (no id either); the first is interrupted.
    assert [(m.tool_call_id, m.content) for m in out[2:]] == [
        ("call_a", INTERRUPTED_RESULT),
        ("call_1_1", "for the idless call"),
    ]


def test_an_idless_result_answers_the_first_unanswered_call_of_its_name() -> None:
    history = [
        user("hi"),
        assistant(None, [call("call_a"), call("call_b")]),
        result(None, "first"),
    ]
    out = normalize_history(history)
    assert [(m.tool_call_id, m.content) for m in out[2:]] == [
        ("call_a", "first"),
        ("call_b", INTERRUPTED_RESULT),
    ]


def test_an_idless_result_of_another_tool_is_dropped() -> None:
    history = [user("hi"), assistant(None, [call("call_a")]), result(None, "x", name="other")]
    out = normalize_history(history)
    assert [(m.role, m.content) for m in out] == [
        ("user", "hi"),
        ("assistant", None),
        ("tool", INTERRUPTED_RESULT),
    ]


def test_an_assistant_message_without_calls_is_shared_not_copied() -> None:
    history = [user("hi"), assistant("plain"), user("again")]
    out = normalize_history(history)
    assert all(o is h for o, h in zip(out, history, strict=True))


# --- normalize_history: synthesized ids ---------------------------------------------------


def test_a_synthesized_id_skips_taken_ones_with_a_counting_suffix() -> None:
    # Message 1's calls repeat "dup"; call_1_1 and call_1_1_1 are taken elsewhere.
    history = [
        user("hi"),
        assistant(None, [call("dup"), call("dup")]),
        result("dup", "one"),
        assistant(None, [call("call_1_1"), call("call_1_1_1")]),
    ]
    out = normalize_history(history)
    assert [c.id for c in out[1].tool_calls] == ["dup", "call_1_1_2"]


def test_the_first_suffix_of_a_taken_synthesized_id_is_one() -> None:
    history = [
        user("hi"),
        assistant(None, [call("dup"), call("dup")]),
        assistant(None, [call("call_1_1")]),
    ]
    out = normalize_history(history)
    assert [c.id for c in out[1].tool_calls] == ["dup", "call_1_1_1"]


# --- merge_consecutive ----------------------------------------------------------------------


def test_tool_messages_are_never_merged_even_when_asked() -> None:
    messages = [result("a", "A"), result("b", "B")]
    out = merge_consecutive(messages, roles=("tool",))
    assert [(m.tool_call_id, m.content) for m in out] == [("a", "A"), ("b", "B")]


def test_merging_messages_without_text_keeps_no_text() -> None:
    first = assistant(None, [call("a")])
    second = assistant(None, [call("b")])
    (merged,) = merge_consecutive([first, second])
    assert merged.content is None
    assert [c.id for c in merged.tool_calls] == ["a", "b"]


def test_merged_metadata_is_the_union_and_the_earlier_message_wins() -> None:
    first = Message(role="user", content="a", metadata={"k": 1, "only_first": True})
    second = Message(role="user", content="b", metadata={"k": 2, "only_second": True})
    (merged,) = merge_consecutive([first, second])
    assert merged.content == "a\n\nb"
    assert merged.metadata == {"k": 1, "only_first": True, "only_second": True}


# --- remap_tool_ids -------------------------------------------------------------------------


def test_remapping_ids_keeps_each_call_name_and_arguments() -> None:
    history = [assistant(None, [call("a.b", "weather", city="Paris")]), result("a.b", "sunny")]
    out = remap_tool_ids(history, str.upper)
    assert out[0].tool_calls == [ToolCall(id="A.B", name="weather", arguments={"city": "Paris"})]
    assert out[0].tool_calls[0].arguments is not history[0].tool_calls[0].arguments
    assert (out[1].tool_call_id, out[1].tool_name) == ("A.B", "lookup")


# --- to_id_safe -----------------------------------------------------------------------------


def test_an_unsafe_id_becomes_cleaned_text_and_twelve_hex_of_its_hash() -> None:
    assert to_id_safe("call.1") == f"call_1_{digest('call.1')}"
    assert to_id_safe("__x.y__") == f"x_y_{digest('__x.y__')}"  # "_" trimmed at both ends
    assert to_id_safe("X.y") == f"X_y_{digest('X.y')}"
    assert to_id_safe("...") == f"call_{digest('...')}"  # nothing safe is left


def test_an_id_of_exactly_max_length_is_kept() -> None:
    assert to_id_safe("abcdef", max_length=6) == "abcdef"
    assert to_id_safe("abcdefg", max_length=6) == digest("abcdefg")[:6]


def test_a_shortened_id_fills_max_length_exactly() -> None:
    assert to_id_safe("abc.def", max_length=20) == f"abc_def_{digest('abc.def')}"
    long = "abcdefghijklmnopqrstuvwxyz"
    assert to_id_safe(long, max_length=20) == f"abcdefg_{digest(long)}"
    # One character of the original still fits (keep == 1) ...
    assert to_id_safe("abcdefghijklmnop", max_length=14) == f"a_{digest('abcdefghijklmnop')}"
    # ... none does (keep == 0, and below): the hash alone, cut to the length.
    assert to_id_safe("abcdefghijklmnop", max_length=13) == digest("abcdefghijklmnop")
    assert to_id_safe("abcdefghijklmnop", max_length=10) == digest("abcdefghijklmnop")[:10]


def test_a_safe_id_that_still_breaks_the_pattern_falls_back_to_id_and_hash() -> None:
    lower = re.compile(r"^[a-z0-9]+$")
    assert to_id_safe("x.y", pattern=lower) == f"id_{digest('x.y')}"


def test_a_synthesized_result_is_marked_as_an_error_and_as_synthesized() -> None:
    out = normalize_history([user("hi"), assistant(None, [call("call_a", "weather")])])
    assert out[-1] == Message(
        role="tool",
        content=INTERRUPTED_RESULT,
        tool_call_id="call_a",
        tool_name="weather",
        metadata={"is_error": True, "synthesized": True},
    )


def test_a_result_keeps_its_tool_name_or_takes_its_call_name() -> None:
    history = [
        user("hi"),
        assistant(None, [call("call_a", "weather"), call("call_b", "weather")]),
        result("call_a", "sunny", name=None),
        result("call_b", "rainy", name="forecast"),
    ]
    out = normalize_history(history)
    assert [(m.tool_call_id, m.tool_name) for m in out[2:]] == [
        ("call_a", "weather"),
        ("call_b", "forecast"),
    ]


def test_a_repaired_call_keeps_its_name_and_arguments() -> None:
    history = [user("hi"), assistant(None, [call("", "weather", city="Paris")])]
    (repaired,) = normalize_history(history)[1].tool_calls
    assert repaired == ToolCall(id="call_1_0", name="weather", arguments={"city": "Paris"})
    assert repaired.arguments is not history[1].tool_calls[0].arguments
