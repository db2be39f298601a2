"""GBNF grammars that keep a small local model's output well-formed.

llama.cpp can restrict sampling to the strings of a GBNF grammar: at each step only
tokens that keep the output inside the grammar can be chosen. The local adapter uses
that for two things a 135M model cannot do reliably on its own:

- **JSON answers** (``response_format``): the answer is a JSON value valid against the
  schema (as far as llama.cpp's converter goes: types, properties, required, enums,
  patterns, lengths, array sizes; not numeric ranges), or any JSON object for
  ``json_object``.
- **Tool calls** (XML tool injection): the answer is prose without ``<`` (so no
  half-written or imitated tag reaches the parser), optionally followed by complete
  ``<tool_call>`` blocks, exactly in :func:`~ai_agents.tools.parser.render_tool_call`'s
  format, for an offered tool and with arguments valid against that tool's schema. A
  forced ``tool_choice`` leaves only the calls; ``none`` (tools withheld) only the prose,
  since a small model shown tool exchanges otherwise writes ``<tool_result>`` blocks.

The JSON parts come from llama.cpp's own JSON-schema converter
(``llama_cpp.llama_grammar.SchemaConverter``), one per schema, its rules renamed under a
prefix of their own: a converter names a ``$ref``'s rule after the reference's last
segment, so two tools with a ``$defs/Unit`` each would otherwise share one. A schema it
cannot convert falls back to "any JSON object" (the runner validates the answer against
the schema anyway).
"""

from __future__ import annotations

import copy
import logging
import re
from collections.abc import Sequence
from typing import Any

from ai_agents.providers.base import ResponseFormat, ToolSpec

__all__ = ["MAX_GRAMMAR_CALLS", "build_grammar", "gbnf_literal", "json_grammar"]

log = logging.getLogger(__name__)

#: Tool calls one constrained answer may hold (``parallel_tool_calls=False``: one).
MAX_GRAMMAR_CALLS = 4

# llama.cpp's converter lets raw control characters into JSON strings ([^"\\]), and a
# raw line break inside a string is not JSON; this is the JSON grammar's own rule.
_JSON_CHAR = r'[^"\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4})'
_ANY_OBJECT: dict[str, Any] = {"type": "object"}
# A GBNF rule body's tokens: literals, character classes and repetition counts (skipped
# when renaming) and names.
_TOKEN = re.compile(r'"(?:\\.|[^"\\])*"|\[(?:\\.|[^\]\\])*\]|\{[^}]*\}|[a-zA-Z0-9-]+')

# Prose next to tool calls: no "<" at all. Exceptions such as "<=" or "<5" only taught
# the 135M model to open pseudo-tags like "<1>".
_PROSE = "[^<]*"


def gbnf_literal(text: str) -> str:
    """*text* as a GBNF string literal."""
    escaped = (
        text.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
    )
    return f'"{escaped}"'


class _Rules:
    """The rules of one grammar: written here (``root``, ``tc-*``) or converted schemas."""

    def __init__(self) -> None:
        self._rules: dict[str, str] = {}

    def schema(self, schema: dict[str, Any] | None, prefix: str) -> str:
        """Add the rules for JSON valid against *schema*, named ``<prefix>-...``; return
        the top rule's name."""
        try:
            converted = _convert(schema or _ANY_OBJECT)
        except Exception as exc:  # the converter asserts on what it does not know
            log.info("JSON schema for %s not converted to a grammar (%r): any object", prefix, exc)
            converted = _convert(_ANY_OBJECT)

        def rename(token: re.Match[str]) -> str:
            text = token.group()
            return f"{prefix}-{text}" if text in converted else text

        for name, rule in converted.items():
            self._rules[f"{prefix}-{name}"] = _TOKEN.sub(rename, rule)
        return f"{prefix}-root"

    def add(self, name: str, rule: str) -> str:
        self._rules[name] = rule
        return name

    def text(self) -> str:
        lines = [f"root ::= {self._rules['root']}"]
        lines += [f"{name} ::= {rule}" for name, rule in self._rules.items() if name != "root"]
        return "\n".join(lines) + "\n"


def _convert(schema: dict[str, Any]) -> dict[str, str]:
    """llama.cpp's rules for *schema* (top rule ``root``), JSON strings fixed."""
    from llama_cpp import llama_grammar

    from ai_agents.providers.local import close_at_exit

    close_at_exit()  # importing llama_cpp opened files it never closes
    converter_class: Any = llama_grammar.SchemaConverter  # untyped upstream
    converter = converter_class(prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False)
    # The converter rewrites $refs in place: give it a copy.
    converter.visit(converter.resolve_refs(copy.deepcopy(schema), "schema.json"), "")
    rules: dict[str, str] = {}
    for line in converter.format_grammar().splitlines():
        name, _, rule = line.partition(" ::= ")
        rules[name] = _JSON_CHAR if name == "char" else rule
    return rules


def json_grammar(schema: dict[str, Any] | None) -> str:
    """A grammar for one JSON value valid against *schema* (``None``: any JSON object)."""
    rules = _Rules()
    rules.add("root", rules.schema(schema, "answer"))
    return rules.text()


def build_grammar(
    *,
    tools: Sequence[ToolSpec],
    forced: bool = False,
    parallel_tool_calls: bool | None = None,
    response_format: ResponseFormat | None = None,
    withheld: bool = False,
) -> str | None:
    """The grammar for one local-model answer, or ``None`` when it is free text.

    :param tools: the tools offered in this request (after ``tool_choice``: ``none``
        offers none, a tool name only that tool).
    :param forced: the answer must be tool calls (``tool_choice`` ``required`` or a name).
    :param parallel_tool_calls: ``False``: exactly one call; else up to
        :data:`MAX_GRAMMAR_CALLS`.
    :param response_format: a JSON format makes the non-call answer JSON.
    :param withheld: the request has tools but offers none (``tool_choice`` ``none``):
        the answer is prose without tags.
    """
    json_answer = response_format is not None and response_format.is_json
    if not tools:
        if json_answer:
            assert response_format is not None
            return json_grammar(_answer_schema(response_format))
        return f"root ::= {_PROSE}\n" if withheld else None
    rules = _Rules()
    bodies = []
    for i, tool in enumerate(tools):
        args = rules.schema(tool.parameters, f"tool{i}-args")
        head = gbnf_literal(f"{tool.name}</name>\n<arguments>\n")
        bodies.append(rules.add(f"tc-tool{i}", f"{head} {args}"))
    open_ = gbnf_literal("<tool_call>\n<name>")
    close = gbnf_literal("\n</arguments>\n</tool_call>")
    rules.add("tc-call", f"{open_} ({' | '.join(bodies)}) {close}")
    more = 0 if parallel_tool_calls is False else MAX_GRAMMAR_CALLS - 1
    calls = rules.add("tc-calls", f'tc-call ("\\n" tc-call){{0,{more}}}' if more else "tc-call")
    if forced:
        rules.add("root", calls)
    elif json_answer:
        assert response_format is not None
        answer = rules.schema(_answer_schema(response_format), "answer")
        rules.add("root", f"{answer} | {calls}")
    else:
        rules.add("root", f"tc-prose {calls}?")
        rules.add("tc-prose", _PROSE)
    return rules.text()


def _answer_schema(response_format: ResponseFormat) -> dict[str, Any] | None:
    if response_format.type == "json_schema":
        return response_format.schema
    return None
