"""Test models shipped with the library: run agents without a vendor, key or network.

- :class:`ScriptedProvider` answers from a list written in advance, one item per call,
  and records every :class:`~ai_agents.providers.base.ProviderRequest` it received::

      provider = ScriptedProvider([
          call("get_weather", city="Paris"),   # first call: the model calls a tool
          "It is sunny in Paris.",             # second call: the final answer
      ])
      ...  # run the agent
      provider.assert_complete()
      assert provider.requests[1].messages[-1].role == "tool"

- :class:`FunctionProvider` computes each answer with your function (sync or async).

Script items (and function return values) may be a ``str`` (text answer), a
:class:`~ai_agents.messages.ToolCall` or a list of them (tool-call answer), a
:class:`~ai_agents.providers.base.ProviderResponse` (used as is), or, for
:class:`ScriptedProvider`, an ``Exception`` instance (or class) to raise, e.g.
``ProviderRateLimited("slow down", provider="scripted", status=429)``.

Tool calls with an empty ``id`` get a fresh synthesized one (``call_<hex>``).

Usage: responses built from ``str``/tool calls get a :class:`Usage` marked
``estimated=True``, counted with :func:`ai_agents.tokens.default_counter` when that module
is importable (and has its data), otherwise as whitespace-separated words (so tests never need a tokenizer).
A :class:`ProviderResponse` item keeps the usage it carries; pass ``usage=`` to the
constructor to give every generated response the same fixed usage instead.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any, ClassVar, TypeAlias
from uuid import uuid4

from ai_agents.errors import ConfigurationError
from ai_agents.messages import ToolCall
from ai_agents.providers.base import (
    Provider,
    ProviderRequest,
    ProviderResponse,
    ProviderSettings,
    ResponseDone,
    StreamEvent,
    TextDelta,
    ToolCallReady,
    Usage,
)

__all__ = [
    "FunctionProvider",
    "ProviderFunction",
    "ScriptExhausted",
    "ScriptItem",
    "ScriptNotConsumed",
    "ScriptedProvider",
    "call",
    "calls",
    "text",
]

#: What a function given to :class:`FunctionProvider` may return.
Answer: TypeAlias = ProviderResponse | str | ToolCall | Sequence[ToolCall]
#: One entry of a :class:`ScriptedProvider` script.
ScriptItem: TypeAlias = Answer | BaseException | type[BaseException]
ProviderFunction: TypeAlias = Callable[[ProviderRequest], Answer | Awaitable[Answer]]


class ScriptExhausted(AssertionError):
    """A :class:`ScriptedProvider` was called more times than responses were scripted."""


class ScriptNotConsumed(AssertionError):
    """:meth:`ScriptedProvider.assert_complete` found scripted responses never used."""


# --- helpers ----------------------------------------------------------------------


def new_call_id() -> str:
    return f"call_{uuid4().hex[:24]}"


def call(name: str, /, **arguments: Any) -> ToolCall:
    """A tool call for a script: ``call("search", query="x")`` (id synthesized on use)."""
    return ToolCall(id="", name=name, arguments=dict(arguments))


def text(content: str) -> ProviderResponse:
    """A plain text answer (finish_reason "stop")."""
    return ProviderResponse(content=content, finish_reason="stop")


def calls(*tool_calls: ToolCall, content: str = "") -> ProviderResponse:
    """An answer made of tool calls (finish_reason "tool_calls"); empty ids are filled."""
    return ProviderResponse(
        content=content, tool_calls=_with_ids(tool_calls), finish_reason="tool_calls"
    )


def _with_ids(tool_calls: Iterable[ToolCall]) -> list[ToolCall]:
    return [c if c.id else replace(c, id=new_call_id()) for c in tool_calls]


def _count(text_: str, model: str) -> int:
    try:
        from ai_agents.tokens import default_counter

        return default_counter().count_text(text_, provider="scripted", model=model)
    except (ImportError, ConfigurationError):  # no tokenizer data: count words instead
        return len(text_.split())


def _request_text(request: ProviderRequest) -> str:
    parts = [request.system_prompt]
    for message in request.messages:
        parts.append(message.text)
        if message.tool_calls:
            parts.append(json.dumps([c.to_json() for c in message.tool_calls]))
    for tool in request.tools:
        parts.append(
            json.dumps(
                {"name": tool.name, "description": tool.description, "parameters": tool.parameters}
            )
        )
    return "\n".join(p for p in parts if p)


def _estimate_usage(request: ProviderRequest, response: ProviderResponse) -> Usage:
    output = response.content
    if response.tool_calls:
        output += json.dumps([c.to_json() for c in response.tool_calls])
    return Usage(
        _count(_request_text(request), request.model),
        _count(output, request.model),
        estimated=True,
    )


def _chunks(content: str, parts: int = 3) -> list[str]:
    """Split *content* into up to *parts* pieces on word boundaries (joined == content)."""
    if not content:
        return []
    words = content.split(" ")
    if len(words) < 2:
        return [content]
    size = max(1, -(-len(words) // parts))
    pieces = [" ".join(words[i : i + size]) for i in range(0, len(words), size)]
    # Re-attach the separating spaces so that "".join(pieces) == content.
    return [p + " " for p in pieces[:-1]] + [pieces[-1]]


# --- base -------------------------------------------------------------------------


class _TestProvider(Provider):
    supports_native_tools: ClassVar[bool] = True
    supports_streaming: ClassVar[bool] = True

    def __init__(
        self,
        settings: ProviderSettings | None = None,
        *,
        usage: Usage | None = None,
        record_requests: bool = True,
    ) -> None:
        super().__init__(settings)
        #: Every request received, oldest first (kept only with ``record_requests``: a
        #: benchmark's provider answering thousands of runs would hold them all).
        self.requests: list[ProviderRequest] = []
        self.record_requests = record_requests
        self._usage = usage

    @property
    def last_request(self) -> ProviderRequest:
        if not self.record_requests:
            raise AssertionError(f"{type(self).__name__} does not record its requests")
        if not self.requests:
            raise AssertionError(f"{type(self).__name__} received no request")
        return self.requests[-1]

    def native_tools_for(self, model: str) -> bool:
        return True

    def _to_response(self, answer: Answer, request: ProviderRequest) -> ProviderResponse:
        if isinstance(answer, ProviderResponse):
            response = replace(
                answer,
                tool_calls=_with_ids(answer.tool_calls),
                provider=answer.provider or self.name,
                model=answer.model or request.model,
            )
            if response.tool_calls and answer.finish_reason == "stop":
                response.finish_reason = "tool_calls"
            return response
        if isinstance(answer, str):
            response = text(answer)
        elif isinstance(answer, ToolCall):
            response = calls(answer)
        elif (
            isinstance(answer, Sequence) and answer and all(isinstance(c, ToolCall) for c in answer)
        ):
            response = calls(*answer)
        else:
            raise TypeError(
                f"{type(self).__name__}: cannot turn {answer!r} into a response "
                "(expected str, ToolCall, list of ToolCall or ProviderResponse)"
            )
        response.provider = self.name
        response.model = request.model
        response.usage = self._usage or _estimate_usage(request, response)
        return response

    async def _answer(self, request: ProviderRequest) -> ProviderResponse:
        raise NotImplementedError

    async def complete(self, request: ProviderRequest) -> ProviderResponse:
        if self.record_requests:
            self.requests.append(request)
        return await self._answer(request)

    async def stream(self, request: ProviderRequest) -> AsyncIterator[StreamEvent]:
        response = await self.complete(request)
        for piece in _chunks(response.content):
            yield TextDelta(piece)
        for tool_call in response.tool_calls:
            yield ToolCallReady(tool_call)
        yield ResponseDone(response)


# --- scripted ---------------------------------------------------------------------


class ScriptedProvider(_TestProvider):
    """Answers each call with the next scripted item; records requests in ``.requests``."""

    kind: ClassVar[str] = "scripted"

    def __init__(
        self,
        responses: Iterable[ScriptItem] = (),
        *,
        settings: ProviderSettings | None = None,
        usage: Usage | None = None,
    ) -> None:
        super().__init__(settings, usage=usage)
        self._script: list[ScriptItem] = list(responses)
        self._next = 0

    def add(self, *responses: ScriptItem) -> ScriptedProvider:
        """Append more scripted responses; returns self for chaining."""
        self._script.extend(responses)
        return self

    @property
    def remaining(self) -> int:
        """How many scripted responses have not been used yet."""
        return len(self._script) - self._next

    @property
    def consumed(self) -> int:
        return self._next

    def assert_complete(self) -> None:
        """Raise :class:`ScriptNotConsumed` if some scripted responses were never used."""
        if self.remaining:
            unused = ", ".join(repr(item) for item in self._script[self._next :])
            raise ScriptNotConsumed(
                f"{self.name}: {self.remaining} of {len(self._script)} scripted responses "
                f"were not consumed: {unused}"
            )

    async def _answer(self, request: ProviderRequest) -> ProviderResponse:
        if self._next >= len(self._script):
            n = len(self._script)
            raise ScriptExhausted(
                f"{self.name}: got request #{len(self.requests)} but only {n} "
                f"response{'s' if n != 1 else ''} {'were' if n != 1 else 'was'} scripted "
                f"(last message: {_last_message(request)!r})"
            )
        item = self._script[self._next]
        self._next += 1
        if isinstance(item, BaseException):
            raise item
        if isinstance(item, type) and issubclass(item, BaseException):
            raise item()
        return self._to_response(item, request)


def _last_message(request: ProviderRequest) -> str:
    if not request.messages:
        return ""
    last = request.messages[-1]
    body = last.text or ", ".join(c.name for c in last.tool_calls)
    return f"{last.role}: {body[:80]}"


# --- function ---------------------------------------------------------------------


class FunctionProvider(_TestProvider):
    """Answers with ``fn(request)`` (sync or async); records requests in ``.requests``
    (unless ``record_requests=False``, as the benchmarks run it)."""

    kind: ClassVar[str] = "function"

    def __init__(
        self,
        fn: ProviderFunction,
        *,
        settings: ProviderSettings | None = None,
        usage: Usage | None = None,
        record_requests: bool = True,
    ) -> None:
        super().__init__(settings, usage=usage, record_requests=record_requests)
        self.fn = fn

    async def _answer(self, request: ProviderRequest) -> ProviderResponse:
        result = self.fn(request)
        if inspect.isawaitable(result):
            result = await result
        return self._to_response(result, request)
