"""The one settings model: env and file alike, precedence, clear errors, generated docs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ai_agents import settings_reference
from ai_agents.api.config import ApiConfig
from ai_agents.cli import main
from ai_agents.config import Settings
from ai_agents.errors import ConfigurationError
from ai_agents.jobs.queue import QueueConfig
from ai_agents.providers.breaker import BreakerConfig
from ai_agents.providers.factory import ProviderFactory
from ai_agents.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]

#: One sample per former parser: variable, value in the environment, the same in the
#: file (key, TOML text), and how to read the typed result.
SAMPLES = [
    # Settings.from_env
    ("AI_AGENTS_MAX_TOOL_ITERATIONS", "7", "max_tool_iterations = 7"),
    (
        "AI_AGENTS_RATE_LIMIT_TENANT_WEIGHTS",
        "acme=3,beta=2",
        "[rate_limit_tenant_weights]\nacme = 3\nbeta = 2",
    ),
    (
        "AI_AGENTS_ENABLED_PROVIDERS",
        "openai, anthropic",
        'enabled_providers = ["openai", "anthropic"]',
    ),
    ("AI_AGENTS_TENANT_PROVIDERS", '{"*": ["openai"]}', '[tenant_providers]\n"*" = ["openai"]'),
    ("AI_AGENTS_LOCAL_MODEL_DIRS", f"/a{os.pathsep}/b", 'local_model_dirs = ["/a", "/b"]'),
    ("AI_AGENTS_RATE_LIMIT_FAIL_OPEN", "yes", "rate_limit_fail_open = true"),
    # ApiConfig.from_env
    ("AI_AGENTS_API_MAX_BODY_BYTES", "4096", "[api]\nmax_body_bytes = 4096"),
    (
        "AI_AGENTS_API_CORS_ORIGINS",
        "https://a,https://b",
        'api_cors_origins = "https://a,https://b"',
    ),
    # QueueConfig.from_env
    ("AI_AGENTS_JOB_MAX_ATTEMPTS", "8", "[job]\nmax_attempts = 8"),
    ("AI_AGENTS_JOB_WEIGHTS", "5,2,1", "job_weights = [5, 2, 1]"),
    # BreakerConfig.from_sources
    ("AI_AGENTS_BREAKER_RECOVERY_TIMEOUT", "12.5", "[breaker]\nrecovery_timeout = 12.5"),
    # the provider factory
    (
        "AI_AGENTS_PROVIDERS",
        '{"lm": {"base_url": "http://x/v1"}}',
        '[providers.lm]\nbase_url = "http://x/v1"',
    ),
]


def components() -> dict[str, object]:
    """What each former parser now returns, read through its own accessor."""
    core = Settings.from_env()
    api = ApiConfig.from_env()
    queue = QueueConfig.from_env()
    breaker = BreakerConfig.from_sources()
    return {
        "AI_AGENTS_MAX_TOOL_ITERATIONS": core.max_tool_iterations,
        "AI_AGENTS_RATE_LIMIT_TENANT_WEIGHTS": core.rate_limit_tenant_weights,
        "AI_AGENTS_ENABLED_PROVIDERS": core.enabled_providers,
        "AI_AGENTS_TENANT_PROVIDERS": core.tenant_providers,
        "AI_AGENTS_LOCAL_MODEL_DIRS": core.local_model_dirs,
        "AI_AGENTS_RATE_LIMIT_FAIL_OPEN": core.rate_limit_fail_open,
        "AI_AGENTS_API_MAX_BODY_BYTES": api.max_body_bytes,
        "AI_AGENTS_API_CORS_ORIGINS": api.cors_origins,
        "AI_AGENTS_JOB_MAX_ATTEMPTS": queue.max_attempts,
        "AI_AGENTS_JOB_WEIGHTS": queue.weights,
        "AI_AGENTS_BREAKER_RECOVERY_TIMEOUT": breaker.recovery_timeout,
        "AI_AGENTS_PROVIDERS": ProviderFactory(Settings(enabled_providers=("*",))).known("lm"),
    }


EXPECTED = {
    "AI_AGENTS_MAX_TOOL_ITERATIONS": 7,
    "AI_AGENTS_RATE_LIMIT_TENANT_WEIGHTS": {"acme": 3, "beta": 2},
    "AI_AGENTS_ENABLED_PROVIDERS": ("openai", "anthropic"),
    "AI_AGENTS_TENANT_PROVIDERS": {"*": ["openai"]},
    "AI_AGENTS_LOCAL_MODEL_DIRS": ("/a", "/b"),
    "AI_AGENTS_RATE_LIMIT_FAIL_OPEN": True,
    "AI_AGENTS_API_MAX_BODY_BYTES": 4096,
    "AI_AGENTS_API_CORS_ORIGINS": ("https://a", "https://b"),
    "AI_AGENTS_JOB_MAX_ATTEMPTS": 8,
    "AI_AGENTS_JOB_WEIGHTS": (5, 2, 1),
    "AI_AGENTS_BREAKER_RECOVERY_TIMEOUT": 12.5,
    "AI_AGENTS_PROVIDERS": True,
}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No setting from the machine running the tests."""
    for name in list(os.environ):
        if name.startswith("AI_AGENTS_") and not name.startswith("AI_AGENTS_TEST_"):
            monkeypatch.delenv(name)
    for name in ("DATABASE_URL", "REDIS_URL"):
        monkeypatch.delenv(name, raising=False)


def write_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, text: str) -> Path:
    path = tmp_path / "ai_agents.toml"
    path.write_text(text, encoding="utf-8")
    monkeypatch.setenv("AI_AGENTS_CONFIG", str(path))
    return path


@pytest.mark.parametrize(("variable", "env_value", "toml"), SAMPLES, ids=[s[0] for s in SAMPLES])
def test_env_and_file_give_the_same_typed_value(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, variable: str, env_value: str, toml: str
) -> None:
    default = components()[variable]
    assert default != EXPECTED[variable]  # the sample changes something

    with monkeypatch.context() as env:
        env.setenv(variable, env_value)
        from_env = components()[variable]
    write_config(monkeypatch, tmp_path, toml)
    from_file = components()[variable]

    assert from_env == from_file == EXPECTED[variable]
    assert type(from_env) is type(from_file) is type(EXPECTED[variable])


def test_explicit_beats_env_beats_file_beats_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    write_config(monkeypatch, tmp_path, "tool_timeout = 11.0\nredis_prefix = 'file:'\n")
    assert Settings.from_env().tool_timeout == 11.0
    assert Settings.from_env().max_tool_iterations == 10  # default
    monkeypatch.setenv("AI_AGENTS_TOOL_TIMEOUT", "22")
    assert Settings.from_env().tool_timeout == 22.0
    assert Settings.from_env().redis_prefix == "file:"
    assert Settings.from_env(tool_timeout=33.0).tool_timeout == 33.0
    assert Settings.from_env(tool_timeout=None).tool_timeout == 22.0  # None: not given
    monkeypatch.setenv("AI_AGENTS_JOB_VISIBILITY_TIMEOUT", "5")
    assert QueueConfig.from_env().visibility_timeout == 5.0
    assert QueueConfig.from_env(visibility_timeout=9.0).visibility_timeout == 9.0


def test_database_url_falls_back_to_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgres://db/one")
    assert Settings.from_env().database_url == "postgres://db/one"
    monkeypatch.setenv("AI_AGENTS_DATABASE_URL", "postgresql://db/two")
    assert Settings.from_env().database_url == "postgresql://db/two"


def test_settings_built_in_code_read_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AI_AGENTS_DB_POOL_SIZE", "not a number")
    assert Settings(database_url="postgresql://x/y").db_pool_size == 10
    assert ApiConfig().max_json_depth == 32


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (
            "AI_AGENTS_API_MAX_JSON_DEPTH",
            "300",
            "AI_AGENTS_API_MAX_JSON_DEPTH must be <= 256, got 300",
        ),
        ("AI_AGENTS_DB_POOL_SIZE", "ten", "AI_AGENTS_DB_POOL_SIZE must be an integer, got 'ten'"),
        ("AI_AGENTS_JOB_MAX_ATTEMPTS", "0", "AI_AGENTS_JOB_MAX_ATTEMPTS must be >= 1, got 0"),
        (
            "AI_AGENTS_BREAKER_PROBE_TIMEOUT",
            "soon",
            "AI_AGENTS_BREAKER_PROBE_TIMEOUT must be a number, got 'soon'",
        ),
        (
            "AI_AGENTS_API_METRICS_PUBLIC",
            "maybe",
            "AI_AGENTS_API_METRICS_PUBLIC must be a boolean (true/false, 1/0, yes/no, on/off), "
            "got 'maybe'",
        ),
        ("AI_AGENTS_PROVIDERS", "{oops", "AI_AGENTS_PROVIDERS is not valid JSON: "),
        (
            "AI_AGENTS_RATE_LIMIT_TENANT_WEIGHTS",
            "acme",
            "AI_AGENTS_RATE_LIMIT_TENANT_WEIGHTS: 'acme' is not tenant=weight (acme=3,beta=2)",
        ),
    ],
)
def test_a_bad_value_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    assert caught.value.message.startswith(message)
    assert "\n" not in caught.value.message
    # Every accessor validates everything, not only its own part.
    with pytest.raises(ConfigurationError):
        Settings.from_env()


def test_a_secret_is_never_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_settings(api_key_pepper=12345)
    assert "12345" not in caught.value.message
    assert caught.value.message == "argument api_key_pepper must be a string, got ***"


def test_a_bad_file_value_names_the_file_key(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = write_config(monkeypatch, tmp_path, "[api]\nmax_json_depth = 300\n")
    with pytest.raises(ConfigurationError) as caught:
        ApiConfig.from_env()
    assert caught.value.message == f"api.max_json_depth in {path} must be <= 256, got 300"


def test_unknown_file_keys_are_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = write_config(
        monkeypatch, tmp_path, "tool_timeout = 3.0\ntool_timout = 3.0\n[api]\nmax_body = 1\n"
    )
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env()
    assert caught.value.message == f"unknown settings in {path}: api.max_body, tool_timout"


def test_a_setting_given_twice_in_the_file_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    write_config(monkeypatch, tmp_path, "job_max_attempts = 2\n[job]\nmax_attempts = 3\n")
    with pytest.raises(ConfigurationError, match="set the same setting"):
        load_settings()


def test_a_missing_file_is_an_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AI_AGENTS_CONFIG", str(tmp_path / "absent.toml"))
    with pytest.raises(ConfigurationError, match="absent.toml, which does not exist"):
        load_settings()


def test_the_docs_reference_is_generated_from_the_model() -> None:
    doc = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    fresh = settings_reference.splice(doc, settings_reference.render())
    assert doc == fresh, (
        "docs/configuration.md is stale: run "
        "`python -m ai_agents.settings_reference --write docs/configuration.md`"
    )


def test_every_field_is_documented() -> None:
    from ai_agents.settings import AgentsSettings

    undocumented = [n for n, f in AgentsSettings.model_fields.items() if not f.description]
    assert undocumented == []


@pytest.mark.parametrize(
    ("argv", "variable", "value", "line"),
    [
        (
            ["migrate"],
            "AI_AGENTS_DB_POOL_SIZE",
            "ten",
            "error: AI_AGENTS_DB_POOL_SIZE must be an integer, got 'ten'",
        ),
        (
            ["serve"],
            "AI_AGENTS_API_MAX_JSON_DEPTH",
            "300",
            "error: AI_AGENTS_API_MAX_JSON_DEPTH must be <= 256, got 300",
        ),
        (
            ["worker", "--burst"],
            "AI_AGENTS_JOB_WEIGHTS",
            "6,3",
            "error: AI_AGENTS_JOB_WEIGHTS must be three integers >= 1 (high,normal,low), "
            "like 6,3,1",
        ),
        (
            ["keys", "list"],
            "AI_AGENTS_BREAKER_FAILURE_THRESHOLD",
            "0",
            "error: AI_AGENTS_BREAKER_FAILURE_THRESHOLD must be >= 1, got 0",
        ),
    ],
)
def test_commands_fail_at_start_with_one_line(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    argv: list[str],
    variable: str,
    value: str,
    line: str,
) -> None:
    # No embedded server may start: the check comes before any of them (and with the
    # embedded servers off, a command that missed the check fails fast, never serves).
    monkeypatch.setenv("AI_AGENTS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("AI_AGENTS_EMBEDDED", "0")
    monkeypatch.setenv(variable, value)
    assert main(argv) == 1
    assert capsys.readouterr().err == line + "\n"
    assert not (tmp_path / "home").exists()


def test_config_command_shows_effective_settings_with_secrets_masked(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    write_config(monkeypatch, tmp_path, "[job]\nmax_attempts = 4\n")
    monkeypatch.setenv("AI_AGENTS_API_KEY_PEPPER", "pepper-secret")
    monkeypatch.setenv("AI_AGENTS_DATABASE_URL", "postgresql://app:db-secret@db/agents")
    monkeypatch.setenv(
        "AI_AGENTS_PROVIDERS",
        '{"lm": {"base_url": "http://lm/v1", "api_key": "sk-lm-secret",'
        ' "headers": {"Authorization": "Bearer hdr-secret"}}}',
    )
    assert main(["config", "--changed"]) == 0
    out = capsys.readouterr().out
    for secret in ("pepper-secret", "db-secret", "sk-lm-secret", "hdr-secret"):
        assert secret not in out, secret
    assert "http://lm/v1" in out
    assert repr(load_settings()).count("pepper-secret") == 0
    lines = {line.split()[0]: line.split(None, 1)[1] for line in out.splitlines()}
    assert lines["AI_AGENTS_API_KEY_PEPPER"] == "***  [env]"
    assert lines["AI_AGENTS_DATABASE_URL"] == "postgresql://app:***@db/agents  [env]"
    assert lines["AI_AGENTS_JOB_MAX_ATTEMPTS"] == "4  [file (job.max_attempts)]"
    assert "AI_AGENTS_TOOL_TIMEOUT" not in lines  # --changed: defaults left out


def test_tracing_follows_the_otel_setting_from_the_file_too(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from ai_agents.observability import tracing

    assert not tracing.env_enabled()
    write_config(monkeypatch, tmp_path, "otel = true\n")
    assert tracing.env_enabled()
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert not tracing.env_enabled()


def test_another_programs_database_url_breaks_nothing_that_does_not_use_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``DATABASE_URL=sqlite:///app.db`` (a Django or Rails app's) fails only where it
    would be used as ours, with the line naming the problem; URLs given in code win."""
    monkeypatch.setenv("DATABASE_URL", "sqlite:///app.db")
    assert load_settings().tool_timeout == 60.0
    with pytest.raises(ConfigurationError, match=r"^unsupported database URL sqlite://"):
        Settings.from_env()
    given = Settings.from_env(database_url="postgresql://db/ours")
    assert given.database_url == "postgresql://db/ours"
