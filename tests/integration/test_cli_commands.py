"""Issue 15, item 4 "One CLI": ``agents show|update|delete``, ``threads show|export``,
``run``, ``usage``, ``jobs``, ``--tenant``, and no tracebacks for expected failures.

Each command runs as a user runs it (a subprocess) on the test's database and Redis;
the model is the strict fake Ollama server.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from ai_agents import AgentStore
from ai_agents.errors import NotFoundError
from tests.fakes.ollama_fake import FakeOllama
from tests.fakes.server import free_port
from tests.integration import test_cli
from tests.integration.test_cli import MODEL, ROOT, cli, create_agent, json_lines

cli_env = test_cli.cli_env  # the fixtures: env of the CLI, fake Ollama server
fake = test_cli.fake

Env = dict[str, str]


def one_json(proc: subprocess.CompletedProcess[str]) -> dict[str, object]:
    assert proc.returncode == 0, proc.stderr
    [line] = json_lines(proc.stdout)  # --json of a single object: exactly one line
    return line


async def test_agents_show_update_and_delete(cli_env: Env, store: AgentStore) -> None:
    agent_id = create_agent(cli_env, "--temperature", "0.5")

    shown = cli(cli_env, "agents", "show", agent_id)
    assert shown.returncode == 0, shown.stderr
    assert f"id:          {agent_id}" in shown.stdout
    assert f"model:       ollama/{MODEL}" in shown.stdout
    assert "settings:    temperature=0.5" in shown.stdout
    as_json = one_json(cli(cli_env, "agents", "show", agent_id, "--json"))
    assert as_json["id"] == agent_id and as_json["name"] == "Concierge"

    updated = one_json(
        cli(
            cli_env,
            *("agents", "update", agent_id, "--name", "Butler", "--max-output-tokens", "700"),
            *("--constraint", "Be brief", "--json"),
        )
    )
    assert updated["name"] == "Butler"
    assert updated["settings"] == {"temperature": 0.5, "max_output_tokens": 700}
    record = await store.get_agent(agent_id)
    assert record.definition.constraints == ["Be brief"]
    cleared = cli(cli_env, "agents", "update", agent_id, "--clear-setting", "max_output_tokens")
    assert cleared.returncode == 0, cleared.stderr
    assert (await store.get_agent(agent_id)).settings == {"temperature": 0.5}
    nothing = cli(cli_env, "agents", "update", agent_id)
    assert (nothing.returncode, nothing.stderr) == (
        1,
        "error: nothing to change: give at least one option (see --help)\n",
    )

    thread_id = await store.create_thread(agent_id)
    deactivated = cli(cli_env, "agents", "delete", agent_id)
    assert deactivated.returncode == 0, deactivated.stderr
    assert not (await store.get_agent(agent_id)).is_active
    assert json_lines(cli(cli_env, "agents", "list", "--json").stdout) == []
    assert [
        a["id"] for a in json_lines(cli(cli_env, "agents", "list", "--all", "--json").stdout)
    ] == [agent_id]

    unconfirmed = cli(cli_env, "agents", "delete", agent_id, "--purge")
    assert unconfirmed.returncode == 1
    assert "add --yes to confirm" in unconfirmed.stderr
    await store.get_thread(thread_id)  # still there
    purged = one_json(cli(cli_env, "agents", "delete", agent_id, "--purge", "--yes", "--json"))
    assert purged == {"id": agent_id, "deleted": True}
    with pytest.raises(NotFoundError):
        await store.get_agent(agent_id)
    with pytest.raises(NotFoundError):
        await store.get_thread(thread_id)


async def test_agents_create_without_provider_sets_no_demo_settings(
    cli_env: Env, store: AgentStore
) -> None:
    """The demo's ``max_output_tokens: 96`` (for a quick local demo) cut every answer of
    an agent created without ``--provider``."""
    env = {k: v for k, v in cli_env.items() if k != "OLLAMA_HOST"}  # the local model then
    env["HF_HUB_OFFLINE"] = "1"
    made = one_json(cli(env, "agents", "create", "--name", "N", "--role", "R", "--json"))
    assert made["provider"] == "local"
    assert made["settings"] == {}
    assert (await store.get_agent(str(made["id"]))).settings == {}


async def test_run_threads_show_export_and_usage(
    cli_env: Env, fake: tuple[FakeOllama, str], store: AgentStore
) -> None:
    app, _url = fake
    agent_id = create_agent(cli_env, "--tool", "room_temperature")
    app.reply_xml_tool_call("room_temperature", {"room": "hall"}, prose="")
    app.reply_text("It is 21 C in the hall.")
    first = cli(cli_env, "run", "--agent", agent_id, "--user", "u1", "How warm is the hall?")
    assert first.returncode == 0, first.stderr
    assert first.stdout == "It is 21 C in the hall.\n"  # the answer and nothing else
    assert "[calls room_temperature({'room': 'hall'})]" in first.stderr
    thread_id = first.stderr.strip().splitlines()[-1].removeprefix("thread: ")
    thread = await store.get_thread(thread_id)
    assert (str(thread.agent_id), thread.user_id) == (agent_id, "u1")

    # --thread continues it; the text may come on stdin; --json is the result object
    second = one_json(cli(cli_env, "run", "--thread", thread_id, "--json", stdin="Thanks!\n"))
    assert second["thread_id"] == thread_id
    assert second["content"] == "echo: Thanks!"
    usage = second["usage"]
    assert isinstance(usage, dict) and usage["total_tokens"] > 0

    shown = cli(cli_env, "threads", "show", thread_id)
    assert shown.returncode == 0, shown.stderr
    assert "user> How warm is the hall?" in shown.stdout
    assert "assistant> [calls room_temperature({'room': 'hall'})]" in shown.stdout
    assert "tool> 21 C in the hall" in shown.stdout
    assert shown.stdout.rstrip().endswith("assistant> echo: Thanks!")
    as_json = one_json(cli(cli_env, "threads", "show", thread_id, "--json"))
    messages = as_json["messages"]
    assert isinstance(messages, list)
    roles = ["user", "assistant", "tool", "assistant", "user", "assistant"]
    assert [m["role"] for m in messages] == roles

    exported = cli(cli_env, "threads", "export", thread_id)
    assert exported.returncode == 0, exported.stderr
    lines = json_lines(exported.stdout)
    assert [m["role"] for m in lines] == roles
    assert [m["seq"] for m in lines] == sorted(m["seq"] for m in lines)
    assert lines[1]["tool_calls"][0]["name"] == "room_temperature"
    markdown = cli(cli_env, "threads", "export", thread_id, "--format", "markdown").stdout
    assert markdown.startswith(f"# Thread {thread_id}\n")
    assert "## User\n\nHow warm is the hall?" in markdown
    assert "## Tool result (room_temperature)\n\n```\n21 C in the hall\n```" in markdown
    assert "## Assistant\n\nIt is 21 C in the hall." in markdown

    totals = await store.usage(thread_id=thread_id)
    by_thread = one_json(cli(cli_env, "usage", "--thread", thread_id, "--json"))
    assert by_thread["total_tokens"] == totals.total_tokens > 0
    assert by_thread["messages"] == 6
    by_user = one_json(cli(cli_env, "usage", "--user", "u1", "--json"))
    assert (by_user["user_id"], by_user["total_tokens"]) == ("u1", totals.total_tokens)
    text = cli(cli_env, "usage", "--user", "u1").stdout
    assert f"total tokens:  {totals.total_tokens}" in text


async def test_jobs_list_show_cancel(cli_env: Env, store: AgentStore) -> None:
    agent_id = create_agent(cli_env)
    thread_id = str(await store.create_thread(agent_id))
    job_id = str(await store.enqueue_run(thread_id, "later, please"))

    listed = json_lines(cli(cli_env, "jobs", "list", "--json").stdout)
    assert [(j["id"], j["status"]) for j in listed] == [(job_id, "queued")]
    table = cli(cli_env, "jobs", "list").stdout.splitlines()
    assert table[0].split()[:2] == ["id", "status"]
    assert table[1].startswith(job_id) and "queued" in table[1] and "later, please" in table[1]
    assert json_lines(cli(cli_env, "jobs", "list", "--status", "succeeded", "--json").stdout) == []
    assert one_json(cli(cli_env, "jobs", "show", job_id, "--json"))["input"] == "later, please"

    cancelled = cli(cli_env, "jobs", "cancel", job_id)
    assert cancelled.returncode == 0, cancelled.stderr
    assert re.search(r"^status:\s+cancelled$", cancelled.stdout, re.M), cancelled.stdout
    assert (await store.get_job(job_id)).status == "cancelled"
    found = json_lines(
        cli(
            cli_env, "jobs", "list", "--status", "cancelled", "--thread", thread_id, "--json"
        ).stdout
    )
    assert [j["id"] for j in found] == [job_id]
    missing = cli(cli_env, "jobs", "show", "00000000-0000-0000-0000-000000000000")
    assert missing.returncode == 1
    assert missing.stderr == "error: job 00000000-0000-0000-0000-000000000000 not found\n"


async def test_tenant_flag_scopes_every_command(cli_env: Env, store: AgentStore) -> None:
    theirs = create_agent(cli_env, "--tenant", "acme")
    assert (await store.for_tenant(None).get_agent(theirs)).tenant_id == "acme"
    assert json_lines(cli(cli_env, "agents", "list", "--json").stdout) == []
    acme = json_lines(cli(cli_env, "agents", "list", "--tenant", "acme", "--json").stdout)
    assert [a["id"] for a in acme] == [theirs]
    hidden = cli(cli_env, "agents", "show", theirs)
    assert (hidden.returncode, hidden.stderr) == (1, f"error: agent {theirs} not found\n")

    thread_id = str(await store.for_tenant("acme").create_thread(theirs, user_id="u"))
    job_id = str(await store.for_tenant("acme").enqueue_run(thread_id, "hi"))
    assert json_lines(cli(cli_env, "threads", "list", "--json").stdout) == []
    assert [
        t["id"]
        for t in json_lines(cli(cli_env, "threads", "list", "--tenant", "acme", "--json").stdout)
    ] == [thread_id]
    assert cli(cli_env, "threads", "show", thread_id).returncode == 1
    assert cli(cli_env, "usage", "--thread", thread_id).returncode == 1
    assert (
        one_json(cli(cli_env, "usage", "--thread", thread_id, "--tenant", "acme", "--json"))[
            "messages"
        ]
        == 0
    )
    assert json_lines(cli(cli_env, "jobs", "list", "--json").stdout) == []
    assert (
        one_json(cli(cli_env, "jobs", "show", job_id, "--tenant", "acme", "--json"))["tenant_id"]
        == "acme"
    )
    assert cli(cli_env, "run", "--thread", thread_id, "hello").returncode == 1


async def test_a_reader_that_stops_early_ends_the_command_quietly(
    cli_env: Env, store: AgentStore
) -> None:
    for n in range(3):
        create_agent(cli_env, "--temperature", str(n / 10))
    # `ai-agents agents list --json | head -1`: the reader goes away; here before the
    # first line is written, so the write fails for sure.
    with subprocess.Popen(
        [sys.executable, "-m", "ai_agents", "agents", "list", "--json"],
        env=cli_env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()
        err = proc.stderr.read()
        assert proc.wait(timeout=120) == 0
    assert err == ""

    head = subprocess.run(
        f"{sys.executable} -m ai_agents agents list --json | head -1",
        shell=True,
        env=cli_env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert len(json_lines(head.stdout)) == 1
    assert "Traceback" not in head.stderr and "Error" not in head.stderr


@pytest.mark.parametrize("args", [("migrate",), ("agents", "list")])
def test_an_unreachable_database_is_one_line(cli_env: Env, args: tuple[str, ...]) -> None:
    port = free_port()  # nothing listens there
    env = {**cli_env, "AI_AGENTS_DATABASE_URL": f"postgresql://app:s3cret@127.0.0.1:{port}/app"}
    proc = cli(env, *args)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and "s3cret" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if not line[:4].isdigit()]  # no log lines
    assert len(errors) == 1, proc.stderr
    assert errors[0].startswith(
        f"error: cannot connect to PostgreSQL at postgresql://app:***@127.0.0.1:{port}/app: "
    )
    assert "AI_AGENTS_DATABASE_URL" in errors[0]
    assert proc.stdout == ""


def test_an_unreachable_redis_is_one_line(cli_env: Env) -> None:
    port = free_port()
    env = {**cli_env, "AI_AGENTS_REDIS_URL": f"redis://:s3cret@127.0.0.1:{port}/0"}
    proc = cli(env, "worker", "--burst")
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and "s3cret" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if not line[:4].isdigit()]
    assert len(errors) == 1, proc.stderr
    assert errors[0].startswith(
        f"error: cannot connect to Redis at redis://:***@127.0.0.1:{port}/0: "
    )
    assert "AI_AGENTS_REDIS_URL" in errors[0]
