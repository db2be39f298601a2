"""``ai-agents demo``: the platform end to end, in one command.

Creates an agent with a definition and a tool, a thread for a user, runs a short
conversation through ``store.stream`` (printed as it streams), then shows the persisted
history, token usage and cost, the rate-limit window, a user-memory fact recalled in a
second thread, and a background run processed by a worker started for the demo.

The model (:func:`choose_provider`) is the first configured provider of the catalog that
has a default model (``OPENAI_API_KEY``, ``ANTHROPIC_API_KEY``, ``OLLAMA_HOST``:
:func:`ai_agents.providers.catalog.default_choices`); else the local SmolLM2-135M-Instruct run
in-process (the ``local`` extra); else, saying so, a deterministic built-in demo model.
``--model demo`` picks the deterministic model explicitly, ``--model local`` the local one.

A 135M-parameter model is erratic: left to itself it rarely calls a tool, and once it
has it keeps calling. The demo therefore runs it greedily (temperature 0) with a short
answer cap, and steers its tool use (:class:`LookupThenAnswer`): a turn's first model
call must call a tool, the one after the results must answer. The local adapter's
grammar makes the call well-formed, with a topic from the tool's enum; which topic, and
the answer, are the model's own. Nothing shown is made up by the demo: the point is the
platform (tools, persistence, usage, limits, memory, jobs).
"""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from typing import Any, Literal, TextIO
from uuid import UUID

from ai_agents.definition import AgentDefinition
from ai_agents.messages import ToolCall
from ai_agents.providers.base import Provider, ProviderRequest, ProviderResponse, StreamEvent
from ai_agents.response import DoneEvent, TextDeltaEvent, ToolCallEvent, ToolResultEvent
from ai_agents.store import AgentStore
from ai_agents.testing import FunctionProvider
from ai_agents.tools.decorator import tool
from ai_agents.tools.registry import ToolRegistry

#: ``--model`` choices: pick automatically, or force one of the keyless models.
MODEL_CHOICES = ("auto", "local", "demo")

PROPERTY_FACTS = {
    "checkout": "Check-out is at 11:00. Late check-out until 13:00 costs 25 EUR.",
    "checkin": "Check-in is from 15:00; the key box code is sent on the day of arrival.",
    "wifi": "Wi-Fi network 'SeaView', password on the fridge.",
    "parking": "One free parking space, number 12, in the garage below the building.",
}

#: Agent settings for the local model: deterministic, short, and a bounded tool loop.
LOCAL_MODEL_SETTINGS: dict[str, Any] = {
    "temperature": 0.0,
    "max_output_tokens": 96,
    "max_tool_iterations": 2,
}


def demo_tools() -> ToolRegistry:
    registry = ToolRegistry()

    @tool(registry=registry)
    def get_property_info(topic: Literal["checkout", "checkin", "wifi", "parking"]) -> str:
        """Look up a fact in the property handbook.

        Args:
            topic: the handbook topic
        """
        return PROPERTY_FACTS[topic]

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


class LookupThenAnswer(Provider):
    """The demo's tool policy for the local model: look the question up, then answer.

    When tools are offered with ``tool_choice`` ``auto``, a turn's first model call gets
    ``required`` (the local adapter's grammar then leaves only a well-formed call) and the
    call after the tool results gets ``none`` (prose only). Any other ``tool_choice`` is
    left as it is.
    """

    kind = "local"

    def __init__(self, inner: Provider) -> None:
        super().__init__(inner.settings)
        self.inner = inner

    def native_tools_for(self, model: str) -> bool:
        return self.inner.native_tools_for(model)

    @staticmethod
    def steer(request: ProviderRequest) -> ProviderRequest:
        if not request.tools or request.tool_choice != "auto":
            return request
        answered = bool(request.messages) and request.messages[-1].role == "tool"
        return replace(
            request, tool_choice="none" if answered else "required", parallel_tool_calls=False
        )

    async def complete(self, request: ProviderRequest) -> ProviderResponse:
        return await self.inner.complete(self.steer(request))

    async def stream(self, request: ProviderRequest) -> AsyncIterator[StreamEvent]:
        async for event in self.inner.stream(self.steer(request)):
            yield event

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass(frozen=True, slots=True)
class ModelChoice:
    provider: str
    model: str
    description: str
    #: Agent settings the choice needs (e.g. a short, greedy local model).
    settings: dict[str, Any]


def choose_provider(requested: str = "auto") -> ModelChoice:
    """The demo's model: a configured vendor, else the local model, else the demo model."""
    if requested not in MODEL_CHOICES:
        raise ValueError(f"model must be one of {', '.join(MODEL_CHOICES)}")
    if requested == "demo":
        return ModelChoice("demo", "demo-model", "built-in deterministic demo model", {})
    from ai_agents.settings import load_settings

    override = load_settings().demo_model
    if requested == "auto":
        from ai_agents.providers.catalog import default_choices

        for spec in default_choices():  # openai, anthropic, ollama: the first configured
            if spec.configured() and spec.default_model:
                return ModelChoice(spec.name, override or spec.default_model, spec.label, {})
    from ai_agents.providers.local import DEFAULT_MODEL, local_model_status

    ok, detail = local_model_status()
    if ok:
        return ModelChoice(
            "local",
            DEFAULT_MODEL,
            f"local model in-process via llama.cpp, no key needed: {detail}",
            dict(LOCAL_MODEL_SETTINGS),
        )
    if requested == "local":
        from ai_agents.errors import ConfigurationError

        raise ConfigurationError(f"the local model is not available: {detail}")
    return ModelChoice(
        "demo",
        "demo-model",
        "built-in deterministic demo model, because no provider is configured and the "
        f"local model is not available ({detail})",
        {},
    )


async def run_demo(
    store: AgentStore, out: TextIO = sys.stdout, *, model: str = "auto"
) -> dict[str, Any]:
    """Run the demo on *store*; returns the ids it created (for tests)."""

    def say(text: str = "") -> None:
        print(text, file=out, flush=True)

    store.use_tools(demo_tools())
    choice = choose_provider(model)
    if choice.provider == "demo":
        store.register_provider("demo", FunctionProvider(_demo_model))
    elif choice.provider == "local":
        from ai_agents.providers.local import LocalLlamaProvider

        store.register_provider("local", LookupThenAnswer(LocalLlamaProvider()))
    say(f"== model: {choice.provider}/{choice.model} ({choice.description})")

    definition = AgentDefinition(
        name="Property Assistant",
        role="You are a helpful assistant for guests of a vacation rental.",
        goal="Answer guests' questions about their stay using the property handbook.",
        constraints=["Always cite the property handbook when you use it"],
        personality={"tone": "friendly", "style": "concise"},
        tools=["get_property_info"],
    )
    agent_id = await store.create_agent(
        definition,
        provider=choice.provider,
        model=choice.model,
        settings={"use_user_memory": True, **choice.settings},
    )
    thread_id = await store.create_thread(agent_id, user_id="guest_42")
    say(f"== agent {agent_id}\n== thread {thread_id} (user guest_42)\n")

    for question in ("Hi! What time is check-out?", "And what about the wifi?"):
        say(f"guest> {question}")
        await stream_answer(store, thread_id, question, out)

    say("== persisted history (from PostgreSQL)")
    for message in (await store.list_messages(thread_id, limit=100)).items:
        what = message.text or ", ".join(f"{c.name}({c.arguments})" for c in message.tool_calls)
        say(f"  #{message.seq} {message.role:<9} {_one_line(what)}")

    usage = await store.usage(thread_id=thread_id)
    say(
        f"\n== usage: {usage.input_tokens} input + {usage.output_tokens} output tokens, "
        f"cost ${usage.cost:.6f}"
    )
    window = await store.runner.rate_window(choice.provider, choice.model)
    say(
        f"== rate-limit window ({window.window_seconds:.0f} s): {window.requests} requests, "
        f"{window.tokens} tokens"
    )

    await store.set_memory("guest_42", "name", "Ada Lovelace")
    second = await store.create_thread(agent_id, user_id="guest_42")
    answer = await store.run(second, "Do you remember my name?")
    say(f"\n== second thread {second}: user memory (name = Ada Lovelace) given to the model")
    say("guest> Do you remember my name?")
    say(f"assistant> {answer.content}")
    result: dict[str, Any] = {"agent_id": agent_id, "thread_id": thread_id, "second": second}
    result["job"] = await background_run(store, thread_id, say)
    return result


async def stream_answer(
    store: AgentStore, thread_id: UUID | str, text: str, out: TextIO, *, prefix: str = ""
) -> None:
    """Stream one turn to *out*: text as it comes, tool calls and results on their lines."""
    out.write(f"{prefix}assistant> ")
    out.flush()
    async for event in store.stream(thread_id, text):
        if isinstance(event, TextDeltaEvent):
            out.write(event.text)
            out.flush()
        elif isinstance(event, ToolCallEvent):
            print(f"[calls {event.call.name}({event.call.arguments})]", file=out, flush=True)
        elif isinstance(event, ToolResultEvent):
            status = "tool error" if event.is_error else "tool result"
            print(f"{prefix}           [{status}: {event.result}]", file=out, flush=True)
            out.write(f"{prefix}assistant> ")
            out.flush()
        elif isinstance(event, DoneEvent):
            print(
                f"\n{prefix}           ({event.response.finish_reason}, "
                f"{event.response.usage.total_tokens} tokens)\n",
                file=out,
                flush=True,
            )


async def background_run(
    store: AgentStore, thread_id: UUID | str, say: Callable[[str], None]
) -> UUID:
    """Queue a run, start a worker in this process, show the job until it is finished.

    The worker is a real :class:`workers.WorkerPool` on the store's queue (Redis streams
    plus the jobs table); it is stopped once the demo's job is done.
    """
    from ai_agents.workers.pool import WorkerConfig, WorkerPool

    question = "Is there parking for my car?"
    job_id = await store.enqueue_run(thread_id, question, metadata={"source": "demo"})
    job = await store.get_job(job_id)
    say(f"\n== background run: job {job_id} queued ({job.status}): {question!r}")
    worker = WorkerPool(store, WorkerConfig(concurrency=1, poll_interval=0.2, grace_period=5))
    task = asyncio.create_task(worker.run())
    say(f"== worker {worker.name} started for the demo")
    try:
        from ai_agents.jobs.queue import job_queue

        job = await job_queue(store).get_result(job_id, timeout=600)
    finally:
        worker.stop()
        await task
    say(f"== job {job.status} after {job.attempts} attempt(s) on worker {job.worker}")
    if job.result is not None:
        say(f"assistant> {_one_line(str(job.result.get('content', '')))}")
    elif job.error is not None:
        say(f"error: {job.error.code}: {job.error.message}")
    return job_id


def _one_line(text: str, limit: int = 300) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
