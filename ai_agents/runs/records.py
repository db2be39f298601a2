"""What a run is: its row, its steps, the overrides it was given, and the tool outputs
a caller submits to a run waiting in ``requires_action``.

Statuses follow the Assistants API. Active statuses (``in_progress``,
``requires_action``, ``cancelling``) hold the thread: PostgreSQL allows one active run per
thread. ``queued`` runs wait for the thread (or, for background jobs, for a worker).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

RunStatus = Literal[
    "queued",
    "in_progress",
    "requires_action",
    "cancelling",
    "cancelled",
    "failed",
    "completed",
    "incomplete",
    "expired",
]
RUN_STATUSES: tuple[RunStatus, ...] = (
    "queued",
    "in_progress",
    "requires_action",
    "cancelling",
    "cancelled",
    "failed",
    "completed",
    "incomplete",
    "expired",
)
ACTIVE_STATUSES = frozenset({"in_progress", "requires_action", "cancelling"})
TERMINAL_STATUSES = frozenset({"cancelled", "failed", "completed", "incomplete", "expired"})

StepType = Literal["message_creation", "tool_calls"]
StepStatus = Literal["in_progress", "completed", "failed", "cancelled", "expired"]


@dataclass(slots=True, kw_only=True)
class RunRecord:
    """One run as recorded in PostgreSQL."""

    id: UUID
    tenant_id: str
    thread_id: UUID
    agent_id: UUID
    status: RunStatus
    input: str
    job_id: UUID | None = None
    #: The provider and model that answered (the last model call's).
    provider: str | None = None
    model: str | None = None
    #: The per-run overrides it was given (:class:`~ai_agents.runs.overrides.RunOverrides`).
    overrides: dict[str, Any] = field(default_factory=dict)
    #: ``requires_action``: ``{"type": "submit_tool_outputs", "tool_calls": [...]}``.
    required_action: dict[str, Any] | None = None
    #: ``{"code": ..., "message": ...}`` for failed, cancelled and expired runs.
    last_error: dict[str, Any] | None = None
    #: ``{"reason": "max_completion_tokens" | "max_prompt_tokens" | ...}``.
    incomplete_details: dict[str, Any] | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    metadata: dict[str, Any] = field(default_factory=dict)
    idempotency_key: str | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    cancelled_at: datetime | None = None
    failed_at: datetime | None = None
    #: When a waiting run gives up (``queued``) or an unanswered one expires.
    expires_at: datetime | None = None
    #: Until when the process running it is known to be alive.
    lease_expires_at: datetime | None = None

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(slots=True, kw_only=True)
class RunStep:
    """One model call (``message_creation``) or one batch of tool calls (``tool_calls``).

    ``details`` of a ``message_creation`` step: ``message_id`` (the message it wrote,
    once the turn is saved), ``content``, ``tool_calls`` and ``finish_reason``. Of a
    ``tool_calls`` step: ``tool_calls``, each ``{id, name, arguments, output, is_error,
    client}`` (``output`` is ``None`` while a client tool's output is awaited).
    """

    id: UUID
    run_id: UUID
    thread_id: UUID
    seq: int
    type: StepType
    status: StepStatus
    details: dict[str, Any]
    provider: str | None = None
    model: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    last_error: dict[str, Any] | None = None
    created_at: datetime | None = None
    completed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ToolOutput:
    """The result of a client tool call, submitted to a run in ``requires_action``."""

    tool_call_id: str
    output: str
    is_error: bool = False
