"""Which provider serves a model name sent to ``/v1``.

``provider/model`` names both (``ollama/llama3.2``, ``anthropic/claude-sonnet-4-5``).
Otherwise the first provider whose registry (the built-in catalog, a loaded models file,
a registered test or local provider) knows the model, asking first the vendor the name
points at (``gpt-*``, ``chatgpt-*``, ``o1``/``o3``/``o4``... → openai, ``claude-*`` →
anthropic), then openai, anthropic, ollama and the others; so ``gpt-oss``, which only
Ollama serves, is Ollama's. A vendor-looking name no registry knows goes to that vendor
(its registry then names the model as unknown); any other unknown name is a 400 naming
``model``.
"""

from __future__ import annotations

import re

from ai_agents.api.compat.errors import invalid
from ai_agents.providers.registry import get_registry

_OPENAI = re.compile(r"^(gpt-|chatgpt-|o\d(-|$)|text-embedding-|davinci|babbage)")
_ANTHROPIC = re.compile(r"^claude-")
#: Providers asked in this order when the name alone does not decide.
_PREFERRED = ("openai", "anthropic", "ollama")


def _by_name(model: str) -> str | None:
    if _OPENAI.match(model):
        return "openai"
    if _ANTHROPIC.match(model):
        return "anthropic"
    return None


def resolve_model(name: object, param: str = "model") -> tuple[str, str]:
    """``(provider, model)`` for a ``/v1`` model name."""
    if not isinstance(name, str) or not name.strip():
        raise invalid("model must be a non-empty string", param)
    registry = get_registry()
    providers = registry.providers()
    head, sep, tail = name.partition("/")
    if sep and tail and (head in providers or registry.is_local(head) or head in _PREFERRED):
        return head, tail
    by_name = _by_name(name)
    ordered = [by_name] if by_name is not None else []
    ordered += [p for p in _PREFERRED if p in providers and p != by_name]
    ordered += [p for p in providers if p not in _PREFERRED]
    for provider in ordered:
        if registry.resolve(provider, name) is not None:
            return provider, name
    if by_name is not None:  # a vendor model newer than the catalog: the vendor decides
        return by_name, name
    raise invalid(
        f"The model '{name}' does not exist or you do not have access to it "
        "(name a provider explicitly as 'provider/model', e.g. 'ollama/llama3.2')",
        param,
    )


def public_model_name(provider: str, model: str) -> str:
    """The name ``/v1`` shows for a stored (provider, model): the bare model when the
    name alone resolves back to the provider, else ``provider/model``."""
    if _by_name(model) == provider:
        return model
    return f"{provider}/{model}"
