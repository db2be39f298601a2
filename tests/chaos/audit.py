"""Counting after the chaos run: what the clients were told against what PostgreSQL holds.

- **500s**: any answer (HTTP status or an SSE ``error`` event) with status 500.
- **half turns**: a thread's messages, in ``seq`` order, must be whole turns: a user
  message, then assistant messages whose tool calls are each answered by a tool message,
  ending with an assistant message without tool calls; all of one run.
- **duplicated**: a request's turn (its user message, found by the request id in its
  metadata) or a job's turn saved more than once.
- **lost**: an answered request whose turn or message ids are not in the database; a
  synchronous request never answered (even after the storm); an accepted job that did
  not finish, or finished ``succeeded`` without its turn; a run left unfinished.
- **saved after an error** (counted, not a failure): a stream that ended in an error but
  whose turn was saved; a job that failed but whose turn was saved. Such a turn is whole
  and saved once; the client was told it failed, which a stream cannot avoid when the
  connection fails after the commit.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from tests.chaos.load import FINAL_JOB_STATES, Load, status_of

ACTIVE_RUN_STATES = frozenset({"in_progress", "requires_action", "cancelling"})


@dataclass
class Report:
    requests: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    reads: Counter[str] = field(default_factory=Counter)
    jobs: Counter[str] = field(default_factory=Counter)
    runs: Counter[str] = field(default_factory=Counter)
    turns: int = 0
    tool_turns: int = 0
    errors_500: int = 0
    half_turns: int = 0
    duplicated: int = 0
    lost: int = 0
    saved_after_error: int = 0
    refused_but_ran: int = 0
    problems: list[str] = field(default_factory=list)

    def problem(self, kind: str, text: str) -> None:
        setattr(self, kind, getattr(self, kind) + 1)
        if len(self.problems) < 50:
            self.problems.append(f"{kind}: {text}")

    def remark(self, text: str) -> None:
        """Something worth reading that is not a failure (a client timeout, a cut stream)."""
        if len(self.problems) < 50:
            self.problems.append(f"note: {text}")

    def summary(self) -> str:
        lines = [
            f"requests: {dict(self.requests)}",
            f"outcomes (kind/status, every attempt): {dict(sorted(self.outcomes.items()))}",
            f"reads: {dict(sorted(self.reads.items()))}",
            f"jobs: {dict(self.jobs)}",
            f"runs: {dict(self.runs)}",
            f"turns saved: {self.turns} ({self.tool_turns} with a tool call)",
            f"500s: {self.errors_500}",
            f"lost: {self.lost}",
            f"duplicated: {self.duplicated}",
            f"half turns: {self.half_turns}",
            f"saved after an error (not a failure): {self.saved_after_error}",
            f"enqueue answered with an error, job ran anyway: {self.refused_but_ran}",
        ]
        lines += [f"  - {p}" for p in self.problems]
        return "\n".join(lines)


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def check_turns(messages: list[asyncpg.Record], report: Report) -> None:
    """Whole turns only, each from one run (see the module docstring)."""
    i, n = 0, len(messages)
    while i < n:
        first = messages[i]
        where = f"thread {first['thread_id']} seq {first['seq']}"
        if first["role"] != "user":
            report.problem("half_turns", f"{where}: a {first['role']} message starts a turn")
            i += 1
            continue
        run_id, complete, tools = first["run_id"], False, False
        i += 1
        while i < n and messages[i]["role"] != "user" and not complete:
            message = messages[i]
            if message["run_id"] != run_id:
                report.problem("half_turns", f"{where}: seq {message['seq']} is another run's")
            calls = _json(message["tool_calls"]) or []
            if message["role"] == "assistant" and calls:
                tools = True
                wanted = {c["id"] for c in calls}
                i += 1
                answered = set()
                while i < n and messages[i]["role"] == "tool":
                    answered.add(messages[i]["tool_call_id"])
                    i += 1
                if answered != wanted:
                    report.problem(
                        "half_turns", f"{where}: tool calls {wanted} answered {answered}"
                    )
            elif message["role"] == "assistant":
                complete = True
                i += 1
            else:
                report.problem("half_turns", f"{where}: unexpected {message['role']} message")
                i += 1
        if not complete:
            report.problem("half_turns", f"{where}: the turn has no final answer")
        else:
            report.turns += 1
            report.tool_turns += tools


@dataclass
class Saved:
    """What PostgreSQL holds, indexed for the checks."""

    message_ids: set[str]
    turns_of: Counter[str]  # request id -> user messages saved with it
    turns_of_job: Counter[str]  # job id -> user messages saved with it


def _saved(messages: list[asyncpg.Record]) -> Saved:
    saved = Saved({str(m["id"]) for m in messages}, Counter(), Counter())
    for m in messages:
        if m["role"] == "user":
            meta = _json(m["metadata"]) or {}
            if "chaos" in meta:
                saved.turns_of[meta["chaos"]] += 1
            if "job_id" in meta:
                saved.turns_of_job[meta["job_id"]] += 1
    return saved


def _check_requests(load: Load, saved: Saved, report: Report) -> None:
    for request in load.requests:
        report.requests[request.kind] += 1
        for outcome in request.outcomes:
            report.outcomes[f"{request.kind}/{outcome}"] += 1
            if status_of(outcome) == 500:
                report.problem("errors_500", f"{request.kind} {request.id}: {outcome}")
        turns = saved.turns_of[request.id]
        if any(o.startswith(("transport", "sse-cut")) for o in request.outcomes):
            report.remark(f"{request.kind} {request.id} (saved {turns}x): {request.notes}")
        if request.kind == "background":
            continue  # counted through its job
        if request.answered:
            missing = [i for i in request.message_ids if i not in saved.message_ids]
            if turns == 0 or missing:
                report.problem("lost", f"{request.id}: answered but {missing or 'turn'} missing")
        elif request.kind == "sync":
            report.problem("lost", f"sync {request.id} never answered: {request.notes}")
        elif turns:
            report.problem("saved_after_error", f"stream {request.id}: {request.notes}")
    for outcome, count in load.reads.items():
        if status_of(outcome) == 500:
            report.problem("errors_500", f"{count} reads answered {outcome}")


def _check_jobs(
    jobs: list[asyncpg.Record],
    load: Load,
    job_states: dict[str, str],
    saved: Saved,
    report: Report,
) -> None:
    accepted = {r.job_id for r in load.requests if r.job_id}
    by_id = {r.id: r for r in load.requests}
    for job in jobs:
        job_id, status = str(job["id"]), job["status"]
        report.jobs[status] += 1
        asked = by_id.get((_json(job["metadata"]) or {}).get("chaos", ""))
        if asked is not None and asked.job_id is None:
            report.problem("refused_but_ran", f"job {job_id} {status}: {asked.notes}")
        turns = saved.turns_of_job[job_id]
        if status not in FINAL_JOB_STATES:
            api_said = job_states.get(job_id)
            report.problem("lost", f"job {job_id} still {status} (API said {api_said})")
        elif status == "succeeded" and turns == 0:
            report.problem("lost", f"job {job_id} succeeded without its turn")
        elif status != "succeeded" and turns:
            report.problem("saved_after_error", f"job {job_id} {status} with its turn saved")
        accepted.discard(job_id)
    for job_id in accepted:
        report.problem("lost", f"job {job_id} was accepted (202) but is not in the jobs table")


def _check_runs(runs: list[asyncpg.Record], report: Report) -> None:
    for run in runs:
        status = run["status"]
        if status in ACTIVE_RUN_STATES and run["lapsed"]:
            status = "expired (lease lapsed)"  # how the platform reads it: its process died
        report.runs[status] += 1
        if status in ACTIVE_RUN_STATES or status == "queued":
            report.problem("lost", f"run {run['id']} left {status}")


async def audit(database_url: str, load: Load, job_states: dict[str, str]) -> Report:
    """Read the database once the storm is over and count (see the module docstring)."""
    conn = await asyncpg.connect(database_url)
    try:
        messages = await conn.fetch(
            "SELECT id, thread_id, seq, role, tool_calls, tool_call_id, run_id, metadata"
            " FROM messages ORDER BY thread_id, seq"
        )
        jobs = await conn.fetch("SELECT id, status, attempts, metadata FROM jobs")
        runs = await conn.fetch("SELECT id, status, lease_expires_at < now() AS lapsed FROM runs")
    finally:
        await conn.close()

    report = Report()
    report.reads.update(load.reads)
    by_thread: dict[Any, list[asyncpg.Record]] = defaultdict(list)
    for m in messages:
        by_thread[m["thread_id"]].append(m)
    for thread_messages in by_thread.values():
        check_turns(thread_messages, report)
    saved = _saved(messages)
    for key, count in {**saved.turns_of, **saved.turns_of_job}.items():
        if count > 1:
            report.problem("duplicated", f"{key}: saved {count} times")
    _check_requests(load, saved, report)
    _check_jobs(jobs, load, job_states, saved, report)
    _check_runs(runs, report)
    return report
