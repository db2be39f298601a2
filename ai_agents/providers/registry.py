"""Model limits registry: context window, output cap, rate limits, capabilities and price.

Every provider/model the runner talks to has a :class:`ModelLimits` entry. The runner uses
it to trim history (``context_window``/``max_output``), to throttle (``rpm``/``tpm``), to
choose native or prompted tool calling (``supports_tools``) and to price a run (:meth:`cost`).

Lookups are forgiving (exact but case-insensitive provider names):

- model names are case-insensitive;
- explicit aliases (``claude-sonnet-4-0`` -> ``claude-sonnet-4-20250514``);
- dated snapshots fall back to their family: ``gpt-4o-2024-08-06`` -> ``gpt-4o``
  (suffixes ``-YYYY-MM-DD``, ``-YYYYMMDD``, OpenAI's ``-MMDD``, Google's ``-001``/``-preview``);
- an undated family finds its latest registered dated snapshot
  (``claude-3-5-sonnet`` -> ``claude-3-5-sonnet-20241022``), and ``-latest`` is dropped;
- Ollama tags: ``llama3.3:latest`` == ``llama3.3``; ``qwen2.5:72b-instruct-q4_K_M`` tries
  ``qwen2.5:72b-instruct``, ``qwen2.5:72b`` then ``qwen2.5``;
- OpenAI fine-tunes ``ft:gpt-4o-mini-2024-07-18:org::id`` -> ``gpt-4o-mini``.

An unknown model raises :class:`~ai_agents.errors.UnknownModelError`, except for *local*
providers (``ollama``, ``local``, ``llamacpp``, ``vllm``, ``openai_compatible`` and any name
passed to :func:`register_local_provider`): they get :data:`LOCAL_DEFAULT_LIMITS`
(context 8192, output 2048, unlimited rate, no native tools, free), because any model
can be pulled or served there.

Overrides come from :meth:`ModelRegistry.register` / :meth:`ModelRegistry.update` or a file
(TOML or JSON) shaped ``{provider: {model: {field: value}}}``; the default registry
(:func:`get_registry`) loads the file named by ``AI_AGENTS_MODELS_FILE`` once. In TOML, quote
model names that contain dots or colons::

    local_providers = ["lmstudio"]          # optional: more local provider names

    [openai."gpt-4o"]
    rpm = 5000                              # partial entry: overrides one field
    tpm = 800000

    [openai."my-finetune"]                  # new model: every field is required
    context_window = 128000
    max_output = 16000
    rpm = 500
    tpm = 30000
    supports_tools = true
    supports_vision = false
    cost_per_1m_input = 3.0
    cost_per_1m_output = 12.0
    aliases = ["ft:gpt-4o-mini-2024-07-18:acme::abc123"]

Where the built-in figures come from: prices (USD per 1M tokens, input, output and
prompt-cache read/write) and context windows from the maintained `genai-prices` database
bundled with the installed package (:mod:`ai_agents.providers.prices`, offline), for every
model it knows; the table below adds what it does not carry (output cap, tier-1 rate
limits, i.e. the lowest paid tier, capabilities, deprecations), the figures of models it
lacks (local models), and ``override``s where a vendor documents another figure than
genai-prices has for that name. Rows marked ``GUESS`` are models named by the installed
SDKs that genai-prices does not price yet: priced like a named sibling, with a
conservative context, and marked ``estimated=True`` (shown by ``GET /models`` and
``ai-agents models``); override them with real figures. Prompt-cache tokens are priced
with ``cache_read_multiplier``/``cache_write_multiplier`` (multiples of the input price,
derived from genai-prices' cache prices). The models file wins over all of this.
``deprecated=True`` marks models the vendor has retired or scheduled for shutdown (they
stay resolvable so old agents keep loading; the vendor decides whether calls still work).
"""

from __future__ import annotations

import difflib
import json
import math
import os
import re
import threading
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import MISSING, asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, NamedTuple

from ai_agents.errors import ConfigurationError, UnknownModelError, ValidationError
from ai_agents.providers.catalog import PROVIDERS
from ai_agents.providers.prices import vendor_figures

__all__ = [
    "DEFAULT_LOCAL_PROVIDERS",
    "LOCAL_DEFAULT_LIMITS",
    "MODELS_FILE_ENV",
    "UNLIMITED_RPM",
    "UNLIMITED_TPM",
    "ModelEntry",
    "ModelLimits",
    "ModelRegistry",
    "RegistrySnapshot",
    "get_registry",
    "register_local_provider",
    "reset_registry",
]

#: Environment variable naming a TOML/JSON file of overrides for the default registry.
MODELS_FILE_ENV = "AI_AGENTS_MODELS_FILE"

#: "No limit" rate figures (a local server is limited by its hardware, not a quota).
UNLIMITED_RPM = 999_999
UNLIMITED_TPM = 999_999_999

#: Providers whose unknown models get :data:`LOCAL_DEFAULT_LIMITS` instead of an error.
#: (The catalog's self-hosted providers: ollama, local, vllm, llamacpp, openai_compatible.)
DEFAULT_LOCAL_PROVIDERS: frozenset[str] = frozenset(n for n, p in PROVIDERS.items() if p.local)

_INT_FIELDS = ("context_window", "max_output", "rpm", "tpm")
_BOOL_FIELDS = ("supports_tools", "supports_vision", "deprecated", "estimated")
_FLOAT_FIELDS = (
    "cost_per_1m_input",
    "cost_per_1m_output",
    "cache_read_multiplier",
    "cache_write_multiplier",
)


@dataclass(frozen=True)
class ModelLimits:
    """What one model allows and costs. Prices are USD per 1M tokens.

    Prompt-cache tokens are priced as a multiple of ``cost_per_1m_input``:
    ``cache_read_multiplier`` for tokens read from the cache (Anthropic 0.1; OpenAI 0.1
    to 0.5 by model; Gemini 0.25) and ``cache_write_multiplier`` for tokens written to it
    (Anthropic's 5-minute cache: 1.25). The default 1.0 bills them as plain input.
    ``estimated`` marks figures we guessed (not published by the vendor when written).
    """

    context_window: int
    max_output: int
    rpm: int
    tpm: int
    supports_tools: bool
    supports_vision: bool
    cost_per_1m_input: float
    cost_per_1m_output: float
    deprecated: bool = False
    cache_read_multiplier: float = 1.0
    cache_write_multiplier: float = 1.0
    estimated: bool = False

    def __post_init__(self) -> None:
        for name in _INT_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValidationError(
                    f"ModelLimits.{name} must be a positive integer, got {value!r}",
                    details={"field": name},
                )
        for name in _BOOL_FIELDS:
            value = getattr(self, name)
            if not isinstance(value, bool):
                raise ValidationError(
                    f"ModelLimits.{name} must be a boolean, got {value!r}",
                    details={"field": name},
                )
        for name in _FLOAT_FIELDS:
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or value < 0
            ):
                raise ValidationError(
                    f"ModelLimits.{name} must be a non-negative number, got {value!r}",
                    details={"field": name},
                )

    def cost(
        self,
        input_tokens: int,
        output_tokens: int,
        *,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
    ) -> float:
        """Price in USD of a call that used these many input and output tokens.

        *cache_read_tokens* and *cache_write_tokens* are parts of *input_tokens* (as the
        vendor reported them), billed at the cache multipliers instead of the input price.
        """
        counts = (input_tokens, output_tokens, cache_read_tokens, cache_write_tokens)
        if min(counts) < 0:
            raise ValidationError(
                f"token counts must be >= 0, got {input_tokens} in / {output_tokens} out / "
                f"{cache_read_tokens} cache read / {cache_write_tokens} cache write"
            )
        uncached = max(input_tokens - cache_read_tokens - cache_write_tokens, 0)
        inputs = (
            uncached
            + cache_read_tokens * self.cache_read_multiplier
            + cache_write_tokens * self.cache_write_multiplier
        )
        return (inputs * self.cost_per_1m_input + output_tokens * self.cost_per_1m_output) / (
            1_000_000
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready field dict (for ``GET /models``)."""
        return asdict(self)


class ModelEntry(NamedTuple):
    """One row of :meth:`ModelRegistry.models`."""

    provider: str
    model: str
    limits: ModelLimits


#: Limits of an unknown model on a local/OpenAI-compatible provider: a small context that
#: any current open model supports (8192), a 2048-token answer cap, no rate limit, prompted
#: (not native) tool calling, and no cost.
LOCAL_DEFAULT_LIMITS = ModelLimits(
    context_window=8192,
    max_output=2048,
    rpm=UNLIMITED_RPM,
    tpm=UNLIMITED_TPM,
    supports_tools=False,
    supports_vision=False,
    cost_per_1m_input=0.0,
    cost_per_1m_output=0.0,
)

_LIMIT_FIELDS = tuple(f.name for f in fields(ModelLimits))
_REQUIRED_FIELDS = tuple(f.name for f in fields(ModelLimits) if f.default is MISSING)


# --- built-in table ---------------------------------------------------------------
#
# Prices (input, output, prompt-cache read/write) and context windows come from
# genai-prices (ai_agents/providers/prices.py) for every model it knows. The rows below
# carry what it does not: output cap, rate limits, capabilities, deprecations; figures of
# the models it lacks (``context``/``price``); guesses (``like``); and ``override``s, each
# a documented vendor figure that genai-prices gets wrong for that name.


@dataclass(frozen=True)
class _Spec:
    """One model of the built-in table: what genai-prices does not say about it."""

    max_output: int
    rpm: int
    tpm: int
    supports_tools: bool
    supports_vision: bool
    deprecated: bool = False
    #: Our context window, used only when genai-prices has none for the model.
    context: int | None = None
    #: Our ($ input, $ output) per 1M, used only when genai-prices does not price it.
    price: tuple[float, float] | None = None
    #: GUESS: a model genai-prices does not price yet is priced like this sibling (its
    #: genai-prices figures) and marked ``estimated``.
    like: str | None = None
    #: ModelLimits fields that win over genai-prices (say why in a comment).
    override: tuple[tuple[str, Any], ...] = ()


_Row = tuple[str, str, _Spec, tuple[str, ...]]

_CHAT_LATEST_CONTEXT = (("context_window", 128_000),)


def _openai() -> list[_Row]:
    # Tier-1 rate limits of gpt-4.1/gpt-4o (500 RPM, 30k TPM) are used for every OpenAI
    # model: conservative for the minis (higher quotas) and for higher usage tiers.
    rows: list[_Row] = []

    def add(
        name: str,
        out: int,
        tools: bool = True,
        vision: bool = True,
        *,
        deprecated: bool = False,
        context: int | None = None,
        like: str | None = None,
        override: tuple[tuple[str, Any], ...] = (),
        aliases: tuple[str, ...] = (),
    ) -> None:
        spec = _Spec(
            out, 500, 30_000, tools, vision, deprecated, context, like=like, override=override
        )
        rows.append(("openai", name, spec, aliases))

    # --- the design table (all three: shutdown announced for 2027-01-14) ---
    add("gpt-4.1", 32_000, deprecated=True)
    add("gpt-4o", 16_000, deprecated=True)
    add("gpt-4o-mini", 16_000, deprecated=True)
    # --- current (no shutdown announced in the SDK's ChatModel docstring) ---
    for name in (
        "gpt-6-astra", "gpt-6-sol", "gpt-6.1-sol", "gpt-6.1-terra", "gpt-6-luna",
        "gpt-5.6-sol", "gpt-5.6-terra", "gpt-5.6-luna", "gpt-5.5", "gpt-5.4", "gpt-5.4-mini",
        "gpt-5.2", "gpt-5.2-pro",
    ):  # fmt: skip
        add(name, 128_000)
    # GUESS: named by the SDK, not priced by genai-prices: priced like the newest model of
    # the same line, with the 400k context of every GPT-5.x API model (conservative).
    add("gpt-6.2-astra", 128_000, context=400_000, like="gpt-6-astra")  # GUESS
    add("gpt-6.2-sol", 128_000, context=400_000, like="gpt-6.1-sol")  # GUESS
    # --- shutdown announced (dates from the SDK's ChatModel docstring) ---
    add("gpt-5.4-nano", 128_000, deprecated=True)  # 2027-04-01
    add("gpt-5.1", 128_000, deprecated=True)  # 2027-04-01
    add("gpt-5", 128_000, deprecated=True)  # 2026-12-11
    add("gpt-5-mini", 128_000, deprecated=True)  # 2026-12-11
    add("gpt-5-nano", 128_000, deprecated=True)  # 2026-12-11
    add("o3", 100_000, deprecated=True)  # 2026-12-11
    add("gpt-4.1-mini", 32_000, deprecated=True)  # 2027-01-14
    add("gpt-audio-mini", 16_000, vision=False, deprecated=True)  # 2027-01-20
    # --- retired (shutdown date passed) ---
    add("gpt-5.3-chat-latest", 16_000, deprecated=True)
    # OVERRIDE context: genai-prices prices the chat-latest aliases as their API model
    # (400k); OpenAI documents 128k for ChatGPT's chat-latest models.
    add("gpt-5.2-chat-latest", 16_000, deprecated=True, override=_CHAT_LATEST_CONTEXT)  # 2026-08-10
    add("gpt-5.1-chat-latest", 16_000, deprecated=True, override=_CHAT_LATEST_CONTEXT)  # 2026-07-23
    add("gpt-5.1-codex", 128_000, deprecated=True)  # 2026-07-23
    add("gpt-5-chat-latest", 16_000, tools=False, deprecated=True,
        override=_CHAT_LATEST_CONTEXT)  # 2026-07-23  # fmt: skip
    add("gpt-4.1-nano", 32_000, deprecated=True)  # 2026-10-23
    add("o4-mini", 100_000, deprecated=True)  # 2026-10-23
    add("o3-mini", 100_000, vision=False, deprecated=True)  # 2026-10-23
    add("o1", 100_000, deprecated=True)  # 2026-10-23
    add("o1-preview", 32_000, False, False, deprecated=True)  # 2025-07-28
    add("o1-mini", 65_536, False, False, deprecated=True)  # 2025-10-27
    add("gpt-4o-2024-05-13", 4_096, deprecated=True)  # 2026-10-23
    add("gpt-4o-audio-preview", 16_000, vision=False, deprecated=True)
    add("gpt-4o-mini-audio-preview", 16_000, vision=False, deprecated=True)
    add("gpt-4o-search-preview", 16_000, False, False, deprecated=True)
    add("gpt-4o-mini-search-preview", 16_000, False, False, deprecated=True)
    add("chatgpt-4o-latest", 16_000, tools=False, deprecated=True)  # 2026-02-17
    add("codex-mini-latest", 100_000, deprecated=True)  # 2026-02-12
    add("gpt-4-turbo", 4_096, deprecated=True)  # 2026-10-23
    add("gpt-4-turbo-preview", 4_096, vision=False, deprecated=True,
        aliases=("gpt-4-0125-preview", "gpt-4-1106-preview"))  # fmt: skip
    add("gpt-4-vision-preview", 4_096, tools=False, deprecated=True)
    add("gpt-4", 8_192, vision=False, deprecated=True)  # gpt-4-0613/-0314 too
    add("gpt-4-32k", 8_192, vision=False, deprecated=True)  # 2025-06-06
    add("gpt-3.5-turbo", 4_096, vision=False, deprecated=True)  # 2026-10-23
    add("gpt-3.5-turbo-1106", 4_096, vision=False, deprecated=True)
    # OVERRIDE context: genai-prices lists 16,385 (gpt-3.5-turbo-16k-0613's); 0613 has 4,096
    add("gpt-3.5-turbo-0613", 4_096, vision=False, deprecated=True,
        override=(("context_window", 4_096),))  # fmt: skip
    add("gpt-3.5-turbo-0301", 4_096, False, False, deprecated=True, context=4_096)
    add("gpt-3.5-turbo-16k", 4_096, vision=False, deprecated=True)
    return rows


def _anthropic() -> list[_Row]:
    # Tier-1 limits: 50 RPM; 30k input TPM for Sonnet/Opus 4.x, 50k for Haiku 4.5 (the
    # design table's 40k is kept for its own entries). Output caps: 64k for the Claude 4.5
    # generation and later (a conservative figure where Anthropic documents more).
    R = 50
    a = "anthropic"
    big = _Spec(64_000, R, 30_000, True, True)
    haiku = _Spec(64_000, R, 50_000, True, True)

    def old(out: int, tpm: int, vision: bool = True) -> _Spec:
        return _Spec(out, R, tpm, True, vision, deprecated=True)

    def guess(like: str, **changes: Any) -> _Spec:
        # GUESS: named by the SDK, not priced by genai-prices: priced like the model of the
        # fable line with the same version (mythos-5-2 and fable-5-2 cost the same), with
        # the 200k context of the Claude 4.x models (conservative).
        return replace(big, context=200_000, like=like, **changes)

    # Deprecation dates are the SDK's DEPRECATED_MODELS (anthropic/resources/messages).
    return [
        # --- the design table ---
        (a, "claude-sonnet-4-20250514", old(8_000, 40_000),  # end-of-life June 15th, 2026
         ("claude-sonnet-4-0", "claude-sonnet-4", "claude-4-sonnet-20250514")),
        (a, "claude-3-5-sonnet-20241022", old(8_000, 40_000),  # retired
         ("claude-3-5-sonnet", "claude-3-5-sonnet-latest")),
        (a, "claude-3-haiku-20240307", old(4_000, 40_000), ("claude-3-haiku",)),  # retired
        # --- current ---
        (a, "claude-opus-5-5", big, ()),
        (a, "claude-opus-5", big, ()),
        (a, "claude-sonnet-5-5", big, ()),
        (a, "claude-sonnet-5", big, ()),
        (a, "claude-haiku-5-5", haiku, ()),
        (a, "claude-fable-5-2", big, ()),
        (a, "claude-fable-5-1", big, ()),
        (a, "claude-fable-5", big, ()),
        (a, "claude-mythos-5-2", big, ()),
        (a, "claude-mythos-5-1", guess("claude-fable-5-1"), ()),  # GUESS
        (a, "claude-mythos-5", guess("claude-fable-5"), ()),  # GUESS
        (a, "claude-opus-4-8", big, ()),
        (a, "claude-opus-4-7", big, ()),
        (a, "claude-opus-4-6", big, ()),
        (a, "claude-sonnet-4-6", big, ()),
        # snapshot claude-opus-4-5-20251101; retired 2027-01-22 (anthropic SDK 2.14)
        (a, "claude-opus-4-5", replace(big, deprecated=True), ()),
        (a, "claude-haiku-4-5", haiku, ()),  # snapshot claude-haiku-4-5-20251001
        # --- deprecated / retired ---
        (a, "claude-sonnet-4-5", replace(big, deprecated=True), ()),  # EOL 2026-11-30
        (a, "claude-mythos-preview", guess("claude-fable-5", deprecated=True), ()),  # GUESS
        (a, "claude-opus-4-1-20250805", old(32_000, 30_000), ("claude-opus-4-1",)),
        (a, "claude-opus-4-20250514", old(32_000, 30_000),  # EOL June 15th, 2026
         ("claude-opus-4-0", "claude-opus-4", "claude-4-opus-20250514")),
        (a, "claude-3-7-sonnet-20250219", old(64_000, 30_000),  # EOL February 19th, 2026
         ("claude-3-7-sonnet",)),
        (a, "claude-3-5-haiku-20241022", old(8_192, 50_000, vision=False),  # EOL 2026-02-19
         ("claude-3-5-haiku",)),
        (a, "claude-3-opus-20240229", old(4_096, 20_000),  # EOL January 5th, 2026
         ("claude-3-opus",)),
    ]  # fmt: skip


def _google() -> list[_Row]:
    # Gemini API free-tier-ish limits from the design table (60 RPM, 4M TPM). Context of
    # the models genai-prices has none for: Google's documented 1M (1,048,576 exactly).
    R, T = 60, 4_000_000
    g = "google"
    return [
        # the design table
        (g, "gemini-2.0-flash", _Spec(8_000, R, T, True, True), ()),
        (g, "gemini-2.5-pro", _Spec(64_000, R, T, True, True, context=1_000_000), ()),
        # more
        (g, "gemini-3-pro-preview", _Spec(64_000, R, T, True, True, context=1_000_000), ()),
        (g, "gemini-2.5-flash", _Spec(64_000, R, T, True, True), ()),
        (g, "gemini-2.5-flash-lite", _Spec(64_000, R, T, True, True), ()),
        (g, "gemini-2.0-flash-lite", _Spec(8_000, R, T, True, True), ()),
        # retired September 2025
        (g, "gemini-1.5-pro", _Spec(8_192, R, T, True, True, deprecated=True), ()),
        (g, "gemini-1.5-flash", _Spec(8_192, R, T, True, True, deprecated=True), ()),
    ]


def _deepseek() -> list[_Row]:
    d = "deepseek"
    return [
        # the design table
        (d, "deepseek-chat", _Spec(8_000, 60, 100_000, True, False), ()),
        # 32k output incl. reasoning. Native tools: the thinking mode takes tool calls
        # since V3.2 (R1, the first model under this name, took none); the adapter sent
        # them natively before prompted tools existed, and still does.
        (d, "deepseek-reasoner", _Spec(32_000, 60, 100_000, True, False), ()),
    ]


def _groq() -> list[_Row]:
    # The chat models Groq serves that genai-prices prices (its retired ones, e.g.
    # mixtral-8x7b-32768 or llama3-70b-8192, the audio models and the 512-token prompt-guard
    # classifiers are left out). Rate limits: Groq's published per-model table (its free
    # plan; paid plans are higher: put yours in the models file). Tool use and image input
    # as Groq's model pages document them; context 131,072 where genai-prices has none.
    q = "groq"
    ctx = 131_072

    def s(rpm: int, tpm: int, out: int, tools: bool = True, vision: bool = False) -> _Spec:
        return _Spec(out, rpm, tpm, tools, vision, context=ctx)

    return [
        # Groq accepts 131,072 output tokens; 8,192 leaves room for the prompt
        (q, "llama-3.1-8b-instant", s(30, 6_000, 8_192), ()),
        (q, "llama-3.3-70b-versatile", s(30, 12_000, 32_768), ()),
        (q, "meta-llama/llama-4-maverick-17b-128e-instruct", s(30, 6_000, 8_192, vision=True), ()),
        (q, "meta-llama/llama-4-scout-17b-16e-instruct", s(30, 30_000, 8_192, vision=True), ()),
        (q, "meta-llama/llama-guard-4-12b", s(30, 15_000, 1_024, tools=False), ()),
        (q, "moonshotai/kimi-k2-instruct", s(60, 10_000, 16_384), ()),
        (q, "openai/gpt-oss-120b", s(30, 8_000, 65_536), ()),
        (q, "openai/gpt-oss-20b", s(30, 8_000, 65_536), ()),
        (q, "openai/gpt-oss-safeguard-20b", s(30, 8_000, 65_536, tools=False), ()),
        (q, "qwen/qwen3-32b", s(60, 6_000, 40_960), ()),
        # not in Groq's published tables yet: conservative output, prompted tool calling
        (q, "qwen/qwen3.8-27b", s(30, 6_000, 8_192, tools=False), ()),
    ]  # fmt: skip


def _ollama() -> list[_Row]:
    # Free and unlimited. ``supports_tools`` follows the "tools" capability of the Ollama
    # library page, except for tiny models (smollm2) whose native tool calls are not
    # reliable. ``context`` is the model's trained context; note that Ollama itself
    # runs with a smaller ``num_ctx`` unless configured (OLLAMA_CONTEXT_LENGTH).
    U, UT = UNLIMITED_RPM, UNLIMITED_TPM

    def o(ctx: int, out: int, tools: bool, vision: bool = False) -> _Spec:
        return _Spec(out, U, UT, tools, vision, context=ctx, price=(0.0, 0.0))

    n = "ollama"
    return [
        # the design table (kept as designed: prompted tool calling for these two)
        (n, "llama3.3:70b", o(128_000, 2_000, False), ()),
        (n, "qwen2.5:72b", o(128_000, 8_000, False), ()),
        # families (any tag/quantization falls back to these)
        (n, "llama3.3", o(128_000, 4_096, True), ()),
        (n, "llama3.2", o(128_000, 4_096, True), ()),
        (n, "llama3.2-vision", o(128_000, 4_096, False, True), ()),
        (n, "llama3.1", o(128_000, 4_096, True), ()),
        (n, "llama3", o(8_192, 2_048, False), ()),
        (n, "llama2", o(4_096, 2_048, False), ()),
        (n, "qwen3", o(40_960, 8_192, True), ()),
        (n, "qwen2.5", o(32_768, 8_192, True), ()),
        (n, "qwen2.5-coder", o(32_768, 8_192, True), ()),
        (n, "mistral", o(32_768, 4_096, True), ()),
        (n, "mistral-nemo", o(128_000, 4_096, True), ()),
        (n, "mistral-small", o(32_768, 4_096, True), ()),
        (n, "mixtral", o(32_768, 4_096, True), ()),
        (n, "command-r", o(128_000, 4_000, True), ()),
        (n, "gpt-oss", o(128_000, 8_192, True), ()),
        (n, "phi4-mini", o(128_000, 4_096, True), ()),
        (n, "phi4", o(16_384, 4_096, False), ()),
        (n, "phi3", o(4_096, 2_048, False), ()),  # phi3:mini default tag: 4k context
        (n, "gemma3", o(32_768, 4_096, False, True), ()),  # 1b: 32k (4b+: 128k, vision)
        (n, "gemma2", o(8_192, 2_048, False), ()),
        (n, "gemma", o(8_192, 2_048, False), ()),
        (n, "llava", o(4_096, 2_048, False, True), ()),
        (n, "deepseek-r1", o(128_000, 8_192, False), ()),
        (n, "smollm2", o(8_192, 2_048, False), ()),  # smollm2:135m / :360m / :1.7b
    ]


def _local() -> list[_Row]:
    free = (0.0, 0.0)
    spec = _Spec(1_024, UNLIMITED_RPM, UNLIMITED_TPM, False, False, context=8_192, price=free)
    return [("local", "smollm2-135m-instruct", spec, ())]


def _limits(provider: str, model: str, spec: _Spec) -> ModelLimits:
    """*spec* completed with genai-prices' figures (or ours where it has none)."""
    figures = vendor_figures(provider, model)
    estimated = False
    if figures is None and spec.like is not None:
        figures = vendor_figures(provider, spec.like)
        estimated = True
    price: tuple[float, float] | None
    if figures is not None:
        price = (figures.cost_per_1m_input, figures.cost_per_1m_output)
        cache = (figures.cache_read_multiplier, figures.cache_write_multiplier)
        context = (None if estimated else figures.context_window) or spec.context
    else:  # our own figures; cached tokens as plain input unless the row overrides it
        price, cache, context = spec.price, (1.0, 1.0), spec.context
    if price is None or context is None:
        raise ConfigurationError(
            f"built-in model {provider}/{model}: genai-prices has no "
            f"{'price' if price is None else 'context window'} for it; add one to its row "
            "in ai_agents/providers/registry.py"
        )
    limits = ModelLimits(
        context_window=context,
        max_output=spec.max_output,
        rpm=spec.rpm,
        tpm=spec.tpm,
        supports_tools=spec.supports_tools,
        supports_vision=spec.supports_vision,
        cost_per_1m_input=price[0],
        cost_per_1m_output=price[1],
        deprecated=spec.deprecated,
        cache_read_multiplier=cache[0],
        cache_write_multiplier=cache[1],
        estimated=estimated,
    )
    return replace(limits, **dict(spec.override))


def builtin_models() -> list[tuple[str, str, ModelLimits, tuple[str, ...]]]:
    """The built-in table as ``(provider, model, limits, aliases)`` rows."""
    rows = [
        *_openai(), *_anthropic(), *_google(), *_deepseek(), *_groq(), *_ollama(), *_local()
    ]  # fmt: skip
    return [(p, m, _limits(p, m, spec), aliases) for p, m, spec, aliases in rows]


# --- name normalization -----------------------------------------------------------

# -2024-08-06 / -20250514
_DATE_SUFFIX = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{8})$")
# OpenAI's older -MMDD snapshots (gpt-4-0613, gpt-3.5-turbo-0125)
_MMDD_SUFFIX = re.compile(r"-(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])$")
# Google's -001 versions, -preview[-MM-DD] and -exp[-MMDD] releases
_GOOGLE_SUFFIX = re.compile(r"-(?:\d{3}|preview(?:-\d{2}-\d{2})?|exp(?:-\d{4})?)$")
_LATEST_SUFFIX = "-latest"
_RESOLVE_CACHE_MAX = 4096


def _norm_provider(provider: str) -> str:
    return provider.strip().lower()


def _norm_model(model: str) -> str:
    m = model.strip().lower()
    if m.startswith("library/"):  # Ollama's default namespace
        m = m[len("library/") :]
    if m.endswith(":latest"):
        m = m[: -len(":latest")]
    return m


def _derive(name: str) -> Iterator[str]:
    """Less specific names for *name*, most specific first."""
    if name.startswith("ft:"):  # ft:gpt-4o-mini-2024-07-18:org::id
        base = name[3:].split(":", 1)[0]
        if base:
            yield base
        return
    base_name, sep, tag = name.partition(":")
    if sep:
        parts = tag.split("-")
        for i in range(len(parts) - 1, 0, -1):
            yield f"{base_name}:{'-'.join(parts[:i])}"
        yield base_name
        return
    for pattern in (_DATE_SUFFIX, _MMDD_SUFFIX, _GOOGLE_SUFFIX):
        stripped = pattern.sub("", name)
        if stripped != name and stripped:
            yield stripped
    if name.endswith(_LATEST_SUFFIX) and len(name) > len(_LATEST_SUFFIX):
        yield name[: -len(_LATEST_SUFFIX)]


def _candidates(model: str) -> list[str]:
    """*model* normalized, then every derived name (breadth first, no duplicates)."""
    first = _norm_model(model)
    out = [first]
    seen = {first}
    i = 0
    while i < len(out):
        for cand in _derive(out[i]):
            if cand not in seen:
                seen.add(cand)
                out.append(cand)
        i += 1
    return out


def _date_key(name: str) -> str:
    match = _DATE_SUFFIX.search(name)
    return match.group(0).replace("-", "") if match else ""


# --- the registry -------------------------------------------------------------------


@dataclass(slots=True)
class _Stored:
    name: str  # as registered (display spelling)
    limits: ModelLimits


@dataclass(frozen=True, slots=True)
class RegistrySnapshot:
    """A copy of everything a :class:`ModelRegistry` holds (:meth:`ModelRegistry.snapshot`).

    Opaque: pass it back to :meth:`ModelRegistry.restore`, as often as needed.
    """

    _state: tuple[Any, ...]
    _local_default: ModelLimits


class ModelRegistry:
    """Provider/model -> :class:`ModelLimits`, with aliases, snapshots and overrides."""

    def __init__(
        self,
        *,
        builtin: bool = True,
        local_default: ModelLimits = LOCAL_DEFAULT_LIMITS,
    ) -> None:
        self._lock = threading.RLock()
        self._models: dict[str, dict[str, _Stored]] = {}
        self._aliases: dict[str, dict[str, str]] = {}
        # undated family -> newest dated canonical ("claude-3-haiku" -> "...-20240307")
        self._families: dict[str, dict[str, str]] = {}
        self._local: set[str] = set(DEFAULT_LOCAL_PROVIDERS)
        self._resolved: dict[tuple[str, str], str | None] = {}
        self.local_default = local_default
        if builtin:
            for provider, model, limits, aliases in builtin_models():
                self.register(provider, model, limits, aliases=aliases)

    # --- queries ------------------------------------------------------------------

    def get(self, provider: str, model: str) -> ModelLimits:
        """Limits of *model* on *provider*.

        Raises :class:`UnknownModelError` when neither the model (through aliases,
        snapshots and tags) nor a local-provider default applies.
        """
        p = _norm_provider(provider)
        key = self._lookup(p, model)
        if key is not None:
            return self._models[p][key].limits
        if p in self._local:
            return self.local_default
        raise self._unknown(provider, model)

    def find(self, provider: str, model: str) -> ModelLimits | None:
        """Like :meth:`get` but ``None`` for an unknown model (local defaults do apply)."""
        try:
            return self.get(provider, model)
        except UnknownModelError:
            return None

    def resolve(self, provider: str, model: str) -> str | None:
        """Registered name that *model* resolves to on *provider* (``None`` if none does)."""
        p = _norm_provider(provider)
        key = self._lookup(p, model)
        return None if key is None else self._models[p][key].name

    def _lookup(self, p: str, model: str) -> str | None:
        """Memoized :meth:`_resolve_key` (cleared on every change)."""
        cache_key = (p, model)
        try:
            return self._resolved[cache_key]
        except KeyError:
            pass
        with self._lock:
            key = self._resolve_key(p, model)
            if len(self._resolved) >= _RESOLVE_CACHE_MAX:
                self._resolved.clear()
            self._resolved[cache_key] = key
        return key

    def _resolve_key(self, p: str, model: str) -> str | None:
        models = self._models.get(p)
        if not models:
            return None
        aliases = self._aliases.get(p, {})
        candidates = _candidates(model)
        for cand in candidates:
            if cand in models:
                return cand
            if cand in aliases:
                return aliases[cand]
        families = self._families.get(p, {})
        for cand in candidates:
            if cand in families:
                return families[cand]
        return None

    def is_local(self, provider: str) -> bool:
        """Whether *provider* is local/OpenAI-compatible (unknown models get defaults)."""
        return _norm_provider(provider) in self._local

    def providers(self) -> list[str]:
        """Providers with at least one registered model, sorted."""
        return sorted(p for p, models in self._models.items() if models)

    def models(
        self, provider: str | None = None, *, include_deprecated: bool = True
    ) -> list[ModelEntry]:
        """Registered models as ``(provider, model, limits)``, sorted (for ``GET /models``)."""
        with self._lock:
            wanted = [_norm_provider(provider)] if provider is not None else list(self._models)
            rows = [
                ModelEntry(p, stored.name, stored.limits)
                for p in wanted
                for stored in self._models.get(p, {}).values()
                if include_deprecated or not stored.limits.deprecated
            ]
        return sorted(rows, key=lambda e: (e.provider, e.model.lower()))

    def aliases(self, provider: str, model: str) -> tuple[str, ...]:
        """Explicit aliases registered for *model* (after resolving it)."""
        p = _norm_provider(provider)
        key = self._lookup(p, model)
        if key is None:
            return ()
        return tuple(sorted(a for a, c in self._aliases.get(p, {}).items() if c == key))

    # --- changes ------------------------------------------------------------------

    def register(
        self,
        provider: str,
        model: str,
        limits: ModelLimits,
        *,
        aliases: Iterable[str] = (),
    ) -> None:
        """Add or replace *model* on *provider*; *aliases* resolve to it too."""
        if not isinstance(limits, ModelLimits):
            raise ValidationError(f"limits must be a ModelLimits, got {type(limits).__name__}")
        p = _norm_provider(provider)
        key = _norm_model(model)
        if not p or not key:
            raise ValidationError("provider and model names must not be empty")
        alias_list = tuple(aliases)
        with self._lock:
            self._check_aliases(p, key, alias_list)
            self._aliases.setdefault(p, {}).pop(key, None)  # a model wins over an alias
            self._models.setdefault(p, {})[key] = _Stored(model.strip(), limits)
            self._add_aliases(p, key, alias_list)
            date = _date_key(key)
            if date:
                family = _DATE_SUFFIX.sub("", key)
                families = self._families.setdefault(p, {})
                current = families.get(family)
                if current is None or _date_key(current) <= date:
                    families[family] = key
            self._resolved.clear()

    def _check_aliases(self, p: str, key: str, aliases: Iterable[str]) -> None:
        models = self._models.get(p, {})
        for alias in aliases:
            a = _norm_model(alias)
            if not a:
                raise ValidationError(f"empty alias for {p}/{key}")
            if a != key and a in models:
                raise ConfigurationError(
                    f"alias {alias!r} of {p}/{key} is already a model of provider {p!r}; "
                    "pick another alias or update that model instead",
                    details={"provider": p, "model": key, "alias": alias},
                )

    def _add_aliases(self, p: str, key: str, aliases: Iterable[str]) -> None:
        known = self._aliases.setdefault(p, {})
        for alias in aliases:
            a = _norm_model(alias)
            if a != key:
                known[a] = key
        self._resolved.clear()

    def update(self, provider: str, model: str, **changes: Any) -> ModelLimits:
        """Override some fields of *model* and return the new limits.

        A registered name or alias is changed in place. A name that only resolves through
        its family (a dated snapshot, an Ollama tag) becomes its own entry, copied from the
        family. An unknown model of a local provider starts from the local default.
        """
        unknown = sorted(set(changes) - set(_LIMIT_FIELDS))
        if unknown:
            raise ValidationError(
                f"unknown ModelLimits field(s) {', '.join(unknown)}; "
                f"valid fields: {', '.join(_LIMIT_FIELDS)}"
            )
        p = _norm_provider(provider)
        with self._lock:
            base, target = self._base_for(p, model)
            if base is None:
                raise self._unknown(provider, model)
            new = replace(base, **changes)
            if target is not None:
                self._models[p][target].limits = new
                self._resolved.clear()
            else:
                self.register(p, model, new)
        return new

    def _base_for(self, p: str, model: str) -> tuple[ModelLimits | None, str | None]:
        """(limits to start from, canonical key to change in place or None for a new entry)."""
        key = _norm_model(model)
        models = self._models.get(p, {})
        if key in models:
            return models[key].limits, key
        alias_of = self._aliases.get(p, {}).get(key)
        if alias_of is not None:
            return models[alias_of].limits, alias_of
        canonical = self._resolve_key(p, model)
        if canonical is not None:
            return models[canonical].limits, None
        if p in self._local:
            return self.local_default, None
        return None, None

    def register_local_provider(self, name: str) -> None:
        """Treat *name* as local/OpenAI-compatible: unknown models get the local default."""
        p = _norm_provider(name)
        if not p:
            raise ValidationError("provider name must not be empty")
        with self._lock:
            self._local.add(p)
            self._resolved.clear()

    def load_file(self, path: str | os.PathLike[str]) -> None:
        """Apply overrides from a TOML (``.toml``) or JSON (``.json``) file."""
        file = Path(path)
        try:
            raw = file.read_bytes()
        except OSError as exc:
            raise ConfigurationError(f"cannot read models file {file}: {exc}") from exc
        suffix = file.suffix.lower()
        try:
            if suffix == ".toml":
                data: Any = tomllib.loads(raw.decode("utf-8"))
            elif suffix == ".json":
                data = json.loads(raw.decode("utf-8"))
            else:
                raise ConfigurationError(
                    f"models file {file} must end in .toml or .json (got {suffix or 'none'})"
                )
        except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ConfigurationError(
                f"models file {file} is not valid {suffix[1:]}: {exc}"
            ) from exc
        self.load_mapping(data, source=str(file))

    def load_mapping(self, data: Mapping[str, Any], *, source: str = "<mapping>") -> None:
        """Apply ``{provider: {model: {field: value, "aliases": [...]}}}`` overrides.

        A top-level ``local_providers`` list registers more local provider names.
        Everything is validated before anything is applied.
        """
        if not isinstance(data, Mapping):
            raise ConfigurationError(f"{source}: expected a table of providers")
        local = data.get("local_providers", [])
        if not isinstance(local, list) or not all(isinstance(x, str) for x in local):
            raise ConfigurationError(f"{source}: local_providers must be a list of names")
        planned: list[tuple[str, str, dict[str, Any], list[str]]] = []
        for provider, models in data.items():
            if provider == "local_providers":
                continue
            if not isinstance(models, Mapping):
                raise ConfigurationError(
                    f"{source}: [{provider}] must be a table of models, got {type(models).__name__}"
                )
            for model, spec in models.items():
                where = f"{source}: {provider}/{model}"
                if not isinstance(spec, Mapping):
                    raise ConfigurationError(f"{where}: expected a table of fields")
                values, aliases = _parse_spec(spec, where)
                planned.append((provider, model, values, aliases))
        with self._lock:
            snapshot = self._snapshot()
            try:
                for name in local:
                    self.register_local_provider(name)
                for provider, model, values, aliases in planned:
                    self._apply(provider, model, values, aliases, source)
            except Exception:
                self._restore(snapshot)
                raise

    def _apply(
        self, provider: str, model: str, values: dict[str, Any], aliases: list[str], source: str
    ) -> None:
        p = _norm_provider(provider)
        where = f"{source}: {provider}/{model}"
        base, target = self._base_for(p, model)
        missing = [f for f in _REQUIRED_FIELDS if f not in values]
        try:
            if target is not None:  # a registered model or alias: override in place
                limits = replace(self._models[p][target].limits, **values)
            elif not missing:  # a complete entry stands on its own
                limits = ModelLimits(**values)
            elif base is not None:  # snapshot/tag/local model: copy the family, override
                limits = replace(base, **values)
            else:
                raise ConfigurationError(
                    f"{where}: unknown model, so every field is required; missing "
                    f"{', '.join(missing)}",
                    details={"provider": p, "model": model, "missing": missing},
                )
        except ValidationError as exc:
            raise ConfigurationError(f"{where}: {exc.message}") from exc
        if target is not None:
            self._check_aliases(p, target, aliases)
            self._models[p][target].limits = limits
            self._add_aliases(p, target, aliases)
        else:
            self.register(p, model, limits, aliases=aliases)

    def snapshot(self) -> RegistrySnapshot:
        """A copy of every entry, alias, local provider and the local default (for tests
        and tools that change the registry for a while: :meth:`restore` undoes it)."""
        with self._lock:
            return RegistrySnapshot(self._snapshot(), self.local_default)

    def restore(self, snapshot: RegistrySnapshot) -> None:
        """Put back what :meth:`snapshot` saw; the snapshot stays reusable."""
        with self._lock:
            self._restore(_copy_state(snapshot._state))
            self.local_default = snapshot._local_default

    def _snapshot(self) -> tuple[Any, ...]:
        return _copy_state((self._models, self._aliases, self._families, self._local))

    def _restore(self, snapshot: tuple[Any, ...]) -> None:
        self._models, self._aliases, self._families, self._local = snapshot
        self._resolved.clear()

    # --- errors -------------------------------------------------------------------

    def _unknown(self, provider: str, model: str) -> UnknownModelError:
        p = _norm_provider(provider)
        how = (
            f"Register it with get_registry().register({p!r}, {model!r}, ModelLimits(...)) "
            f"or add a [{p}.{json.dumps(model)}] table with every ModelLimits field to the "
            f"models file named by {MODELS_FILE_ENV}"
        )
        models = self._models.get(p)
        if not models:
            known = ", ".join(self.providers())
            message = (
                f"unknown provider {provider!r} (model {model!r}): the model registry has no "
                f"models for it (known providers: {known}). {how}; or, for a local/"
                f"OpenAI-compatible server, call register_local_provider({p!r}) (or list it "
                f"in local_providers of that file) to use conservative default limits."
            )
        else:
            names = [s.name for s in models.values()]
            close = difflib.get_close_matches(_norm_model(model), list(models), n=3, cutoff=0.6)
            hint = f" Did you mean {', '.join(models[c].name for c in close)}?" if close else ""
            message = (
                f"unknown model {model!r} for provider {p!r}.{hint} {how}. "
                f"{len(names)} models are known for {p!r}; list them with "
                f"get_registry().models({p!r})."
            )
        return UnknownModelError(message, details={"provider": p, "model": model})


def _copy_state(state: tuple[Any, ...]) -> tuple[Any, ...]:
    models, aliases, families, local = state
    return (
        {p: {k: _Stored(s.name, s.limits) for k, s in m.items()} for p, m in models.items()},
        {p: dict(a) for p, a in aliases.items()},
        {p: dict(f) for p, f in families.items()},
        set(local),
    )


def _parse_spec(spec: Mapping[str, Any], where: str) -> tuple[dict[str, Any], list[str]]:
    values: dict[str, Any] = {}
    aliases: list[str] = []
    for name, value in spec.items():
        if name == "aliases":
            if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
                raise ConfigurationError(f"{where}: aliases must be a list of strings")
            aliases = list(value)
        elif name in _INT_FIELDS:
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigurationError(f"{where}: {name} must be an integer, got {value!r}")
            values[name] = value
        elif name in _FLOAT_FIELDS:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigurationError(f"{where}: {name} must be a number, got {value!r}")
            values[name] = float(value)
        elif name in _BOOL_FIELDS:
            if not isinstance(value, bool):
                raise ConfigurationError(f"{where}: {name} must be true or false, got {value!r}")
            values[name] = value
        else:
            raise ConfigurationError(
                f"{where}: unknown field {name!r}; valid fields: "
                f"{', '.join(_LIMIT_FIELDS)}, aliases"
            )
    return values, aliases


# --- default instance ---------------------------------------------------------------

_default: ModelRegistry | None = None
_default_lock = threading.Lock()


def get_registry() -> ModelRegistry:
    """The process-wide registry: built-ins plus the file named by ``AI_AGENTS_MODELS_FILE``.

    The file is read once, on first use; a missing or invalid file raises
    :class:`~ai_agents.errors.ConfigurationError` (and is retried on the next call).
    """
    global _default
    registry = _default
    if registry is not None:
        return registry
    with _default_lock:
        if _default is None:
            registry = ModelRegistry()
            from ai_agents.settings import load_settings

            path = (load_settings().models_file or "").strip()
            if path:
                if not Path(path).is_file():
                    raise ConfigurationError(
                        f"{MODELS_FILE_ENV} names {path}, which does not exist"
                    )
                registry.load_file(path)
            _default = registry
        return _default


def reset_registry() -> None:
    """Forget the default registry (the next :func:`get_registry` rebuilds it; for tests)."""
    global _default
    with _default_lock:
        _default = None


def register_local_provider(name: str) -> None:
    """Mark *name* as a local/OpenAI-compatible provider in the default registry."""
    get_registry().register_local_provider(name)
