"""The JSON objects the CLI prints for agents, threads, messages and usage (``--json``)."""

from __future__ import annotations

from typing import Any

from ai_agents.messages import Message
from ai_agents.records import AgentRecord, ThreadRecord, UsageTotals


def agent_json(record: AgentRecord) -> dict[str, Any]:
    definition = record.definition
    return {
        "id": str(record.id),
        "tenant_id": record.tenant_id,
        "name": definition.name,
        "role": definition.role,
        "goal": definition.goal,
        "constraints": list(definition.constraints),
        "provider": record.provider,
        "model": record.model,
        "memory_strategy": record.memory_strategy,
        "tools": list(definition.tools),
        "settings": record.settings,
        "instructions": record.instructions,
        "is_active": record.is_active,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
    }


def thread_json(thread: ThreadRecord) -> dict[str, Any]:
    return {
        "id": str(thread.id),
        "tenant_id": thread.tenant_id,
        "agent_id": str(thread.agent_id),
        "user_id": thread.user_id,
        "title": thread.title,
        "message_count": thread.message_count,
        "input_tokens": thread.input_tokens,
        "output_tokens": thread.output_tokens,
        "cost": thread.cost,
        "archived": thread.archived,
        "created_at": thread.created_at,
        "last_used_at": thread.last_used_at,
    }


def message_json(message: Message) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": str(message.id) if message.id else None,
        "thread_id": str(message.thread_id) if message.thread_id else None,
        "seq": message.seq,
        "role": message.role,
        "content": message.content or "",
        "created_at": message.created_at,
    }
    if message.tool_calls:
        data["tool_calls"] = [call.to_json() for call in message.tool_calls]
    if message.tool_name:
        data["tool_name"] = message.tool_name
        data["tool_call_id"] = message.tool_call_id
    if message.role == "assistant":
        data.update(
            provider=message.provider,
            model=message.model,
            input_tokens=message.input_tokens,
            output_tokens=message.output_tokens,
        )
    return data


def usage_json(totals: UsageTotals, **which: str) -> dict[str, Any]:
    return {
        **which,
        "input_tokens": totals.input_tokens,
        "output_tokens": totals.output_tokens,
        "total_tokens": totals.total_tokens,
        "cost": totals.cost,
        "messages": totals.messages,
    }
