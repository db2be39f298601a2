"""OpenAI's Responses *items* and the thread messages they are stored as.

Shared by ``/v1/responses`` (``input``, ``input_items``) and ``/v1/conversations``
(items): a conversation is a thread, and its items are the thread's messages.

- A ``message`` item (``{"role", "content"}``, content as a string or ``input_text``/
  ``output_text`` parts joined with blank lines) is a message of that role
  (``developer`` is stored as ``system``).
- ``function_call`` items are the ``tool_calls`` of an assistant message (consecutive
  calls, and a call right after an assistant text, join that message: one model turn).
- A ``function_call_output`` is a ``tool`` message answering its ``call_id``.
- ``reasoning`` items are skipped: they are a vendor model's internal state, which no
  other model can read. Images, files and other item kinds are a 400 naming the item.

Back from messages, ids are built over the message UUID: ``msg_<hex>`` for a message,
``fc_<hex>_<i>`` for the i-th call of an assistant message, ``fco_<hex>`` for a tool
result, so an item id finds its message again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from ai_agents.api.compat import ids
from ai_agents.api.compat.errors import invalid
from ai_agents.api.compat.objects import MAX_MESSAGE_CHARS
from ai_agents.errors import NotFoundError
from ai_agents.messages import Message, ToolCall

FUNCTION_CALL = "fc_"
FUNCTION_OUTPUT = "fco_"
MAX_ITEMS = 10_000
_ROLES = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system"}
_TEXT_PARTS = ("input_text", "output_text", "text")
_MESSAGE_KEYS = ("type", "role", "content", "id", "status", "phase")
_CALL_KEYS = ("type", "call_id", "name", "arguments", "id", "status", "namespace")
_OUTPUT_KEYS = ("type", "call_id", "output", "id", "status")


def _text(content: Any, param: str) -> str:
    """A message's or an output's text: a string, or text parts joined."""
    if isinstance(content, str):
        text = content
    elif isinstance(content, list):
        parts: list[str] = []
        for i, part in enumerate(content):
            where = f"{param}[{i}]"
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "refusal" and isinstance(part.get("refusal"), str):
                parts.append(part["refusal"])
                continue
            if kind not in _TEXT_PARTS or not isinstance(part.get("text"), str):
                raise invalid(
                    f"{where}: only text parts (input_text, output_text) are supported by "
                    f"this server, got {kind!r}",
                    where,
                )
            parts.append(part["text"])
        text = "\n\n".join(parts)
    else:
        raise invalid(f"{param} must be a string or an array of content parts", param)
    if len(text) > MAX_MESSAGE_CHARS:
        raise invalid(f"{param} may be at most {MAX_MESSAGE_CHARS} characters", param)
    if "\x00" in text:
        raise invalid(f"{param} must not contain NUL characters", param)
    return text


def _unknown_keys(item: dict[str, Any], known: tuple[str, ...], where: str) -> None:
    for key in item:
        if key not in known:
            raise invalid(f"Unrecognized request argument supplied: {where}.{key}", where)


def _arguments(value: Any, param: str) -> dict[str, Any]:
    if not isinstance(value, str):
        raise invalid(f"{param} must be a string of JSON", param)
    try:
        parsed = json.loads(value) if value.strip() else {}
    except ValueError:
        return {"_raw": value}
    return parsed if isinstance(parsed, dict) else {"_raw": value}


@dataclass(slots=True)
class ParsedInput:
    """The messages an ``input`` makes, and the tool outputs it gives (by call id)."""

    messages: list[Message]
    #: call id -> output, for every ``function_call_output`` item (in order).
    outputs: dict[str, str]
    #: The call ids of the ``function_call`` items of the same input.
    calls: dict[str, str]


class _Builder:
    """Items into messages, in order."""

    def __init__(self, known_calls: dict[str, str]) -> None:
        self.messages: list[Message] = []
        self.outputs: dict[str, str] = {}
        self.calls: dict[str, str] = {}
        self._known = dict(known_calls)

    def message(self, item: dict[str, Any], where: str) -> None:
        _unknown_keys(item, _MESSAGE_KEYS, where)
        role = _ROLES.get(item.get("role"))  # type: ignore[arg-type]
        if role is None:
            raise invalid(
                f"{where}.role must be one of user, assistant, system, developer", f"{where}.role"
            )
        text = _text(item.get("content"), f"{where}.content")
        if role != "assistant" and not text.strip():
            raise invalid(f"{where}.content must not be empty", f"{where}.content")
        self.messages.append(Message(role=role, content=text))  # type: ignore[arg-type]

    def function_call(self, item: dict[str, Any], where: str) -> None:
        _unknown_keys(item, _CALL_KEYS, where)
        call_id, name = item.get("call_id"), item.get("name")
        if not isinstance(call_id, str) or not call_id:
            raise invalid(f"{where}.call_id must be a non-empty string", f"{where}.call_id")
        if not isinstance(name, str) or not name:
            raise invalid(f"{where}.name must be a non-empty string", f"{where}.name")
        call = ToolCall(
            call_id, name, _arguments(item.get("arguments", "{}"), f"{where}.arguments")
        )
        last = self.messages[-1] if self.messages else None
        if last is not None and last.role == "assistant":
            last.tool_calls.append(call)
        else:
            self.messages.append(Message(role="assistant", content=None, tool_calls=[call]))
        self.calls[call_id] = name
        self._known[call_id] = name

    def function_output(self, item: dict[str, Any], where: str) -> None:
        _unknown_keys(item, _OUTPUT_KEYS, where)
        call_id = item.get("call_id")
        if not isinstance(call_id, str) or not call_id:
            raise invalid(f"{where}.call_id must be a non-empty string", f"{where}.call_id")
        output = _text(item.get("output"), f"{where}.output")
        self.outputs[call_id] = output
        name = self._known.get(call_id)
        if name is not None:
            self.messages.append(
                Message(role="tool", content=output, tool_call_id=call_id, tool_name=name)
            )


def parse_input(value: Any, param: str = "input", *, known_calls: dict[str, str] | None = None
                ) -> ParsedInput:  # fmt: skip
    """*value* (a string, or an array of items) as messages.

    A ``function_call_output`` answering a call of the same input (or of *known_calls*:
    call id -> tool name, calls already in the thread) becomes a ``tool`` message; one
    answering anything else is only returned in ``outputs`` (the caller decides: a
    pending call of a paused response, or a 400)."""
    builder = _Builder(known_calls or {})
    if isinstance(value, str):
        builder.message({"role": "user", "content": value}, param)
        return ParsedInput(builder.messages, builder.outputs, builder.calls)
    if not isinstance(value, list):
        raise invalid(f"{param} must be a string or an array of items", param)
    if len(value) > MAX_ITEMS:
        raise invalid(f"{param} may have at most {MAX_ITEMS} items", param)
    for i, item in enumerate(value):
        where = f"{param}[{i}]"
        if not isinstance(item, dict):
            raise invalid(f"{where} must be an object", where)
        kind = item.get("type", "message" if "role" in item else None)
        if kind == "message":
            builder.message(item, where)
        elif kind == "function_call":
            builder.function_call(item, where)
        elif kind == "function_call_output":
            builder.function_output(item, where)
        elif kind == "reasoning":
            continue
        else:
            raise invalid(f"{where}: {kind!r} items are not supported by this server", where)
    return ParsedInput(builder.messages, builder.outputs, builder.calls)


# --- messages as items ----------------------------------------------------------------


def _message_item(message: Message, ident: UUID) -> dict[str, Any]:
    if message.role == "assistant":
        return {
            "id": ids.format_id(ids.MESSAGE, ident),
            "type": "message",
            "role": "assistant",
            "status": "completed",
            "content": [
                {"type": "output_text", "text": message.text, "annotations": [], "logprobs": []}
            ],
        }
    return {
        "id": ids.format_id(ids.MESSAGE, ident),
        "type": "message",
        "role": message.role,
        "status": "completed",
        "content": [{"type": "input_text", "text": message.text}],
    }


def call_item(call: ToolCall, ident: str, status: str = "completed") -> dict[str, Any]:
    return {
        "id": ident,
        "type": "function_call",
        "call_id": call.id,
        "name": call.name,
        "arguments": json.dumps(call.arguments),
        "status": status,
    }


def output_item(call_id: str, output: str, ident: str) -> dict[str, Any]:
    return {
        "id": ident,
        "type": "function_call_output",
        "call_id": call_id,
        "output": output,
        "status": "completed",
    }


def call_item_id(message: UUID, index: int) -> str:
    return f"{FUNCTION_CALL}{message.hex}_{index}"


def message_items(message: Message) -> list[dict[str, Any]]:
    """A saved message as its items (an assistant message: its text, then its calls)."""
    assert message.id is not None
    if message.role == "tool":
        ident = f"{FUNCTION_OUTPUT}{message.id.hex}"
        return [output_item(message.tool_call_id or "", message.text, ident)]
    items: list[dict[str, Any]] = []
    if message.role != "assistant" or message.text or not message.tool_calls:
        items.append(_message_item(message, message.id))
    for i, call in enumerate(message.tool_calls):
        items.append(call_item(call, call_item_id(message.id, i)))
    return items


def item_message_id(item_id: str) -> UUID:
    """The message behind an item id (any of the three kinds); a 404 otherwise."""
    for prefix in (FUNCTION_OUTPUT, FUNCTION_CALL):
        if item_id.startswith(prefix):
            body = item_id[len(prefix) :].split("_", 1)[0]
            try:
                return ids.parse_id(ids.MESSAGE, ids.MESSAGE + body)
            except NotFoundError:
                break
    if item_id.startswith(ids.MESSAGE):
        try:
            return ids.parse_id(ids.MESSAGE, item_id)
        except NotFoundError:
            pass
    raise NotFoundError("item", item_id)


def item_list(data: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    """OpenAI's item list (``first_id``/``last_id`` are strings, empty for no items)."""
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else "",
        "last_id": data[-1]["id"] if data else "",
        "has_more": has_more,
    }
