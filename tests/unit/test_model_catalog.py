"""Provider catalog (issue 15, item 6): cache prices, guessed entries, the google preset."""

from __future__ import annotations

import json

import pytest

from ai_agents.cli import main
from ai_agents.config import Settings
from ai_agents.errors import ConfigurationError, ValidationError
from ai_agents.providers.factory import ProviderFactory
from ai_agents.providers.registry import ModelLimits, ModelRegistry

GEMINI_URL = "https://generativelanguage.googleapis.com/v1beta/openai/"


def test_cache_tokens_are_priced_at_their_multipliers() -> None:
    limits = ModelLimits(
        1000, 100, 1, 1, True, False, 2.0, 8.0, cache_read_multiplier=0.1,
        cache_write_multiplier=1.25,
    )  # fmt: skip
    # 1M input of which 600k read and 200k written: 200k x 2 + 600k x 0.2 + 200k x 2.5
    assert limits.cost(
        1_000_000, 0, cache_read_tokens=600_000, cache_write_tokens=200_000
    ) == pytest.approx(0.4 + 0.12 + 0.5)
    assert limits.cost(1_000_000, 1_000_000) == pytest.approx(10.0)  # no cache: as before
    # a vendor reporting more cached than total input never yields a negative price
    assert limits.cost(10, 0, cache_read_tokens=20) == pytest.approx(20 * 0.2 / 1e6)
    with pytest.raises(ValidationError):
        limits.cost(10, 0, cache_read_tokens=-1)


def test_builtin_cache_multipliers_are_genai_prices_cache_prices() -> None:
    registry = ModelRegistry()

    def multipliers(provider: str, model: str) -> tuple[float, float]:
        limits = registry.get(provider, model)
        return limits.cache_read_multiplier, limits.cache_write_multiplier

    assert multipliers("anthropic", "claude-haiku-4-5") == (0.1, 1.25)
    assert multipliers("anthropic", "claude-3-5-sonnet") == (0.1, 1.25)
    assert multipliers("openai", "gpt-4o") == (0.5, 1.0)
    assert multipliers("openai", "gpt-4.1-mini") == (0.25, 1.0)
    assert multipliers("openai", "gpt-5.2") == (0.1, 1.0)
    assert multipliers("openai", "gpt-5.2-pro") == (1.0, 1.0)  # no cached price
    assert multipliers("openai", "gpt-4") == (1.0, 1.0)  # no prompt caching
    assert multipliers("google", "gemini-2.5-flash") == (0.1, 1.0)  # $0.03 of $0.30
    assert multipliers("anthropic", "claude-3-haiku") == (0.12, 1.2)  # $0.03, $0.30 of $0.25
    assert multipliers("ollama", "llama3.3") == (1.0, 1.0)


def test_cache_multipliers_and_estimated_can_be_overridden_from_a_file() -> None:
    registry = ModelRegistry()
    registry.load_mapping(
        {"openai": {"gpt-5.4": {"cache_read_multiplier": 0.2, "estimated": False}}}
    )
    limits = registry.get("openai", "gpt-5.4")
    assert limits.cache_read_multiplier == 0.2 and not limits.estimated
    with pytest.raises(ConfigurationError, match="cache_read_multiplier must be a number"):
        registry.load_mapping({"openai": {"gpt-4o": {"cache_read_multiplier": "x"}}})


def test_guessed_entries_are_marked_estimated() -> None:
    registry = ModelRegistry()
    estimated = {(e.provider, e.model) for e in registry.models() if e.limits.estimated}
    assert ("anthropic", "claude-mythos-5") in estimated
    assert ("anthropic", "claude-mythos-preview") in estimated
    assert ("openai", "gpt-6.2-sol") in estimated
    # guessed before genai-prices priced them, or documented: not estimated
    priced = {
        ("anthropic", "claude-opus-4-7"),
        ("openai", "gpt-5.4"),
        ("openai", "gpt-5.3-chat-latest"),
        ("anthropic", "claude-haiku-4-5"),
        ("openai", "gpt-4o"),
        ("google", "gemini-2.5-pro"),
    }
    assert not priced & estimated
    assert len(estimated) == 5  # the rows commented GUESS in registry.py


def test_models_command_shows_estimated_entries(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "--provider", "anthropic", "--json"]) == 0
    rows = {r["model"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    assert rows["claude-mythos-5"]["estimated"] is True
    assert rows["claude-haiku-4-5"]["estimated"] is False
    assert rows["claude-haiku-4-5"]["cache_read_multiplier"] == 0.1

    assert main(["models", "--provider", "anthropic"]) == 0
    lines = {line.split()[1]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert lines["claude-mythos-5"].rstrip().endswith("estimated")
    assert lines["claude-mythos-preview"].rstrip().endswith("deprecated, estimated")
    assert "estimated" not in lines["claude-haiku-4-5"]


@pytest.fixture
def no_gemini_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for var in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GEMINI_BASE_URL", "AI_AGENTS_PROVIDERS"):
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


def test_google_is_a_preset_on_geminis_openai_endpoint(no_gemini_env: pytest.MonkeyPatch) -> None:
    no_gemini_env.setenv("GOOGLE_API_KEY", "google-key")
    factory = ProviderFactory(Settings())
    assert factory.known("google")
    provider = factory.get("google")
    assert provider.kind == "openai" and provider.name == "google"
    assert provider.settings.base_url == GEMINI_URL
    assert provider.settings.api_key == "google-key"


def test_gemini_api_key_wins_and_the_url_can_be_overridden(
    no_gemini_env: pytest.MonkeyPatch,
) -> None:
    no_gemini_env.setenv("GOOGLE_API_KEY", "google-key")
    no_gemini_env.setenv("GEMINI_API_KEY", "gemini-key")
    no_gemini_env.setenv("GEMINI_BASE_URL", "http://127.0.0.1:9/v1")
    provider = ProviderFactory(Settings()).get("google")
    assert provider.settings.api_key == "gemini-key"
    assert provider.settings.base_url == "http://127.0.0.1:9/v1"
