"""``bench/load.py`` in its short form: 3 API processes, 4 workers, 200 threads, 10 s.

The whole multi-process load test (fake vendor, ``ai-agents serve --workers 3``, 4
``python -m workers``, a mix of synchronous runs, streams, background runs and reads),
shorter and with a 50 ms vendor. It must end with every thread checked: 0 lost, 0
duplicated, turns contiguous, no failed request.

The bench runs in its own session (process group): on a timeout or a failure the test
signals that group only, then removes what the bench may have left (its Redis keys, by
the prefix the test gave it, and its database, by the name it printed).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import asyncpg
import pytest

from ai_agents.redis_client import connect
from tests.conftest import ADMIN_URL, REDIS_URL

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
SHORT_FORM = ["--threads", "200", "--duration", "10", "--latency-ms", "50", "--clients", "12"]
BENCH_TIMEOUT = 780.0  # below the test's timeout, so the cleanup below always runs


async def _cleanup(prefix: str, database: str | None) -> None:
    client = connect(REDIS_URL)
    try:
        keys = [k async for k in client.scan_iter(match=f"{prefix}*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()
    if database and database.startswith("aabench_"):
        conn = await asyncpg.connect(ADMIN_URL)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        finally:
            await conn.close()


def _stop_group(proc: subprocess.Popen[str]) -> None:
    """SIGTERM to the bench's own process group (it stops its servers), then SIGKILL."""
    for sig, grace in ((signal.SIGTERM, 120.0), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(grace)
        if proc.poll() is not None:
            # The leader is gone: also any straggler of its group.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            return


def test_load_short_form_loses_and_duplicates_nothing() -> None:
    prefix = f"test:load:{uuid.uuid4().hex[:8]}:"
    env = {
        **os.environ,
        "AI_AGENTS_BENCH_DATABASE_URL": ADMIN_URL,
        "AI_AGENTS_BENCH_REDIS_URL": REDIS_URL,
        "PYTHONUNBUFFERED": "1",
    }
    argv = [sys.executable, str(ROOT / "bench" / "load.py"), *SHORT_FORM]
    started = time.monotonic()
    proc = subprocess.Popen(
        [*argv, "--redis-prefix", prefix],
        cwd=str(ROOT),
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    output = ""
    try:
        output, _ = proc.communicate(timeout=BENCH_TIMEOUT)
    except subprocess.TimeoutExpired:
        _stop_group(proc)
        output, _ = proc.communicate()
        pytest.fail(f"bench/load.py did not finish within {BENCH_TIMEOUT:g} s:\n{output}")
    finally:
        if proc.poll() is None:
            _stop_group(proc)
        found = re.search(r"^database (\S+)$", output, re.MULTILINE)
        asyncio.run(_cleanup(prefix, found.group(1) if found else None))
    print(f"bench/load.py short form took {time.monotonic() - started:.1f} s:\n{output}")
    assert proc.returncode == 0, output
    assert re.search(r"^lost=0 duplicated=0 non_contiguous=0 saved_after_error=0 ", output, re.M)
    assert re.search(r"^sync run +[1-9]", output, re.M), output  # the load really ran
