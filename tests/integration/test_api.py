"""Issue 7, acceptance 1: every endpoint over real HTTP (the app served on a loopback port).

The app runs under uvicorn in a background thread with its lifespan (one store, closed on
shutdown); requests go through httpx, streamed runs through the httpx-sse client.
Models are the library's test providers; PostgreSQL and Redis are real.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
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
from ai_agents.providers.base import ProviderRequest, ResponseDone, StreamEvent, TextDelta
from ai_agents.providers.registry import ModelLimits, get_registry
from ai_agents.testing import FunctionProvider, call
from ai_agents.tools.decorator import tool
from ai_agents.tools.registry import ToolRegistry
from tests.prometheus_text import sample
from tests.waiting import wait_until

JSON = dict[str, Any]


class Brain:
    """A test model: ``add A B`` calls the add tool, ``wait`` blocks until released."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()

    async def __call__(self, request: ProviderRequest) -> Any:
        last = request.messages[-1]
        if last.role == "tool":
            return f"The sum is {last.content}."
        text = last.text
        if text.startswith("add "):
            _, a, b = text.split()
            return call("add", a=int(a), b=int(b))
        if text.startswith("wait"):
            self.started.set()
            await wait_until(self.release.is_set, timeout=60, what="the test to release the model")
        return f"echo: {text}"


class SlowStream(FunctionProvider):
    """Streams its answer one word every 50 ms (to disconnect in the middle)."""

    async def stream(self, request: ProviderRequest) -> AsyncIterator[StreamEvent]:
        response = await self.complete(request)
        for word in response.content.split(" "):
            await asyncio.sleep(0.05)
            yield TextDelta(word + " ")
        yield ResponseDone(response)


def make_tools() -> ToolRegistry:
    registry = ToolRegistry()

    @tool(registry=registry)
    def add(a: int, b: int) -> int:
        """Add two integers.

        Args:
            a: first addend
            b: second addend
        """
        return a + b

    return registry


@pytest.fixture
def brain() -> Brain:
    return Brain()


@pytest.fixture
def api(settings: Settings, redis_cleanup: None, brain: Brain) -> Iterator[RunningApi]:
    providers = {
        "scripted": FunctionProvider(brain),
        "slowstream": SlowStream(lambda r: " ".join(["word"] * 40)),
    }
    with running_api(
        settings, providers=providers, tools=make_tools(), config=ApiConfig(key_cache_ttl=60)
    ) as running:
        yield running


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture
async def client(api: RunningApi) -> AsyncIterator[httpx.AsyncClient]:
    key = api.create_key("acme")
    async with httpx.AsyncClient(base_url=api.api, headers=bearer(key), timeout=30) as c:
        yield c


async def new_agent(c: httpx.AsyncClient, **extra: Any) -> JSON:
    body = {"name": "Helper", "role": "You help.", "provider": "scripted", "model": "any"}
    r = await c.post("/agents", json={**body, **extra})
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def new_thread(c: httpx.AsyncClient, agent_id: str, **extra: Any) -> JSON:
    r = await c.post("/threads", json={"agent_id": agent_id, **extra})
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


# --- agents ---------------------------------------------------------------------------


async def test_agents_crud_and_pagination(client: httpx.AsyncClient) -> None:
    agent = await new_agent(
        client,
        goal="Be useful",
        constraints=["Be brief"],
        personality={"tone": "warm"},
        examples=[{"user": "hi", "assistant": "hello"}],
        tools=["add"],
        metadata={"team": "ops"},
    )
    assert agent["tenant_id"] == "acme"
    assert agent["tools"] == ["add"]
    assert agent["created_by"].startswith("api_key:")
    assert (await client.get(f"/agents/{agent['id']}")).json() == agent

    r = await client.patch(f"/agents/{agent['id']}", json={"goal": None, "tools": []})
    assert r.status_code == 200
    assert r.json()["goal"] is None
    assert r.json()["tools"] == []
    assert r.json()["constraints"] == ["Be brief"]  # untouched fields stay

    others = [await new_agent(client, name=f"A{i}") for i in range(3)]
    ids: list[str] = []
    cursor = None
    while True:
        params: JSON = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/agents", params=params)).json()
        ids += [a["id"] for a in page["data"]]
        cursor = page["next_cursor"]
        assert page["has_more"] == (cursor is not None)
        if cursor is None:
            break
    assert ids == [agent["id"], *(a["id"] for a in others)]

    r = await client.patch(f"/agents/{others[0]['id']}", json={"is_active": False})
    assert r.json()["is_active"] is False
    active = [a["id"] for a in (await client.get("/agents")).json()["data"]]
    assert others[0]["id"] not in active
    everything = (await client.get("/agents", params={"include_inactive": True})).json()["data"]
    assert others[0]["id"] in [a["id"] for a in everything]

    thread = await new_thread(client, agent["id"])
    r = await client.delete(f"/agents/{agent['id']}")
    assert r.status_code == 204
    assert (await client.get(f"/agents/{agent['id']}")).status_code == 404
    assert (await client.get(f"/threads/{thread['id']}")).status_code == 404


async def test_agent_settings_are_typed_bounded_and_documented(
    api: RunningApi, client: httpx.AsyncClient
) -> None:
    """Hardening 2: a wrong JSON type is a 400 naming the key, a value out of its bounds
    (the deployment's ceilings included) a 422 naming the field; nothing is saved."""
    base = {"name": "A", "role": "r", "provider": "scripted", "model": "any"}

    async def refused(settings: JSON, status: int) -> JSON:
        r = await client.post("/agents", json={**base, "settings": settings})
        assert r.status_code == status, (settings, r.text)
        body: JSON = r.json()
        return body

    for settings in (
        {"max_tool_iterations": "abc"},
        {"tool_timeout": "x"},
        {"max_output_tokens": "lots"},
        {"user_rpm": "x"},
    ):
        body = await refused(settings, 400)
        assert body["details"]["errors"][0]["key"] == f"settings.{next(iter(settings))}"
    body = await refused({"max_iterations": 3}, 400)  # unknown keys: see the schema
    assert "max_iterations" in body["details"]["errors"][0]["message"]
    invalid: list[tuple[JSON, str]] = [
        ({"max_tool_iterations": -5}, "settings.max_tool_iterations"),
        ({"max_tool_iterations": 100_000}, "settings.max_tool_iterations"),
        ({"max_output_tokens": 1_000_000}, "settings.max_output_tokens"),
        ({"tool_timeout": 0}, "settings.tool_timeout"),
        ({"retry": {"max_attempts": 0}}, "settings.retry.max_attempts"),
    ]
    for settings, field in invalid:
        body = await refused(settings, 422)
        assert (body["code"], body["details"]["field"]) == ("validation_error", field)
    assert (await client.get("/agents")).json()["data"] == []

    agent = await new_agent(client, settings={"max_tool_iterations": 5, "temperature": None})
    assert agent["settings"] == {"max_tool_iterations": 5, "temperature": None}
    r = await client.patch(f"/agents/{agent['id']}", json={"settings": {"user_tpm": 0}})
    assert r.status_code == 422 and r.json()["details"]["field"] == "settings.user_tpm"
    r = await client.patch(f"/agents/{agent['id']}", json={"settings": {"tool_timeout": 5}})
    assert r.status_code == 200 and r.json()["settings"] == {"tool_timeout": 5}
    memory = {"memory_tools": True, "memory_scope": "agent", "memory_extraction": False}
    r = await client.patch(f"/agents/{agent['id']}", json={"settings": memory})
    assert r.status_code == 200 and r.json()["settings"] == memory
    r = await client.patch(f"/agents/{agent['id']}", json={"settings": {"memory_scope": "all"}})
    assert r.status_code == 400  # not one of the schema's values: a wrong JSON value
    assert r.json()["details"]["errors"][0]["key"] == "settings.memory_scope"

    async with httpx.AsyncClient(base_url=api.api) as anonymous:
        schema = (await anonymous.get("/docs/openapi.json")).json()
    components = schema["components"]["schemas"]
    documented = components["AgentSettings"]["properties"]
    assert set(documented) == {
        "max_tool_iterations",
        "tool_timeout",
        "max_output_tokens",
        "temperature",
        "use_user_memory",
        "memory_tools",
        "memory_scope",
        "memory_extraction",
        "user_rpm",
        "user_tpm",
        "retry",
        "routing",
    }
    assert "ceiling" in json.dumps(documented["max_tool_iterations"])
    assert "max_attempts" in components["RetrySettings"]["properties"]


async def test_a_run_that_cannot_fit_the_context_is_a_400(client: httpx.AsyncClient) -> None:
    """The system prompt and the input alone exceed the model's window: the caller can act
    (shorten the input, pick a bigger model), so it is a 400, never a 500."""
    agent = await new_agent(client, role="You help. " * 2000)  # the local default: 8192
    thread = await new_thread(client, agent["id"])
    r = await client.post(f"/threads/{thread['id']}/runs", json={"input": "word " * 8000})
    assert r.status_code == 400, r.text
    assert r.json()["code"] == "context_overflow"
    assert r.json()["details"]["available"] < r.json()["details"]["needed"]


async def test_run_input_with_nul_is_a_422_before_the_model(
    client: httpx.AsyncClient, brain: Brain
) -> None:
    agent = await new_agent(client)
    thread = await new_thread(client, agent["id"])
    url = f"/threads/{thread['id']}/runs"
    r = await client.post(url, json={"input": "wait\u0000"})
    assert r.status_code == 422 and r.json()["details"]["field"] == "input"
    assert not brain.started.is_set()  # the model never saw it
    assert (await client.get(url)).json()["data"] == []


# --- threads --------------------------------------------------------------------------


async def test_threads_filters_pagination_archive_delete(client: httpx.AsyncClient) -> None:
    a1 = await new_agent(client)
    a2 = await new_agent(client, name="Other")
    t1 = await new_thread(client, a1["id"], user_id="u1", title="First", metadata={"k": 1})
    t2 = await new_thread(client, a1["id"], user_id="u2")
    t3 = await new_thread(client, a2["id"], user_id="u1")
    assert t1["title"] == "First" and t1["metadata"] == {"k": 1} and t1["message_count"] == 0

    async def listed(**params: Any) -> list[str]:
        out: list[str] = []
        cursor = None
        while True:
            query = {**params, "limit": 1, **({"cursor": cursor} if cursor else {})}
            r = await client.get("/threads", params=query)
            assert r.status_code == 200, r.text
            out += [t["id"] for t in r.json()["data"]]
            cursor = r.json()["next_cursor"]
            if cursor is None:
                return out

    assert await listed() == [t3["id"], t2["id"], t1["id"]]  # most recently used first
    assert await listed(agent_id=a1["id"]) == [t2["id"], t1["id"]]
    assert await listed(user_id="u1") == [t3["id"], t1["id"]]
    assert await listed(agent_id=a1["id"], user_id="u2") == [t2["id"]]

    r = await client.patch(f"/threads/{t1['id']}", json={"title": "Renamed", "metadata": {"x": 2}})
    assert (r.json()["title"], r.json()["metadata"]) == ("Renamed", {"x": 2})

    r = await client.post(f"/threads/{t2['id']}/archive")
    assert r.status_code == 200 and r.json()["archived"] is True
    assert t2["id"] not in await listed()
    assert await listed(archived=True) == [t2["id"]]
    r = await client.post(f"/threads/{t2['id']}/unarchive")
    assert r.json()["archived"] is False
    r = await client.patch(f"/threads/{t2['id']}", json={"archived": True})
    assert r.json()["archived"] is True

    assert (await client.delete(f"/threads/{t3['id']}")).status_code == 204
    assert (await client.get(f"/threads/{t3['id']}")).status_code == 404
    assert (await client.delete(f"/threads/{t3['id']}")).status_code == 404


# --- messages -------------------------------------------------------------------------


async def test_messages_post_and_seq_cursors(client: httpx.AsyncClient) -> None:
    agent = await new_agent(client)
    thread = await new_thread(client, agent["id"])
    url = f"/threads/{thread['id']}/messages"
    for i in range(5):
        role = "user" if i % 2 == 0 else "assistant"
        r = await client.post(url, json={"role": role, "content": f"m{i}", "metadata": {"i": i}})
        assert r.status_code == 201, r.text
        assert r.json()["seq"] == i + 1 and r.json()["metadata"] == {"i": i}

    seen: list[str] = []
    after = None
    while True:
        params: JSON = {"limit": 2, **({"after": after} if after is not None else {})}
        page = (await client.get(url, params=params)).json()
        seen += [m["content"] for m in page["data"]]
        if page["next_cursor"] is None:
            break
        after = int(page["next_cursor"])
    assert seen == ["m0", "m1", "m2", "m3", "m4"]

    page = (await client.get(url, params={"order": "desc", "limit": 2})).json()
    assert [m["content"] for m in page["data"]] == ["m4", "m3"]
    page = (await client.get(url, params={"order": "desc", "before": page["next_cursor"]})).json()
    assert [m["content"] for m in page["data"]] == ["m2", "m1", "m0"]

    r = await client.post(
        url,
        json={
            "role": "assistant",
            "tool_calls": [{"id": "c1", "name": "add", "arguments": {"a": 1, "b": 2}}],
        },
    )
    assert r.status_code == 201 and r.json()["tool_calls"][0]["arguments"] == {"a": 1, "b": 2}
    r = await client.post(url, json={"role": "tool", "content": "3"})
    assert r.status_code == 422
    assert r.json()["details"]["field"] == "tool_call_id"
    r = await client.post(url, json={"role": "tool", "content": "3", "tool_call_id": "c1"})
    assert r.status_code == 201


async def test_fork_copies_up_to_a_message(client: httpx.AsyncClient) -> None:
    agent = await new_agent(client)
    thread = await new_thread(client, agent["id"], user_id="u1")
    for text in ("one", "two"):
        r = await client.post(f"/threads/{thread['id']}/runs", json={"input": text})
        assert r.status_code == 200, r.text
    messages = (await client.get(f"/threads/{thread['id']}/messages")).json()["data"]
    assert len(messages) == 4

    r = await client.post(
        f"/threads/{thread['id']}/fork",
        json={"up_to_message_id": messages[1]["id"], "user_id": "u2"},
    )
    assert r.status_code == 201, r.text
    fork = r.json()
    assert fork["forked_from_id"] == thread["id"] and fork["user_id"] == "u2"
    copied = (await client.get(f"/threads/{fork['id']}/messages")).json()["data"]
    assert [m["content"] for m in copied] == ["one", "echo: one"]

    r = await client.post(f"/threads/{thread['id']}/fork")  # no body: the whole thread
    assert r.status_code == 201 and r.json()["message_count"] == 4


# --- runs -----------------------------------------------------------------------------


async def test_sync_run_with_tool_saves_the_turn(client: httpx.AsyncClient) -> None:
    agent = await new_agent(client, tools=["add"])
    thread = await new_thread(client, agent["id"], user_id="u1")
    url = f"/threads/{thread['id']}/runs"
    r = await client.post(url, json={"input": "add 2 3", "metadata": {"source": "test"}})
    assert r.status_code == 200, r.text
    run = r.json()
    assert run["content"] == "The sum is 5."
    assert run["finish_reason"] == "stop"
    assert [(t["name"], t["result"]) for t in run["tool_calls"]] == [("add", "5")]
    assert run["usage"]["total_tokens"] > 0

    saved = (await client.get(f"/threads/{thread['id']}/messages")).json()["data"]
    assert [m["role"] for m in saved] == ["user", "assistant", "tool", "assistant"]
    assert saved[0]["metadata"] == {"source": "test"}
    assert [m["id"] for m in saved] == run["message_ids"]

    usage = (await client.get("/usage", params={"thread_id": thread["id"]})).json()
    assert usage["input_tokens"] == run["usage"]["input_tokens"]
    assert usage["output_tokens"] == run["usage"]["output_tokens"]
    assert usage["messages"] == 4
    by_user = (await client.get("/usage", params={"user_id": "u1"})).json()
    assert by_user["total_tokens"] == run["usage"]["total_tokens"]
    assert (await client.get("/usage")).status_code == 422


async def test_idempotent_run_replays_the_saved_answer(client: httpx.AsyncClient) -> None:
    agent = await new_agent(client)
    thread = await new_thread(client, agent["id"])
    url = f"/threads/{thread['id']}/runs"
    first = (await client.post(url, json={"input": "hi"}, headers={"Idempotency-Key": "k1"})).json()
    again = (await client.post(url, json={"input": "hi", "idempotency_key": "k1"})).json()
    assert again["run_id"] == first["run_id"] and again["replayed"] is True
    assert (await client.get(f"/threads/{thread['id']}")).json()["message_count"] == 2


async def test_streamed_run_over_sse(client: httpx.AsyncClient) -> None:
    agent = await new_agent(client, tools=["add"])
    thread = await new_thread(client, agent["id"])
    events: list[tuple[str, JSON]] = []
    async with aconnect_sse(
        client, "POST", f"/threads/{thread['id']}/runs", json={"input": "add 4 5", "stream": True}
    ) as source:
        assert source.response.status_code == 200
        assert source.response.headers["content-type"].startswith("text/event-stream")
        async for sse in source.aiter_sse():
            events.append((sse.event, sse.json()))

    kinds = [name for name, _ in events]
    assert kinds[0] == "run_started" and events[0][1]["thread_id"] == thread["id"]
    events = events[1:]
    kinds = kinds[1:]
    assert kinds[0] == "tool_call" and kinds[1] == "tool_result" and kinds[-1] == "done"
    assert set(kinds[2:-1]) == {"text_delta"}
    assert events[0][1]["name"] == "add" and events[0][1]["arguments"] == {"a": 4, "b": 5}
    assert events[1][1] == {
        "id": events[0][1]["id"],
        "name": "add",
        "result": "9",
        "is_error": False,
    }
    text = "".join(data["text"] for name, data in events if name == "text_delta")
    done = events[-1][1]
    assert text == done["content"] == "The sum is 9."
    run = (await client.get(f"/runs/{done['run_id']}")).json()
    assert run["status"] == "completed" and run["id"] == done["run_id"]
    saved = (await client.get(f"/threads/{thread['id']}/messages")).json()["data"]
    assert [m["id"] for m in saved] == done["message_ids"]


async def test_stream_disconnect_cancels_the_run_and_frees_the_thread(
    client: httpx.AsyncClient,
) -> None:
    agent = await new_agent(client, provider="slowstream")
    thread = await new_thread(client, agent["id"])
    url = f"/threads/{thread['id']}/runs"
    async with aconnect_sse(client, "POST", url, json={"input": "go", "stream": True}) as source:
        async for sse in source.aiter_sse():
            if sse.event == "run_started":
                run_id = sse.json()["run_id"]
                continue
            assert sse.event == "text_delta"
            break  # hang up after the first delta
    # The run was cancelled: nothing of it is saved, and the thread lock is free again.
    answers: list[httpx.Response] = []

    async def thread_free() -> bool:
        answers.append(await client.post(url, json={"input": "again", "on_busy": "reject"}))
        assert answers[-1].status_code in (200, 409), answers[-1].text
        return answers[-1].status_code == 200

    await wait_until(thread_free, interval=0.05, what="the cancelled run to free the thread")
    saved = (await client.get(f"{url[:-5]}/messages")).json()["data"]
    assert [m["content"] for m in saved][0] == "again"
    assert len(saved) == 2
    cancelled = (await client.get(f"/runs/{run_id}")).json()
    assert cancelled["status"] == "cancelled"


async def test_busy_thread_rejects_or_waits(client: httpx.AsyncClient, brain: Brain) -> None:
    agent = await new_agent(client)
    thread = await new_thread(client, agent["id"])
    url = f"/threads/{thread['id']}/runs"
    first = asyncio.ensure_future(client.post(url, json={"input": "wait for it"}))
    try:
        assert await asyncio.to_thread(brain.started.wait, 10)
        r = await client.post(url, json={"input": "me too", "on_busy": "reject"})
        assert r.status_code == 409
        assert r.json()["code"] == "thread_busy"
        assert r.json()["details"]["thread_id"] == thread["id"]

        waiting = asyncio.ensure_future(
            client.post(url, json={"input": "queued", "on_busy": "enqueue", "busy_timeout": 20})
        )

        async def queued() -> bool:
            runs = (await client.get(f"/threads/{thread['id']}/runs")).json()["data"]
            return any(x["input"] == "queued" and x["status"] == "queued" for x in runs)

        await wait_until(queued, what="the enqueued run to wait behind the first")
        assert not waiting.done()  # it waits: the first run still holds the thread
        brain.release.set()
        assert (await first).status_code == 200
        second = await waiting
        assert second.status_code == 200 and second.json()["content"] == "echo: queued"
    finally:
        brain.release.set()
        await asyncio.gather(first, return_exceptions=True)
    saved = (await client.get(f"/threads/{thread['id']}/messages")).json()["data"]
    assert [m["content"] for m in saved] == [
        "wait for it",
        "echo: wait for it",
        "queued",
        "echo: queued",
    ]


# --- memory, usage, models, health, metrics, docs --------------------------------------


async def test_user_memory_endpoints(client: httpx.AsyncClient) -> None:
    agent = await new_agent(client)
    base = "/users/u1/memory"
    r = await client.put(f"{base}/color", json={"value": "blue"})
    assert r.status_code == 200 and r.json() == {
        "user_id": "u1",
        "agent_id": None,
        "key": "color",
        "value": "blue",
    }
    r = await client.put(base, json={"values": {"city": "Paris", "color": "green"}})
    assert r.json()["values"] == {"city": "Paris", "color": "green"}
    scoped = {"agent_id": agent["id"]}
    r = await client.put(f"{base}/color", json={"value": "red"}, params=scoped)
    assert r.json()["agent_id"] == agent["id"]
    assert (await client.get(base, params=scoped)).json()["values"] == {"color": "red"}
    assert (await client.get(f"{base}/color")).json()["value"] == "green"
    assert (await client.get(f"{base}/nothing")).status_code == 404

    assert (await client.delete(f"{base}/color")).status_code == 204
    assert (await client.delete(f"{base}/color")).status_code == 404
    r = await client.delete(base)
    assert r.status_code == 200 and r.json() == {"deleted": 1}
    assert (await client.get(base)).json()["values"] == {}
    assert (await client.get(base, params=scoped)).json()["values"] == {"color": "red"}
    r = await client.get(base, params={"agent_id": str(uuid.uuid4())})
    assert r.status_code == 404


async def test_models_health_docs(api: RunningApi, client: httpx.AsyncClient) -> None:
    get_registry().register(
        "scripted", "api-test-model", ModelLimits(4096, 512, 60, 100_000, True, False, 1.0, 2.0)
    )
    models = (await client.get("/models", params={"provider": "scripted"})).json()["data"]
    entry = next(m for m in models if m["model"] == "api-test-model")
    assert entry["context_window"] == 4096 and entry["cost_per_1m_output"] == 2.0
    assert len((await client.get("/models")).json()["data"]) >= len(models)

    async with httpx.AsyncClient(base_url=api.api) as anonymous:
        health = await anonymous.get("/health")
        assert health.status_code == 200
        body = health.json()
        assert body["status"] == "ok"
        assert body["checks"]["postgres"]["ok"] and body["checks"]["redis"]["ok"]
        schema = (await anonymous.get("/docs/openapi.json")).json()
        assert "/api/v1/threads/{thread_id}/runs" in schema["paths"]
        assert schema["components"]["schemas"]["Error"]["required"] == [
            "code",
            "message",
            "details",
            "retry_after",
        ]
        page = await anonymous.get("/docs")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assert (await anonymous.get("/metrics")).status_code == 401


async def test_metrics_after_runs(api: RunningApi, client: httpx.AsyncClient) -> None:
    agent = await new_agent(client)
    thread = await new_thread(client, agent["id"])
    for text in ("a", "b"):
        await client.post(f"/threads/{thread['id']}/runs", json={"input": text})
    assert (await client.get("/metrics")).status_code == 403  # tenant key: not admin
    admin = api.create_key("ops", admin=True)
    r = await client.get("/metrics", headers=bearer(admin))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert sample(text, "ai_agents_runs_total", mode="sync", model="any") == 2
    assert (sample(text, "ai_agents_tokens_total", model="any", direction="input") or 0) >= 1
    assert sample(text, "ai_agents_run_duration_seconds_count", mode="sync") == 2
    route = "/api/v1/threads/{thread_id}/runs"
    assert sample(text, "ai_agents_http_requests_total", method="POST", route=route) == 2
    assert sample(text, "ai_agents_queue_depth", priority="normal") is not None


# --- keys -----------------------------------------------------------------------------


async def test_admin_manages_keys(api: RunningApi) -> None:
    admin = api.create_key("ops", admin=True)
    async with httpx.AsyncClient(base_url=api.api, headers=bearer(admin)) as c:
        r = await c.post("/keys", json={"name": "ci", "tenant_id": "acme", "rate_limit_rpm": 100})
        assert r.status_code == 201, r.text
        created = r.json()
        secret = created["key"]
        assert secret.startswith("aak_") and created["prefix"] == secret[:10]
        listed = (await c.get("/keys", params={"tenant_id": "acme"})).json()["data"]
        assert [k["id"] for k in listed] == [created["id"]]
        assert secret not in json.dumps(listed)
        assert (await c.get(f"/keys/{created['id']}")).json()["name"] == "ci"

        async with httpx.AsyncClient(base_url=api.api, headers=bearer(secret)) as tenant:
            assert (await tenant.get("/threads")).status_code == 200
            assert (await tenant.get("/keys")).status_code == 403
            r = await c.delete(f"/keys/{created['id']}")
            assert r.status_code == 200 and r.json()["revoked_at"] is not None
            r = await tenant.get("/threads")
            assert r.status_code == 401 and r.json()["code"] == "unauthorized"
        assert (await c.get(f"/keys/{uuid.uuid4()}")).status_code == 404


def _cli(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "ai_agents", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.slow  # starts five processes
async def test_cli_keys_and_serve(settings: Settings, redis_cleanup: None) -> None:
    assert settings.database_url and settings.redis_url
    env = {
        **os.environ,
        "AI_AGENTS_DATABASE_URL": settings.database_url,
        "AI_AGENTS_REDIS_URL": settings.redis_url,
        "AI_AGENTS_REDIS_PREFIX": settings.redis_prefix,
        "AI_AGENTS_API_KEY_CACHE_TTL": "0",
    }
    out = _cli(env, "keys", "create", "--tenant", "acme", "--name", "cli key")
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    secret = fields["key"].strip()
    key_id = fields["id"].strip()
    assert secret.startswith("aak_")
    listing = _cli(env, "keys", "list", "--json")
    assert json.loads(listing.splitlines()[0])["id"] == key_id and secret not in listing

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "ai_agents", "serve", "--port", str(port), "--workers", "2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}/api/v1"
        async with httpx.AsyncClient(base_url=base, headers=bearer(secret)) as c:

            async def serving() -> bool:
                assert server.poll() is None, "serve exited"
                try:
                    return (await c.get("/health")).status_code == 200
                except httpx.TransportError:
                    return False

            await wait_until(serving, timeout=30, interval=0.1, what="serve to answer /health")
            assert (await c.get("/threads")).status_code == 200
            _cli(env, "keys", "revoke", key_id)
            assert (await c.get("/threads")).status_code == 401
    finally:
        server.send_signal(signal.SIGINT)
        output = server.communicate(timeout=30)[0]
    assert server.returncode == 0, output
    assert "Application shutdown complete" in output


async def test_cors_is_off_by_default_and_configurable(
    settings: Settings, redis_cleanup: None
) -> None:
    origin = "https://app.example"
    preflight = {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }
    with running_api(settings, config=ApiConfig()) as api:
        async with httpx.AsyncClient(base_url=api.api) as c:
            r = await c.get("/health", headers={"Origin": origin})
            assert "access-control-allow-origin" not in r.headers
    with running_api(settings, config=ApiConfig(cors_origins=(origin,))) as api:
        async with httpx.AsyncClient(base_url=api.api) as c:
            r = await c.options("/threads", headers=preflight)
            assert r.status_code == 204
            assert r.headers["access-control-allow-origin"] == origin
            assert "authorization" in r.headers["access-control-allow-headers"].lower()
            r = await c.get("/health", headers={"Origin": origin})
            assert r.headers["access-control-allow-origin"] == origin
            r = await c.options("/threads", headers={**preflight, "Origin": "https://evil.example"})
            assert r.headers.get("access-control-allow-origin") != "https://evil.example"
