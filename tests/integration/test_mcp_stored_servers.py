"""MCP servers saved on an agent reach its runs (store -> table -> tool source -> model).

The run-time tool source reads an agent's servers through a per-process cache keyed by
the agent's ``updated_at``; adding or removing a server touches the agent, so the next
run sees the change, and runs of an unchanged agent read no table.
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import replace

import pytest
from cryptography.fernet import Fernet

from ai_agents import AgentDefinition, AgentStore
from ai_agents.config import Settings
from ai_agents.errors import StorageError
from ai_agents.mcp import storage as mcp_storage
from tests.integration.test_mcp_client import Model, tool_call


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return replace(
        settings,
        mcp_stdio_commands={
            "time": [sys.executable, "-m", "mcp_server_time", "--local-timezone", "UTC"]
        },
        mcp_call_timeout=10.0,
    )


async def test_adding_and_removing_a_server_changes_the_next_run(
    store: AgentStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads = 0
    real_load = mcp_storage.load_mcp_servers

    async def counting_load(*args: object, **kwargs: object) -> object:
        nonlocal loads
        loads += 1
        return await real_load(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(mcp_storage, "load_mcp_servers", counting_load)
    model = Model()
    store.register_provider("scripted", model.provider)
    agent_id = await store.create_agent(
        AgentDefinition(name="Clock", role="You tell the time."), provider="scripted", model="m"
    )
    thread_id = await store.create_thread(agent_id, user_id="u1")

    await store.run(thread_id, "hello")
    await store.run(thread_id, "hello again")
    assert loads == 1  # the second run of the unchanged agent read no table
    assert not any(name.startswith("time__") for name in model.offered[-1])

    server = await store.add_mcp_server(agent_id, name="time", transport="stdio", command="time")
    model.plan(tool_call("time__get_current_time", timezone="Asia/Tokyo"))
    response = await store.run(thread_id, "What time is it in Tokyo?")
    assert loads == 2
    assert "time__get_current_time" in model.offered[-2]
    assert response.status == "completed"
    steps = await store.list_run_steps(response.run_id)
    calls = [c for s in steps if s.type == "tool_calls" for c in s.details["tool_calls"]]
    assert json.loads(calls[0]["output"])["timezone"] == "Asia/Tokyo"
    assert '"timezone": "Asia/Tokyo"' in response.content

    await store.remove_mcp_server(agent_id, server.id)
    await store.run(thread_id, "and now?")
    assert loads == 3
    assert not any(name.startswith("time__") for name in model.offered[-1])


async def test_unreadable_secrets_give_no_mcp_tools_but_a_database_failure_fails_the_run(
    settings: Settings,
    redis_cleanup: None,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    key = Fernet.generate_key().decode()
    mcp = replace(settings, mcp_allowed_hosts=("93.184.215.14",), mcp_secret_key=key)
    async with AgentStore(settings=mcp) as store:
        store.register_provider("scripted", Model().provider)
        agent_id = await store.create_agent(
            AgentDefinition(name="Clock", role="r"), provider="scripted", model="m"
        )
        await store.add_mcp_server(
            agent_id, name="s", transport="sse", url="https://93.184.215.14/sse", bearer_token="t"
        )
    replaced = replace(mcp, mcp_secret_key=Fernet.generate_key().decode())
    async with AgentStore(settings=replaced) as store:
        model = Model()
        store.register_provider("scripted", model.provider)
        thread_id = await store.create_thread(agent_id, user_id="u1")
        with caplog.at_level(logging.WARNING, logger="ai_agents.mcp"):
            response = await store.run(thread_id, "hello")
        assert response.status == "completed"
        assert "gets no MCP tools this run" in caplog.text and "do not decrypt" in caplog.text

        async def database_down(*args: object, **kwargs: object) -> object:
            raise StorageError("load MCP servers: the database is unreachable")

        monkeypatch.setattr(mcp_storage, "load_mcp_servers", database_down)
        store._shared.mcp_servers = mcp_storage.ServerCache()  # nothing cached
        with pytest.raises(StorageError, match="unreachable"):
            await store.run(thread_id, "again")
        assert len((await store.list_messages(thread_id)).items) == 2  # no half turn
