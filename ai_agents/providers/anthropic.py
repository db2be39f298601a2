"""Anthropic Messages adapter (``anthropic.AsyncAnthropic``).

Conversion from the internal history (after :func:`normalize_history`):

- The system prompt goes to the top-level ``system`` field. ``system`` messages found in
  the history *before the first user/assistant message* are folded into it (appended,
  blank-line separated). ``system`` messages *in the middle* of the history become user
  text ``"[System] ..."`` at their position: folding them into the top-level field would
  lose where they happened (e.g. "the user switched language"), and the API has no
  system role inside ``messages``.
- Assistant tool calls become ``tool_use`` blocks; results become ``tool_result`` blocks
  (``is_error`` when set) in one ``user`` message, placed first, before any user text.
- Messages must alternate user/assistant and start with user: consecutive same-role
  messages are merged, a leading assistant message gets a minimal user message
  (``"(conversation continues)"``) before it.
- Empty or whitespace-only text blocks are omitted (the API rejects them); messages left
  without content are dropped; a final assistant message loses trailing whitespace.
- Tool-call ids that do not match ``^[a-zA-Z0-9_-]+$`` (e.g. written by another vendor)
  are mapped consistently for the call and its result (:func:`to_id_safe`).
- ``max_tokens`` is required: the request's ``max_output_tokens``, else the registry's
  ``max_output`` for the model, else 4096.
- ``temperature`` and ``top_p`` are not sent: API version ``2026-10-21`` (the default of
  SDK 2.x, which no longer has the parameters) rejects ``temperature``/``top_p``/``top_k``
  with a 400.
- ``parallel_tool_calls=False`` -> ``disable_parallel_tool_use: true`` in ``tool_choice``.
- A model without native tools (the registry's ``supports_tools``, or the
  ``native_tools`` option) gets them prompted (:mod:`ai_agents.providers.prompted_tools`):
  no ``tools``, ``tool_choice``, ``tool_use`` or ``tool_result`` blocks are sent, and a
  JSON ``response_format`` becomes a system-prompt instruction (no output tool).

Structured output (a JSON ``response_format``) goes through a forced *output tool*: an
extra tool named after the format (:func:`output_tool_name`) whose ``input_schema`` is
the schema (``{"type": "object"}`` for ``json_object``; a schema whose root is not an
object is wrapped as ``{"value": ...}``). ``tool_choice`` becomes
``{"type": "tool", "name": <output tool>}`` when no other tool may be called, else
``{"type": "any"}`` (a real tool, or the answer through the output tool). A ``required``
or named ``tool_choice`` offers no output tool: that call must use a real tool. The
output tool's input comes back as the response's ``content`` (JSON text; text blocks
beside it are dropped), never as a tool call, with finish reason ``stop``.

Usage: ``input_tokens`` includes cache-read and cache-creation input tokens; they are also
reported apart (``cache_read_tokens``, ``cache_write_tokens``) to be priced as such.

A 200 we cannot read (not JSON, the wrong shape, an unknown ``stop_reason``, a stream out
of order or ending before ``message_stop``) is :class:`ProviderBadResponse` (retryable),
read by the pure :func:`read_message` / :class:`EventReader`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import anthropic

from ai_agents.errors import (
    ProviderAuthError,
    ProviderBadRequest,
    ProviderBadResponse,
    ProviderConnectionError,
    ProviderError,
    ProviderOverloaded,
    ProviderRateLimited,
    ProviderTimeout,
    UnknownModelError,
)
from ai_agents.messages import ImageInput, Message, ToolCall
from ai_agents.providers.base import (
    FinishReason,
    NativeTools,
    Provider,
    ProviderRequest,
    ProviderResponse,
    ProviderSettings,
    ResponseDone,
    StreamEvent,
    TextDelta,
    ToolCallReady,
    ToolSpec,
    Usage,
)
from ai_agents.providers.catalog import PROVIDERS
from ai_agents.providers.history import normalize_history, remap_tool_ids, to_id_safe
from ai_agents.providers.prompted_tools import prompted_for
from ai_agents.providers.response_format import output_tool_name
from ai_agents.providers.retry import parse_retry_after

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "EventReader",
    "OUTPUT_TOOL_DESCRIPTION",
    "PLACEHOLDER_USER_TEXT",
    "AnthropicProvider",
    "default_max_tokens",
    "read_message",
]

T = TypeVar("T")

#: ``max_tokens`` when neither the request nor the model registry gives one.
DEFAULT_MAX_TOKENS = 4096
#: Inserted when the history does not start with a user message.
PLACEHOLDER_USER_TEXT = "(conversation continues)"
#: The output tool's description when the response format has none.
OUTPUT_TOOL_DESCRIPTION = (
    "Give your final answer to the user with this tool: its input is the answer."
)

_STOP_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "refusal": "content_filter",
}

# Error ``type`` in the body -> (exception class, status). Used for in-stream ``error``
# events, which arrive on a 200 response.
_ERROR_TYPES: dict[str, tuple[type[ProviderError], int]] = {
    "overloaded_error": (ProviderOverloaded, 529),
    "api_error": (ProviderOverloaded, 500),
    "rate_limit_error": (ProviderRateLimited, 429),
    "authentication_error": (ProviderAuthError, 401),
    "permission_error": (ProviderAuthError, 403),
    "invalid_request_error": (ProviderBadRequest, 400),
    "not_found_error": (ProviderBadRequest, 404),
    "request_too_large": (ProviderBadRequest, 413),
    "timeout_error": (ProviderTimeout, 504),
}


def default_max_tokens(provider: str, model: str) -> int:
    """The model's ``max_output`` from the limits registry, else :data:`DEFAULT_MAX_TOKENS`.

    Only an unknown model falls back; a broken registry (e.g. a bad models file) raises.
    """
    from ai_agents.providers.registry import get_registry

    for name in dict.fromkeys((provider, "anthropic")):
        try:
            return get_registry().get(name, model).max_output
        except UnknownModelError:
            continue
    return DEFAULT_MAX_TOKENS
    for name in dict.fromkeys((provider, "anthropic")):
        try:
            limit = get_registry().get(name, model).max_output
        except Exception:  # unknown model/provider: try the next name, then default
            continue
        if isinstance(limit, int) and limit > 0:
            return limit
    return DEFAULT_MAX_TOKENS


class AnthropicProvider(Provider):
    """Messages API through ``anthropic.AsyncAnthropic``.

    ``client``: an already-built ``AsyncAnthropic`` (tests, custom transports).
    ``max_tokens``: the default ``max_tokens`` when the request gives none (overrides
    the registry).
    ``native_tools``: ``False`` (or a function of the model name) prompts tools instead
    of sending them; default: the registry's ``supports_tools``, native when unknown.
    """

    kind = "anthropic"

    def __init__(
        self,
        settings: ProviderSettings | None = None,
        *,
        max_tokens: int | None = None,
        client: anthropic.AsyncAnthropic | None = None,
        native_tools: NativeTools | None = None,
    ) -> None:
        super().__init__(settings, native_tools=native_tools)
        self.max_tokens = max_tokens
        self._client = client

    # --- client -----------------------------------------------------------------------

    @property
    def client(self) -> anthropic.AsyncAnthropic:
        """The one client of this provider (created on first use, then reused).

        ``api_key``/``base_url`` fall back to the catalog's variables for ``anthropic``
        (:mod:`ai_agents.providers.catalog`; the same ones the SDK would read).
        """
        if self._client is None:
            settings = self.settings
            vendor = PROVIDERS["anthropic"]
            self._client = anthropic.AsyncAnthropic(
                api_key=settings.api_key or vendor.api_key(),
                base_url=settings.base_url or vendor.url_override(),
                timeout=settings.timeout,
                max_retries=0,
                default_headers=dict(settings.headers) or None,
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    # --- requests ---------------------------------------------------------------------

    def build_messages(self, request: ProviderRequest) -> tuple[str, list[dict[str, Any]]]:
        """``(system, messages)`` in the Messages API format (see the module docstring)."""
        history = remap_tool_ids(normalize_history(request.messages), to_id_safe)
        system_parts = [request.system_prompt] if request.system_prompt.strip() else []
        turns: list[tuple[str, list[dict[str, Any]]]] = []  # (role, blocks)
        for message in history:
            role, blocks = self._convert(message, leading=not turns)
            if role == "system":
                system_parts.extend(b["text"] for b in blocks)
                continue
            if not blocks:
                continue
            if turns and turns[-1][0] == role:
                previous = turns[-1][1]
                if role == "user":  # tool results first, then everything else
                    merged = previous + blocks
                    results = [b for b in merged if b["type"] == "tool_result"]
                    others = [b for b in merged if b["type"] != "tool_result"]
                    previous[:] = results + others
                else:
                    previous.extend(blocks)
            else:
                turns.append((role, blocks))
        if not turns or turns[0][0] != "user":
            turns.insert(0, ("user", [{"type": "text", "text": PLACEHOLDER_USER_TEXT}]))
        if turns[-1][0] == "assistant":  # prefill: no trailing whitespace allowed
            _strip_trailing_whitespace(turns[-1][1])
        messages = [{"role": role, "content": blocks} for role, blocks in turns if blocks]
        return "\n\n".join(system_parts), messages

    @staticmethod
    def _convert(message: Message, *, leading: bool) -> tuple[str, list[dict[str, Any]]]:
        text = message.text
        if message.role == "system":
            if not text.strip():
                return "system", []
            if leading:
                return "system", [{"type": "text", "text": text}]
            return "user", [{"type": "text", "text": f"[System] {text}"}]
        if message.role == "user":
            shown = [_image_block(image) for image in message.images]
            return "user", shown + ([{"type": "text", "text": text}] if text.strip() else [])
        if message.role == "tool":
            block: dict[str, Any] = {"type": "tool_result", "tool_use_id": message.tool_call_id}
            if text.strip():
                block["content"] = text
            if message.is_error:
                block["is_error"] = True
            return "user", [block]
        blocks: list[dict[str, Any]] = []
        if text.strip():
            blocks.append({"type": "text", "text": text})
        for call in message.tool_calls:
            blocks.append(
                {"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments}
            )
        return "assistant", blocks

    def build_kwargs(self, request: ProviderRequest) -> dict[str, Any]:
        """Keyword arguments for ``client.messages.create`` (without ``stream``)."""
        system, messages = self.build_messages(request)
        max_tokens = request.max_output_tokens or self.max_tokens
        if not max_tokens:
            max_tokens = default_max_tokens(self.name, request.model)
        kwargs: dict[str, Any] = {
            "model": request.model,
            "max_tokens": max_tokens,
            "messages": messages,
        }
        if system:
            kwargs["system"] = system
        tools = [_tool_to_wire(tool) for tool in request.tools]
        choice: dict[str, Any] | None = _tool_choice(request.tool_choice) if tools else None
        answer = _AnswerTool.of(request)
        if answer is not None:
            tools.append(answer.wire)
            if request.tools and request.tool_choice == "auto":
                choice = {"type": "any"}
            else:
                choice = {"type": "tool", "name": answer.name}
        if tools:
            assert choice is not None
            if request.parallel_tool_calls is False and choice["type"] != "none":
                choice["disable_parallel_tool_use"] = True
            kwargs["tools"] = tools
            kwargs["tool_choice"] = choice
        if request.stop:
            kwargs["stop_sequences"] = list(request.stop)
        return kwargs

    # The raw response (``with_raw_response``) keeps everything ``messages.create`` does
    # (timeouts, deprecation warnings, headers) but hands us the decoded JSON, read by
    # :func:`read_message` / :class:`EventReader`, which check the fields we use: the
    # SDK's lenient models would let a wrong shape through as AttributeErrors.

    async def complete(self, request: ProviderRequest) -> ProviderResponse:
        # A structured answer is an output tool here: a model without tools is asked
        # for the JSON in the system prompt instead.
        prompted = prompted_for(self, request, keep_response_format=False)
        if prompted is not None:
            return prompted.read(await self._complete(prompted.request))
        return await self._complete(request)

    async def _complete(self, request: ProviderRequest) -> ProviderResponse:
        kwargs = self.build_kwargs(request)
        try:
            raw = await self.client.messages.with_raw_response.create(**kwargs)
            data = await raw.json()
        except anthropic.AnthropicError as exc:
            raise self._map_error(exc) from exc
        except _UNDECODABLE as exc:
            raise ProviderBadResponse.of(self.name, f"the body is not JSON ({exc})") from exc
        except TypeError as exc:  # the SDK's "no credentials" error
            if "authentication" not in str(exc):
                raise
            raise self._no_key_error() from exc
        return read_message(
            data, provider=self.name, model=request.model, answer=_AnswerTool.of(request)
        )

    async def stream(self, request: ProviderRequest) -> AsyncIterator[StreamEvent]:
        prompted = prompted_for(self, request, keep_response_format=False)
        if prompted is None:
            events = self._stream(request)
        else:
            events = prompted.stream(self._stream(prompted.request))
        async with aclosing(events):
            async for event in events:
                yield event

    async def _stream(self, request: ProviderRequest) -> AsyncGenerator[StreamEvent]:
        kwargs = self.build_kwargs(request)
        reader = EventReader(self.name, request.model, _AnswerTool.of(request))
        try:
            raw = await self.client.messages.with_raw_response.create(**kwargs, stream=True)
            events = await raw.parse(to=anthropic.AsyncStream[object])
            try:
                while True:
                    try:
                        data = await anext(events)
                    except StopAsyncIteration:
                        break
                    except _UNDECODABLE as exc:  # a ``data:`` line that is not JSON
                        raise ProviderBadResponse.of(
                            self.name, f"a stream event is not JSON ({exc})"
                        ) from exc
                    for event in reader.feed(data):
                        yield event
            finally:
                await events.close()
        except anthropic.AnthropicError as exc:
            raise self._map_error(exc) from exc
        except TypeError as exc:  # the SDK's "no credentials" error
            if "authentication" not in str(exc):
                raise
            raise self._no_key_error() from exc
        for event in reader.end():
            yield event

    # --- errors -----------------------------------------------------------------------

    def _no_key_error(self) -> ProviderAuthError:
        """The SDK raises TypeError when it finds no credentials at request time."""
        return ProviderAuthError(
            f"{self.name}: no API key (set ProviderSettings.api_key or "
            f"{PROVIDERS['anthropic'].key_envs[0]})",
            provider=self.name,
        )

    def _map_error(self, exc: anthropic.AnthropicError) -> ProviderError:
        provider = self.name
        credentials_error = getattr(anthropic, "CredentialsError", None)  # SDK 2.x
        if credentials_error is not None and isinstance(exc, credentials_error):
            return ProviderAuthError(f"{provider}: {exc}", provider=provider)
        if isinstance(exc, anthropic.APIResponseValidationError):  # strict client, odd reply
            return ProviderBadResponse.of(provider, exc.message, status=exc.status_code)
        if isinstance(exc, anthropic.APITimeoutError):
            return ProviderTimeout(f"{provider}: request timed out", provider=provider)
        if isinstance(exc, anthropic.APIConnectionError):
            return ProviderConnectionError(
                f"{provider}: connection failed: {exc.__cause__ or exc}", provider=provider
            )
        if isinstance(exc, anthropic.APIStatusError):
            status = exc.status_code
            error_type = exc.type or ""
            vendor = exc.api_message or _vendor_message(exc.body) or exc.message
            message = f"{provider}: {vendor}"
            retry_after = parse_retry_after(exc.response.headers)
            if status < 400 and error_type in _ERROR_TYPES:  # error event inside a stream
                cls, status = _ERROR_TYPES[error_type]
                return cls(message, provider=provider, status=status, vendor_message=vendor)
            if status == 429:
                return ProviderRateLimited(
                    message,
                    provider=provider,
                    status=status,
                    retry_after=retry_after,
                    vendor_message=vendor,
                )
            if status in (401, 403):
                return ProviderAuthError(
                    message, provider=provider, status=status, vendor_message=vendor
                )
            if status in (408, 504) and error_type == "timeout_error":
                return ProviderTimeout(
                    message, provider=provider, status=status, vendor_message=vendor
                )
            if status >= 500 or status < 400:
                return ProviderOverloaded(
                    message,
                    provider=provider,
                    status=status,
                    retry_after=retry_after,
                    vendor_message=vendor,
                )
            return ProviderBadRequest(
                message, provider=provider, status=status, vendor_message=vendor
            )
        return ProviderBadRequest(f"{provider}: {exc}", provider=provider)


# --- reading replies ------------------------------------------------------------------
#
# The readers take the decoded JSON as it came and check only the fields they use (new
# block and event types are skipped), so a reply we cannot read raises the retryable
# ProviderBadResponse instead of an AttributeError (or a saved empty answer).

#: What JSON decoding raises on a body or ``data:`` line that is not JSON
#: (RecursionError: nesting deeper than the decoder goes).
_UNDECODABLE = (json.JSONDecodeError, UnicodeDecodeError, RecursionError)

#: The stream events read; any other type (a newer one) is skipped.
_EVENTS = frozenset(
    {
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    }
)


@dataclass(frozen=True, slots=True)
class _Check:
    """Shape checks on one provider's reply; each failure names the field."""

    provider: str

    def bad(self, problem: str, got: object = None) -> ProviderBadResponse:
        return ProviderBadResponse.of(self.provider, problem, got=got)

    def obj(self, value: object, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.bad(f"{where} is not an object", value)
        return value

    def opt(self, value: object, kind: type[T], where: str) -> T | None:
        """*value* when it is a *kind* or null (a JSON bool is not a number here)."""
        if value is None:
            return None
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise self.bad(f"{where} is not {kind.__name__}", value)
        return value

    def name(self, value: object, where: str) -> str:
        """A required, non-empty string (tool names and ids)."""
        text = self.opt(value, str, where)
        if not text:
            raise self.bad(f"{where} is missing", value)
        return text

    def count(self, value: object, where: str) -> int:
        """A token count: a non-negative integer, null meaning 0."""
        number = self.opt(value, int, where) or 0
        if number < 0:
            raise self.bad(f"{where} is negative", value)
        return number

    def index(self, event: dict[str, Any]) -> int:
        index = event.get("index")
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            raise self.bad(f"{event.get('type')}.index is not an index", index)
        return index


def read_message(
    data: object, *, provider: str, model: str, answer: _AnswerTool | None = None
) -> ProviderResponse:
    """A decoded Messages API body as a response (*answer*: the request's output tool,
    whose input becomes the content). Raises ProviderBadResponse."""
    check = _Check(provider)
    body = check.obj(data, "the body")
    blocks = body.get("content")
    if not isinstance(blocks, list):
        raise check.bad("'content' is not a list", blocks)
    text: list[str] = []
    calls: list[ToolCall] = []
    answer_json: str | None = None
    for raw in blocks:
        block = check.obj(raw, "a content block")
        kind = block.get("type")
        if kind == "text":
            text.append(check.opt(block.get("text"), str, "a text block's text") or "")
        elif kind == "tool_use":
            name = check.name(block.get("name"), "a tool_use block's name")
            if answer is not None and name == answer.name:
                answer_json = answer.content(block.get("input"))
                continue
            call_id = check.name(block.get("id"), "a tool_use block's id")
            calls.append(ToolCall(id=call_id, name=name, arguments=_as_dict(block.get("input"))))
    reason = body.get("stop_reason")
    if not isinstance(reason, str) or reason not in _STOP_REASONS:  # never null here
        raise check.bad("unknown stop_reason", reason)
    return ProviderResponse(
        content="".join(text) if answer_json is None else answer_json,
        tool_calls=calls,
        finish_reason=_finish_reason(reason, bool(calls), answer_json is not None),
        usage=_read_usage(body.get("usage"), check),
        provider=provider,
        model=check.opt(body.get("model"), str, "'model'") or model,
        raw_id=check.opt(body.get("id"), str, "'id'"),
    )


class EventReader:
    """Folds decoded stream events into stream events, ending with one ResponseDone.

    The Messages stream has a strict order (``message_start``; per block a start, its
    deltas, a stop; ``message_delta`` with the stop reason; ``message_stop``): a reply
    out of that order, or one that ends before ``message_stop`` (:meth:`end`), raises
    ProviderBadResponse, so a cut stream is never taken for an empty answer.

    With an output tool, text is held back: dropped if the answer comes through the tool,
    passed on before a real tool call or at the end otherwise.
    """

    def __init__(self, provider: str, model: str, answer: _AnswerTool | None = None) -> None:
        self.check = _Check(provider)
        self.provider = provider
        self.model = model
        self.answer = answer
        self.started = False
        self.stopped = False
        self.open: set[int] = set()  # blocks started and not yet stopped
        self.text: list[str] = []
        self.held: list[str] = []
        self.answer_index: int | None = None
        self.answer_json: list[str] | None = None
        self.calls: list[ToolCall] = []
        self.blocks: dict[int, dict[str, Any]] = {}  # index -> tool_use being received
        self.input = Usage()  # input tokens (with cache reads/writes) of message_start
        self.output_tokens = 0
        self.stop_reason: str | None = None
        self.raw_id: str | None = None

    def feed(self, data: object) -> list[StreamEvent]:
        """The events of one stream event (raises ProviderBadResponse)."""
        check = self.check
        event = check.obj(data, "a stream event")
        kind = event.get("type")
        if not isinstance(kind, str):
            raise check.bad("a stream event has no type", kind)
        if kind not in _EVENTS:
            return []  # a newer event type
        if self.stopped:
            raise check.bad(f"{kind} after message_stop")
        if (kind == "message_start") == self.started:
            raise check.bad("message_start twice" if self.started else f"{kind} first")
        if kind == "message_start":
            self._start(check.obj(event.get("message"), "message_start.message"))
            return []
        if kind == "content_block_start":
            return self._block_start(check.index(event), event)
        if kind == "content_block_delta":
            return self._block_delta(self._open(event), event)
        if kind == "content_block_stop":
            return self._block_stop(self._open(event))
        if kind == "message_delta":
            self._message_delta(event)
        else:  # message_stop
            if self.open:
                raise check.bad(f"message_stop with block(s) {sorted(self.open)} open")
            if self.stop_reason is None:
                raise check.bad("message_stop without a stop_reason")
            self.stopped = True
        return []

    def end(self) -> list[StreamEvent]:
        """The last events of a complete stream: held text, then the ResponseDone."""
        if not self.stopped:
            raise self.check.bad("the stream ended before message_stop")
        events = self._release_held()
        answered = self.answer_json is not None
        return [
            *events,
            ResponseDone(
                ProviderResponse(
                    content="".join(self.answer_json or []) if answered else "".join(self.text),
                    tool_calls=self.calls,
                    finish_reason=_finish_reason(self.stop_reason, bool(self.calls), answered),
                    usage=replace(self.input, output_tokens=self.output_tokens),
                    provider=self.provider,
                    model=self.model,
                    raw_id=self.raw_id,
                )
            ),
        ]

    # --- events -------------------------------------------------------------------

    def _start(self, message: dict[str, Any]) -> None:
        check = self.check
        self.started = True
        self.raw_id = check.opt(message.get("id"), str, "message.id")
        self.model = check.opt(message.get("model"), str, "message.model") or self.model
        usage = _read_usage(message.get("usage"), check)
        self.input, self.output_tokens = usage, usage.output_tokens

    def _open(self, event: dict[str, Any]) -> int:
        index = self.check.index(event)
        if index not in self.open:
            raise self.check.bad(f"{event['type']} for block {index}, which is not open")
        return index

    def _block_start(self, index: int, event: dict[str, Any]) -> list[StreamEvent]:
        check = self.check
        if index in self.open:
            raise check.bad(f"block {index} started twice")
        self.open.add(index)
        block = check.obj(event.get("content_block"), "content_block_start.content_block")
        kind = block.get("type")
        if kind == "text":
            return self._text(check.opt(block.get("text"), str, "a text block's text") or "")
        if kind != "tool_use":
            return []  # thinking and server-side blocks: not part of the answer
        name = check.name(block.get("name"), "a tool_use block's name")
        if self.answer is not None and name == self.answer.name:
            self.answer_index, self.answer_json = index, []
            return []
        self.blocks[index] = {
            "id": check.name(block.get("id"), "a tool_use block's id"),
            "name": name,
            "input": _as_dict(block.get("input")),
            "json": "",
        }
        return self._release_held()

    def _block_delta(self, index: int, event: dict[str, Any]) -> list[StreamEvent]:
        check = self.check
        delta = check.obj(event.get("delta"), "content_block_delta.delta")
        kind = delta.get("type")
        if kind == "text_delta":
            return self._text(check.opt(delta.get("text"), str, "text_delta.text") or "")
        if kind != "input_json_delta":
            return []  # thinking, signature and citation deltas
        part = check.opt(delta.get("partial_json"), str, "input_json_delta.partial_json") or ""
        if index in self.blocks:
            self.blocks[index]["json"] += part
        elif index == self.answer_index and self.answer_json is not None:
            assert self.answer is not None
            self.answer_json.append(part)
            if not self.answer.wrapped and part:
                return [TextDelta(part)]
        return []

    def _block_stop(self, index: int) -> list[StreamEvent]:
        self.open.discard(index)
        if index == self.answer_index and self.answer_json is not None:
            assert self.answer is not None
            raw = "".join(self.answer_json)
            # Streamed as it came; only an empty or wrapped input is sent now.
            if self.answer.wrapped or not raw.strip():
                rest = self.answer.content(_parse_input(raw, {}))
                self.answer_json[:] = [rest]
                return [TextDelta(rest)]
            return []
        pending = self.blocks.pop(index, None)
        if pending is None:
            return []
        call = ToolCall(
            id=pending["id"],
            name=pending["name"],
            arguments=_parse_input(pending["json"], pending["input"]),
        )
        self.calls.append(call)
        return [ToolCallReady(call)]

    def _message_delta(self, event: dict[str, Any]) -> None:
        check = self.check
        delta = check.opt(event.get("delta"), dict, "message_delta.delta") or {}
        reason = delta.get("stop_reason")
        if reason is not None:
            if not isinstance(reason, str) or reason not in _STOP_REASONS:
                raise check.bad("unknown stop_reason", reason)
            self.stop_reason = reason
        usage = check.opt(event.get("usage"), dict, "message_delta.usage") or {}
        self.output_tokens = (
            check.count(usage.get("output_tokens"), "usage.output_tokens") or self.output_tokens
        )
        if usage.get("input_tokens") is not None:
            self.input = _read_usage(usage, check)

    # --- text -----------------------------------------------------------------------

    def _text(self, text: str) -> list[StreamEvent]:
        if not text:
            return []
        if self.answer is not None:
            if self.answer_json is None:
                self.held.append(text)
            return []
        self.text.append(text)
        return [TextDelta(text)]

    def _release_held(self) -> list[StreamEvent]:
        """Held text, passed on (before a real tool call, or at the end)."""
        if not self.held or self.answer_json is not None:
            return []
        text = "".join(self.held)
        self.held.clear()
        self.text.append(text)
        return [TextDelta(text)]


def _read_usage(value: object, check: _Check) -> Usage:
    """Usage, input including cache reads and writes, which are also counted apart (they are
    billed at other prices); none reported: estimated zeros."""
    usage = check.opt(value, dict, "'usage'")
    if usage is None:
        return Usage(estimated=True)
    read = check.count(usage.get("cache_read_input_tokens"), "usage.cache_read_input_tokens")
    write = check.count(
        usage.get("cache_creation_input_tokens"), "usage.cache_creation_input_tokens"
    )
    inputs = check.count(usage.get("input_tokens"), "usage.input_tokens") + read + write
    return Usage(
        inputs,
        check.count(usage.get("output_tokens"), "usage.output_tokens"),
        cache_read_tokens=read,
        cache_write_tokens=write,
    )


# --- conversion helpers ---------------------------------------------------------------


def _strip_trailing_whitespace(blocks: list[dict[str, Any]]) -> None:
    if blocks and blocks[-1]["type"] == "text":
        stripped = blocks[-1]["text"].rstrip()
        if stripped:
            blocks[-1] = {**blocks[-1], "text": stripped}
        else:
            blocks.pop()


def _tool_to_wire(tool: ToolSpec) -> dict[str, Any]:
    schema = dict(tool.parameters) if tool.parameters else {}
    schema.setdefault("type", "object")
    return {"name": tool.name, "description": tool.description, "input_schema": schema}


def _tool_choice(choice: str) -> dict[str, Any]:
    if choice == "auto":
        return {"type": "auto"}
    if choice == "none":
        return {"type": "none"}
    if choice == "required":
        return {"type": "any"}
    return {"type": "tool", "name": choice}


def _finish_reason(reason: str | None, has_calls: bool, answered: bool = False) -> FinishReason:
    if has_calls and reason in (None, "tool_use"):
        return "tool_calls"
    if answered and reason == "tool_use":  # the answer came through the output tool
        return "stop"
    return _STOP_REASONS.get(reason or "end_turn", "stop")


@dataclass(frozen=True, slots=True)
class _AnswerTool:
    """The output tool through which a JSON ``response_format`` answer is given."""

    name: str
    wire: dict[str, Any]
    #: The schema's root is not an object: the tool's input is ``{"value": answer}``.
    wrapped: bool

    @classmethod
    def of(cls, request: ProviderRequest) -> _AnswerTool | None:
        fmt = request.response_format
        if fmt is None or not fmt.is_json:
            return None
        if request.tools and request.tool_choice not in ("auto", "none"):
            return None  # this call must use a real tool; the answer comes later
        name = output_tool_name(fmt, {t.name for t in request.tools})
        schema = dict(fmt.schema or {}) if fmt.type == "json_schema" else {}
        wrapped = schema.get("type", "object") != "object"
        if wrapped:  # "#/$defs/..." references stay valid at the new root
            defs: dict[str, Any] = {
                k: schema.pop(k) for k in ("$defs", "definitions") if k in schema
            }
            schema = {
                "type": "object",
                "properties": {"value": schema},
                "required": ["value"],
                **defs,
            }
        schema.setdefault("type", "object")
        description = fmt.description or OUTPUT_TOOL_DESCRIPTION
        return cls(
            name, {"name": name, "description": description, "input_schema": schema}, wrapped
        )

    def content(self, tool_input: object) -> str:
        """The answer as JSON text, from the tool's input."""
        value = _as_dict(tool_input)
        if self.wrapped:
            return json.dumps(value.get("value"))
        return json.dumps(value)


def _as_dict(value: object) -> dict[str, Any]:
    if isinstance(value, dict):
        return dict(value)
    if value in (None, ""):
        return {}
    return {"_raw": value if isinstance(value, str) else json.dumps(value, default=str)}


def _parse_input(raw: str, initial: dict[str, Any]) -> dict[str, Any]:
    """Tool input from accumulated ``input_json_delta`` fragments (invalid -> ``_raw``)."""
    if not raw.strip():
        return initial
    try:
        value = json.loads(raw)
    except ValueError:
        return {"_raw": raw}
    return value if isinstance(value, dict) else {"_raw": raw}


def _vendor_message(body: object) -> str | None:
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return str(inner["message"])
    if isinstance(body, str) and body:
        return body
    return None


def _image_block(image: ImageInput) -> dict[str, Any]:
    """An image content block: inline data as base64, a link as a URL source."""
    inline = image.inline
    if inline is None:
        return {"type": "image", "source": {"type": "url", "url": image.url}}
    media_type, data = inline
    source = {"type": "base64", "media_type": media_type, "data": data}
    return {"type": "image", "source": source}
