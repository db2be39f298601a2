"""The memory-strategy extension point.

A strategy has two steps. :meth:`MemoryStrategy.plan` says how much history to load
(the runner loads exactly that, in one indexed query, never the whole thread);
:meth:`MemoryStrategy.prepare` picks what to send within the token budget and may
return text for the system prompt (a summary) and state to persist on the thread.

Every strategy must keep these guarantees (the helpers in :mod:`ai_agents.memory.context`
do the work): the request fits the model's window; a tool call is never separated from
its results; the system prompt and the new input are always included.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ai_agents.errors import ValidationError
from ai_agents.messages import Message
from ai_agents.records import ThreadRecord


@dataclass(frozen=True, slots=True)
class LoadPlan:
    """How many of the most recent (``last``) and earliest (``first``) messages to load."""

    last: int
    first: int = 0


@dataclass(slots=True, kw_only=True)
class MemoryInput:
    thread: ThreadRecord
    config: dict[str, Any]
    #: The most recent messages per the plan, oldest first.
    history: list[Message]
    #: The earliest messages per the plan (may overlap ``history``), oldest first.
    first: list[Message] = field(default_factory=list)
    #: Messages of the turn being run (user input, then tool calls/results so far).
    current: list[Message]
    #: Tokens available for history + current turn (window - output - tools - system).
    budget: int
    count: Callable[[Message], int]


@dataclass(slots=True, kw_only=True)
class Prepared:
    #: History to send before the current turn, oldest first.
    history: list[Message]
    #: Extra text appended to the system prompt (e.g. the running summary).
    system_addendum: str | None = None
    #: New ``threads.memory_state`` to persist with the turn (None: unchanged).
    state: dict[str, Any] | None = None


class MemoryServices(Protocol):
    """What the runner offers strategies that need more than the loaded history."""

    async def load_range(self, after_seq: int, before_seq: int, limit: int) -> list[Message]: ...

    async def summarize(self, previous: str | None, messages: list[Message]) -> str: ...

    async def similar(self, text: str, before_seq: int, k: int) -> list[Message]: ...


@runtime_checkable
class MemoryStrategy(Protocol):
    name: str

    def validate_config(self, config: dict[str, Any]) -> None: ...

    def plan(self, config: dict[str, Any]) -> LoadPlan: ...

    async def prepare(self, inp: MemoryInput, services: MemoryServices) -> Prepared: ...


_STRATEGIES: dict[str, MemoryStrategy] = {}


def register_strategy(strategy: MemoryStrategy) -> MemoryStrategy:
    """Make a strategy available to agents by its ``name``."""
    if not isinstance(strategy, MemoryStrategy):
        raise ValidationError("a memory strategy needs name, validate_config, plan and prepare")
    _STRATEGIES[strategy.name] = strategy
    return strategy


def get_strategy(name: str) -> MemoryStrategy:
    from ai_agents.memory import strategies  # noqa: F401  (registers the built-ins)

    try:
        return _STRATEGIES[name]
    except KeyError:
        raise ValidationError(
            f"unknown memory strategy {name!r} (known: {', '.join(strategy_names())})",
            details={"field": "memory_strategy"},
        ) from None


def strategy_names() -> list[str]:
    from ai_agents.memory import strategies  # noqa: F401

    return sorted(_STRATEGIES)
