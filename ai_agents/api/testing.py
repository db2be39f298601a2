"""Serve the API on a loopback port from a background thread (tests, benchmarks, demos).

    with serve_api(create_app(store)) as api:
        secret = api.create_key("tenant-a")
        httpx.get(f"{api.url}/api/v1/threads", headers={"Authorization": f"Bearer {secret}"})

The server runs its own event loop with the lifespan on, so the app's store opens its
pools in that loop and is closed on exit, exactly as under ``ai-agents serve``.
:meth:`RunningApi.call` runs a coroutine in the server's loop (e.g. to use the app's
store directly).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Coroutine, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import uvicorn
from litestar import Litestar

from ai_agents.api.config import ApiConfig
from ai_agents.api.keys import KeyStore
from ai_agents.config import Settings
from ai_agents.providers.base import Provider
from ai_agents.store import AgentStore
from ai_agents.tools.registry import ToolRegistry

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _ThreadedServer(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # the main thread owns signals
        pass


@dataclass
class RunningApi:
    url: str
    app: Litestar
    loop: asyncio.AbstractEventLoop

    @property
    def store(self) -> AgentStore:
        store: AgentStore = self.app.state.store
        return store

    @property
    def api(self) -> str:
        return f"{self.url}/api/v1"

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        """Run *coro* in the server's event loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def create_key(
        self,
        tenant_id: str,
        *,
        admin: bool = False,
        rate_limit_rpm: int | None = None,
        name: str = "test",
    ) -> str:
        """A new API key for *tenant_id*; returns the secret."""
        keys: KeyStore = self.app.state.key_store
        created = self.call(
            keys.create(
                tenant_id=tenant_id,
                name=name,
                scopes=["admin"] if admin else [],
                rate_limit_rpm=rate_limit_rpm,
            )
        )
        return created.secret


@contextmanager
def serve_api(app: Litestar, *, port: int | None = None) -> Iterator[RunningApi]:
    """Serve *app* on 127.0.0.1 until the block exits (then shut down, closing the store)."""
    port = port or free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", access_log=False
    )
    server = _ThreadedServer(config)
    loops: list[asyncio.AbstractEventLoop] = []

    def run() -> None:
        async def main() -> None:
            loops.append(asyncio.get_running_loop())
            await server.serve()

        asyncio.run(main())

    thread = threading.Thread(target=run, name=f"api-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            server.should_exit = True
            raise RuntimeError("the API server did not start")
        time.sleep(0.005)
    try:
        yield RunningApi(url=f"http://127.0.0.1:{port}", app=app, loop=loops[0])
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@contextmanager
def running_api(
    settings: Settings,
    *,
    providers: Mapping[str, Provider] | None = None,
    tools: ToolRegistry | None = None,
    config: ApiConfig | None = None,
) -> Iterator[RunningApi]:
    """A fresh store on *settings* with test models/tools, served by a new app."""
    from ai_agents.api.app import create_app

    store = AgentStore(settings=settings)
    if tools is not None:
        store.use_tools(tools)
    for name, provider in (providers or {}).items():
        store.register_provider(name, provider)
    with serve_api(create_app(store, config=config or ApiConfig())) as api:
        yield api
