"""The provider contract: one request type, one response type, two methods.

A provider is compute only. It receives the system prompt and the already-trimmed history
in the internal message format (:mod:`ai_agents.messages`), converts them to its vendor's
wire format, and answers with a :class:`ProviderResponse`. It never touches the database.

The *adapter* (wire format: OpenAI chat completions, Anthropic messages, Ollama chat) is a
class; the *vendor settings* (key, base URL, headers, timeout) are a
:class:`ProviderSettings` value, so any OpenAI-compatible server is configuration.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol

from ai_agents.messages import Message, ToolCall

FinishReason = Literal["stop", "tool_calls", "length", "content_filter", "error"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolSpec:
    """A tool as the model sees it: name, description and JSON schema of its arguments."""

    name: str
    description: str
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderSettings:
    """Where and how to reach a vendor. ``None`` values fall back to the SDK's env vars."""

    api_key: str | None = None
    base_url: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    timeout: float = 120.0
    # Name under which usage/limits/breakers are tracked (e.g. "groq" for an
    # OpenAI-compatible adapter pointed at Groq).
    name: str | None = None


ResponseFormatType = Literal["text", "json_object", "json_schema"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ResponseFormat:
    """The shape the model's final answer must have (OpenAI's ``response_format``).

    ``json_object``: any JSON object. ``json_schema``: JSON valid against ``schema``
    (``strict`` asks the vendor to enforce it while decoding, where it can). Adapters
    return the JSON as the response's ``content`` text, however their vendor produces it
    (native response format, a forced tool, Ollama's ``format``, a llama.cpp grammar).
    """

    type: ResponseFormatType = "text"
    name: str = "response"
    schema: dict[str, Any] | None = None
    strict: bool = False
    description: str | None = None

    @property
    def is_json(self) -> bool:
        return self.type != "text"


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderRequest:
    """Everything one model call needs. Built by the runner, read by adapters."""

    model: str
    system_prompt: str
    messages: Sequence[Message]
    tools: Sequence[ToolSpec] = ()
    temperature: float | None = None
    max_output_tokens: int | None = None
    # "auto" | "none" | "required" | a tool name (force that tool)
    tool_choice: str = "auto"
    stop: Sequence[str] = ()
    top_p: float | None = None
    #: ``False``: at most one tool call per answer (``None``: the vendor's default).
    parallel_tool_calls: bool | None = None
    #: ``None`` or type ``text``: free text.
    response_format: ResponseFormat | None = None


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens of one call (or a sum of calls).

    ``input_tokens`` is every input token, cached or not; ``cache_read_tokens`` (served
    from the vendor's prompt cache) and ``cache_write_tokens`` (written to it) are the
    parts of it the vendor bills at other prices (:meth:`ModelLimits.cost
    <ai_agents.providers.registry.ModelLimits.cost>`).
    """

    input_tokens: int = 0
    output_tokens: int = 0
    # True when the vendor did not report usage and we counted ourselves.
    estimated: bool = False
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.estimated or other.estimated,
            self.cache_read_tokens + other.cache_read_tokens,
            self.cache_write_tokens + other.cache_write_tokens,
        )


@dataclass(slots=True, kw_only=True)
class ProviderResponse:
    """One model answer: text and/or tool calls, why it stopped, and what it cost."""

    content: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: FinishReason = "stop"
    usage: Usage = field(default_factory=Usage)
    provider: str = ""
    model: str = ""
    raw_id: str | None = None


# --- streaming events -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str
    type: Literal["text_delta"] = "text_delta"


@dataclass(frozen=True, slots=True)
class ToolCallReady:
    """A complete tool call (arguments fully received and parsed)."""

    call: ToolCall
    type: Literal["tool_call"] = "tool_call"


@dataclass(frozen=True, slots=True)
class ResponseDone:
    response: ProviderResponse
    type: Literal["response_done"] = "response_done"


StreamEvent = TextDelta | ToolCallReady | ResponseDone


class ModelLookup(Protocol):
    """What :meth:`Provider.native_tools_for` needs of the model-limits registry."""

    def resolve(self, provider: str, model: str) -> str | None: ...

    def get(self, provider: str, model: str) -> Any: ...


#: ``native_tools`` option of an adapter: for every model, or a function of the model name.
NativeTools = bool | Callable[[str], bool]


class Provider(ABC):
    """Base of every adapter. Subclasses set the class flags and implement two methods."""

    #: Adapter family name ("openai", "anthropic", "ollama", ...).
    kind: ClassVar[str]
    #: Whether the adapter can send tools natively at all (``False``: always prompted).
    supports_native_tools: ClassVar[bool] = True
    #: Native tools for a model the model-limits registry has no entry for.
    native_tools_default: ClassVar[bool] = True
    supports_streaming: ClassVar[bool] = True

    def __init__(
        self,
        settings: ProviderSettings | None = None,
        *,
        native_tools: NativeTools | None = None,
        registry: ModelLookup | None = None,
    ) -> None:
        """
        :param native_tools: override the registry's ``supports_tools``: ``True``/``False``
            for every model, or a function of the model name.
        :param registry: model-limits registry (default: the process-wide one).
        """
        self.settings = settings or ProviderSettings()
        self.native_tools = native_tools
        self._registry = registry

    @property
    def name(self) -> str:
        """Name used for limits, usage and breakers (settings.name or the adapter kind)."""
        return self.settings.name or self.kind

    def native_tools_for(self, model: str) -> bool:
        """Whether *model* gets native tool calling; otherwise tools are prompted
        (:mod:`ai_agents.providers.prompted_tools`).

        The ``native_tools`` option wins; then the registry's ``supports_tools`` for a
        model registered under this provider's name or its adapter kind (a local
        server's default limits do not count: they describe no model); then
        :attr:`native_tools_default`.
        """
        if not self.supports_native_tools:
            return False
        override = self.native_tools
        if isinstance(override, bool):
            return override
        if override is not None:
            return bool(override(model))
        registry = self._registry
        if registry is None:
            from ai_agents.providers.registry import get_registry

            registry = get_registry()
        for provider in dict.fromkeys((self.name, self.kind)):
            if registry.resolve(provider, model) is not None:
                return bool(getattr(registry.get(provider, model), "supports_tools", False))
        return self.native_tools_default

    @abstractmethod
    async def complete(self, request: ProviderRequest) -> ProviderResponse:
        """Answer one request."""

    async def stream(self, request: ProviderRequest) -> AsyncIterator[StreamEvent]:
        """Yield text deltas and complete tool calls, then exactly one ResponseDone.

        The default implementation calls :meth:`complete` and replays it.
        """
        response = await self.complete(request)
        if response.content:
            yield TextDelta(response.content)
        for call in response.tool_calls:
            yield ToolCallReady(call)
        yield ResponseDone(response)

    async def aclose(self) -> None:  # noqa: B027 - adapters without connections need nothing
        """Release connections held by the adapter."""
