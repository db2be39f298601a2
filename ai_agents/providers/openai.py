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

The SDK's own retries are disabled (``max_retries=0``): retrying, backoff and breakers
are done by the layer above, which relies on the mapped :mod:`ai_agents.errors`.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import openai
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from ai_agents.errors import (
    ProviderAuthError,
    ProviderBadRequest,
    ProviderConnectionError,
    ProviderError,
    ProviderOverloaded,
    ProviderRateLimited,
    ProviderTimeout,
)
from ai_agents.messages import Message, ToolCall
from ai_agents.providers.base import (
    FinishReason,
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
from ai_agents.providers.history import normalize_history, remap_tool_ids, to_id_safe
from ai_agents.providers.response_format import json_instruction, mentions_json
from ai_agents.providers.retry import parse_retry_after

__all__ = ["OpenAIChatProvider", "parse_arguments", "parse_retry_after"]

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
    """

    kind = "openai"

    def __init__(
        self,
        settings: ProviderSettings | None = None,
        *,
        legacy_max_tokens: bool = False,
        client: openai.AsyncOpenAI | None = None,
    ) -> None:
        super().__init__(settings)
        self.legacy_max_tokens = legacy_max_tokens
        self._client = client

    # --- client -----------------------------------------------------------------------

    @property
    def client(self) -> openai.AsyncOpenAI:
        """The one client of this provider (created on first use, then reused)."""
        if self._client is None:
            settings = self.settings
            base_url = settings.base_url or os.environ.get("OPENAI_BASE_URL")
            api_key = settings.api_key or os.environ.get("OPENAI_API_KEY")
            if not api_key:
                if not base_url:
                    raise ProviderAuthError(
                        f"{self.name}: no API key (set ProviderSettings.api_key or OPENAI_API_KEY)",
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
        kwargs = self.build_kwargs(request)
        try:
            completion = await self.client.post(
                "/chat/completions", body=kwargs, cast_to=ChatCompletion
            )
        except openai.OpenAIError as exc:
            raise self._map_error(exc) from exc
        return self._parse(completion, request)

    async def stream(self, request: ProviderRequest) -> AsyncIterator[StreamEvent]:
        kwargs = self.build_kwargs(request)
        text: list[str] = []
        pending: dict[int, dict[str, str]] = {}  # index -> {"id", "name", "arguments"}
        calls: list[ToolCall] = []
        finish: str | None = None
        usage: Usage | None = None
        raw_id: str | None = None
        model = request.model
        try:
            chunks = await self.client.post(
                "/chat/completions",
                body={**kwargs, "stream": True, "stream_options": {"include_usage": True}},
                cast_to=ChatCompletion,
                stream=True,
                stream_cls=openai.AsyncStream[ChatCompletionChunk],
            )
            try:
                async for chunk in chunks:
                    raw_id = raw_id or chunk.id
                    model = chunk.model or model
                    if chunk.usage is not None:
                        usage = Usage(
                            chunk.usage.prompt_tokens or 0, chunk.usage.completion_tokens or 0
                        )
                    for choice in chunk.choices[:1]:
                        delta = choice.delta
                        if delta.content:
                            text.append(delta.content)
                            yield TextDelta(delta.content)
                        for fragment in delta.tool_calls or []:
                            slot = pending.setdefault(
                                fragment.index, {"id": "", "name": "", "arguments": ""}
                            )
                            if fragment.id:
                                slot["id"] = fragment.id
                            if fragment.function is not None:
                                if fragment.function.name:
                                    slot["name"] += fragment.function.name
                                if fragment.function.arguments:
                                    slot["arguments"] += fragment.function.arguments
                        if choice.finish_reason:
                            finish = choice.finish_reason
                            for event in self._flush(pending, calls):
                                yield event
            finally:
                await chunks.close()
        except openai.OpenAIError as exc:
            raise self._map_error(exc) from exc
        for event in self._flush(pending, calls):
            yield event
        content = "".join(text)
        if usage is None:
            usage = _estimate_usage(kwargs["messages"], content, calls)
        yield ResponseDone(
            ProviderResponse(
                content=content,
                tool_calls=calls,
                finish_reason=_finish_reason(finish, bool(calls)),
                usage=usage,
                provider=self.name,
                model=model,
                raw_id=raw_id,
            )
        )

    @staticmethod
    def _flush(pending: dict[int, dict[str, str]], calls: list[ToolCall]) -> list[ToolCallReady]:
        events = []
        for index in sorted(pending):
            slot = pending.pop(index)
            call = ToolCall(
                id=slot["id"] or _new_call_id(),
                name=slot["name"],
                arguments=parse_arguments(slot["arguments"]),
            )
            calls.append(call)
            events.append(ToolCallReady(call))
        return events

    def _parse(self, completion: Any, request: ProviderRequest) -> ProviderResponse:
        choices = completion.choices or []
        content = ""
        calls: list[ToolCall] = []
        finish: str | None = None
        if choices:
            choice = choices[0]
            finish = choice.finish_reason
            message = choice.message
            content = message.content or ""
            for tool_call in message.tool_calls or []:
                function = getattr(tool_call, "function", None)
                if function is None:  # custom (non-function) tool calls: not supported
                    continue
                calls.append(
                    ToolCall(
                        id=tool_call.id or _new_call_id(),
                        name=function.name,
                        arguments=parse_arguments(function.arguments),
                    )
                )
        if completion.usage is not None:
            usage = Usage(
                completion.usage.prompt_tokens or 0, completion.usage.completion_tokens or 0
            )
        else:
            usage = _estimate_usage(self.build_messages(request), content, calls)
        return ProviderResponse(
            content=content,
            tool_calls=calls,
            finish_reason=_finish_reason(finish, bool(calls)),
            usage=usage,
            provider=self.name,
            model=completion.model or request.model,
            raw_id=completion.id,
        )

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
