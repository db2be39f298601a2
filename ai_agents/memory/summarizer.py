"""Folding messages that left the window into the thread's running summary."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ai_agents.messages import Message
from ai_agents.providers.base import ProviderRequest
from ai_agents.providers.registry import get_registry
from ai_agents.records import AgentRecord

if TYPE_CHECKING:
    from ai_agents.providers.fallback import Dispatcher

SUMMARY_PROMPT = (
    "You maintain a running summary of a conversation between a user and an assistant. "
    "Update the summary with the new messages. Keep every fact, decision, name, number and "
    "open question the assistant may need later; drop pleasantries. Answer with the updated "
    "summary only, in at most {words} words."
)


def transcript(messages: list[Message]) -> str:
    lines = []
    for m in messages:
        if m.role == "tool":
            lines.append(f"[tool {m.tool_name} result] {m.text}")
        elif m.tool_calls:
            calls = ", ".join(f"{c.name}({c.arguments})" for c in m.tool_calls)
            lines.append(f"assistant (calls {calls}) {m.text}".rstrip())
        else:
            lines.append(f"{m.role}: {m.text}")
    return "\n".join(lines)


async def summarize(
    dispatcher: Dispatcher, agent: AgentRecord, previous: str | None, messages: list[Message]
) -> str:
    """New summary = old summary + these messages, by the agent's (or a cheaper) model."""
    from ai_agents.errors import ConfigurationError
    from ai_agents.providers.routing import Target

    provider_name = agent.memory_config.get("summary_provider", agent.provider)
    model = agent.memory_config.get("summary_model", agent.model)
    if provider_name == "auto":
        raise ConfigurationError(
            "the summarize strategy with provider='auto' needs memory_config.summary_provider "
            "and summary_model"
        )
    targets = [Target(provider_name, model)]
    if "summary_provider" not in agent.memory_config:
        targets += [Target(f["provider"], f["model"]) for f in agent.fallbacks]
    limits = get_registry().get(provider_name, model)
    body = f"Current summary:\n{previous or '(none yet)'}\n\nNew messages:\n{transcript(messages)}"
    request = ProviderRequest(
        model=model,
        system_prompt=SUMMARY_PROMPT.format(words=300),
        messages=[Message(role="user", content=body)],
        max_output_tokens=min(limits.max_output, 1024),
        tool_choice="none",
    )
    # Through the dispatcher: retries, circuit breakers and the agent's fallbacks apply.
    dispatched = await dispatcher.complete(targets, request)
    return dispatched.response.content.strip() or (previous or "")
