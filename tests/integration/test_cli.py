"""``ai-agents agents|threads|chat`` as a user runs them: subprocesses reading stdin.

The model is the strict fake Ollama server (real HTTP on loopback); the database and
Redis are the test's own. The tool lives in a module the CLI imports through
``AI_AGENTS_TOOL_MODULES``, as in a deployment.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ai_agents import AgentStore, Settings
from tests.fakes.ollama_fake import FakeOllama
from tests.fakes.server import serve

ROOT = Path(__file__).resolve().parents[2]
MODEL = "tiny-test"  # unknown to the registry: prompted (XML) tool calling

TOOL_MODULE = '''
from ai_agents import tool


@tool
def room_temperature(room: str) -> str:
    """The temperature of a room.

    Args:
        room: the room's name
    """
    return f"21 C in the {room}"
'''


@pytest.fixture
def fake() -> Iterator[tuple[FakeOllama, str]]:
    app = FakeOllama(models=[MODEL], tool_models=[])
    with serve(app) as url:
        yield app, url


@pytest.fixture
def cli_env(
    settings: Settings, fake: tuple[FakeOllama, str], tmp_path: Path, redis_cleanup: None
) -> dict[str, str]:
    (tmp_path / "cli_test_tools.py").write_text(TOOL_MODULE)
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"OPENAI_API_KEY", "ANTHROPIC_API_KEY", "AI_AGENTS_PROVIDERS", "DATABASE_URL"}
    }
    env.update(
        {
            "AI_AGENTS_DATABASE_URL": str(settings.database_url),
            "AI_AGENTS_REDIS_URL": str(settings.redis_url),
            "AI_AGENTS_REDIS_PREFIX": settings.redis_prefix,
            "AI_AGENTS_HOME": str(tmp_path / "home"),  # must stay unused (URLs are set)
            "OLLAMA_HOST": fake[1],
            "AI_AGENTS_TOOL_MODULES": "cli_test_tools",
            "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]),
        }
    )
    return env


def cli(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "ai_agents", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    return proc


def json_lines(text: str) -> list[dict[str, Any]]:
    """``--json`` output: one object a line (nothing else on stdout)."""
    return [json.loads(line) for line in text.splitlines()]


def create_agent(env: dict[str, str], *extra: str) -> str:
    proc = cli(
        env,
        "agents",
        "create",
        "--name",
        "Concierge",
        "--role",
        "You answer questions about the house.",
        "--provider",
        "ollama",
        "--model",
        MODEL,
        *extra,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


async def test_agents_create_and_list(cli_env: dict[str, str], store: AgentStore) -> None:
    agent_id = create_agent(cli_env, "--tool", "room_temperature", "--constraint", "Be brief")
    record = await store.get_agent(agent_id)  # printed id is the stored agent
    assert (record.provider, record.model) == ("ollama", MODEL)
    assert record.definition.tools == ["room_temperature"]
    assert record.definition.constraints == ["Be brief"]

    listing = cli(cli_env, "agents", "list")
    assert listing.returncode == 0, listing.stderr
    row = next(line for line in listing.stdout.splitlines() if line.startswith(agent_id))
    assert f"ollama/{MODEL}" in row and row.endswith("Concierge")

    as_json = json_lines(cli(cli_env, "agents", "list", "--json").stdout)
    assert [a["id"] for a in as_json] == [agent_id]
    assert as_json[0]["tools"] == ["room_temperature"]


def test_agents_create_with_an_unknown_tool_fails_clearly(cli_env: dict[str, str]) -> None:
    proc = cli(
        cli_env,
        *("agents", "create", "--name", "X", "--role", "Y", "--provider", "ollama"),
        *("--model", MODEL, "--tool", "no_such_tool"),
    )
    assert proc.returncode == 1
    assert "no_such_tool" in proc.stderr
    assert proc.stdout == ""


async def test_chat_streams_answers_shows_tool_calls_and_persists(
    cli_env: dict[str, str], fake: tuple[FakeOllama, str], store: AgentStore
) -> None:
    app, _url = fake
    agent_id = create_agent(cli_env, "--tool", "room_temperature")
    app.reply_xml_tool_call("room_temperature", {"room": "kitchen"}, prose="Let me check.")
    app.reply_text("It is 21 C in the kitchen.")
    # Second line: the fake echoes the last user message when nothing is scripted.
    proc = cli(
        cli_env,
        *("chat", "--agent", agent_id, "--user", "guest_7"),
        stdin="How warm is the kitchen?\n\nThanks!\n/quit\nthis line is never sent\n",
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.startswith("== thread ")
    assert f"Concierge (ollama/{MODEL})" in out.splitlines()[0]
    assert "you> How warm is the kitchen?" in out
    assert "Let me check." in out
    assert "[calls room_temperature({'room': 'kitchen'})]" in out
    assert "[tool result: 21 C in the kitchen]" in out
    assert "It is 21 C in the kitchen." in out
    assert "echo: Thanks!" in out
    assert "never sent" not in out
    assert "<tool_call>" not in out  # the XML is held back from the stream
    assert len(app.requests) == 3  # tool call, answer after the result, echo

    thread_id = out.splitlines()[0].split()[2]
    thread = await store.get_thread(thread_id)
    assert thread.user_id == "guest_7"
    messages = (await store.list_messages(thread_id)).items
    assert [m.role for m in messages] == [
        "user",
        "assistant",
        "tool",
        "assistant",
        "user",
        "assistant",
    ]
    assert messages[2].text == "21 C in the kitchen"

    # threads list shows it; chat --thread continues it and stops at end of input.
    listing = cli(cli_env, "threads", "list", "--agent", agent_id)
    assert listing.returncode == 0, listing.stderr
    row = next(line for line in listing.stdout.splitlines() if line.startswith(thread_id))
    assert "guest_7" in row and " 6 " in row
    again = cli(cli_env, "chat", "--thread", thread_id, stdin="One more question\n")
    assert again.returncode == 0, again.stderr
    assert "echo: One more question" in again.stdout
    assert again.stdout.rstrip().endswith(f"== bye (thread {thread_id})")
    assert (await store.get_thread(thread_id)).message_count == 8
    as_json = json_lines(cli(cli_env, "threads", "list", "--json").stdout)
    assert [(t["id"], t["message_count"]) for t in as_json] == [(thread_id, 8)]


def test_chat_reports_a_provider_error_and_goes_on(
    cli_env: dict[str, str], fake: tuple[FakeOllama, str]
) -> None:
    app, _url = fake
    agent_id = create_agent(cli_env)
    app.reply_error(400, "this request is broken")
    proc = cli(cli_env, "chat", "--agent", agent_id, stdin="first\nsecond\n")
    assert proc.returncode == 0, proc.stderr
    assert "this request is broken" in proc.stderr
    assert "echo: second" in proc.stdout


def test_chat_on_an_unknown_thread_fails_clearly(cli_env: dict[str, str]) -> None:
    proc = cli(cli_env, "chat", "--thread", "00000000-0000-0000-0000-000000000000")
    assert proc.returncode == 1
    assert "thread 00000000-0000-0000-0000-000000000000 not found" in proc.stderr


def test_configured_urls_never_start_embedded_servers(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    proc = cli(cli_env, "threads", "list")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "no threads"
    assert not (tmp_path / "home").exists()
