"""``ai-agents demo``: the platform end to end, in one command.

Creates an agent with a definition and a tool, a thread for a user, runs a short
conversation through ``store.stream`` (printed as it streams), then shows the persisted
history, token usage and cost, the rate-limit window, a user-memory fact recalled in a
second thread, and (when the jobs module is available) a background run processed by a
worker started for the demo.

The model is the first configured of: ``OPENAI_API_KEY``, ``ANTHROPIC_API_KEY``,
``OLLAMA_HOST``, else a deterministic built-in demo model (no key needed).
"""

from __future__ import annotations

import os
import re
import sys
from typing import Any, TextIO

from ai_agents.definition import AgentDefinition
from ai_agents.messages import ToolCall
from ai_agents.providers.base import ProviderRequest, ProviderResponse
from ai_agents.response import DoneEvent, TextDeltaEvent, ToolCallEvent, ToolResultEvent
from ai_agents.store import AgentStore
from ai_agents.testing import FunctionProvider
from ai_agents.tools.decorator import tool
from ai_agents.tools.registry import ToolRegistry

PROPERTY_FACTS = {
    "checkout": "Check-out is at 11:00. Late check-out until 13:00 costs 25 EUR.",
    "checkin": "Check-in is from 15:00; the key box code is sent on the day of arrival.",
    "wifi": "Wi-Fi network 'SeaView', password on the fridge.",
    "parking": "One free parking space, number 12, in the garage below the building.",
}


def demo_tools() -> ToolRegistry:
    registry = ToolRegistry()

    @tool(registry=registry)
    def get_property_info(topic: str) -> str:
        """Look up a fact in the property handbook.

        Args:
            topic: one of checkout, checkin, wifi, parking
        """
        key = topic.lower().replace("-", "").replace(" ", "")
        return PROPERTY_FACTS.get(key, f"No handbook entry for {topic!r}.")

    return registry


def _demo_model(request: ProviderRequest) -> ProviderResponse:
    """A deterministic stand-in model: calls the tool when a handbook topic is asked."""
    last = request.messages[-1]
    if last.role == "tool":
        return ProviderResponse(content=f"According to the property handbook: {last.text}")
    question = last.text.lower()
    known = re.search(r"Known facts about this user\n(.*)", request.system_prompt, re.S)
    if "my name" in question and known:
        name = re.search(r"- name: (.+)", known.group(1))
        return ProviderResponse(content=f"You are {name.group(1) if name else 'unknown'}.")
    for topic in PROPERTY_FACTS:
        if topic in question.replace("-", "").replace(" ", ""):
            return ProviderResponse(
                tool_calls=[ToolCall("", "get_property_info", {"topic": topic})],
                finish_reason="tool_calls",
            )
    return ProviderResponse(
        content="Happy to help with your stay! Ask me about check-in, check-out, Wi-Fi or parking."
    )


def choose_provider() -> tuple[str, str, str]:
    """(provider, model, description) for the demo agent."""
    if os.environ.get("OPENAI_API_KEY"):
        return "openai", os.environ.get("AI_AGENTS_DEMO_MODEL", "gpt-5.4-mini"), "OpenAI"
    if os.environ.get("ANTHROPIC_API_KEY"):
        return "anthropic", os.environ.get("AI_AGENTS_DEMO_MODEL", "claude-haiku-4-5"), "Anthropic"
    if os.environ.get("OLLAMA_HOST"):
        return "ollama", os.environ.get("AI_AGENTS_DEMO_MODEL", "llama3.2"), "Ollama"
    return "demo", "demo-model", "built-in deterministic demo model (no provider configured)"


async def run_demo(store: AgentStore, out: TextIO = sys.stdout) -> dict[str, Any]:
    """Run the demo on *store*; returns the ids it created (for tests)."""

    def say(text: str = "") -> None:
        print(text, file=out, flush=True)

    store.extensions["tool_registry"] = demo_tools()
    provider, model, description = choose_provider()
    if provider == "demo":
        store.register_provider("demo", FunctionProvider(_demo_model))
    say(f"== model: {provider}/{model} ({description})")

    definition = AgentDefinition(
        name="Property Assistant",
        role="You are a helpful assistant for guests of a vacation rental.",
        goal="Answer guests' questions about their stay using the property handbook.",
        constraints=["Always cite the property handbook when you use it"],
        personality={"tone": "friendly", "style": "concise"},
        tools=["get_property_info"],
    )
    agent_id = await store.create_agent(
        definition, provider=provider, model=model, settings={"use_user_memory": True}
    )
    thread_id = await store.create_thread(agent_id, user_id="guest_42")
    say(f"== agent {agent_id}\n== thread {thread_id} (user guest_42)\n")

    for question in ("Hi! What time is check-out?", "And what about the wifi?"):
        say(f"guest> {question}")
        out.write("assistant> ")
        async for event in store.stream(thread_id, question):
            if isinstance(event, TextDeltaEvent):
                out.write(event.text)
                out.flush()
            elif isinstance(event, ToolCallEvent):
                say(f"[calls {event.call.name}({event.call.arguments})]")
                out.write("assistant> ")
            elif isinstance(event, ToolResultEvent):
                say(f"           [tool result: {event.result}]")
                out.write("assistant> ")
            elif isinstance(event, DoneEvent):
                say(
                    f"\n           ({event.response.finish_reason}, "
                    f"{event.response.usage.total_tokens} tokens)\n"
                )

    say("== persisted history (from PostgreSQL)")
    for message in (await store.list_messages(thread_id, limit=100)).items:
        what = message.text or ", ".join(f"{c.name}({c.arguments})" for c in message.tool_calls)
        say(f"  #{message.seq} {message.role:<9} {what}")

    usage = await store.usage(thread_id=thread_id)
    say(
        f"\n== usage: {usage.input_tokens} input + {usage.output_tokens} output tokens, "
        f"cost ${usage.cost:.6f}"
    )
    window = await store.runner.rate_window(provider, model)
    say(
        f"== rate-limit window ({window.window_seconds:.0f} s): {window.requests} requests, "
        f"{window.tokens} tokens"
    )

    await store.set_memory("guest_42", "name", "Ada Lovelace")
    second = await store.create_thread(agent_id, user_id="guest_42")
    answer = await store.run(second, "Do you remember my name?")
    say(f"\n== second thread {second}: user memory recalled")
    say("guest> Do you remember my name?")
    say(f"assistant> {answer.content}")
    result: dict[str, Any] = {"agent_id": agent_id, "thread_id": thread_id, "second": second}
    background = getattr(store, "enqueue_run", None)
    if background is not None:
        from ai_agents.demo_jobs import background_run

        result["job"] = await background_run(store, thread_id, say)
    return result
