"""A pool of nodes (Ollama or OpenAI-compatible base URLs) serving the same models.

Why: one Ollama box is one GPU; several boxes behind one provider name give capacity and
survive one of them going away (seed 002's ``DistributedOllamaClient``).

- **One adapter per node**, created once and kept for the life of the pool, so each
  node's HTTP connections are pooled and reused.
- **Health checks in the background** (every ``interval`` seconds, started on first use
  or by :meth:`NodePool.start`): Ollama nodes answer ``GET /api/tags``, which also lists
  the models present; OpenAI-compatible nodes answer ``GET {base_url}/models`` (a
  reachable server that does not implement it, 404/401/405, counts as up with unknown
  models). A node without the requested model is not used for it.
- **Least-busy routing**: among healthy nodes that have the model, the one with the
  fewest requests in flight; ties go to the node used least recently (so a quiet pool
  round-robins and a slow node, which holds its requests longer, gets fewer).
- **Failover**: a connection error marks the node down and the request goes to the next
  node at once (before any output was produced). Other errors (5xx, 429, 400) are the
  answer of a working node and are raised for the retry/breaker layer above.
- **Down, retried later**: a down node gets no traffic until a health check finds it
  back (it *rejoins*), or, when no node is up at all, until its retry time (doubling
  from ``retry_after`` to ``max_retry_after``) has come.

The pool is itself a :class:`~ai_agents.providers.base.Provider`; its breaker endpoint is
``pool:<url>,<url>,...``. Configure it in ``AI_AGENTS_PROVIDERS`` with ``"base_urls"``::

    {"ollama": {"adapter": "ollama", "base_urls": ["http://gpu1:11434", "http://gpu2:11434"],
                "health_interval": 10}}
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import httpx

from ai_agents.errors import ProviderConnectionError, ValidationError
from ai_agents.providers.base import (
    Provider,
    ProviderRequest,
    ProviderResponse,
    ProviderSettings,
    StreamEvent,
)
from ai_agents.providers.retry import backoff

__all__ = ["NodePool", "NodeStatus"]

log = logging.getLogger("ai_agents.pool")

Health = Literal["ollama", "openai"]
Status = Literal["unknown", "up", "down"]


def _ollama_name(model: str) -> str:
    return model if ":" in model else f"{model}:latest"


@dataclass(slots=True)
class _Node:
    url: str
    provider: Provider
    status: Status = "unknown"
    models: frozenset[str] | None = None
    in_flight: int = 0
    served: int = 0
    attempts: int = 0
    failures: int = 0
    downs: int = 0
    retry_at: float = 0.0
    last_used: int = 0
    last_error: str | None = None
    checked_at: float | None = None


@dataclass(frozen=True, slots=True)
class NodeStatus:
    """One node as :meth:`NodePool.status` reports it."""

    url: str
    status: str
    in_flight: int
    served: int
    attempts: int
    failures: int
    models: list[str] | None
    last_error: str | None


class NodePool(Provider):
    """Several base URLs behind one provider name; see the module docstring."""

    kind: ClassVar[str] = "pool"

    def __init__(
        self,
        nodes: Sequence[tuple[str, Provider]],
        *,
        name: str,
        health: Health,
        interval: float = 10.0,
        check_timeout: float = 2.0,
        retry_after: float = 1.0,
        max_retry_after: float = 60.0,
        headers: dict[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not nodes:
            raise ValidationError("a node pool needs at least one base URL")
        urls = [url.rstrip("/") for url, _ in nodes]
        if len(set(urls)) != len(urls):
            raise ValidationError("a node pool's base URLs must be distinct")
        super().__init__(ProviderSettings(base_url="pool:" + ",".join(urls), name=name))
        self.base_url = self.settings.base_url
        self._nodes = [_Node(url, provider) for url, (_, provider) in zip(urls, nodes, strict=True)]
        self._health: Health = health
        self.interval = interval
        self.check_timeout = check_timeout
        self.retry_after = retry_after
        self.max_retry_after = max_retry_after
        self._headers = dict(headers or {})
        self._clock = clock
        self._seq = itertools.count(1)
        self._task: asyncio.Task[None] | None = None
        self._http: httpx.AsyncClient | None = None
        self._closed = False

    # --- construction -------------------------------------------------------------------

    @classmethod
    def ollama(
        cls,
        base_urls: Sequence[str],
        *,
        name: str = "ollama",
        timeout: float = 120.0,
        headers: dict[str, str] | None = None,
        adapter_options: dict[str, Any] | None = None,
        **pool_options: Any,
    ) -> NodePool:
        """A pool of Ollama servers (one :class:`OllamaProvider` per URL)."""
        from ai_agents.providers.ollama import OllamaProvider

        nodes = [
            (
                url,
                OllamaProvider(
                    ProviderSettings(
                        base_url=url, timeout=timeout, headers=dict(headers or {}), name=name
                    ),
                    **(adapter_options or {}),
                ),
            )
            for url in base_urls
        ]
        return cls(nodes, name=name, health="ollama", headers=headers, **pool_options)

    @classmethod
    def openai_compatible(
        cls,
        base_urls: Sequence[str],
        *,
        name: str,
        api_key: str | None = None,
        timeout: float = 120.0,
        headers: dict[str, str] | None = None,
        adapter_options: dict[str, Any] | None = None,
        **pool_options: Any,
    ) -> NodePool:
        """A pool of OpenAI-compatible servers (vLLM, llama.cpp, Ollama's ``/v1``, ...)."""
        from ai_agents.providers.openai import OpenAIChatProvider

        key = api_key or "not-needed"
        nodes = [
            (
                url,
                OpenAIChatProvider(
                    ProviderSettings(
                        base_url=url,
                        api_key=key,
                        timeout=timeout,
                        headers=dict(headers or {}),
                        name=name,
                    ),
                    **(adapter_options or {}),
                ),
            )
            for url in base_urls
        ]
        auth = {"authorization": f"Bearer {key}", **(headers or {})}
        return cls(nodes, name=name, health="openai", headers=auth, **pool_options)

    # --- capabilities -------------------------------------------------------------------

    def native_tools_for(self, model: str) -> bool:
        return self._nodes[0].provider.native_tools_for(model)

    # --- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Start the background health checks (done automatically on first use)."""
        if self._task is None and not self._closed:
            self._task = asyncio.get_running_loop().create_task(
                self._health_loop(), name=f"pool-health-{self.name}"
            )

    async def aclose(self) -> None:
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        for node in self._nodes:
            await node.provider.aclose()

    async def _health_loop(self) -> None:
        while True:
            try:
                await self.check_now()
            except Exception:  # noqa: BLE001 - a health round must never kill the loop
                log.exception("node pool health check failed")
            await asyncio.sleep(self.interval)

    async def check_now(self) -> None:
        """Check every node once, concurrently (the background loop calls this)."""
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self.check_timeout, headers=self._headers)
        await asyncio.gather(*(self._check(node) for node in self._nodes))

    async def _check(self, node: _Node) -> None:
        assert self._http is not None
        path = "/api/tags" if self._health == "ollama" else "/models"
        try:
            response = await self._http.get(node.url + path)
        except httpx.HTTPError as exc:
            self._mark_down(node, f"health check: {type(exc).__name__}: {exc}")
            return
        node.checked_at = self._clock()
        if response.status_code == 200:
            try:
                data = response.json()
                if self._health == "ollama":
                    names = [m.get("name") or m.get("model") for m in data.get("models", [])]
                else:
                    names = [m.get("id") for m in data.get("data", [])]
                models: frozenset[str] | None = frozenset(str(n) for n in names if n)
            except (ValueError, AttributeError, TypeError):
                models = None
            self._mark_up(node, models)
        elif self._health == "openai" and response.status_code in (401, 403, 404, 405):
            self._mark_up(node, None)  # reachable; it just does not list models
        else:
            self._mark_down(node, f"health check: HTTP {response.status_code}")

    def _mark_up(self, node: _Node, models: frozenset[str] | None) -> None:
        if node.status == "down":
            log.info("pool node is back", extra={"pool": self.name, "node": node.url})
        node.status = "up"
        node.models = models
        node.downs = 0
        node.last_error = None

    def _mark_down(self, node: _Node, error: str) -> None:
        if node.status != "down":
            log.warning(
                "pool node is down", extra={"pool": self.name, "node": node.url, "error": error}
            )
        node.status = "down"
        node.downs += 1
        wait = backoff(node.downs, self.retry_after, self.max_retry_after)
        node.retry_at = self._clock() + wait
        node.last_error = error

    # --- choosing -----------------------------------------------------------------------

    def _has(self, node: _Node, model: str) -> bool:
        if node.models is None:
            return True
        if self._health == "ollama":
            return _ollama_name(model) in node.models
        return model in node.models

    def _pick(self, model: str, tried: set[str]) -> _Node | None:
        """Healthy nodes with the model; else down nodes due for a retry; else healthy
        nodes that did not list the model (so the server itself says "not found")."""
        now = self._clock()
        fresh = [n for n in self._nodes if n.url not in tried]
        candidates = [n for n in fresh if n.status != "down" and self._has(n, model)]
        if not candidates:
            candidates = [n for n in fresh if n.status == "down" and n.retry_at <= now]
        if not candidates:
            candidates = [n for n in fresh if n.status != "down"]
        if not candidates:
            return None
        node = min(candidates, key=lambda n: (n.in_flight, n.last_used))
        node.last_used = next(self._seq)
        return node

    def _no_node(self, model: str, last: ProviderConnectionError | None) -> ProviderConnectionError:
        states = ", ".join(
            f"{n.url} {n.status}"
            + ("" if self._has(n, model) else f" (no {model})")
            + (f" ({n.last_error})" if n.status == "down" and n.last_error else "")
            for n in self._nodes
        )
        error = ProviderConnectionError(
            f"{self.name}: no healthy node can serve {model}: {states}", provider=self.name
        )
        error.__cause__ = last
        return error

    # --- calls --------------------------------------------------------------------------

    async def complete(self, request: ProviderRequest) -> ProviderResponse:
        self.start()
        tried: set[str] = set()
        last: ProviderConnectionError | None = None
        while (node := self._pick(request.model, tried)) is not None:
            tried.add(node.url)
            node.in_flight += 1
            node.attempts += 1
            try:
                response = await node.provider.complete(request)
            except ProviderConnectionError as exc:
                node.failures += 1
                self._mark_down(node, exc.message)
                last = exc
                continue
            finally:
                node.in_flight -= 1
            node.served += 1
            if node.status != "up":
                self._mark_up(node, node.models)
            return response
        raise self._no_node(request.model, last)

    async def stream(self, request: ProviderRequest) -> AsyncIterator[StreamEvent]:
        self.start()
        tried: set[str] = set()
        last: ProviderConnectionError | None = None
        while (node := self._pick(request.model, tried)) is not None:
            tried.add(node.url)
            node.in_flight += 1
            node.attempts += 1
            produced = False
            try:
                async for event in node.provider.stream(request):
                    produced = True
                    yield event
            except ProviderConnectionError as exc:
                node.failures += 1
                self._mark_down(node, exc.message)
                if produced:
                    raise
                last = exc
                continue
            finally:
                node.in_flight -= 1
            node.served += 1
            if node.status != "up":
                self._mark_up(node, node.models)
            return
        raise self._no_node(request.model, last)

    # --- operators ----------------------------------------------------------------------

    def status(self) -> list[NodeStatus]:
        """Every node's health and counters (for dashboards and tests)."""
        return [
            NodeStatus(
                url=n.url,
                status=n.status,
                in_flight=n.in_flight,
                served=n.served,
                attempts=n.attempts,
                failures=n.failures,
                models=sorted(n.models) if n.models is not None else None,
                last_error=n.last_error,
            )
            for n in self._nodes
        ]
