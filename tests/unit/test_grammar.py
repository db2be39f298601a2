"""The local model's output grammars (:mod:`ai_agents.providers.grammar`), without a model.

Which strings a grammar accepts is checked with a small GBNF recognizer
(:mod:`tests.unit.gbnf`); that llama.cpp itself parses them and the model follows them
is tested on the real model in ``tests/integration/test_local_model.py``.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from ai_agents.messages import ToolCall
from ai_agents.providers.base import ResponseFormat, ToolSpec
from ai_agents.tools.parser import parse_tool_calls, render_tool_call
from tests.unit.gbnf import Grammar, parse

pytest.importorskip("llama_cpp", reason="the grammars use llama-cpp-python's converter")

from ai_agents.providers.grammar import (  # noqa: E402 - needs llama_cpp
    MAX_GRAMMAR_CALLS,
    build_grammar,
    gbnf_literal,
    json_grammar,
)

WEATHER = ToolSpec(
    name="get_weather",
    description="Weather in a city",
    parameters={
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "days": {"type": "integer"},
            "unit": {"enum": ["C", "F"]},
        },
        "required": ["city"],
        "additionalProperties": False,
    },
)
CLOCK = ToolSpec(name="get_time", description="The time")  # the default empty schema


def grammar(**kwargs: Any) -> Grammar:
    text = build_grammar(**kwargs)
    assert text is not None
    return parse(text)


def call_text(name: str, arguments: dict[str, Any]) -> str:
    return render_tool_call(ToolCall("", name, arguments))


def test_literals_are_escaped() -> None:
    raw = 'say "hi"\\\n\tthere\r'
    assert gbnf_literal(raw) == '"say \\"hi\\"\\\\\\n\\tthere\\r"'
    assert parse(f"root ::= {gbnf_literal(raw)}").accepts(raw)


def test_free_text_needs_no_grammar() -> None:
    assert build_grammar(tools=[]) is None
    assert build_grammar(tools=[], response_format=ResponseFormat(type="text")) is None


def test_withheld_tools_leave_prose_without_tags() -> None:
    g = grammar(tools=[], withheld=True)
    assert g.accepts("Check-out is at 11:00.\n\nEnjoy your stay!")
    assert g.accepts("")
    for imitation in ('<tool_result name="x">y</tool_result>', "a <tool_call>", "1 <2"):
        assert not g.accepts(imitation)


def test_auto_accepts_prose_and_well_formed_calls_that_the_parser_reads() -> None:
    g = grammar(tools=[WEATHER, CLOCK])
    good = [
        {"city": "Paris"},
        {"city": 'Zürich "old town"', "days": 3, "unit": "F"},
        {"city": "Oslo", "unit": "C"},
    ]
    for arguments in good:
        text = call_text("get_weather", arguments)
        assert g.accepts(text), text
        assert g.accepts(f"Let me check.\n{text}")
        parsed = parse_tool_calls(text, known_tools={"get_weather", "get_time"})
        assert [(c.name, c.arguments) for c in parsed.calls] == [("get_weather", arguments)]
        assert not parsed.problems
    assert g.accepts(call_text("get_time", {}))
    assert g.accepts("It is sunny, no tool needed.")
    several = "\n".join(call_text("get_time", {}) for _ in range(MAX_GRAMMAR_CALLS))
    assert g.accepts(several)
    assert not g.accepts(several + "\n" + call_text("get_time", {}))


@pytest.mark.parametrize(
    "text",
    [
        call_text("get_wether", {"city": "Paris"}),  # unknown tool
        call_text("get_weather", {}),  # missing required argument
        call_text("get_weather", {"city": 7}),  # wrong type
        call_text("get_weather", {"city": "Paris", "days": 1.5}),  # not an integer
        call_text("get_weather", {"city": "Paris", "unit": "K"}),  # not in the enum
        call_text("get_weather", {"city": "Paris", "country": "FR"}),  # unknown property
        call_text("get_weather", {"city": "Paris"}).replace('"Paris"', '"Par\nis"'),  # raw newline
        call_text("get_weather", {"city": "Paris"}).removesuffix("</tool_call>"),  # cut off
        call_text("get_weather", {"city": "Paris"}) + "\nDone.",  # prose after the call
        '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>',
        "I will write <b>bold</b>",  # a tag in prose
    ],
)
def test_auto_rejects_malformed_calls_and_tags(text: str) -> None:
    assert not grammar(tools=[WEATHER, CLOCK]).accepts(text)


def test_forced_choice_leaves_only_calls() -> None:
    g = grammar(tools=[WEATHER], forced=True)
    assert g.accepts(call_text("get_weather", {"city": "Paris"}))
    assert not g.accepts("Sure.")
    assert not g.accepts("")
    assert not g.accepts("Sure. " + call_text("get_weather", {"city": "Paris"}))


def test_parallel_tool_calls_false_allows_one_call() -> None:
    one = call_text("get_time", {})
    g = grammar(tools=[CLOCK], forced=True, parallel_tool_calls=False)
    assert g.accepts(one)
    assert not g.accepts(f"{one}\n{one}")
    assert grammar(tools=[CLOCK], forced=True).accepts(f"{one}\n{one}")


CITY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "population": {"type": "integer"},
        "tags": {"type": "array", "items": {"$ref": "#/$defs/tag"}, "maxItems": 2},
        "mayor": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "since": {"type": "integer"}},
            "required": ["name"],
        },
        "capital": {"type": "boolean"},
    },
    "required": ["name", "population"],
    "$defs": {"tag": {"enum": ["coastal", "alpine", "historic"]}},
}


@pytest.mark.parametrize(
    "value",
    [
        {"name": "Nice", "population": 342669},
        {"name": "Nice", "population": -1, "tags": ["coastal", "historic"], "capital": False},
        {"name": "Bern", "population": 1, "mayor": {"name": "Alec", "since": 2017}},
    ],
)
def test_json_schema_grammar_accepts_valid_json(value: dict[str, Any]) -> None:
    schema = copy.deepcopy(CITY_SCHEMA)
    g = parse(json_grammar(schema))
    assert g.accepts(json.dumps(value))
    assert g.accepts(json.dumps(value, separators=(",", ":")))
    assert schema == CITY_SCHEMA  # the converter rewrites $refs in place: not ours


@pytest.mark.parametrize(
    "text",
    [
        '{"name": "Nice"}',  # required property missing
        '{"name": "", "population": 1}',  # minLength
        '{"name": "Nice", "population": "many"}',
        '{"name": "Nice", "population": 1, "tags": ["sunny"]}',  # not in the $ref enum
        '{"name": "Nice", "population": 1, "tags": ["coastal", "alpine", "historic"]}',
        '{"name": "Nice", "population": 1, "mayor": {"since": 2017}}',
        '{"name": "Ni\nce", "population": 1}',  # raw control character in a string
        '{"name": "Nice", "population": 1} and more',
        '["Nice"]',
    ],
)
def test_json_schema_grammar_rejects_invalid_json(text: str) -> None:
    assert not parse(json_grammar(CITY_SCHEMA)).accepts(text)


def test_json_object_is_any_object() -> None:
    g = grammar(tools=[], response_format=ResponseFormat(type="json_object"))
    assert g.accepts('{"a": [1, 2.5e3, {"b": null}], "c": true}')
    assert g.accepts("{}")
    for text in ("[1]", '"x"', "42", '{"a": 1'):
        assert not g.accepts(text)


def test_unconvertible_schema_falls_back_to_any_object() -> None:
    fmt = ResponseFormat(type="json_schema", schema={"not": {"type": "string"}})
    g = grammar(tools=[], response_format=fmt)
    assert g.accepts('{"anything": 1}')
    assert not g.accepts('"text"')


def test_json_answer_or_calls() -> None:
    fmt = ResponseFormat(type="json_schema", schema=CITY_SCHEMA)
    g = grammar(tools=[WEATHER], response_format=fmt)
    assert g.accepts('{"name": "Nice", "population": 1}')
    assert g.accepts(call_text("get_weather", {"city": "Nice"}))
    assert not g.accepts("Nice has 342669 inhabitants.")
    assert not g.accepts('{"name": "Nice"}')
    forced = grammar(tools=[WEATHER], forced=True, response_format=fmt)
    assert not forced.accepts('{"name": "Nice", "population": 1}')


def test_each_tool_keeps_its_own_definitions() -> None:
    """Two tools whose $defs share a name but differ: each call is checked by its own."""

    def unit_tool(name: str, units: list[str]) -> ToolSpec:
        return ToolSpec(
            name=name,
            description="",
            parameters={
                "type": "object",
                "properties": {"unit": {"$ref": "#/$defs/Unit"}},
                "required": ["unit"],
                "$defs": {"Unit": {"enum": units}},
            },
        )

    g = grammar(tools=[unit_tool("length", ["m", "km"]), unit_tool("mass", ["g", "kg"])])
    assert g.accepts(call_text("length", {"unit": "km"}))
    assert g.accepts(call_text("mass", {"unit": "kg"}))
    assert not g.accepts(call_text("length", {"unit": "kg"}))
    assert not g.accepts(call_text("mass", {"unit": "m"}))
