"""Prompted (XML) tool calling: tools for a model without native tool calling, any adapter.

Some models take no ``tools`` parameter: small local models, reasoning models, a vLLM or
llama.cpp server started without a tool-call parser (which answers ``tools`` with a 400).
Every adapter gives them tools the same way, when
:meth:`Provider.native_tools_for <ai_agents.providers.base.Provider.native_tools_for>`
says no for the model (the model-limits registry's ``supports_tools``, or the adapter's
``native_tools`` option):

- :meth:`PromptedTools.of` rewrites the request: the tool instructions of
  :func:`~ai_agents.tools.parser.render_tool_instructions` are appended to the system
  prompt (plus one line when ``tool_choice`` requires a call), no tools and no
  ``tool_choice`` are left for the vendor, and the history is plain text: past calls
  become assistant text (:func:`~ai_agents.tools.parser.render_tool_call`), results
  become user text (:func:`~ai_agents.tools.parser.render_tool_result`), and adjacent
  user/assistant turns are merged (small models follow strictly alternating turns
  best; a merged user turn keeps the images of every message in it). The adapter sends
  that request like any other, in its own wire format.
- :meth:`PromptedTools.read` parses the answer with
  :func:`~ai_agents.tools.parser.parse_tool_calls` into the same
  :class:`~ai_agents.messages.ToolCall` objects native calling yields (ids synthesized,
  finish reason ``tool_calls``), so the runner's tool loop, the saved messages, streaming
  and the ``/v1`` run steps cannot tell the difference.
- :meth:`PromptedTools.stream` wraps the adapter's stream: prose is passed on as it
  arrives, anything that may be a tool call (``<tool...``, ``<function...`` or a code
  fence containing one) is held back so the user never sees raw XML (:class:`ProseFilter`),
  and the parsed calls are yielded as :class:`ToolCallReady` before the final
  :class:`ResponseDone`.

Structured output with tools offered: a JSON ``response_format`` would constrain the whole
answer to JSON, so the model could not write a call. It is then not sent; its instruction
(with the schema) goes in the system prompt and the runner validates the final answer.
Without tools offered the format is left to the adapter, except for adapters whose
structured output is itself a tool (Anthropic's output tool: ``keep_response_format=False``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING
from uuid import uuid4

from ai_agents.messages import IMAGES_KEY, Message, Role, ToolCall
from ai_agents.providers.base import (
    ProviderRequest,
    ProviderResponse,
    ResponseDone,
    StreamEvent,
    TextDelta,
    ToolCallReady,
    ToolSpec,
)
from ai_agents.providers.history import normalize_history
from ai_agents.providers.response_format import json_instruction
from ai_agents.tools.parser import (
    ParsedOutput,
    parse_tool_calls,
    render_tool_call,
    render_tool_instructions,
    render_tool_result,
)

if TYPE_CHECKING:
    from ai_agents.providers.base import Provider

__all__ = [
    "ProseFilter",
    "PromptedTools",
    "join_parts",
    "offered_tools",
    "prompted_for",
    "text_history",
]

log = logging.getLogger(__name__)

_FENCE = "```"


def prompted_for(
    provider: Provider, request: ProviderRequest, *, keep_response_format: bool = True
) -> PromptedTools | None:
    """The prompted-tools translation of *request*, or ``None`` when *provider* calls
    tools natively for its model (then the request goes out as it is)."""
    if provider.native_tools_for(request.model):
        return None
    return PromptedTools.of(
        request, provider=provider.name, keep_response_format=keep_response_format
    )


@dataclass(frozen=True, slots=True)
class PromptedTools:
    """One request in prompted-tools mode: what to send, and how to read the answer."""

    #: The request to send: tool instructions in the system prompt, no tools, text history.
    request: ProviderRequest
    #: Names of the tools offered (``None``: none are, the answer is not parsed for calls).
    known_tools: frozenset[str] | None
    #: ``False``: keep only the answer's first call (``parallel_tool_calls=False``).
    parallel: bool = True
    #: For log lines.
    provider: str = ""

    @classmethod
    def of(
        cls, request: ProviderRequest, *, provider: str = "", keep_response_format: bool = True
    ) -> PromptedTools:
        """Translate *request* (see the module docstring)."""
        offered, note = offered_tools(request)
        system_prompt = request.system_prompt
        if offered:
            system_prompt = join_parts(system_prompt, render_tool_instructions(offered))
        if note:
            system_prompt = join_parts(system_prompt, note)
        fmt = request.response_format
        if fmt is not None and fmt.is_json and (offered or not keep_response_format):
            system_prompt = join_parts(system_prompt, json_instruction(fmt, tools=bool(offered)))
            fmt = None
        rewritten = replace(
            request,
            system_prompt=system_prompt,
            messages=text_history(request.messages),
            tools=(),
            tool_choice="auto",
            parallel_tool_calls=None,
            response_format=fmt,
        )
        return cls(
            request=rewritten,
            known_tools=frozenset(t.name for t in offered) if offered else None,
            parallel=request.parallel_tool_calls is not False,
            provider=provider,
        )

    # --- reading answers ----------------------------------------------------------

    def calls_of(self, parsed: ParsedOutput, *, already: int = 0) -> list[ToolCall]:
        """The calls of *parsed* with ids, limited to one per answer when the request
        allows one (*already*: calls the answer made natively)."""
        for problem in parsed.problems:
            log.info("%s model %s: tool call parse note: %s", self.provider, self.model, problem)
        calls = [c if c.id else replace(c, id=_new_call_id()) for c in parsed.calls]
        if self.parallel:
            return calls
        kept = calls[: max(0, 1 - already)]
        if len(kept) < len(calls):
            names = ", ".join(c.name for c in calls[len(kept) :])
            log.info(
                "%s model %s: parallel_tool_calls=False, dropped calls: %s",
                self.provider,
                self.model,
                names,
            )
        return kept

    @property
    def model(self) -> str:
        return self.request.model

    def read(self, response: ProviderResponse) -> ProviderResponse:
        """*response* with the tool calls written in its text parsed out of it."""
        if self.known_tools is None:
            return response
        parsed = parse_tool_calls(response.content, known_tools=self.known_tools)
        return self._with_calls(response, parsed.text, self.calls_of(parsed))

    def filter(self) -> ProseFilter | None:
        """A streaming filter for the answer (``None``: no tools offered, nothing to hold)."""
        return None if self.known_tools is None else ProseFilter(self.known_tools)

    async def stream(self, events: AsyncIterator[StreamEvent]) -> AsyncGenerator[StreamEvent]:
        """The adapter's *events* with tool-call XML held back and parsed into calls."""
        hold = self.filter()
        native: list[ToolCall] = []
        try:
            async for event in events:
                if hold is None:
                    yield event
                elif isinstance(event, TextDelta):
                    visible = hold.feed(event.text)
                    if visible:
                        yield TextDelta(visible)
                elif isinstance(event, ToolCallReady):
                    native.append(event.call)
                    yield event
                else:
                    rest, parsed = hold.finish()
                    if rest:
                        yield TextDelta(rest)
                    calls = self.calls_of(parsed, already=len(native))
                    for call in calls:
                        yield ToolCallReady(call)
                    yield ResponseDone(self._with_calls(event.response, parsed.text, calls))
        finally:
            close = getattr(events, "aclose", None)
            if close is not None:
                await close()

    @staticmethod
    def _with_calls(
        response: ProviderResponse, text: str, calls: list[ToolCall]
    ) -> ProviderResponse:
        all_calls = [*response.tool_calls, *calls]
        return replace(
            response,
            content=text,
            tool_calls=all_calls,
            finish_reason="tool_calls" if all_calls else response.finish_reason,
        )


# --- the request ------------------------------------------------------------------


def offered_tools(request: ProviderRequest) -> tuple[list[ToolSpec], str]:
    """(the tools to describe, an instruction when ``tool_choice`` requires a call)."""
    tools = list(request.tools)
    choice = request.tool_choice or "auto"
    if not tools or choice == "none":
        return [], ""
    if choice == "auto":
        return tools, ""
    if choice == "required":
        return tools, "You must answer with a tool call (use one of the tools)."
    forced = [t for t in tools if t.name == choice]
    if forced:
        return forced, f"You must answer with a call of the tool `{choice}`."
    return tools, ""


def join_parts(*parts: str) -> str:
    """Join non-blank parts with a blank line (each part kept verbatim inside)."""
    kept = [p for p in parts if p and p.strip()]
    last = len(kept) - 1
    out: list[str] = []
    for i, part in enumerate(kept):
        if i > 0:
            part = part.lstrip("\n")
        if i < last:
            part = part.rstrip("\n")
        out.append(part)
    return "\n\n".join(out)


def text_history(messages: Sequence[Message]) -> list[Message]:
    """*messages* (repaired by :func:`normalize_history`) with tool calls and results as
    text and adjacent user/assistant turns merged; user images are kept."""
    out: list[Message] = []
    for message in normalize_history(messages):
        images: list[object] = []
        role: Role
        if message.role == "tool":
            role = "user"
            text = render_tool_result(
                message.tool_name or "",
                message.tool_call_id or "",
                message.text,
                is_error=message.is_error,
            )
        elif message.role == "assistant":
            role = "assistant"
            text = join_parts(message.text, *(render_tool_call(c) for c in message.tool_calls))
        else:
            role, text = message.role, message.text
            if role == "user":
                images = [image.to_json() for image in message.images]
        if out and out[-1].role == role and role in ("user", "assistant"):
            previous = out[-1]
            previous.content = join_parts(previous.text, text)
            if images:
                previous.metadata[IMAGES_KEY] = [*previous.metadata.get(IMAGES_KEY, []), *images]
            continue
        out.append(
            Message(role=role, content=text, metadata={IMAGES_KEY: images} if images else {})
        )
    return out


def _new_call_id() -> str:
    return f"call_{uuid4().hex[:24]}"


# --- streaming --------------------------------------------------------------------


class ProseFilter:
    """Streaming filter for prompted tools: pass prose on, hold back possible tool calls.

    Text before the first tag that may open a call (``<tool...``/``<function...``, the
    tags :func:`parse_tool_calls` reads, including ``<tool_result>`` a model should not
    write) is emitted as it arrives, minus trailing whitespace and a partial tag, held
    until the next piece shows what they are. A code fence is held until it closes: a
    fence containing a call holds everything to the end; any other code block is emitted
    as prose. :meth:`finish` parses the full text and returns the prose not yet emitted.
    """

    def __init__(self, known_tools: frozenset[str]) -> None:
        self.known_tools = known_tools
        self.text = ""
        self.pos = 0  # text[:pos] has been handled (emitted, or trailing space held)
        self.sent = ""  # everything emitted so far
        self.holding = False

    def feed(self, piece: str) -> str:
        self.text += piece
        if self.holding:
            return ""
        out = self._advance()
        if not self.sent:
            out = out.lstrip()
        self.sent += out
        return out

    def _emit_to(self, end: int) -> str:
        # Trailing whitespace is held: emitted with the next prose, dropped before a call.
        start = self.pos
        while end > start and self.text[end - 1].isspace():
            end -= 1
        chunk = self.text[start:end]
        self.pos = end
        return chunk

    def _advance(self) -> str:
        out: list[str] = []
        while True:
            found = _MARKER_RE.search(self.text, self.pos)
            if found is None:
                end = len(self.text) - _partial_marker(self.text, self.pos)
                out.append(self._emit_to(end))
                return "".join(out)
            index = found.start()
            out.append(self._emit_to(index))
            if found.group() != _FENCE:
                self.holding = True
                return "".join(out)
            close = self.text.find(_FENCE, index + len(_FENCE))
            if close < 0:
                return "".join(out)  # wait for the fence to close
            block_end = close + len(_FENCE)
            block = self.text[index:block_end]
            if _MARKER_RE.search(block, len(_FENCE)) or self._has_call(block):
                self.holding = True
                return "".join(out)
            out.append(self.text[self.pos : block_end])
            self.pos = block_end

    def _has_call(self, block: str) -> bool:
        return bool(parse_tool_calls(block, known_tools=self.known_tools).calls)

    def finish(self) -> tuple[str, ParsedOutput]:
        """(prose not yet emitted, the parse of the whole text)."""
        parsed = parse_tool_calls(self.text, known_tools=self.known_tools)
        final = parsed.text
        sent = self.sent
        if final.startswith(sent):
            rest = final[len(sent) :]
        elif final.lstrip().startswith(sent):
            rest = final.lstrip()[len(sent) :]
        else:  # the parser rewrote prose already streamed; ResponseDone has the truth
            rest = ""
        if not sent:
            rest = rest.lstrip()
        return rest, parsed


# A tag that may open a tool call (the parser's spellings) or a code fence.
_MARKER_RE = re.compile(r"<\s*(?:tool|function)|```", re.IGNORECASE)
_MARKER_WORDS = ("tool", "function")


def _partial_marker(text: str, start: int) -> int:
    """Length of the tail of ``text[start:]`` that could be the start of a marker."""
    tail = text[max(start, len(text) - 2) :]
    ticks = len(tail) - len(tail.rstrip("`"))
    lt = text.rfind("<", start)
    if lt >= 0 and len(text) - lt <= 16:
        rest = text[lt + 1 :].lstrip().lower()
        if any(word.startswith(rest) for word in _MARKER_WORDS):
            return max(len(text) - lt, ticks)
    return ticks
