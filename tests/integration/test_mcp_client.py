"""MCP servers as tools at run time (issue 17 item 1): the pooled client and the source.

Real servers: the third-party ``mcp-server-time`` over stdio, and the SDK's own
``MCPServer`` over streamable HTTP and SSE (``tests/fakes/mcp_http_server.py``) in a
subprocess. The model is scripted: it calls the MCP tools the run offers.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from ai_agents import AgentDefinition, AgentStore
from ai_agents.config import Settings
from ai_agents.mcp.client import McpPool
from ai_agents.mcp.config import McpServerConfig, Transport
from ai_agents.mcp.source import McpToolSource
from ai_agents.mcp.tools import exposed_name
from ai_agents.messages import ToolCall
from ai_agents.providers.base import ProviderRequest
from ai_agents.records import AgentRecord
from ai_agents.testing import FunctionProvider

SERVER_SCRIPT = Path(__file__).resolve().parents[1] / "fakes" / "mcp_http_server.py"
TOKEN = "s3cret-token"
HEADER = ("X-Api-Key", "k-123")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return replace(
        settings,
        mcp_allowed_hosts=("127.0.0.1",),
        mcp_allow_private_addresses=True,
        mcp_stdio_commands={
            "time": [sys.executable, "-m", "mcp_server_time", "--local-timezone", "UTC"]
        },
        mcp_call_timeout=10.0,
    )


# --- a real MCP server in a subprocess --------------------------------------------------


@dataclass
class HttpServer:
    port: int
    transport: str
    args: list[str]
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        path = "/sse" if self.transport == "sse" else "/mcp"
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(SERVER_SCRIPT), "--port", str(self.port), *self.args]
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("the MCP test server exited at start")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("the MCP test server did not start")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
        if self.process is not None:
            self.process.wait(timeout=10)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def mcp_server() -> Iterator[Callable[..., HttpServer]]:
    started: list[HttpServer] = []

    def start(transport: str = "streamable_http", *, auth: bool = True) -> HttpServer:
        args = ["--transport", transport]
        if auth:
            args += ["--token", TOKEN, "--header", f"{HEADER[0]}={HEADER[1]}"]
        server = HttpServer(_free_port(), transport, args)
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.kill()


# --- agents, configs, the scripted model -----------------------------------------------


class Servers:
    """The loader the source gets: configs per agent, built by the test."""

    def __init__(self) -> None:
        self.by_agent: dict[uuid.UUID, list[McpServerConfig]] = {}
        self.loads = 0

    def add(
        self,
        agent: AgentRecord,
        name: str,
        transport: Transport,
        **fields: Any,
    ) -> McpServerConfig:
        config = McpServerConfig(
            id=uuid.uuid4(),
            tenant_id=agent.tenant_id,
            agent_id=agent.id,
            name=name,
            transport=transport,
            **fields,
        )
        self.by_agent.setdefault(agent.id, []).append(config)
        return config

    def replace(self, old: McpServerConfig, **changes: Any) -> McpServerConfig:
        new = replace(old, version=old.version + 1, **changes)
        configs = self.by_agent[old.agent_id]
        configs[configs.index(old)] = new
        return new

    async def __call__(self, agent: AgentRecord) -> list[McpServerConfig]:
        self.loads += 1
        return list(self.by_agent.get(agent.id, []))


def http_config(server: HttpServer, **fields: Any) -> dict[str, Any]:
    return {
        "url": server.url,
        "bearer_token": TOKEN,
        "headers": {HEADER[0]: HEADER[1]},
        **fields,
    }


class Model:
    """A scripted model: each run's first answer is the next planned tool calls (or
    text); after tool results it answers with every result it saw, joined."""

    def __init__(self) -> None:
        self.plans: list[list[ToolCall] | str] = []
        self.provider = FunctionProvider(self._answer)

    def plan(self, *calls: ToolCall | str) -> None:
        for item in calls:
            self.plans.append(item if isinstance(item, str) else [item])

    def _answer(self, request: ProviderRequest) -> list[ToolCall] | str:
        last = request.messages[-1]
        if last.role == "tool":
            results = []
            for message in reversed(request.messages):
                if message.role != "tool":
                    break
                results.append(message.text)
            if self.plans and self.plans[0] != "answer":
                return self.plans.pop(0)
            if self.plans:
                self.plans.pop(0)
            return "Results: " + " | ".join(reversed(results))
        return self.plans.pop(0) if self.plans else "nothing to do"

    @property
    def offered(self) -> list[list[str]]:
        """The tool names offered in each model request."""
        return [[t.name for t in r.tools] for r in self.provider.requests]


def tool_call(name: str, **arguments: Any) -> ToolCall:
    return ToolCall(id=f"call_{uuid.uuid4().hex[:8]}", name=name, arguments=arguments)


@dataclass
class Env:
    store: AgentStore
    servers: Servers
    source: McpToolSource
    model: Model
    agent: AgentRecord
    thread_id: uuid.UUID

    async def run(self, text: str = "go") -> Any:
        return await self.store.run(self.thread_id, text)

    async def tool_steps(self, run_id: uuid.UUID) -> list[dict[str, Any]]:
        steps = await self.store.list_run_steps(run_id)
        return [c for s in steps if s.type == "tool_calls" for c in s.details["tool_calls"]]


@pytest.fixture
async def env(mcp_server: Callable[..., HttpServer], store: AgentStore, settings: Settings) -> Env:
    # (mcp_server first: the servers stop after the store closed its sessions)
    servers = Servers()
    source = McpToolSource(settings, servers)
    store.runner.add_tool_source(source)
    model = Model()
    store.register_provider("scripted", model.provider)
    agent_id = await store.create_agent(
        AgentDefinition(name="Helper", role="You help."), provider="scripted", model="mcp"
    )
    agent = await store.get_agent(agent_id)
    thread_id = await store.create_thread(agent_id, user_id="u1")
    return Env(store, servers, source, model, agent, thread_id)


# --- (a) stdio: the third-party time server -------------------------------------------------


async def test_stdio_time_server_answers_through_the_run(env: Env) -> None:
    env.servers.add(env.agent, "time", "stdio", command="time")
    env.model.plan(tool_call("time__get_current_time", timezone="Europe/Paris"))

    response = await env.run("What time is it in Paris?")

    assert "time__get_current_time" in env.model.offered[0]
    assert "time__convert_time" in env.model.offered[0]
    assert response.status == "completed"
    assert response.content.startswith("Results: ")
    assert '"timezone": "Europe/Paris"' in response.content
    assert "day_of_week" in response.content
    calls = await env.tool_steps(response.run_id)
    assert [(c["name"], c["is_error"]) for c in calls] == [("time__get_current_time", False)]
    assert json.loads(calls[0]["output"])["timezone"] == "Europe/Paris"
    assert calls[0]["arguments"] == {"timezone": "Europe/Paris"}


async def test_stdio_server_error_is_a_tool_error(env: Env) -> None:
    env.servers.add(env.agent, "time", "stdio", command="time")
    env.model.plan(tool_call("time__get_current_time", timezone="Nowhere/Atlantis"))

    response = await env.run()

    calls = await env.tool_steps(response.run_id)
    assert calls[0]["is_error"] is True
    assert "Nowhere/Atlantis" in calls[0]["output"]
    assert calls[0]["output"].startswith("Error")
    assert response.status == "completed"


# --- (b) streamable HTTP with a bearer token and a header -----------------------------------


async def test_http_server_with_auth_and_allowed_tools(
    env: Env, mcp_server: Callable[..., HttpServer]
) -> None:
    server = mcp_server()
    env.servers.add(
        env.agent, "calc", "streamable_http", **http_config(server, allowed_tools=("add", "echo"))
    )
    env.model.plan(tool_call("calc__add", a=2, b=40), tool_call("calc__secret"))

    response = await env.run()

    assert sorted(env.model.offered[0]) == ["calc__add", "calc__echo"]
    calls = await env.tool_steps(response.run_id)
    assert calls[0]["name"] == "calc__add" and calls[0]["is_error"] is False
    assert json.loads(calls[0]["output"]) == {"sum": 42}
    # a tool the allow-list leaves out is unknown to the run, never called
    assert calls[1]["name"] == "calc__secret" and calls[1]["is_error"] is True
    assert "unknown tool" in calls[1]["output"]
    assert "the secret" not in response.content


async def test_http_server_refuses_a_missing_token(
    env: Env, mcp_server: Callable[..., HttpServer], caplog: pytest.LogCaptureFixture
) -> None:
    server = mcp_server()
    env.servers.add(env.agent, "calc", "streamable_http", url=server.url)  # no token
    env.model.plan("no tools")

    response = await env.run()

    assert env.model.offered[0] == []
    assert response.status == "completed"
    assert "calc" in caplog.text and "gives no tools" in caplog.text


async def test_results_of_every_kind(env: Env, mcp_server: Callable[..., HttpServer]) -> None:
    server = mcp_server()
    env.servers.add(env.agent, "calc", "streamable_http", **http_config(server))
    env.model.plan(
        tool_call("calc__picture"),
        tool_call("calc__fail", reason="on purpose"),
        tool_call("calc__add", a="two", b=1),
    )

    response = await env.run()

    picture, fail, bad = await env.tool_steps(response.run_id)
    assert picture["output"] == "a red dot\n[image: image/png, 8 bytes]"
    assert picture["is_error"] is False
    assert fail["is_error"] is True and "failed: on purpose" in fail["output"]
    assert bad["is_error"] is True  # the server validated the arguments


async def test_sse_transport(env: Env, mcp_server: Callable[..., HttpServer]) -> None:
    server = mcp_server("sse")
    env.servers.add(env.agent, "old", "sse", **http_config(server, allowed_tools=("echo",)))
    env.model.plan(tool_call("old__echo", text="over sse"))

    response = await env.run()

    assert env.model.offered[0] == ["old__echo"]
    assert "echo: over sse" in response.content


# --- (c) a server that dies -------------------------------------------------------------------


async def test_server_killed_mid_call_is_a_tool_error_and_the_run_completes(
    env: Env, mcp_server: Callable[..., HttpServer]
) -> None:
    server = mcp_server()
    config = env.servers.add(env.agent, "calc", "streamable_http", **http_config(server))
    env.model.plan(tool_call("calc__die"), tool_call("calc__echo", text="still there?"))

    response = await env.run()

    assert response.status == "completed"
    die, echo = await env.tool_steps(response.run_id)
    assert die["is_error"] is True and "calc" in die["output"]
    assert echo["is_error"] is True
    assert not server.alive()
    assert len(env.source.pool) == 0  # the broken session was dropped

    # the next run: the dead server offers no tools, the run still completes
    env.model.plan("fine without tools")
    again = await env.run()
    assert again.status == "completed"
    assert env.model.offered[-1] == []

    # the server comes back on the same port: the next call reconnects
    server.start()
    env.model.plan(tool_call("calc__echo", text="back"))
    back = await env.run()
    assert "echo: back" in back.content
    assert config.id in {key[0] for key in env.source.pool._connections}


async def test_server_killed_between_list_and_call(
    env: Env, mcp_server: Callable[..., HttpServer]
) -> None:
    server = mcp_server()
    env.servers.add(env.agent, "calc", "streamable_http", **http_config(server))

    def kill_then_call(request: ProviderRequest) -> list[ToolCall] | str:
        if request.messages[-1].role == "tool":
            return "done: " + (request.messages[-1].text or "")
        server.kill()
        return [tool_call("calc__echo", text="anyone?")]

    env.store.register_provider("scripted", FunctionProvider(kill_then_call))

    response = await env.run()

    assert response.status == "completed"
    (echo,) = await env.tool_steps(response.run_id)
    assert echo["is_error"] is True
    assert "MCP server calc" in echo["output"]


async def test_a_broken_session_is_replaced_on_the_next_call(
    env: Env, mcp_server: Callable[..., HttpServer]
) -> None:
    server = mcp_server()
    config = env.servers.add(env.agent, "calc", "streamable_http", **http_config(server))
    pool = env.source.pool
    assert (await pool.call_tool(config, "sessions", {}, 5.0)).content == "1"

    died = await pool.call_tool(config, "die", {}, 5.0)
    assert died.is_error
    server.kill()
    server.start()  # a new process on the same port: the old session id means nothing

    again = await pool.call_tool(config, "sessions", {}, 5.0)
    assert (again.content, again.is_error) == ("1", False)


async def test_a_restarted_server_gets_a_new_session(
    env: Env, mcp_server: Callable[..., HttpServer]
) -> None:
    server = mcp_server()
    config = env.servers.add(env.agent, "calc", "streamable_http", **http_config(server))
    env.model.plan(tool_call("calc__sessions"))
    assert (await env.run()).content == "Results: 1"

    server.kill()
    server.start()  # the pooled session (and the cached tool list) outlive the server
    env.model.plan(tool_call("calc__sessions"))
    response = await env.run()

    assert response.content == "Results: 1"  # a new process, a new session, no error

    server.kill()
    server.start()
    conn = await env.source.pool.connection(config)
    conn.listed_at -= env.source.settings.mcp_tools_ttl + 1  # the listing goes to the server
    tools = await env.source.pool.list_tools(config)
    assert "sessions" in {t.name for t in tools}


async def test_a_call_is_bounded_by_the_server_timeout(
    env: Env, mcp_server: Callable[..., HttpServer]
) -> None:
    server = mcp_server()
    env.servers.add(env.agent, "calc", "streamable_http", **http_config(server, timeout=1.0))
    env.model.plan(tool_call("calc__slow", seconds=8), tool_call("calc__echo", text="next"))

    started = time.monotonic()
    response = await env.run()

    assert time.monotonic() - started < 6
    slow, echo = await env.tool_steps(response.run_id)
    assert slow["is_error"] is True and "timed out after 1 s" in slow["output"]
    assert echo["output"] == "echo: next"  # a new session answers the next call
    assert response.status == "completed"


async def test_unreachable_server_gives_no_tools_but_others_do(
    env: Env, mcp_server: Callable[..., HttpServer]
) -> None:
    server = mcp_server()
    env.servers.add(env.agent, "calc", "streamable_http", **http_config(server))
    env.servers.add(
        env.agent, "gone", "streamable_http", url=f"http://127.0.0.1:{_free_port()}/mcp"
    )
    env.model.plan(tool_call("calc__echo", text="hi"))

    response = await env.run()

    assert all(not name.startswith("gone__") for name in env.model.offered[0])
    assert "echo: hi" in response.content


# --- (d) pooled sessions -----------------------------------------------------------------------


async def test_two_runs_share_one_session(env: Env, mcp_server: Callable[..., HttpServer]) -> None:
    server = mcp_server()
    env.servers.add(env.agent, "calc", "streamable_http", **http_config(server))
    env.model.plan(tool_call("calc__sessions"))
    first = await env.run()
    env.model.plan(tool_call("calc__sessions"))
    second = await env.run()

    assert first.content == "Results: 1"
    assert second.content == "Results: 1"
    assert len(env.source.pool) == 1


async def test_a_new_version_replaces_the_pooled_session(
    env: Env, mcp_server: Callable[..., HttpServer]
) -> None:
    server = mcp_server()
    config = env.servers.add(env.agent, "calc", "streamable_http", **http_config(server))
    env.model.plan(tool_call("calc__sessions"))
    assert (await env.run()).content == "Results: 1"

    env.servers.replace(config, allowed_tools=("sessions",))
    env.model.plan(tool_call("calc__sessions"))
    response = await env.run()

    assert response.content == "Results: 2"
    assert env.model.offered[-1] == ["calc__sessions"]
    assert len(env.source.pool) == 1


async def test_tool_lists_are_cached(env: Env, mcp_server: Callable[..., HttpServer]) -> None:
    server = mcp_server()
    config = env.servers.add(env.agent, "calc", "streamable_http", **http_config(server))
    pool = env.source.pool
    first = await pool.list_tools(config)
    assert await pool.list_tools(config) is first  # from the cache
    conn = await pool.connection(config)
    conn.listed_at -= env.source.settings.mcp_tools_ttl + 1  # expired
    assert await pool.list_tools(config) is not first


# --- (e) tools/list_changed ---------------------------------------------------------------------


async def test_list_changed_refreshes_the_tools(
    env: Env, mcp_server: Callable[..., HttpServer]
) -> None:
    server = mcp_server()
    env.servers.add(env.agent, "calc", "streamable_http", **http_config(server))
    env.model.plan(tool_call("calc__grow"))
    await env.run()
    assert "calc__extra" not in env.model.offered[0]

    env.model.plan(tool_call("calc__extra"))
    response = await env.run()

    assert "calc__extra" in env.model.offered[-2]
    assert "extra!" in response.content


# --- (f) what may be connected to --------------------------------------------------------------


async def test_stdio_name_not_allowlisted_never_starts(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    env.servers.add(env.agent, "shell", "stdio", command="bash")
    env.model.plan("no tools")

    response = await env.run()

    assert env.model.offered[0] == []
    assert response.status == "completed"
    assert "not an allowed stdio MCP server" in caplog.text
    assert len(env.source.pool) == 0


async def test_private_url_is_refused_at_connect(
    env: Env, mcp_server: Callable[..., HttpServer], settings: Settings
) -> None:
    server = mcp_server()
    strict = replace(settings, mcp_allow_private_addresses=False)
    pool = McpPool(strict)
    config = McpServerConfig(
        id=uuid.uuid4(),
        tenant_id=env.agent.tenant_id,
        agent_id=env.agent.id,
        name="calc",
        transport="streamable_http",
        **http_config(server),
    )
    try:
        with pytest.raises(Exception, match="host is not allowed"):
            await pool.list_tools(config)
        outcome = await pool.call_tool(config, "sessions", {}, 5.0)
    finally:
        await pool.aclose()
    assert outcome.is_error and "host is not allowed" in outcome.content
    # nothing reached the server: a fresh pool that may connect sees session number one
    allowed = McpPool(settings)
    try:
        assert (await allowed.call_tool(config, "sessions", {}, 5.0)).content == "1"
    finally:
        await allowed.aclose()


async def test_configs_of_other_agents_are_ignored(
    env: Env, mcp_server: Callable[..., HttpServer], store: AgentStore
) -> None:
    server = mcp_server()
    other_id = await store.create_agent(
        AgentDefinition(name="Other", role="x"), provider="scripted", model="mcp"
    )
    other = await store.get_agent(other_id)
    stray = McpServerConfig(
        id=uuid.uuid4(),
        tenant_id=other.tenant_id,
        agent_id=other.id,
        name="calc",
        transport="streamable_http",
        **http_config(server),
    )
    env.servers.by_agent[env.agent.id] = [stray]
    env.model.plan("no tools")

    await env.run()

    assert env.model.offered[0] == []


# --- naming, closing ----------------------------------------------------------------------------


def test_exposed_names_are_valid_and_unique() -> None:
    taken: set[str] = set()
    assert exposed_name("time", "get_current_time", taken) == "time__get_current_time"
    assert exposed_name("srv", "do.it now", taken) == "srv__do_it_now"
    assert exposed_name("srv", "do it now", taken) == "srv__do_it_now_2"
    long = exposed_name("s" * 32, "t" * 60, taken)
    assert len(long) == 64
    again = exposed_name("s" * 32, "t" * 61, taken)
    assert len(again) == 64 and again != long and again.endswith("_2")


async def test_aclose_ends_every_session(env: Env, mcp_server: Callable[..., HttpServer]) -> None:
    server = mcp_server()
    env.servers.add(env.agent, "calc", "streamable_http", **http_config(server))
    env.servers.add(env.agent, "time", "stdio", command="time")
    env.model.plan("hello")
    await env.run()
    pool = env.source.pool
    assert len(pool) == 2
    connections = list(pool._connections.values())

    await env.source.aclose()

    assert all(c.dead.is_set() for c in connections)
    assert len(pool) == 0
    outcome = await pool.call_tool(connections[0].config, "echo", {"text": "x"}, 5.0)
    assert outcome.is_error
