"""Context-window arithmetic shared by the strategies.

History is cut into *blocks*: an assistant message with tool calls together with the
tool results that answer it is one block; every other message is a block of its own.
Trimming always drops whole blocks, so a tool call never loses its result.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ai_agents.errors import RunError
from ai_agents.messages import Message


class ContextOverflow(RunError):
    """The system prompt, tools and the new input alone do not fit the model's window."""

    code = "context_overflow"


def blocks(messages: Sequence[Message]) -> list[list[Message]]:
    """Group messages into blocks; tool results without their call (cut off) are dropped."""
    out: list[list[Message]] = []
    for message in messages:
        if message.role == "tool":
            if out and out[-1][0].role == "assistant" and out[-1][0].tool_calls:
                ids = {c.id for c in out[-1][0].tool_calls}
                if message.tool_call_id in ids:
                    out[-1].append(message)
            # else: an orphan result whose call fell outside the window.
            continue
        out.append([message])
    return out


def fit_recent(
    messages: Sequence[Message], budget: int, count: Callable[[Message], int]
) -> list[Message]:
    """The longest suffix of whole blocks whose tokens fit *budget*."""
    kept: list[list[Message]] = []
    used = 0
    for block in reversed(blocks(messages)):
        cost = sum(count(m) for m in block)
        if used + cost > budget:
            break
        kept.append(block)
        used += cost
    return [m for block in reversed(kept) for m in block]


def tokens(messages: Sequence[Message], count: Callable[[Message], int]) -> int:
    return sum(count(m) for m in messages)


def require_fit(current: Sequence[Message], budget: int, count: Callable[[Message], int]) -> int:
    """Tokens left for history after the current turn; raise if the turn itself is too big."""
    need = tokens(current, count)
    if need > budget:
        raise ContextOverflow(
            f"the input needs {need} tokens but only {budget} fit the model's context window "
            "(after the system prompt, tool definitions and reserved output)",
            details={"needed": need, "available": budget},
        )
    return budget - need
