"""Which provider a ``/v1`` model name reaches, and how ``/v1`` names it back."""

from __future__ import annotations

import pytest

from ai_agents.api.compat.catalog import public_model_name, resolve_model
from ai_agents.errors import ValidationError
from ai_agents.providers.registry import get_registry


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("gpt-4o", ("openai", "gpt-4o")),
        ("gpt-4o-mini", ("openai", "gpt-4o-mini")),
        ("o3-mini", ("openai", "o3-mini")),
        ("claude-sonnet-4-5", ("anthropic", "claude-sonnet-4-5")),
        ("llama3.2", ("ollama", "llama3.2")),
        ("gpt-oss", ("ollama", "gpt-oss")),  # only Ollama serves it
        ("ollama/llama3.2", ("ollama", "llama3.2")),
        ("openai/gpt-4o", ("openai", "gpt-4o")),
        ("gpt-9-from-the-future", ("openai", "gpt-9-from-the-future")),
    ],
)
def test_names_resolve_to_their_provider(name: str, expected: tuple[str, str]) -> None:
    assert resolve_model(name) == expected


def test_a_registered_local_provider_is_named_explicitly_or_found() -> None:
    registry = get_registry()
    registry.register_local_provider("my-vllm")
    assert resolve_model("my-vllm/qwen2.5-7b") == ("my-vllm", "qwen2.5-7b")


@pytest.mark.parametrize("name", ["no-such-model-anywhere", "", "   ", 42, None])
def test_unknown_or_malformed_names_are_a_400_naming_model(name: object) -> None:
    with pytest.raises(ValidationError) as error:
        resolve_model(name)
    assert error.value.details["param"] == "model"


@pytest.mark.parametrize(
    ("provider", "model"),
    [("openai", "gpt-4o"), ("anthropic", "claude-sonnet-4-5"), ("ollama", "llama3.2")],
)
def test_public_names_resolve_back(provider: str, model: str) -> None:
    assert resolve_model(public_model_name(provider, model)) == (provider, model)
