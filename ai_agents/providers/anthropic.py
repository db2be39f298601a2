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

Structured output (a JSON ``response_format``) goes through a forced *output tool*: an
extra tool named after the format (:func:`output_tool_name`) whose ``input_schema`` is
the schema (``{"type": "object"}`` for ``json_object``; a schema whose root is not an
object is wrapped as ``{"value": ...}``). ``tool_choice`` becomes
``{"type": "tool", "name": <output tool>}`` when no other tool may be called, else
``{"type": "any"}`` (a real tool, or the answer through the output tool). A ``required``
or named ``tool_choice`` offers no output tool: that call must use a real tool. The
output tool's input comes back as the response's ``content`` (JSON text; text blocks
beside it are dropped), never as a tool call, with finish reason ``stop``.

Usage: ``input_tokens`` includes cache-read and cache-creation input tokens.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anthropic

from ai_agents.errors import (
    ProviderAuthError,
    ProviderBadRequest,
    ProviderConnectionError,
    ProviderError,
    ProviderOverloaded,
    ProviderRateLimited,
    ProviderTimeout,
    UnknownModelError,
)
from ai_agents.messages import Message, ToolCall
from ai_agents.providers.base import (
    FinishReason,
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
from ai_agents.providers.history import normalize_history, remap_tool_ids, to_id_safe
from ai_agents.providers.response_format import output_tool_name
from ai_agents.providers.retry import parse_retry_after

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "OUTPUT_TOOL_DESCRIPTION",
    "PLACEHOLDER_USER_TEXT",
    "AnthropicProvider",
    "default_max_tokens",
]

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
    """

    kind = "anthropic"

    def __init__(
        self,
        settings: ProviderSettings | None = None,
        *,
        max_tokens: int | None = None,
        client: anthropic.AsyncAnthropic | None = None,
    ) -> None:
        super().__init__(settings)
        self.max_tokens = max_tokens
        self._client = client

    # --- client -----------------------------------------------------------------------

    @property
    def client(self) -> anthropic.AsyncAnthropic:
        """The one client of this provider (created on first use, then reused).

        ``api_key``/``base_url`` fall back to the SDK's env vars (``ANTHROPIC_API_KEY``,
        ``ANTHROPIC_BASE_URL``).
        """
        if self._client is None:
            settings = self.settings
            self._client = anthropic.AsyncAnthropic(
                api_key=settings.api_key,
                base_url=settings.base_url,
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
            return "user", [{"type": "text", "text": text}] if text.strip() else []
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

    async def complete(self, request: ProviderRequest) -> ProviderResponse:
        kwargs = self.build_kwargs(request)
        try:
            message = await self.client.messages.create(**kwargs)
        except anthropic.AnthropicError as exc:
            raise self._map_error(exc) from exc
        except TypeError as exc:  # the SDK's "no credentials" error
            if "authentication" not in str(exc):
                raise
            raise self._no_key_error() from exc
        answer = _AnswerTool.of(request)
        text: list[str] = []
        calls: list[ToolCall] = []
        answer_json: str | None = None
        for block in message.content:
            if block.type == "text":
                text.append(block.text)
            elif block.type == "tool_use":
                if answer is not None and block.name == answer.name:
                    answer_json = answer.content(block.input)
                    continue
                calls.append(
                    ToolCall(id=block.id, name=block.name, arguments=_as_dict(block.input))
                )
        return ProviderResponse(
            content="".join(text) if answer_json is None else answer_json,
            tool_calls=calls,
            finish_reason=_finish_reason(message.stop_reason, bool(calls), answer_json is not None),
            usage=_usage(message.usage),
            provider=self.name,
            model=message.model or request.model,
            raw_id=message.id,
        )

    async def stream(self, request: ProviderRequest) -> AsyncIterator[StreamEvent]:
        kwargs = self.build_kwargs(request)
        answer = _AnswerTool.of(request)
        text: list[str] = []
        # With an output tool, text is held back: dropped if the answer comes through the
        # tool, passed on before a real tool call or at the end otherwise.
        held: list[str] = []
        answer_index: int | None = None
        answer_json: list[str] | None = None
        calls: list[ToolCall] = []
        blocks: dict[int, dict[str, Any]] = {}  # index -> tool_use being received
        input_tokens = 0
        output_tokens = 0
        stop_reason: str | None = None
        raw_id: str | None = None
        model = request.model
        try:
            events = await self.client.messages.create(**kwargs, stream=True)
            try:
                async for event in events:
                    if event.type == "message_start":
                        raw_id = event.message.id
                        model = event.message.model or model
                        usage = _usage(event.message.usage)
                        input_tokens, output_tokens = usage.input_tokens, usage.output_tokens
                    elif event.type == "content_block_start":
                        block = event.content_block
                        if block.type == "text" and block.text:
                            if answer is not None:
                                held.append(block.text)
                            else:
                                text.append(block.text)
                                yield TextDelta(block.text)
                        elif block.type == "tool_use" and answer and block.name == answer.name:
                            answer_index, answer_json = event.index, []
                        elif block.type == "tool_use":
                            if held and answer_json is None:
                                text.extend(held)
                                yield TextDelta("".join(held))
                                held.clear()
                            blocks[event.index] = {
                                "id": block.id,
                                "name": block.name,
                                "input": _as_dict(block.input),
                                "json": "",
                            }
                    elif event.type == "content_block_delta":
                        delta = event.delta
                        if delta.type == "text_delta":
                            if delta.text and answer is not None:
                                if answer_json is None:
                                    held.append(delta.text)
                            elif delta.text:
                                text.append(delta.text)
                                yield TextDelta(delta.text)
                        elif delta.type == "input_json_delta" and event.index in blocks:
                            blocks[event.index]["json"] += delta.partial_json
                        elif delta.type == "input_json_delta" and event.index == answer_index:
                            assert answer is not None and answer_json is not None
                            answer_json.append(delta.partial_json)
                            if not answer.wrapped and delta.partial_json:
                                yield TextDelta(delta.partial_json)
                    elif event.type == "content_block_stop" and event.index == answer_index:
                        assert answer is not None and answer_json is not None
                        raw = "".join(answer_json)
                        # Streamed as it came; only an empty or wrapped input is sent now.
                        if answer.wrapped or not raw.strip():
                            rest = answer.content(_parse_input(raw, {}))
                            answer_json[:] = [rest]
                            yield TextDelta(rest)
                    elif event.type == "content_block_stop":
                        pending = blocks.pop(event.index, None)
                        if pending is not None:
                            call = ToolCall(
                                id=pending["id"],
                                name=pending["name"],
                                arguments=_parse_input(pending["json"], pending["input"]),
                            )
                            calls.append(call)
                            yield ToolCallReady(call)
                    elif event.type == "message_delta":
                        stop_reason = event.delta.stop_reason or stop_reason
                        output_tokens = event.usage.output_tokens or output_tokens
                        if event.usage.input_tokens is not None:
                            input_tokens = (
                                event.usage.input_tokens
                                + (event.usage.cache_read_input_tokens or 0)
                                + (event.usage.cache_creation_input_tokens or 0)
                            )
            finally:
                await events.close()
        except anthropic.AnthropicError as exc:
            raise self._map_error(exc) from exc
        except TypeError as exc:  # the SDK's "no credentials" error
            if "authentication" not in str(exc):
                raise
            raise self._no_key_error() from exc
        if held and answer_json is None:
            text.extend(held)
            yield TextDelta("".join(held))
        yield ResponseDone(
            ProviderResponse(
                content="".join(text) if answer_json is None else "".join(answer_json),
                tool_calls=calls,
                finish_reason=_finish_reason(stop_reason, bool(calls), answer_json is not None),
                usage=Usage(input_tokens, output_tokens),
                provider=self.name,
                model=model,
                raw_id=raw_id,
            )
        )

    # --- errors -----------------------------------------------------------------------

    def _no_key_error(self) -> ProviderAuthError:
        """The SDK raises TypeError when it finds no credentials at request time."""
        return ProviderAuthError(
            f"{self.name}: no API key (set ProviderSettings.api_key or ANTHROPIC_API_KEY)",
            provider=self.name,
        )

    def _map_error(self, exc: anthropic.AnthropicError) -> ProviderError:
        provider = self.name
        credentials_error = getattr(anthropic, "CredentialsError", None)  # SDK 2.x
        if credentials_error is not None and isinstance(exc, credentials_error):
            return ProviderAuthError(f"{provider}: {exc}", provider=provider)
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


def _usage(usage: Any) -> Usage:
    if usage is None:
        return Usage(estimated=True)
    inputs = (
        (usage.input_tokens or 0)
        + (getattr(usage, "cache_read_input_tokens", None) or 0)
        + (getattr(usage, "cache_creation_input_tokens", None) or 0)
    )
    return Usage(inputs, usage.output_tokens or 0)


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
