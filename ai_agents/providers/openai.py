"""OpenAI Chat Completions adapter (and every OpenAI-compatible server).

Uses the official ``openai.AsyncOpenAI`` client. Any OpenAI-compatible server (Ollama's
``/v1``, llama.cpp, vLLM, Groq, DeepSeek, ...) is configuration::

    OpenAIChatProvider(ProviderSettings(base_url="https://api.groq.com/openai/v1",
                                        api_key="...", name="groq"))

Structured output: ``response_format`` goes on the wire as OpenAI defines it
(``{"type": "json_object"}`` or ``{"type": "json_schema", "json_schema": {name, schema,
strict, description}}``); the JSON answer is the message content. The API rejects
``json_object`` unless a message mentions "JSON", so a one-line instruction is added to
the system prompt when none does. ``parallel_tool_calls`` is only sent with tools (the
API rejects it without).

Tools: native (``tools``/``tool_choice``), unless :meth:`~Provider.native_tools_for` says
the model has none (the registry's ``supports_tools``, or the ``native_tools`` option:
e.g. a vLLM server started without a tool-call parser); then they are prompted
(:mod:`ai_agents.providers.prompted_tools`: described in the system prompt, calls parsed
out of the answer, history as text), and no ``tools`` reach the server.

The SDK's own retries are disabled (``max_retries=0``): retrying, backoff and breakers
are done by the layer above, which relies on the mapped :mod:`ai_agents.errors`. A 200
we cannot read (not JSON, the wrong shape, an unknown ``finish_reason``, a stream that
ends before its ``finish_reason``) is :class:`ProviderBadResponse` (retryable), read by
the pure :func:`read_completion` / :class:`ChunkReader`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, TypeVar

import openai

from ai_agents.errors import (
    ProviderAuthError,
    ProviderBadRequest,
    ProviderBadResponse,
    ProviderConnectionError,
    ProviderError,
    ProviderOverloaded,
    ProviderRateLimited,
    ProviderTimeout,
)
from ai_agents.messages import Message, ToolCall
from ai_agents.providers.base import (
    FinishReason,
    NativeTools,
    Provider,
    ProviderRequest,
    ProviderResponse,
    ProviderSettings,
    ResponseDone,
    ResponseFormat,
    StreamEvent,
    TextDelta,
    ToolCallReady,
    ToolSpec,
    Usage,
)
from ai_agents.providers.catalog import PROVIDERS
from ai_agents.providers.history import normalize_history, remap_tool_ids, to_id_safe
from ai_agents.providers.prompted_tools import prompted_for
from ai_agents.providers.response_format import json_instruction, mentions_json
from ai_agents.providers.retry import parse_retry_after

__all__ = [
    "ChunkReader",
    "OpenAIChatProvider",
    "parse_arguments",
    "parse_retry_after",
    "read_completion",
]

T = TypeVar("T")

#: OpenAI rejects tool-call ids longer than this.
MAX_TOOL_CALL_ID = 40

_FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}


def parse_arguments(raw: str | None) -> dict[str, Any]:
    """Parse a tool call's JSON arguments; invalid JSON (or a non-object) becomes
    ``{"_raw": raw}`` so the runner can report the problem back to the model."""
    if raw is None or not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return {"_raw": raw}
    return value if isinstance(value, dict) else {"_raw": raw}


class OpenAIChatProvider(Provider):
    """Chat Completions through ``openai.AsyncOpenAI``.

    ``legacy_max_tokens``: send ``max_tokens`` instead of ``max_completion_tokens`` (for
    OpenAI-compatible servers that only know the old name).
    ``client``: an already-built ``AsyncOpenAI`` (tests, custom transports).
    ``native_tools``: ``False`` (or a function of the model name saying so) prompts tools
    instead of sending them, for servers whose models take no ``tools``; default: the
    registry's ``supports_tools`` for a known model, native for an unknown one.
    """

    kind = "openai"

    def __init__(
        self,
        settings: ProviderSettings | None = None,
        *,
        legacy_max_tokens: bool = False,
        client: openai.AsyncOpenAI | None = None,
        native_tools: NativeTools | None = None,
    ) -> None:
        super().__init__(settings, native_tools=native_tools)
        self.legacy_max_tokens = legacy_max_tokens
        self._client = client

    # --- client -----------------------------------------------------------------------

    @property
    def client(self) -> openai.AsyncOpenAI:
        """The one client of this provider (created on first use, then reused)."""
        if self._client is None:
            settings = self.settings
            vendor = PROVIDERS["openai"]  # its catalog variables, when settings say nothing
            base_url = settings.base_url or vendor.url_override()
            api_key = settings.api_key or vendor.api_key()
            if not api_key:
                if not base_url:
                    raise ProviderAuthError(
                        f"{self.name}: no API key (set ProviderSettings.api_key or "
                        f"{vendor.key_envs[0]})",
                        provider=self.name,
                    )
                # Local OpenAI-compatible servers (Ollama, llama.cpp) need no key, but
                # the SDK insists on one.
                api_key = "not-needed"
            self._client = openai.AsyncOpenAI(
                api_key=api_key,
                base_url=base_url,
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

    def build_messages(self, request: ProviderRequest) -> list[dict[str, Any]]:
        """The request's system prompt and history in the Chat Completions format."""
        out: list[dict[str, Any]] = []
        history = normalize_history(request.messages)
        history = remap_tool_ids(
            history, lambda i: to_id_safe(i, None, max_length=MAX_TOOL_CALL_ID)
        )
        system_prompt = request.system_prompt
        fmt = request.response_format
        if (
            fmt is not None
            and fmt.type == "json_object"
            and not mentions_json([system_prompt, *(m.text for m in history)])
        ):
            instruction = json_instruction(fmt, tools=bool(request.tools))
            system_prompt = f"{system_prompt}\n\n{instruction}" if system_prompt else instruction
        if system_prompt:
            out.append({"role": "system", "content": system_prompt})
        for message in history:
            out.append(_to_wire(message))
        return out

    def build_kwargs(self, request: ProviderRequest) -> dict[str, Any]:
        """Keyword arguments for ``client.chat.completions.create`` (without ``stream``)."""
        kwargs: dict[str, Any] = {
            "model": request.model,
            "messages": self.build_messages(request),
        }
        if request.tools:
            kwargs["tools"] = [_tool_to_wire(tool) for tool in request.tools]
            kwargs["tool_choice"] = _tool_choice(request.tool_choice)
            if request.parallel_tool_calls is not None:
                kwargs["parallel_tool_calls"] = request.parallel_tool_calls
        if request.temperature is not None:
            kwargs["temperature"] = request.temperature
        if request.top_p is not None:
            kwargs["top_p"] = request.top_p
        if request.response_format is not None and request.response_format.is_json:
            kwargs["response_format"] = _response_format(request.response_format)
        if request.max_output_tokens is not None:
            key = "max_tokens" if self.legacy_max_tokens else "max_completion_tokens"
            kwargs[key] = request.max_output_tokens
        if request.stop:
            kwargs["stop"] = list(request.stop)
        return kwargs

    # ``client.post`` is the SDK's own request path (auth, base URL, errors, response
    # parsing) minus ``chat.completions.create``'s recursive TypedDict transform of the
    # body, which costs milliseconds per 50-message request and is a no-op for the plain
    # JSON we build.

    async def complete(self, request: ProviderRequest) -> ProviderResponse:
        prompted = prompted_for(self, request)
        if prompted is not None:
            return prompted.read(await self._complete(prompted.request))
        return await self._complete(request)

    async def _complete(self, request: ProviderRequest) -> ProviderResponse:
        kwargs = self.build_kwargs(request)
        try:
            # ``cast_to=object``: the decoded JSON as is; :func:`read_completion` checks
            # the fields we use (the SDK's lenient models would let a wrong shape through
            # as AttributeErrors further down).
            data = await self.client.post("/chat/completions", body=kwargs, cast_to=object)
            if isinstance(data, str):  # a body sent without a JSON content type
                data = json.loads(data)
        except openai.OpenAIError as exc:
            raise self._map_error(exc) from exc
        except _UNDECODABLE as exc:
            raise ProviderBadResponse.of(self.name, f"the body is not JSON ({exc})") from exc
        return read_completion(
            data, provider=self.name, model=request.model, prompt=kwargs["messages"]
        )

    async def stream(self, request: ProviderRequest) -> AsyncIterator[StreamEvent]:
        prompted = prompted_for(self, request)
        if prompted is None:
            events = self._stream(request)
        else:
            events = prompted.stream(self._stream(prompted.request))
        async with aclosing(events):
            async for event in events:
                yield event

    async def _stream(self, request: ProviderRequest) -> AsyncGenerator[StreamEvent]:
        kwargs = self.build_kwargs(request)
        reader = ChunkReader(self.name, request.model)
        try:
            chunks = await self.client.post(
                "/chat/completions",
                body={**kwargs, "stream": True, "stream_options": {"include_usage": True}},
                cast_to=object,
                stream=True,
                stream_cls=openai.AsyncStream[object],
            )
            try:
                while True:
                    try:
                        data = await anext(chunks)
                    except StopAsyncIteration:
                        break
                    except _UNDECODABLE as exc:  # a ``data:`` line that is not JSON
                        raise ProviderBadResponse.of(
                            self.name, f"a stream chunk is not JSON ({exc})"
                        ) from exc
                    for event in reader.feed(data):
                        yield event
            finally:
                await chunks.close()
        except openai.OpenAIError as exc:
            raise self._map_error(exc) from exc
        yield ResponseDone(reader.result(kwargs["messages"]))

    # --- errors -----------------------------------------------------------------------

    def _map_error(self, exc: openai.OpenAIError) -> ProviderError:
        provider = self.name
        if isinstance(exc, openai.APITimeoutError):
            return ProviderTimeout(f"{provider}: request timed out", provider=provider)
        if isinstance(exc, openai.APIConnectionError):
            return ProviderConnectionError(
                f"{provider}: connection failed: {exc.__cause__ or exc}", provider=provider
            )
        if isinstance(exc, openai.APIStatusError):
            status = exc.status_code
            vendor = _vendor_message(exc.body) or exc.message
            message = f"{provider}: {vendor}"
            if status == 429:
                return ProviderRateLimited(
                    message,
                    provider=provider,
                    status=status,
                    retry_after=parse_retry_after(exc.response.headers),
                    vendor_message=vendor,
                )
            if status in (401, 403):
                return ProviderAuthError(
                    message, provider=provider, status=status, vendor_message=vendor
                )
            if status == 408:
                return ProviderTimeout(
                    message, provider=provider, status=status, vendor_message=vendor
                )
            if status >= 500:
                return ProviderOverloaded(
                    message,
                    provider=provider,
                    status=status,
                    retry_after=parse_retry_after(exc.response.headers),
                    vendor_message=vendor,
                )
            return ProviderBadRequest(
                message, provider=provider, status=status, vendor_message=vendor
            )
        if isinstance(exc, openai.APIResponseValidationError):  # strict client, odd reply
            return ProviderBadResponse.of(provider, exc.message, status=exc.status_code)
        if isinstance(exc, openai.APIError):  # error event inside a stream
            vendor = _vendor_message(exc.body) or exc.message
            kind = f"{exc.type or ''} {exc.code or ''}"
            if "rate_limit" in kind:
                return ProviderRateLimited(
                    f"{provider}: {vendor}", provider=provider, status=429, vendor_message=vendor
                )
            if "invalid_request" in kind:
                return ProviderBadRequest(
                    f"{provider}: {vendor}", provider=provider, status=400, vendor_message=vendor
                )
            return ProviderOverloaded(
                f"{provider}: {vendor}", provider=provider, vendor_message=vendor
            )
        # Missing credentials and other client-side configuration problems.
        if "api_key" in str(exc) or "credentials" in str(exc).lower():
            return ProviderAuthError(f"{provider}: {exc}", provider=provider)
        return ProviderBadRequest(f"{provider}: {exc}", provider=provider)


# --- reading replies ------------------------------------------------------------------
#
# The readers take the decoded JSON as it came and check only the fields they use, so a
# new vendor field never breaks a reply, while a reply we cannot read raises the
# retryable ProviderBadResponse instead of an AttributeError (or a saved empty answer).

#: What the SDK's JSON decoding raises on a body or ``data:`` line that is not JSON
#: (RecursionError: nesting deeper than the decoder goes).
_UNDECODABLE = (json.JSONDecodeError, UnicodeDecodeError, RecursionError)


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

    def count(self, value: object, where: str) -> int:
        """A token count: a non-negative integer, null meaning 0."""
        number = self.opt(value, int, where) or 0
        if number < 0:
            raise self.bad(f"{where} is negative", value)
        return number


def read_completion(
    data: object, *, provider: str, model: str, prompt: Sequence[Any]
) -> ProviderResponse:
    """A decoded Chat Completions body as a response (*prompt*: the wire messages, to
    estimate usage when the server reports none). Raises ProviderBadResponse."""
    check = _Check(provider)
    body = check.obj(data, "the body")
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices:
        raise check.bad("'choices' is missing or empty", choices)
    choice = check.obj(choices[0], "choices[0]")
    message = check.obj(choice.get("message"), "choices[0].message")
    content = check.opt(message.get("content"), str, "message.content") or ""
    calls: list[ToolCall] = []
    for raw in check.opt(message.get("tool_calls"), list, "message.tool_calls") or []:
        tool_call = check.obj(raw, "a tool call")
        if tool_call.get("type", "function") != "function":
            continue  # custom (non-function) tool calls: not supported
        function = check.obj(tool_call.get("function"), "a tool call's function")
        name = check.opt(function.get("name"), str, "a tool call's name")
        if not name:
            raise check.bad("a tool call has no name")
        arguments = function.get("arguments")
        calls.append(
            ToolCall(
                id=check.opt(tool_call.get("id"), str, "a tool call's id") or _new_call_id(),
                name=name,
                arguments=(
                    dict(arguments)  # some compatible servers send an object
                    if isinstance(arguments, dict)
                    else parse_arguments(check.opt(arguments, str, "a tool call's arguments"))
                ),
            )
        )
    usage = _read_usage(body.get("usage"), check)
    return ProviderResponse(
        content=content,
        tool_calls=calls,
        finish_reason=_read_finish(choice.get("finish_reason"), bool(calls), check),
        usage=usage or _estimate_usage(prompt, content, calls),
        provider=provider,
        model=check.opt(body.get("model"), str, "'model'") or model,
        raw_id=check.opt(body.get("id"), str, "'id'"),
    )


class ChunkReader:
    """Folds decoded stream chunks into stream events, then one response.

    The stream is complete once a chunk carries a ``finish_reason`` (the usage chunk
    and ``[DONE]`` follow; the SDK consumes ``[DONE]``): :meth:`result` of a stream
    that ended before it raises, so a cut stream is never taken for an empty answer.
    """

    def __init__(self, provider: str, model: str) -> None:
        self.check = _Check(provider)
        self.provider = provider
        self.model = model
        self.raw_id: str | None = None
        self.text: list[str] = []
        self.pending: dict[int, dict[str, str]] = {}  # index -> {"id", "name", "arguments"}
        self.calls: list[ToolCall] = []
        self.finish: str | None = None
        self.usage: Usage | None = None

    def feed(self, data: object) -> list[StreamEvent]:
        """The events of one chunk (raises ProviderBadResponse)."""
        check = self.check
        chunk = check.obj(data, "a stream chunk")
        self.raw_id = self.raw_id or check.opt(chunk.get("id"), str, "'id'")
        self.model = check.opt(chunk.get("model"), str, "'model'") or self.model
        usage = _read_usage(chunk.get("usage"), check)
        if usage is not None:
            self.usage = usage
        events: list[StreamEvent] = []
        for raw in (check.opt(chunk.get("choices"), list, "'choices'") or [])[:1]:
            choice = check.obj(raw, "choices[0]")
            delta = check.opt(choice.get("delta"), dict, "choices[0].delta") or {}
            content = check.opt(delta.get("content"), str, "delta.content")
            fragments = check.opt(delta.get("tool_calls"), list, "delta.tool_calls") or []
            if self.finish is not None and (content or fragments):
                raise check.bad("content after the finish_reason")
            if content:
                self.text.append(content)
                events.append(TextDelta(content))
            for position, fragment in enumerate(fragments):
                self._add_fragment(fragment, position)
            reason = choice.get("finish_reason")
            if reason is not None:
                _read_finish(reason, False, check)  # an unknown reason raises here
                self.finish = reason
                events.extend(self._flush())
        return events

    def _add_fragment(self, raw: object, position: int) -> None:
        check = self.check
        fragment = check.obj(raw, "a tool call fragment")
        index = fragment.get("index", position)
        if not isinstance(index, int) or isinstance(index, bool):
            raise check.bad("a tool call fragment's index is not an integer", index)
        slot = self.pending.setdefault(index, {"id": "", "name": "", "arguments": ""})
        call_id = check.opt(fragment.get("id"), str, "a tool call's id")
        if call_id:
            slot["id"] = call_id
        function = check.opt(fragment.get("function"), dict, "a tool call's function") or {}
        slot["name"] += check.opt(function.get("name"), str, "a tool call's name") or ""
        arguments = check.opt(function.get("arguments"), str, "a tool call's arguments")
        slot["arguments"] += arguments or ""

    def _flush(self) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        for index in sorted(self.pending):
            slot = self.pending.pop(index)
            if not slot["name"]:
                raise self.check.bad(f"tool call {index} has no name")
            call = ToolCall(
                id=slot["id"] or _new_call_id(),
                name=slot["name"],
                arguments=parse_arguments(slot["arguments"]),
            )
            self.calls.append(call)
            events.append(ToolCallReady(call))
        return events

    def result(self, prompt: Sequence[Any]) -> ProviderResponse:
        """The response of a complete stream (*prompt*: for a usage estimate)."""
        if self.finish is None:
            raise self.check.bad("the stream ended before its finish_reason")
        content = "".join(self.text)
        return ProviderResponse(
            content=content,
            tool_calls=self.calls,
            finish_reason=_finish_reason(self.finish, bool(self.calls)),
            usage=self.usage or _estimate_usage(prompt, content, self.calls),
            provider=self.provider,
            model=self.model,
            raw_id=self.raw_id,
        )


def _read_finish(reason: object, has_calls: bool, check: _Check) -> FinishReason:
    """The finish reason (null: "stop"); an unknown one means a reply we cannot trust."""
    if reason is not None and (not isinstance(reason, str) or reason not in _FINISH_REASONS):
        raise check.bad("unknown finish_reason", reason)
    return _finish_reason(reason, has_calls)


def _read_usage(value: object, check: _Check) -> Usage | None:
    usage = check.opt(value, dict, "'usage'")
    if usage is None:
        return None
    details = check.opt(usage.get("prompt_tokens_details"), dict, "usage.prompt_tokens_details")
    cached = (details or {}).get("cached_tokens")
    return Usage(
        check.count(usage.get("prompt_tokens"), "usage.prompt_tokens"),
        check.count(usage.get("completion_tokens"), "usage.completion_tokens"),
        cache_read_tokens=check.count(cached, "usage.prompt_tokens_details.cached_tokens"),
    )


# --- conversion helpers ---------------------------------------------------------------


def _to_wire(message: Message) -> dict[str, Any]:
    if message.role == "tool":
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.text}
    if message.role == "assistant" and message.tool_calls:
        return {
            "role": "assistant",
            "content": message.content or None,
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
                }
                for call in message.tool_calls
            ],
        }
    images = message.images if message.role == "user" else []
    if images:
        parts: list[dict[str, Any]] = (
            [{"type": "text", "text": message.text}] if message.text else []
        )
        parts += [
            {"type": "image_url", "image_url": {"url": image.url, "detail": image.detail}}
            for image in images
        ]
        return {"role": message.role, "content": parts}
    return {"role": message.role, "content": message.text}


def _tool_to_wire(tool: ToolSpec) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": tool.name,
            "description": tool.description,
            "parameters": tool.parameters,
        },
    }


def _response_format(fmt: ResponseFormat) -> dict[str, Any]:
    if fmt.type == "json_object":
        return {"type": "json_object"}
    spec: dict[str, Any] = {
        "name": fmt.name,
        "schema": fmt.schema if fmt.schema is not None else {"type": "object"},
        "strict": fmt.strict,
    }
    if fmt.description:
        spec["description"] = fmt.description
    return {"type": "json_schema", "json_schema": spec}


def _tool_choice(choice: str) -> str | dict[str, Any]:
    if choice in ("auto", "none", "required"):
        return choice
    return {"type": "function", "function": {"name": choice}}


def _finish_reason(reason: str | None, has_calls: bool) -> FinishReason:
    if has_calls and reason in (None, "stop", "tool_calls", "function_call"):
        # Several compatible servers (Ollama, some vLLM versions) say "stop" with calls.
        return "tool_calls"
    return _FINISH_REASONS.get(reason or "stop", "stop")


def _vendor_message(body: object) -> str | None:
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return str(inner["message"])
    if isinstance(body, str) and body:
        return body
    return None


def _new_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


def _estimate_usage(wire_messages: Sequence[Any], content: str, calls: Sequence[ToolCall]) -> Usage:
    """Rough count (~4 characters per token) when the server reports no usage."""
    prompt = len(json.dumps(wire_messages, default=str))
    output = len(content) + sum(len(json.dumps(c.arguments)) + len(c.name) for c in calls)
    return Usage(prompt // 4 + 1, output // 4 + (1 if output else 0), estimated=True)
