"""``ai-agents jobs list|show|cancel``: background runs (see ``docs/jobs.md``)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ai_agents.cli import command
from ai_agents.commands._output import (
    add_json_flag,
    add_tenant_flag,
    fields,
    json_line,
    json_lines,
    table,
    tenant_view,
)
from ai_agents.commands._shared import open_store, quiet_logs, run_command
from ai_agents.jobs.records import JobRecord
from ai_agents.jobs.tables import STATUSES

if TYPE_CHECKING:
    from ai_agents.store import AgentStore


def _configure_jobs(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    listing = sub.add_parser("list", help="list jobs, newest first")
    listing.add_argument(
        "--status", action="append", choices=STATUSES, help="only jobs in this status; repeatable"
    )
    listing.add_argument("--thread", help="only this thread's jobs")
    listing.add_argument("--limit", type=int, default=50)
    show = sub.add_parser("show", help="show a job: status, attempts, answer or error")
    show.add_argument("job_id")
    cancel = sub.add_parser("cancel", help="cancel a job (a running one stops at a safe point)")
    cancel.add_argument("job_id")
    for action in (listing, show, cancel):
        add_tenant_flag(action)
        add_json_flag(action)


async def list_jobs(
    store: AgentStore, *, statuses: list[str] | None, thread_id: str | None, limit: int
) -> list[JobRecord]:
    """The tenant's jobs, newest first."""
    from sqlalchemy import select

    from ai_agents.db.engine import parse_uuid, translate_errors
    from ai_agents.errors import ValidationError
    from ai_agents.jobs.tables import jobs

    if not 1 <= limit <= 1000:
        raise ValidationError("--limit must be between 1 and 1000", details={"field": "limit"})
    query = select(jobs).where(store.scope.visible(jobs.c.tenant_id))
    if statuses:
        query = query.where(jobs.c.status.in_(statuses))
    if thread_id is not None:
        query = query.where(jobs.c.thread_id == parse_uuid(thread_id, "thread"))
    query = query.order_by(jobs.c.created_at.desc(), jobs.c.id.desc()).limit(limit)
    with translate_errors("list jobs"):
        async with store.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
    return [JobRecord.from_row(row) for row in rows]


def _print_job(job: JobRecord) -> None:
    answer = (job.result or {}).get("content") if job.result else None
    fields(
        [
            ("id", job.id),
            ("tenant", job.tenant_id),
            ("thread", job.thread_id),
            ("run", job.run_id),
            ("status", job.status + (" (cancel requested)" if _stopping(job) else "")),
            ("priority", job.priority),
            ("attempts", f"{job.attempts} of {job.max_attempts}"),
            ("worker", job.worker),
            ("created", job.created_at),
            ("started", job.started_at),
            ("finished", job.finished_at),
            ("input", job.input),
            ("answer", answer),
            ("error", f"{job.error.code}: {job.error.message}" if job.error else None),
        ]
    )


def _stopping(job: JobRecord) -> bool:
    """Cancelled while running: its worker stops it at the next safe point."""
    return job.cancel_requested and not job.finished


def _one_line(text: str, limit: int = 40) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


async def _jobs(args: argparse.Namespace) -> int:
    async with await open_store() as opened:
        store = tenant_view(opened, args.tenant)
        if args.action == "list":
            found = await list_jobs(
                store, statuses=args.status, thread_id=args.thread, limit=args.limit
            )
            if args.json:
                json_lines(job.to_json() for job in found)
            elif not found:
                print("no jobs")
            else:
                table(
                    ["id", "status", "priority", "tries", "created", "thread", "input"],
                    (
                        [
                            j.id,
                            j.status,
                            j.priority,
                            j.attempts,
                            j.created_at,
                            j.thread_id,
                            _one_line(j.input),
                        ]
                        for j in found
                    ),
                )
            return 0
        if args.action == "show":
            job = await store.get_job(args.job_id)
        else:
            job = await store.cancel_job(args.job_id)
        if args.json:
            json_line(job.to_json())
        else:
            _print_job(job)
        return 0


@command("jobs", "list, show or cancel background jobs", _configure_jobs)
def _jobs_command(args: argparse.Namespace) -> int:
    quiet_logs()
    return run_command(_jobs(args))
