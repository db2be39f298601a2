"""``ai-agents doctor`` names each missing or unreachable piece precisely."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ai_agents import AgentDefinition, AgentStore, Settings
from ai_agents.commands import Check, render_checks, run_doctor
from ai_agents.providers.catalog import provider_env_vars
from tests.fakes.ollama_fake import FakeOllama
from tests.fakes.server import free_port, serve

ROOT = Path(__file__).resolve().parents[2]
PROVIDER_VARS = (
    *provider_env_vars(),  # every key and URL variable of the provider catalog
    "AI_AGENTS_PROVIDERS",
    "OPENSEARCH_URL",
    "AI_AGENTS_CONFIG",
    "DATABASE_URL",
    "REDIS_URL",
)


@pytest.fixture
def ollama() -> Iterator[str]:
    with serve(FakeOllama()) as url:
        yield url


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in PROVIDER_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AI_AGENTS_HOME", str(tmp_path / "home"))


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


def failures(checks: list[Check]) -> list[str]:
    return [f"{c.name}: {c.detail}" for c in checks if c.status == "FAIL"]


def doctor_cli(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ai_agents", "doctor"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


def test_cli_names_the_bad_database_the_bad_redis_and_the_missing_key(
    tmp_path: Path,
) -> None:
    pg_port, redis_port, acme_port = free_port(), free_port(), free_port()  # all closed
    env = {k: v for k, v in os.environ.items() if k not in PROVIDER_VARS}
    env.update(
        {
            "AI_AGENTS_DATABASE_URL": f"postgresql://app:s3cret@127.0.0.1:{pg_port}/agents",
            "AI_AGENTS_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
            "AI_AGENTS_HOME": str(tmp_path / "home"),
            "AI_AGENTS_PROVIDERS": json.dumps(
                {
                    "acme": {
                        "adapter": "openai",
                        "base_url": f"http://127.0.0.1:{acme_port}/v1",
                        "api_key_env": "ACME_API_KEY",
                    }
                }
            ),
        }
    )
    env.pop("ACME_API_KEY", None)
    proc = doctor_cli(env)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    out = proc.stdout
    lines = out.splitlines()
    db = next(line for line in lines if " database " in line)
    assert db.split()[0] == "FAIL"
    assert f"cannot connect to PostgreSQL at 127.0.0.1:{pg_port}" in db
    assert "s3cret" not in out  # the password is masked
    assert "app:***@" in db
    assert "-> start PostgreSQL there or fix AI_AGENTS_DATABASE_URL" in out
    redis_line = next(line for line in lines if " redis " in line)
    assert redis_line.split()[0] == "FAIL"
    assert f"cannot reach Redis at 127.0.0.1:{redis_port}" in redis_line
    acme = next(line for line in lines if "provider acme" in line)
    assert acme.split()[0] == "FAIL"
    assert "ACME_API_KEY is not set" in acme
    assert f"http://127.0.0.1:{acme_port}/v1 does not answer (ConnectError" in acme
    assert "problem(s) found" in out
    assert not (tmp_path / "home").exists()  # doctor starts nothing


async def test_agents_whose_provider_key_is_missing_are_named(
    store: AgentStore, settings: Settings, clean_env: None, ollama: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    definition = AgentDefinition(name="Writer", role="You write.")
    await store.create_agent(definition, provider="openai", model="gpt-4o-mini")
    await store.create_agent(definition, provider="openai", model="gpt-4o-mini")
    await store.create_agent(definition, provider="anthropic", model="claude-haiku-4-5")
    monkeypatch.setenv("AI_AGENTS_DATABASE_URL", str(settings.database_url))
    monkeypatch.setenv("AI_AGENTS_REDIS_URL", str(settings.redis_url))
    monkeypatch.setenv("OLLAMA_HOST", ollama)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")

    checks = await run_doctor()

    named = by_name(checks)
    assert named["database"].status == "ok"
    assert "schema at head" in named["database"].detail
    on_pgvector = os.environ.get("AI_AGENTS_TEST_ON_PGVECTOR")  # tests/conftest.py
    expected = "pgvector 0.8" if on_pgvector else "numpy over REAL[]"
    assert expected in named["document search"].detail
    assert named["redis"].status == "ok"
    assert named["provider anthropic"].status == "ok"
    assert named["provider openai"].status == "info"
    assert named["provider ollama"].status == "ok"
    assert failures(checks) == [
        "agents: 2 active agent(s) use provider 'openai' but OPENAI_API_KEY is not set"
    ]
    assert "-> set OPENAI_API_KEY" in render_checks(checks)

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    assert failures(await run_doctor()) == []


async def test_everything_in_place(
    settings: Settings, clean_env: None, ollama: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AI_AGENTS_DATABASE_URL", str(settings.database_url))
    monkeypatch.setenv("AI_AGENTS_REDIS_URL", str(settings.redis_url))
    monkeypatch.setenv("OLLAMA_HOST", ollama)
    checks = await run_doctor()
    assert failures(checks) == []
    named = by_name(checks)
    assert f"OLLAMA_HOST={ollama}: answers at {ollama}" in named["provider ollama"].detail
    assert "answers PING" in named["redis"].detail
    assert render_checks(checks).endswith("everything needed is in place")


async def test_unreachable_ollama_host_and_unknown_database(
    settings: Settings, clean_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = str(settings.database_url).rsplit("/", 1)[0]
    monkeypatch.setenv("AI_AGENTS_DATABASE_URL", f"{base}/no_such_database_here")
    monkeypatch.setenv("AI_AGENTS_REDIS_URL", str(settings.redis_url))
    port = free_port()
    monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{port}")
    checks = await run_doctor()
    named = by_name(checks)
    assert named["database"].status == "FAIL"
    assert "database 'no_such_database_here' does not exist" in named["database"].detail
    assert named["database"].advice.startswith("create it (createdb no_such_database_here)")
    assert named["provider ollama"].status == "FAIL"
    assert f"OLLAMA_HOST=127.0.0.1:{port} but no Ollama answers at http://127.0.0.1:{port}" in (
        named["provider ollama"].detail
    )


async def test_unmigrated_database_says_run_migrate(
    empty_database_url: str, settings: Settings, clean_env: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("AI_AGENTS_DATABASE_URL", empty_database_url)
    monkeypatch.setenv("AI_AGENTS_REDIS_URL", str(settings.redis_url))
    named = by_name(await run_doctor())
    assert named["schema"].status == "FAIL"
    assert "the schema is not created" in named["schema"].detail
    assert named["schema"].advice == "run `ai-agents migrate`"


async def test_no_urls_reports_the_embedded_servers_without_starting_them(
    clean_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("AI_AGENTS_DATABASE_URL", raising=False)
    monkeypatch.delenv("AI_AGENTS_REDIS_URL", raising=False)
    named = by_name(await run_doctor())
    assert named["database"].status == "ok"
    assert "the embedded PostgreSQL is used (not running, starts on first use" in (
        named["database"].detail
    )
    assert "the embedded Valkey is used" in named["redis"].detail
    assert not (tmp_path / "home" / "postgres").exists()

    monkeypatch.setenv("AI_AGENTS_EMBEDDED", "0")
    named = by_name(await run_doctor())
    assert named["database"].status == "FAIL"
    assert "embedded servers are disabled (AI_AGENTS_EMBEDDED=0)" in named["database"].detail
    assert named["database"].advice.startswith("set AI_AGENTS_DATABASE_URL=")
    assert named["redis"].status == "FAIL"


async def test_a_bad_setting_is_named(clean_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AI_AGENTS_DB_POOL_SIZE", "ten")
    checks = await run_doctor()
    assert failures(checks) == [
        "configuration: AI_AGENTS_DB_POOL_SIZE must be an integer, got 'ten'"
    ]
