"""Helpers for the job queue tests: the worker-process setup hook and process plumbing.

Worker processes get their test model through ``AI_AGENTS_WORKER_SETUP=
tests.integration.jobs_support:worker_setup``, configured by environment variables:

- ``JOBS_TEST_DELAY``: seconds the model takes per answer (default 0);
- ``JOBS_TEST_FAIL``: when set, the model always fails with HTTP 503 (overloaded).

The model answers ``answer to <last user message>``, so a test can pair every answer
with its question.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from uuid import UUID

from ai_agents import AgentDefinition, AgentStore, Settings
from ai_agents.errors import ProviderOverloaded
from ai_agents.providers.base import ProviderRequest
from ai_agents.testing import FunctionProvider

ROOT = Path(__file__).resolve().parents[2]
SETUP = "tests.integration.jobs_support:worker_setup"


def answer_for(text: str | None) -> str:
    return f"answer to {text}"


def echo_provider(delay: float = 0.0, fail: bool = False) -> FunctionProvider:
    async def answer(request: ProviderRequest) -> str:
        if delay:
            await asyncio.sleep(delay)
        if fail:
            raise ProviderOverloaded("the model is overloaded", provider="scripted", status=503)
        return answer_for(request.messages[-1].content)

    return FunctionProvider(answer)


def worker_setup(store: AgentStore) -> None:
    """``AI_AGENTS_WORKER_SETUP`` of the worker processes the tests start."""
    store.register_provider(
        "scripted",
        echo_provider(
            float(os.environ.get("JOBS_TEST_DELAY", "0")), bool(os.environ.get("JOBS_TEST_FAIL"))
        ),
    )


async def make_threads(store: AgentStore, n: int) -> list[UUID]:
    """An agent on the ``scripted`` provider (registered here too) with *n* threads."""
    store.register_provider("scripted", echo_provider())
    agent = await store.create_agent(
        AgentDefinition(name="Worker test", role="You answer."), provider="scripted", model="echo"
    )
    return [await store.create_thread(agent) for _ in range(n)]


class WorkerProcess:
    """``python -m workers`` against the test's database and Redis prefix.

    Its output goes to a file, read with :attr:`log`; ``worker started`` in it means the
    worker is about to read jobs.
    """

    def __init__(self, settings: Settings, name: str, *args: str, **env: str) -> None:
        self.name = name
        self._log = tempfile.TemporaryFile(mode="w+", encoding="utf-8")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ai_agents.workers", "--name", name, *args],
            cwd=str(ROOT),
            env={
                **os.environ,
                "AI_AGENTS_DATABASE_URL": settings.database_url or "",
                "AI_AGENTS_REDIS_URL": settings.redis_url or "",
                "AI_AGENTS_REDIS_PREFIX": settings.redis_prefix,
                "AI_AGENTS_WORKER_SETUP": SETUP,
                **env,
            },
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    @property
    def log(self) -> str:
        self._log.seek(0)
        return self._log.read()

    @property
    def started(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"worker {self.name} exited early:\n{self.log}")
        return "worker started" in self.log

    def signal(self, sig: signal.Signals) -> None:
        os.kill(self.proc.pid, sig)

    async def wait(self, timeout: float) -> int:
        """Wait for the exit (kill it when it overstays) and return its exit code."""
        try:
            return await asyncio.to_thread(self.proc.wait, timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            await asyncio.to_thread(self.proc.wait)
            raise AssertionError(f"worker {self.name} did not exit:\n{self.log}") from None

    async def stop(self, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
        return await self.wait(timeout)

    def close(self) -> None:
        """Kill it if still running and release its log file (fixture teardown)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


async def started(*workers: WorkerProcess, timeout: float = 60) -> None:
    """Wait until every worker logged that it is about to read jobs."""

    async def ready() -> bool:
        return all(w.started for w in workers)

    await wait_for(ready, timeout=timeout, what="every worker to start reading jobs")


async def wait_for(
    check: Callable[[], Awaitable[Any]],
    *,
    timeout: float,
    interval: float = 0.05,
    what: str = "the condition",
) -> Any:
    """Poll *check* until it returns something truthy (observable state, not sleeps); that
    value is returned. Fails after *timeout* seconds saying what it waited for."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)


async def flush_prefix(store: AgentStore) -> int:
    """Delete every Redis key of this deployment: what a Redis restart does to us."""
    keys = [
        k
        for pattern in store.keys.patterns()
        async for k in store.redis.scan_iter(match=pattern, count=1000)
    ]
    if keys:
        await store.redis.delete(*keys)
    return len(keys)
