"""The one internal message format. Providers convert to and from it at their edge.

A thread is a sequence of :class:`Message` rows:

- ``system`` / ``user``: ``content`` only.
- ``assistant``: ``content`` (may be empty) and/or ``tool_calls``.
- ``tool``: the result of one tool call: ``tool_call_id`` and ``tool_name`` name the call
  it answers, ``content`` is the result text; ``metadata["is_error"]`` marks a failure.

Persisted messages also carry ``id``, ``seq`` (per-thread order), token counts, the
provider/model that wrote them and their cost.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

Role = Literal["system", "user", "assistant", "tool"]
ROLES: tuple[Role, ...] = ("system", "user", "assistant", "tool")


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A model's request to call a tool, with arguments already parsed to a dict."""

    id: str
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "arguments": self.arguments}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ToolCall:
        args = data.get("arguments") or {}
        if isinstance(args, str):  # tolerate rows written with encoded arguments
            try:
                args = json.loads(args)
            except json.JSONDecodeError:
                args = {"_raw": args}
        return cls(id=str(data["id"]), name=str(data["name"]), arguments=dict(args))


@dataclass(slots=True, kw_only=True)
class Message:
    """One message of a thread (saved or about to be)."""

    role: Role
    content: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str | None = None
    tool_name: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    # Filled in for persisted messages / by the runner.
    id: UUID | None = None
    thread_id: UUID | None = None
    seq: int | None = None
    created_at: datetime | None = None
    token_count: int | None = None
    provider: str | None = None
    model: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost: float | None = None
    #: The run whose turn saved it (``None``: added with ``add_messages``).
    run_id: UUID | None = None

    @property
    def text(self) -> str:
        return self.content or ""

    @property
    def is_error(self) -> bool:
        return bool(self.metadata.get("is_error"))

    def byte_size(self) -> int:
        """Bytes this message counts against thread/user size limits."""
        size = len(self.text.encode())
        if self.tool_calls:
            size += len(json.dumps([c.to_json() for c in self.tool_calls]).encode())
        return size


def system(content: str) -> Message:
    return Message(role="system", content=content)


def user(content: str) -> Message:
    return Message(role="user", content=content)


def assistant(content: str | None = None, tool_calls: list[ToolCall] | None = None) -> Message:
    return Message(role="assistant", content=content, tool_calls=list(tool_calls or []))


def tool_result(call: ToolCall, content: str, *, is_error: bool = False) -> Message:
    return Message(
        role="tool",
        content=content,
        tool_call_id=call.id,
        tool_name=call.name,
        metadata={"is_error": True} if is_error else {},
    )
