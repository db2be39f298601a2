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
