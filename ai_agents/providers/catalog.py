"""The provider catalog: every built-in provider's facts, in one frozen table.

Why one table: which variable holds a vendor's key, which one moves its URL, what the
default URL is, whether it runs on the operator's machine... used to be repeated in the
factory, the circuit breaker, ``ai-agents doctor``, the model registry, the adapters and
the demo, and the copies drifted (a new vendor was known to one and not the others).
Now they all read :data:`PROVIDERS`; a unit test fails when one of these variable names
appears as a string literal anywhere else in ``ai_agents/``, and docs/providers.md's
table is checked against it.

Each :class:`ProviderSpec` says:

- ``adapter``: ``openai``, ``anthropic``, ``ollama``, ``local`` (llama.cpp in this
  process) or ``openai-compatible`` (the OpenAI adapter given the spec's URL and key);
- ``key_envs``: variables holding the API key, the first one set wins;
- ``url_env`` / ``default_url``: the variable overriding the base URL, and the URL used
  without it (``None``: the variable must be set, there is no public endpoint);
- ``local``: the models run on the operator's hardware (any model name can be served,
  so the model registry gives unknown ones its local defaults) rather than a vendor's;
- ``server_side``: unconfigured, it reaches into the server itself (``ollama`` at
  ``127.0.0.1:11434``, ``local`` loads a model into the process), so the factory does not
  enable it by default;
- ``capabilities``: what the adapter does with tools, images, a JSON ``response_format``
  and streams on this endpoint (per-model figures live in the model registry).

Every helper reads ``os.environ`` unless given an ``env`` mapping (tests pass one).
Providers declared in ``AI_AGENTS_PROVIDERS`` are not in this table: they carry their
own adapter, URL and key variable (see :mod:`ai_agents.providers.factory`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

__all__ = [
    "PROVIDERS",
    "Adapter",
    "Capabilities",
    "ProviderSpec",
    "default_choices",
    "markdown_table",
    "provider_env_vars",
    "setup_hint",
    "spec",
]

Adapter = Literal["openai", "anthropic", "ollama", "local", "openai-compatible"]
#: How tool calls are made by default: the vendor's tool API ("native"; a model the
#: registry marks ``supports_tools = false`` is prompted), per model (the registry's
#: ``supports_tools``; unknown models prompted), or always prompted (XML in the prompt,
#: parsed back: :mod:`ai_agents.providers.prompted_tools`).
ToolCalling = Literal["native", "per model", "prompted"]
#: How a JSON ``response_format`` is honoured: sent as OpenAI defines it, through a forced
#: output tool (Anthropic), Ollama's ``format`` field, or a llama.cpp grammar.
StructuredOutput = Literal["response_format", "output tool", "format", "grammar"]


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What the adapter supports on this provider's endpoint."""

    tools: ToolCalling
    vision: bool
    structured_output: StructuredOutput
    streaming: bool = True


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    """One built-in provider (module docstring)."""

    name: str
    label: str
    adapter: Adapter
    capabilities: Capabilities
    key_envs: tuple[str, ...] = ()
    url_env: str | None = None
    default_url: str | None = None
    local: bool = False
    server_side: bool = False
    #: Path under the base URL that ``ai-agents doctor`` asks to see whether it answers.
    probe_path: str = "/models"
    #: Model the demo (and ``ai-agents agents create`` without ``--model``) uses.
    default_model: str | None = None

    @property
    def kind(self) -> str:
        """The factory's adapter kind (``openai-compatible`` is the ``openai`` adapter)."""
        return "openai" if self.adapter == "openai-compatible" else self.adapter

    @property
    def env_vars(self) -> tuple[str, ...]:
        """Every variable that configures this provider (keys, then the URL variable)."""
        return self.key_envs + ((self.url_env,) if self.url_env else ())

    @property
    def needs_key(self) -> bool:
        """A vendor's public endpoint needs a key; self-hosted servers usually do not."""
        return bool(self.key_envs) and not self.local

    def key_var(self, env: Mapping[str, str] | None = None) -> str | None:
        """The first of ``key_envs`` that is set (``None``: none is)."""
        values = os.environ if env is None else env
        return next((var for var in self.key_envs if values.get(var)), None)

    def api_key(self, env: Mapping[str, str] | None = None) -> str | None:
        """The API key from the first of ``key_envs`` that is set."""
        var = self.key_var(env)
        return (os.environ if env is None else env)[var] if var else None

    def url_override(self, env: Mapping[str, str] | None = None) -> str | None:
        """The value of ``url_env`` when set (no default)."""
        values = os.environ if env is None else env
        return (values.get(self.url_env) or None) if self.url_env else None

    def resolve_base_url(self, env: Mapping[str, str] | None = None) -> str | None:
        """``url_env`` when set, else ``default_url`` (``None``: not configured)."""
        return self.url_override(env) or self.default_url

    def configured(self, env: Mapping[str, str] | None = None) -> bool:
        """Whether the operator set this provider up: its key for a vendor, its URL
        variable otherwise (``ollama``'s default URL alone does not count)."""
        if self.needs_key:
            return self.key_var(env) is not None
        return self.url_override(env) is not None

    def mentioned(self, env: Mapping[str, str] | None = None) -> bool:
        """Whether any of this provider's variables is set (even without the rest)."""
        values = os.environ if env is None else env
        return any(values.get(var) for var in self.env_vars)


_OPENAI_LIKE = Capabilities(tools="native", vision=True, structured_output="response_format")

_TABLE = (
    ProviderSpec(
        "openai",
        "OpenAI",
        "openai",
        _OPENAI_LIKE,
        key_envs=("OPENAI_API_KEY",),
        url_env="OPENAI_BASE_URL",
        default_url="https://api.openai.com/v1",
        default_model="gpt-5.4-mini",
    ),
    ProviderSpec(
        "anthropic",
        "Anthropic",
        "anthropic",
        Capabilities(tools="native", vision=True, structured_output="output tool"),
        key_envs=("ANTHROPIC_API_KEY",),
        url_env="ANTHROPIC_BASE_URL",
        default_url="https://api.anthropic.com",
        probe_path="/v1/models",
        default_model="claude-haiku-4-5",
    ),
    ProviderSpec(
        "deepseek",
        "DeepSeek",
        "openai-compatible",
        # DeepSeek's chat API takes text only.
        Capabilities(tools="native", vision=False, structured_output="response_format"),
        key_envs=("DEEPSEEK_API_KEY",),
        default_url="https://api.deepseek.com",
    ),
    ProviderSpec(
        "groq",
        "Groq",
        "openai-compatible",
        _OPENAI_LIKE,
        key_envs=("GROQ_API_KEY",),
        default_url="https://api.groq.com/openai/v1",
    ),
    ProviderSpec(
        "google",
        "Google Gemini",
        "openai-compatible",
        _OPENAI_LIKE,
        key_envs=("GEMINI_API_KEY", "GOOGLE_API_KEY"),
        url_env="GEMINI_BASE_URL",
        # Gemini's OpenAI-compatible endpoint (https://ai.google.dev/gemini-api/docs/openai).
        default_url="https://generativelanguage.googleapis.com/v1beta/openai/",
    ),
    ProviderSpec(
        "ollama",
        "Ollama",
        "ollama",
        Capabilities(tools="per model", vision=True, structured_output="format"),
        url_env="OLLAMA_HOST",
        default_url="http://127.0.0.1:11434",
        local=True,
        server_side=True,
        probe_path="/api/tags",
        default_model="llama3.2",
    ),
    ProviderSpec(
        "vllm",
        "vLLM server",
        "openai-compatible",
        _OPENAI_LIKE,
        key_envs=("VLLM_API_KEY",),
        url_env="VLLM_BASE_URL",
        local=True,
    ),
    ProviderSpec(
        "llamacpp",
        "llama.cpp server",
        "openai-compatible",
        _OPENAI_LIKE,
        url_env="LLAMACPP_BASE_URL",
        local=True,
    ),
    ProviderSpec(
        "openai_compatible",
        "any OpenAI-compatible server",
        "openai-compatible",
        _OPENAI_LIKE,
        key_envs=("OPENAI_COMPATIBLE_API_KEY",),
        url_env="OPENAI_COMPATIBLE_BASE_URL",
        local=True,
    ),
    ProviderSpec(
        "local",
        "llama.cpp in this process",
        "local",
        Capabilities(tools="prompted", vision=False, structured_output="grammar"),
        local=True,
        server_side=True,
    ),
)

#: Every built-in provider by name, in the order the doctor and the docs list them.
PROVIDERS: Mapping[str, ProviderSpec] = MappingProxyType({p.name: p for p in _TABLE})


def spec(name: str) -> ProviderSpec:
    """The catalog entry of *name* (``KeyError`` for a provider not in the catalog)."""
    return PROVIDERS[name]


def provider_env_vars() -> tuple[str, ...]:
    """Every variable of every catalog provider (for tests that start from a bare env)."""
    return tuple(var for p in PROVIDERS.values() for var in p.env_vars)


def default_choices() -> tuple[ProviderSpec, ...]:
    """Providers with a default model, in the order the demo tries them."""
    return tuple(p for p in PROVIDERS.values() if p.default_model)


def setup_hint() -> str:
    """``OPENAI_API_KEY, ANTHROPIC_API_KEY or OLLAMA_HOST``: what to set for a model."""
    names = [(p.key_envs[0] if p.needs_key else p.url_env) or p.name for p in default_choices()]
    return ", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else "".join(names)


def markdown_table() -> str:
    """The catalog as the Markdown table of docs/providers.md (a test keeps them equal)."""

    def code(values: tuple[str, ...] | list[str]) -> str:
        return " or ".join(f"`{v}`" for v in values) or "—"

    def where(p: ProviderSpec) -> str:
        if p.adapter == "local":
            return "in process"
        if p.server_side:
            return "this server by default"
        return "self-hosted" if p.local else "vendor"

    rows = [
        "| provider | adapter | key variable | URL variable | default URL | runs on | tools "
        "| vision | JSON output | streaming |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for p in PROVIDERS.values():
        caps = p.capabilities
        url = f"`{p.default_url}`" if p.default_url else "— (must be set)"
        if p.adapter == "local":
            url = "—"
        rows.append(
            f"| `{p.name}` | {p.adapter} | {code(p.key_envs)} "
            f"| {code([p.url_env] if p.url_env else [])} | {url} | {where(p)} | {caps.tools} "
            f"| {'yes' if caps.vision else 'no'} | {caps.structured_output} "
            f"| {'yes' if caps.streaming else 'no'} |"
        )
    return "\n".join(rows)
