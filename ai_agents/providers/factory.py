"""Provider instances by name, one per name for the life of the store (pooled clients).

Built-in names are the entries of :data:`ai_agents.providers.catalog.PROVIDERS` (their
adapter, key and URL variables, default URL): ``openai``, ``anthropic``, ``ollama``,
``local`` (in-process llama.cpp), and the OpenAI-compatible presets ``deepseek``,
``groq``, ``google`` (Gemini through its OpenAI-compatible endpoint), ``vllm``,
``llamacpp``, ``openai_compatible``. More are
configuration: ``AI_AGENTS_PROVIDERS`` holds JSON like ``{"lmstudio": {"adapter":
"openai", "base_url": "http://127.0.0.1:1234/v1", "api_key_env": "LMSTUDIO_KEY"}}``; ``"base_urls": [...]`` instead of ``base_url`` builds
a :class:`~ai_agents.providers.pool.NodePool` (health-checked, least-busy, failover).
Instances can also be registered directly
(``store.register_provider(name, provider)``), which is how tests plug in
:class:`ai_agents.testing.ScriptedProvider`.

**Which providers agents may use.** A provider name comes from tenants (agents, runs), and
some built-ins reach into the server itself: ``ollama`` connects to ``127.0.0.1:11434``
unless told otherwise, ``local`` loads llama.cpp into the API process. So only *enabled*
providers can be used (:meth:`ProviderFactory.allowed`):

- ``Settings.enabled_providers`` (``AI_AGENTS_ENABLED_PROVIDERS=openai,ollama``) lists
  them; ``*`` enables every built-in;
- unset, every built-in is enabled except the two that reach into the server when
  nobody configured them (:data:`SERVER_SIDE`): ``ollama`` only when ``OLLAMA_HOST`` is
  set (or it is declared), ``local`` only when ``AI_AGENTS_LOCAL_MODEL_PATH`` or
  ``AI_AGENTS_LOCAL_MODEL_DIRS`` is set or when no provider at all is configured (a fresh
  machine runs the bundled model, as the demo does). The others reach a vendor's public
  URL (without the operator's key they only fail authentication) or the base URL the
  operator set (without it they cannot be built). Providers declared in
  ``AI_AGENTS_PROVIDERS`` or by :meth:`ProviderFactory.configure` are enabled;
- providers passed to :meth:`ProviderFactory.register` are always enabled;
- ``Settings.tenant_providers`` narrows this per tenant (key ``"*"``: unlisted tenants).

A provider that is not enabled is a :class:`ProviderNotAllowed` (a ``ValidationError``,
HTTP 422) when an agent is saved and when a run would call it. Model names of local
adapters are checked too: see :func:`ai_agents.providers.local.check_model`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any

from ai_agents.config import Settings
from ai_agents.errors import ConfigurationError, ValidationError
from ai_agents.providers.base import Provider, ProviderSettings
from ai_agents.providers.catalog import PROVIDERS, ProviderSpec

__all__ = ["OPENAI_COMPATIBLE", "Preset", "ProviderFactory", "ProviderNotAllowed"]


#: An OpenAI-compatible preset is a catalog entry (the old name, kept for importers).
Preset = ProviderSpec

#: OpenAI-compatible presets by provider name (catalog entries with that adapter).
OPENAI_COMPATIBLE: Mapping[str, ProviderSpec] = MappingProxyType(
    {n: p for n, p in PROVIDERS.items() if p.adapter == "openai-compatible"}
)

#: Built-in providers with their own adapter.
BUILTIN = tuple(n for n, p in PROVIDERS.items() if p.adapter != "openai-compatible")

#: Built-ins that reach into the server itself when nobody configured them: ``ollama``
#: (``127.0.0.1:11434`` by default) and ``local`` (llama.cpp loaded into this process).
#: The others reach a public vendor or the base URL the operator set, or cannot be built.
SERVER_SIDE = tuple(n for n, p in PROVIDERS.items() if p.server_side)


class ProviderNotAllowed(ValidationError, ConfigurationError):
    """The provider is not enabled on this server (or for this tenant).

    A ``ValidationError`` (HTTP 422) for the agent or run that names it; a
    ``ConfigurationError`` to the dispatcher, which skips such a fallback as
    ``not_configured``.
    """

    code = "provider_not_allowed"


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
    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings if settings is not None else Settings.from_env()
        self._instances: dict[str, Provider] = {}
        self._registered: set[str] = set()
        # ``AI_AGENTS_PROVIDERS`` and ``AI_AGENTS_LOCAL_MODEL_PATH`` (env or settings file),
        # validated by the settings model.
        from ai_agents.settings import load_settings

        model = load_settings()
        self._configured: dict[str, dict[str, Any]] = {
            name: dict(cfg) for name, cfg in model.providers.items()
        }
        self._local_model_path = model.local_model_path

    def register(self, name: str, provider: Provider) -> None:
        if not isinstance(provider, Provider):
            raise ValidationError(f"provider {name!r} must be a Provider instance")
        self._instances[name] = provider
        self._registered.add(name)

    def configure(self, name: str, **config: Any) -> None:
        """Declare a named provider (adapter, base_url, api_key, api_key_env, headers, timeout)."""
        self._configured[name] = config
        self._instances.pop(name, None)
        self._registered.discard(name)

    def _exists(self, name: str) -> bool:
        return (
            name in self._registered
            or name in self._configured
            or name in OPENAI_COMPATIBLE
            or name in BUILTIN
        )

    def known(self, name: str) -> bool:
        """Whether *name* is a provider this server can use (exists and is enabled)."""
        return self._exists(name) and self._enabled(name)

    # --- which providers may be used ----------------------------------------------------

    def allowed(self, tenant: str | None = None) -> frozenset[str] | None:
        """The providers agents (of *tenant*) may use; ``None``: every provider that exists."""
        names = self._deployment_allowed()
        per_tenant = self._tenant_list(tenant)
        if per_tenant is None:
            return names
        if names is None:
            return frozenset(per_tenant)
        return names & frozenset(per_tenant)

    def _deployment_allowed(self) -> frozenset[str] | None:
        listed = self.settings.enabled_providers
        if listed is not None:
            return None if "*" in listed else frozenset(listed) | self._registered
        return frozenset(self._configured_names()) | self._registered

    def _configured_names(self) -> Iterable[str]:
        """The default allowlist (module docstring)."""
        yield from (n for n in (*BUILTIN, *OPENAI_COMPATIBLE) if n not in SERVER_SIDE)
        yield from self._configured
        # A server-side provider is enabled once its URL variable is set (OLLAMA_HOST).
        yield from (n for n in SERVER_SIDE if PROVIDERS[n].configured())
        explicit_local = bool(self._local_model_path or self.settings.local_model_dirs)
        nothing_else = not (any(p.mentioned() for p in PROVIDERS.values()) or self._configured)
        if explicit_local or nothing_else:
            yield "local"

    def _tenant_list(self, tenant: str | None) -> list[str] | None:
        mapping = self.settings.tenant_providers or {}
        if tenant is None or not mapping:
            return None
        names = mapping.get(tenant, mapping.get("*"))
        if names is None:
            return None
        if isinstance(names, str) or not all(isinstance(n, str) for n in names):
            raise ConfigurationError(
                f"tenant_providers[{tenant!r}] must be a list of provider names"
            )
        return list(names)

    def _enabled(self, name: str, tenant: str | None = None) -> bool:
        names = self.allowed(tenant)
        return names is None or name in names

    def check(
        self,
        name: str,
        model: str | None = None,
        *,
        tenant: str | None = None,
        field: str = "provider",
    ) -> None:
        """Raise unless *tenant* may use *name* (and *model*, for a local adapter).

        ``ValidationError`` for a provider that does not exist, :class:`ProviderNotAllowed`
        for one that is not enabled, :class:`~ai_agents.providers.local.UnknownLocalModel`
        for a local model name that is not configured or not in the model directories.
        """
        if not self._exists(name):
            raise ValidationError(f"unknown provider {name!r}", details={"field": field})
        if not self._enabled(name):
            raise ProviderNotAllowed(
                f"provider {name!r} is not enabled on this server "
                "(AI_AGENTS_ENABLED_PROVIDERS, docs/configuration.md)",
                details={"field": field, "provider": name},
            )
        if not self._enabled(name, tenant):
            raise ProviderNotAllowed(
                f"provider {name!r} is not enabled for tenant {tenant!r}",
                details={"field": field, "provider": name},
            )
        if model is not None and name not in self._registered and self._kind(name) == "local":
            from ai_agents.providers.local import check_model

            cfg = self._configured.get(name, {})
            check_model(model, models=cfg.get("models"), model_dirs=self._model_dirs(cfg))

    def _kind(self, name: str) -> str:
        if name in self._configured:
            return str(self._configured[name].get("adapter", "openai"))
        return name if name in BUILTIN else "openai"

    def _model_dirs(self, cfg: dict[str, Any]) -> tuple[str, ...]:
        dirs = cfg.get("model_dirs", self.settings.local_model_dirs)
        return (dirs,) if isinstance(dirs, str) else tuple(dirs or ())

    # --- instances ------------------------------------------------------------------------

    def get(self, name: str) -> Provider:
        """The instance behind *name* (:class:`ProviderNotAllowed` when not enabled)."""
        if name not in self._registered and self._exists(name) and not self._enabled(name):
            raise ProviderNotAllowed(
                f"provider {name!r} is not enabled on this server "
                "(AI_AGENTS_ENABLED_PROVIDERS, docs/configuration.md)",
                details={"field": "provider", "provider": name},
            )
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
            if kind == "local":
                cfg["model_dirs"] = self._model_dirs(cfg)
            return _adapter(kind)(settings, **cfg)
        if name in OPENAI_COMPATIBLE:
            preset = OPENAI_COMPATIBLE[name]
            base_url = preset.resolve_base_url()
            if not base_url:
                raise ConfigurationError(
                    f"provider {name!r} needs a base URL: set {preset.url_env or 'it'}"
                )
            api_key = preset.api_key()
            return _adapter(preset.kind)(
                ProviderSettings(base_url=base_url, api_key=api_key or "not-needed", name=name)
            )
        if name == "local":
            return _adapter(name)(
                ProviderSettings(name=name), model_dirs=self.settings.local_model_dirs
            )
        if name in BUILTIN:
            return _adapter(PROVIDERS[name].kind)(ProviderSettings(name=name))
        raise ConfigurationError(
            f"unknown provider {name!r}: use one of {', '.join(PROVIDERS)}, "
            "or declare it in AI_AGENTS_PROVIDERS"
        )

    async def aclose(self) -> None:
        for provider in self._instances.values():
            await provider.aclose()
        self._instances.clear()
