"""The XML tool-call protocol: rendering, and parsing what small models really write."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ai_agents.messages import ToolCall
from ai_agents.providers.base import ToolSpec
from ai_agents.tools.parser import (
    TOOL_INJECTION_TEMPLATE,
    ParsedOutput,
    parse_tool_calls,
    render_tool_call,
    render_tool_instructions,
    render_tool_result,
)

UNCHANGED = object()  # expected text: the input, untouched


@dataclass(frozen=True)
class Case:
    text: str
    calls: list[tuple[str, dict[str, Any]]]
    out: Any = ""  # expected remaining text (str), UNCHANGED, or a predicate
    known: tuple[str, ...] | None = None
    problem: str | None = None  # a substring expected in one of the problems


CANONICAL = """<tool_call>
<name>get_weather</name>
<arguments>
{"city": "Paris"}
</arguments>
</tool_call>"""
PARIS = [("get_weather", {"city": "Paris"})]

CASES: dict[str, Case] = {
    "canonical": Case(CANONICAL, PARIS),
    "prose_before_and_after": Case(
        f"Let me look that up for you.\n\n{CANONICAL}\n\nI'll report back shortly.",
        PARIS,
        "Let me look that up for you.\n\nI'll report back shortly.",
    ),
    "xml_code_fence": Case(
        f"Sure:\n```xml\n{CANONICAL}\n```\nOne moment.", PARIS, "Sure:\n\nOne moment."
    ),
    "plain_code_fence": Case(f"```\n{CANONICAL}\n```", PARIS, ""),
    "fence_never_closed": Case(f"Checking.\n```xml\n{CANONICAL}", PARIS, "Checking."),
    "two_calls_in_one_fence": Case(
        "```xml\n<tool_call><name>a</name><arguments>{}</arguments></tool_call>\n"
        '<tool_call><name>b</name><arguments>{"x": 1}</arguments></tool_call>\n```',
        [("a", {}), ("b", {"x": 1})],
        "",
    ),
    "several_calls_with_prose": Case(
        "I'll check both cities.\n"
        '<tool_call>\n<name>get_weather</name>\n<arguments>{"city": "Paris"}</arguments>\n'
        "</tool_call>\nand\n"
        '<tool_call>\n<name>get_weather</name>\n<arguments>{"city": "Rome"}</arguments>\n'
        "</tool_call>\nThen I'll compare.",
        [("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Rome"})],
        "I'll check both cities.\n\nand\n\nThen I'll compare.",
    ),
    "n_tag": Case(
        '<tool_call><n>get_weather</n><arguments>{"city": "Paris"}</arguments></tool_call>', PARIS
    ),
    "tool_name_tag": Case(
        '<tool_call>\n<tool_name>get_weather</tool_name>\n<arguments>{"city": "Paris"}'
        "</arguments>\n</tool_call>",
        PARIS,
    ),
    "tool_tag": Case(
        '<tool_call><tool>get_weather</tool><arguments>{"city": "Paris"}</arguments></tool_call>',
        PARIS,
    ),
    "name_after_arguments": Case(
        '<tool_call><arguments>{"city": "Paris"}</arguments><name>get_weather</name></tool_call>',
        PARIS,
    ),
    "attribute_name_with_arguments": Case(
        '<tool_call name="get_weather">\n<arguments>{"city": "Paris"}</arguments>\n</tool_call>',
        PARIS,
    ),
    "attribute_name_with_json_body": Case(
        '<tool_call name=\'get_weather\'>{"city": "Paris"}</tool_call>', PARIS
    ),
    "attribute_self_closing": Case(
        'Time?\n<tool_call name="get_time" />', [("get_time", {})], "Time?"
    ),
    "single_quotes": Case(
        "<tool_call><name>get_weather</name><arguments>{'city': 'Paris'}</arguments></tool_call>",
        PARIS,
        problem="repaired",
    ),
    "trailing_commas": Case(
        '<tool_call><name>search</name><arguments>{"q": "cats", "tags": ["a", "b",],}'
        "</arguments></tool_call>",
        [("search", {"q": "cats", "tags": ["a", "b"]})],
    ),
    "messy_spacing_and_empty_python_dict": Case(
        "<tool_call>\n  <name> get_time </name>\n\n  <arguments>{ , }</arguments>\n</tool_call >",
        [("get_time", {})],
    ),
    "python_literals": Case(
        "<tool_call><name>search</name><arguments>{'q': 'x', 'exact': True, 'lang': None, "
        "'fuzzy': False}</arguments></tool_call>",
        [("search", {"q": "x", "exact": True, "lang": None, "fuzzy": False})],
    ),
    "json_literals_in_single_quotes": Case(
        "<tool_call><name>search</name><arguments>{'q': 'x', 'exact': true, 'lang': null}"
        "</arguments></tool_call>",
        [("search", {"q": "x", "exact": True, "lang": None})],
    ),
    "unquoted_keys": Case(
        '<tool_call><name>search</name><arguments>{query: "cats", limit: 3}</arguments>'
        "</tool_call>",
        [("search", {"query": "cats", "limit": 3})],
    ),
    "unquoted_keys_and_values": Case(
        "<tool_call><name>get_weather</name><arguments>{city: New York, days: 2}</arguments>"
        "</tool_call>",
        [("get_weather", {"city": "New York", "days": 2})],
    ),
    "nested_xml_arguments": Case(
        "<tool_call><name>get_weather</name><arguments><city>Paris</city><days>3</days>"
        "</arguments></tool_call>",
        [("get_weather", {"city": "Paris", "days": 3})],
    ),
    "nested_xml_coercion": Case(
        "<tool_call>\n<name>book</name>\n<arguments>\n  <city> Paris </city>\n"
        "  <nights>2</nights>\n  <price>99.5</price>\n  <breakfast>true</breakfast>\n"
        "  <zip>07300</zip>\n  <guest><first>Ann</first><age>31</age></guest>\n"
        "  <tag>a</tag>\n  <tag>b</tag>\n</arguments>\n</tool_call>",
        [
            (
                "book",
                {
                    "city": "Paris",
                    "nights": 2,
                    "price": 99.5,
                    "breakfast": True,
                    "zip": "07300",
                    "guest": {"first": "Ann", "age": 31},
                    "tag": ["a", "b"],
                },
            )
        ],
    ),
    "parameter_name_elements": Case(
        '<tool_call><name>get_weather</name><arguments><parameter name="city">Paris'
        "</parameter><parameter=days>2</parameter></arguments></tool_call>",
        [("get_weather", {"city": "Paris", "days": 2})],
    ),
    "xml_fields_without_arguments_tag": Case(
        "<tool_call><name>get_weather</name><city>Paris</city></tool_call>", PARIS
    ),
    "missing_arguments": Case(
        "<tool_call>\n<name>get_time</name>\n</tool_call>", [("get_time", {})]
    ),
    "empty_arguments": Case(
        "<tool_call><name>get_time</name><arguments>\n</arguments></tool_call>",
        [("get_time", {})],
    ),
    "hermes_json": Case(
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>',
        PARIS,
    ),
    "hermes_parameters": Case(
        '<tool_call>{"name": "get_weather", "parameters": {"city": "Paris"}}</tool_call>',
        PARIS,
    ),
    "hermes_arguments_as_string": Case(
        '<tool_call>{"name": "get_weather", "arguments": "{\\"city\\": \\"Paris\\"}"}</tool_call>',
        PARIS,
    ),
    "hermes_python_dict": Case(
        "<tool_call>{'name': 'get_weather', 'arguments': {'city': 'Paris'}}</tool_call>", PARIS
    ),
    "hermes_in_json_fence": Case(
        '<tool_call>\n```json\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n```\n'
        "</tool_call>",
        PARIS,
    ),
    "openai_function_object": Case(
        '<tool_call>{"type": "function", "function": {"name": "get_weather", '
        '"arguments": "{\\"city\\": \\"Paris\\"}"}}</tool_call>',
        PARIS,
    ),
    "hermes_flat_keys": Case(
        '<tool_call>{"name": "get_weather", "city": "Paris"}</tool_call>',
        PARIS,
        problem="keys next to its name",
    ),
    "hermes_several_objects_in_one_block": Case(
        '<tool_call>\n{"name": "a", "arguments": {}}\n{"name": "b", "arguments": {"x": 1}}\n'
        "</tool_call>",
        [("a", {}), ("b", {"x": 1})],
    ),
    "hermes_list_of_calls": Case(
        '<tool_call>[{"name": "a", "arguments": {}}, {"name": "b"}]</tool_call>',
        [("a", {}), ("b", {})],
    ),
    "whole_call_inside_arguments": Case(
        '<tool_call><arguments>{"name": "get_weather", "arguments": {"city": "Paris"}}'
        "</arguments></tool_call>",
        PARIS,
        problem="inside <arguments>",
    ),
    "reasoning_mentions_the_tag": Case(
        "<think>I should emit a <tool_call> for the weather.</think>\n" + CANONICAL,
        PARIS,
        "<think>I should emit a <tool_call> for the weather.</think>",
    ),
    "python_call_style": Case(
        '<tool_call>get_weather(city="Paris", days=3)</tool_call>',
        [("get_weather", {"city": "Paris", "days": 3})],
    ),
    "bare_name_only": Case("<tool_call>get_time</tool_call>", [("get_time", {})]),
    "unclosed_tool_call": Case(
        "Checking.\n<tool_call>\n<name>get_weather</name>\n<arguments>\n"
        '{"city": "Paris"}\n</arguments>\n',
        PARIS,
        "Checking.",
        problem="not closed",
    ),
    "unclosed_arguments": Case(
        '<tool_call>\n<name>get_weather</name>\n<arguments>\n{"city": "Paris"}\n</tool_call>',
        PARIS,
        problem="missing </arguments>",
    ),
    "unclosed_everything_json_cut": Case(
        '<tool_call>\n<name>get_weather</name>\n<arguments>\n{"city": "Paris"',
        PARIS,
        problem="closing brackets",
    ),
    "unclosed_then_next_call": Case(
        "<tool_call><name>a</name><arguments>{}</arguments>\n"
        "<tool_call><name>b</name><arguments>{}</arguments></tool_call>",
        [("a", {}), ("b", {})],
    ),
    "unclosed_name_tag": Case(
        '<tool_call>\n<name>get_weather\n{"city": "Paris"}\n</tool_call>', PARIS
    ),
    "case_differences": Case(
        '<Tool_Call><NAME>get_weather</NAME><Arguments>{"city": "Paris"}</ARGUMENTS></TOOL_CALL>',
        PARIS,
    ),
    "whitespace_inside_tags": Case(
        '< tool_call >\n< name >get_weather</ name >\n<arguments >{"city": "Paris"}'
        "< /arguments>\n</ tool_call >",
        PARIS,
    ),
    "function_call_alias": Case(
        '<function_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</function_call>',
        PARIS,
    ),
    "closing_tags_inside_json_string": Case(
        '<tool_call><name>write_note</name><arguments>{"text": "use </arguments> and '
        '</tool_call> <tool_call> literally"}</arguments></tool_call> Saved.',
        [("write_note", {"text": "use </arguments> and </tool_call> <tool_call> literally"})],
        "Saved.",
    ),
    "unknown_tool_is_returned": Case(
        CANONICAL.replace("get_weather", "get_wether"),
        [("get_wether", {"city": "Paris"})],
        known=("get_weather", "search"),
        problem="unknown tool 'get_wether'",
    ),
    "known_tool_name_repaired": Case(
        CANONICAL.replace("get_weather", "functions.Get-Weather"),
        PARIS,
        known=("get_weather",),
        problem="taken as 'get_weather'",
    ),
    "list_arguments_wrapped": Case(
        "<tool_call><name>sum</name><arguments>[1, 2, 3]</arguments></tool_call>",
        [("sum", {"input": [1, 2, 3]})],
        problem="not a JSON object",
    ),
    "string_arguments_wrapped": Case(
        "<tool_call><name>search</name><arguments>best pizza in Naples</arguments></tool_call>",
        [("search", {"input": "best pizza in Naples"})],
        problem="not a JSON object",
    ),
    "json_string_arguments_wrapped": Case(
        '<tool_call><name>search</name><arguments>"pizza"</arguments></tool_call>',
        [("search", {"input": "pizza"})],
    ),
    "hallucinated_tool_result_dropped": Case(
        f"{CANONICAL}\n<tool_result>Sunny, 25C</tool_result>\nIt is sunny in Paris.",
        PARIS,
        "",
        problem="its own <tool_result>",
    ),
    "unicode_arguments": Case(
        '<tool_call><name>translate</name><arguments>{"text": "héllo wörld ✓ 日本"}</arguments>'
        "</tool_call>",
        [("translate", {"text": "héllo wörld ✓ 日本"})],
    ),
    # --- plain answers: no call, text untouched ---------------------------------------
    "plain_answer": Case("The capital of France is Paris.", [], UNCHANGED),
    "mentions_tools": Case(
        "I don't need a tool for this: a tool call would be overkill. The answer is 42.",
        [],
        UNCHANGED,
    ),
    "html_markup": Case(
        "Use <b>bold</b> and <i>italic</i>, or <name>x</name> in your template.",
        [],
        UNCHANGED,
    ),
    "json_that_is_not_a_call": Case(
        'Here is the config:\n```json\n{"name": "get_weather", "arguments": {"city": "x"}}\n```',
        [],
        UNCHANGED,
    ),
    "mentions_the_tag": Case(
        "Wrap calls in <tool_call> tags and close them with </tool_call> afterwards.",
        [],
        UNCHANGED,
    ),
    "tool_call_without_name": Case(
        '<tool_call>\n<arguments>{"city": "Paris"}</arguments>\n</tool_call>',
        [],
        UNCHANGED,
        problem="without a readable tool name",
    ),
    "code_with_angle_brackets": Case(
        "In C++: `std::vector<int> v; if (a < b && c > d) {}`", [], UNCHANGED
    ),
}


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_parse_messy_outputs(case: Case) -> None:
    parsed = parse_tool_calls(case.text, known_tools=case.known)

    assert [(c.name, c.arguments) for c in parsed.calls] == case.calls
    if case.out is UNCHANGED:
        assert parsed.text == case.text
    elif callable(case.out):
        assert case.out(parsed.text)
    else:
        assert parsed.text == case.out
    if case.problem is not None:
        assert any(case.problem in p for p in parsed.problems), parsed.problems
    assert not any(p.startswith("internal") for p in parsed.problems)


def test_call_ids_are_unique_and_well_formed() -> None:
    text = "\n".join(render_tool_call(ToolCall("x", f"tool_{i}", {"i": i})) for i in range(20))
    parsed = parse_tool_calls(text)
    ids = [c.id for c in parsed.calls]
    assert len(ids) == 20
    assert len(set(ids)) == 20
    assert all(re.fullmatch(r"call_[0-9a-f]{24}", i) for i in ids)


def test_clean_parse_reports_no_problems() -> None:
    parsed = parse_tool_calls(f"Hi.\n{CANONICAL}", known_tools={"get_weather"})
    assert parsed.problems == []
    assert parsed.text == "Hi."


def test_parsed_output_is_frozen() -> None:
    parsed = parse_tool_calls("hello")
    assert isinstance(parsed, ParsedOutput)
    with pytest.raises(AttributeError):
        parsed.text = "x"  # type: ignore[misc]


def test_many_calls_are_capped() -> None:
    text = "".join(render_tool_call(ToolCall("x", "t", {})) for _ in range(100))
    parsed = parse_tool_calls(text)
    assert 0 < len(parsed.calls) <= 64
    assert any("stopped reading" in p for p in parsed.problems)


ADVERSARIAL = [
    "<" * 200_000,
    "<tool_call>" * 20_000,
    '<tool_call><arguments>{"a' * 10_000,
    "<tool_call><name>x</name><arguments>" + "[" * 50_000,
    "<tool_call><name>x</name><arguments>" + "{'a': " * 20_000,
    "<tool_call name=" + " " * 100_000 + "x",
    "<tool_call><name>x</name><arguments>" + "<a>" * 30_000,
    "<tool_call><name>x</name><arguments>" + "<" + " " * 100_000 + "a",
    "<tool_call>\n<name>" + "a" * 100_000,
    "```" * 30_000 + "<tool_call><name>x</name></tool_call>",
    "<tool_call><name>x</name></tool_call>" + " " * 100_000 + "<tool_result",
]


@pytest.mark.parametrize("text", ADVERSARIAL, ids=range(len(ADVERSARIAL)))
def test_adversarial_inputs_are_fast(text: str) -> None:
    # CPU time of this process, not wall time: a CPU burner next to the test (CI) slows
    # the wall clock, not the work done. Linear parsing takes < 0.1 s; catastrophic
    # backtracking or a quadratic scan over 100-200k characters takes far longer than 3 s.
    started = time.process_time()
    parsed = parse_tool_calls(text)
    assert time.process_time() - started < 3.0
    assert not any(p.startswith("internal") for p in parsed.problems)


# --- rendering ------------------------------------------------------------------------------

TOOLS = [
    ToolSpec(
        name="get_weather",
        description="Current weather for a city.",
        parameters={
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city"],
        },
    ),
    ToolSpec(name="get_time", description="The current time."),
]


def test_render_tool_instructions_lists_every_tool_and_schema() -> None:
    text = render_tool_instructions(TOOLS)
    for tool in TOOLS:
        assert tool.name in text
        assert tool.description in text
        assert json.dumps(tool.parameters, ensure_ascii=False) in text
    assert "<tool_call>\n<name>tool_name_here</name>\n<arguments>\n" in text
    assert '{"param1": "value1"}' in text
    assert "<tool_result>" in text
    assert "without any of these XML tags" in text
    assert "$tools" not in text
    assert "$tools" in TOOL_INJECTION_TEMPLATE


def test_render_tool_instructions_without_tools_is_empty() -> None:
    assert render_tool_instructions([]) == ""


def test_the_instructions_example_parses() -> None:
    parsed = parse_tool_calls(render_tool_instructions(TOOLS))
    assert [(c.name, c.arguments) for c in parsed.calls] == [
        ("tool_name_here", {"param1": "value1"})
    ]


def test_render_tool_call_format() -> None:
    call = ToolCall("call_1", "get_weather", {"city": "Zürich", "days": 2})
    assert render_tool_call(call) == (
        '<tool_call>\n<name>get_weather</name>\n<arguments>\n{"city": "Zürich", "days": 2}\n'
        "</arguments>\n</tool_call>"
    )


def test_render_tool_result() -> None:
    ok = render_tool_result("get_weather", "call_1", "Sunny, 25°C")
    assert (
        ok
        == '<tool_result name="get_weather" id="call_1" status="ok">\nSunny, 25°C\n</tool_result>'
    )
    error = render_tool_result("get_weather", "call_1", "city not found", is_error=True)
    assert 'status="error"' in error
    assert "city not found" in error
    odd = render_tool_result('a"b', "x\ny", "<b>kept</b> & as is")
    assert odd.splitlines()[0] == '<tool_result name="a\'b" id="x y" status="ok">'
    assert "<b>kept</b> & as is" in odd


# --- properties ------------------------------------------------------------------------------

FRAGMENTS = [
    "<tool_call>",
    "</tool_call>",
    '<tool_call name="x">',
    "<Tool_Call >",
    "<tool_call/>",
    "<name>",
    "</name>",
    "<n>",
    "<tool>",
    "<arguments>",
    "</arguments>",
    "<city>",
    "</city>",
    "<parameter=a>",
    "<tool_result>",
    "<function_call>",
    "{",
    "}",
    "[",
    "]",
    "(",
    ")",
    "'",
    '"',
    ":",
    ",",
    "=",
    "\\",
    "True",
    "null",
    "x",
    "get_weather",
    "42",
    "-1.5",
    " ",
    "\n",
    "```",
    "```xml\n",
    "<",
    ">",
    "/",
    "//",
    "é",
    "\x00",
    "<![CDATA[",
    "]]>",
    '{"name": "x", "arguments": {',
    '"arguments":',
    "'a': ",
    "a=",
]
_SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _check_never_raises(text: str) -> None:
    parsed = parse_tool_calls(text, known_tools=["get_weather"])
    assert isinstance(parsed.text, str)
    assert not any(p.startswith("internal") for p in parsed.problems), parsed.problems
    for call in parsed.calls:
        assert isinstance(call.name, str) and call.name
        assert isinstance(call.arguments, dict)
        json.dumps(call.arguments, allow_nan=False)  # JSON-compatible
    if not parsed.calls:
        assert parsed.text == text


@_SETTINGS
@given(st.text())
def test_never_raises_on_arbitrary_text(text: str) -> None:
    _check_never_raises(text)


@_SETTINGS
@given(st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=5)), max_size=40))
def test_never_raises_on_fragment_soup(parts: list[str]) -> None:
    _check_never_raises("".join(parts))


names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,30}", fullmatch=True)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(), inner, max_size=4)
    ),
    max_leaves=12,
)
arguments = st.dictionaries(st.text(), json_values, max_size=5)
prose = st.text(
    alphabet=st.characters(blacklist_characters="<`", blacklist_categories=("Cs",)), max_size=60
)


@_SETTINGS
@given(names, arguments)
def test_round_trip(name: str, args: dict[str, Any]) -> None:
    parsed = parse_tool_calls(render_tool_call(ToolCall("call_1", name, args)))
    assert [(c.name, c.arguments) for c in parsed.calls] == [(name, args)]
    assert parsed.text == ""


@_SETTINGS
@given(names, arguments, prose, prose)
def test_round_trip_with_prose(name: str, args: dict[str, Any], before: str, after: str) -> None:
    text = f"{before}\n{render_tool_call(ToolCall('call_1', name, args))}\n{after}"
    parsed = parse_tool_calls(text)
    assert [(c.name, c.arguments) for c in parsed.calls] == [(name, args)]
    assert "<tool_call>" not in parsed.text
    assert before.strip() in parsed.text
    assert after.strip() in parsed.text


@_SETTINGS
@given(st.lists(st.tuples(names, arguments, prose), min_size=1, max_size=3))
def test_round_trip_several_calls(calls: list[tuple[str, dict[str, Any], str]]) -> None:
    text = "".join(
        f"{between}\n{render_tool_call(ToolCall('c', name, args))}\n"
        for name, args, between in calls
    )
    parsed = parse_tool_calls(text)
    assert [(c.name, c.arguments) for c in parsed.calls] == [(n, a) for n, a, _ in calls]
    assert len({c.id for c in parsed.calls}) == len(calls)
