"""Issue 17 item 3: our agents as an MCP server, driven by the official MCP client.

(a) stdio: ``ai-agents mcp`` as a subprocess (the way Claude Desktop or an IDE runs it),
    tenant from an API key; (b) Streamable HTTP: ``/mcp`` of the API served on a loopback
    port, with the REST API's keys; (c) tenant scoping: another tenant's key sees no
    agent, and tenant A's thread is "not found" for it; a bad key is a 401.

The model is the strict fake OpenAI server (real HTTP); PostgreSQL and Redis are real.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import Client, ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from ai_agents import AgentStore, Settings
from ai_agents.api.config import ApiConfig
from ai_agents.api.keys import KeyStore
from ai_agents.api.testing import RunningApi, running_api
from ai_agents.definition import AgentDefinition
from ai_agents.mcp.server import create_server
from ai_agents.rag.embedders import embedder_from_spec
from ai_agents.rag.setup import enable_documents
from ai_agents.testing import FunctionProvider
from ai_agents.tools.decorator import tool
from ai_agents.tools.registry import ToolRegistry
from tests.fakes.openai_fake import OpenAIFake
from tests.fakes.script import Reply, call
from tests.fakes.server import serve
from tests.integration.test_cli import TOOL_MODULE  # the room_temperature tool, as a module

ROOT = Path(__file__).resolve().parents[2]
MODEL = "gpt-5.2"
OPENAI_KEY = "sk-mcp-test"
TOOLS = {"list_agents", "create_thread", "run_turn", "read_messages", "search_documents"}


def room_tools() -> ToolRegistry:
    registry = ToolRegistry()

    @tool(registry=registry)
    def room_temperature(room: str) -> str:
        """The temperature of a room.

        Args:
            room: the room's name
        """
        return f"21 C in the {room}"

    return registry


@pytest.fixture
def openai_fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[OpenAIFake, str]]:
    fake = OpenAIFake(api_key=OPENAI_KEY)
    with serve(fake) as url:
        monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
        monkeypatch.setenv("OPENAI_BASE_URL", f"{url}/v1")
        yield fake, url


async def _agent(store: AgentStore, tenant: str, name: str) -> str:
    definition = AgentDefinition(
        name=name, role="You answer questions about the house.", tools=["room_temperature"]
    )
    agent_id = await store.for_tenant(tenant).create_agent(
        definition, provider="openai", model=MODEL
    )
    return str(agent_id)


def _data(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content
    if result.structured_content is not None:
        data = result.structured_content
        return data.get("result", data) if set(data) == {"result"} else data  # type: ignore[no-any-return]
    return json.loads(result.content[0].text)  # type: ignore[no-any-return]


def _error(result: Any) -> str:
    assert result.is_error, result
    return " ".join(c.text for c in result.content)


class Progress:
    def __init__(self) -> None:
        self.messages: list[str] = []

    async def __call__(self, progress: float, total: float | None, message: str | None) -> None:
        self.messages.append(message or "")


async def full_flow(session: ClientSession, fake: OpenAIFake, agent_id: str) -> str:
    """List tools and agents, open a thread, run a turn with a tool call (progress
    notifications received), read the turn back. Returns the thread id."""
    tools = await session.list_tools()
    assert {t.name for t in tools.tools} == TOOLS

    listed = _data(await session.call_tool("list_agents", {}))
    assert [a["id"] for a in listed["agents"]] == [agent_id]
    assert listed["agents"][0]["model"] == MODEL

    created = _data(
        await session.call_tool("create_thread", {"agent_id": agent_id, "user_id": "u1"})
    )
    thread_id = created["thread_id"]

    fake.push(
        Reply.tool_calls(call("room_temperature", {"room": "kitchen"})),
        Reply.text("It is 21 C in the kitchen."),
    )
    progress = Progress()
    turn = _data(
        await session.call_tool(
            "run_turn",
            {"thread_id": thread_id, "text": "How warm is the kitchen?"},
            progress_callback=progress,
        )
    )
    assert turn["answer"] == "It is 21 C in the kitchen."
    assert turn["status"] == "completed" and turn["run_id"]
    assert [c["name"] for c in turn["tool_calls"]] == ["room_temperature"]
    assert progress.messages[0] == f"run {turn['run_id']} started"
    assert "calling tool room_temperature" in progress.messages
    assert "tool room_temperature returned" in progress.messages
    assert any(m.startswith("streaming: ") for m in progress.messages)
    assert progress.messages[-1] == f"run {turn['run_id']} completed"
    # The model really got the tool's result (the fake checks the wire format).
    assert fake.requests[-1]["messages"][-1]["content"] == "21 C in the kitchen"

    read = _data(await session.call_tool("read_messages", {"thread_id": thread_id}))
    roles = [m["role"] for m in read["messages"]]
    assert roles == ["user", "assistant", "tool", "assistant"]
    assert read["messages"][0]["content"] == "How warm is the kitchen?"
    assert read["messages"][-1]["content"] == "It is 21 C in the kitchen."
    last = _data(await session.call_tool("read_messages", {"thread_id": thread_id, "limit": 1}))
    assert [m["role"] for m in last["messages"]] == ["assistant"]

    # No document index configured: a clear tool error.
    assert "not configured" in _error(
        await session.call_tool("search_documents", {"query": "checkout time"})
    )
    # Bad input: tool errors with clear text, not crashes.
    assert "malformed thread id" in _error(
        await session.call_tool("read_messages", {"thread_id": "not-a-uuid"})
    )
    missing = "00000000-0000-4000-8000-000000000000"
    assert "not found" in _error(await session.call_tool("read_messages", {"thread_id": missing}))
    return str(thread_id)


async def outsider_sees_nothing(
    session: ClientSession,
    fake: OpenAIFake,
    agent_id: str,
    thread_id: str,
    *,
    agents: list[str] | None = None,
) -> None:
    """A session of another tenant: only its own agents (default none), and tenant A's
    ids are not found."""
    requests = len(fake.requests)
    listed = _data(await session.call_tool("list_agents", {}))["agents"]
    assert [a["name"] for a in listed] == (agents or [])
    missing = f"thread {thread_id} not found"
    assert missing in _error(await session.call_tool("read_messages", {"thread_id": thread_id}))
    assert missing in _error(
        await session.call_tool("run_turn", {"thread_id": thread_id, "text": "hi"})
    )
    assert f"agent {agent_id} not found" in _error(
        await session.call_tool("create_thread", {"agent_id": agent_id})
    )
    assert len(fake.requests) == requests  # no model call was made for the outsider


# --- (a) stdio -------------------------------------------------------------------------


@pytest.fixture
def cli_env(
    settings: Settings, openai_fake: tuple[OpenAIFake, str], tmp_path: Path, redis_cleanup: None
) -> dict[str, str]:
    (tmp_path / "mcp_test_tools.py").write_text(TOOL_MODULE)
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in {"ANTHROPIC_API_KEY", "AI_AGENTS_PROVIDERS", "DATABASE_URL", "AI_AGENTS_API_KEY"}
    }
    env.update(
        {
            "AI_AGENTS_DATABASE_URL": str(settings.database_url),
            "AI_AGENTS_REDIS_URL": str(settings.redis_url),
            "AI_AGENTS_REDIS_PREFIX": settings.redis_prefix,
            "AI_AGENTS_HOME": str(tmp_path / "home"),  # must stay unused (URLs are set)
            "OPENAI_API_KEY": OPENAI_KEY,
            "OPENAI_BASE_URL": f"{openai_fake[1]}/v1",
            "AI_AGENTS_TOOL_MODULES": "mcp_test_tools",
            "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]),
        }
    )
    return env


@asynccontextmanager
async def stdio_session(env: dict[str, str], *args: str) -> AsyncIterator[ClientSession]:
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "ai_agents", "mcp", *args], env=env, cwd=ROOT
    )
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        yield session


async def test_stdio_server_runs_a_turn_for_the_api_keys_tenant(
    cli_env: dict[str, str], openai_fake: tuple[OpenAIFake, str], store: AgentStore
) -> None:
    fake, _url = openai_fake
    store.use_tools(room_tools())  # the subprocess imports the same tool by module
    agent_id = await _agent(store, "tenant-a", "Concierge")
    await _agent(store, "tenant-b", "Other")  # must never be listed for tenant-a
    keys = KeyStore(store)
    key_a = (await keys.create(tenant_id="tenant-a", name="mcp")).secret
    key_b = (await keys.create(tenant_id="tenant-b", name="mcp")).secret
    env_a = {**cli_env, "AI_AGENTS_API_KEY": key_a}

    async with stdio_session(env_a) as session:
        thread_id = await full_flow(session, fake, agent_id)

    # (c) tenant-b's key over stdio: sees none of tenant-a.
    async with stdio_session(cli_env, "--api-key", key_b) as session:
        await outsider_sees_nothing(session, fake, agent_id, thread_id, agents=["Other"])

    # A key revoked during a session stops its tools (checked on every call).
    env_revocable = {**env_a, "AI_AGENTS_API_KEY_CACHE_TTL": "0"}
    async with stdio_session(env_revocable) as session:
        assert _data(await session.call_tool("list_agents", {}))["agents"]
        await keys.revoke((await keys.list_keys(tenant_id="tenant-a"))[0].id)
        assert "revoked" in _error(await session.call_tool("list_agents", {}))

    # --tenant without a key: that tenant's agents.
    async with stdio_session(cli_env, "--tenant", "tenant-a") as session:
        listed = _data(await session.call_tool("list_agents", {}))
        assert [a["id"] for a in listed["agents"]] == [agent_id]


def test_stdio_server_refuses_a_bad_key(cli_env: dict[str, str]) -> None:
    import subprocess

    proc = subprocess.run(
        [sys.executable, "-m", "ai_agents", "mcp", "--api-key", "aak_not-a-real-key"],
        env=cli_env,
        input="",
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert proc.returncode == 1
    assert "invalid or revoked API key" in proc.stderr
    assert proc.stdout == ""  # stdout is the protocol: nothing else goes there


# --- (b) Streamable HTTP on the API ------------------------------------------------------


@pytest.fixture
def api(
    settings: Settings, redis_cleanup: None, openai_fake: tuple[OpenAIFake, str]
) -> Iterator[RunningApi]:
    with running_api(settings, tools=room_tools(), config=ApiConfig()) as running:
        yield running


@asynccontextmanager
async def http_session(api: RunningApi, secret: str) -> AsyncIterator[ClientSession]:
    client = create_mcp_http_client(headers={"Authorization": f"Bearer {secret}"})
    async with (
        client,
        streamable_http_client(f"{api.url}/mcp", http_client=client) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


async def test_http_endpoint_runs_a_turn_and_scopes_every_session_to_its_key(
    api: RunningApi, openai_fake: tuple[OpenAIFake, str]
) -> None:
    fake, _url = openai_fake
    agent_id = api.call(_agent(api.store, "tenant-a", "Concierge"))
    key_a = api.create_key("tenant-a")
    key_b = api.create_key("tenant-b")

    async with http_session(api, key_a) as session:
        thread_id = await full_flow(session, fake, agent_id)

    async with http_session(api, key_b) as session:
        await outsider_sees_nothing(session, fake, agent_id, thread_id)

    # An admin key acts for its own tenant only on /mcp.
    admin = api.create_key("tenant-admin", admin=True)
    async with http_session(api, admin) as session:
        assert _data(await session.call_tool("list_agents", {}))["agents"] == []


async def test_http_endpoint_needs_a_valid_key(api: RunningApi) -> None:
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"},
        },
    }
    accept = {"Accept": "application/json, text/event-stream"}
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as client:
        for headers in ({}, {"Authorization": "Bearer aak_wrong"}, {"Authorization": "Basic x"}):
            r = await client.post("/mcp", json=init, headers={**accept, **headers})
            assert r.status_code == 401, r.text
            assert r.json()["code"] == "unauthorized"
        ok = await client.post(
            "/mcp",
            json=init,
            headers={**accept, "Authorization": f"Bearer {api.create_key('tenant-a')}"},
        )
        assert ok.status_code == 200, ok.text
        session_id = ok.headers["mcp-session-id"]
        # The session belongs to the key that opened it: another key (even a valid
        # one) gets 404, as for a session that does not exist.
        other = await client.post(
            "/mcp",
            json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
            headers={
                **accept,
                "Authorization": f"Bearer {api.create_key('tenant-b')}",
                "mcp-session-id": session_id,
                "mcp-protocol-version": "2025-06-18",
            },
        )
        assert other.status_code == 404, other.text


# --- search_documents over a configured index --------------------------------------------


async def test_search_documents_searches_only_the_sessions_tenant(store: AgentStore) -> None:
    store.use_tools(ToolRegistry())
    service = enable_documents(store, embedder=embedder_from_spec("hashing"))
    await service.ingestor.ingest_text(
        "Owner notes: the master key is in safe 12.",
        source="owner-notes.txt",
        tenant_id="tenant-a",
        entity_id="villa-a",
    )
    await service.ingestor.ingest_text(
        "Checkout is at 11 am; leave the master key on the table.",
        source="guide.txt",
        tenant_id="tenant-b",
    )
    async with Client(create_server(store, "tenant-a")) as client:
        found = _data(await client.call_tool("search_documents", {"query": "master key safe"}))
        assert [r["source"] for r in found["results"]] == ["owner-notes.txt"]
        scoped = _data(
            await client.call_tool(
                "search_documents", {"query": "master key", "entity_id": "villa-a"}
            )
        )
        assert [r["source"] for r in scoped["results"]] == ["owner-notes.txt"]
    async with Client(create_server(store, "tenant-b")) as client:
        for args in ({"query": "master key safe"}, {"query": "safe", "entity_id": "villa-a"}):
            found = _data(await client.call_tool("search_documents", args))
            assert "owner-notes.txt" not in [r["source"] for r in found["results"]]


async def test_deactivated_agents_and_turns_without_progress_token(store: AgentStore) -> None:
    store.register_provider("scripted", FunctionProvider(lambda r: f"echo: {r.messages[-1].text}"))
    view = store.for_tenant("tenant-a")
    active = await view.create_agent(
        AgentDefinition(name="On", role="r"), provider="scripted", model="m"
    )
    old = await view.create_agent(
        AgentDefinition(name="Off", role="r"), provider="scripted", model="m"
    )
    await view.deactivate_agent(old)
    async with Client(create_server(store, "tenant-a")) as client:
        listed = _data(await client.call_tool("list_agents", {}))
        assert [a["name"] for a in listed["agents"]] == ["On"]
        assert "deactivated" in _error(
            await client.call_tool("create_thread", {"agent_id": str(old)})
        )
        thread = _data(await client.call_tool("create_thread", {"agent_id": str(active)}))
        turn = _data(
            await client.call_tool("run_turn", {"thread_id": thread["thread_id"], "text": "hi"})
        )
        assert turn["answer"] == "echo: hi"
        assert "Error executing tool run_turn" in _error(
            await client.call_tool("run_turn", {"thread_id": thread["thread_id"], "text": ""})
        )


# --- stateless /mcp: one client, several API processes ----------------------------------


class AlternatingTransport(httpx.AsyncBaseTransport):
    """Sends each request to the next of several API servers, as a load balancer
    without sticky sessions would."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = ports
        self.sent: list[int] = []
        self.inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        port = self.ports[len(self.sent) % len(self.ports)]
        self.sent.append(port)
        request.url = request.url.copy_with(port=port)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_stateless_mcp_works_across_api_processes_without_sticky_sessions(
    settings: Settings, redis_cleanup: None, openai_fake: tuple[OpenAIFake, str]
) -> None:
    fake, _url = openai_fake
    config = ApiConfig(mcp_stateless=True)
    with (
        running_api(settings, tools=room_tools(), config=config) as first,
        running_api(settings, tools=room_tools(), config=config) as second,
    ):
        agent_id = first.call(_agent(first.store, "tenant-a", "Concierge"))
        key = first.create_key("tenant-a")
        ports = [httpx.URL(first.url).port or 0, httpx.URL(second.url).port or 0]
        transport = AlternatingTransport(ports)
        client = httpx.AsyncClient(
            headers={"Authorization": f"Bearer {key}"},
            transport=transport,
            timeout=httpx.Timeout(30.0, read=300.0),
        )
        async with (
            client,
            streamable_http_client(f"{first.url}/mcp", http_client=client) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            await full_flow(session, fake, agent_id)
        assert set(transport.sent) == set(ports)  # both processes answered
