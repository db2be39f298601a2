"""The main job (``ai-agents demo``) runs end to end on the real services."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest

from ai_agents import AgentStore
from ai_agents.demo import run_demo


async def test_demo_runs_and_persists(store: AgentStore, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OLLAMA_HOST"):
        monkeypatch.delenv(var, raising=False)
    out = io.StringIO()
    ids = await run_demo(store, out)
    text = out.getvalue()
    assert "[calls get_property_info({'topic': 'checkout'})]" in text
    assert "Check-out is at 11:00" in text
    assert "== persisted history" in text
    assert "#4 assistant According to the property handbook" in text
    assert "You are Ada Lovelace." in text
    thread = await store.get_thread(ids["thread_id"])
    assert thread.message_count == 8
    usage = await store.usage(thread_id=ids["thread_id"])
    assert usage.input_tokens > 0


def test_demo_command(settings: object, redis_cleanup: None) -> None:
    env = {
        **os.environ,
        "AI_AGENTS_DATABASE_URL": settings.database_url,  # type: ignore[attr-defined]
        "AI_AGENTS_REDIS_URL": settings.redis_url,  # type: ignore[attr-defined]
        "AI_AGENTS_REDIS_PREFIX": settings.redis_prefix,  # type: ignore[attr-defined]
    }
    for var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OLLAMA_HOST"):
        env.pop(var, None)
    proc = subprocess.run(
        [sys.executable, "-m", "ai_agents", "demo"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr
    assert "== persisted history (from PostgreSQL)" in proc.stdout
    assert "== usage:" in proc.stdout
