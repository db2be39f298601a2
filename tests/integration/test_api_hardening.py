"""Hardening of the REST API against hostile or sloppy clients, over real HTTP.

- every body endpoint (listed from the app's own routes) refuses JSON nested deeper than
  ``max_json_depth`` with a 400 naming the problem, and a body that is not JSON with 415;
- percent escapes that are not UTF-8 are a 400, not a U+FFFD that aliases another key;
- 5xx answers and the health check say what is down, never where (no host, port, URL or
  environment variable name); an unknown tool names only itself;
- a flood of bad keys costs a bounded number of database lookups, then 429s; the key
  cache evicts least recently used entries one by one;
- a key revoked through one API process is refused by another at the very next request.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import asyncpg
import httpx
import pytest
from httpx_sse import aconnect_sse
from litestar.routes import HTTPRoute
from sqlalchemy import event

from ai_agents.api.config import ApiConfig
from ai_agents.api.keys import KeyStore
from ai_agents.api.testing import RunningApi, free_port, running_api
from ai_agents.config import Settings
from ai_agents.errors import ConfigurationError, ProviderConnectionError
from ai_agents.redis_client import connect, subscribers
from ai_agents.redis_client import pubsub as redis_pubsub
from ai_agents.testing import ScriptedProvider, call
from ai_agents.tools.decorator import tool
from ai_agents.tools.registry import ToolRegistry
from tests.waiting import wait_until

JSON = dict[str, Any]
MAX_BODY = 64 * 1024
#: What must never appear in an answer about the server's own infrastructure.
SERVER_SECRETS = ("127.0.0.1", "localhost", "redis://", "postgresql://", "AI_AGENTS_", "Errno")


@pytest.fixture
def script() -> ScriptedProvider:
    return ScriptedProvider()


def _tools() -> ToolRegistry:
    registry = ToolRegistry()

    @tool(registry=registry)
    def ping() -> str:
        """Answers pong."""
        return "pong"

    @tool(registry=registry)
    def internal_payroll_export() -> str:
        """A tool whose very name is nobody's business outside the server."""
        return "secret"

    return registry


def _config(**overrides: Any) -> ApiConfig:
    defaults: dict[str, Any] = {"max_body_bytes": MAX_BODY, "default_rpm": 0}
    return ApiConfig(**{**defaults, **overrides})


@pytest.fixture
def api(settings: Settings, redis_cleanup: None, script: ScriptedProvider) -> Iterator[RunningApi]:
    with running_api(
        settings, providers={"scripted": script}, tools=_tools(), config=_config()
    ) as running:
        yield running


@pytest.fixture
async def client(api: RunningApi) -> AsyncIterator[httpx.AsyncClient]:
    key = api.create_key("acme", admin=True)
    async with httpx.AsyncClient(
        base_url=api.api, headers={"Authorization": f"Bearer {key}"}, timeout=30
    ) as c:
        yield c


def _body_endpoints(api: RunningApi) -> list[tuple[str, str]]:
    """(method, path) of every operation that takes a request body, from the app itself."""
    found = []
    for route in api.app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            if "data" not in handler.parsed_fn_signature.parameters:
                continue
            path = route.path_format  # /api/v1 and the OpenAI-compatible /v1 alike
            for name in route.path_parameters:
                value = "u1" if name in ("user_id", "key") else str(uuid.uuid4())
                path = path.replace("{" + name + "}", value)
            for method in handler.http_methods:
                found.append((method, path))
    return sorted(found)


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


async def test_every_body_endpoint_refuses_deep_json_and_non_json(
    api: RunningApi, client: httpx.AsyncClient
) -> None:
    endpoints = _body_endpoints(api)
    assert len(endpoints) >= 9, endpoints
    assert ("POST", "/api/v1/agents") in endpoints
    assert ("PUT", "/api/v1/users/u1/memory/u1") in endpoints
    assert ("POST", "/v1/chat/completions") in endpoints
    json_type = {"content-type": "application/json"}
    for method, path in endpoints:
        url = api.url + path
        body = '{"metadata": ' + _deep(999) + "}"
        r = await client.request(method, url, content=body, headers=json_type)
        assert r.status_code == 400, (method, path, r.text)
        code, message, details = _error_of(r)
        assert code == "invalid_request"
        assert "nested too deeply" in message and "32" in message
        assert details in ({"max_depth": 32}, None)  # /v1 answers OpenAI's shape

        for headers in ({"content-type": "text/plain"}, {}, {"content-type": "text/json"}):
            r = await client.request(method, url, content=b'{"a": 1}', headers=headers)
            assert r.status_code == 415, (method, path, headers, r.text)
            assert _error_of(r)[0] == "unsupported_media_type"
            assert "application/json" in _error_of(r)[1]


def _error_of(r: httpx.Response) -> tuple[str, str, dict[str, object] | None]:
    """(code, message, details) of an /api/v1 error, or of a /v1 one (OpenAI's shape)."""
    body = r.json()
    if "error" in body:
        return body["error"]["code"], body["error"]["message"], None
    return body["code"], body["message"], body["details"]


async def test_depth_limit_boundary_and_size_limits(client: httpx.AsyncClient) -> None:
    agent = (
        await client.post(
            "/agents", json={"name": "A", "role": "r", "provider": "scripted", "model": "m"}
        )
    ).json()

    def thread_body(metadata_depth: int) -> str:
        # The body is level 1, ``metadata`` level 2: metadata_depth 31 makes 32 in all.
        inner: str = "1"
        for _ in range(metadata_depth - 1):
            inner = '{"a": ' + inner + "}"
        return '{"agent_id": "' + str(agent["id"]) + '", "metadata": {"a": ' + inner + "}}"

    r = await client.post(
        "/threads", content=thread_body(31), headers={"content-type": "application/json"}
    )
    assert r.status_code == 201, r.text
    r = await client.post(
        "/threads",
        content=thread_body(32),
        headers={"content-type": "application/json; charset=utf-8"},
    )
    assert r.status_code == 400 and r.json()["details"] == {"max_depth": 32}
    # A +json media type is JSON too; another charset is not.
    r = await client.patch(
        f"/agents/{agent['id']}",
        content=b'{"goal": "g"}',
        headers={"content-type": "application/merge-patch+json"},
    )
    assert r.status_code == 200, r.text
    r = await client.patch(
        f"/agents/{agent['id']}",
        content=b'{"goal": "g"}',
        headers={"content-type": "application/json; charset=latin-1"},
    )
    assert r.status_code == 415
    # Huge arrays and strings are bounded by the body size limit.
    for value in ([0] * MAX_BODY, "x" * MAX_BODY, {str(i): i for i in range(MAX_BODY // 4)}):
        r = await client.post("/threads", json={"agent_id": agent["id"], "metadata": {"v": value}})
        assert r.status_code == 413 and r.json()["code"] == "request_too_large"
    # A body-less fork still needs no content type.
    thread = (await client.post("/threads", json={"agent_id": agent["id"]})).json()
    assert (await client.post(f"/threads/{thread['id']}/fork")).status_code == 201


async def test_invalid_utf8_in_path_and_query_is_400(client: httpx.AsyncClient) -> None:
    r = await client.put("/users/u1/memory/%C3%BF", json={"value": "kept"})
    assert r.status_code == 200
    for path in ("/users/u1/memory/%FE", "/users/u1/memory/%FF", "/users/%C3/memory"):
        r = await client.put(path, json={"value": "overwritten?"})
        assert r.status_code == 400, (path, r.text)
        assert r.json()["details"] == {"location": "path"}
        assert "UTF-8" in r.json()["message"]
    r = await client.get("/users/u1/memory")
    assert r.json()["values"] == {"ÿ": "kept"}  # nothing was written under U+FFFD
    r = await client.get("/threads?user_id=%FE")
    assert r.status_code == 400 and r.json()["details"] == {"location": "query"}
    r = await client.get("/threads?user_id=%C3%A9")
    assert r.status_code == 200


def _assert_reveals_nothing(text: str, *extra: str) -> None:
    for secret in (*SERVER_SECRETS, *extra):
        assert secret not in text, f"{secret!r} leaked: {text}"


async def test_dependencies_down_are_named_without_hosts(
    settings: Settings, redis_cleanup: None
) -> None:
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    with running_api(
        Settings(database_url=settings.database_url, redis_url=dead_redis),
        config=_config(default_rpm=600),  # the per-key limiter needs Redis
    ) as api:
        key = api.create_key("acme")
        async with httpx.AsyncClient(base_url=api.api) as c:
            r = await c.get("/health")
            assert r.status_code == 503
            assert r.json()["checks"]["redis"]["error"] == "Redis unavailable"
            _assert_reveals_nothing(r.text, dead_redis.split(":")[2].split("/")[0])
            r = await c.get("/agents", headers={"Authorization": f"Bearer {key}"})
            assert r.status_code == 503 and r.json()["code"] == "rate_limiter_unavailable"
            assert "Redis" in r.json()["message"]
            _assert_reveals_nothing(r.text, "fail_open")

    port = free_port()
    dead_db = f"postgresql://postgres@127.0.0.1:{port}/nothing"
    with running_api(
        Settings(database_url=dead_db, redis_url=settings.redis_url), config=_config()
    ) as api:
        async with httpx.AsyncClient(base_url=api.api) as c:
            r = await c.get("/agents", headers={"Authorization": "Bearer aak_" + "x" * 43})
            assert r.status_code == 503
            assert r.json() == {
                "code": "storage_error",
                "message": "database unavailable",
                "details": {},
                "retry_after": None,
            }
            r = await c.get("/health")
            assert r.json()["checks"]["postgres"]["error"] == "database unavailable"
            _assert_reveals_nothing(r.text, str(port))


async def test_provider_and_configuration_failures_reveal_no_infrastructure(
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
    url = f"/threads/{thread}/runs"
    internal = "http://10.20.30.40:11434"
    script.add(ProviderConnectionError(f"cannot reach ollama at {internal}", provider="scripted"))
    r = await client.post(url, json={"input": "a"})
    assert r.status_code == 503 and r.json()["code"] == "provider_connection_error"
    assert r.json()["message"] == "model provider 'scripted' cannot be reached"
    assert r.json()["details"]["provider"] == "scripted"
    _assert_reveals_nothing(r.text, "10.20.30.40")

    script.add(ConfigurationError("set AI_AGENTS_PROVIDERS: /etc/ai-agents/providers.json"))
    r = await client.post(url, json={"input": "b"})
    assert r.status_code == 503 and r.json()["code"] == "configuration_error"
    _assert_reveals_nothing(r.text, "/etc/ai-agents")

    # The same in a stream's error event.
    script.add(call("ping"), ProviderConnectionError(f"down: {internal}", provider="scripted"))
    async with aconnect_sse(client, "POST", url, json={"input": "c", "stream": True}) as source:
        events = [(sse.event, sse.data) async for sse in source.aiter_sse()]
    assert events[-1][0] == "error"
    assert "model provider 'scripted' cannot be reached" in events[-1][1]
    _assert_reveals_nothing(events[-1][1], "10.20.30.40")

    # The runs recorded those failures; reading them back reveals nothing either.
    runs = (await client.get(f"/threads/{thread}/runs", params={"limit": 10})).json()["data"]
    errors = [run["last_error"] for run in runs]
    assert {e["code"] for e in errors} == {"provider_connection_error", "configuration_error"}
    assert "the model provider cannot be reached" in [e["message"] for e in errors]
    for run in runs:
        text = (await client.get(f"/runs/{run['id']}")).text
        _assert_reveals_nothing(text, "10.20.30.40")
        _assert_reveals_nothing(text, "/etc/ai-agents")


async def test_unknown_tool_names_only_the_unknown_names(client: httpx.AsyncClient) -> None:
    base = {"name": "A", "role": "r", "provider": "scripted", "model": "m"}
    r = await client.post("/agents", json={**base, "tools": ["ping", "nope", "nix"]})
    assert r.status_code == 422, r.text
    _assert_reveals_nothing(r.text, "internal_payroll_export", "registered")
    assert r.json() == {
        "code": "unknown_tool",
        "message": "unknown tool(s): nope, nix",
        "details": {"field": "tools", "unknown": ["nope", "nix"]},
        "retry_after": None,
    }
    agent = (await client.post("/agents", json=base)).json()
    r = await client.patch(f"/agents/{agent['id']}", json={"tools": ["nope"]})
    assert r.status_code == 422 and r.json()["details"]["unknown"] == ["nope"]
    answers = [r.text]
    thread = (await client.post("/threads", json={"agent_id": agent["id"]})).json()["id"]
    r = await client.post(f"/threads/{thread}/runs", json={"input": "x", "tools": ["nope"]})
    assert r.status_code == 422 and r.json()["details"]["unknown"] == ["nope"]
    answers.append(r.text)
    for answer in answers:
        _assert_reveals_nothing(answer, "internal_payroll_export", "ping", "registered")
    # The library's own message stays helpful for developers.
    with pytest.raises(Exception, match="registered: internal_payroll_export, ping"):
        _tools().resolve(["nope"])


@contextmanager
def _key_lookups(api: RunningApi) -> Iterator[list[str]]:
    """Every SELECT on api_keys the app's engine sends, while the block runs."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "api_keys" in statement:
            seen.append(statement)

    async def engine() -> Any:
        return api.store.engine.sync_engine

    sync_engine = api.call(engine())
    event.listen(sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(sync_engine, "before_cursor_execute", record)


def _random_key() -> str:
    return "aak_" + uuid.uuid4().hex + uuid.uuid4().hex[:11]


async def test_a_flood_of_bad_keys_costs_bounded_lookups_then_429(
    settings: Settings, redis_cleanup: None
) -> None:
    config = _config(auth_failure_limit=20, auth_failure_window=60.0, key_cache_ttl=300.0)
    with running_api(settings, config=config) as api:
        good = api.create_key("acme")
        async with httpx.AsyncClient(base_url=api.api, timeout=30) as c:
            assert (await c.get("/threads", headers=_bearer(good))).status_code == 200
            with _key_lookups(api) as lookups:
                # The same bad key again and again: looked up once (negative cache).
                repeated = _random_key()
                for _ in range(5):
                    r = await c.get("/threads", headers=_bearer(repeated))
                    assert r.status_code == 401
                assert len(lookups) == 1
                answers: list[httpx.Response] = []
                for _ in range(30):  # 300 random keys, 10 at a time
                    answers += await asyncio.gather(
                        *(c.get("/threads", headers=_bearer(_random_key())) for _ in range(10))
                    )
                assert len(lookups) <= 20, len(lookups)
            statuses = [a.status_code for a in answers]
            assert statuses.count(401) == 15 and statuses.count(429) == 285
            for refused in (a for a in answers if a.status_code == 429):
                assert 1 <= int(refused.headers["retry-after"]) <= 60
                body = refused.json()
                assert body["code"] == "rate_limited" and 0 < body["retry_after"] <= 60
                assert body["details"]["reason"] == "failed_authentications"
            # A key this process knows to be valid is never throttled...
            assert (await c.get("/threads", headers=_bearer(good))).status_code == 200
            # ...a key it does not know yet waits like any other attempt from the address.
            fresh = api.create_key("acme")
            assert (await c.get("/threads", headers=_bearer(fresh))).status_code == 429


async def _twelve_while_the_lookup_waits(
    api: RunningApi, settings: Settings, client: httpx.AsyncClient, token: str
) -> tuple[list[httpx.Response], list[str]]:
    """Twelve requests with *token* at once while ``api_keys`` is locked, so the key's
    lookup waits until all of them have reached authentication; their answers, and the
    lookups the app sent."""
    locker = await asyncpg.connect(settings.database_url)
    try:
        lock = locker.transaction()
        await lock.start()
        await locker.execute("LOCK TABLE api_keys IN ACCESS EXCLUSIVE MODE")
        with _key_lookups(api) as lookups:
            requests = asyncio.gather(
                *(client.get("/threads", headers=_bearer(token)) for _ in range(12))
            )
            # Sent, and held by the lock (or, behind a pooler, by the server connection
            # the lock holds) until the rollback below.
            await wait_until(lambda: bool(lookups), what="the key lookup to be sent")
            await asyncio.sleep(0.3)  # every request has reached authentication
            await lock.rollback()
            answers = await requests
        return list(answers), lookups
    finally:
        await locker.close()


async def test_a_busy_key_whose_cache_entry_expired_costs_one_lookup_and_no_429(
    settings: Settings, redis_cleanup: None
) -> None:
    """Requests in flight when a valid key's entry expires share one re-verification and
    are not counted as failed authentications of their address (with a failure limit of
    2, twelve of them at once would otherwise be refused with 429)."""
    config = _config(auth_failure_limit=2, auth_failure_window=60.0, key_cache_ttl=0.2)
    with running_api(settings, config=config) as api:
        good = api.create_key("acme")
        async with httpx.AsyncClient(base_url=api.api, timeout=30) as c:
            assert (await c.get("/threads", headers=_bearer(good))).status_code == 200
            await asyncio.sleep(0.3)  # the entry is due for re-verification
            # The re-verification waits on a lock while the twelve requests arrive.
            answers, lookups = await _twelve_while_the_lookup_waits(api, settings, c, good)
            assert [a.status_code for a in answers] == [200] * 12
            assert len(lookups) == 1


async def test_a_burst_with_a_key_this_process_has_not_met_costs_one_lookup_and_no_429(
    settings: Settings, redis_cleanup: None
) -> None:
    """A process that just started (or scaled up) gets many requests with one valid key
    at once: they share one lookup and only that one is counted against the address (with
    a failure limit of 2, all but two of them were refused with 429)."""
    config = _config(auth_failure_limit=2, auth_failure_window=60.0)
    with running_api(settings, config=config) as api:
        good = api.create_key("acme")
        async with httpx.AsyncClient(base_url=api.api, timeout=30) as c:
            answers, lookups = await _twelve_while_the_lookup_waits(api, settings, c, good)
            assert [a.status_code for a in answers] == [200] * 12
            assert len(lookups) == 1
            # A bad key sharing a lookup still counts as a failure each time.
            bad = good[:-4] + "zzzz"
            answers = await asyncio.gather(
                *(c.get("/threads", headers=_bearer(bad)) for _ in range(4))
            )
            assert {a.status_code for a in answers} <= {401, 429}
            assert (await c.get("/threads", headers=_bearer(bad))).status_code == 429


async def test_the_key_cache_evicts_the_least_recently_used_key(api: RunningApi) -> None:
    keys = KeyStore(api.store, cache_ttl=300.0, cache_size=2)

    async def secrets() -> list[str]:
        return [(await keys.create(tenant_id="acme", name=f"k{i}")).secret for i in range(3)]

    one, two, three = api.call(secrets())

    def authenticate(secret: str) -> int:
        with _key_lookups(api) as lookups:
            assert api.call(keys.authenticate(secret)) is not None
        return len(lookups)

    assert [authenticate(one), authenticate(two)] == [1, 1]
    assert authenticate(one) == 0  # cached; "two" is now the least recently used
    assert authenticate(three) == 1  # evicts "two" only
    assert authenticate(one) == 0
    assert authenticate(two) == 1


def _bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


@contextmanager
def _serve_process(settings: Settings) -> Iterator[str]:
    """``ai-agents serve`` in its own process; yields its /api/v1 URL."""
    assert settings.database_url and settings.redis_url
    env = {
        **os.environ,
        "AI_AGENTS_DATABASE_URL": settings.database_url,
        "AI_AGENTS_REDIS_URL": settings.redis_url,
        "AI_AGENTS_REDIS_PREFIX": settings.redis_prefix,
        "AI_AGENTS_API_KEY_CACHE_TTL": "300",  # only the announcement can drop a key
    }
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "ai_agents", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}/api/v1"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and server.poll() is None, "serve did not start"
            time.sleep(0.1)
        yield base
    finally:
        server.send_signal(signal.SIGINT)
        output = server.communicate(timeout=30)[0]
        assert server.returncode == 0, output


async def _subscribers(settings: Settings, channel: str, wanted: int) -> None:
    """Wait until *wanted* processes listen for revocations (observable state)."""
    redis = connect(str(settings.redis_url))

    async def listening() -> bool:
        # On a cluster: on the node the channel is published on (see redis_client.pubsub).
        return await subscribers(redis, channel) >= wanted

    try:
        await wait_until(
            listening, timeout=15, interval=0.02, what=f"{wanted} subscribers of {channel}"
        )
    finally:
        await redis.aclose()


@pytest.mark.slow  # starts an API server process
async def test_a_revocation_reaches_every_api_process_at_once(
    settings: Settings, redis_cleanup: None
) -> None:
    config = _config(key_cache_ttl=300.0)
    with running_api(settings, config=config) as a, _serve_process(settings) as b_url:
        await _subscribers(settings, a.store.keys.api_key_revoked_channel, 2)
        admin = a.create_key("ops", admin=True)
        keys: KeyStore = a.app.state.key_store
        async with (
            httpx.AsyncClient(base_url=a.api, timeout=30) as through_a,
            httpx.AsyncClient(base_url=b_url, timeout=30) as through_b,
        ):
            for revoke_via, check_via in [(through_a, through_b)] * 5 + [(through_b, through_a)]:
                created = a.call(keys.create(tenant_id="acme", name="short-lived"))
                headers = _bearer(created.secret)
                # Both processes know the key (cached for 300 s).
                assert (await through_a.get("/threads", headers=headers)).status_code == 200
                assert (await through_b.get("/threads", headers=headers)).status_code == 200
                r = await revoke_via.delete(f"/keys/{created.key.id}", headers=_bearer(admin))
                assert r.status_code == 200 and r.json()["revoked_at"]
                r = await check_via.get("/threads", headers=headers)
                assert r.status_code == 401, r.text


class _SlowApiProcess:
    """Another API process, played by the test: it hears revocations and confirms each
    one only after *delay* seconds (or never, with ``delay=None``)."""

    def __init__(self, settings: Settings, api: RunningApi, delay: float | None) -> None:
        self.redis = connect(str(settings.redis_url))
        self.keys = api.store.keys
        self.delay = delay
        self.events: list[str] = []

    async def listen_once(self, subscribed: asyncio.Event) -> None:
        channel = self.keys.api_key_revoked_channel
        pubsub = await redis_pubsub(self.redis, [channel], ignore_subscribe_messages=True)
        await pubsub.subscribe(channel)
        subscribed.set()
        try:
            while (message := await pubsub.get_message(timeout=1.0)) is None:
                pass
            if self.delay is None:
                return
            await asyncio.sleep(self.delay)
            self.events.append("confirmed")
            acks = self.keys.api_key_revocation_acks(message["data"].decode())
            await self.redis.rpush(acks, "1")
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call]


async def _revoke_beside(
    settings: Settings, delay: float | None
) -> tuple[_SlowApiProcess, httpx.Response]:
    with running_api(settings, config=_config(key_cache_ttl=300.0)) as a:
        other = _SlowApiProcess(settings, a, delay)
        subscribed = asyncio.Event()
        listener = asyncio.create_task(other.listen_once(subscribed))
        try:
            await asyncio.wait_for(subscribed.wait(), 15)
            channel = a.store.keys.api_key_revoked_channel
            await _subscribers(settings, channel, 2)  # the API process and the slow one
            admin = a.create_key("ops", admin=True)
            keys: KeyStore = a.app.state.key_store
            created = a.call(keys.create(tenant_id="acme", name="short-lived"))
            async with httpx.AsyncClient(base_url=a.api, timeout=30) as client:
                revoked = await client.delete(f"/keys/{created.key.id}", headers=_bearer(admin))
            other.events.append("revoked")
            await asyncio.wait_for(listener, 15)
        finally:
            listener.cancel()
            await other.redis.aclose()
    return other, revoked


async def test_a_revocation_returns_once_every_api_process_dropped_the_key(
    settings: Settings, redis_cleanup: None
) -> None:
    # Without the wait, DELETE returns at once and a request to the slow process in the
    # meantime would still pass with the revoked key.
    other, revoked = await _revoke_beside(settings, delay=0.5)
    assert revoked.status_code == 200, revoked.text
    assert other.events == ["confirmed", "revoked"]


async def test_a_revocation_does_not_wait_for_ever_on_a_silent_process(
    settings: Settings, redis_cleanup: None, caplog: pytest.LogCaptureFixture
) -> None:
    other, revoked = await _revoke_beside(settings, delay=None)
    assert revoked.status_code == 200, revoked.text
    assert other.events == ["revoked"]
    assert "confirmed by 1 of 2 API processes" in caplog.text
