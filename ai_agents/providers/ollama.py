"""Ollama adapter: ``POST {base_url}/api/chat`` over one pooled :class:`httpx.AsyncClient`.

Base URL: ``settings.base_url``, else ``OLLAMA_HOST`` (``host``, ``host:port`` or a URL;
without a scheme the port defaults to 11434 like the ``ollama`` CLI), else
``http://127.0.0.1:11434``. ``settings.timeout`` bounds connect/read/write of every
request (for streams: the wait for each next line).

Two tool modes, chosen per model by :meth:`OllamaProvider.native_tools_for` (the
model-limits registry's ``supports_tools``):

- **native**: tools go in the ``tools`` field (OpenAI function format); the model's calls
  come back in ``message.tool_calls`` (arguments are an object, no ids: ids are
  synthesized); results are sent as ``{"role": "tool", "content", "tool_name"}``.
- **XML injection** (models without native tools, and models the registry does not
  know): the shared prompted-tools mechanism of every adapter
  (:mod:`ai_agents.providers.prompted_tools`): tool instructions in the system prompt,
  past calls as assistant text, results as user text (adjacent turns merged), calls
  parsed out of the answer; streaming holds back anything that may be a tool call so
  the user never sees raw XML.

``tool_choice``: ``"none"`` offers no tools; a tool name offers only that tool;
``"required"`` (and a tool name) add a one-line instruction to the system prompt, since
Ollama has no tool_choice parameter.

``parallel_tool_calls=False``: Ollama has no such option, so only the answer's first call
is kept (the others are logged). ``top_p`` goes in ``options``.

Structured output: a JSON ``response_format`` adds its instruction (with the schema) to
the system prompt, as Ollama recommends, and sets ``format`` (``"json"`` for
``json_object``, the schema for ``json_schema``) when the request offers no tools. With
tools offered ``format`` is not sent, in either tool mode: it constrains the whole output,
so the model could not call a tool (Ollama's maintainers: "format will not work with
tools", ollama/ollama#11185); the instruction alone asks for a JSON final answer, which
the runner validates.

Usage comes from ``prompt_eval_count``/``eval_count``; when the server leaves them out
(e.g. a fully cached prompt) the missing side is counted with
:func:`ai_agents.tokens.default_counter` and the usage is marked ``estimated``.

Errors: 400/404/422 (e.g. model not pulled) -> :class:`ProviderBadRequest`, 401/403 ->
:class:`ProviderAuthError` (auth proxies), 429 -> :class:`ProviderRateLimited`, 5xx ->
:class:`ProviderOverloaded` (``Retry-After`` honoured when a proxy sends one), timeouts
-> :class:`ProviderTimeout`, unreachable server -> :class:`ProviderConnectionError`. An
``{"error": ...}`` line in the middle of a stream (the model runner crashed) ->
:class:`ProviderOverloaded`. A 200 we cannot read (not JSON, the wrong shape, an unknown
``done_reason``, a stream without its ``done: true`` line) ->
:class:`ProviderBadResponse` (retryable), never an empty answer.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar
from urllib.parse import urlsplit
from uuid import uuid4

import httpx

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
    ModelLookup,
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
from ai_agents.providers.history import normalize_history
from ai_agents.providers.prompted_tools import (
    PromptedTools,
    ProseFilter,
    join_parts,
    offered_tools,
    prompted_for,
)
from ai_agents.providers.response_format import json_instruction
from ai_agents.providers.retry import parse_retry_after
from ai_agents.tokens import default_counter

__all__ = ["DEFAULT_OLLAMA_HOST", "OllamaProvider", "ollama_base_url", "read_chunk"]

T = TypeVar("T")

log = logging.getLogger(__name__)

DEFAULT_OLLAMA_HOST = str(PROVIDERS["ollama"].default_url)
_DEFAULT_PORT = 11434

#: The streaming filter's old name here (it is shared by every adapter now).
_ProseFilter = ProseFilter


def ollama_base_url(value: str | None = None) -> str:
    """The server URL from *value*, else ``OLLAMA_HOST``, else the local default."""
    raw = (value or PROVIDERS["ollama"].url_override() or "").strip()
    if not raw:
        return DEFAULT_OLLAMA_HOST
    if "://" not in raw:
        # The ollama CLI's convention: bare host[:port] means http and port 11434.
        parts = urlsplit(f"http://{raw}")
        host = parts.hostname or "127.0.0.1"
        if ":" in host:  # IPv6 literal
            host = f"[{host}]"
        raw = f"http://{host}:{parts.port or _DEFAULT_PORT}{parts.path}"
    return raw.rstrip("/")


def _new_call_id() -> str:
    return f"call_{uuid4().hex[:24]}"


@dataclass(slots=True)
class _Prepared:
    """A request translated to Ollama's wire format, with what is needed to read the answer."""

    body: dict[str, Any]
    native: bool
    # The prompted-tools translation (None: native tools, nothing to parse).
    prompted: PromptedTools | None
    prompt_text: str = ""

    @property
    def xml_tools(self) -> frozenset[str] | None:
        """Tool names offered in XML mode (None: no XML tool parsing)."""
        return None if self.prompted is None else self.prompted.known_tools


class OllamaProvider(Provider):
    """Adapter for Ollama's ``/api/chat`` (native tools or XML tool injection per model)."""

    kind: ClassVar[str] = "ollama"
    supports_native_tools: ClassVar[bool] = True
    #: A model the registry does not know gets XML tools (any model can be pulled).
    native_tools_default: ClassVar[bool] = False
    supports_streaming: ClassVar[bool] = True

    def __init__(
        self,
        settings: ProviderSettings | None = None,
        *,
        registry: ModelLookup | None = None,
        native_tools: NativeTools | None = None,
        options: Mapping[str, Any] | None = None,
        keep_alive: str | float | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        """
        :param registry: model-limits registry (default: the process-wide one).
        :param native_tools: override the registry: ``True``/``False`` for every model, or
            a function of the model name.
        :param options: extra Ollama ``options`` sent with every request (``num_ctx``,
            ``seed``, ...); request fields (temperature, max tokens, stop) win.
        :param keep_alive: Ollama ``keep_alive`` (how long the model stays loaded).
        :param client: an httpx client to use instead of creating one (not closed by
            :meth:`aclose`).
        """
        super().__init__(settings, native_tools=native_tools, registry=registry)
        self.base_url = ollama_base_url(self.settings.base_url)
        self._options = dict(options or {})
        self._keep_alive = keep_alive
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient(
            base_url=self.base_url,
            timeout=httpx.Timeout(self.settings.timeout),
            headers={"user-agent": "ai_agents", **self.settings.headers},
        )

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    # --- request translation -------------------------------------------------------

    def prepare(self, request: ProviderRequest, *, stream: bool) -> _Prepared:
        """Translate *request* to the ``/api/chat`` body (public for inspection/tests)."""
        prompted = prompted_for(self, request)
        if prompted is not None:  # tools described in the prompt, history as text
            request = prompted.request
        offered, note = offered_tools(request)
        fmt = request.response_format
        system_prompt = request.system_prompt
        if note:
            system_prompt = join_parts(system_prompt, note)
        if fmt is not None and fmt.is_json:
            system_prompt = join_parts(system_prompt, json_instruction(fmt, tools=bool(offered)))

        history = normalize_history(request.messages)
        wire: list[dict[str, Any]] = []
        if system_prompt:
            wire.append({"role": "system", "content": system_prompt})
        wire.extend(_native_messages(history))

        body: dict[str, Any] = {"model": request.model, "messages": wire, "stream": stream}
        if offered:
            body["tools"] = [_tool_json(t) for t in offered]
        if fmt is not None and fmt.is_json and not offered:
            body["format"] = fmt.schema if fmt.type == "json_schema" and fmt.schema else "json"
        options = dict(self._options)
        if request.temperature is not None:
            options["temperature"] = request.temperature
        if request.top_p is not None:
            options["top_p"] = request.top_p
        if request.max_output_tokens is not None:
            options["num_predict"] = request.max_output_tokens
        if request.stop:
            options["stop"] = list(request.stop)
        if options:
            body["options"] = options
        if self._keep_alive is not None:
            body["keep_alive"] = self._keep_alive
        prompt_text = "\n".join(m.get("content", "") for m in wire)
        if "tools" in body:
            prompt_text += json.dumps(body["tools"])
        return _Prepared(
            body=body, native=prompted is None, prompted=prompted, prompt_text=prompt_text
        )

    # --- complete -----------------------------------------------------------------

    async def complete(self, request: ProviderRequest) -> ProviderResponse:
        prepared = self.prepare(request, stream=False)
        try:
            response = await self._client.post("/api/chat", json=prepared.body)
        except httpx.HTTPError as exc:
            raise self._transport_error(exc, request.model) from exc
        if response.status_code != 200:
            raise self._http_error(
                response.status_code, response.text, response.headers, request.model
            )
        check = _Check(self.name)
        try:
            data = json.loads(response.content)
        except _UNDECODABLE as exc:
            raise check.bad(f"the body is not JSON ({exc})") from exc
        content, tool_calls, done = read_chunk(data, provider=self.name)
        if not done:
            raise check.bad("the answer is not done (no 'done': true)")
        tool_calls = _allowed_calls(tool_calls, request)
        answer = self._response(data, prepared, request, content, tool_calls)
        return answer if prepared.prompted is None else prepared.prompted.read(answer)

    def _response(
        self,
        final: Mapping[str, Any],
        prepared: _Prepared,
        request: ProviderRequest,
        content: str,
        tool_calls: list[ToolCall],
    ) -> ProviderResponse:
        output_text = content + (
            json.dumps([c.to_json() for c in tool_calls]) if tool_calls else ""
        )
        return ProviderResponse(
            content=content,
            tool_calls=tool_calls,
            finish_reason=_finish_reason(final.get("done_reason"), tool_calls),
            usage=_usage(
                final, prepared.prompt_text, output_text, provider=self.kind, model=request.model
            ),
            provider=self.name,
            model=str(final.get("model") or request.model),
            raw_id=None,
        )

    # --- stream -------------------------------------------------------------------

    async def stream(self, request: ProviderRequest) -> AsyncIterator[StreamEvent]:
        prepared = self.prepare(request, stream=True)
        events = self._stream(prepared, request)
        if prepared.prompted is not None:
            events = prepared.prompted.stream(events)
        async with aclosing(events):
            async for event in events:
                yield event

    async def _stream(
        self, prepared: _Prepared, request: ProviderRequest
    ) -> AsyncGenerator[StreamEvent]:
        check = _Check(self.name)
        content: list[str] = []
        tool_calls: list[ToolCall] = []
        final: dict[str, Any] | None = None
        try:
            async with self._client.stream("POST", "/api/chat", json=prepared.body) as resp:
                if resp.status_code != 200:
                    raw = await resp.aread()
                    raise self._http_error(
                        resp.status_code,
                        raw.decode(errors="replace"),
                        resp.headers,
                        request.model,
                    )
                async for line in resp.aiter_lines():
                    if not line.strip():
                        continue
                    try:
                        chunk = json.loads(line)
                    except _UNDECODABLE as exc:
                        raise check.bad(f"a stream line is not JSON ({exc})", line) from exc
                    piece, calls, done = read_chunk(chunk, provider=self.name)
                    if piece:
                        content.append(piece)
                        yield TextDelta(piece)
                    for tool_call in calls:
                        if tool_calls and request.parallel_tool_calls is False:
                            _log_dropped([tool_call], request.model)
                            continue
                        tool_calls.append(tool_call)
                        yield ToolCallReady(tool_call)
                    if done:
                        final = chunk
                        break
        except httpx.HTTPError as exc:
            raise self._transport_error(exc, request.model) from exc
        if final is None:
            raise check.bad("the stream ended before its final ('done': true) line")
        text = "".join(content)
        yield ResponseDone(self._response(final, prepared, request, text, tool_calls))

    # --- errors -------------------------------------------------------------------

    def _transport_error(self, exc: httpx.HTTPError, model: str) -> ProviderError:
        if isinstance(exc, httpx.TimeoutException):
            return ProviderTimeout(
                f"ollama at {self.base_url} did not answer within {self.settings.timeout}s "
                f"({type(exc).__name__}, model {model})",
                provider=self.name,
            )
        return ProviderConnectionError(
            f"cannot reach ollama at {self.base_url}: {exc or type(exc).__name__}",
            provider=self.name,
        )

    def _http_error(
        self, status: int, text: str, headers: Mapping[str, str], model: str
    ) -> ProviderError:
        vendor = _vendor_message(text)
        retry_after = parse_retry_after(headers)
        message = f"ollama returned HTTP {status}: {vendor or 'no message'}"
        kwargs: dict[str, Any] = {
            "provider": self.name,
            "status": status,
            "retry_after": retry_after,
            "vendor_message": vendor,
        }
        if status == 404 and vendor and "not found" in vendor:
            message = f"ollama model {model!r} not found (pull it: `ollama pull {model}`): {vendor}"
        if status == 429:
            return ProviderRateLimited(message, **kwargs)
        if status in (401, 403):
            return ProviderAuthError(message, **kwargs)
        if status >= 500:
            return ProviderOverloaded(message, **kwargs)
        return ProviderBadRequest(message, **kwargs)


# --- reading replies --------------------------------------------------------------
#
# A body (or stream line) is checked in the fields we use, so a reply we cannot read
# raises the retryable ProviderBadResponse instead of a TypeError (or a saved empty
# answer); fields we do not use (``thinking``, durations) are never looked at.

#: What JSON decoding raises on a body or line that is not JSON
#: (RecursionError: nesting deeper than the decoder goes).
_UNDECODABLE = (json.JSONDecodeError, UnicodeDecodeError, RecursionError)

#: ``done_reason`` values of a chat answer (``load``/``unload`` answer no prompt).
_DONE_REASONS = frozenset({"stop", "length"})


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


def read_chunk(data: object, *, provider: str) -> tuple[str, list[ToolCall], bool]:
    """``(text, tool calls, done)`` of one decoded ``/api/chat`` body or stream line.

    Raises ProviderBadResponse for a wrong shape, ProviderOverloaded for an ``error``
    (the model runner failed).
    """
    check = _Check(provider)
    chunk = check.obj(data, "the reply")
    error = chunk.get("error")
    if error:
        raise ProviderOverloaded(
            f"{check.provider} error: {error}", provider=check.provider, vendor_message=str(error)
        )
    message = check.obj(chunk.get("message"), "'message'")
    text = check.opt(message.get("content"), str, "message.content") or ""
    raw_calls = check.opt(message.get("tool_calls"), list, "message.tool_calls") or []
    calls = [_read_tool_call(raw, check) for raw in raw_calls]
    done = bool(check.opt(chunk.get("done"), bool, "'done'"))
    if done:
        reason = chunk.get("done_reason")
        if reason is not None and (not isinstance(reason, str) or reason not in _DONE_REASONS):
            raise check.bad("unknown done_reason", reason)
        check.opt(chunk.get("model"), str, "'model'")
    return text, calls, done


def _read_tool_call(raw: object, check: _Check) -> ToolCall:
    call = check.obj(raw, "a tool call")
    fn = check.obj(call.get("function"), "a tool call's function")
    name = check.opt(fn.get("name"), str, "a tool call's name")
    if not name:
        raise check.bad("a tool call has no name")
    # The model wrote the arguments: bad JSON goes back to it as ``_raw``, it is no
    # reason to reject the reply.
    args: Any = fn.get("arguments") or {}
    if isinstance(args, str):
        try:
            args = json.loads(args)
        except (ValueError, RecursionError):
            args = {"_raw": args}
    if not isinstance(args, dict):
        args = {"_raw": args}
    call_id = check.opt(call.get("id"), str, "a tool call's id")
    return ToolCall(id=call_id or _new_call_id(), name=name, arguments=args)


# --- helpers ----------------------------------------------------------------------


def _tool_json(tool: ToolSpec) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": tool.name,
            "description": tool.description,
            "parameters": tool.parameters,
        },
    }


def _result_text(message: Message) -> str:
    text = message.text
    if message.is_error and not text.lower().startswith("error"):
        text = f"Error: {text}"
    return text


def _native_messages(history: Sequence[Message]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for message in history:
        if message.role == "tool":
            out.append(
                {
                    "role": "tool",
                    "content": _result_text(message),
                    "tool_name": message.tool_name or "",
                }
            )
        elif message.role == "assistant":
            item: dict[str, Any] = {"role": "assistant", "content": message.text}
            if message.tool_calls:
                item["tool_calls"] = [
                    {"function": {"name": c.name, "arguments": dict(c.arguments)}}
                    for c in message.tool_calls
                ]
            out.append(item)
        else:
            out.append(_with_images({"role": message.role, "content": message.text}, message))
    return out


def _with_images(item: dict[str, Any], message: Message) -> dict[str, Any]:
    """*item* with the user message's images, as Ollama takes them: base64 data only."""
    images = message.images if message.role == "user" else []
    if images:
        data = []
        for image in images:
            inline = image.inline
            if inline is None:
                raise ProviderBadRequest(
                    "Ollama takes images as inline data (data:image/...;base64 URLs), "
                    "not links; upload the image instead",
                    provider="ollama",
                )
            data.append(inline[1])
        item["images"] = data
    return item


def _allowed_calls(calls: list[ToolCall], request: ProviderRequest) -> list[ToolCall]:
    """*calls*, or only the first when the request allows one (``parallel_tool_calls``)."""
    if request.parallel_tool_calls is not False or len(calls) <= 1:
        return calls
    _log_dropped(calls[1:], request.model)
    return calls[:1]


def _log_dropped(calls: Sequence[ToolCall], model: str) -> None:
    names = ", ".join(c.name for c in calls)
    log.info("ollama model %s: parallel_tool_calls=False, dropped calls: %s", model, names)


def _finish_reason(done_reason: Any, tool_calls: Sequence[ToolCall]) -> FinishReason:
    if tool_calls:
        return "tool_calls"
    if done_reason == "length":
        return "length"
    return "stop"


def _usage(
    final: Mapping[str, Any], prompt_text: str, output_text: str, *, provider: str, model: str
) -> Usage:
    prompt = final.get("prompt_eval_count")
    output = final.get("eval_count")
    estimated = False
    if not isinstance(prompt, int) or isinstance(prompt, bool) or prompt < 0:
        prompt = default_counter().count_text(prompt_text, provider=provider, model=model)
        estimated = True
    if not isinstance(output, int) or isinstance(output, bool) or output < 0:
        output = default_counter().count_text(output_text, provider=provider, model=model)
        estimated = True
    return Usage(prompt, output, estimated=estimated)


def _vendor_message(text: str) -> str | None:
    text = text.strip()
    if not text:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return text[:500]
    if isinstance(data, dict) and data.get("error"):
        error = data["error"]
        if isinstance(error, dict):  # some proxies wrap errors OpenAI-style
            return str(error.get("message") or error)
        return str(error)
    return text[:500]
