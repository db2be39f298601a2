"""What the store returns: plain dataclasses for agents, threads, pages and usage."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar
from uuid import UUID

from ai_agents.definition import AgentDefinition
from ai_agents.errors import ValidationError

T = TypeVar("T")


@dataclass(slots=True, kw_only=True)
class AgentRecord:
    id: UUID
    tenant_id: str
    definition: AgentDefinition
    provider: str
    model: str
    fallbacks: list[dict[str, Any]] = field(default_factory=list)
    memory_strategy: str = "last_messages"
    memory_config: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    #: Function tools the caller executes (``{name, description, parameters}``): when the
    #: model calls one, the run stops in ``requires_action``.
    client_tools: list[dict[str, Any]] = field(default_factory=list)
    #: The system prompt as given; ``None``: compiled from the definition.
    instructions: str | None = None
    #: OpenAI assistant fields kept for ``/v1`` (description, top_p, response_format, ...).
    assistant_fields: dict[str, Any] = field(default_factory=dict)
    created_by: str | None = None
    is_active: bool = True
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def name(self) -> str:
        return self.definition.name

    def system_prompt(self) -> str:
        """The instructions as given, else the prompt compiled from the definition."""
        return self.instructions if self.instructions is not None else self.definition.compile()

    @property
    def tools(self) -> list[str]:
        return self.definition.tools


@dataclass(slots=True, kw_only=True)
class ThreadRecord:
    id: UUID
    tenant_id: str
    agent_id: UUID
    user_id: str | None = None
    title: str | None = None
    total_bytes: int = 0
    message_count: int = 0
    last_seq: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    created_at: datetime | None = None
    updated_at: datetime | None = None
    last_used_at: datetime | None = None
    provider_state: dict[str, Any] = field(default_factory=dict)
    memory_state: dict[str, Any] = field(default_factory=dict)
    archived: bool = False
    metadata: dict[str, Any] = field(default_factory=dict)
    forked_from_id: UUID | None = None
    forked_at_seq: int | None = None


@dataclass(slots=True)
class Page(Generic[T]):
    """One page of a listing; pass ``next_cursor`` back to get the next one."""

    items: list[T]
    next_cursor: str | None = None

    @property
    def has_more(self) -> bool:
        return self.next_cursor is not None


@dataclass(slots=True, frozen=True)
class UsageTotals:
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    messages: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


def encode_cursor(*parts: Any) -> str:
    raw = json.dumps([p.isoformat() if isinstance(p, datetime) else str(p) for p in parts])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, arity: int) -> list[str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        parts = json.loads(base64.urlsafe_b64decode(padded.encode()).decode())
        if not isinstance(parts, list) or len(parts) != arity:
            raise ValueError
        return [str(p) for p in parts]
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValidationError("malformed pagination cursor", details={"field": "cursor"}) from exc


def decode_time_cursor(cursor: str) -> tuple[datetime, UUID]:
    """A (timestamp, id) keyset cursor; anything malformed is a clear validation error."""
    stamp, ident = decode_cursor(cursor, 2)
    try:
        when = datetime.fromisoformat(stamp)
        return when, UUID(ident)
    except ValueError as exc:
        raise ValidationError("malformed pagination cursor", details={"field": "cursor"}) from exc
