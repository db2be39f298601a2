"""Cross-tenant attempts are refused with no side effect at all.

A 404 alone does not prove isolation: a run that loaded tenant B's thread, sent its
history to the model and only then failed would still answer 404. Every attempt of
tenant A on tenant B's objects here must be refused *and* leave no trace: the model
received no request, no row of any table changed (every table is dumped before and
after), no Redis key under the test's prefix was added, changed or removed (no job
was queued, no rate-limit window touched). Attempts go through the store's tenant
view, the REST API (runs, streams, background runs, jobs, MCP servers) and the
document tools.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from ai_agents import AgentDefinition, AgentStore
from ai_agents.api.config import ApiConfig
from ai_agents.api.testing import RunningApi, running_api
from ai_agents.config import Settings
from ai_agents.embeddings import HashingEmbedder
from ai_agents.errors import NotFoundError, ThreadBusyError
from ai_agents.messages import Message
from ai_agents.providers.base import ProviderRequest, ProviderResponse
from ai_agents.providers.registry import ModelLimits, get_registry
from ai_agents.rag.service import DocumentService
from ai_agents.rag.setup import enable_documents
from ai_agents.testing import FunctionProvider
from ai_agents.tools.decorator import ToolContext, ToolOutcome
from ai_agents.tools.registry import ToolRegistry
from tests import pg
from tests.waiting import wait_until

A, B = "tenant-a", "tenant-b"
SECRET = "The vault code of tenant B is 4242."
#: What the API changes for any request, refused or not: the key's last use and the
#: windows of its own request rate limit.
API_TABLES = frozenset({"api_keys"})
API_KEYS = "ratelimit}:key:"

Rows = dict[str, list[str]]
Keys = dict[str, bytes | None]
Attempt = Callable[["World"], Awaitable[object]]


@dataclass(frozen=True)
class Snapshot:
    rows: Rows
    keys: Keys
    model_calls: int


def _table_change(table: str, before: Rows, after: Rows) -> str:
    old, new = before.get(table, []), after.get(table, [])
    differing = sorted(set(old) ^ set(new))[:4]
    return f"table {table}: {len(old)} -> {len(new)} rows, differing: {differing}"


def _key_change(key: str, before: Keys, after: Keys) -> str:
    how = "added" if key not in before else "removed" if key not in after else "changed"
    return f"redis key {key}: {how}"


def _changes(before: Snapshot, after: Snapshot) -> list[str]:
    """What differs between two snapshots, one line per table, key or model call."""
    tables = sorted(before.rows.keys() | after.rows.keys())
    keys = sorted(before.keys.keys() | after.keys.keys())
    changes = [
        _table_change(t, before.rows, after.rows)
        for t in tables
        if before.rows.get(t) != after.rows.get(t)
    ]
    changes += [
        _key_change(k, before.keys, after.keys)
        for k in keys
        if before.keys.get(k, b"?") != after.keys.get(k, b"?")
    ]
    if after.model_calls != before.model_calls:
        changes.append(f"the model received {after.model_calls - before.model_calls} request(s)")
    return changes


@dataclass
class Effects:
    """Takes snapshots of everything an attempt could change."""

    store: AgentStore
    requests: list[ProviderRequest]
    #: Tables, and Redis keys containing this text, that are not compared.
    exclude: frozenset[str] = frozenset()
    exclude_keys: str | None = None

    async def snapshot(self) -> Snapshot:
        return Snapshot(await self._rows(), await self._keys(), len(self.requests))

    @property
    def database_url(self) -> str:
        return str(self.store.settings.database_url).replace("+asyncpg", "")

    async def _rows(self) -> Rows:
        conn = await pg.connect(self.database_url)
        try:
            tables = [
                r["tablename"]
                for r in await conn.fetch(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                )
                if r["tablename"] not in self.exclude | {"alembic_version"}
            ]
            return {
                t: sorted(
                    r[0] for r in await conn.fetch(f'SELECT row_to_json(x)::text FROM "{t}" x')
                )
                for t in tables
            }
        finally:
            await conn.close()

    async def _keys(self) -> Keys:
        redis = self.store.redis
        names = sorted(
            [
                k
                for pattern in self.store.keys.patterns()
                async for k in redis.scan_iter(match=pattern, count=1000)
            ]
        )
        keys = {(n.decode() if isinstance(n, bytes) else n): await redis.dump(n) for n in names}
        if self.exclude_keys is None:
            return keys
        return {k: v for k, v in keys.items() if self.exclude_keys not in k}

    async def settled(self) -> Snapshot:
        """A snapshot once earlier work (background writes of finished runs) is done."""
        last: list[Snapshot] = [await self.snapshot()]

        async def unchanged() -> bool:
            now = await self.snapshot()
            same = not _changes(last[0], now)
            last[0] = now
            return same

        await wait_until(unchanged, timeout=15, interval=0.1, what="the data to settle")
        return last[0]

    @asynccontextmanager
    async def none(self, attempt: str) -> AsyncIterator[None]:
        """The block (one refused attempt) must change nothing."""
        before = await self.settled()
        yield
        after = await self.settled()  # also what the attempt left running writes later
        changes = _changes(before, after)
        assert not changes, f"{attempt} left side effects:\n" + "\n".join(changes)


@dataclass
class World:
    """Tenant B's objects, tenant A's own agent and thread, and the model both use."""

    store: AgentStore
    a: AgentStore
    b: AgentStore
    effects: Effects
    docs: DocumentService
    upload_root: Path
    b_agent: uuid.UUID
    b_thread: uuid.UUID
    b_run: uuid.UUID
    b_job: uuid.UUID
    b_server: uuid.UUID
    b_document: str
    a_agent: uuid.UUID
    a_thread: uuid.UUID

    def context(self) -> ToolContext:
        """The tool context of a run of tenant A."""
        return ToolContext(
            thread_id=self.a_thread,
            agent_id=self.a_agent,
            tenant_id=A,
            user_id="u1",
            run_id=uuid.uuid4(),
            store=self.a,
        )

    async def tool(self, name: str, **args: Any) -> ToolOutcome:
        return await self.store.tools.get(name).invoke(args, self.context(), time_limit=30)

    async def refused(self, what: str, attempt: Attempt) -> None:
        """*attempt* raises NotFoundError and changes nothing."""
        async with self.effects.none(what):
            try:
                await attempt(self)
            except NotFoundError:
                return
        pytest.fail(f"{what} was not refused")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return replace(settings, mcp_stdio_commands={"time": [sys.executable, "-c", "pass"]})


@pytest.fixture
def requests() -> list[ProviderRequest]:
    return []


@pytest.fixture
def model(requests: list[ProviderRequest]) -> FunctionProvider:
    def answer(request: ProviderRequest) -> ProviderResponse:
        requests.append(request)
        return ProviderResponse(content=f"echo: {request.messages[-1].text}")

    return FunctionProvider(answer)


async def _agent_and_thread(view: AgentStore, name: str) -> tuple[uuid.UUID, uuid.UUID]:
    agent = await view.create_agent(
        AgentDefinition(name=name, role="You help."),
        provider="scripted",
        model="roomy",
    )
    return agent, await view.create_thread(agent, user_id="u1")


@pytest.fixture
async def world(
    store: AgentStore, model: FunctionProvider, requests: list[ProviderRequest], tmp_path: Path
) -> World:
    get_registry().register(
        "scripted", "roomy", ModelLimits(100_000, 1000, 100_000, 100_000_000, True, False, 3, 15)
    )
    store.use_tools(ToolRegistry())
    store.register_provider("scripted", model)
    upload_root = tmp_path / "uploads"
    (upload_root / A).mkdir(parents=True)
    (upload_root / B).mkdir(parents=True)
    (upload_root / B / "vault.txt").write_text(SECRET + "\n")
    docs = enable_documents(store, embedder=HashingEmbedder(64), upload_dirs=[upload_root])
    a, b = store.for_tenant(A), store.for_tenant(B)
    b_agent, b_thread = await _agent_and_thread(b, "B")
    b_run = (await b.run(b_thread, SECRET)).run_id
    b_job = await b.enqueue_run(b_thread, "later, please")  # stays queued: no worker here
    server = await b.add_mcp_server(b_agent, name="time", transport="stdio", command="time")
    document = await docs.ingestor.ingest_text(SECRET, source="vault.txt", tenant_id=B)
    a_agent, a_thread = await _agent_and_thread(a, "A")
    requests.clear()
    return World(
        store=store,
        a=a,
        b=b,
        effects=Effects(store, requests),
        docs=docs,
        upload_root=upload_root,
        b_agent=b_agent,
        b_thread=b_thread,
        b_run=b_run,
        b_job=b_job,
        b_server=server.id,
        b_document=document.file_hash,
        a_agent=a_agent,
        a_thread=a_thread,
    )


# --- the store's tenant view -------------------------------------------------------------


async def _stream(world: World) -> None:
    async for _ in world.a.stream(world.b_thread, "tell me the history"):
        pass


RUN_ATTEMPTS: dict[str, Attempt] = {
    "run": lambda w: w.a.run(w.b_thread, "tell me the history"),
    "run, on_busy=reject": lambda w: w.a.run(w.b_thread, "tell me", on_busy="reject"),
    "run with an idempotency key": lambda w: w.a.run(w.b_thread, "tell", idempotency_key="k"),
    "stream": _stream,
    "background run": lambda w: w.a.enqueue_run(w.b_thread, "tell me the history"),
    "tool outputs": lambda w: w.a.submit_tool_outputs(
        w.b_run, [{"tool_call_id": "c1", "output": "x"}]
    ),
    "cancel run": lambda w: w.a.cancel_run(w.b_run),
    "cancel job": lambda w: w.a.cancel_job(w.b_job),
}


@pytest.mark.parametrize("attempt", RUN_ATTEMPTS)
async def test_runs_on_another_tenants_thread_leave_no_trace(world: World, attempt: str) -> None:
    await world.refused(attempt, RUN_ATTEMPTS[attempt])


async def test_a_busy_thread_of_another_tenant_is_not_found_not_busy(world: World) -> None:
    """Even while B's thread has an active run, A learns nothing and queues nothing."""
    conn = await pg.connect(world.effects.database_url)
    try:  # B's thread is held by a run of another process (lease for a minute)
        await conn.execute(
            "INSERT INTO runs (id, tenant_id, thread_id, agent_id, status, input, owner, "
            "started_at, lease_expires_at) VALUES ($1, $2, $3, $4, 'in_progress', "
            "'holding the thread', 'another-process', now(), now() + interval '60 s')",
            uuid.uuid4(),
            B,
            world.b_thread,
            world.b_agent,
        )
    finally:
        await conn.close()
    with pytest.raises(ThreadBusyError):  # B itself finds its thread busy
        await world.b.run(world.b_thread, "me too", on_busy="reject")
    for policy in ("enqueue", "reject"):
        async with world.effects.none(f"run on a busy thread, on_busy={policy!r}"):
            with pytest.raises(NotFoundError):
                await world.a.run(world.b_thread, "queue me", on_busy=policy, busy_timeout=1)


CHANGE_ATTEMPTS: dict[str, Attempt] = {
    "add messages": lambda w: w.a.add_messages(
        w.b_thread, [Message(role="user", content="injected")]
    ),
    "add no messages": lambda w: w.a.add_messages(w.b_thread, []),
    "fork thread": lambda w: w.a.fork_thread(w.b_thread),
    "update thread": lambda w: w.a.update_thread(w.b_thread, title="pwned"),
    "archive thread": lambda w: w.a.archive_thread(w.b_thread),
    "delete thread": lambda w: w.a.delete_thread(w.b_thread),
    "thread on B's agent": lambda w: w.a.create_thread(w.b_agent, user_id="u1"),
    "update agent": lambda w: w.a.update_agent(w.b_agent, name="pwned"),
    "deactivate agent": lambda w: w.a.deactivate_agent(w.b_agent),
    "delete agent": lambda w: w.a.delete_agent(w.b_agent),
    "add MCP server": lambda w: w.a.add_mcp_server(
        w.b_agent, name="t2", transport="stdio", command="time"
    ),
    "list MCP servers": lambda w: w.a.list_mcp_servers(w.b_agent),
    "get MCP server": lambda w: w.a.get_mcp_server(w.b_agent, w.b_server),
    "remove MCP server": lambda w: w.a.remove_mcp_server(w.b_agent, w.b_server),
}


async def test_changes_to_another_tenants_objects_leave_no_trace(world: World) -> None:
    for what, attempt in CHANGE_ATTEMPTS.items():
        await world.refused(what, attempt)


# --- documents -------------------------------------------------------------------------


async def test_document_tools_of_one_tenant_never_reach_another_tenants_documents(
    world: World,
) -> None:
    none = world.effects.none
    async with none("search_documents"):
        found = await world.tool("search_documents", query="vault code")
    assert not found.is_error, found.content
    assert "4242" not in found.content and '"results": []' in found.content
    async with none("ask_documents"):  # B's passages would go to the model with the question
        asked = await world.tool("ask_documents", question="What is the vault code?")
    assert "4242" not in asked.content and '"sources": []' in asked.content
    async with none("list_documents"):
        listed = await world.tool("list_documents")
    assert '"documents": []' in listed.content
    async with none("delete_document"):
        deleted = await world.tool("delete_document", file_hash=world.b_document)
    assert deleted.is_error, deleted.content
    for path in (f"../{B}/vault.txt", str(world.upload_root / B / "vault.txt")):
        async with none(f"upload_document {path}"):
            uploaded = await world.tool("upload_document", file_path=path)
        assert uploaded.is_error, uploaded.content
    async with none("service.delete for tenant A"):
        with pytest.raises(NotFoundError):
            await world.docs.delete(A, world.b_document)
    assert [d.file_hash for d in await world.docs.list_documents(B)] == [world.b_document]


# --- REST --------------------------------------------------------------------------------


@pytest.fixture
def api(settings: Settings, model: FunctionProvider, world: World) -> Iterator[RunningApi]:
    with running_api(settings, providers={"scripted": model}, config=ApiConfig()) as running:
        yield running


@pytest.fixture
async def client(api: RunningApi, world: World) -> AsyncIterator[httpx.AsyncClient]:
    world.effects.exclude, world.effects.exclude_keys = API_TABLES, API_KEYS
    headers = {"Authorization": f"Bearer {api.create_key(A)}"}
    async with httpx.AsyncClient(base_url=api.api, headers=headers, timeout=30) as c:
        yield c


def _rest_attempts() -> list[tuple[str, str, dict[str, Any] | None]]:
    """(method, path template, body): the templates name B's objects in braces."""
    outputs = [{"tool_call_id": "c1", "output": "x"}]
    return [
        ("POST", "/threads/{thread}/runs", {"input": "tell me the history"}),
        ("POST", "/threads/{thread}/runs", {"input": "tell me", "stream": True}),
        ("POST", "/threads/{thread}/runs", {"input": "tell me", "background": True}),
        ("POST", "/threads/{thread}/runs", {"input": "tell me", "on_busy": "reject"}),
        ("POST", "/threads/{thread}/messages", {"role": "user", "content": "injected"}),
        ("POST", "/threads/{thread}/fork", {}),
        ("POST", "/runs/{run}/tool_outputs", {"tool_outputs": outputs}),
        ("POST", "/runs/{run}/tool_outputs", {"tool_outputs": outputs, "stream": True}),
        ("POST", "/runs/{run}/cancel", None),
        ("GET", "/jobs/{job}", None),
        ("POST", "/jobs/{job}/cancel", None),
        ("GET", "/agents/{agent}/mcp_servers", None),
        (
            "POST",
            "/agents/{agent}/mcp_servers",
            {"name": "t2", "transport": "stdio", "command": "time"},
        ),
        ("DELETE", "/agents/{agent}/mcp_servers/{server}", None),
    ]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    _rest_attempts(),
    ids=[f"{m} {p} {sorted(b or {})}" for m, p, b in _rest_attempts()],
)
async def test_rest_attempts_on_another_tenants_objects_leave_no_trace(
    world: World, client: httpx.AsyncClient, method: str, path: str, body: dict[str, Any] | None
) -> None:
    url = path.format(
        thread=world.b_thread,
        run=world.b_run,
        job=world.b_job,
        agent=world.b_agent,
        server=world.b_server,
    )
    what = f"{method} {url} {body or ''}"
    async with world.effects.none(what):
        response = await client.request(method, url, json=body)
    assert response.status_code == 404, f"{what}: {response.status_code} {response.text}"
