"""Provider instances by name, one per name for the life of the store (pooled clients).

Built-in names: ``openai``, ``anthropic``, ``ollama``, ``local`` (in-process llama.cpp),
and the OpenAI-compatible presets ``deepseek``, ``groq``, ``vllm``, ``llamacpp``,
``openai_compatible``. More are configuration: ``AI_AGENTS_PROVIDERS`` holds JSON like
``{"lmstudio": {"adapter": "openai", "base_url": "http://127.0.0.1:1234/v1",
"api_key_env": "LMSTUDIO_KEY"}}``; ``"base_urls": [...]`` instead of ``base_url`` builds
a :class:`~ai_agents.providers.pool.NodePool` (health-checked, least-busy, failover).
Instances can also be registered directly
(``store.register_provider(name, provider)``), which is how tests plug in
:class:`ai_agents.testing.ScriptedProvider`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

from ai_agents.errors import ConfigurationError, ValidationError
from ai_agents.providers.base import Provider, ProviderSettings

#: OpenAI-compatible presets: name -> (base URL or its env var, API key env var).
OPENAI_COMPATIBLE: dict[str, tuple[str | None, str | None]] = {
    "deepseek": ("https://api.deepseek.com", "DEEPSEEK_API_KEY"),
    "groq": ("https://api.groq.com/openai/v1", "GROQ_API_KEY"),
    "vllm": ("env:VLLM_BASE_URL", "VLLM_API_KEY"),
    "llamacpp": ("env:LLAMACPP_BASE_URL", None),
    "openai_compatible": ("env:OPENAI_COMPATIBLE_BASE_URL", "OPENAI_COMPATIBLE_API_KEY"),
}


def _adapter(kind: str) -> Callable[..., Provider]:
    if kind == "openai":
        from ai_agents.providers.openai import OpenAIChatProvider

        return OpenAIChatProvider
    if kind == "anthropic":
        from ai_agents.providers.anthropic import AnthropicProvider

        return AnthropicProvider
    if kind == "ollama":
        from ai_agents.providers.ollama import OllamaProvider

        return OllamaProvider
    if kind == "local":
        from ai_agents.providers.local import LocalLlamaProvider

        return LocalLlamaProvider
    raise ConfigurationError(
        f"unknown provider adapter {kind!r} (openai, anthropic, ollama, local)"
    )


def _pool(name: str, kind: str, cfg: dict[str, Any]) -> Provider:
    """A :class:`~ai_agents.providers.pool.NodePool` from a ``"base_urls"`` entry."""
    from ai_agents.providers.pool import NodePool

    urls = cfg.pop("base_urls")
    if not isinstance(urls, list) or not urls or not all(isinstance(u, str) for u in urls):
        raise ConfigurationError(f"provider {name!r}: base_urls must be a non-empty list of URLs")
    api_key = cfg.pop("api_key", None) or _env_value(
        f"env:{cfg.pop('api_key_env')}" if "api_key_env" in cfg else None
    )
    options: dict[str, Any] = {
        "name": name,
        "timeout": float(cfg.pop("timeout", 120.0)),
        "headers": dict(cfg.pop("headers", {})),
    }
    for key, option in (
        ("health_interval", "interval"),
        ("check_timeout", "check_timeout"),
        ("retry_after", "retry_after"),
        ("max_retry_after", "max_retry_after"),
    ):
        if key in cfg:
            options[option] = float(cfg.pop(key))
    if kind == "ollama":
        return NodePool.ollama(urls, adapter_options=cfg, **options)
    if kind == "openai":
        return NodePool.openai_compatible(urls, api_key=api_key, adapter_options=cfg, **options)
    raise ConfigurationError(f"provider {name!r}: base_urls needs adapter ollama or openai")


def _env_value(spec: str | None) -> str | None:
    if spec and spec.startswith("env:"):
        return os.environ.get(spec[4:])
    return spec


class ProviderFactory:
    def __init__(self) -> None:
        self._instances: dict[str, Provider] = {}
        self._configured: dict[str, dict[str, Any]] = self._load_env_config()

    @staticmethod
    def _load_env_config() -> dict[str, dict[str, Any]]:
        raw = os.environ.get("AI_AGENTS_PROVIDERS")
        if not raw:
            return {}
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ConfigurationError(f"AI_AGENTS_PROVIDERS is not valid JSON: {exc}") from exc
        if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
            raise ConfigurationError("AI_AGENTS_PROVIDERS must map names to objects")
        return data

    def register(self, name: str, provider: Provider) -> None:
        if not isinstance(provider, Provider):
            raise ValidationError(f"provider {name!r} must be a Provider instance")
        self._instances[name] = provider

    def configure(self, name: str, **config: Any) -> None:
        """Declare a named provider (adapter, base_url, api_key, api_key_env, headers, timeout)."""
        self._configured[name] = config
        self._instances.pop(name, None)

    def known(self, name: str) -> bool:
        return (
            name in self._instances
            or name in self._configured
            or name in OPENAI_COMPATIBLE
            or name in {"openai", "anthropic", "ollama", "local"}
        )

    def get(self, name: str) -> Provider:
        provider = self._instances.get(name)
        if provider is None:
            provider = self._build(name)
            self._instances[name] = provider
        return provider

    def _build(self, name: str) -> Provider:
        if name in self._configured:
            cfg = dict(self._configured[name])
            kind = cfg.pop("adapter", "openai")
            if "base_urls" in cfg:
                return _pool(name, kind, cfg)
            # Never fall back to the vendor SDK's own env var (OPENAI_API_KEY): that key
            # would be sent to this provider's base URL.
            api_key = (
                cfg.pop("api_key", None)
                or _env_value(f"env:{cfg.pop('api_key_env')}" if "api_key_env" in cfg else None)
                or "not-needed"
            )
            settings = ProviderSettings(
                api_key=api_key,
                base_url=cfg.pop("base_url", None),
                headers=dict(cfg.pop("headers", {})),
                timeout=float(cfg.pop("timeout", 120.0)),
                name=name,
            )
            return _adapter(kind)(settings, **cfg)
        if name in OPENAI_COMPATIBLE:
            base, key_env = OPENAI_COMPATIBLE[name]
            base_url = _env_value(base)
            if not base_url:
                raise ConfigurationError(
                    f"provider {name!r} needs a base URL: set {base[4:] if base else 'it'}"
                )
            api_key = os.environ.get(key_env) if key_env else None
            return _adapter("openai")(
                ProviderSettings(base_url=base_url, api_key=api_key or "not-needed", name=name)
            )
        if name in {"openai", "anthropic", "ollama", "local"}:
            return _adapter(name)(ProviderSettings(name=name))
        raise ConfigurationError(
            f"unknown provider {name!r}: use openai, anthropic, ollama, local, one of "
            f"{', '.join(OPENAI_COMPATIBLE)}, or declare it in AI_AGENTS_PROVIDERS"
        )

    async def aclose(self) -> None:
        for provider in self._instances.values():
            await provider.aclose()
        self._instances.clear()
