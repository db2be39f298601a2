"""The one error schema and its statuses: 400/422, 401, 404, 405, 409, 413, 429, 502/503.

Every failure answers ``{"code", "message", "details", "retry_after"}`` with the right
status, and nothing a client sends produces a 500 or a traceback.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from httpx_sse import aconnect_sse

from ai_agents.api.config import ApiConfig
from ai_agents.api.testing import RunningApi, free_port, running_api
from ai_agents.config import Settings
from ai_agents.errors import (
    ProviderAuthError,
    ProviderOverloaded,
    ProviderRateLimited,
)
from ai_agents.testing import ScriptedProvider, call
from ai_agents.tools.decorator import tool
from ai_agents.tools.registry import ToolRegistry

JSON = dict[str, Any]
ERROR_FIELDS = {"code", "message", "details", "retry_after"}


def assert_error(r: httpx.Response, status: int, code: str | None = None) -> JSON:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body: JSON = r.json()
    assert set(body) == ERROR_FIELDS, body
    assert isinstance(body["message"], str) and body["message"]
    assert "Traceback" not in r.text
    if code is not None:
        assert body["code"] == code, body
    return body


@pytest.fixture
def script() -> ScriptedProvider:
    return ScriptedProvider()


def _tools() -> ToolRegistry:
    registry = ToolRegistry()

    @tool(registry=registry)
    def ping() -> str:
        """Answers pong."""
        return "pong"

    return registry


@pytest.fixture
def api(settings: Settings, redis_cleanup: None, script: ScriptedProvider) -> Iterator[RunningApi]:
    config = ApiConfig(max_body_bytes=4096, default_rpm=0)
    with running_api(
        settings, providers={"scripted": script}, tools=_tools(), config=config
    ) as running:
        yield running


@pytest.fixture
async def client(api: RunningApi) -> AsyncIterator[httpx.AsyncClient]:
    key = api.create_key("acme")
    async with httpx.AsyncClient(
        base_url=api.api, headers={"Authorization": f"Bearer {key}"}, timeout=30
    ) as c:
        yield c


async def _thread(c: httpx.AsyncClient) -> str:
    agent = (
        await c.post(
            "/agents", json={"name": "A", "role": "r", "provider": "scripted", "model": "m"}
        )
    ).json()
    return str((await c.post("/threads", json={"agent_id": agent["id"]})).json()["id"])


async def test_400_malformed_requests(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/agents", content=b'{"name": ', headers={"content-type": "application/json"}
    )
    assert_error(r, 400, "invalid_request")
    r = await client.post("/agents", json={"name": 5, "role": "r", "provider": "p", "model": "m"})
    body = assert_error(r, 400, "invalid_request")
    assert body["details"]["errors"][0]["key"] == "name"
    r = await client.post(
        "/agents", json={"name": "a", "role": "r", "provider": "p", "model": "m", "nmae": "x"}
    )
    body = assert_error(r, 400, "invalid_request")
    assert "nmae" in body["details"]["errors"][0]["message"]
    r = await client.get("/threads", params={"limit": 0})
    assert_error(r, 400, "invalid_request")
    r = await client.get("/threads", params={"limit": "lots"})
    assert_error(r, 400, "invalid_request")
    r = await client.get("/threads", params={"limt": 5})  # a typo is not silently ignored
    body = assert_error(r, 400, "invalid_request")
    assert body["details"]["unknown"] == ["limt"] and "limit" in body["details"]["allowed"]
    r = await client.put("/users/u1/memory", json={"values": {}})
    assert_error(r, 400, "invalid_request")


async def test_422_invalid_values(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/agents", json={"name": "a", "role": "r", "provider": "nope", "model": "m"}
    )
    body = assert_error(r, 422, "validation_error")
    assert body["details"] == {"field": "provider"}
    r = await client.post(
        "/agents",
        json={
            "name": "a",
            "role": "r",
            "provider": "scripted",
            "model": "m",
            "memory_strategy": "psychic",
        },
    )
    assert_error(r, 422)
    thread = await _thread(client)
    r = await client.post(
        f"/threads/{thread}/runs", json={"input": "x", "stream": True, "background": True}
    )
    assert_error(r, 422, "validation_error")
    r = await client.post(f"/threads/{thread}/messages", json={"role": "user", "content": "a\x00b"})
    assert_error(r, 422, "validation_error")
    r = await client.post(
        f"/threads/{thread}/messages",
        json={"role": "user", "content": "x", "metadata": {"\x00": 1}},
    )
    assert_error(r, 422, "validation_error")
    assert_error(await client.get("/threads", params={"cursor": "not-a-cursor"}), 422)
    assert_error(await client.get("/usage"), 422)
    r = await client.get("/users/u1/memory", params={"agent_id": "not-a-uuid"})
    assert_error(r, 400)


async def test_401_authentication(api: RunningApi) -> None:
    async with httpx.AsyncClient(base_url=api.api) as c:
        assert_error(await c.get("/agents"), 401, "unauthorized")
        r = await c.get("/agents", headers={"Authorization": "Basic dXNlcjpwYXNz"})
        assert_error(r, 401, "unauthorized")
        r = await c.get("/agents", headers={"Authorization": "Bearer aak_" + "x" * 43})
        assert_error(r, 401, "unauthorized")
        r = await c.get("/agents", headers={"Authorization": "Bearer not-even-a-key"})
        assert_error(r, 401, "unauthorized")


async def test_404_and_405(client: httpx.AsyncClient) -> None:
    assert_error(await client.get(f"/threads/{uuid.uuid4()}"), 404, "not_found")
    assert_error(await client.get("/threads/not-a-uuid"), 404, "not_found")
    assert_error(await client.get("/no/such/route"), 404, "not_found")
    assert_error(await client.put("/threads"), 405, "method_not_allowed")


async def test_413_body_and_size_limits(api: RunningApi, client: httpx.AsyncClient) -> None:
    thread = await _thread(client)
    r = await client.post(
        f"/threads/{thread}/messages", json={"role": "user", "content": "x" * 10_000}
    )
    body = assert_error(r, 413, "request_too_large")
    assert body["details"]["max_body_bytes"] == 4096

    api.call(api.store.set_tenant_limits("acme", max_thread_bytes=100))
    r = await client.post(f"/threads/{thread}/messages", json={"role": "user", "content": "y" * 60})
    assert r.status_code == 201
    r = await client.post(f"/threads/{thread}/messages", json={"role": "user", "content": "z" * 60})
    body = assert_error(r, 413, "limit_exceeded")
    assert body["details"]["scope"] == "thread" and body["details"]["limit"] == 100
    assert (await client.get(f"/threads/{thread}")).json()["message_count"] == 1


async def test_429_rate_limit_per_key(api: RunningApi) -> None:
    limited = api.create_key("acme", rate_limit_rpm=3)
    other = api.create_key("acme", rate_limit_rpm=3)
    async with httpx.AsyncClient(base_url=api.api) as c:
        for _ in range(3):
            r = await c.get("/agents", headers={"Authorization": f"Bearer {limited}"})
            assert r.status_code == 200
        r = await c.get("/agents", headers={"Authorization": f"Bearer {limited}"})
        body = assert_error(r, 429, "rate_limited")
        assert 0 < body["retry_after"] <= 60
        assert 1 <= int(r.headers["Retry-After"]) <= 60
        assert body["details"]["limit_rpm"] == 3
        # The limit is per key: another key of the same tenant is not affected.
        r = await c.get("/agents", headers={"Authorization": f"Bearer {other}"})
        assert r.status_code == 200


async def test_provider_failures_are_502_or_503(
    client: httpx.AsyncClient, script: ScriptedProvider
) -> None:
    thread = await _thread(client)
    url = f"/threads/{thread}/runs"
    script.add(ProviderAuthError("bad key", provider="scripted", status=401))
    body = assert_error(await client.post(url, json={"input": "a"}), 502, "provider_auth_error")
    assert body["details"]["provider"] == "scripted"

    script.add(ProviderOverloaded("overloaded", provider="scripted", status=529))
    assert_error(await client.post(url, json={"input": "b"}), 503)

    script.add(ProviderRateLimited("slow down", provider="scripted", status=429, retry_after=7))
    r = await client.post(url, json={"input": "c"})
    body = assert_error(r, 503)
    assert body["retry_after"] == 7 and r.headers["Retry-After"] == "7"

    # A stream that fails before its first event is an ordinary HTTP error...
    script.add(ProviderAuthError("bad key", provider="scripted", status=401))
    r = await client.post(url, json={"input": "d", "stream": True})
    assert_error(r, 502, "provider_auth_error")
    # ...and nothing of the failed turns was saved.
    assert (await client.get(f"/threads/{thread}")).json()["message_count"] == 0

    script.add("fine")
    r = await client.post(url, json={"input": "e"})
    assert r.status_code == 200 and r.json()["content"] == "fine"


async def test_stream_error_after_the_first_event_is_an_sse_error(
    client: httpx.AsyncClient, script: ScriptedProvider
) -> None:
    agent = (
        await client.post(
            "/agents",
            json={
                "name": "A",
                "role": "r",
                "provider": "scripted",
                "model": "m",
                "tools": ["ping"],
            },
        )
    ).json()
    thread = (await client.post("/threads", json={"agent_id": agent["id"]})).json()["id"]
    script.add(call("ping"), ProviderOverloaded("down", provider="scripted", status=503))
    events = []
    async with aconnect_sse(
        client, "POST", f"/threads/{thread}/runs", json={"input": "go", "stream": True}
    ) as source:
        assert source.response.status_code == 200
        async for sse in source.aiter_sse():
            events.append((sse.event, sse.json()))
    assert [name for name, _ in events] == ["run_started", "tool_call", "tool_result", "error"]
    error = events[-1][1]
    assert error["status"] == 503 and error["code"] == "provider_overloaded"
    assert (await client.get(f"/threads/{thread}")).json()["message_count"] == 0


async def test_dependencies_down_are_503(settings: Settings, redis_cleanup: None) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    with running_api(Settings(database_url=settings.database_url, redis_url=dead)) as api:
        key = api.create_key("acme")
        async with httpx.AsyncClient(base_url=api.api) as c:
            r = await c.get("/health")
            assert r.status_code == 503
            checks = r.json()["checks"]
            assert checks["postgres"]["ok"] and not checks["redis"]["ok"]
            assert r.json()["status"] == "unavailable"
            # The per-key rate limiter needs Redis: it refuses rather than run unlimited.
            r = await c.get("/agents", headers={"Authorization": f"Bearer {key}"})
            assert_error(r, 503, "rate_limiter_unavailable")

    dead_db = f"postgresql://postgres@127.0.0.1:{free_port()}/nothing"
    with running_api(Settings(database_url=dead_db, redis_url=settings.redis_url)) as api:
        async with httpx.AsyncClient(base_url=api.api) as c:
            r = await c.get("/agents", headers={"Authorization": "Bearer aak_" + "x" * 43})
            assert_error(r, 503, "storage_error")
            r = await c.get("/health")
            assert r.status_code == 503 and not r.json()["checks"]["postgres"]["ok"]


def test_no_thread_leaks() -> None:
    # The servers of the tests above ran in daemon threads: all must have stopped.
    assert not [t for t in threading.enumerate() if t.name.startswith("api-")]
