"""Issue 7, acceptance 1 (background runs): ``background: true`` answers 202 with a job,
a real worker process (``python -m workers --burst``) runs it, and polling
``GET /jobs/{id}`` sees it through to ``succeeded`` with the saved run; cancel and tenant
isolation of jobs too.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ai_agents.api.testing import RunningApi, running_api
from ai_agents.config import Settings
from ai_agents.providers.base import ProviderRequest
from ai_agents.store import AgentStore
from ai_agents.testing import FunctionProvider

ROOT = Path(__file__).resolve().parents[2]
JSON = dict[str, Any]


def _answer(request: ProviderRequest) -> str:
    return f"answer to {request.messages[-1].text}"


def worker_setup(store: AgentStore) -> None:
    """``AI_AGENTS_WORKER_SETUP`` hook of the worker processes started below."""
    store.register_provider("scripted", FunctionProvider(_answer))


def run_worker(settings: Settings) -> subprocess.CompletedProcess[str]:
    """One worker in burst mode: drains the queue, then exits."""
    return subprocess.run(
        [sys.executable, "-m", "ai_agents.workers", "--burst", "--name", "api-test-worker"],
        cwd=str(ROOT),
        env={
            **os.environ,
            "AI_AGENTS_DATABASE_URL": settings.database_url or "",
            "AI_AGENTS_REDIS_URL": settings.redis_url or "",
            "AI_AGENTS_REDIS_PREFIX": settings.redis_prefix,
            "AI_AGENTS_WORKER_SETUP": "tests.integration.test_api_jobs:worker_setup",
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def api(settings: Settings, redis_cleanup: None) -> Iterator[RunningApi]:
    with running_api(settings, providers={"scripted": FunctionProvider(_answer)}) as running:
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
            "/agents", json={"name": "Bg", "role": "r", "provider": "scripted", "model": "m"}
        )
    ).json()
    return str((await c.post("/threads", json={"agent_id": agent["id"]})).json()["id"])


async def _poll(c: httpx.AsyncClient, job_id: str, *, timeout: float = 60) -> JSON:
    deadline = time.monotonic() + timeout
    while True:
        job: JSON = (await c.get(f"/jobs/{job_id}")).json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        assert time.monotonic() < deadline, f"job still {job['status']}"
        await asyncio.sleep(0.05)


async def test_background_run_polled_to_completion(
    api: RunningApi, client: httpx.AsyncClient, settings: Settings
) -> None:
    thread = await _thread(client)
    r = await client.post(
        f"/threads/{thread}/runs",
        json={
            "input": "hello",
            "background": True,
            "priority": "high",
            "metadata": {"n": 1},
            "model": "m2",
        },
    )
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["status"] == "queued" and job["priority"] == "high" and job["thread_id"] == thread
    assert job["metadata"] == {"n": 1} and job["result"] is None
    assert r.headers["location"] == f"/api/v1/jobs/{job['id']}"
    assert (await client.get(f"/jobs/{job['id']}")).json()["status"] == "queued"
    queued = (await client.get(f"/runs/{job['run_id']}")).json()
    assert (queued["status"], queued["job_id"], queued["overrides"]) == (
        "queued",
        job["id"],
        {"model": "m2"},
    )

    worker = await asyncio.to_thread(run_worker, settings)
    assert worker.returncode == 0, worker.stderr
    done = await _poll(client, job["id"])
    assert done["status"] == "succeeded" and done["attempts"] == 1 and done["error"] is None
    assert done["result"]["content"] == "answer to hello"
    saved = (await client.get(f"/threads/{thread}/messages")).json()["data"]
    assert [m["content"] for m in saved] == ["hello", "answer to hello"]
    assert [m["id"] for m in saved] == done["result"]["message_ids"]
    assert done["started_at"] is not None and done["finished_at"] is not None
    assert done["run_id"] == job["run_id"] == done["result"]["run_id"]
    finished = (await client.get(f"/runs/{job['run_id']}")).json()
    assert (finished["status"], finished["model"]) == ("completed", "m2")
    assert done["result"]["model"] == "m2"


async def test_cancel_a_queued_job_and_tenant_isolation(
    api: RunningApi, client: httpx.AsyncClient, settings: Settings
) -> None:
    thread = await _thread(client)
    r = await client.post(f"/threads/{thread}/runs", json={"input": "never", "background": True})
    job_id = r.json()["id"]

    other = api.create_key("someone-else")
    async with httpx.AsyncClient(
        base_url=api.api, headers={"Authorization": f"Bearer {other}"}
    ) as intruder:
        assert (await intruder.get(f"/jobs/{job_id}")).status_code == 404
        assert (await intruder.post(f"/jobs/{job_id}/cancel")).status_code == 404
    assert (await client.get(f"/jobs/{job_id}")).json()["status"] == "queued"

    r = await client.post(f"/jobs/{job_id}/cancel")
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    worker = await asyncio.to_thread(run_worker, settings)
    assert worker.returncode == 0, worker.stderr
    job = (await client.get(f"/jobs/{job_id}")).json()
    assert job["status"] == "cancelled" and job["attempts"] == 0
    assert (await client.get(f"/threads/{thread}")).json()["message_count"] == 0
    r = await client.post(f"/jobs/{job_id}/cancel")  # finished: unchanged
    assert r.status_code == 200 and r.json()["status"] == "cancelled"


async def test_a_queued_background_run_is_answered_202_even_if_a_read_would_fail(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once the job is committed the answer is 202, built from what was committed: a
    database that fails right after (found by the chaos run) must not turn it into a 503
    that tells the client to retry, and so to run the turn twice."""
    from ai_agents.errors import StorageError
    from ai_agents.jobs.queue import RedisJobQueue

    thread = await _thread(client)

    async def database_gone(self: object, job_id: object, *, scope: object = None) -> None:
        raise StorageError("database unavailable during get job")

    monkeypatch.setattr(RedisJobQueue, "get_job", database_gone)
    r = await client.post(f"/threads/{thread}/runs", json={"input": "hi", "background": True})
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["status"] == "queued" and job["run_id"] and r.headers["Location"].endswith(job["id"])
    monkeypatch.undo()
    assert (await client.get(f"/jobs/{job['id']}")).json()["id"] == job["id"]
