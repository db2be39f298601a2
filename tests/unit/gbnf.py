"""A small GBNF recognizer, to test which strings a grammar accepts without a model.

Covers the GBNF that :mod:`ai_agents.providers.grammar` and llama.cpp's JSON-schema
converter write: one rule per line, literals, character classes (ranges, negation,
``\\xHH``/``\\uHHHH`` escapes), groups, alternatives, ``* + ?`` and ``{m}``, ``{m,}``,
``{m,n}``. Matching keeps the *set* of positions a node can end at, so ambiguity costs no
backtracking; left recursion is not supported (the grammars have none).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache

_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\", '"': '"', "[": "[", "]": "]", "-": "-"}
_NAME = re.compile(r"[a-zA-Z0-9-]+")


@dataclass(frozen=True)
class Node:
    kind: str  # lit, class, ref, seq, alt, rep
    value: object = None
    items: tuple[Node, ...] = ()
    low: int = 0
    high: int | None = None


@dataclass
class Grammar:
    rules: dict[str, Node] = field(default_factory=dict)

    def accepts(self, text: str, rule: str = "root") -> bool:
        @cache
        def ends(node: Node, pos: int) -> frozenset[int]:
            if node.kind == "lit":
                literal = str(node.value)
                return (
                    frozenset({pos + len(literal)})
                    if text.startswith(literal, pos)
                    else frozenset()
                )
            if node.kind == "class":
                negate, ranges = node.value  # type: ignore[misc]
                if pos >= len(text):
                    return frozenset()
                inside = any(lo <= text[pos] <= hi for lo, hi in ranges)
                return frozenset({pos + 1}) if inside != negate else frozenset()
            if node.kind == "ref":
                return ends(self.rules[str(node.value)], pos)
            if node.kind == "alt":
                return frozenset().union(*(ends(item, pos) for item in node.items))
            if node.kind == "seq":
                current = frozenset({pos})
                for item in node.items:
                    current = frozenset().union(*(ends(item, p) for p in current))
                return current
            assert node.kind == "rep"
            (item,) = node.items
            reached: set[int] = set()
            current = frozenset({pos})
            count = 0
            while current:
                if count >= node.low:
                    reached |= current
                if node.high is not None and count == node.high:
                    break
                following = frozenset().union(*(ends(item, p) for p in current))
                current = following - reached if count >= node.low else following
                count += 1
            return frozenset(reached)

        return len(text) in ends(self.rules[rule], 0)


def parse(grammar: str) -> Grammar:
    """Parse *grammar* (one ``name ::= body`` rule per line; ``#`` comments)."""
    out = Grammar()
    for line in grammar.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, body = line.partition(" ::= ")
        assert sep, f"not a rule: {line!r}"
        node, end = _Parser(body).alternatives(0)
        assert end == len(body), f"cannot parse {body[end:]!r} in rule {name}"
        out.rules[name.strip()] = node
    for node in out.rules.values():
        _check_refs(node, out.rules)
    return out


def _check_refs(node: Node, rules: dict[str, Node]) -> None:
    if node.kind == "ref":
        assert node.value in rules, f"undefined rule {node.value}"
    for item in node.items:
        _check_refs(item, rules)


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text

    def skip(self, i: int) -> int:
        while i < len(self.text) and self.text[i] in " \t":
            i += 1
        return i

    def alternatives(self, i: int) -> tuple[Node, int]:
        options = []
        while True:
            seq, i = self.sequence(i)
            options.append(seq)
            i = self.skip(i)
            if i < len(self.text) and self.text[i] == "|":
                i += 1
                continue
            return (options[0] if len(options) == 1 else Node("alt", items=tuple(options))), i

    def sequence(self, i: int) -> tuple[Node, int]:
        items = []
        while True:
            i = self.skip(i)
            if i >= len(self.text) or self.text[i] in "|)":
                return Node("seq", items=tuple(items)), i
            item, i = self.primary(i)
            item, i = self.repeat(item, i)
            items.append(item)

    def primary(self, i: int) -> tuple[Node, int]:
        c = self.text[i]
        if c == '"':
            chars = []
            i += 1
            while self.text[i] != '"':
                ch, i = self.char(i)
                chars.append(ch)
            return Node("lit", "".join(chars)), i + 1
        if c == "[":
            i += 1
            negate = self.text[i] == "^"
            i += negate
            ranges = []
            while self.text[i] != "]":
                lo, i = self.char(i)
                if self.text[i] == "-" and self.text[i + 1] != "]":
                    hi, i = self.char(i + 1)
                else:
                    hi = lo
                ranges.append((lo, hi))
            return Node("class", (negate, tuple(ranges))), i + 1
        if c == "(":
            node, i = self.alternatives(i + 1)
            assert self.text[i] == ")", self.text[i:]
            return node, i + 1
        m = _NAME.match(self.text, i)
        assert m, f"unexpected {self.text[i:]!r}"
        return Node("ref", m.group()), m.end()

    def char(self, i: int) -> tuple[str, int]:
        c = self.text[i]
        if c != "\\":
            return c, i + 1
        e = self.text[i + 1]
        size = {"x": 2, "u": 4, "U": 8}.get(e)
        if size:
            return chr(int(self.text[i + 2 : i + 2 + size], 16)), i + 2 + size
        return _ESCAPES[e], i + 2

    def repeat(self, item: Node, i: int) -> tuple[Node, int]:
        if i >= len(self.text):
            return item, i
        c = self.text[i]
        if c == "*":
            return Node("rep", items=(item,), low=0), i + 1
        if c == "+":
            return Node("rep", items=(item,), low=1), i + 1
        if c == "?":
            return Node("rep", items=(item,), low=0, high=1), i + 1
        m = re.compile(r"\{(\d+)(,(\d*))?\}").match(self.text, i)
        if m:
            low = int(m.group(1))
            high = low if m.group(2) is None else (int(m.group(3)) if m.group(3) else None)
            return Node("rep", items=(item,), low=low, high=high), m.end()
        return item, i
