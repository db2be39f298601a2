"""History repair shared by every vendor adapter.

A thread's history outlives the provider that wrote it: a run may be interrupted between
a tool call and its result, the context window may trim a call but keep its result, a
local model may emit empty or repeated tool-call ids, and a fallback may send an
OpenAI-written history (``call_abc``) to Anthropic (``toolu_01...``, restricted charset)
or the other way round. Every vendor rejects such histories with a 400, so each adapter
calls :func:`normalize_history` first and then applies the vendor-specific helpers
(:func:`merge_consecutive`, :func:`remap_tool_ids` with :func:`to_id_safe`).

All functions return new lists of new :class:`~ai_agents.messages.Message` objects; the
inputs are never mutated.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Callable, Collection, Sequence

from ai_agents.messages import Message, ToolCall

__all__ = [
    "ANTHROPIC_TOOL_ID_PATTERN",
    "INTERRUPTED_RESULT",
    "merge_consecutive",
    "normalize_history",
    "remap_tool_ids",
    "to_id_safe",
]

#: Result text synthesized for a tool call that never got a result (interrupted run).
INTERRUPTED_RESULT = "Tool call was interrupted before it returned a result."

#: Anthropic's constraint on ``tool_use.id`` / ``tool_result.tool_use_id``.
ANTHROPIC_TOOL_ID_PATTERN = re.compile(r"^[a-zA-Z0-9_-]+$")

_UNSAFE_CHARS = re.compile(r"[^a-zA-Z0-9_-]")


def _copy(message: Message, **changes: object) -> Message:
    """A shallow copy with its own ``tool_calls`` list and ``metadata`` dict."""
    fields: dict[str, object] = {
        "tool_calls": list(message.tool_calls),
        "metadata": dict(message.metadata),
    }
    fields.update(changes)
    return dataclasses.replace(message, **fields)  # type: ignore[arg-type]


def normalize_history(messages: Sequence[Message]) -> list[Message]:
    """Return a new list of *messages* that every vendor accepts as a tool-calling history.

    Inputs are never mutated: repaired messages are copies; unchanged ones are shared.

    Rules:

    - Every assistant tool call gets exactly one result. Results are the ``tool``
      messages that follow the assistant message (up to the next ``user`` or
      ``assistant`` message) whose ``tool_call_id`` matches; they are reordered to the
      order of the calls and placed right after the assistant message. A result with no
      ``tool_call_id`` is matched to the first unanswered call with the same tool name.
    - A call without a result (the run was interrupted) keeps its call and gets a
      synthesized error result (:data:`INTERRUPTED_RESULT`, ``metadata["is_error"]``),
      so the model learns that the call did not complete instead of the vendor
      rejecting the history.
    - A ``tool`` message that answers no preceding call (an *orphan*: its call was
      trimmed away, deleted, or it is a second result for an answered call) is dropped.
      Every vendor rejects a result without its call, and re-wording it as user text
      would show the model an answer to a question it never asked; the information is
      not reliably usable without the call, so dropping it is the safe repair.
    - Missing, empty or duplicate tool-call ids (duplicates anywhere in the history:
      some local models number every turn's calls from ``call_0``) are replaced by
      deterministic ids ``call_<message index>_<call index>`` and their results are
      remapped accordingly.
    - ``system`` messages anywhere in the history are kept as they are (adapters decide
      how to send them). One found between an assistant's calls and their results is
      moved after the results, because vendors require results to follow their call.
    """
    taken: set[str] = set()
    for message in messages:
        taken.update(call.id for call in message.tool_calls if call.id)
    used: set[str] = set()
    out: list[Message] = []
    index = 0
    count = len(messages)
    while index < count:
        message = messages[index]
        if message.role == "tool":
            index += 1  # orphan: not right after an assistant message with calls
            continue
        if message.role != "assistant" or not message.tool_calls:
            out.append(message)  # unchanged messages are shared, never mutated
            index += 1
            continue

        # The results (and stray system messages) between this call and the next turn.
        end = index + 1
        results: list[Message] = []
        systems: list[Message] = []
        while end < count and messages[end].role in ("tool", "system"):
            (results if messages[end].role == "tool" else systems).append(messages[end])
            end += 1

        calls = message.tool_calls
        new_calls: list[ToolCall] = []
        for position, call in enumerate(calls):
            new_id = call.id
            if not new_id or new_id in used:
                new_id = _synthesize_id(index, position, taken | used)
            used.add(new_id)
            new_calls.append(ToolCall(id=new_id, name=call.name, arguments=dict(call.arguments)))

        answers: list[Message | None] = [None] * len(calls)
        for result in results:
            slot = _match_result(result, calls, answers)
            if slot is not None:
                answers[slot] = result
            # else: orphan (or duplicate answer) -> dropped, see docstring

        out.append(_copy(message, tool_calls=new_calls))
        for call, answer in zip(new_calls, answers, strict=True):
            if answer is None:
                out.append(
                    Message(
                        role="tool",
                        content=INTERRUPTED_RESULT,
                        tool_call_id=call.id,
                        tool_name=call.name,
                        metadata={"is_error": True, "synthesized": True},
                    )
                )
            else:
                out.append(
                    _copy(answer, tool_call_id=call.id, tool_name=answer.tool_name or call.name)
                )
        out.extend(_copy(m) for m in systems)
        index = end
    return out


def _synthesize_id(message_index: int, call_index: int, taken: Collection[str]) -> str:
    candidate = f"call_{message_index}_{call_index}"
    suffix = 0
    while candidate in taken:
        suffix += 1
        candidate = f"call_{message_index}_{call_index}_{suffix}"
    return candidate


def _match_result(
    result: Message, calls: Sequence[ToolCall], answers: Sequence[Message | None]
) -> int | None:
    """The index of the unanswered call *result* answers, or None (orphan/duplicate)."""
    result_id = result.tool_call_id or ""
    if result_id:
        for slot, call in enumerate(calls):
            if answers[slot] is None and call.id == result_id:
                return slot
        return None
    # No id on the result: first unanswered call with the same tool name, preferring
    # calls that had no id either.
    candidates = [
        slot
        for slot, call in enumerate(calls)
        if answers[slot] is None and (result.tool_name is None or call.name == result.tool_name)
    ]
    for slot in candidates:
        if not calls[slot].id:
            return slot
    return candidates[0] if candidates else None


def merge_consecutive(
    messages: Sequence[Message],
    roles: Collection[str] = ("user", "assistant"),
    *,
    separator: str = "\n\n",
) -> list[Message]:
    """Merge runs of adjacent messages with the same role (for vendors that require
    alternating roles). Only roles in *roles* are merged; ``tool`` messages never are.

    Texts are joined with *separator* (empty texts skipped), tool calls concatenated,
    metadata merged (earlier message wins); other fields come from the first message.
    """
    out: list[Message] = []
    for message in messages:
        previous = out[-1] if out else None
        if (
            previous is not None
            and message.role == previous.role
            and message.role in roles
            and message.role != "tool"
        ):
            texts = [t for t in (previous.content, message.content) if t]
            previous.content = separator.join(texts) if texts else previous.content
            previous.tool_calls = [*previous.tool_calls, *message.tool_calls]
            previous.metadata = {**message.metadata, **previous.metadata}
        else:
            out.append(_copy(message))
    return out


def to_id_safe(
    tool_id: str,
    pattern: re.Pattern[str] | None = ANTHROPIC_TOOL_ID_PATTERN,
    *,
    max_length: int | None = None,
) -> str:
    """Return *tool_id* if it matches *pattern* (and *max_length*), else a safe id.

    The safe id is a pure function of the original (unsafe characters replaced by ``_``
    plus a short hash of the original), so mapping a call's id and its result's
    ``tool_call_id`` separately gives the same answer, and two different unsafe ids
    never collide.
    """
    if (
        tool_id
        and (pattern is None or pattern.fullmatch(tool_id))
        and (max_length is None or len(tool_id) <= max_length)
    ):
        return tool_id
    digest = hashlib.sha256(tool_id.encode()).hexdigest()[:12]
    cleaned = _UNSAFE_CHARS.sub("_", tool_id).strip("_") or "call"
    if max_length is not None:
        keep = max_length - len(digest) - 1
        candidate = f"{cleaned[:keep]}_{digest}" if keep > 0 else digest[:max_length]
    else:
        candidate = f"{cleaned}_{digest}"
    if pattern is not None and not pattern.fullmatch(candidate):
        candidate = f"id_{digest}"
    return candidate


def remap_tool_ids(messages: Sequence[Message], mapper: Callable[[str], str]) -> list[Message]:
    """Apply *mapper* to every tool-call id and every result's ``tool_call_id``.

    Typical use: ``remap_tool_ids(history, to_id_safe)`` before sending to Anthropic.
    """
    out: list[Message] = []
    for message in messages:
        changes: dict[str, object] = {}
        if message.tool_calls:
            changes["tool_calls"] = [
                ToolCall(id=mapper(c.id), name=c.name, arguments=dict(c.arguments))
                for c in message.tool_calls
            ]
        if message.tool_call_id is not None:
            changes["tool_call_id"] = mapper(message.tool_call_id)
        out.append(_copy(message, **changes) if changes else message)
    return out
