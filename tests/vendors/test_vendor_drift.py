"""Vendor drift: does our model table still agree with the installed vendor SDKs?

Not in the default run (``make check-vendors`` runs exactly these): their answers change
when an SDK is upgraded, not when our code changes. A failure lists the models to review
in ``ai_agents/providers/registry.py`` against the vendor's announcement. The default
suite checks our table itself (``tests/unit/test_registry.py``).
"""

from __future__ import annotations

import typing

import pytest

from ai_agents.providers.registry import ModelRegistry

pytestmark = pytest.mark.vendor_drift

#: Names an SDK literal carries that the vendor's API does not serve.
OPENAI_NOT_SERVED = {"gpt-5.1-mini"}  # "Not a supported model ID" per the SDK


@pytest.fixture
def reg() -> ModelRegistry:
    return ModelRegistry()


def test_models_the_anthropic_sdk_deprecates_are_deprecated_here(reg: ModelRegistry) -> None:
    from anthropic.resources.messages.messages import DEPRECATED_MODELS

    assert DEPRECATED_MODELS, "the SDK's deprecation list moved or is empty"
    unknown = [m for m in DEPRECATED_MODELS if reg.find("anthropic", m) is None]
    assert unknown == [], f"deprecated by the SDK, missing from our table: {unknown}"
    live = [m for m in DEPRECATED_MODELS if not reg.get("anthropic", m).deprecated]
    assert live == [], f"deprecated by the SDK ({DEPRECATED_MODELS}), not here: {live}"


def test_models_the_openai_sdk_names_are_known(reg: ModelRegistry) -> None:
    from openai.types.shared.chat_model import ChatModel

    names = set(typing.get_args(ChatModel))
    assert names, "the SDK's ChatModel literal moved or is empty"
    unknown = sorted(n for n in names - OPENAI_NOT_SERVED if reg.resolve("openai", n) is None)
    assert unknown == [], f"named by the openai SDK, missing from our table: {unknown}"


def test_models_the_anthropic_sdk_names_are_known(reg: ModelRegistry) -> None:
    from anthropic.types.model import Model

    literal = typing.get_args(Model)[0]
    names = set(typing.get_args(literal))
    assert names, "the SDK's Model literal moved or is empty"
    unknown = sorted(n for n in names if reg.resolve("anthropic", n) is None)
    assert unknown == [], f"named by the anthropic SDK, missing from our table: {unknown}"


#: Groq models genai-prices prices that ``_groq()`` in registry.py leaves out on purpose:
#: retired by Groq, or the 512-token prompt-guard classifiers (not chat models).
GROQ_LEFT_OUT = {
    "deepseek-r1-distill-llama-70b", "gemma-7b-it", "gemma2-9b-it",
    "llama-3.1-405b-reasoning", "llama-3.1-70b-versatile", "llama-3.2-11b-text-preview",
    "llama-3.2-11b-vision-preview", "llama-3.2-1b-preview", "llama-3.2-3b-preview",
    "llama-3.2-90b-text-preview", "llama-3.2-90b-vision-preview", "llama-3.3-70b-specdec",
    "llama-guard-3-8b", "llama2-70b-4096", "llama3-70b-8192", "llama3-8b-8192",
    "llama3-groq-70b-8192-tool-use-preview", "llama3-groq-8b-8192-tool-use-preview",
    "mistral-saba-24b", "mixtral-8x7b-32768",
    "meta-llama/llama-prompt-guard-2-22m", "meta-llama/llama-prompt-guard-2-86m",
}  # fmt: skip


def test_groq_models_genai_prices_prices_are_in_our_table(reg: ModelRegistry) -> None:
    """A Groq chat model genai-prices adds needs a row (its capabilities and limits)."""
    from ai_agents.providers.prices import genai_models, vendor_figures

    priced = {m for m in genai_models("groq") if vendor_figures("groq", m) is not None}
    assert priced, "genai-prices no longer prices any Groq model"
    missing = sorted(m for m in priced - GROQ_LEFT_OUT if reg.resolve("groq", m) is None)
    assert missing == [], f"priced by genai-prices for groq, missing from our table: {missing}"
