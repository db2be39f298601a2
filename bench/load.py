"""Issue 16, item 5: a multi-process load test that checks every thread afterwards.

Starts, each in its own process, on a fresh migrated database and a unique Redis prefix:

- a fake OpenAI-compatible vendor with a realistic latency (``bench/_latency_openai.py``:
  300 ms +/- 100 ms per answer by default, streamed answers spread over that time);
- the REST API, ``ai-agents serve --workers 3`` (3 processes behind one port);
- 4 job workers, ``python -m workers``.

It creates an API key, an agent whose provider is an OpenAI-compatible provider pointed
at the vendor (``AI_AGENTS_PROVIDERS``), and 10,000 threads; then ``--clients`` simulated
users drive, for ``--duration`` seconds over HTTP, a mix of synchronous runs, SSE
streams, background runs (enqueue, then poll the job until it has finished) and reads
(a thread's messages, a thread). Each write picks a random thread and sends a unique
text (``... op000123-ab12cd ...``). After the load (and the background runs, within
``--drain-timeout``) it stops the servers and checks every touched thread in PostgreSQL:

- **lost**: a run the client was told succeeded (200, SSE ``done``, job ``succeeded``)
  whose question is not saved, or whose returned message ids are not in the database;
  a job accepted (202) that is missing or never finished;
- **duplicated**: a question saved more than once; a user message no request sent;
- **non_contiguous**: a thread whose ``seq`` is not 1..n (or whose ``last_seq`` /
  ``message_count`` disagree), or whose messages are not user/assistant turns, each
  answer of the same run as its question and answering *that* question;
- **saved_after_error**: a request answered with an error whose turn was saved anyway
  (a half turn is already non-contiguous);
- jobs that did not end ``succeeded``, runs left ``queued``/``in_progress``, and answers
  returned to a client for another question.

Prints the CPU count and load average, a table (operation, count, req/s, p50/p99 ms,
errors), the errors by status, and ``lost=0 duplicated=0 non_contiguous=0 ...``; exits
1 when a check fails or any request failed (``--allow-errors``: errors only reported).

    python bench/load.py                                   # the full form (~3 minutes)
    python bench/load.py --threads 200 --duration 10 --latency-ms 50 --clients 12
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import re
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import asyncpg
import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from _common import REDIS_URL, bench_database  # noqa: E402

from ai_agents import AgentStore, Settings  # noqa: E402
from ai_agents.api.keys import KeyStore  # noqa: E402
from ai_agents.redis_client import connect  # noqa: E402

TENANT = "load"
PROVIDER = "loadvendor"
MODEL = "load-model"
FINAL_JOB_STATES = frozenset({"succeeded", "failed", "cancelled"})
ACTIVE_RUN_STATES = ("queued", "in_progress", "requires_action", "cancelling")
OP_ID = re.compile(r"\bop\d+-[0-9a-f]{6}\b")
#: Rows of the table, in order (``kind`` of each sample).
ROWS = (
    ("sync", "sync run"),
    ("stream", "stream (whole)"),
    ("stream_first", "  first delta"),
    ("background", "background run"),
    ("enqueue", "  enqueue (202)"),
    ("poll", "  job poll"),
    ("messages", "read messages"),
    ("thread", "read thread"),
)
MIX_KINDS = ("sync", "stream", "background", "messages", "thread")
DEFAULT_MIX = "sync=25,stream=25,background=20,messages=20,thread=10"


# --- processes ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _descendants(pid: int) -> list[int]:
    """Every process below *pid* (read from /proc; empty where /proc has no children)."""
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                text = Path(f"/proc/{parent}/task/{task}/children").read_text()
            except OSError:
                continue
            for child in text.split():
                found.append(int(child))
                todo.append(int(child))
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Process:
    """A child process logging to a file; stopped by its own pid (and its children's)."""

    def __init__(self, name: str, argv: Sequence[str], env: dict[str, str], log_dir: Path):
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log: IO[bytes] = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            list(argv),
            cwd=str(ROOT),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.children: set[int] = set()

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            tail = "\n".join(self.log_text().splitlines()[-40:])
            raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{tail}")

    def remember_children(self) -> None:
        if self.proc.poll() is None:
            self.children.update(_descendants(self.proc.pid))

    def cpu_seconds(self) -> float:
        """CPU time (user + system) used so far by the process and its children."""
        total = 0.0
        for pid in [self.proc.pid, *sorted(self.children)]:
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return total

    def terminate(self) -> None:
        self.remember_children()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> None:
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.remember_children()
            self.proc.kill()
            self.proc.wait()
        deadline = time.monotonic() + 10
        while any(_alive(p) for p in self.children) and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in self.children:  # only our own child's children, by pid
            if _alive(pid):
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
        self._log.close()


def wait_for(what: str, check: Any, processes: Sequence[Process], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        for process in processes:
            process.check_alive()
        if check():
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not ready within {timeout:g} s")
        time.sleep(0.2)


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/api/v1/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _vendor_listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def child_env(
    args: argparse.Namespace, url: str, prefix: str, vendor: str, base: Path
) -> dict[str, str]:
    """The environment of the API and worker processes."""
    models = {
        PROVIDER: {
            MODEL: {
                "context_window": 128_000,
                "max_output": 1_000,
                "rpm": 10_000_000,
                "tpm": 10_000_000_000,
                "supports_tools": True,
                "supports_vision": False,
                "cost_per_1m_input": 0.1,
                "cost_per_1m_output": 0.4,
            }
        }
    }
    models_file = base / "models.json"
    models_file.write_text(json.dumps(models))
    provider = {
        "adapter": "openai",
        "base_url": f"{vendor}/v1",
        "api_key": "sk-load",
        "timeout": 60,
    }
    inherited = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AI_AGENTS_", "OPENAI_", "ANTHROPIC_", "OLLAMA_"))
        and k not in {"DATABASE_URL", "REDIS_URL", "PYTEST_CURRENT_TEST"}
    }
    return {
        **inherited,
        "PYTHONPATH": str(ROOT),
        "AI_AGENTS_EMBEDDED": "0",
        "AI_AGENTS_DATABASE_URL": url,
        "AI_AGENTS_REDIS_URL": REDIS_URL,
        "AI_AGENTS_REDIS_PREFIX": prefix,
        "AI_AGENTS_PROVIDERS": json.dumps({PROVIDER: provider}),
        "AI_AGENTS_MODELS_FILE": str(models_file),
        # 3 API + 4 worker processes share PostgreSQL's 100 connections with others.
        "AI_AGENTS_DB_POOL_SIZE": str(args.db_pool),
        "AI_AGENTS_DB_MAX_OVERFLOW": str(args.db_pool),
        "AI_AGENTS_API_RATE_LIMIT_RPM": "0",
        "AI_AGENTS_API_BUSY_TIMEOUT": "120",
    }


# --- the load -------------------------------------------------------------------------------


@dataclass
class Op:
    """One write request and what its client was told."""

    id: str
    kind: str  # sync | stream | background
    thread_id: str
    text: str
    ok: bool = False
    #: Why it failed ("500 internal_error", "sse-error 502 ...", "transport ReadTimeout").
    error: str | None = None
    message_ids: list[str] = field(default_factory=list)
    answer: str | None = None
    job_id: str | None = None
    job_status: str | None = None


#: The first error message seen for each outcome ("429 rate_limited" -> its message).
EXAMPLES: dict[str, str] = {}


def _outcome(response: httpx.Response) -> str:
    """``"200"``, or the status and error code of an error answer."""
    if response.status_code < 400:
        return str(response.status_code)
    try:
        body = response.json()
        code, message = body.get("code"), f"{body.get('message')} {body.get('details') or ''}"
    except ValueError:
        code, message = "(not JSON)", response.text
    outcome = f"{response.status_code} {code}"
    EXAMPLES.setdefault(outcome, message.strip()[:300])
    return outcome


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of *values* (already sorted)."""
    if not values:
        return math.nan
    return values[min(len(values) - 1, max(0, math.ceil(q * len(values)) - 1))]


class Load:
    def __init__(
        self, api: str, key: str, thread_ids: list[str], mix: dict[str, int], seed: int
    ) -> None:
        self.api = api
        self.key = key
        self.thread_ids = thread_ids
        self.kinds = [k for k in MIX_KINDS if mix.get(k)]
        self.weights = [mix[k] for k in self.kinds]
        self.random = random.Random(seed)
        self.ops: list[Op] = []
        self.touched: list[str] = []
        self._touched: set[str] = set()
        #: Latencies (ms) and failures of the requests started in the measured window.
        self.samples: dict[str, list[float]] = defaultdict(list)
        self.window_errors: Counter[str] = Counter()
        #: Every failure, warm-up included, by kind and outcome.
        self.errors: dict[str, Counter[str]] = defaultdict(Counter)
        self._n = 0
        self.poll_deadline = math.inf
        self.measure_from = math.inf  # perf_counter() at the end of the warm-up
        self.measured = 0.0  # seconds of the measured window

    def _sample(self, kind: str, started: float) -> None:
        if started >= self.measure_from:
            self.samples[kind].append((time.perf_counter() - started) * 1000)

    def _error(self, kind: str, outcome: str, started: float) -> None:
        self.errors[kind][outcome] += 1
        if started >= self.measure_from:
            self.window_errors[kind] += 1

    def _new(self, kind: str) -> Op:
        self._n += 1
        op_id = f"op{self._n:06d}-{self.random.getrandbits(24):06x}"
        thread = self.random.choice(self.thread_ids)
        if thread not in self._touched:
            self._touched.add(thread)
            self.touched.append(thread)
        op = Op(op_id, kind, thread, f"question {op_id} ({kind}): when is check-out?")
        self.ops.append(op)
        return op

    def _fail(self, op: Op, kind: str, outcome: str, started: float) -> None:
        op.error = outcome
        self._error(kind, outcome, started)

    def _read_thread(self) -> str:
        pool = self.touched if self.touched and self.random.random() < 0.8 else self.thread_ids
        return self.random.choice(pool)

    # -- operations --

    async def sync(self, client: httpx.AsyncClient) -> None:
        op = self._new("sync")
        started = time.perf_counter()
        try:
            response = await client.post(
                f"{self.api}/threads/{op.thread_id}/runs", json={"input": op.text}
            )
        except httpx.HTTPError as exc:
            self._fail(op, "sync", f"transport {type(exc).__name__}", started)
            return
        if response.status_code != 200:
            self._fail(op, "sync", _outcome(response), started)
            return
        self._sample("sync", started)
        body = response.json()
        op.ok, op.message_ids, op.answer = True, body["message_ids"], body["content"]

    async def stream(self, client: httpx.AsyncClient) -> None:
        op = self._new("stream")
        started = time.perf_counter()
        event, first = "", True
        try:
            async with client.stream(
                "POST",
                f"{self.api}/threads/{op.thread_id}/runs",
                json={"input": op.text, "stream": True},
            ) as response:
                if response.status_code != 200:
                    await response.aread()
                    self._fail(op, "stream", _outcome(response), started)
                    return
                async for line in response.aiter_lines():
                    if line.startswith("event: "):
                        event = line[7:]
                    elif not line.startswith("data: "):
                        continue
                    elif event == "text_delta" and first:
                        first = False
                        self._sample("stream_first", started)
                    elif event == "done":
                        body = json.loads(line[6:])
                        op.ok, op.message_ids, op.answer = (
                            True,
                            body["message_ids"],
                            body["content"],
                        )
                    elif event == "error":
                        data = json.loads(line[6:])
                        outcome = f"sse-error {data.get('status')} {data.get('code')}"
                        EXAMPLES.setdefault(outcome, str(data.get("message"))[:300])
                        self._fail(op, "stream", outcome, started)
        except httpx.HTTPError as exc:
            op.ok = False
            self._fail(op, "stream", f"transport {type(exc).__name__}", started)
            return
        if op.ok:
            self._sample("stream", started)
        elif op.error is None:
            self._fail(op, "stream", "sse-cut (no done event)", started)

    async def background(self, client: httpx.AsyncClient) -> None:
        op = self._new("background")
        started = time.perf_counter()
        try:
            response = await client.post(
                f"{self.api}/threads/{op.thread_id}/runs",
                json={"input": op.text, "background": True},
            )
        except httpx.HTTPError as exc:
            self._fail(op, "background", f"enqueue transport {type(exc).__name__}", started)
            return
        if response.status_code != 202:
            self._fail(op, "enqueue", _outcome(response), started)
            self._fail(op, "background", f"enqueue {_outcome(response)}", started)
            return
        self._sample("enqueue", started)
        op.job_id = response.json()["id"]
        delay = 0.1
        while time.monotonic() < self.poll_deadline:
            await asyncio.sleep(delay)
            delay = min(0.5, delay * 1.5)
            polled = time.perf_counter()
            try:
                answer = await client.get(f"{self.api}/jobs/{op.job_id}")
            except httpx.HTTPError as exc:
                self._error("poll", f"transport {type(exc).__name__}", polled)
                continue
            if answer.status_code != 200:
                self._error("poll", _outcome(answer), polled)
                continue
            self._sample("poll", polled)
            job = answer.json()
            op.job_status = job["status"]
            if op.job_status not in FINAL_JOB_STATES:
                continue
            if op.job_status == "succeeded":
                self._sample("background", started)
                op.ok = True
                op.message_ids = job["result"]["message_ids"]
                op.answer = job["result"]["content"]
            else:
                code = (job.get("error") or {}).get("code")
                self._fail(op, "background", f"job {op.job_status} {code}", started)
            return
        self._fail(op, "background", f"job still {op.job_status} at the drain deadline", started)

    async def read(self, client: httpx.AsyncClient, kind: str) -> None:
        thread = self._read_thread()
        url = f"{self.api}/threads/{thread}"
        if kind == "messages":
            url += "/messages?limit=20&order=desc"
        started = time.perf_counter()
        try:
            response = await client.get(url)
        except httpx.HTTPError as exc:
            self._error(kind, f"transport {type(exc).__name__}", started)
            return
        if response.status_code != 200:
            self._error(kind, _outcome(response), started)
            return
        self._sample(kind, started)

    async def user(self, client: httpx.AsyncClient, delay: float, until: float) -> None:
        await asyncio.sleep(delay)
        while time.monotonic() < until:
            kind = self.random.choices(self.kinds, self.weights)[0]
            if kind == "sync":
                await self.sync(client)
            elif kind == "stream":
                await self.stream(client)
            elif kind == "background":
                await self.background(client)
            else:
                await self.read(client, kind)

    async def run(self, clients: int, warmup: float, duration: float, drain_timeout: float) -> None:
        """*warmup* seconds of load whose figures are not kept (each process loads its
        tokenizer on its first run), then *duration* seconds measured; requests started
        in the window are counted, and waited for (background jobs up to *drain_timeout*
        seconds after the window)."""
        # Idle connections are dropped before uvicorn's 5 s keep-alive timeout closes them:
        # a request sent on a connection the server is closing fails with no response.
        limits = httpx.Limits(
            max_connections=clients + 8, max_keepalive_connections=clients + 8, keepalive_expiry=2.0
        )
        timeout = httpx.Timeout(180.0, connect=30.0)
        headers = {"Authorization": f"Bearer {self.key}"}
        async with httpx.AsyncClient(headers=headers, limits=limits, timeout=timeout) as client:
            self.measure_from = time.perf_counter() + warmup
            until = time.monotonic() + warmup + duration
            self.poll_deadline = until + drain_timeout
            # Clients join over the first half of the warm-up (at most 5 s), as they would
            # after a deploy: a burst of more than AI_AGENTS_API_AUTH_FAILURE_LIMIT (20)
            # first requests from one address into a process that has not yet looked the
            # key up is answered 429 (see docs/testing.md, "Load test").
            ramp = min(5.0, warmup / 2) / clients
            await asyncio.gather(*(self.user(client, n * ramp, until) for n in range(clients)))
            self.measured = duration


# --- the check ------------------------------------------------------------------------------


@dataclass
class Checks:
    lost: int = 0
    duplicated: int = 0
    non_contiguous: int = 0
    saved_after_error: int = 0
    wrong_answer: int = 0
    jobs_not_succeeded: int = 0
    runs_unfinished: int = 0
    turns: int = 0
    messages: int = 0
    job_states: Counter[str] = field(default_factory=Counter)
    #: Milliseconds from enqueue to a worker's start, and from start to finish.
    job_waits: list[float] = field(default_factory=list)
    job_runs: list[float] = field(default_factory=list)
    job_retries: int = 0
    run_states: Counter[str] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)

    def problem(self, kind: str, text: str) -> None:
        setattr(self, kind, getattr(self, kind) + 1)
        if len(self.notes) < 40:
            self.notes.append(f"{kind}: {text}")

    @property
    def failed(self) -> bool:
        return any(
            (
                self.lost,
                self.duplicated,
                self.non_contiguous,
                self.saved_after_error,
                self.wrong_answer,
                self.jobs_not_succeeded,
                self.runs_unfinished,
            )
        )

    def line(self) -> str:
        return (
            f"lost={self.lost} duplicated={self.duplicated} "
            f"non_contiguous={self.non_contiguous} saved_after_error={self.saved_after_error} "
            f"wrong_answer={self.wrong_answer} jobs_not_succeeded={self.jobs_not_succeeded} "
            f"runs_unfinished={self.runs_unfinished}"
        )


def _check_thread(
    thread: str, rows: list[asyncpg.Record], stats: asyncpg.Record | None, checks: Checks
) -> None:
    seqs = [r["seq"] for r in rows]
    if seqs != list(range(1, len(rows) + 1)):
        checks.problem("non_contiguous", f"thread {thread}: seq {seqs[:12]}... not 1..{len(rows)}")
    if stats is None or stats["last_seq"] != len(rows) or stats["message_count"] != len(rows):
        said = None if stats is None else (stats["last_seq"], stats["message_count"])
        checks.problem(
            "non_contiguous", f"thread {thread}: {len(rows)} messages, last_seq/count {said}"
        )
    i = 0
    while i < len(rows):
        question = rows[i]
        where = f"thread {thread} seq {question['seq']}"
        if question["role"] != "user":
            checks.problem("non_contiguous", f"{where}: a {question['role']} message opens a turn")
            i += 1
            continue
        answer = rows[i + 1] if i + 1 < len(rows) else None
        if answer is None or answer["role"] != "assistant":
            checks.problem("non_contiguous", f"{where}: the question has no answer after it")
            i += 1
            continue
        if (
            answer["run_id"] != question["run_id"]
            or answer["content"] != f"answer to {question['content']}"
        ):
            checks.problem(
                "non_contiguous",
                f"{where}: seq {answer['seq']} answers {answer['content']!r}, not this question",
            )
        checks.turns += 1
        i += 2


async def check(url: str, load: Load) -> Checks:
    """Read PostgreSQL once the servers have stopped and count (module docstring)."""
    checks = Checks()
    conn = await asyncpg.connect(url)
    try:
        touched = [uuid.UUID(t) for t in load.touched]
        messages = await conn.fetch(
            "SELECT id, thread_id, seq, role, content, run_id FROM messages"
            " WHERE thread_id = ANY($1::uuid[]) ORDER BY thread_id, seq",
            touched,
        )
        threads = await conn.fetch(
            "SELECT id, last_seq, message_count FROM threads WHERE id = ANY($1::uuid[])", touched
        )
        jobs = await conn.fetch(
            "SELECT id, status, attempts,"
            " extract(epoch FROM started_at - created_at) * 1000 AS waited,"
            " extract(epoch FROM finished_at - started_at) * 1000 AS ran FROM jobs"
        )
        runs = await conn.fetch("SELECT status, count(*) AS n FROM runs GROUP BY status")
        outside = await conn.fetchval(
            "SELECT count(*) FROM messages WHERE NOT thread_id = ANY($1::uuid[])", touched
        )
    finally:
        await conn.close()

    checks.messages = len(messages)
    by_thread: dict[str, list[asyncpg.Record]] = defaultdict(list)
    for row in messages:
        by_thread[str(row["thread_id"])].append(row)
    stats = {str(r["id"]): r for r in threads}
    for thread in load.touched:
        _check_thread(thread, by_thread.get(thread, []), stats.get(thread), checks)
    if outside:
        checks.problem("duplicated", f"{outside} messages in threads no request touched")

    saved: Counter[str] = Counter()
    saved_ids = {str(r["id"]) for r in messages}
    for row in messages:
        if row["role"] != "user":
            continue
        found = OP_ID.search(row["content"] or "")
        if found is None:
            checks.problem("duplicated", f"user message {row['id']} was sent by no request")
        else:
            saved[found.group(0)] += 1
    ops = {op.id: op for op in load.ops}
    for op_id in saved.keys() - ops.keys():
        checks.problem("duplicated", f"{op_id} saved but never sent")

    job_status = {str(r["id"]): r["status"] for r in jobs}
    checks.job_states.update(job_status.values())
    for row in jobs:
        checks.job_retries += max(0, row["attempts"] - 1)
        if row["waited"] is not None:
            checks.job_waits.append(float(row["waited"]))
        if row["ran"] is not None:
            checks.job_runs.append(float(row["ran"]))
    for op in load.ops:
        n = saved[op.id]
        if n > 1:
            checks.problem("duplicated", f"{op.kind} {op.id} saved {n} times")
        if op.kind == "background" and op.job_id is not None:
            status = job_status.pop(op.job_id, None)
            if status is None:
                checks.problem(
                    "lost", f"job {op.job_id} ({op.id}) accepted but not in the jobs table"
                )
            elif status not in FINAL_JOB_STATES:
                checks.problem("lost", f"job {op.job_id} ({op.id}) still {status}")
            elif status != "succeeded":
                checks.problem("jobs_not_succeeded", f"job {op.job_id} ({op.id}) {status}")
        if op.ok:
            missing = [m for m in op.message_ids if m not in saved_ids]
            if n == 0 or missing or not op.message_ids:
                checks.problem(
                    "lost", f"{op.kind} {op.id} answered but {missing or 'its turn'} missing"
                )
            if op.answer != f"answer to {op.text}":
                checks.problem("wrong_answer", f"{op.kind} {op.id} was told {op.answer!r}")
        elif n and not (op.error or "").startswith("transport"):
            # A transport error (client timeout, cut connection) cannot tell whether the
            # turn was saved; an error *answer* must mean it was not.
            checks.problem("saved_after_error", f"{op.kind} {op.id} ({op.error}) saved {n}x")
    for job_id, status in job_status.items():
        checks.problem("duplicated", f"job {job_id} ({status}) was enqueued by no request")
    for row in runs:
        checks.run_states[row["status"]] += row["n"]
        if row["status"] in ACTIVE_RUN_STATES:
            checks.runs_unfinished += row["n"]
            checks.notes.append(f"runs_unfinished: {row['n']} runs left {row['status']}")
    return checks


# --- setup and the whole run ----------------------------------------------------------------


async def create_threads(store: AgentStore, agent_id: str, n: int) -> list[str]:
    gate = asyncio.Semaphore(8)

    async def one() -> str:
        async with gate:
            return str(await store.create_thread(agent_id))

    return list(await asyncio.gather(*(one() for _ in range(n))))


async def setup(args: argparse.Namespace, url: str, prefix: str, api: str) -> tuple[str, list[str]]:
    """An API key (created in-process: only its hash is stored), the agent, the threads."""
    settings = Settings(
        database_url=url, redis_url=REDIS_URL, redis_prefix=prefix, default_tenant=TENANT
    )
    async with AgentStore(settings=settings) as store:
        keys = KeyStore(store, pepper=None, cache_ttl=0)
        created = await keys.create(tenant_id=TENANT, name="bench-load", rate_limit_rpm=0)
        async with httpx.AsyncClient(
            headers={"Authorization": f"Bearer {created.secret}"}, timeout=60
        ) as client:
            response = await client.post(
                f"{api}/agents",
                json={
                    "name": "Load",
                    "role": "You answer questions about bookings.",
                    "provider": PROVIDER,
                    "model": MODEL,
                    "memory_config": {"max_messages": 20},
                },
            )
            if response.status_code != 201:
                raise RuntimeError(f"creating the agent: {response.status_code} {response.text}")
            agent_id = str(response.json()["id"])
        started = time.perf_counter()
        threads = await create_threads(store, agent_id, args.threads)
        print(
            f"created {len(threads)} threads in {time.perf_counter() - started:.1f} s", flush=True
        )
    return created.secret, threads


async def vendor_stats(url: str) -> dict[str, int]:
    async with httpx.AsyncClient(timeout=10) as client:
        data: dict[str, int] = (await client.get(f"{url}/_stats")).json()
        return data


async def delete_keys(prefix: str) -> int:
    client = connect(REDIS_URL)
    try:
        keys = [k async for k in client.scan_iter(match=f"{prefix}*", count=1000)]
        for start in range(0, len(keys), 500):
            await client.delete(*keys[start : start + 500])
        return len(keys)
    finally:
        await client.aclose()


def cpu_use(processes: Sequence[Process]) -> dict[str, float]:
    """CPU seconds so far: the API (all its processes), the workers, the vendor, this load."""
    used: dict[str, float] = defaultdict(float)
    for process in processes:
        used[process.name.split("-")[0]] += process.cpu_seconds()
    own = resource.getrusage(resource.RUSAGE_SELF)
    used["load client"] = own.ru_utime + own.ru_stime
    return dict(used)


def report(
    args: argparse.Namespace,
    load: Load,
    checks: Checks,
    vendor: dict[str, int],
    cpu: dict[str, float],
) -> None:
    elapsed = max(load.measured, 1e-9)
    print()
    print(
        f"{args.clients} clients, {args.warmup:g} s warm-up then {args.duration:g} s measured "
        f"(requests started in the window) over {len(load.thread_ids)} threads "
        f"({len(load.touched)} touched); {args.api_workers} API processes, {args.workers} "
        f"workers; vendor latency {args.latency_ms:g} +/- {args.jitter_ms:g} ms"
    )
    print(f"{'operation':<18} {'count':>7} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for kind, label in ROWS:
        values = sorted(load.samples.get(kind, []))
        errors = load.window_errors[kind]
        count = len(values) + errors
        if kind == "stream_first":
            errors, count = 0, len(values)
        print(
            f"{label:<18} {count:>7} {count / elapsed:>8.1f} {percentile(values, 0.5):>8.0f} "
            f"{percentile(values, 0.99):>8.0f} {errors:>7}"
        )
    runs = sum(len(load.samples[kind]) for kind in ("sync", "stream", "background"))
    print(f"{'runs (all kinds)':<18} {runs:>7} {runs / elapsed:>8.1f}")
    for kind, counter in sorted(load.errors.items()):
        for outcome, n in counter.most_common():
            example = next((m for o, m in EXAMPLES.items() if o in outcome), "")
            print(f"  error {kind} (warm-up included): {outcome} x{n}  {example}".rstrip())
    print(
        f"saved: {checks.messages} messages, {checks.turns} turns; vendor calls: "
        f"{vendor.get('completions', 0)} JSON + {vendor.get('streams', 0)} streamed; "
        f"jobs: {dict(checks.job_states)}; runs: {dict(checks.run_states)}"
    )
    waits, ran = sorted(checks.job_waits), sorted(checks.job_runs)
    print(
        f"jobs in PostgreSQL: queued -> started p50 {percentile(waits, 0.5):.0f} ms, "
        f"p99 {percentile(waits, 0.99):.0f} ms; started -> finished p50 "
        f"{percentile(ran, 0.5):.0f} ms, p99 {percentile(ran, 0.99):.0f} ms; "
        f"{checks.job_retries} retried attempts"
    )
    wall = cpu.pop("wall", 0.0)
    shares = ", ".join(f"{name} {seconds:.0f}" for name, seconds in cpu.items())
    print(
        f"CPU seconds during the {wall:.0f} s of load (of {wall * (os.cpu_count() or 1):.0f} "
        f"available; PostgreSQL and Redis not counted): {shares}"
    )
    for note in checks.notes:
        print(f"  - {note}")
    print(checks.line())


def parse_mix(text: str) -> dict[str, int]:
    mix: dict[str, int] = {}
    for part in text.split(","):
        name, _, weight = part.partition("=")
        if name.strip() not in MIX_KINDS or not weight.strip().isdigit():
            raise argparse.ArgumentTypeError(f"--mix: {part!r} (kinds: {', '.join(MIX_KINDS)})")
        mix[name.strip()] = int(weight)
    if not any(mix.values()):
        raise argparse.ArgumentTypeError("--mix: every weight is 0")
    return mix


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--threads", type=int, default=10_000, help="threads (default 10000)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load (60)")
    parser.add_argument(
        "--warmup", type=float, default=10.0, help="seconds of load before measuring (10)"
    )
    parser.add_argument("--clients", type=int, default=48, help="simulated users (48)")
    parser.add_argument("--api-workers", type=int, default=3, help="API processes (3)")
    parser.add_argument("--workers", type=int, default=4, help="job worker processes (4)")
    parser.add_argument("--worker-concurrency", type=int, default=10, help="jobs per worker (10)")
    parser.add_argument("--latency-ms", type=float, default=300.0, help="vendor latency (300)")
    parser.add_argument("--jitter-ms", type=float, default=None, help="+/- (latency / 3)")
    parser.add_argument("--mix", type=parse_mix, default=parse_mix(DEFAULT_MIX), help=DEFAULT_MIX)
    parser.add_argument(
        "--drain-timeout", type=float, default=180.0, help="seconds for jobs after the load"
    )
    parser.add_argument(
        "--db-pool", type=int, default=4, help="pool size and overflow per process (4)"
    )
    parser.add_argument("--redis-prefix", default=None, help="Redis key prefix (default: unique)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--log-dir", default=None, help="keep the servers' logs there")
    parser.add_argument(
        "--allow-errors", action="store_true", help="failed requests do not fail the run"
    )
    args = parser.parse_args(argv)
    if args.jitter_ms is None:
        args.jitter_ms = args.latency_ms / 3
    return args


@contextlib.contextmanager
def _log_dir(path: str | None) -> Iterator[Path]:
    """Where the servers' logs go: *path* (kept), or a temporary directory."""
    if path:
        Path(path).mkdir(parents=True, exist_ok=True)
        yield Path(path)
        return
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        yield Path(tmp)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextlib.contextmanager
def servers(
    args: argparse.Namespace, url: str, prefix: str, base: Path
) -> Iterator[tuple[str, str, list[Process]]]:
    """The vendor, the API and the workers; stopped (workers first) when the block exits."""
    vendor_port, api_port = free_port(), free_port()
    vendor_url, api_url = f"http://127.0.0.1:{vendor_port}", f"http://127.0.0.1:{api_port}"
    env = child_env(args, url, prefix, vendor_url, base)
    started: list[Process] = []
    try:
        vendor = Process(
            "vendor",
            [sys.executable, str(HERE / "_latency_openai.py"), str(vendor_port),
             "--latency-ms", str(args.latency_ms), "--jitter-ms", str(args.jitter_ms)],
            env,
            base,
        )  # fmt: skip
        started.append(vendor)
        api = Process(
            "api",
            [sys.executable, "-m", "ai_agents", "serve", "--port", str(api_port),
             "--workers", str(args.api_workers), "--log-level", "info", "--no-access-log"],
            env,
            base,
        )  # fmt: skip
        started.append(api)
        workers = [
            Process(
                f"worker-{n}",
                [
                    sys.executable,
                    "-m",
                    "workers",
                    "--name",
                    f"load-{n}",
                    "--concurrency",
                    str(args.worker_concurrency),
                    "--poll-interval",
                    "0.5",
                ],
                env,
                base,
            )  # fmt: skip
            for n in range(1, args.workers + 1)
        ]
        started.extend(workers)
        wait_for("vendor", lambda: _vendor_listening(vendor_port), started, 60)
        wait_for(
            f"{args.api_workers} API processes",
            lambda: (
                api.log_text().count("Application startup complete") >= args.api_workers
                and _healthy(api_url)
            ),
            started,
            180,
        )
        wait_for(
            f"{args.workers} workers",
            lambda: all("worker started" in w.log_text() for w in workers),
            started,
            180,
        )
        for process in started:
            process.remember_children()
        yield vendor_url, f"{api_url}/api/v1", started
    finally:
        groups = [
            [p for p in started if p.name.startswith("worker")],
            [p for p in started if p.name == "api"],
            [p for p in started if p.name == "vendor"],
        ]
        for group in groups:
            for process in group:
                process.terminate()
            for process in group:
                process.wait(timeout=60)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    prefix = args.redis_prefix or f"bench:load:{uuid.uuid4().hex[:8]}:"
    load1, load5, load15 = os.getloadavg()
    print(
        f"CPUs: {os.cpu_count()}, load average {load1:.2f} {load5:.2f} {load15:.2f}; "
        f"seed {seed}; Redis prefix {prefix}",
        flush=True,
    )
    try:
        with _log_dir(args.log_dir) as base, bench_database() as url:
            print(f"database {url.rpartition('/')[2]}", flush=True)
            with servers(args, url, prefix, base) as (vendor_url, api, processes):
                key, threads = asyncio.run(setup(args, url, prefix, api))
                load = Load(api, key, threads, args.mix, seed)
                print(f"load: {args.warmup:g} s warm-up, {args.duration:g} s measured", flush=True)
                cpu_before = cpu_use(processes)
                wall = time.perf_counter()
                asyncio.run(load.run(args.clients, args.warmup, args.duration, args.drain_timeout))
                cpu = {name: used - cpu_before[name] for name, used in cpu_use(processes).items()}
                cpu["wall"] = time.perf_counter() - wall
                vendor = asyncio.run(vendor_stats(vendor_url))
                for process in processes:
                    process.check_alive()
            checks = asyncio.run(check(url, load))
            report(args, load, checks, vendor, cpu)
    finally:
        asyncio.run(delete_keys(prefix))
    load1, load5, load15 = os.getloadavg()
    print(f"load average after: {load1:.2f} {load5:.2f} {load15:.2f}")
    errors = sum(sum(c.values()) for c in load.errors.values())
    if checks.failed:
        print("FAILED: the database does not match what the clients were told")
        return 1
    if errors and not args.allow_errors:
        print(f"FAILED: {errors} requests failed (--allow-errors to only report them)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
