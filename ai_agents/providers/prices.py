"""Prices and context windows from `genai-prices`_, the maintained price database.

The model registry (:mod:`ai_agents.providers.registry`) takes every model's input, output
and prompt-cache prices and its context window from here when genai-prices knows the model;
its own table only adds what genai-prices does not carry (output cap, rate limits,
capabilities, deprecations) and the models genai-prices lacks.

Offline by construction: only the data bundled with the installed package is read
(``genai_prices.data``). genai-prices can also fetch newer prices from GitHub in a
background thread (``genai_prices.UpdatePrices``) and then serves them through
``calc_price``/``get_snapshot()``; this module never starts that updater and never reads
the snapshot it installs, so figures change only when the package is upgraded (a reviewed
change of the lock file, like any dependency), never while a server runs.

How genai-prices' richer price model maps onto our flat per-1M figures:

- tiered prices (a higher rate once a prompt passes 200k/272k tokens): the base rate,
  which is what every prompt under the threshold pays;
- prices that change on announced dates: the one in force when the registry is built;
- prices that change with the time of day (DeepSeek's peak hours): the highest, so
  budgets err high;
- cache read/write prices: converted to multiples of the input price (the registry's
  ``cache_read_multiplier``/``cache_write_multiplier``), so ``ModelLimits.cost`` bills
  cached tokens at exactly genai-prices' per-token figure; a price genai-prices does not
  list means the vendor bills those tokens as plain input (1.0).

.. _genai-prices: https://github.com/pydantic/genai-prices
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from genai_prices.types import ModelInfo, ModelPrice, Provider

__all__ = ["GENAI_PROVIDERS", "VendorFigures", "genai_models", "vendor_figures"]

#: Our provider names that genai-prices prices, with its id for them.
GENAI_PROVIDERS: dict[str, str] = {
    "openai": "openai",
    "anthropic": "anthropic",
    "google": "google",
    "deepseek": "deepseek",
    "groq": "groq",
}


@dataclass(frozen=True, slots=True)
class VendorFigures:
    """What genai-prices says about one model (USD per 1M tokens)."""

    #: genai-prices' id of the model the name matched (``claude-sonnet-4-0`` for
    #: ``claude-sonnet-4-20250514``).
    model_id: str
    #: ``None`` when genai-prices does not list it (the registry keeps its own figure).
    context_window: int | None
    cost_per_1m_input: float
    cost_per_1m_output: float
    cache_read_multiplier: float
    cache_write_multiplier: float


@functools.cache
def _providers() -> dict[str, Provider]:
    # The bundled data module, not genai_prices.data_snapshot.get_snapshot(): that one
    # returns whatever an UpdatePrices thread fetched, if anything in the process ran one.
    from genai_prices.data import providers

    return {p.id: p for p in providers}


def genai_models(provider: str) -> list[str]:
    """Ids of the models genai-prices lists for our *provider* (empty if it has none)."""
    gp = _providers().get(GENAI_PROVIDERS.get(provider.strip().lower(), ""))
    return [m.id for m in gp.models] if gp is not None else []


def vendor_figures(provider: str, model: str) -> VendorFigures | None:
    """genai-prices' figures for *model* on our *provider*, or ``None`` when it has no
    input and output price for it. Matching is genai-prices' own (its match rules know
    snapshot dates and aliases); its fallbacks to other providers are not followed."""
    return _figures(provider.strip().lower(), model.strip().lower())


@functools.lru_cache(maxsize=1024)
def _figures(provider: str, model: str) -> VendorFigures | None:
    gp = _providers().get(GENAI_PROVIDERS.get(provider, ""))
    if gp is None:
        return None
    info = gp.find_model(model)  # no all_providers: no fallback to another vendor
    if info is None:
        return None
    price = _price_in_force(info, datetime.now(tz=UTC))
    cost_in, cost_out = _rate(price, "input_mtok"), _rate(price, "output_mtok")
    if cost_in is None or cost_out is None:
        return None  # audio, images, embeddings: not priced per input/output token
    return VendorFigures(
        model_id=info.id,
        context_window=info.context_window,
        cost_per_1m_input=float(cost_in),
        cost_per_1m_output=float(cost_out),
        cache_read_multiplier=_multiple(_rate(price, "cache_read_mtok"), cost_in),
        cache_write_multiplier=_multiple(_rate(price, "cache_write_mtok"), cost_in),
    )


def _price_in_force(info: ModelInfo, now: datetime) -> ModelPrice:
    """The standard price at *now*; of time-of-day prices, the highest."""
    from genai_prices.types import ModelPrice, TimeOfDateConstraint

    if isinstance(info.prices, ModelPrice):
        return info.prices
    conditional = info.prices
    # genai-prices' rule: the last price whose constraint holds wins, the first otherwise.
    dated = [
        c
        for c in conditional
        if not isinstance(c.constraint, TimeOfDateConstraint)
        and (c.constraint is None or c.constraint.active(now))
    ]
    current = dated[-1].prices if dated else conditional[0].prices
    hourly = [c.prices for c in conditional if isinstance(c.constraint, TimeOfDateConstraint)]
    return max([current, *hourly], key=lambda p: _rate(p, "input_mtok") or Decimal(0))


def _rate(price: ModelPrice, key: str) -> Decimal | None:
    """A per-1M rate of *price*; a tiered rate's base (prompts under the threshold)."""
    from genai_prices.types import TieredPrices

    value = getattr(price, key, None)
    if isinstance(value, TieredPrices):
        return value.base
    return value if isinstance(value, Decimal) else None


def _multiple(rate: Decimal | None, input_rate: Decimal) -> float:
    """*rate* as a multiple of *input_rate* (exact decimal division: 0.3/3 is 0.1)."""
    if rate is None or input_rate == 0:
        return 1.0
    return float(rate / input_rate)
