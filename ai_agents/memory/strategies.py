"""The built-in memory strategies (design section 8).

| name            | sends                                                        |
|-----------------|--------------------------------------------------------------|
| last_messages   | the last ``max_messages`` (default 50)                       |
| first_last      | the first ``preserve_first`` (3) + the last ``max_messages`` |
| summarize       | a running summary of older turns + the last ``max_messages`` |
| vector          | the last ``recent`` (6) + the ``top_k`` (4) most similar older messages |

All of them then trim whole blocks from the oldest side until the request fits.
"""

from __future__ import annotations

from typing import Any

from ai_agents.errors import ValidationError
from ai_agents.memory.base import (
    LoadPlan,
    MemoryInput,
    MemoryServices,
    Prepared,
    register_strategy,
)
from ai_agents.memory.context import blocks, fit_recent, require_fit, tokens
from ai_agents.messages import Message

#: Upper bound of every count in a memory_config: more messages than this per model call
#: is a typo, and a huge value would reach SQL as a LIMIT.
MAX_COUNT = 10_000


def _positive_int(config: dict[str, Any], name: str, default: int, *, minimum: int = 1) -> int:
    value = config.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= MAX_COUNT:
        raise ValidationError(
            f"memory_config.{name} must be an integer from {minimum} to {MAX_COUNT}, got {value!r}",
            details={"field": f"memory_config.{name}"},
        )
    return value


def _optional_name(config: dict[str, Any], name: str) -> None:
    value = config.get(name)
    if name in config and (not isinstance(value, str) or not value.strip()):
        raise ValidationError(
            f"memory_config.{name} must be a non-empty string, got {value!r}",
            details={"field": f"memory_config.{name}"},
        )


def _check_keys(config: dict[str, Any], allowed: set[str], strategy: str) -> None:
    unknown = sorted(str(k) for k in set(config) - allowed)
    if unknown:
        raise ValidationError(
            f"unknown memory_config key(s) for {strategy}: {', '.join(unknown)} "
            f"(allowed: {', '.join(sorted(allowed))})",
            details={"field": "memory_config", "allowed": sorted(allowed)},
        )


def _complete_blocks(messages: list[Message]) -> list[Message]:
    """Drop a trailing tool-call block whose results are not all there."""
    groups = blocks(messages)
    if groups and groups[-1][0].tool_calls:
        answered = {m.tool_call_id for m in groups[-1][1:]}
        if not {c.id for c in groups[-1][0].tool_calls} <= answered:
            groups.pop()
    return [m for g in groups for m in g]


class LastMessages:
    name = "last_messages"

    def validate_config(self, config: dict[str, Any]) -> None:
        _check_keys(config, {"max_messages"}, self.name)
        _positive_int(config, "max_messages", 50)

    def plan(self, config: dict[str, Any]) -> LoadPlan:
        return LoadPlan(last=_positive_int(config, "max_messages", 50))

    async def prepare(self, inp: MemoryInput, services: MemoryServices) -> Prepared:
        room = require_fit(inp.current, inp.budget, inp.count)
        return Prepared(history=fit_recent(inp.history, room, inp.count))


class FirstLast:
    name = "first_last"

    def validate_config(self, config: dict[str, Any]) -> None:
        _check_keys(config, {"max_messages", "preserve_first"}, self.name)
        _positive_int(config, "max_messages", 50)
        _positive_int(config, "preserve_first", 3)

    def plan(self, config: dict[str, Any]) -> LoadPlan:
        return LoadPlan(
            last=_positive_int(config, "max_messages", 50),
            first=_positive_int(config, "preserve_first", 3),
        )

    async def prepare(self, inp: MemoryInput, services: MemoryServices) -> Prepared:
        room = require_fit(inp.current, inp.budget, inp.count)
        first = _complete_blocks(list(inp.first))
        # The preserved opening has priority; trim it from its end if it alone is too big.
        while first and tokens(first, inp.count) > room:
            first = _complete_blocks(first[:-1])
        kept = {m.seq for m in first}
        rest = [m for m in inp.history if m.seq not in kept]
        recent = fit_recent(rest, room - tokens(first, inp.count), inp.count)
        return Prepared(history=first + recent)


SUMMARY_HEADER = "# Summary of the earlier conversation"


class Summarize:
    """A running summary, persisted in ``threads.memory_state`` and updated incrementally.

    Messages that leave the recent window are folded into the summary in batches of
    ``summarize_batch`` (default 10); until a batch is full they are still sent verbatim.
    A run therefore summarizes only the messages that newly left the window, never the
    whole thread.
    """

    name = "summarize"

    def validate_config(self, config: dict[str, Any]) -> None:
        _check_keys(
            config,
            {"max_messages", "summarize_batch", "summary_provider", "summary_model"},
            self.name,
        )
        _positive_int(config, "max_messages", 20)
        _positive_int(config, "summarize_batch", 10)
        _optional_name(config, "summary_provider")
        _optional_name(config, "summary_model")

    def plan(self, config: dict[str, Any]) -> LoadPlan:
        return LoadPlan(last=_positive_int(config, "max_messages", 20))

    async def prepare(self, inp: MemoryInput, services: MemoryServices) -> Prepared:
        batch = _positive_int(inp.config, "summarize_batch", 10)
        state = dict(inp.thread.memory_state)
        summary: str | None = state.get("summary")
        through = int(state.get("summary_through_seq", 0))
        recent = [m for g in blocks(inp.history) for m in g]
        window_start = recent[0].seq if recent and recent[0].seq else inp.thread.last_seq + 1
        new_state = None
        pending: list[Message] = []
        if window_start - 1 > through:
            pending = await services.load_range(through, window_start, limit=window_start - through)
            pending = _complete_blocks(pending)
            if len(pending) >= batch:
                summary = await services.summarize(summary, pending)
                through = pending[-1].seq or through
                new_state = {**state, "summary": summary, "summary_through_seq": through}
                pending = []
        addendum = f"{SUMMARY_HEADER}\n{summary}" if summary else None
        budget = inp.budget
        if addendum:
            budget -= inp.count(Message(role="system", content=addendum))
        room = require_fit(inp.current, budget, inp.count)
        history = fit_recent(pending + recent, room, inp.count)
        return Prepared(history=history, system_addendum=addendum, state=new_state)


class VectorRecall:
    """The last few turns plus the older messages most similar to the new input."""

    name = "vector"

    def validate_config(self, config: dict[str, Any]) -> None:
        _check_keys(config, {"recent", "top_k"}, self.name)
        _positive_int(config, "recent", 6)
        _positive_int(config, "top_k", 4, minimum=0)

    def plan(self, config: dict[str, Any]) -> LoadPlan:
        return LoadPlan(last=_positive_int(config, "recent", 6))

    async def prepare(self, inp: MemoryInput, services: MemoryServices) -> Prepared:
        top_k = _positive_int(inp.config, "top_k", 4, minimum=0)
        room = require_fit(inp.current, inp.budget, inp.count)
        recent = fit_recent(inp.history, room, inp.count)
        recalled: list[Message] = []
        query = next((m.text for m in inp.current if m.role == "user"), "")
        window_start = recent[0].seq if recent and recent[0].seq else inp.thread.last_seq + 1
        if top_k and query and window_start > 1:
            left = room - tokens(recent, inp.count)
            for message in await services.similar(query, window_start, top_k):
                cost = inp.count(message)
                if cost <= left:
                    recalled.append(message)
                    left -= cost
        recalled.sort(key=lambda m: m.seq or 0)
        return Prepared(history=recalled + recent)


for _strategy in (LastMessages(), FirstLast(), Summarize(), VectorRecall()):
    register_strategy(_strategy)
