"""The XML tool-call protocol for models without native tool calling.

Small local models (and some hosted ones) have no ``tools`` parameter. For them the tool
list and a call format are appended to the system prompt
(:func:`render_tool_instructions`), past calls and results are shown back as text
(:func:`render_tool_call`, :func:`render_tool_result`), and each answer is scanned for
calls (:func:`parse_tool_calls`)::

    <tool_call>
    <name>get_weather</name>
    <arguments>
    {"city": "Paris"}
    </arguments>
    </tool_call>

Why XML around JSON: the tags are easy for a small model to reproduce and easy to find in
prose, while JSON keeps argument types. Why a forgiving parser: small models drift from
the format (other tag names, single quotes, Python literals, a missing closing tag when
they stop early, the whole call as one JSON object like Hermes/Qwen templates...). Every
drift that can be read unambiguously is repaired and reported in
:attr:`ParsedOutput.problems`; a call that cannot be read is left in the answer text, so
nothing the model wrote silently disappears.

The text is untrusted: the parser never raises, uses only linear regular expressions
(possessive quantifiers, no nested ambiguous repetition) and bounded recursion.
"""

from __future__ import annotations

import ast
import json
import math
import re
import uuid
import warnings
from bisect import bisect_left
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from string import Template
from typing import Any

from ai_agents.messages import ToolCall
from ai_agents.providers.base import ToolSpec

__all__ = [
    "MAX_CALLS",
    "TOOL_INJECTION_TEMPLATE",
    "ParsedOutput",
    "parse_tool_calls",
    "render_tool_call",
    "render_tool_instructions",
    "render_tool_result",
]

#: Calls read from one answer at most; more is a runaway model, not a plan.
MAX_CALLS = 64

# ``$tools`` is replaced by the tool list. string.Template (not str.format) so the JSON
# braces of the example need no escaping and stay readable here.
TOOL_INJECTION_TEMPLATE = """\
# Tools

You can use the following tools:

$tools

## How to call a tool

To call a tool, write exactly this block (the arguments are one JSON object matching the
tool's parameters):

<tool_call>
<name>tool_name_here</name>
<arguments>
{"param1": "value1"}
</arguments>
</tool_call>

Rules:
- If no tool is needed, answer normally, without any of these XML tags.
- Use only the tools listed above, with their exact names.
- The arguments must be valid JSON: double quotes, true/false/null, no trailing commas.
- You may write several <tool_call> blocks in one answer; all of them are executed.
- After your tool call(s), stop and wait. Each result comes back in a <tool_result> block;
  never write a <tool_result> yourself.
- Then use the results to answer the user, or call another tool.
"""

# --- rendering ------------------------------------------------------------------------


def render_tool_instructions(tools: Sequence[ToolSpec]) -> str:
    """The text appended to the system prompt offering *tools* (``""`` when none).

    Each schema is one compact JSON line: small models read it fine and it costs far
    fewer tokens than an indented schema.
    """
    if not tools:
        return ""
    entries = []
    for tool in tools:
        schema = json.dumps(tool.parameters, ensure_ascii=False, default=str)
        description = tool.description.strip() or "(no description)"
        entries.append(f"### {tool.name}\n{description}\nParameters (JSON schema): {schema}")
    return Template(TOOL_INJECTION_TEMPLATE).safe_substitute(tools="\n\n".join(entries))


def render_tool_call(call: ToolCall) -> str:
    """One call in the exact format the model is asked to use.

    Past calls are shown to the model this way so its own history reinforces the format.
    """
    arguments = json.dumps(call.arguments, ensure_ascii=False, default=str)
    return (
        f"<tool_call>\n<name>{call.name}</name>\n"
        f"<arguments>\n{arguments}\n</arguments>\n</tool_call>"
    )


def render_tool_result(name: str, call_id: str, content: str, *, is_error: bool = False) -> str:
    """A tool result as shown to a model without native tools.

    The content is not escaped: entities like ``&lt;`` confuse small models more than a
    stray ``<`` does. Attribute values only lose double quotes and line breaks, which
    would break the tag itself.
    """
    status = "error" if is_error else "ok"
    return (
        f'<tool_result name="{_attr(name)}" id="{_attr(call_id)}" status="{status}">\n'
        f"{content}\n</tool_result>"
    )


def _attr(value: str) -> str:
    return value.replace('"', "'").replace("\r", " ").replace("\n", " ")


# --- parsing: public API ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ParsedOutput:
    """A model answer split into prose and tool calls.

    ``text`` is the answer without the call blocks (the original text, unchanged, when
    there are no calls); ``problems`` says what was repaired or could not be read, for
    logs and for telling the model what went wrong.
    """

    text: str
    calls: list[ToolCall] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def parse_tool_calls(text: str, *, known_tools: Collection[str] | None = None) -> ParsedOutput:
    """Find the tool calls in a model answer. Never raises.

    With *known_tools*, a call to another name is still returned (the runner answers it
    with an error the model can learn from) but noted in ``problems``; a name that only
    differs in case, ``-``/``_`` or a ``functions.`` prefix is mapped to the known one.
    """
    if not isinstance(text, str):  # defensive: callers are typed, the model is not
        text = "" if text is None else str(text)
    try:
        return _parse(text, known_tools)
    except Exception as exc:  # pragma: no cover - a bug must not crash a run
        return ParsedOutput(text=text, problems=[f"internal parser error: {exc!r}"])


# --- parsing: patterns -------------------------------------------------------------------

_I = re.IGNORECASE
# Every pattern below is linear: possessive quantifiers, and tag names that cannot run
# into their attributes, so a failed match never backtracks over a long run.
_OPEN_RE = re.compile(r"<\s*+(?:tool|function)[_\-]?call(?P<attrs>(?:[\s/][^<>]*+)?)>", _I)
_CLOSE_RE = re.compile(r"<\s*+/\s*+(?:tool|function)[_\-]?call\s*+>", _I)
_RESULT_RE = re.compile(r"<\s*+(?:tool|function)[_\-]?results?(?=[\s/>])", _I)
_NAME_TAG_RE = re.compile(
    r"<\s*+(?:tool_name|function_name|name|tool|function|n)(?:\s[^<>]*+)?>", _I
)
_ARGS_TAGS = ("arguments", "args", "parameters", "params", "tool_input", "input")
_ARGS_OPEN_RE = re.compile(
    r"<\s*+(?P<tag>arguments|args|parameters|params|tool_input|input)(?:\s[^<>]*+)?>", _I
)
_ARGS_CLOSE_RE = {tag: re.compile(rf"<\s*+/\s*+{tag}\s*+>", _I) for tag in _ARGS_TAGS}
_ANY_CLOSE_TAG_RE = re.compile(r"<\s*+/\s*+[\w\-]*+\s*+>")
_XML_TAG_RE = re.compile(
    r"<\s*+(?P<close>/\s*+)?(?P<tag>[A-Za-z_][\w.\-]*+)(?P<attrs>(?:[\s/=][^<>]*+)?)>"
)
_NAME_ATTR_RE = re.compile(
    r"(?:tool_name|name|tool|function)\s*+=\s*+(?:\"([^\"]*+)\"|'([^']*+)'|([^\s\"'/>]++))",
    _I,
)
_EQ_ATTR_RE = re.compile(r"\s*+=\s*+[\"']?+([^\s\"'/>]++)")
_IDENT_RE = re.compile(r"[A-Za-z_][\w.\-]*+")
_FENCE_LANG_RE = re.compile(r"[\w+\-.]*+")
_INT_RE = re.compile(r"-?(?:0|[1-9][0-9]{0,17})")
_FLOAT_RE = re.compile(r"-?(?:0|[1-9][0-9]{0,17})\.[0-9]{1,17}")

_NAME_KEYS = ("name", "tool_name", "tool", "function", "function_name")
_ARGUMENT_KEYS = ("arguments", "parameters", "args", "params", "input", "tool_input", "kwargs")
_PARAM_TAGS = frozenset({"parameter", "param", "arg", "argument", "field"})
_KEYWORDS = {"true": "True", "false": "False", "null": "None", "none": "None"}
_BARE_WORDS: dict[str, Any] = {"true": True, "false": False, "null": None, "none": None}
_DECODER = json.JSONDecoder()
_MAX_BLOCKS = 256  # <tool_call> openings examined per answer (bounds the total work)
_MAX_LENIENT = 100_000  # characters handed to the repairing (slow, pure Python) paths
_MAX_XML_DEPTH = 8
_MAX_VALUE_DEPTH = 200
_MAX_NAME_LEN = 128
_WS = " \t\r\n"


# --- parsing: main loop -------------------------------------------------------------------


class _Index:
    """Positions of call openings, closings and result tags, found once (linear)."""

    __slots__ = ("close_ends", "close_starts", "n", "open_starts", "opens", "results")

    def __init__(self, text: str) -> None:
        self.n = len(text)
        self.opens = list(_OPEN_RE.finditer(text))
        self.open_starts = [m.start() for m in self.opens]
        closes = list(_CLOSE_RE.finditer(text))
        self.close_starts = [m.start() for m in closes]
        self.close_ends = [m.end() for m in closes]
        self.results = [m.start() for m in _RESULT_RE.finditer(text)]

    def next_open(self, pos: int) -> re.Match[str] | None:
        k = bisect_left(self.open_starts, pos)
        return self.opens[k] if k < len(self.opens) else None

    def next_result(self, pos: int) -> int | None:
        k = bisect_left(self.results, pos)
        return self.results[k] if k < len(self.results) else None

    def boundary(self, pos: int) -> tuple[int, int, bool]:
        """(body limit, block end, closed) for a block whose body starts at *pos*.

        A block ends at its ``</tool_call>``, or, when the model forgot it, at the next
        ``<tool_call>`` or the end of the text.
        """
        c = bisect_left(self.close_starts, pos)
        o = bisect_left(self.open_starts, pos)
        close = self.close_starts[c] if c < len(self.close_starts) else None
        nxt = self.open_starts[o] if o < len(self.open_starts) else None
        if close is not None and (nxt is None or close < nxt):
            return close, self.close_ends[c], True
        if nxt is not None:
            return nxt, nxt, False
        return self.n, self.n, False


@dataclass(slots=True)
class _Block:
    start: int
    end: int  # end of the span removed from the text
    resume: int  # where scanning continues
    calls: list[tuple[str, dict[str, Any]]]
    notes: list[str]


def _parse(text: str, known_tools: Collection[str] | None) -> ParsedOutput:
    if "<" not in text:
        return ParsedOutput(text=text)
    idx = _Index(text)
    if not idx.opens:
        return ParsedOutput(text=text)
    found: list[tuple[str, dict[str, Any]]] = []
    spans: list[tuple[int, int]] = []
    problems: list[str] = []
    cut: int | None = None
    pos = 0
    for attempt in range(_MAX_BLOCKS + 1):
        m = idx.next_open(pos)
        if m is None:
            break
        if spans:
            result = idx.next_result(spans[-1][1])
            if result is not None and result < m.start():
                cut = result
                break
        if attempt == _MAX_BLOCKS or len(found) >= MAX_CALLS:
            problems.append(f"stopped reading tool calls after {len(found)} calls")
            break
        block = _parse_block(text, m, idx)
        problems.extend(block.notes)
        if block.calls:
            room = MAX_CALLS - len(found)
            found.extend(block.calls[:room])
            spans.append((block.start, block.end))
        pos = max(block.resume, m.end())
    if not found:
        return ParsedOutput(text=text, problems=problems)
    if cut is None:
        cut = idx.next_result(spans[-1][1])
    if cut is not None:
        problems.append(
            "the model wrote its own <tool_result> after calling a tool; "
            "everything from there on was dropped"
        )
    stop = len(text) if cut is None else cut
    calls = _finish_calls(found, known_tools, problems)
    return ParsedOutput(text=_remaining_text(text, spans, stop), calls=calls, problems=problems)


def _finish_calls(
    found: list[tuple[str, dict[str, Any]]],
    known_tools: Collection[str] | None,
    problems: list[str],
) -> list[ToolCall]:
    known = set(known_tools) if known_tools is not None else None
    calls: list[ToolCall] = []
    seen: set[str] = set()
    for name, arguments in found:
        if known is not None and name not in known:
            fixed = _match_known(name, known)
            if fixed is not None:
                problems.append(f"tool name {name!r} taken as {fixed!r}")
                name = fixed
            else:
                listed = ", ".join(sorted(known)[:20]) or "none"
                problems.append(f"unknown tool {name!r} (available: {listed})")
        call_id = _new_id()
        while call_id in seen:  # pragma: no cover - 96 random bits
            call_id = _new_id()
        seen.add(call_id)
        calls.append(ToolCall(id=call_id, name=name, arguments=arguments))
    return calls


def _new_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


def _normal_name(name: str) -> str:
    name = name.lower().replace("-", "_")
    for prefix in ("functions.", "function.", "tools.", "tool."):
        if name.startswith(prefix):
            name = name[len(prefix) :]
    return name


def _match_known(name: str, known: set[str]) -> str | None:
    wanted = _normal_name(name)
    matches = [k for k in known if _normal_name(k) == wanted]
    return matches[0] if len(matches) == 1 else None


# --- parsing: one block --------------------------------------------------------------------


@dataclass(slots=True)
class _Value:
    present: bool  # something non-blank was there
    ok: bool  # it was read as JSON/Python/XML (else ``value`` is the raw text)
    value: Any
    end: int  # may lie beyond the region when a JSON string contained a closing tag


def _parse_block(text: str, m: re.Match[str], idx: _Index) -> _Block:
    """Read the block opened by *m*: one call (or several from a JSON list), or none."""
    notes: list[str] = []
    attrs = m.group("attrs")
    attr_name = _clean_name(_name_attr(attrs))
    if attrs.rstrip().endswith("/"):  # <tool_call name="x"/>
        calls: list[tuple[str, dict[str, Any]]] = [(attr_name, {})] if attr_name else []
        if not calls:
            notes.append("a self-closing <tool_call/> without a tool name was ignored")
        return _Block(m.start(), m.end(), m.end(), calls, notes)

    body = m.end()
    limit, end, closed = idx.boundary(body)
    name: str | None = attr_name
    arguments: dict[str, Any] = {}
    consumed = limit
    calls_out: list[tuple[str, dict[str, Any]]] | None = None

    i = _skip_space_and_fence(text, body, limit)
    first = text[i] if i < limit else ""
    json_body = first in ("{", "[")
    if json_body:
        # Hermes/Qwen style: {"name": ..., "arguments": ...} right inside <tool_call>.
        val = _parse_value(text, i, limit, notes, "tool call")
        if val.end > limit:
            limit, end, closed = idx.boundary(val.end)
        consumed = val.end if val.ok else limit
        from_json = _calls_from_json(val.value, notes) if val.ok else []
        if from_json and all(attr_name in (None, n) for n, _ in from_json):
            # Some models put several JSON calls in one block, one after the other.
            while len(from_json) < MAX_CALLS:
                k = _skip_space_and_fence(text, consumed, limit)
                if k >= limit or text[k] != "{":
                    break
                try:
                    value, consumed = _DECODER.raw_decode(text, k)
                except (ValueError, RecursionError):
                    break
                more = _calls_from_json(value, notes)
                if not more:
                    break
                from_json.extend(more)
                if consumed > limit:
                    limit, end, closed = idx.boundary(consumed)
            calls_out = from_json
        elif attr_name is not None:
            arguments = _as_arguments(val.value, notes)
        else:
            json_body = False  # nothing usable: try the tag forms below
            consumed = limit

    if not json_body:
        a = _ARGS_OPEN_RE.search(text, body, limit)
        if a is not None:
            name, arguments, consumed, limit, end, closed = _read_tagged(
                text, body, a, limit, end, closed, idx, attr_name, notes
            )
        else:
            nm = _NAME_TAG_RE.search(text, body, limit)
            if nm is not None:
                tag_name, name_end = _read_name(text, nm, limit)
                name = attr_name or tag_name
                val = _parse_value(text, name_end, limit, notes, "arguments")
                if val.end > limit:
                    limit, end, closed = idx.boundary(val.end)
                if not val.present:
                    consumed = name_end
                elif val.ok or closed:
                    arguments = _as_arguments(val.value, notes)
                    consumed = val.end
                else:  # unclosed block: unreadable text after the name is prose
                    consumed = name_end
            elif attr_name is not None:
                val = _parse_value(text, body, limit, notes, "arguments")
                if val.end > limit:
                    limit, end, closed = idx.boundary(val.end)
                arguments = _as_arguments(val.value, notes) if val.present else {}
                consumed = val.end if val.present else body
            else:
                bare = _read_bare(text, body, limit, notes) if closed else None
                if bare is not None:
                    name, arguments = bare
                    consumed = limit

    if calls_out is None:
        calls_out = [(name, arguments)] if name else []
    if not calls_out:
        notes.append(
            "a <tool_call> block without a readable tool name was left in the text: "
            f"{_preview(text[m.start() : end])}"
        )
        return _Block(m.start(), end, end if closed else limit, [], notes)
    if closed:
        return _Block(m.start(), end, end, calls_out, notes)
    notes.append("a <tool_call> block was not closed with </tool_call>")
    span_end = max(consumed, m.end())
    return _Block(m.start(), span_end, span_end, calls_out, notes)


def _read_tagged(
    text: str,
    body: int,
    a: re.Match[str],
    limit: int,
    end: int,
    closed: bool,
    idx: _Index,
    attr_name: str | None,
    notes: list[str],
) -> tuple[str | None, dict[str, Any], int, int, int, bool]:
    """The ``<name>`` + ``<arguments>`` form; the name may come before or after."""
    close_re = _ARGS_CLOSE_RE[a.group("tag").lower()]
    ac = close_re.search(text, a.end(), limit)
    region_end = ac.start() if ac is not None else limit
    val = _parse_value(text, a.end(), region_end, notes, "arguments")
    if val.end > region_end:  # a JSON string contained the closing tag
        if val.end > limit:
            limit, end, closed = idx.boundary(val.end)
        ac = close_re.search(text, val.end, limit)
        region_end = ac.start() if ac is not None else limit
    if ac is not None:
        after = ac.end()
        if val.ok and val.end < region_end:
            junk = text[val.end : region_end].strip(_WS + "`")
            if junk:
                notes.append(f"ignored text after the arguments: {_preview(junk)}")
    else:
        notes.append(f"missing </{a.group('tag')}>")
        after = val.end if val.ok else limit
    name = attr_name
    if name is None:
        found = _find_name(text, body, a.start()) or _find_name(text, after, limit)
        name = found[0] if found else None
    if name is None and val.ok and isinstance(val.value, dict):
        # No name anywhere, but the arguments are a whole call: {"name", "arguments"}.
        inner = _call_from_dict(val.value, notes, 0)
        if inner is not None and any(k in val.value for k in _ARGUMENT_KEYS):
            notes.append("the tool name was found inside <arguments>")
            return inner[0], inner[1], after, limit, end, closed
    arguments = _as_arguments(val.value, notes) if val.present else {}
    return name, arguments, after, limit, end, closed


def _find_name(text: str, start: int, stop: int) -> tuple[str | None, int] | None:
    if start >= stop:
        return None
    nm = _NAME_TAG_RE.search(text, start, stop)
    if nm is None:
        return None
    return _read_name(text, nm, stop)


def _read_name(text: str, nm: re.Match[str], limit: int) -> tuple[str | None, int]:
    """The name in ``<name>x</name>`` and where the element ends (any closing tag)."""
    start = nm.end()
    lt = text.find("<", start, limit)
    stop = limit if lt < 0 else lt
    raw = text[start:stop]
    lead = len(raw) - len(raw.lstrip())
    nl = raw.find("\n", lead)
    if nl >= 0 and raw[nl:].strip():  # unclosed <name>: the name is the first line
        return _clean_name(raw[:nl]), start + nl
    if lt >= 0:
        close = _ANY_CLOSE_TAG_RE.match(text, lt, limit)
        if close is not None:
            return _clean_name(raw), close.end()
    return _clean_name(raw), stop


def _name_attr(attrs: str) -> str | None:
    if not attrs:
        return None
    m = _NAME_ATTR_RE.search(attrs)
    if m is None:
        return None
    return next(g for g in m.groups() if g is not None)


def _clean_name(raw: str | None) -> str | None:
    """A usable tool name, or None: no blanks, quotes or brackets, reasonably short."""
    if raw is None:
        return None
    name = raw.strip().strip("\"'`").strip()
    if name.endswith("()"):
        name = name[:-2].rstrip()
    if not name or len(name) > _MAX_NAME_LEN:
        return None
    if any(ch.isspace() or ch in "<>{}[]()\"'`,;" for ch in name):
        return None
    return name


def _read_bare(
    text: str, body: int, limit: int, notes: list[str]
) -> tuple[str, dict[str, Any]] | None:
    """``<tool_call>get_time</tool_call>``, ``name {json}`` or ``name(city="Paris")``.

    Only when the whole body is that shape, so prose that mentions ``<tool_call>`` is
    never read as a call.
    """
    i = _skip_space_and_fence(text, body, limit)
    im = _IDENT_RE.match(text, i, limit)
    if im is None:
        return None
    name = _clean_name(im.group())
    if name is None:
        return None
    j = im.end()
    while j < limit and text[j] in " \t":
        j += 1
    rest = text[j:limit].strip(_WS + "`")
    if not rest:
        return name, {}
    if rest.startswith("(") and rest.endswith(")"):
        inner = rest[1:-1].strip()
        if not inner:
            return name, {}
        ok, value, _ = _loads_lenient(inner)
        if ok:
            return name, _as_arguments(value, notes)
        return None
    if rest.startswith("{"):
        val = _parse_value(text, j, limit, notes, "arguments")
        if val.ok:
            return name, _as_arguments(val.value, notes)
    return None


def _calls_from_json(value: Any, notes: list[str]) -> list[tuple[str, dict[str, Any]]]:
    if isinstance(value, dict):
        call = _call_from_dict(value, notes, 0)
        return [call] if call else []
    if isinstance(value, list):
        calls = [_call_from_dict(v, notes, 0) for v in value[:MAX_CALLS] if isinstance(v, dict)]
        return [c for c in calls if c is not None]
    return []


def _call_from_dict(
    data: dict[str, Any], notes: list[str], depth: int
) -> tuple[str, dict[str, Any]] | None:
    """``{"name", "arguments"|"parameters"|...}``, also OpenAI's ``{"function": {...}}``."""
    fn = data.get("function")
    if isinstance(fn, dict) and depth < 2:
        return _call_from_dict(fn, notes, depth + 1)
    name_key = next((k for k in _NAME_KEYS if isinstance(data.get(k), str)), None)
    if name_key is None:
        return None
    name = _clean_name(data[name_key])
    if name is None:
        return None
    for key in _ARGUMENT_KEYS:
        if key in data:
            return name, _as_arguments(data[key], notes)
    rest = {
        k: v
        for k, v in data.items()
        if k != name_key and not (k == "type" and v in ("function", "tool", "tool_call"))
    }
    if rest:
        notes.append(f"arguments of {name!r} were taken from the keys next to its name")
    return name, _as_arguments(rest, notes)


# --- parsing: values ---------------------------------------------------------------------


def _parse_value(text: str, start: int, end: int, notes: list[str], what: str) -> _Value:
    """Read the value in ``text[start:end]``: JSON, repaired JSON, XML fields or raw text.

    Strict JSON is decoded in place (``raw_decode`` over the whole text), so a string that
    contains ``</arguments>`` or ``</tool_call>`` is read whole; the returned ``end`` then
    lies past *end* and the caller moves its boundaries.
    """
    i = _skip_space_and_fence(text, start, end)
    if i >= end:
        return _Value(False, True, None, end)
    first = text[i]
    if first in ("{", "["):
        try:
            value, j = _DECODER.raw_decode(text, i)
        except (ValueError, RecursionError):
            pass
        else:
            return _Value(True, True, _jsonable(value, 0), j)
    region = _strip_fences(text[i:end])
    if first == "<":
        fields = _parse_xml_fields(region, 0)
        if fields is not None:
            return _Value(True, True, fields, end)
    ok, value, repair = _loads_lenient(region)
    if ok:
        if repair:
            notes.append(f"{what} were repaired ({repair})")
        return _Value(True, True, _jsonable(value, 0), end)
    if first in ("{", "["):
        notes.append(f"could not parse the {what}: {_preview(region)}")
    return _Value(True, False, region, end)


def _skip_space_and_fence(text: str, i: int, end: int) -> int:
    while True:
        while i < end and text[i] in _WS:
            i += 1
        if not text.startswith("```", i, end):
            return i
        nl = text.find("\n", i, end)
        i = end if nl < 0 else nl + 1


def _strip_fences(region: str) -> str:
    s = region.strip()
    if s.startswith("```"):
        nl = s.find("\n")
        s = "" if nl < 0 else s[nl + 1 :]
    s = s.rstrip()
    if s.endswith("```"):
        s = s[:-3]
    return s.strip()


def _as_arguments(value: Any, notes: list[str]) -> dict[str, Any]:
    """Arguments are always a dict; anything else is wrapped as ``{"input": value}``."""
    if value is None:
        return {}
    if isinstance(value, dict):
        return {_key(k): _jsonable(v, 1) for k, v in value.items()}
    if isinstance(value, str):
        s = value.strip()
        if not s:
            return {}
        if s[0] in ("{", "["):  # arguments encoded as a JSON string (OpenAI style)
            ok, parsed, _ = _loads_lenient(s)
            if ok and isinstance(parsed, dict):
                return {_key(k): _jsonable(v, 1) for k, v in parsed.items()}
            if ok:
                value = parsed
    kind = type(value).__name__
    notes.append(f"arguments were not a JSON object ({kind}); wrapped as {{'input': ...}}")
    return {"input": _jsonable(value, 0)}


def _key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, bool | int | float):
        return json.dumps(key)
    return str(key)


def _jsonable(value: Any, depth: int) -> Any:
    """JSON-compatible copy: tuples/sets -> lists, non-finite floats -> strings."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if depth > _MAX_VALUE_DEPTH:
        return str(value)
    if isinstance(value, dict):
        return {_key(k): _jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v, depth + 1) for v in value]
    if isinstance(value, set | frozenset):
        return [_jsonable(v, depth + 1) for v in sorted(value, key=repr)]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if value is Ellipsis:
        return None
    return str(value)


def _loads_lenient(s: str) -> tuple[bool, Any, str | None]:
    """(ok, value, repair note): strict JSON, then JSON-ish/Python literal, then kwargs."""
    s = s.strip()
    if not s or len(s) > _MAX_LENIENT:
        return False, None, None
    try:
        return True, json.loads(s), None
    except (ValueError, RecursionError):
        pass
    converted = _pythonize(s)
    if converted is not None:
        py, closed_brackets = converted
        ok, value = _literal(py)
        if ok:
            note = "added missing closing brackets" if closed_brackets else "not strict JSON"
            return True, value, note
    kwargs = _parse_kwargs(s)
    if kwargs is not None:
        return True, kwargs, "keyword arguments"
    return False, None, None


def _literal(source: str) -> tuple[bool, Any]:
    # literal_eval only builds constants (no code runs); warnings such as "invalid
    # escape sequence" must not surface (pytest turns them into errors).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return True, ast.literal_eval(source)
        except Exception:
            return False, None


def _parse_kwargs(s: str) -> dict[str, Any] | None:
    """``city="Paris", days=3`` (a Python-call style some models use)."""
    if "=" not in s:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            tree = ast.parse(f"_({s}\n)", mode="eval")
        except Exception:
            return None
        call = tree.body
        if not isinstance(call, ast.Call) or call.args or not call.keywords:
            return None
        out: dict[str, Any] = {}
        for kw in call.keywords:
            if kw.arg is None:
                return None
            node = kw.value
            if isinstance(node, ast.Name):  # bare word: true/false/null or a string
                low = node.id.lower()
                out[kw.arg] = _BARE_WORDS.get(low, node.id)
                continue
            try:
                out[kw.arg] = ast.literal_eval(node)
            except Exception:
                return None
        return out


def _pythonize(s: str) -> tuple[str, bool] | None:
    """Rewrite JSON-ish text as a Python literal: ``(source, closed_brackets)``.

    Handles single or double quotes, true/false/null, unquoted keys, bare-word values
    inside containers, ``//`` comments, raw newlines in strings and missing closing
    brackets at the end. None when a string is cut off (a truncated value is not
    guessed). One linear pass.
    """
    out: list[str] = []
    stack: list[str] = []
    pairs = {"}": "{", "]": "[", ")": "("}
    i, n = 0, len(s)
    while i < n:
        c = s[i]
        if c in "\"'":
            j = i + 1
            buf = [c]
            while j < n and s[j] != c:
                d = s[j]
                if d == "\\":
                    if j + 1 < n:
                        buf.append("/" if s[j + 1] == "/" else s[j : j + 2])
                    j += 2
                    continue
                buf.append("\\n" if d == "\n" else "\\r" if d == "\r" else d)
                j += 1
            if j >= n:
                return None
            buf.append(c)
            out.append("".join(buf))
            i = j + 1
        elif c in "{[(":
            stack.append(c)
            out.append(c)
            i += 1
        elif c in "}])":
            if stack and stack[-1] == pairs[c]:
                stack.pop()
            out.append(c)
            i += 1
        elif c == "," and _last_token(out) in ("{", "[", ",", ""):
            i += 1  # a comma with nothing before it: "{ , }", "[1,, 2]"
        elif c == "/" and s.startswith("//", i):
            nl = s.find("\n", i)
            i = n if nl < 0 else nl
        elif c.isdigit():
            j = i + 1
            while j < n and (s[j].isalnum() or s[j] in "._" or (s[j] in "+-" and s[j - 1] in "eE")):
                j += 1
            out.append(s[i:j])
            i = j
        elif c.isalpha() or c == "_":
            j = i + 1
            while j < n and (s[j].isalnum() or s[j] == "_"):
                j += 1
            word = s[i:j]
            k = j
            while k < n and s[k] in " \t":
                k += 1
            keyword = _KEYWORDS.get(word.lower())
            if k < n and s[k] == ":" and stack and stack[-1] == "{":
                out.append(repr(word))  # unquoted key
                i = j
            elif stack and stack[-1] in "{[":  # bare value: read up to the delimiter
                e = j
                while e < n and s[e] not in ",}]\n":
                    e += 1
                bare = s[i:e].strip()
                out.append(keyword if keyword is not None and bare == word else repr(bare))
                i = e
            else:
                out.append(keyword if keyword is not None else word)
                i = j
        else:
            out.append(c)
            i += 1
    if not stack:
        return "".join(out), False
    source = "".join(out).rstrip()
    while source.endswith(","):
        source = source[:-1].rstrip()
    closers = {"{": "}", "[": "]", "(": ")"}
    return source + "".join(closers[b] for b in reversed(stack)), True


def _last_token(out: list[str]) -> str:
    """Last non-blank character emitted by :func:`_pythonize` ("" at the start)."""
    for piece in reversed(out):
        stripped = piece.rstrip()
        if stripped:
            return stripped[-1]
    return ""


def _parse_xml_fields(s: str, depth: int) -> dict[str, Any] | None:
    """``<city>Paris</city><days>3</days>`` -> ``{"city": "Paris", "days": 3}``.

    None when *s* is not only elements (text between them means it is prose or markup,
    kept as a string by the caller). Repeated keys become lists; ``<parameter
    name="x">`` and ``<parameter=x>`` name their key. Closing tags are indexed once, so
    unclosed elements cost no rescans.
    """
    closes: dict[str, tuple[list[int], list[int]]] = {}
    for cm in _XML_TAG_RE.finditer(s):
        if cm.group("close"):
            starts, ends = closes.setdefault(cm.group("tag").lower(), ([], []))
            starts.append(cm.start())
            ends.append(cm.end())
    result: dict[str, Any] = {}
    repeated: set[str] = set()
    found = False
    pos, n = 0, len(s)
    while pos < n:
        m = _XML_TAG_RE.search(s, pos)
        if s[pos : m.start() if m else n].strip():
            return None
        if m is None:
            break
        if m.group("close"):  # stray closing tag
            pos = m.end()
            continue
        tag, attrs = m.group("tag"), m.group("attrs")
        key = _field_key(tag, attrs)
        value: Any
        if attrs.rstrip().endswith("/"):
            value = None
            pos = m.end()
        else:
            starts, ends = closes.get(tag.lower(), ([], []))
            k = bisect_left(starts, m.end())
            if k < len(starts):
                inner, pos = s[m.end() : starts[k]], ends[k]
            else:  # unclosed: up to the next tag
                lt = s.find("<", m.end())
                stop = n if lt < 0 else lt
                inner, pos = s[m.end() : stop], stop
            value = _xml_value(inner, depth)
        found = True
        if key in repeated:
            result[key].append(value)
        elif key in result:
            result[key] = [result[key], value]
            repeated.add(key)
        else:
            result[key] = value
    return result if found else None


def _field_key(tag: str, attrs: str) -> str:
    if tag.lower() in _PARAM_TAGS and attrs:
        named = _name_attr(attrs)
        if named:
            return named
        eq = _EQ_ATTR_RE.match(attrs)
        if eq is not None:
            return eq.group(1)
    return tag


def _xml_value(inner: str, depth: int) -> Any:
    stripped = inner.strip()
    if stripped.startswith("<![CDATA[") and stripped.endswith("]]>"):
        return stripped[9:-3]
    if depth < _MAX_XML_DEPTH and "<" in inner:
        fields = _parse_xml_fields(inner, depth + 1)
        if fields is not None:
            return fields
    return _coerce_scalar(inner)


def _coerce_scalar(raw: str) -> Any:
    """Numbers, booleans and null when unambiguous (``007`` stays a string)."""
    value = raw.strip("\r\n")
    if "\n" not in value:
        value = value.strip()
    t = value.strip()
    if _INT_RE.fullmatch(t):
        return int(t)
    if _FLOAT_RE.fullmatch(t):
        return float(t)
    low = t.lower()
    if low in ("true", "false"):
        return low == "true"
    if low == "null":
        return None
    if t[:1] in ("{", "["):
        try:
            return _jsonable(json.loads(t), 0)
        except (ValueError, RecursionError):
            pass
    return value


# --- parsing: remaining text ---------------------------------------------------------------


def _remaining_text(text: str, spans: list[tuple[int, int]], stop: int) -> str:
    """The answer without the call blocks (and fences that only wrapped them)."""
    merged: list[tuple[int, int]] = []
    for s, e in spans:
        if merged and not text[merged[-1][1] : s].strip():
            merged[-1] = (merged[-1][0], e)
        else:
            merged.append((s, e))
    pieces: list[str] = []
    prev = 0
    for s, e in merged:
        s, e = _with_fence(text, s, e, stop)
        pieces.append(text[prev:s])
        prev = max(prev, e)
    pieces.append(text[prev:stop] if prev < stop else "")
    out = ""
    previous_newline = False
    for piece in pieces:
        body = piece.strip()
        if not body:
            previous_newline = previous_newline or "\n" in piece
            continue
        lead = piece[: len(piece) - len(piece.lstrip())]
        if out:
            out += "\n\n" if previous_newline or "\n" in lead else " "
        out += body
        previous_newline = "\n" in piece[len(piece.rstrip()) :]
    return out


def _with_fence(text: str, s: int, e: int, stop: int) -> tuple[int, int]:
    """Widen a span to the ``` fence around it when the fence holds nothing else."""
    k = s
    while k > 0 and text[k - 1] in _WS:
        k -= 1
    line_start = text.rfind("\n", 0, k) + 1
    tick = text.rfind("```", line_start, k)
    if tick < 0 or not _FENCE_LANG_RE.fullmatch(text, tick + 3, k):
        return s, e
    if text.count("```", 0, tick) % 2:  # that fence closes an earlier code block
        return s, e
    j = e
    while j < stop and text[j] in _WS:
        j += 1
    if j >= stop:  # the fence was never closed (the model stopped)
        return tick, e
    if text.startswith("```", j, stop):
        nl = text.find("\n", j, stop)
        line_end = stop if nl < 0 else nl
        if not text[j + 3 : line_end].strip():
            return tick, line_end
    return s, e


def _preview(s: str, size: int = 80) -> str:
    s = " ".join(s[: size * 4].split())
    return repr(s if len(s) <= size else s[: size - 3] + "...")
