"""Model limits registry: built-ins, lookups, unknown models, overrides, default instance."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ai_agents.errors import ConfigurationError, UnknownModelError, UsageError, ValidationError
from ai_agents.providers import registry as registry_module
from ai_agents.providers.registry import (
    LOCAL_DEFAULT_LIMITS,
    MODELS_FILE_ENV,
    UNLIMITED_RPM,
    UNLIMITED_TPM,
    ModelEntry,
    ModelLimits,
    ModelRegistry,
    get_registry,
    register_local_provider,
    reset_registry,
)


@pytest.fixture
def reg() -> ModelRegistry:
    return ModelRegistry()


@pytest.fixture
def default_registry(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(MODELS_FILE_ENV, raising=False)
    reset_registry()
    yield
    reset_registry()


def limits(**changes: object) -> ModelLimits:
    base = {
        "context_window": 32_000,
        "max_output": 4_000,
        "rpm": 100,
        "tpm": 100_000,
        "supports_tools": True,
        "supports_vision": False,
        "cost_per_1m_input": 1.0,
        "cost_per_1m_output": 2.0,
    }
    base.update(changes)
    return ModelLimits(**base)  # type: ignore[arg-type]


# --- the design table ---------------------------------------------------------------

#: (context, output, rpm, tpm, tools, vision) of the design table. Its prices are no longer
#: ours: genai-prices' figures replace them (tests/unit/test_prices.py checks those).
DESIGN_TABLE = {
    ("openai", "gpt-4.1"): (1_000_000, 32_000, 500, 30_000, True, True),
    ("openai", "gpt-4o"): (128_000, 16_000, 500, 30_000, True, True),
    ("openai", "gpt-4o-mini"): (128_000, 16_000, 500, 30_000, True, True),
    ("anthropic", "claude-sonnet-4-20250514"): (200_000, 8_000, 50, 40_000, True, True),
    ("anthropic", "claude-3-5-sonnet-20241022"): (200_000, 8_000, 50, 40_000, True, True),
    ("anthropic", "claude-3-haiku-20240307"): (200_000, 4_000, 50, 40_000, True, True),
    ("ollama", "llama3.3:70b"): (128_000, 2_000, 999_999, 999_999_999, False, False),
    ("ollama", "qwen2.5:72b"): (128_000, 8_000, 999_999, 999_999_999, False, False),
    ("deepseek", "deepseek-chat"): (64_000, 8_000, 60, 100_000, True, False),
    ("google", "gemini-2.0-flash"): (1_000_000, 8_000, 60, 4_000_000, True, True),
    ("google", "gemini-2.5-pro"): (1_000_000, 64_000, 60, 4_000_000, True, True),
}


@pytest.mark.parametrize(("key", "expected"), list(DESIGN_TABLE.items()))
def test_design_table_entries_keep_their_figures(
    reg: ModelRegistry, key: tuple[str, str], expected: tuple[object, ...]
) -> None:
    got = reg.get(*key)
    assert (
        got.context_window,
        got.max_output,
        got.rpm,
        got.tpm,
        got.supports_tools,
        got.supports_vision,
    ) == expected


#: Retirements the vendors announced (Anthropic's as its SDK 2.14 listed them, OpenAI's on
#: its deprecations page), frozen here: our table must keep carrying and marking them.
#: Whether newer SDKs announce more is ``make check-vendors`` (tests/vendors).
ANNOUNCED_RETIREMENTS = [
    ("anthropic", "claude-mythos-preview"),  # 2026-06-30
    ("anthropic", "claude-sonnet-4-5"),  # 2026-11-30
    ("anthropic", "claude-sonnet-4-5-20250929"),
    ("anthropic", "claude-opus-4-5"),  # 2027-01-22
    ("anthropic", "claude-opus-4-5-20251101"),
    ("anthropic", "claude-sonnet-4-20250514"),  # 2026-06-15
    ("anthropic", "claude-3-5-sonnet-20241022"),  # retired
    ("openai", "o1-mini"),  # 2025-10-27
]

#: Current models (not retired): resolvable and not deprecated.
CURRENT_MODELS = [
    ("anthropic", "claude-opus-5-5"),
    ("anthropic", "claude-sonnet-5-5"),
    ("anthropic", "claude-haiku-5-5"),
    ("anthropic", "claude-opus-4-8"),
    ("anthropic", "claude-sonnet-4-6"),
    ("anthropic", "claude-haiku-4-5"),
    ("anthropic", "claude-haiku-4-5-20251001"),
    ("openai", "gpt-5.5"),
    ("openai", "gpt-5.4-mini"),
    ("openai", "gpt-5.2"),
]


@pytest.mark.parametrize(("provider", "model"), ANNOUNCED_RETIREMENTS)
def test_announced_retirements_are_marked_deprecated(
    reg: ModelRegistry, provider: str, model: str
) -> None:
    assert reg.get(provider, model).deprecated  # get() raises if the entry went missing


@pytest.mark.parametrize(("provider", "model"), CURRENT_MODELS)
def test_current_models_are_known_and_not_deprecated(
    reg: ModelRegistry, provider: str, model: str
) -> None:
    assert not reg.get(provider, model).deprecated


def test_local_smollm2_entry(reg: ModelRegistry) -> None:
    got = reg.get("local", "smollm2-135m-instruct")
    assert got.context_window == 8192
    assert got.max_output == 1024
    assert not got.supports_tools
    assert got.cost(1_000_000, 1_000_000) == 0


@pytest.mark.parametrize(
    ("model", "tools"),
    [
        ("llama3.1", True),
        ("llama3.2:3b", True),
        ("llama3.3", True),
        ("qwen2.5:7b", True),
        ("qwen3:8b", True),
        ("mistral", True),
        ("smollm2:135m", False),
        ("smollm2:1.7b", False),
        ("phi3", False),
        ("gemma2:9b", False),
    ],
)
def test_ollama_native_tool_support(reg: ModelRegistry, model: str, tools: bool) -> None:
    assert reg.get("ollama", model).supports_tools is tools


# --- lookups ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "model", "canonical"),
    [
        ("openai", "gpt-4o-2024-08-06", "gpt-4o"),
        ("openai", "GPT-4o", "gpt-4o"),
        ("OpenAI", "gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("openai", "gpt-4.1-2025-04-14", "gpt-4.1"),
        ("openai", "gpt-4-0613", "gpt-4"),
        ("openai", "ft:gpt-4o-mini-2024-07-18:acme::abc123", "gpt-4o-mini"),
        ("openai", "gpt-4-1106-preview", "gpt-4-turbo-preview"),
        ("anthropic", "claude-sonnet-4-0", "claude-sonnet-4-20250514"),
        ("anthropic", "claude-sonnet-4", "claude-sonnet-4-20250514"),
        ("ANTHROPIC", "Claude-Sonnet-4-20250514", "claude-sonnet-4-20250514"),
        ("anthropic", "claude-3-5-sonnet-latest", "claude-3-5-sonnet-20241022"),
        ("anthropic", "claude-3-5-sonnet", "claude-3-5-sonnet-20241022"),
        ("anthropic", "claude-haiku-4-5-20251001", "claude-haiku-4-5"),
        ("anthropic", "claude-3-haiku", "claude-3-haiku-20240307"),
        ("ollama", "llama3.3", "llama3.3"),
        ("ollama", "llama3.3:latest", "llama3.3"),
        ("ollama", "LLAMA3.3:Latest", "llama3.3"),
        ("ollama", "llama3.3:70b-instruct-q4_K_M", "llama3.3:70b"),
        ("ollama", "qwen2.5:72b-instruct-q4_K_M", "qwen2.5:72b"),
        ("ollama", "qwen2.5:72b", "qwen2.5:72b"),
        ("ollama", "qwen2.5:7b-instruct", "qwen2.5"),
        ("ollama", "smollm2:135m", "smollm2"),
        ("google", "gemini-2.0-flash-001", "gemini-2.0-flash"),
        ("google", "gemini-2.5-flash-preview-05-20", "gemini-2.5-flash"),
    ],
)
def test_aliases_snapshots_and_tags(
    reg: ModelRegistry, provider: str, model: str, canonical: str
) -> None:
    assert reg.resolve(provider, model) == canonical
    assert reg.get(provider, model) == reg.get(provider, canonical)


def test_alias_pairs_resolve_to_the_same_limits(reg: ModelRegistry) -> None:
    a = reg.get("anthropic", "claude-sonnet-4-0")
    assert a is reg.get("anthropic", "claude-sonnet-4-20250514")
    assert a is reg.get("anthropic", "claude-sonnet-4")
    assert "claude-sonnet-4-0" in reg.aliases("anthropic", "claude-sonnet-4-20250514")


def test_snapshot_with_its_own_entry_wins_over_family(reg: ModelRegistry) -> None:
    assert reg.get("openai", "gpt-4o-2024-05-13").cost_per_1m_input == 5.00
    assert reg.get("openai", "gpt-4o-2024-11-20").cost_per_1m_input == 2.50


# --- unknown models -----------------------------------------------------------------


def test_unknown_model_error_names_provider_model_and_how_to_register(
    reg: ModelRegistry,
) -> None:
    with pytest.raises(UnknownModelError) as info:
        reg.get("openai", "gpt-4oo")
    message = str(info.value)
    assert "'gpt-4oo'" in message
    assert "'openai'" in message
    assert "register(" in message
    assert MODELS_FILE_ENV in message
    assert "gpt-4o" in message  # close-match hint
    assert info.value.details == {"provider": "openai", "model": "gpt-4oo"}
    assert info.value.code == "unknown_model"
    assert isinstance(info.value, UsageError)
    assert isinstance(info.value, LookupError)


def test_unknown_provider_is_an_error(reg: ModelRegistry) -> None:
    with pytest.raises(UnknownModelError) as info:
        reg.get("acme-ai", "frontier-1")
    message = str(info.value)
    assert "unknown provider 'acme-ai'" in message
    assert "register_local_provider" in message
    assert reg.find("acme-ai", "frontier-1") is None


@pytest.mark.parametrize(
    "provider", ["ollama", "local", "llamacpp", "vllm", "openai_compatible", "OLLAMA"]
)
def test_local_providers_get_conservative_default(reg: ModelRegistry, provider: str) -> None:
    got = reg.get(provider, "some-model-nobody-registered:3b")
    assert got == LOCAL_DEFAULT_LIMITS
    assert got.context_window == 8192
    assert got.max_output == 2048
    assert got.rpm == UNLIMITED_RPM
    assert got.tpm == UNLIMITED_TPM
    assert got.supports_tools is False
    assert got.cost(10_000, 10_000) == 0.0


def test_register_local_provider(reg: ModelRegistry) -> None:
    with pytest.raises(UnknownModelError):
        reg.get("lmstudio", "whatever")
    reg.register_local_provider("LMStudio")
    assert reg.is_local("lmstudio")
    assert reg.get("lmstudio", "whatever") == LOCAL_DEFAULT_LIMITS


def test_local_default_does_not_hide_known_models(reg: ModelRegistry) -> None:
    assert reg.get("ollama", "llama3.1:8b").supports_tools is True


# --- costs and validation -----------------------------------------------------------


def test_cost_computation(reg: ModelRegistry) -> None:
    gpt4o = reg.get("openai", "gpt-4o")
    assert gpt4o.cost(1_000_000, 0) == pytest.approx(2.50)
    assert gpt4o.cost(0, 1_000_000) == pytest.approx(10.00)
    assert gpt4o.cost(1_200, 300) == pytest.approx((1_200 * 2.50 + 300 * 10.00) / 1e6)
    haiku = reg.get("anthropic", "claude-3-haiku-20240307")
    assert haiku.cost(2_000_000, 400_000) == pytest.approx(0.5 + 0.5)
    assert gpt4o.cost(0, 0) == 0.0
    with pytest.raises(ValidationError):
        gpt4o.cost(-1, 0)


@pytest.mark.parametrize(
    "bad",
    [
        {"context_window": 0},
        {"max_output": -5},
        {"rpm": 1.5},
        {"tpm": True},
        {"supports_tools": 1},
        {"cost_per_1m_input": -0.1},
        {"cost_per_1m_output": float("nan")},
    ],
)
def test_limits_validation(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        limits(**bad)


def test_to_dict_is_json_ready(reg: ModelRegistry) -> None:
    data = reg.get("openai", "gpt-4o").to_dict()
    assert json.loads(json.dumps(data))["context_window"] == 128_000
    assert set(data) >= {"context_window", "max_output", "rpm", "tpm", "deprecated"}


# --- register / update ----------------------------------------------------------------


def test_register_new_model_with_aliases(reg: ModelRegistry) -> None:
    mine = limits()
    reg.register("openai", "My-FineTune", mine, aliases=["ft:gpt-4o:acme::xyz", "mine"])
    assert reg.get("openai", "my-finetune") is mine
    assert reg.get("openai", "MINE") is mine
    assert reg.get("openai", "ft:gpt-4o:acme::xyz") is mine
    assert ModelEntry("openai", "My-FineTune", mine) in reg.models("openai")


def test_register_overrides_builtin(reg: ModelRegistry) -> None:
    faster = limits(rpm=10_000)
    reg.register("openai", "gpt-4o", faster)
    assert reg.get("openai", "gpt-4o") is faster
    assert reg.get("openai", "gpt-4o-2024-08-06") is faster  # cached resolution reset


def test_register_new_provider(reg: ModelRegistry) -> None:
    assert "acme" not in reg.providers()
    reg.register("acme", "llama-3.3-70b-versatile", limits())
    assert reg.get("Acme", "llama-3.3-70b-versatile").rpm == 100
    assert "acme" in reg.providers()


def test_register_alias_colliding_with_a_model_is_refused(reg: ModelRegistry) -> None:
    with pytest.raises(ConfigurationError):
        reg.register("openai", "x", limits(), aliases=["gpt-4o"])


def test_update_fields(reg: ModelRegistry) -> None:
    new = reg.update("anthropic", "claude-sonnet-4-0", rpm=4_000, tpm=400_000)
    assert reg.get("anthropic", "claude-sonnet-4-20250514") is new
    assert (new.rpm, new.tpm, new.cost_per_1m_input) == (4_000, 400_000, 3.00)
    with pytest.raises(ValidationError):
        reg.update("openai", "gpt-4o", rpms=3)
    with pytest.raises(UnknownModelError):
        reg.update("openai", "nope", rpm=3)


def test_update_of_a_snapshot_creates_its_own_entry(reg: ModelRegistry) -> None:
    reg.update("openai", "gpt-4o-2024-08-06", max_output=4_000)
    assert reg.get("openai", "gpt-4o-2024-08-06").max_output == 4_000
    assert reg.get("openai", "gpt-4o").max_output == 16_000


def test_models_listing(reg: ModelRegistry) -> None:
    rows = reg.models()
    assert all(isinstance(r, ModelEntry) for r in rows)
    names = {(r.provider, r.model) for r in rows}
    for key in DESIGN_TABLE:
        assert key in names
    assert rows == sorted(rows, key=lambda r: (r.provider, r.model.lower()))
    current = reg.models(include_deprecated=False)
    assert all(not r.limits.deprecated for r in current)
    assert ("openai", "gpt-4o") not in {(r.provider, r.model) for r in current}
    assert {r.provider for r in reg.models("ollama")} == {"ollama"}


# --- files ------------------------------------------------------------------------------

TOML = """
local_providers = ["lmstudio"]

[openai."gpt-4o"]
rpm = 5000
tpm = 800_000

[anthropic."claude-sonnet-4-0"]
cost_per_1m_output = 16

[openai."acme-finetune"]
context_window = 64000
max_output = 8000
rpm = 100
tpm = 50000
supports_tools = true
supports_vision = false
cost_per_1m_input = 3.0
cost_per_1m_output = 12.0
aliases = ["ft:gpt-4o-mini-2024-07-18:acme::abc"]

[ollama."qwen2.5:7b"]
context_window = 16384

[ollama."brand-new-model"]
supports_tools = true
"""


def test_load_toml_file(tmp_path: Path, reg: ModelRegistry) -> None:
    path = tmp_path / "models.toml"
    path.write_text(TOML)
    reg.load_file(path)
    gpt4o = reg.get("openai", "gpt-4o")
    assert (gpt4o.rpm, gpt4o.tpm, gpt4o.context_window) == (5000, 800_000, 128_000)
    assert reg.get("openai", "gpt-4o-2024-11-20") is gpt4o
    sonnet = reg.get("anthropic", "claude-sonnet-4-20250514")
    assert sonnet.cost_per_1m_output == 16.0
    assert sonnet.cost_per_1m_input == 3.0
    acme = reg.get("openai", "ft:gpt-4o-mini-2024-07-18:acme::abc")
    assert acme.context_window == 64_000
    assert reg.get("openai", "gpt-4o-mini-2024-07-18").context_window == 128_000
    # partial entry for a tag copies the family
    q7 = reg.get("ollama", "qwen2.5:7b")
    assert q7.context_window == 16_384 and q7.supports_tools is True
    assert reg.get("ollama", "qwen2.5:14b").context_window == 32_768
    # partial entry for an unknown model of a local provider starts from the default
    new = reg.get("ollama", "brand-new-model")
    assert new.supports_tools is True and new.context_window == 8192
    assert reg.get("lmstudio", "anything") == LOCAL_DEFAULT_LIMITS


def test_load_json_file(tmp_path: Path, reg: ModelRegistry) -> None:
    path = tmp_path / "models.json"
    path.write_text(
        json.dumps(
            {
                "deepseek": {"deepseek-chat": {"context_window": 128000, "deprecated": True}},
                "together": {
                    "meta-llama/Llama-3.3-70B-Instruct-Turbo": {
                        "context_window": 131072,
                        "max_output": 4096,
                        "rpm": 600,
                        "tpm": 180000,
                        "supports_tools": True,
                        "supports_vision": False,
                        "cost_per_1m_input": 0.88,
                        "cost_per_1m_output": 0.88,
                    }
                },
            }
        )
    )
    reg.load_file(str(path))
    chat = reg.get("deepseek", "deepseek-chat")
    assert chat.context_window == 128_000 and chat.deprecated and chat.max_output == 8_000
    llama = reg.get("together", "meta-llama/llama-3.3-70b-instruct-turbo")
    assert llama.cost(1_000_000, 1_000_000) == pytest.approx(1.76)


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ('[openai."brand-new"]\nrpm = 5\n', "missing"),
        ('[openai."gpt-4o"]\nrmp = 5\n', "unknown field 'rmp'"),
        ('[openai."gpt-4o"]\nrpm = "fast"\n', "rpm must be an integer"),
        ('[openai."gpt-4o"]\nrpm = 0\n', "positive integer"),
        ('[openai."gpt-4o"]\nsupports_tools = "yes"\n', "true or false"),
        ("[openai]\ngpt = 1\n", "expected a table of fields"),
        ("not = valid = toml\n", "not valid toml"),
    ],
)
def test_invalid_files_are_rejected_atomically(
    tmp_path: Path, reg: ModelRegistry, content: str, fragment: str
) -> None:
    path = tmp_path / "models.toml"
    path.write_text('[openai."gpt-4o-mini"]\nrpm = 7\n' + content)
    with pytest.raises(ConfigurationError) as info:
        reg.load_file(path)
    assert fragment in str(info.value)
    assert reg.get("openai", "gpt-4o-mini").rpm == 500  # nothing applied


def test_provider_must_be_a_table(tmp_path: Path, reg: ModelRegistry) -> None:
    path = tmp_path / "models.json"
    path.write_text(json.dumps({"openai": {"gpt-4o-mini": {"rpm": 7}}, "groq": 3}))
    with pytest.raises(ConfigurationError, match="must be a table of models"):
        reg.load_file(path)
    assert reg.get("openai", "gpt-4o-mini").rpm == 500


def test_file_errors(tmp_path: Path, reg: ModelRegistry) -> None:
    with pytest.raises(ConfigurationError, match="cannot read"):
        reg.load_file(tmp_path / "missing.toml")
    yaml = tmp_path / "models.yaml"
    yaml.write_text("openai: {}")
    with pytest.raises(ConfigurationError, match=r"\.toml or \.json"):
        reg.load_file(yaml)


# --- the default instance ---------------------------------------------------------------


def test_default_registry_loads_env_file_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, default_registry: None
) -> None:
    path = tmp_path / "models.toml"
    path.write_text('[openai."gpt-4o"]\nrpm = 1234\n')
    monkeypatch.setenv(MODELS_FILE_ENV, str(path))
    calls: list[object] = []
    original = ModelRegistry.load_file

    def spy(self: ModelRegistry, p: object) -> None:
        calls.append(p)
        original(self, p)  # type: ignore[arg-type]

    monkeypatch.setattr(ModelRegistry, "load_file", spy)
    first = get_registry()
    assert first.get("openai", "gpt-4o").rpm == 1234
    path.write_text('[openai."gpt-4o"]\nrpm = 99\n')
    assert get_registry() is first
    assert first.get("openai", "gpt-4o").rpm == 1234
    assert len(calls) == 1


def test_default_registry_without_env_file(default_registry: None) -> None:
    assert get_registry().get("openai", "gpt-4o").rpm == 500


def test_default_registry_missing_env_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, default_registry: None
) -> None:
    monkeypatch.setenv(MODELS_FILE_ENV, str(tmp_path / "nope.toml"))
    with pytest.raises(ConfigurationError, match=MODELS_FILE_ENV):
        get_registry()
    assert registry_module._default is None


def test_module_level_register_local_provider(default_registry: None) -> None:
    register_local_provider("my-llm-box")
    assert get_registry().get("my-llm-box", "anything") == LOCAL_DEFAULT_LIMITS
