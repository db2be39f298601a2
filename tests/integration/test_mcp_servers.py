"""Issue 17: MCP servers configured on agents — validation at save time (the SSRF gate,
the stdio allowlist), secrets encrypted at rest and never answered, tenant isolation,
over the store and over REST."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text

from ai_agents import AgentDefinition, AgentStore
from ai_agents.api.config import ApiConfig
from ai_agents.api.testing import RunningApi, running_api
from ai_agents.config import Settings
from ai_agents.errors import (
    ConfigurationError,
    ConflictError,
    NotFoundError,
    UsageError,
    ValidationError,
)
from ai_agents.mcp import storage as mcp_storage
from ai_agents.mcp.source import McpToolSource
from ai_agents.testing import FunctionProvider

DEFINITION = AgentDefinition(name="Helper", role="You help.")
PUBLIC_IP = "93.184.215.14"
PUBLIC_URL = f"https://{PUBLIC_IP}/mcp"
TOKEN = "tok-SECRET-7f3a9c2e-bearer"
HEADER_VALUE = "hdr-SECRET-55e1b0c4-value"
KEY = Fernet.generate_key().decode()


def _mcp_settings(settings: Settings, **kw: Any) -> Settings:
    values: dict[str, Any] = {
        "mcp_allowed_hosts": (PUBLIC_IP, "localhost", "*.internal.test"),
        "mcp_stdio_commands": {"time": ["python", "-m", "mcp_server_time"]},
        "mcp_secret_key": KEY,
    }
    values.update(kw)
    return replace(settings, **values)


@pytest.fixture
async def mcp_store(settings: Settings, redis_cleanup: None) -> AsyncIterator[AgentStore]:
    s = AgentStore(settings=_mcp_settings(settings))
    try:
        yield s
    finally:
        await s.close()


async def _agent(store: AgentStore) -> uuid.UUID:
    return await store.create_agent(DEFINITION, provider="openai", model="gpt-4o")


# --- the SSRF gate at save time -----------------------------------------------------

REFUSED_HOST = "host is not allowed for MCP servers"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/mcp",
        "http://localhost:8080/mcp",  # allowlisted name, resolves to loopback
        "http://10.0.0.1/mcp",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/mcp",
        "http://[::ffff:127.0.0.1]/mcp",
        "http://2130706433/mcp",
        "http://0177.0.0.1/mcp",
        "http://0.0.0.0/mcp",
    ],
)
async def test_private_addresses_are_refused(
    settings: Settings, redis_cleanup: None, url: str
) -> None:
    # Every host allowed: only the address check stands between the tenant and the URL.
    async with AgentStore(settings=_mcp_settings(settings, mcp_allowed_hosts=("*",))) as store:
        agent_id = await _agent(store)
        with pytest.raises(ValidationError, match=REFUSED_HOST) as info:
            await store.add_mcp_server(agent_id, name="s", transport="streamable_http", url=url)
        assert info.value.details["field"] == "url"
        assert await store.list_mcp_servers(agent_id) == []


async def test_private_addresses_allowed_when_configured(
    settings: Settings, redis_cleanup: None
) -> None:
    s = _mcp_settings(settings, mcp_allowed_hosts=("*",), mcp_allow_private_addresses=True)
    async with AgentStore(settings=s) as store:
        agent_id = await _agent(store)
        info = await store.add_mcp_server(
            agent_id, name="local", transport="sse", url="http://127.0.0.1:9000/sse"
        )
        assert info.url == "http://127.0.0.1:9000/sse"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://93.184.215.15/mcp", REFUSED_HOST),  # public but not allowlisted
        ("https://example.org/mcp", REFUSED_HOST),
        ("file:///etc/passwd", "scheme must be http or https"),
        ("gopher://93.184.215.14/", "scheme must be http or https"),
        (f"https://user:pw@{PUBLIC_IP}/mcp", "must not contain credentials"),
        (f"https://token@{PUBLIC_IP}/mcp", "must not contain credentials"),
        ("https:///mcp", "a host is required"),
        (f"https://{PUBLIC_IP}/a b", "whitespace"),
    ],
)
async def test_bad_urls_are_refused(mcp_store: AgentStore, url: str, message: str) -> None:
    agent_id = await _agent(mcp_store)
    with pytest.raises(ValidationError, match=message):
        await mcp_store.add_mcp_server(agent_id, name="s", transport="streamable_http", url=url)


async def test_unlisted_and_private_get_the_same_message(mcp_store: AgentStore) -> None:
    agent_id = await _agent(mcp_store)
    messages = []
    for url in ("http://93.184.215.15/", "http://localhost/", "http://nothing.internal.test/"):
        with pytest.raises(ValidationError) as info:
            await mcp_store.add_mcp_server(agent_id, name="s", transport="sse", url=url)
        messages.append(info.value.message)
    assert len(set(messages)) == 1, messages


async def test_no_allowlist_means_no_remote_server(settings: Settings, redis_cleanup: None) -> None:
    async with AgentStore(settings=_mcp_settings(settings, mcp_allowed_hosts=())) as store:
        agent_id = await _agent(store)
        with pytest.raises(ValidationError, match=REFUSED_HOST):
            await store.add_mcp_server(agent_id, name="s", transport="sse", url=PUBLIC_URL)


async def test_allowlisted_public_host_is_accepted(mcp_store: AgentStore) -> None:
    agent_id = await _agent(mcp_store)
    info = await mcp_store.add_mcp_server(
        agent_id,
        name="docs",
        transport="streamable_http",
        url=PUBLIC_URL,
        allowed_tools=["search", "fetch", "search"],
        timeout=12,
    )
    assert info.name == "docs"
    assert info.transport == "streamable_http"
    assert info.url == PUBLIC_URL
    assert info.command is None
    assert info.allowed_tools == ("search", "fetch")
    assert info.timeout == 12.0
    assert info.version == 1
    assert info.header_names == ()
    assert info.has_bearer_token is False
    assert await mcp_store.list_mcp_servers(agent_id) == [info]
    assert await mcp_store.get_mcp_server(agent_id, info.id) == info


# --- stdio ------------------------------------------------------------------------


async def test_stdio_only_for_allowlisted_names(mcp_store: AgentStore) -> None:
    agent_id = await _agent(mcp_store)
    info = await mcp_store.add_mcp_server(agent_id, name="clock", transport="stdio", command="time")
    assert (info.command, info.url) == ("time", None)
    for command in ("bash", "python -m mcp_server_time", "/bin/sh", "TIME"):
        with pytest.raises(ValidationError, match="not an allowed stdio MCP server") as exc:
            await mcp_store.add_mcp_server(agent_id, name="x", transport="stdio", command=command)
        assert exc.value.details["field"] == "command"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"transport": "stdio", "command": "time", "url": PUBLIC_URL}, "url"),
        ({"transport": "stdio"}, "command"),
        ({"transport": "sse", "url": PUBLIC_URL, "command": "time"}, "command"),
        ({"transport": "sse"}, "url"),
        ({"transport": "websocket", "url": PUBLIC_URL}, "transport"),
        ({"transport": "stdio", "command": "time", "bearer_token": TOKEN}, "bearer_token"),
        ({"transport": "sse", "url": PUBLIC_URL, "name": "has space"}, "name"),
        ({"transport": "sse", "url": PUBLIC_URL, "name": "x" * 33}, "name"),
        ({"transport": "sse", "url": PUBLIC_URL, "name": ""}, "name"),
        (
            {"transport": "sse", "url": PUBLIC_URL, "headers": {"X-A": "a\r\nInjected: 1"}},
            "headers",
        ),
        ({"transport": "sse", "url": PUBLIC_URL, "headers": {"X A": "a"}}, "headers"),
        ({"transport": "sse", "url": PUBLIC_URL, "headers": {"Host": "evil"}}, "headers"),
        ({"transport": "sse", "url": PUBLIC_URL, "headers": {"x-a": "1", "X-A": "2"}}, "headers"),
        ({"transport": "sse", "url": PUBLIC_URL, "bearer_token": "a\nb"}, "bearer_token"),
        ({"transport": "sse", "url": PUBLIC_URL, "bearer_token": ""}, "bearer_token"),
        ({"transport": "sse", "url": PUBLIC_URL, "allowed_tools": "search"}, "allowed_tools"),
        ({"transport": "sse", "url": PUBLIC_URL, "allowed_tools": ["a"] * 101}, "allowed_tools"),
        ({"transport": "sse", "url": PUBLIC_URL, "allowed_tools": ["bad name"]}, "allowed_tools"),
        ({"transport": "sse", "url": PUBLIC_URL, "timeout": 0}, "timeout"),
        ({"transport": "sse", "url": PUBLIC_URL, "timeout": True}, "timeout"),
        ({"transport": "sse", "url": PUBLIC_URL, "timeout": float("nan")}, "timeout"),
    ],
)
async def test_field_validation(mcp_store: AgentStore, kwargs: dict[str, Any], field: str) -> None:
    agent_id = await _agent(mcp_store)
    kwargs = {"name": "s", **kwargs}
    with pytest.raises(ValidationError) as info:
        await mcp_store.add_mcp_server(agent_id, **kwargs)
    assert info.value.details["field"] == field, info.value
    assert await mcp_store.list_mcp_servers(agent_id) == []


async def test_names_unique_and_count_limited(mcp_store: AgentStore) -> None:
    agent_id = await _agent(mcp_store)
    await mcp_store.add_mcp_server(agent_id, name="a", transport="sse", url=PUBLIC_URL)
    with pytest.raises(ConflictError, match="already has an MCP server named 'a'"):
        await mcp_store.add_mcp_server(agent_id, name="a", transport="stdio", command="time")
    # The same name on another agent is fine.
    other = await _agent(mcp_store)
    await mcp_store.add_mcp_server(other, name="a", transport="stdio", command="time")
    for i in range(1, mcp_storage.MAX_SERVERS_PER_AGENT):
        await mcp_store.add_mcp_server(agent_id, name=f"s{i}", transport="stdio", command="time")
    with pytest.raises(ValidationError, match="at most 20 MCP servers"):
        await mcp_store.add_mcp_server(agent_id, name="one-more", transport="sse", url=PUBLIC_URL)


# --- secrets ----------------------------------------------------------------------


async def _raw_rows(store: AgentStore) -> list[Any]:
    async with store.engine.connect() as conn:
        return list((await conn.execute(text("SELECT * FROM agent_mcp_servers"))).mappings())


async def test_secrets_encrypted_at_rest_and_never_returned(mcp_store: AgentStore) -> None:
    agent_id = await _agent(mcp_store)
    info = await mcp_store.add_mcp_server(
        agent_id,
        name="docs",
        transport="streamable_http",
        url=PUBLIC_URL,
        headers={"X-Api-Key": HEADER_VALUE},
        bearer_token=TOKEN,
    )
    assert info.header_names == ("X-Api-Key",)
    assert info.has_bearer_token is True
    for shown in (info, *(await mcp_store.list_mcp_servers(agent_id))):
        assert TOKEN not in repr(shown) and HEADER_VALUE not in repr(shown)
        assert not hasattr(shown, "headers") and not hasattr(shown, "bearer_token")

    (row,) = await _raw_rows(mcp_store)
    blob = bytes(row["secrets"])
    assert blob
    for secret in (TOKEN, HEADER_VALUE):
        assert secret.encode() not in blob
        assert secret not in str(dict(row))
    assert row["header_names"] == ["X-Api-Key"]

    # The runtime gets them back decrypted.
    async with mcp_store.engine.connect() as conn:
        (config,) = await mcp_storage.load_mcp_servers(
            conn, mcp_store.settings, tenant_id=info.tenant_id, agent_id=agent_id
        )
    assert config.headers == {"X-Api-Key": HEADER_VALUE}
    assert config.bearer_token == TOKEN
    assert (config.id, config.name, config.url, config.transport) == (
        info.id,
        "docs",
        PUBLIC_URL,
        "streamable_http",
    )
    # ...through the store's loader too (what the run-time tool source calls).
    record = await mcp_store.get_agent(agent_id)
    (loaded,) = await mcp_store._load_mcp_servers(record)
    assert loaded == config


async def test_server_without_secrets_needs_no_key(settings: Settings, redis_cleanup: None) -> None:
    async with AgentStore(settings=_mcp_settings(settings, mcp_secret_key=None)) as store:
        agent_id = await _agent(store)
        await store.add_mcp_server(agent_id, name="open", transport="sse", url=PUBLIC_URL)
        with pytest.raises(ValidationError, match="AI_AGENTS_MCP_SECRET_KEY") as info:
            await store.add_mcp_server(
                agent_id, name="closed", transport="sse", url=PUBLIC_URL, bearer_token=TOKEN
            )
        assert info.value.details["field"] == "bearer_token"
        with pytest.raises(ValidationError, match="AI_AGENTS_MCP_SECRET_KEY"):
            await store.add_mcp_server(
                agent_id, name="closed", transport="sse", url=PUBLIC_URL, headers={"X-K": "v"}
            )
        assert [s.name for s in await store.list_mcp_servers(agent_id)] == ["open"]
        assert await _raw_rows(store) and all(r["secrets"] is None for r in await _raw_rows(store))


async def test_bad_key_is_a_configuration_error(settings: Settings, redis_cleanup: None) -> None:
    async with AgentStore(settings=_mcp_settings(settings, mcp_secret_key="not-a-key")) as store:
        agent_id = await _agent(store)
        with pytest.raises(ConfigurationError, match="AI_AGENTS_MCP_SECRET_KEY"):
            await store.add_mcp_server(
                agent_id, name="s", transport="sse", url=PUBLIC_URL, bearer_token=TOKEN
            )


async def test_key_rotation(settings: Settings, redis_cleanup: None) -> None:
    old, new = KEY, Fernet.generate_key().decode()
    async with AgentStore(settings=_mcp_settings(settings, mcp_secret_key=old)) as store:
        agent_id = await _agent(store)
        await store.add_mcp_server(
            agent_id, name="s", transport="sse", url=PUBLIC_URL, bearer_token=TOKEN
        )
        record = await store.get_agent(agent_id)
    # A replaced key cannot read the secrets: a clear configuration error.
    async with AgentStore(settings=_mcp_settings(settings, mcp_secret_key=new)) as store:
        with pytest.raises(ConfigurationError, match="do not decrypt"):
            await store._load_mcp_servers(record)
    # Rotated: new first, old kept until every row is re-encrypted.
    async with AgentStore(settings=_mcp_settings(settings, mcp_secret_key=f"{new},{old}")) as store:
        (config,) = await store._load_mcp_servers(record)
        assert config.bearer_token == TOKEN
        with pytest.raises(UsageError, match="admin view"):
            await store.for_tenant("default").rotate_mcp_secrets()
        assert await store.for_tenant(None).rotate_mcp_secrets() == 1
    async with AgentStore(settings=_mcp_settings(settings, mcp_secret_key=new)) as store:
        (config,) = await store._load_mcp_servers(record)
        assert config.bearer_token == TOKEN


async def test_ciphertext_bound_to_its_row(mcp_store: AgentStore) -> None:
    agent_id = await _agent(mcp_store)
    a = await mcp_store.add_mcp_server(
        agent_id, name="a", transport="sse", url=PUBLIC_URL, bearer_token=TOKEN
    )
    b = await mcp_store.add_mcp_server(
        agent_id, name="b", transport="sse", url=PUBLIC_URL, bearer_token="other"
    )
    async with mcp_store.engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE agent_mcp_servers SET secrets = (SELECT secrets FROM agent_mcp_servers WHERE id = :a) WHERE id = :b"
            ),
            {"a": a.id, "b": b.id},
        )
    with pytest.raises(ConfigurationError, match="another row"):
        await mcp_store._load_mcp_servers(await mcp_store.get_agent(agent_id))


# --- tenants and lifecycle ----------------------------------------------------------


async def test_other_tenant_cannot_see_or_change(mcp_store: AgentStore) -> None:
    a, b = mcp_store.for_tenant("tenant-a"), mcp_store.for_tenant("tenant-b")
    agent_a = await _agent(a)
    server = await a.add_mcp_server(agent_a, name="s", transport="sse", url=PUBLIC_URL)
    assert server.tenant_id == "tenant-a"
    with pytest.raises(NotFoundError):
        await b.list_mcp_servers(agent_a)
    with pytest.raises(NotFoundError):
        await b.add_mcp_server(agent_a, name="evil", transport="stdio", command="time")
    with pytest.raises(NotFoundError):
        await b.remove_mcp_server(agent_a, server.id)
    with pytest.raises(NotFoundError):
        await b.get_mcp_server(agent_a, server.id)
    # B's own agent does not unlock A's server either.
    agent_b = await _agent(b)
    with pytest.raises(NotFoundError):
        await b.remove_mcp_server(agent_b, server.id)
    assert await a.list_mcp_servers(agent_a) == [server]
    # The admin view sees it; rows of an admin-added server belong to the agent's tenant.
    admin = mcp_store.for_tenant(None)
    assert await admin.list_mcp_servers(agent_a) == [server]
    added = await admin.add_mcp_server(agent_a, name="ops", transport="stdio", command="time")
    assert added.tenant_id == "tenant-a"


async def test_remove_and_cascade(mcp_store: AgentStore) -> None:
    agent_id = await _agent(mcp_store)
    s1 = await mcp_store.add_mcp_server(
        agent_id, name="a", transport="sse", url=PUBLIC_URL, bearer_token=TOKEN
    )
    await mcp_store.add_mcp_server(agent_id, name="b", transport="stdio", command="time")
    await mcp_store.remove_mcp_server(agent_id, s1.id)
    assert [s.name for s in await mcp_store.list_mcp_servers(agent_id)] == ["b"]
    with pytest.raises(NotFoundError):
        await mcp_store.remove_mcp_server(agent_id, s1.id)
    await mcp_store.delete_agent(agent_id)
    assert await _raw_rows(mcp_store) == []
    with pytest.raises(NotFoundError):
        await mcp_store.list_mcp_servers(agent_id)


async def test_runner_has_the_mcp_tool_source(mcp_store: AgentStore) -> None:
    assert any(isinstance(s, McpToolSource) for s in mcp_store.runner.loop.tool_sources)


# --- REST -------------------------------------------------------------------------


@pytest.fixture
def api(settings: Settings, redis_cleanup: None) -> Iterator[RunningApi]:
    provider = FunctionProvider(lambda request: "ok")
    with running_api(
        _mcp_settings(settings), providers={"scripted": provider}, config=ApiConfig()
    ) as running:
        yield running


def _client(api: RunningApi, secret: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=api.api, headers={"Authorization": f"Bearer {secret}"}, timeout=30
    )


async def _rest_agent(c: httpx.AsyncClient) -> str:
    r = await c.post(
        "/agents", json={"name": "A", "role": "helps", "provider": "scripted", "model": "m"}
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def test_rest_add_list_delete(api: RunningApi) -> None:
    async with (
        _client(api, api.create_key("tenant-a")) as a,
        _client(api, api.create_key("tenant-b")) as b,
    ):
        agent = await _rest_agent(a)
        path = f"/agents/{agent}/mcp_servers"
        r = await a.post(
            path,
            json={
                "name": "docs",
                "transport": "streamable_http",
                "url": PUBLIC_URL,
                "headers": {"X-Api-Key": HEADER_VALUE},
                "bearer_token": TOKEN,
                "allowed_tools": ["search"],
                "timeout": 5,
            },
        )
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["header_names"] == ["X-Api-Key"]
        assert body["has_bearer_token"] is True
        assert body["allowed_tools"] == ["search"]
        assert "headers" not in body and "bearer_token" not in body
        assert TOKEN not in r.text and HEADER_VALUE not in r.text

        r = await a.get(path)
        assert r.status_code == 200
        assert [s["id"] for s in r.json()["data"]] == [body["id"]]
        assert TOKEN not in r.text and HEADER_VALUE not in r.text

        # Validation errors: 422 naming the field.
        for payload, field in [
            ({"name": "x", "transport": "sse", "url": "http://169.254.169.254/"}, "url"),
            ({"name": "x", "transport": "sse", "url": "http://127.0.0.1/"}, "url"),
            ({"name": "x", "transport": "stdio", "command": "bash"}, "command"),
            ({"name": "bad name", "transport": "stdio", "command": "time"}, "name"),
            ({"name": "x", "transport": "ftp", "url": PUBLIC_URL}, "transport"),
        ]:
            r = await a.post(path, json=payload)
            assert r.status_code == 422, r.text
            assert r.json()["details"]["field"] == field
        r = await a.post(path, json={"name": "docs", "transport": "stdio", "command": "time"})
        assert r.status_code == 409, r.text
        r = await a.post(
            path, json={"name": "x", "transport": "stdio", "command": "time", "extra": 1}
        )
        assert r.status_code == 400

        # Tenant B: 404 on everything of A's agent.
        assert (await b.get(path)).status_code == 404
        r = await b.post(path, json={"name": "evil", "transport": "stdio", "command": "time"})
        assert r.status_code == 404
        assert (await b.delete(f"{path}/{body['id']}")).status_code == 404
        assert len((await a.get(path)).json()["data"]) == 1

        assert (await a.delete(f"{path}/{body['id']}")).status_code == 204
        assert (await a.delete(f"{path}/{body['id']}")).status_code == 404
        assert (await a.get(path)).json()["data"] == []
        missing = uuid.uuid4()
        assert (await a.get(f"/agents/{missing}/mcp_servers")).status_code == 404


async def test_rest_openapi_lists_the_routes(api: RunningApi) -> None:
    async with httpx.AsyncClient(timeout=30) as c:
        r = await c.get(f"{api.api}/docs/openapi.json")
    assert r.status_code == 200, r.text
    paths = r.json()["paths"]
    key = next(p for p in paths if p.endswith("/mcp_servers"))
    assert {"get", "post"} <= set(paths[key])
    assert any(p.endswith("/mcp_servers/{server_id}") for p in paths)
    schemas = r.json()["components"]["schemas"]
    out = next(v for k, v in schemas.items() if k.endswith("McpServerOut"))
    assert "bearer_token" not in out["properties"] and "headers" not in out["properties"]
