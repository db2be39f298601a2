"""Metrics and JSON logs of real processes (issue 15, item 3): ``ai-agents serve
--workers 2`` with one metrics directory, and a worker exporting its own metrics."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ai_agents import AgentStore, Settings
from ai_agents.api.testing import free_port
from ai_agents.jobs.queue import job_queue
from tests.integration.jobs_support import WorkerProcess, make_threads, started
from tests.prometheus_text import sample
from tests.waiting import wait_until

HEALTH = {"method": "GET", "route": "/api/v1/health", "status": "200"}


@pytest.fixture
def serve_two_workers(
    settings: Settings, redis_cleanup: None, tmp_path: Path
) -> Iterator[tuple[str, subprocess.Popen[str], Path]]:
    """``ai-agents serve --workers 2 --log-json`` sharing a metrics directory."""
    port = free_port()
    metrics_dir = tmp_path / "metrics"
    env = {
        **os.environ,
        "AI_AGENTS_DATABASE_URL": settings.database_url or "",
        "AI_AGENTS_REDIS_URL": settings.redis_url or "",
        "AI_AGENTS_REDIS_PREFIX": settings.redis_prefix,
        "AI_AGENTS_API_METRICS_PUBLIC": "1",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
    }
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "ai_agents", "serve", "--port", str(port), "--workers", "2"]
            + ["--log-json"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
    try:
        yield f"http://127.0.0.1:{port}/api/v1", server, log
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


async def _get(url: str, **headers: str) -> httpx.Response:
    """One request on its own connection (so the kernel may hand it to either worker)."""
    async with httpx.AsyncClient() as client:
        return await client.get(url, headers=headers)


@pytest.mark.slow  # starts three processes
async def test_metrics_of_two_workers_never_go_backwards(
    serve_two_workers: tuple[str, subprocess.Popen[str], Path],
) -> None:
    """Acceptance: every scrape, whichever worker answers it, counts the requests of both
    workers; the counter never decreases."""
    base, server, log = serve_two_workers
    answered = 0

    async def serving() -> bool:
        nonlocal answered
        assert server.poll() is None, log.read_text()
        try:
            ok = (await _get(f"{base}/health")).status_code == 200
        except httpx.TransportError:
            return False
        answered += ok
        return ok

    await wait_until(serving, timeout=60, interval=0.1, what="serve to answer /health")

    async def scrape() -> str:
        response = await _get(f"{base}/metrics")
        assert response.status_code == 200
        return response.text

    seen: list[float] = []
    for _ in range(8):
        batch = await asyncio.gather(*(_get(f"{base}/health") for _ in range(10)))
        assert [r.status_code for r in batch] == [200] * 10
        answered += 10
        for _ in range(3):
            seen.append(sample(await scrape(), "ai_agents_http_requests_total", **HEALTH) or 0)
    assert seen == sorted(seen), f"a counter went backwards: {seen}"

    async def all_counted() -> bool:
        # A request is counted right after its answer is sent: the last ones may lag.
        seen.append(sample(await scrape(), "ai_agents_http_requests_total", **HEALTH) or 0)
        return seen[-1] == answered

    await wait_until(all_counted, timeout=10, interval=0.05, what=f"{answered} requests counted")
    assert seen == sorted(seen), f"a counter went backwards: {seen}"
    assert max(seen) == answered

    text = await scrape()
    rss = [
        s
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "process_resident_memory_bytes"
    ]
    assert len({s.labels["pid"] for s in rss}) == 2, rss  # one series per live worker
    assert all(s.value > 0 for s in rss)
    assert sample(text, "ai_agents_queue_depth", priority="normal") is not None

    # JSON logs: every line is one JSON object; the access log carries the request id.
    response = await _get(f"{base}/health", **{"X-Request-ID": "obs-test-1"})
    assert response.headers["x-request-id"] == "obs-test-1"
    generated = (await _get(f"{base}/health", **{"X-Request-ID": "bad id\x7f"})).headers
    assert len(generated["x-request-id"]) == 32  # not echoed: replaced by a new id

    async def logged() -> bool:
        return "obs-test-1" in log.read_text()

    await wait_until(logged, timeout=10, interval=0.05, what="the access log line")
    server.send_signal(signal.SIGINT)
    server.wait(30)
    records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    access = [r for r in records if r.get("request_id") == "obs-test-1"]
    assert access and access[0]["logger"] == "uvicorn.access", access
    assert "GET /api/v1/health" in access[0]["message"]
    assert any("Application startup complete" in r["message"] for r in records)


async def test_worker_exports_its_metrics_and_logs_job_ids(
    store: AgentStore, settings: Settings
) -> None:
    """``ai-agents worker --metrics-port``: its jobs, runs and process metrics; with
    ``AI_AGENTS_LOG_FORMAT=json`` the run's log lines name the job and the run."""
    [thread] = await make_threads(store, 1)
    port = free_port()
    worker = WorkerProcess(
        settings, "obs", "--metrics-port", str(port), AI_AGENTS_LOG_FORMAT="json"
    )
    try:
        await started(worker)
        job_id = await store.enqueue_run(thread, "count me")
        result = await job_queue(store).get_result(job_id, timeout=30)
        assert result.status == "succeeded"

        async def scrape() -> str:
            return (await _get(f"http://127.0.0.1:{port}/metrics")).text

        async def counted() -> bool:
            text = await scrape()
            return sample(text, "ai_agents_jobs_total", outcome="succeeded", kind="run") == 1

        await wait_until(counted, timeout=10, interval=0.05, what="the job counted")
        text = await scrape()
        assert sample(text, "ai_agents_runs_total", mode="job", model="echo") == 1
        assert (sample(text, "ai_agents_tokens_total", model="echo", direction="input") or 0) > 0
        assert sample(text, "ai_agents_job_duration_seconds_count", kind="run") == 1
        assert (sample(text, "process_resident_memory_bytes") or 0) > 0
    finally:
        assert await worker.stop() == 0, worker.log
        log = worker.log
        worker.close()
    records = [json.loads(line) for line in log.splitlines() if line.strip()]
    [finished] = [r for r in records if r["message"] == "run finished"]
    assert finished["job_id"] == str(job_id)  # from the job's context, not the record
    assert finished["run_id"] == str(result.run_id)
    assert finished["thread_id"] == str(thread)
