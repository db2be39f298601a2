"""OpenAI's ``thread.run`` and ``thread.run.step`` objects, from our run rows.

A run row keeps what the run was asked (its overrides) and what happened (status,
required action, error, usage, times); what the run did not override comes from its
assistant (the agent), so the object shows the values the run actually used, as
OpenAI's does: the effective instructions, tools, temperature, ``top_p``, response
format. Our statuses are OpenAI's; error codes are folded into OpenAI's three
(``server_error``, ``rate_limit_exceeded``, ``invalid_prompt``).

A model call that only asked for tools is one ``tool_calls`` step in OpenAI's listing (it
wrote no message a thread shows), so its ``message_creation`` step is left out.
"""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID, uuid5

from ai_agents.api.compat import ids
from ai_agents.api.compat.catalog import public_model_name
from ai_agents.api.compat.stamps import unix, unix_or_none
from ai_agents.files.search import FILE_SEARCH, RANKER, SearchOptions, search_output
from ai_agents.records import AgentRecord
from ai_agents.runs.records import RunRecord, RunStep

_CHOICES = ("auto", "none", "required")
_RATE_LIMITED = frozenset(
    {"rate_limited", "provider_rate_limited", "rate_limiter_unavailable", "limit_exceeded"}
)
_INVALID = frozenset(
    {
        "invalid_request",
        "validation_error",
        "unknown_model",
        "unknown_tool",
        "provider_bad_request",
        "invalid_structured_output",
    }
)
_LIMIT_REASONS = ("max_completion_tokens", "max_prompt_tokens")


def _arguments(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value if value is not None else {})


def function_tool(tool: dict[str, Any]) -> dict[str, Any]:
    """A client tool (``{name, description, parameters}``) as an OpenAI function tool."""
    return {
        "type": "function",
        "function": {
            "name": tool["name"],
            "description": tool.get("description", ""),
            "parameters": tool.get("parameters") or {"type": "object", "properties": {}},
            "strict": False,
        },
    }


def _tools(run: RunRecord, agent: AgentRecord) -> list[dict[str, Any]]:
    ov = run.overrides
    if ov.get("client_tools") is not None or ov.get("tools") is not None:
        tools = [function_tool(t) for t in ov.get("client_tools") or []]
        if FILE_SEARCH in (ov.get("tools") or ()):
            options = SearchOptions.of_tools(agent.assistant_fields.get("tools"))
            tools.insert(0, {"type": FILE_SEARCH, FILE_SEARCH: options.to_json()})
        return tools
    stored = agent.assistant_fields.get("tools")
    if isinstance(stored, list):
        return [dict(t) for t in stored]
    return [function_tool(t) for t in agent.client_tools]


def _tool_choice(value: Any) -> Any:
    if value is None:
        return "auto"
    if value in _CHOICES:
        return value
    if value == FILE_SEARCH:
        return {"type": FILE_SEARCH}
    return {"type": "function", "function": {"name": value}}


def _truncation(value: Any) -> dict[str, Any]:
    if isinstance(value, dict) and value.get("type") == "last_messages":
        return {"type": "last_messages", "last_messages": value.get("last_messages")}
    return {"type": "auto", "last_messages": None}


def _last_error(run: RunRecord) -> dict[str, Any] | None:
    """OpenAI's error of a failed or expired run (a cancelled run has none)."""
    error = run.last_error
    if error is None or run.status not in ("failed", "expired"):
        return None
    code = str(error.get("code") or "")
    if code in _RATE_LIMITED:
        kind = "rate_limit_exceeded"
    elif code in _INVALID:
        kind = "invalid_prompt"
    else:
        kind = "server_error"
    return {"code": kind, "message": str(error.get("message") or "the run failed")}


def _incomplete(run: RunRecord) -> dict[str, Any] | None:
    if run.status != "incomplete":
        return None
    reason = (run.incomplete_details or {}).get("reason")
    return {"reason": reason if reason in _LIMIT_REASONS else None}


def _required_action(run: RunRecord) -> dict[str, Any] | None:
    action = run.required_action
    if run.status != "requires_action" or not action:
        return None
    calls = [
        {
            "id": c["id"],
            "type": "function",
            "function": {"name": c["name"], "arguments": _arguments(c.get("arguments"))},
        }
        for c in action.get("tool_calls") or []
    ]
    return {"type": "submit_tool_outputs", "submit_tool_outputs": {"tool_calls": calls}}


def _model(run: RunRecord, agent: AgentRecord) -> str:
    if run.provider and run.model:
        return public_model_name(run.provider, run.model)
    ov = run.overrides
    if ov.get("provider") and ov.get("model"):
        return public_model_name(ov["provider"], ov["model"])
    return public_model_name(agent.provider, agent.model)


def _instructions(run: RunRecord, agent: AgentRecord) -> str:
    ov = run.overrides
    text = ov.get("instructions")
    if text is None:
        text = agent.system_prompt()
    extra = ov.get("additional_instructions")
    return f"{text}\n\n{extra}" if extra else str(text)


def _number(*values: Any, default: float = 1.0) -> float:
    for value in values:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return default


def run_object(run: RunRecord, agent: AgentRecord) -> dict[str, Any]:
    """*run* (of *agent*) as an OpenAI ``thread.run``."""
    ov = run.overrides
    extra = agent.assistant_fields
    usage = None
    if run.is_terminal:
        usage = {
            "prompt_tokens": run.input_tokens,
            "completion_tokens": run.output_tokens,
            "total_tokens": run.total_tokens,
        }
    return {
        "id": ids.format_id(ids.RUN, run.id),
        "object": "thread.run",
        "created_at": unix(run.created_at),
        "thread_id": ids.format_id(ids.THREAD, run.thread_id),
        "assistant_id": ids.format_id(ids.ASSISTANT, run.agent_id),
        "status": run.status,
        "required_action": _required_action(run),
        "last_error": _last_error(run),
        "expires_at": None if run.is_terminal else unix_or_none(run.expires_at),
        "started_at": unix_or_none(run.started_at),
        "cancelled_at": unix_or_none(run.cancelled_at),
        "failed_at": unix_or_none(run.failed_at),
        "completed_at": unix_or_none(run.completed_at),
        "incomplete_details": _incomplete(run),
        "model": _model(run, agent),
        "instructions": _instructions(run, agent),
        "tools": _tools(run, agent),
        "metadata": {k: v for k, v in run.metadata.items() if isinstance(v, str)},
        "usage": usage,
        "temperature": _number(ov.get("temperature"), agent.settings.get("temperature")),
        "top_p": _number(ov.get("top_p"), extra.get("top_p")),
        "max_prompt_tokens": ov.get("max_prompt_tokens"),
        "max_completion_tokens": ov.get("max_completion_tokens"),
        "truncation_strategy": _truncation(ov.get("truncation")),
        "response_format": ov.get("response_format") or extra.get("response_format") or "auto",
        "tool_choice": _tool_choice(ov.get("tool_choice")),
        "parallel_tool_calls": bool(ov.get("parallel_tool_calls", True)),
    }


def shown(step: RunStep) -> bool:
    """Is *step* one of OpenAI's steps? (not the model call that only asked for tools)"""
    if step.type != "message_creation":
        return True
    details = step.details
    return bool(details.get("content")) or not details.get("tool_calls")


def _step_details(step: RunStep, with_content: bool) -> dict[str, Any]:
    if step.type == "message_creation":
        message = step.details.get("message_id")
        ident = ids.format_id(ids.MESSAGE, _uuid(message)) if message else ""
        return {"type": "message_creation", "message_creation": {"message_id": ident}}
    calls = [
        tool_call_entry(
            c["id"],
            c["name"],
            c.get("arguments"),
            c.get("output"),
            client=bool(c.get("client")),
            with_content=with_content,
        )
        for c in step.details.get("tool_calls") or []
    ]
    return {"type": "tool_calls", "tool_calls": calls}


def tool_call_entry(
    call_id: str,
    name: str,
    arguments: Any,
    output: Any,
    *,
    client: bool = False,
    with_content: bool = False,
) -> dict[str, Any]:
    """One call of a ``tool_calls`` step: a ``file_search`` entry for the built-in search
    (its results, their passages when *with_content*: ``include[]``), else a function."""
    if name == FILE_SEARCH and not client:
        return {
            "id": call_id,
            "type": FILE_SEARCH,
            FILE_SEARCH: search_details(output, with_content),
        }
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": _arguments(arguments), "output": output},
    }


def search_details(output: Any, with_content: bool) -> dict[str, Any]:
    """``file_search`` of a step: the ranking used and the results (none while running)."""
    data = search_output(output)
    if data is None:
        return {} if output is None else {"results": []}
    results = []
    for hit in data["results"]:
        result = {"file_id": hit["file_id"], "file_name": hit["file_name"], "score": hit["score"]}
        if with_content:
            result["content"] = [{"type": "text", "text": hit["content"]}]
        results.append(result)
    ranking = data.get("ranking_options") or {"ranker": RANKER, "score_threshold": 0.0}
    return {"ranking_options": ranking, "results": results}


def _uuid(value: Any) -> UUID:
    return value if isinstance(value, UUID) else UUID(str(value))


def step_id(run_id: UUID, seq: int) -> str:
    """A step's ``/v1`` id: from its run and its place in the run, so a streamed step
    (announced before its row is written) has the id the listing shows."""
    return ids.format_id(ids.STEP, uuid5(run_id, f"step:{seq}"))


def step_object(step: RunStep, run: RunRecord, *, with_content: bool = False) -> dict[str, Any]:
    """*step* of *run* as an OpenAI ``thread.run.step`` (*with_content*: the passages of its
    ``file_search`` results, ``include[]``)."""
    ended = unix_or_none(step.completed_at)
    usage = None
    if step.status != "in_progress":
        usage = {
            "prompt_tokens": step.input_tokens,
            "completion_tokens": step.output_tokens,
            "total_tokens": step.input_tokens + step.output_tokens,
        }
    error = None
    if step.status == "failed" and step.last_error:
        error = {
            "code": "rate_limit_exceeded"
            if step.last_error.get("code") in _RATE_LIMITED
            else "server_error",
            "message": str(step.last_error.get("message") or "the step failed"),
        }
    return {
        "id": step_id(step.run_id, step.seq),
        "object": "thread.run.step",
        "created_at": unix(step.created_at),
        "assistant_id": ids.format_id(ids.ASSISTANT, run.agent_id),
        "thread_id": ids.format_id(ids.THREAD, step.thread_id),
        "run_id": ids.format_id(ids.RUN, step.run_id),
        "type": step.type,
        "status": step.status,
        "step_details": _step_details(step, with_content),
        "last_error": error,
        "expired_at": (ended or unix_or_none(run.expires_at)) if step.status == "expired" else None,
        "cancelled_at": (ended or unix_or_none(run.cancelled_at))
        if step.status == "cancelled"
        else None,
        "failed_at": (ended or unix_or_none(run.failed_at)) if step.status == "failed" else None,
        "completed_at": ended if step.status == "completed" else None,
        "metadata": {},
        "usage": usage,
    }
