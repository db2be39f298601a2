"""OpenAI ``response`` objects from run rows and their steps.

A response is a run (``resp_<run hex>``), or, once a run paused for function calls was
resumed with their outputs, a *segment* of it: the run's steps split at each batch of
client tool calls. Segment 0 is ``resp_<hex>``, segment *n* ``resp_<hex>_<n>``: the
response that answered with function calls keeps that answer, and the one that went on
after the outputs has its own id and its own output and usage, as OpenAI's two
responses do.

What the run does not keep (the ``text`` format as given, ``store``, the conversation,
the input message ids...) is saved on the run's metadata under :data:`META_KEY` (a
value that is not a string, so ``/v1`` runs do not show it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from ai_agents.api.compat import ids
from ai_agents.api.compat.catalog import public_model_name
from ai_agents.api.compat.response_items import call_item, output_item
from ai_agents.api.compat.stamps import unix, unix_or_none
from ai_agents.errors import NotFoundError
from ai_agents.messages import ToolCall
from ai_agents.runs.records import RunRecord, RunStep

#: The run metadata key holding a response's own fields.
META_KEY = "openai_response"
#: Fields OpenAI's schema types without ``null`` (``user`` a string, ``prompt_cache_options``
#: and ``usage`` objects) and does not require: left out while unset, not sent as ``null``.
#: The SDK's ``Response`` declares all three optional with a ``None`` default.
_ABSENT_WHEN_UNSET = frozenset({"user", "prompt_cache_options", "usage"})
_RATE_LIMITED = frozenset(
    {"rate_limited", "provider_rate_limited", "rate_limiter_unavailable", "limit_exceeded"}
)


def format_response_id(run_id: UUID, segment: int = 0) -> str:
    base = ids.format_id(ids.RESPONSE, run_id)
    return base if segment == 0 else f"{base}_{segment}"


def parse_response_id(value: str) -> tuple[UUID, int]:
    """(run id, segment) of a response id; a 404 naming it when malformed."""
    if isinstance(value, str):
        head, sep, tail = value.partition("_")
        body, sep2, seg = tail.partition("_")
        if sep and (not sep2 or (seg.isdigit() and seg[0] != "0")):
            try:
                run = ids.parse_id(ids.RESPONSE, f"{head}_{body}")
            except NotFoundError:
                pass
            else:
                return run, int(seg) if sep2 else 0
    raise NotFoundError("response", value)


def response_meta(run: RunRecord) -> dict[str, Any] | None:
    meta = run.metadata.get(META_KEY)
    return meta if isinstance(meta, dict) else None


def _client_calls(step: RunStep) -> list[dict[str, Any]]:
    return [c for c in step.details.get("tool_calls") or [] if c.get("client", True)]


def _is_pause(step: RunStep) -> bool:
    return step.type == "tool_calls" and bool(_client_calls(step))


def _answered(step: RunStep) -> bool:
    return all(c.get("output") is not None for c in _client_calls(step))


@dataclass(slots=True)
class Segment:
    """One response of a run: its steps, and the pause step before it (its input)."""

    index: int
    steps: list[RunStep]
    before: RunStep | None
    is_last: bool


def segments(steps: list[RunStep]) -> list[Segment]:
    """The run's responses so far: a new one starts after each answered pause."""
    ordered = sorted(steps, key=lambda s: s.seq)
    out: list[Segment] = [Segment(0, [], None, True)]
    for step in ordered:
        out[-1].steps.append(step)
        if _is_pause(step) and _answered(step):
            out[-1].is_last = False
            out.append(Segment(len(out), [], step, True))
    return out


def _arguments(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            return {"_raw": value}
        return parsed if isinstance(parsed, dict) else {"_raw": value}
    return {}


def _step_call(call: dict[str, Any]) -> ToolCall:
    return ToolCall(str(call["id"]), str(call["name"]), _arguments(call.get("arguments")))


def _output(segment: Segment) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for step in segment.steps:
        if step.type == "message_creation":
            content = step.details.get("content")
            if not content:
                continue
            message = step.details.get("message_id")
            ident = UUID(str(message)) if message else step.id
            items.append(
                {
                    "id": ids.format_id(ids.MESSAGE, ident),
                    "type": "message",
                    "role": "assistant",
                    "status": "completed",
                    "content": [
                        {"type": "output_text", "text": content, "annotations": [], "logprobs": []}
                    ],
                }
            )
        else:
            for i, call in enumerate(_client_calls(step)):
                items.append(call_item(_step_call(call), f"fc_{step.id.hex}_{i}"))
    return items


def segment_inputs(segment: Segment) -> list[dict[str, Any]]:
    """The function call outputs a resumed segment was given (its input items)."""
    if segment.before is None:
        return []
    return [
        output_item(str(c["id"]), str(c.get("output") or ""), f"fco_{segment.before.id.hex}_{i}")
        for i, c in enumerate(_client_calls(segment.before))
    ]


def _status(run: RunRecord, segment: Segment) -> str:
    if not segment.is_last:
        return "completed"
    return {
        "queued": "queued",
        "in_progress": "in_progress",
        "requires_action": "completed",
        "cancelling": "cancelled",
        "cancelled": "cancelled",
        "failed": "failed",
        "expired": "failed",
        "completed": "completed",
        "incomplete": "incomplete",
    }[run.status]


def _error(run: RunRecord, status: str) -> dict[str, Any] | None:
    if status != "failed":
        return None
    error = run.last_error or {}
    code = "rate_limit_exceeded" if error.get("code") in _RATE_LIMITED else "server_error"
    return {"code": code, "message": str(error.get("message") or "the response failed")}


def _usage(segment: Segment) -> dict[str, Any]:
    used_in = sum(s.input_tokens for s in segment.steps)
    used_out = sum(s.output_tokens for s in segment.steps)
    return {
        "input_tokens": used_in,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": used_out,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": used_in + used_out,
    }


def _tool_choice(value: Any) -> Any:
    if value is None:
        return "auto"
    if value in ("auto", "none", "required"):
        return value
    return {"type": "function", "name": value}


def _model(run: RunRecord) -> str:
    provider = run.provider or run.overrides.get("provider") or ""
    model = run.model or run.overrides.get("model") or ""
    return public_model_name(provider, model)


def _times(run: RunRecord, segment: Segment, status: str) -> tuple[int, int | None]:
    created = unix(run.created_at)
    if segment.before is not None:
        created = unix_or_none(segment.before.completed_at) or created
    completed = None
    if status == "completed":
        ends = [s.completed_at for s in segment.steps if s.completed_at is not None]
        completed = unix(max(ends)) if ends else unix_or_none(run.completed_at)
    return created, completed


def response_object(run: RunRecord, segment: Segment) -> dict[str, Any]:
    """*segment* of *run* as an OpenAI ``response``."""
    meta = response_meta(run) or {}
    ov = run.overrides
    status = _status(run, segment)
    created, completed = _times(run, segment, status)
    previous = meta.get("previous_response_id")
    if segment.index > 0:
        previous = format_response_id(run.id, segment.index - 1)
    conversation = meta.get("conversation")
    reason = (run.incomplete_details or {}).get("reason")
    answer = {
        "id": format_response_id(run.id, segment.index),
        "object": "response",
        "created_at": created,
        "status": status,
        "background": False,
        "completed_at": completed,
        "error": _error(run, status),
        "incomplete_details": (
            {"reason": "content_filter" if reason == "content_filter" else "max_output_tokens"}
            if status == "incomplete"
            else None
        ),
        "instructions": ov.get("instructions"),
        "max_output_tokens": meta.get("max_output_tokens"),
        "max_tool_calls": None,
        "metadata": {k: v for k, v in run.metadata.items() if isinstance(v, str)},
        "model": _model(run),
        "output": _output(segment),
        "parallel_tool_calls": bool(ov.get("parallel_tool_calls", True)),
        "previous_response_id": previous,
        "conversation": {"id": conversation} if conversation else None,
        "prompt": None,
        "prompt_cache_key": meta.get("prompt_cache_key"),
        "prompt_cache_retention": None,
        "reasoning": None,
        "safety_identifier": meta.get("safety_identifier"),
        "service_tier": "default",
        "store": meta.get("store", True),
        "temperature": float(ov.get("temperature", 1.0)),
        "text": meta.get("text") or {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": _tool_choice(ov.get("tool_choice")),
        "tools": list(meta.get("tools") or []),
        "top_logprobs": 0,
        "top_p": float(ov.get("top_p", 1.0)),
        "truncation": meta.get("truncation", "disabled"),
        "usage": _usage(segment) if status not in ("queued", "in_progress") else None,
        "user": meta.get("user"),
        "access_programs": None,
        "image": None,
        "input_transformations": None,
        "moderation": None,
        "prompt_cache_diagnostics": None,
        "prompt_cache_options": None,
        "tool_usage": None,
    }
    return {k: v for k, v in answer.items() if v is not None or k not in _ABSENT_WHEN_UNSET}


def find_segment(run: RunRecord, steps: list[RunStep], index: int, ident: str) -> Segment:
    for segment in segments(steps):
        if segment.index == index:
            return segment
    raise NotFoundError("response", ident)
