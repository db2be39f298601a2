"""What a run returns, and the events a streamed run yields."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal
from uuid import UUID

from ai_agents.messages import ToolCall
from ai_agents.providers.base import Usage

RunFinish = Literal[
    "stop",
    "length",
    "content_filter",
    "max_tool_iterations",
    "max_prompt_tokens",
    "max_completion_tokens",
    "requires_action",
]
#: How the run stands when the call returns (the run row's status).
ResponseStatus = Literal["completed", "incomplete", "requires_action"]


@dataclass(frozen=True, slots=True)
class ToolCallRecord:
    """A tool call the model made during the run, with the result it was given."""

    call: ToolCall
    result: str
    is_error: bool = False


@dataclass(slots=True, kw_only=True)
class AgentResponse:
    content: str
    thread_id: UUID
    run_id: UUID
    finish_reason: RunFinish
    tool_calls: list[ToolCallRecord] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    cost: float = 0.0
    provider: str = ""
    model: str = ""
    message_ids: list[UUID] = field(default_factory=list)
    #: Seconds spent waiting for the rate limiter, summed over the run's model calls.
    rate_limit_wait: float = 0.0
    #: Provider routing/fallback decisions, when any were made.
    routing: dict[str, Any] = field(default_factory=dict)
    #: True when an earlier delivery of the same idempotency key had already saved the turn.
    replayed: bool = False
    #: ``completed``; ``incomplete`` (a run budget ran out, see ``incomplete_details``);
    #: ``requires_action``: the model called client tools, listed in ``required_action``;
    #: answer with ``store.submit_tool_outputs(run_id, ...)``.
    status: ResponseStatus = "completed"
    required_action: list[ToolCall] = field(default_factory=list)
    incomplete_details: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "content": self.content,
            "thread_id": str(self.thread_id),
            "run_id": str(self.run_id),
            "finish_reason": self.finish_reason,
            "tool_calls": [
                {**r.call.to_json(), "result": r.result, "is_error": r.is_error}
                for r in self.tool_calls
            ],
            "usage": {
                "input_tokens": self.usage.input_tokens,
                "output_tokens": self.usage.output_tokens,
                "total_tokens": self.usage.total_tokens,
            },
            "cost": self.cost,
            "provider": self.provider,
            "model": self.model,
            "message_ids": [str(m) for m in self.message_ids],
            "rate_limit_wait": self.rate_limit_wait,
            "routing": self.routing,
            "replayed": self.replayed,
            "status": self.status,
            "required_action": [c.to_json() for c in self.required_action],
            "incomplete_details": self.incomplete_details,
        }


@dataclass(frozen=True, slots=True)
class RunStartedEvent:
    """The first event of a streamed run: the run row exists and holds the thread."""

    run_id: UUID
    thread_id: UUID
    type: Literal["run_started"] = "run_started"


@dataclass(frozen=True, slots=True)
class TextDeltaEvent:
    text: str
    type: Literal["text_delta"] = "text_delta"


@dataclass(frozen=True, slots=True)
class ToolCallEvent:
    call: ToolCall
    type: Literal["tool_call"] = "tool_call"


@dataclass(frozen=True, slots=True)
class ToolResultEvent:
    call: ToolCall
    result: str
    is_error: bool
    type: Literal["tool_result"] = "tool_result"


@dataclass(frozen=True, slots=True)
class DoneEvent:
    response: AgentResponse
    type: Literal["done"] = "done"


RunEvent = RunStartedEvent | TextDeltaEvent | ToolCallEvent | ToolResultEvent | DoneEvent
