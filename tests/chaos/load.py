"""The chaos run's load: synchronous runs, SSE streams and background runs through the
REST API, and a ledger of what every request was told.

Every request carries a unique id (``chaos`` in the run's metadata, which the platform
copies onto the turn's user message, and the last word of the input), so the audit can
find its turn in PostgreSQL.

- **sync**: ``POST /threads/{id}/runs`` with ``idempotency_key = <id>``; a clean error
  (409, 429, 502, 503, a cut connection) is retried with the same key, during the load
  and once more after it (:meth:`Load.settle`), so every synchronous request ends
  answered exactly once.
- **stream**: the same with ``stream: true``, never retried (a stream cannot be
  replayed): it ends ``done`` (answered) or with an error (nothing saved).
- **background**: ``background: true``; the job must finish, and its turn be saved
  exactly once if it succeeded, not at all otherwise.
- **reads**: ``GET`` of jobs and messages, to see that they too fail cleanly.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

RETRYABLE = frozenset({409, 429, 502, 503})
FINAL_JOB_STATES = frozenset({"succeeded", "failed", "cancelled"})


@dataclass
class Request:
    id: str
    kind: str  # sync | stream | background
    thread_id: str
    input: str
    #: Every attempt's outcome: "200", "503 provider_unavailable", "sse-error 502 ...",
    #: "transport ReadTimeout", "sse-cut" (a stream that ended without done or error).
    outcomes: list[str] = field(default_factory=list)
    answered: bool = False
    message_ids: list[str] = field(default_factory=list)
    job_id: str | None = None
    #: Per attempt: outcome, when (seconds into the load), how long, the error message.
    notes: list[str] = field(default_factory=list)


@dataclass
class Load:
    api_urls: list[str]
    api_key: str
    thread_ids: list[str]
    requests: list[Request] = field(default_factory=list)
    reads: Counter[str] = field(default_factory=Counter)
    t0: float = field(default_factory=time.monotonic)
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    _servers: Any = None

    def __post_init__(self) -> None:
        self._servers = itertools.cycle(self.api_urls)

    def _url(self) -> str:
        return str(next(self._servers))

    def _new(self, kind: str, thread_id: str) -> Request:
        rid = f"{kind[:2]}{next(self._ids):05d}-{uuid.uuid4().hex[:6]}"
        # A third of the turns ask for the tool (the vendor calls it on the word "tool").
        ask = "please tool" if random.random() < 1 / 3 else "hello"
        request = Request(rid, kind, thread_id, f"{ask} {rid}")
        self.requests.append(request)
        return request

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            headers={"Authorization": f"Bearer {self.api_key}"},
            timeout=httpx.Timeout(90.0, connect=5.0),
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
        )

    def _record(self, request: Request, started: float, outcome: str, detail: str = "") -> None:
        """One attempt's outcome, and when it started and how long it took (for reports)."""
        request.outcomes.append(outcome)
        now = time.monotonic()
        note = f"{outcome} at {started - self.t0:.1f}s, took {now - started:.1f}s"
        request.notes.append(f"{note}: {detail[:200]}" if detail else note)

    # --- the three kinds of run -------------------------------------------------------

    async def sync(self, client: httpx.AsyncClient, request: Request) -> None:
        body = {
            "input": request.input,
            "idempotency_key": request.id,
            "metadata": {"chaos": request.id},
        }
        url = f"{self._url()}/threads/{request.thread_id}/runs"
        started = time.monotonic()
        try:
            response = await client.post(url, json=body)
        except httpx.HTTPError as exc:
            self._record(request, started, f"transport {type(exc).__name__}")
            return
        self._record(request, started, _outcome(response), _message(response))
        if response.status_code == 200:
            request.answered = True
            request.message_ids = response.json()["message_ids"]

    async def sync_with_retries(
        self, client: httpx.AsyncClient, request: Request, attempts: int
    ) -> None:
        for attempt in range(attempts):
            await self.sync(client, request)
            if request.answered or not retryable(request.outcomes[-1]):
                return
            await asyncio.sleep(min(4.0, 0.5 * 2**attempt))

    async def stream(self, client: httpx.AsyncClient, request: Request) -> None:
        body = {"input": request.input, "stream": True, "metadata": {"chaos": request.id}}
        url = f"{self._url()}/threads/{request.thread_id}/runs"
        started = time.monotonic()
        events: list[str] = []
        try:
            async with client.stream("POST", url, json=body) as response:
                if response.status_code != 200:
                    await response.aread()
                    self._record(request, started, _outcome(response), _message(response))
                    return
                async for line in response.aiter_lines():
                    if line.startswith("event: "):
                        events.append(line[7:])
                    elif line.startswith("data: ") and events and events[-1] == "done":
                        self._record(request, started, "200")
                        request.answered = True
                        request.message_ids = json.loads(line[6:])["message_ids"]
                    elif line.startswith("data: ") and events and events[-1] == "error":
                        data = json.loads(line[6:])
                        outcome = f"sse-error {data.get('status')} {data.get('code')}"
                        self._record(request, started, outcome, data.get("message", ""))
                if not request.outcomes:
                    self._record(request, started, "sse-cut", f"events: {events}")
        except httpx.HTTPError as exc:
            self._record(request, started, f"transport {type(exc).__name__}", f"events: {events}")

    async def background(self, client: httpx.AsyncClient, request: Request) -> None:
        body = {"input": request.input, "background": True, "metadata": {"chaos": request.id}}
        url = f"{self._url()}/threads/{request.thread_id}/runs"
        started = time.monotonic()
        try:
            response = await client.post(url, json=body)
        except httpx.HTTPError as exc:
            self._record(request, started, f"transport {type(exc).__name__}")
            return
        self._record(request, started, _outcome(response), _message(response))
        if response.status_code == 202:
            request.job_id = response.json()["id"]

    async def read(self, client: httpx.AsyncClient) -> None:
        jobs = [r.job_id for r in self.requests if r.job_id]
        if jobs and random.random() < 0.5:
            url = f"{self._url()}/jobs/{random.choice(jobs)}"
        else:
            url = f"{self._url()}/threads/{random.choice(self.thread_ids)}/messages?limit=20"
        try:
            response = await client.get(url)
            self.reads[_outcome(response)] += 1
        except httpx.HTTPError as exc:
            self.reads[f"transport {type(exc).__name__}"] += 1

    # --- driving it ---------------------------------------------------------------------

    async def user(self, client: httpx.AsyncClient, threads: list[str], until: float) -> None:
        """One simulated client: a run, a stream, a job or a read at a time, until *until*."""
        while time.monotonic() < until:
            thread = random.choice(threads)
            pick = random.random()
            if pick < 0.3:
                await self.sync_with_retries(client, self._new("sync", thread), attempts=3)
            elif pick < 0.6:
                await self.stream(client, self._new("stream", thread))
            elif pick < 0.9:
                await self.background(client, self._new("background", thread))
            else:
                await self.read(client)
            await asyncio.sleep(random.uniform(0.05, 0.3))

    async def run(self, seconds: float, users: int) -> None:
        until = time.monotonic() + seconds
        async with self.client() as client:
            tasks = []
            for n in range(users):
                threads = self.thread_ids[n::users]
                tasks.append(asyncio.create_task(self.user(client, threads, until)))
            await asyncio.gather(*tasks)

    async def wait_for_jobs(self, timeout: float) -> dict[str, str]:
        """Poll every accepted job through the API until all are finished (or *timeout*)."""
        pending = {r.job_id for r in self.requests if r.job_id}
        states: dict[str, str] = {}
        deadline = time.monotonic() + timeout
        async with self.client() as client:
            while pending and time.monotonic() < deadline:
                for job_id in list(pending):
                    response = await client.get(f"{self._url()}/jobs/{job_id}")
                    self.reads[_outcome(response)] += 1
                    if response.status_code == 200:
                        states[job_id] = response.json()["status"]
                        if states[job_id] in FINAL_JOB_STATES:
                            pending.discard(job_id)
                if pending:
                    await asyncio.sleep(1.0)
        return states

    async def settle(self) -> None:
        """After the storm: retry every unanswered synchronous request with its key."""
        async with self.client() as client:
            unanswered = [r for r in self.requests if r.kind == "sync" and not r.answered]
            await asyncio.gather(
                *(self.sync_with_retries(client, r, attempts=5) for r in unanswered)
            )


def _outcome(response: httpx.Response) -> str:
    """``"200"``, or the status and the error code of an error answer."""
    if response.status_code < 400:
        return str(response.status_code)
    try:
        code = response.json().get("code")
    except ValueError:
        code = "(not JSON)"
    return f"{response.status_code} {code}"


def _message(response: httpx.Response) -> str:
    if response.status_code < 400:
        return ""
    try:
        return str(response.json().get("message", ""))
    except ValueError:
        return response.text[:200]


def status_of(outcome: str) -> int | None:
    """The HTTP status of an outcome (an SSE error event's too), None for transport ones."""
    words = outcome.split()
    if words[0] == "sse-error":
        words = words[1:]
    return int(words[0]) if words and words[0].isdigit() else None


def retryable(outcome: str) -> bool:
    return outcome.startswith("transport") or status_of(outcome) in RETRYABLE
