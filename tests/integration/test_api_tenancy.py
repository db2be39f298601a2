"""Issue 7, acceptance 2: tenant isolation over HTTP.

Tenant A's key cannot read, list, run, fork, change or delete anything of tenant B; every
such attempt is a 404 exactly like an object that does not exist (never a 403 that would
confirm it exists), and B's data is untouched afterwards. An admin key sees both.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from ai_agents.api.config import ApiConfig
from ai_agents.api.testing import RunningApi, running_api
from ai_agents.config import Settings
from ai_agents.testing import FunctionProvider

JSON = dict[str, Any]


@pytest.fixture
def api(settings: Settings, redis_cleanup: None) -> Iterator[RunningApi]:
    provider = FunctionProvider(lambda request: f"echo: {request.messages[-1].text}")
    with running_api(settings, providers={"scripted": provider}, config=ApiConfig()) as running:
        yield running


@dataclass
class World:
    a: httpx.AsyncClient
    b: httpx.AsyncClient
    admin: httpx.AsyncClient
    b_agent: JSON
    b_thread: JSON
    b_messages: list[JSON]
    b_run: JSON
    a_agent: JSON
    a_thread: JSON


def _client(api: RunningApi, secret: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=api.api, headers={"Authorization": f"Bearer {secret}"}, timeout=30
    )


async def _setup(c: httpx.AsyncClient, name: str) -> tuple[JSON, JSON, JSON]:
    r = await c.post(
        "/agents", json={"name": name, "role": "helps", "provider": "scripted", "model": "m"}
    )
    assert r.status_code == 201, r.text
    agent = r.json()
    r = await c.post("/threads", json={"agent_id": agent["id"], "user_id": "u1"})
    thread = r.json()
    r = await c.post(f"/threads/{thread['id']}/runs", json={"input": f"hello from {name}"})
    assert r.status_code == 200, r.text
    run = (await c.get(f"/runs/{r.json()['run_id']}")).json()
    assert (await c.put("/users/u1/memory/secret", json={"value": name})).status_code == 200
    r = await c.put(
        "/users/u1/memory/agent-secret", json={"value": name}, params={"agent_id": agent["id"]}
    )
    assert r.status_code == 200
    return agent, (await c.get(f"/threads/{thread['id']}")).json(), run


@pytest.fixture
async def world(api: RunningApi) -> AsyncIterator[World]:
    async with (
        _client(api, api.create_key("tenant-a")) as a,
        _client(api, api.create_key("tenant-b")) as b,
        _client(api, api.create_key("ops", admin=True)) as admin,
    ):
        b_agent, b_thread, b_run = await _setup(b, "B")
        a_agent, a_thread, _ = await _setup(a, "A")
        b_messages = (await b.get(f"/threads/{b_thread['id']}/messages")).json()["data"]
        yield World(a, b, admin, b_agent, b_thread, b_messages, b_run, a_agent, a_thread)


def _assert_not_found(r: httpx.Response, what: str) -> None:
    assert r.status_code == 404, f"{what}: {r.status_code} {r.text}"
    body = r.json()
    assert body["code"] == "not_found", what
    assert set(body) == {"code", "message", "details", "retry_after"}


async def test_tenant_a_cannot_touch_tenant_b(world: World) -> None:
    a = world.a
    agent = world.b_agent["id"]
    thread = world.b_thread["id"]
    first_message = world.b_messages[0]["id"]
    run = world.b_run["id"]
    outputs = {"tool_outputs": [{"tool_call_id": "call_1", "output": "x"}]}
    attempts: list[tuple[str, str, JSON | None, JSON | None]] = [
        ("GET", f"/agents/{agent}", None, None),
        ("PATCH", f"/agents/{agent}", {"name": "pwned"}, None),
        ("DELETE", f"/agents/{agent}", None, None),
        ("POST", "/threads", {"agent_id": agent, "user_id": "u1"}, None),
        ("GET", f"/threads/{thread}", None, None),
        ("PATCH", f"/threads/{thread}", {"title": "pwned"}, None),
        ("DELETE", f"/threads/{thread}", None, None),
        ("GET", f"/threads/{thread}/messages", None, None),
        ("POST", f"/threads/{thread}/messages", {"role": "user", "content": "injected"}, None),
        ("POST", f"/threads/{thread}/runs", {"input": "run it"}, None),
        ("POST", f"/threads/{thread}/runs", {"input": "stream it", "stream": True}, None),
        ("POST", f"/threads/{thread}/runs", {"input": "queue it", "background": True}, None),
        ("GET", f"/threads/{thread}/runs", None, None),
        ("GET", f"/threads/{thread}/runs", None, {"order": "asc", "limit": 1}),
        ("GET", f"/runs/{run}", None, None),
        ("GET", f"/runs/{run}/steps", None, None),
        ("POST", f"/runs/{run}/cancel", None, None),
        ("POST", f"/runs/{run}/tool_outputs", outputs, None),
        ("POST", f"/runs/{run}/tool_outputs", {**outputs, "stream": True}, None),
        ("POST", f"/threads/{thread}/fork", {}, None),
        ("POST", f"/threads/{thread}/fork", {"up_to_message_id": first_message}, None),
        ("POST", f"/threads/{thread}/archive", None, None),
        ("POST", f"/threads/{thread}/unarchive", None, None),
        ("GET", "/usage", None, {"thread_id": thread}),
        ("GET", "/users/u1/memory", None, {"agent_id": agent}),
        ("PUT", "/users/u1/memory/x", {"value": "pwned"}, {"agent_id": agent}),
        ("DELETE", "/users/u1/memory", None, {"agent_id": agent}),
    ]
    for method, path, body, params in attempts:
        r = await a.request(method, path, json=body, params=params)
        _assert_not_found(r, f"{method} {path} {params or ''}")

    # A missing object answers exactly like B's object: nothing tells them apart.
    for kind, ident in (("threads", thread), ("runs", run)):
        missing = await a.get(f"/{kind}/{uuid.uuid4()}")
        other = await a.get(f"/{kind}/{ident}")
        assert missing.status_code == other.status_code == 404
        assert missing.json()["message"].replace(
            missing.json()["details"]["id"], "X"
        ) == other.json()["message"].replace(ident, "X")

    # Listings show only A's own objects, whatever the filters.
    agents = (await a.get("/agents", params={"include_inactive": True})).json()["data"]
    assert [x["id"] for x in agents] == [world.a_agent["id"]]
    threads = (await a.get("/threads", params={"user_id": "u1"})).json()["data"]
    assert [x["id"] for x in threads] == [world.a_thread["id"]]
    assert (await a.get("/threads", params={"agent_id": agent})).json()["data"] == []
    assert (await a.get("/threads", params={"archived": True})).json()["data"] == []

    # The same user id in two tenants is two different users.
    assert (await a.get("/users/u1/memory")).json()["values"] == {"secret": "A"}
    assert (await a.get("/users/u1/memory/secret")).json()["value"] == "A"
    assert (await a.delete("/users/u1/memory")).json() == {"deleted": 1}
    usage = (await a.get("/usage", params={"user_id": "u1"})).json()
    assert usage["total_tokens"] == world.a_thread["input_tokens"] + world.a_thread["output_tokens"]

    # Acting for another tenant or managing keys needs the admin scope.
    r = await a.get("/users/u1/memory", params={"tenant_id": "tenant-b"})
    assert r.status_code == 403
    r = await a.post(
        "/agents",
        json={
            "name": "x",
            "role": "y",
            "provider": "scripted",
            "model": "m",
            "tenant_id": "tenant-b",
        },
    )
    assert r.status_code == 403
    assert (await a.get("/keys")).status_code == 403

    # B's data is exactly as before.
    b = world.b
    assert (await b.get(f"/agents/{agent}")).json() == world.b_agent
    assert (await b.get(f"/threads/{thread}")).json() == world.b_thread
    assert (await b.get(f"/threads/{thread}/messages")).json()["data"] == world.b_messages
    assert (await b.get(f"/runs/{run}")).json() == world.b_run
    assert (await b.get(f"/threads/{thread}/runs")).json()["data"] == [world.b_run]
    assert (await b.get("/threads")).json()["data"] == [world.b_thread]
    assert (await b.get("/users/u1/memory")).json()["values"] == {"secret": "B"}
    scoped = (await b.get("/users/u1/memory", params={"agent_id": agent})).json()["values"]
    assert scoped == {"agent-secret": "B"}


async def test_admin_sees_every_tenant(world: World) -> None:
    admin = world.admin
    agents = (await admin.get("/agents")).json()["data"]
    assert {a["id"] for a in agents} == {world.a_agent["id"], world.b_agent["id"]}
    r = await admin.get(f"/threads/{world.b_thread['id']}/messages")
    assert r.status_code == 200 and len(r.json()["data"]) == 2
    r = await admin.post(f"/threads/{world.b_thread['id']}/runs", json={"input": "admin run"})
    assert r.status_code == 200
    r = await admin.get(f"/runs/{world.b_run['id']}")
    assert r.status_code == 200 and r.json()["tenant_id"] == "tenant-b"
    runs = (await admin.get(f"/threads/{world.b_thread['id']}/runs")).json()["data"]
    assert [x["input"] for x in runs] == ["admin run", "hello from B"]
    r = await admin.get("/users/u1/memory", params={"tenant_id": "tenant-b"})
    assert r.json()["values"] == {"secret": "B"}
    r = await admin.post(
        "/agents",
        json={"name": "x", "role": "y", "provider": "scripted", "model": "m", "tenant_id": "t-c"},
    )
    assert r.status_code == 201 and r.json()["tenant_id"] == "t-c"
    # ...and the other tenants still cannot see the admin's creation.
    assert (await world.a.get(f"/agents/{r.json()['id']}")).status_code == 404
