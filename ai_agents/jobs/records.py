"""What the job queue returns: :class:`JobRecord` and its error, plus their JSON form.

The same JSON form is the row's ``result``/``error`` columns and the Redis result cache
(``jobs:results:{job_id}``), so a cached record and a PostgreSQL read are interchangeable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from sqlalchemy.engine import RowMapping

from ai_agents.errors import AgentsError, RunError
from ai_agents.jobs.tables import FINISHED, Priority
from ai_agents.messages import ToolCall
from ai_agents.providers.base import Usage
from ai_agents.response import AgentResponse, RunFinish, ToolCallRecord

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]


class JobTimeout(RunError):
    """``get_result`` waited longer than its timeout; the job is still queued or running."""

    code = "job_timeout"

    def __init__(self, job_id: UUID, status: str, timeout: float) -> None:
        super().__init__(
            f"job {job_id} is still {status} after waiting {timeout:g} s",
            details={"job_id": str(job_id), "status": status, "timeout": timeout},
        )
        self.job_id = job_id
        self.status = status


@dataclass(frozen=True, slots=True)
class JobError:
    """Why a job failed (or was cancelled): the library error's ``code`` and message."""

    code: str
    message: str

    @classmethod
    def of(cls, exc: BaseException) -> JobError:
        if isinstance(exc, AgentsError):
            return cls(exc.code, exc.message)
        return cls("internal_error", f"{type(exc).__name__}: {exc}")

    def to_json(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


@dataclass(slots=True, kw_only=True)
class JobRecord:
    """One background run: where it stands, how often it ran, and its answer or error."""

    id: UUID
    tenant_id: str
    thread_id: UUID
    input: str
    priority: Priority
    status: JobStatus
    attempts: int
    max_attempts: int
    cancel_requested: bool = False
    created_at: datetime | None = None
    #: When the first attempt started (``None`` while it never ran).
    started_at: datetime | None = None
    finished_at: datetime | None = None
    heartbeat_at: datetime | None = None
    worker: str | None = None
    #: ``AgentResponse.to_json()`` of the answer (status ``succeeded``).
    result: dict[str, Any] | None = None
    #: The last error: the final one when ``failed``/``cancelled``, the one being retried
    #: when ``queued`` again after a failed attempt.
    error: JobError | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    #: The run this job executes (``store.get_run``), created with the job.
    run_id: UUID | None = None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def response(self) -> AgentResponse | None:
        """The answer as an :class:`AgentResponse` (``None`` unless ``succeeded``, and for
        memory extraction jobs, whose ``result`` is an ``ExtractionResult``)."""
        if self.result is None or self.result.get("kind") == "memory_extraction":
            return None
        return response_from_json(self.result)

    @classmethod
    def from_row(cls, row: RowMapping) -> JobRecord:
        error = row["error"]
        return cls(
            id=row["id"],
            tenant_id=row["tenant_id"],
            thread_id=row["thread_id"],
            input=row["input"],
            priority=row["priority"],
            status=row["status"],
            attempts=row["attempts"],
            max_attempts=row["max_attempts"],
            cancel_requested=row["cancel_requested"],
            created_at=row["created_at"],
            started_at=row["started_at"],
            finished_at=row["finished_at"],
            heartbeat_at=row["heartbeat_at"],
            worker=row["worker"],
            result=row["result"],
            error=JobError(error["code"], error["message"]) if error else None,
            metadata=dict(row["metadata"] or {}),
            run_id=row.get("run_id"),
        )

    def to_json(self) -> dict[str, Any]:
        def ts(value: datetime | None) -> str | None:
            return value.isoformat() if value is not None else None

        return {
            "id": str(self.id),
            "tenant_id": self.tenant_id,
            "thread_id": str(self.thread_id),
            "input": self.input,
            "priority": self.priority,
            "status": self.status,
            "attempts": self.attempts,
            "max_attempts": self.max_attempts,
            "cancel_requested": self.cancel_requested,
            "created_at": ts(self.created_at),
            "started_at": ts(self.started_at),
            "finished_at": ts(self.finished_at),
            "heartbeat_at": ts(self.heartbeat_at),
            "worker": self.worker,
            "result": self.result,
            "error": self.error.to_json() if self.error else None,
            "metadata": self.metadata,
            "run_id": str(self.run_id) if self.run_id else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobRecord:
        def ts(value: str | None) -> datetime | None:
            return datetime.fromisoformat(value) if value else None

        error = data.get("error")
        return cls(
            id=UUID(data["id"]),
            tenant_id=data["tenant_id"],
            thread_id=UUID(data["thread_id"]),
            input=data["input"],
            priority=data["priority"],
            status=data["status"],
            attempts=int(data["attempts"]),
            max_attempts=int(data["max_attempts"]),
            cancel_requested=bool(data.get("cancel_requested")),
            created_at=ts(data.get("created_at")),
            started_at=ts(data.get("started_at")),
            finished_at=ts(data.get("finished_at")),
            heartbeat_at=ts(data.get("heartbeat_at")),
            worker=data.get("worker"),
            result=data.get("result"),
            error=JobError(error["code"], error["message"]) if error else None,
            metadata=dict(data.get("metadata") or {}),
            run_id=UUID(data["run_id"]) if data.get("run_id") else None,
        )


def response_from_json(data: dict[str, Any]) -> AgentResponse:
    """Rebuild the :class:`AgentResponse` that ``AgentResponse.to_json()`` produced."""
    usage = data.get("usage") or {}
    finish: RunFinish = data.get("finish_reason", "stop")
    return AgentResponse(
        content=data.get("content") or "",
        thread_id=UUID(data["thread_id"]),
        run_id=UUID(data["run_id"]),
        finish_reason=finish,
        tool_calls=[
            ToolCallRecord(ToolCall.from_json(t), t.get("result", ""), bool(t.get("is_error")))
            for t in data.get("tool_calls") or ()
        ],
        usage=Usage(int(usage.get("input_tokens", 0)), int(usage.get("output_tokens", 0))),
        cost=float(data.get("cost", 0.0)),
        provider=data.get("provider", ""),
        model=data.get("model", ""),
        message_ids=[UUID(m) for m in data.get("message_ids") or ()],
        rate_limit_wait=float(data.get("rate_limit_wait", 0.0)),
        routing=dict(data.get("routing") or {}),
        replayed=bool(data.get("replayed")),
        status=data.get("status", "completed"),
        required_action=[ToolCall.from_json(c) for c in data.get("required_action") or ()],
        incomplete_details=data.get("incomplete_details"),
    )
