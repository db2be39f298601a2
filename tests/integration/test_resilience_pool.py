"""Issue 4, acceptance 5: a node pool of three fake Ollama servers, one down and one slow.

Requests spread over the healthy nodes (least busy first, so the slow one gets fewer),
the dead one is skipped, and it rejoins once it answers health checks again. A node that
dies between health checks costs one connection error: the request fails over.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import replace
from typing import Any

import pytest

from ai_agents import AgentDefinition, AgentStore
from ai_agents.errors import ProviderBadRequest
from ai_agents.messages import Message
from ai_agents.providers.base import ProviderRequest
from ai_agents.providers.pool import NodePool, NodeStatus
from tests.fakes.ollama_fake import FakeOllama
from tests.fakes.openai_fake import OpenAIFake
from tests.fakes.server import free_port, serve
from tests.waiting import wait_until

MODEL = "llama3.1:8b"
SLOW = 0.25


class Slow:
    """ASGI wrapper: chat requests wait ``delay`` seconds before the fake answers."""

    def __init__(self, app: Any, delay: float) -> None:
        self.app = app
        self.delay = delay

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/api/chat":
            await asyncio.sleep(self.delay)
        await self.app(scope, receive, send)


def _by_url(pool: NodePool) -> dict[str, NodeStatus]:
    return {s.url: s for s in pool.status()}


async def _until(predicate: Any, *, what: str, timeout: float = 5.0) -> None:
    await wait_until(predicate, timeout=timeout, interval=0.02, what=what)


@pytest.fixture
def nodes() -> Iterator[tuple[list[FakeOllama], list[str], ExitStack]]:
    fakes = [FakeOllama(models=[MODEL]) for _ in range(3)]
    with ExitStack() as stack:
        fast = stack.enter_context(serve(fakes[0]))
        slow = stack.enter_context(serve(Slow(fakes[1], SLOW)))
        dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there (yet)
        yield fakes, [fast, slow, dead], stack


@pytest.fixture
async def pooled(
    store: AgentStore, nodes: tuple[list[FakeOllama], list[str], ExitStack]
) -> tuple[AgentStore, NodePool]:
    _, urls, _ = nodes
    store.runner.providers.configure(
        "ollama",
        adapter="ollama",
        base_urls=urls,
        timeout=5,
        health_interval=0.2,
        check_timeout=0.5,
    )
    pool = store.runner.providers.get("ollama")
    assert isinstance(pool, NodePool)
    return store, pool


async def test_pool_spreads_skips_the_dead_node_and_rejoins_it(
    pooled: tuple[AgentStore, NodePool], nodes: tuple[list[FakeOllama], list[str], ExitStack]
) -> None:
    store, pool = pooled
    fakes, (fast, slow, dead), stack = nodes
    agent = await store.create_agent(
        AgentDefinition(name="pooled", role="You answer."), provider="ollama", model=MODEL
    )
    threads = [await store.create_thread(agent) for _ in range(4)]

    # The background health check finds the dead node before any request is sent.
    pool.start()
    # Each node's first check ends on its own (the refused connection usually first).
    await _until(
        lambda: "unknown" not in {n.status for n in pool.status()},
        what="every node's first health check",
    )
    assert _by_url(pool)[dead].status == "down"
    assert _by_url(pool)[fast].status == _by_url(pool)[slow].status == "up"
    assert _by_url(pool)[fast].models == [MODEL]

    # Four concurrent workers, six runs each.
    async def worker(thread: Any, n: int) -> list[str]:
        return [(await store.run(thread, f"w{n} q{i}")).content for i in range(6)]

    answers = await asyncio.gather(*(worker(t, n) for n, t in enumerate(threads)))
    assert answers == [[f"echo: w{n} q{i}" for i in range(6)] for n in range(4)]
    status = _by_url(pool)
    served_fast, served_slow = len(fakes[0].requests), len(fakes[1].requests)
    assert served_fast + served_slow == 24
    assert served_slow >= 1  # spread over both healthy nodes...
    assert served_fast > served_slow  # ...and the slow one, busy longer, gets fewer
    assert (status[fast].served, status[slow].served) == (served_fast, served_slow)
    assert status[dead].attempts == 0  # skipped: never tried
    assert status[dead].status == "down" and "health check" in (status[dead].last_error or "")

    # The dead node comes back on its port and rejoins after a health check.
    port = int(dead.rsplit(":", 1)[1])
    stack.enter_context(serve(fakes[2], port=port))
    await _until(lambda: _by_url(pool)[dead].status == "up", what="the restarted node to be up")
    for i in range(6):
        await store.run(threads[0], f"again {i}")
    assert len(fakes[2].requests) >= 1
    assert _by_url(pool)[dead].served == len(fakes[2].requests)


async def test_a_node_dying_between_checks_fails_over() -> None:
    fakes = [FakeOllama(models=[MODEL]) for _ in range(2)]
    request = ProviderRequest(
        model=MODEL, system_prompt="You answer.", messages=[Message(role="user", content="hi")]
    )
    with ExitStack() as stack:
        stable = stack.enter_context(serve(fakes[0]))
        doomed_stack = ExitStack()
        doomed = doomed_stack.enter_context(serve(fakes[1]))
        pool = NodePool.ollama([doomed, stable], interval=3600, retry_after=0.05)
        try:
            await pool.check_now()
            assert [s.status for s in pool.status()] == ["up", "up"]
            doomed_stack.close()  # the server goes away; no health check will notice soon
            for _ in range(4):
                response = await pool.complete(request)
                assert response.content == "echo: hi"
            status = _by_url(pool)
            assert (status[doomed].attempts, status[doomed].failures) == (1, 1)
            assert status[doomed].status == "down"
            assert status[stable].served == 4
            assert len(fakes[0].requests) == 4

            # Retried later: it rejoins on the next health check once it is back.
            port = int(doomed.rsplit(":", 1)[1])
            stack.enter_context(serve(fakes[1], port=port))
            await pool.check_now()
            assert _by_url(pool)[doomed].status == "up"
            for _ in range(2):
                await pool.complete(request)
            assert len(fakes[1].requests) == 1
        finally:
            await pool.aclose()


async def test_nodes_without_the_model_are_not_used() -> None:
    with_model = FakeOllama(models=[MODEL])
    without = FakeOllama(models=["gemma2:2b"])
    request = ProviderRequest(
        model=MODEL, system_prompt="", messages=[Message(role="user", content="hi")]
    )
    with serve(without) as a, serve(with_model) as b:
        pool = NodePool.ollama([a, b], interval=3600)
        try:
            await pool.check_now()
            for _ in range(3):
                await pool.complete(request)
            assert without.requests == [] and len(with_model.requests) == 3
            assert _by_url(pool)[a].models == ["gemma2:2b"]
            # A model no node lists: a node is asked anyway and answers "not found".
            with pytest.raises(ProviderBadRequest, match="not found"):
                await pool.complete(replace(request, model="phi3"))
        finally:
            await pool.aclose()


async def test_all_nodes_down_is_a_retryable_connection_error() -> None:
    from ai_agents.errors import ProviderConnectionError

    urls = [f"http://127.0.0.1:{free_port()}" for _ in range(2)]
    pool = NodePool.ollama(urls, interval=3600, retry_after=30)
    request = ProviderRequest(
        model=MODEL, system_prompt="", messages=[Message(role="user", content="hi")]
    )
    try:
        with pytest.raises(ProviderConnectionError, match="no healthy node") as caught:
            await pool.complete(request)
        assert caught.value.retryable
        assert [s.attempts for s in pool.status()] == [1, 1]
        with pytest.raises(ProviderConnectionError):  # both down, retry time not reached
            await pool.complete(request)
        assert [s.attempts for s in pool.status()] == [1, 1]  # not even tried
    finally:
        await pool.aclose()


async def test_openai_compatible_pool(store: AgentStore) -> None:
    live = OpenAIFake()
    with serve(live) as url:
        dead = f"http://127.0.0.1:{free_port()}/v1"
        store.runner.providers.configure(
            "vllm_pool",
            adapter="openai",
            base_urls=[dead, url + "/v1"],
            api_key="sk-x",
            health_interval=0.1,
        )
        pool = store.runner.providers.get("vllm_pool")
        assert isinstance(pool, NodePool)
        store.register_provider("vllm_pool", pool)  # treat as a local provider for limits
        agent = await store.create_agent(
            AgentDefinition(name="v", role="You answer."), provider="vllm_pool", model="qwen"
        )
        thread = await store.create_thread(agent)
        pool.start()
        await _until(
            lambda: "unknown" not in {n.status for n in pool.status()},
            what="every node's first health check",
        )
        assert _by_url(pool)[dead].status == "down"
        assert _by_url(pool)[url + "/v1"].status == "up"  # 404 on /models: reachable
        for i in range(3):
            response = await store.run(thread, f"q{i}")
            assert response.provider == "vllm_pool"
        assert len(live.requests) == 3
        assert _by_url(pool)[dead].attempts == 0
        await store.close()  # closes the pool (and its health task) while the fake is up
