"""Registry prices and context windows from genai-prices (issue 15, item 6).

Every expected figure is read from genai-prices' own API at test time (``calc_price``,
its model data), never typed in here, so these tests say "the registry bills what
genai-prices says", whatever version of its data is installed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from genai_prices import Usage, calc_price
from genai_prices.data_snapshot import get_snapshot

from ai_agents.providers.prices import GENAI_PROVIDERS
from ai_agents.providers.registry import (
    MODELS_FILE_ENV,
    ModelRegistry,
    get_registry,
    reset_registry,
)

#: Models whose genai-prices price depends on the hour (DeepSeek's peak hours).
HOURLY = {"deepseek"}

#: Table rows that override genai-prices' context window with the vendor's documented one.
CONTEXT_OVERRIDES = {
    ("openai", "gpt-5.2-chat-latest"): 128_000,
    ("openai", "gpt-5.1-chat-latest"): 128_000,
    ("openai", "gpt-5-chat-latest"): 128_000,
    ("openai", "gpt-3.5-turbo-0613"): 4_096,
}


@pytest.fixture(scope="module")
def reg() -> ModelRegistry:
    return ModelRegistry()


def genai_cost(provider: str, model: str, **usage: int) -> float | None:
    """genai-prices' price of *usage*, or ``None`` when it cannot price the model."""
    try:
        result = calc_price(Usage(**usage), model, provider_id=GENAI_PROVIDERS[provider])
    except LookupError:
        return None
    if not result.model_price.input_mtok or not result.model_price.output_mtok:
        return None  # priced per audio second or image: not a chat model's price
    return float(result.total_price)


def genai_context(provider: str, model: str) -> int | None:
    _, info = get_snapshot().find_provider_model(model, None, GENAI_PROVIDERS[provider], None)
    return info.context_window


def priced_entries(reg: ModelRegistry) -> list[tuple[str, str]]:
    return [
        (e.provider, e.model)
        for e in reg.models()
        if e.provider in GENAI_PROVIDERS and genai_cost(e.provider, e.model, input_tokens=1)
    ]


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        ("openai", "gpt-4o"),
        ("openai", "gpt-6-sol"),  # a GUESS before genai-prices priced it
        ("anthropic", "claude-haiku-4-5"),
        ("anthropic", "claude-sonnet-4-20250514"),  # a dated name genai-prices matches
        ("google", "gemini-2.5-flash"),
        ("groq", "llama-3.3-70b-versatile"),
    ],
)
def test_a_models_price_is_genai_prices_figure(
    reg: ModelRegistry, provider: str, model: str
) -> None:
    limits = reg.get(provider, model)
    expected = genai_cost(provider, model, input_tokens=12_000, output_tokens=3_000)
    assert expected is not None and expected > 0
    assert limits.cost(12_000, 3_000) == pytest.approx(expected, rel=1e-9)


def test_every_model_genai_prices_knows_is_billed_at_its_figures(reg: ModelRegistry) -> None:
    """Input, output and context window of every table row genai-prices prices."""
    entries = priced_entries(reg)
    assert len(entries) > 80
    for provider, model in entries:
        if provider in HOURLY:
            continue
        limits = reg.get(provider, model)
        for usage in ({"input_tokens": 1_000}, {"output_tokens": 1_000}):
            expected = genai_cost(provider, model, **usage)
            got = limits.cost(usage.get("input_tokens", 0), usage.get("output_tokens", 0))
            assert got == pytest.approx(expected, rel=1e-9), (provider, model, usage)
        context = genai_context(provider, model)
        if (provider, model) in CONTEXT_OVERRIDES:
            assert context != CONTEXT_OVERRIDES[provider, model]  # the override matters
            assert limits.context_window == CONTEXT_OVERRIDES[provider, model]
        elif context is not None:
            assert limits.context_window == context, (provider, model)


@pytest.mark.parametrize("model", ["deepseek-chat", "deepseek-reasoner"])
def test_hourly_prices_take_the_days_highest(reg: ModelRegistry, model: str) -> None:
    start = datetime.now(tz=UTC).replace(minute=45, second=0, microsecond=0)
    hours = [start + timedelta(hours=h) for h in range(24)]
    usage = Usage(input_tokens=10_000, output_tokens=1_000)
    prices = {
        float(
            calc_price(usage, model, provider_id="deepseek", genai_request_timestamp=t).total_price
        )
        for t in hours
    }
    assert len(prices) > 1  # the price does change with the hour
    assert reg.get("deepseek", model).cost(10_000, 1_000) == pytest.approx(max(prices))


@pytest.mark.parametrize(
    "model",
    [
        "claude-haiku-4-5",  # read 0.1x, write 1.25x
        "claude-3-haiku-20240307",  # read 0.12x, write 1.2x: not Anthropic's usual ratios
        "claude-sonnet-5-5",  # read 0.05x
    ],
)
def test_anthropic_cache_reads_and_writes_are_billed_at_genai_prices_cache_prices(
    reg: ModelRegistry, model: str
) -> None:
    usage = {"input_tokens": 10_000, "cache_read_tokens": 6_000, "cache_write_tokens": 2_000}
    expected = genai_cost("anthropic", model, **usage, output_tokens=500)
    full_input = genai_cost("anthropic", model, input_tokens=10_000, output_tokens=500)
    assert expected is not None and expected != full_input  # cache prices differ
    got = reg.get("anthropic", model).cost(
        10_000, 500, cache_read_tokens=6_000, cache_write_tokens=2_000
    )
    assert got == pytest.approx(expected, rel=1e-9)


def test_openai_cached_input_is_billed_at_genai_prices_cached_price(reg: ModelRegistry) -> None:
    expected = genai_cost("openai", "gpt-4.1", input_tokens=10_000, cache_read_tokens=8_000)
    assert reg.get("openai", "gpt-4.1").cost(10_000, 0, cache_read_tokens=8_000) == (
        pytest.approx(expected, rel=1e-9)
    )


def test_estimated_is_set_exactly_for_the_models_genai_prices_cannot_price(
    reg: ModelRegistry,
) -> None:
    estimated = {(e.provider, e.model) for e in reg.models() if e.limits.estimated}
    unpriced = {
        (e.provider, e.model)
        for e in reg.models()
        if e.provider in GENAI_PROVIDERS and not genai_cost(e.provider, e.model, input_tokens=1)
    }
    assert estimated == unpriced
    assert ("anthropic", "claude-mythos-5") in estimated  # a GUESS row
    # local models are free by definition, not guessed
    assert not reg.get("ollama", "llama3.3").estimated


def test_a_guess_is_priced_like_its_named_sibling(reg: ModelRegistry) -> None:
    guess, sibling = reg.get("openai", "gpt-6.2-sol"), reg.get("openai", "gpt-6.1-sol")
    assert guess.estimated and not sibling.estimated
    assert (guess.cost_per_1m_input, guess.cost_per_1m_output) == (
        sibling.cost_per_1m_input,
        sibling.cost_per_1m_output,
    )
    assert guess.context_window == 400_000 < sibling.context_window  # conservative


def test_groq_models_are_known_priced_and_call_tools(reg: ModelRegistry) -> None:
    assert "groq" in reg.providers()
    limits = reg.get("groq", "llama-3.3-70b-versatile")
    assert limits.supports_tools and not limits.estimated
    expected = genai_cost("groq", "llama-3.3-70b-versatile", input_tokens=1_000_000)
    assert limits.cost(1_000_000, 0) == pytest.approx(expected)
    assert reg.get("groq", "openai/gpt-oss-120b").supports_tools
    assert not reg.get("groq", "meta-llama/llama-guard-4-12b").supports_tools  # a classifier
    assert reg.get("groq", "meta-llama/llama-4-scout-17b-16e-instruct").supports_vision
    # every Groq row is one genai-prices prices
    groq = [e.model for e in reg.models("groq")]
    assert len(groq) >= 10
    assert all(genai_cost("groq", m, input_tokens=1) for m in groq)


def test_a_models_file_override_wins_over_genai_prices(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "models.json"
    override = {"cost_per_1m_input": 9.0, "cache_read_multiplier": 0.5, "context_window": 1234}
    path.write_text(json.dumps({"anthropic": {"claude-haiku-4-5": override}}))
    monkeypatch.setenv(MODELS_FILE_ENV, str(path))
    reset_registry()
    try:
        limits = get_registry().get("anthropic", "claude-haiku-4-5")
    finally:
        reset_registry()
    assert (limits.cost_per_1m_input, limits.context_window) == (9.0, 1234)
    assert limits.cost(1_000_000, 0, cache_read_tokens=1_000_000) == pytest.approx(4.5)
    builtin = ModelRegistry().get("anthropic", "claude-haiku-4-5")
    assert limits.cost_per_1m_output == builtin.cost_per_1m_output  # the rest: genai-prices'
    assert builtin.cost_per_1m_input != 9.0


NO_NETWORK = textwrap.dedent(
    """
    import socket, threading

    def refuse(*args, **kwargs):
        raise AssertionError("network access while loading prices")

    socket.socket.connect = socket.socket.connect_ex = refuse
    socket.create_connection = socket.getaddrinfo = refuse

    from genai_prices import data_snapshot
    from ai_agents.providers.registry import ModelRegistry

    limits = ModelRegistry().get("groq", "llama-3.3-70b-versatile")
    assert limits.cost_per_1m_input > 0
    assert data_snapshot._custom_snapshot is None, "an auto-update snapshot was installed"
    threads = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
    assert not threads, threads
    print("offline ok")
    """
)


def test_loading_prices_does_not_touch_the_network() -> None:
    """In a fresh interpreter (nothing imported yet) with every socket connect refused:
    genai-prices' bundled data only, no updater thread, no fetched snapshot."""
    done = subprocess.run(
        [sys.executable, "-c", NO_NETWORK], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "offline ok" in done.stdout
