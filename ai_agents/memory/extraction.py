"""Automatic memory: after a completed turn, a background job extracts durable facts.

An agent with ``settings.memory_extraction: true`` gets, after every ``completed`` turn on
a thread with a ``user_id``, a job on the existing job queue (the ``jobs`` table, Redis
streams, ``workers/``) with ``metadata.kind == "memory_extraction"``. The job is durable
like any other (PostgreSQL row, retries, dead letters, rebuilt if Redis loses it), runs in
the thread's chain of jobs (after the thread's earlier jobs; a later job of the thread
waits for it), and has no run of its own.

The worker asks the extraction model (``Settings.memory_extraction_model``,
``provider:model``; unset: the agent's own model) for durable facts about the user in the
turn's messages, as ``{"facts": [{"key": ..., "value": ...}]}``, and upserts them into
``user_memory`` with the scope and bounds of the memory tools
(:func:`ai_agents.memory.tools.write_facts`). A reply that is not that JSON writes nothing
and is logged; the job still succeeds (a retry would pay for another call). The turn that
triggered the job is never affected: enqueueing failures are logged (the turn is saved).

Usage and cost of the extraction call are recorded (a) in the job's ``result``
(:class:`ExtractionResult`) and (b) added to the thread's totals (``threads.input_tokens``,
``output_tokens``, ``cost``: ``store.usage(thread_id=...)``) and the user's
(``user_usage``: ``store.usage(user_id=...)``). They are not in any run's usage.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal
from uuid import UUID

from ai_agents.agent_settings import read_settings
from ai_agents.db import messages as message_rows
from ai_agents.db.engine import translate_errors
from ai_agents.db.scope import Scope
from ai_agents.errors import AgentsError, ConfigurationError
from ai_agents.memory.summarizer import transcript
from ai_agents.memory.tools import MemoryLimitError, memory_scope_of, write_facts
from ai_agents.messages import Message
from ai_agents.providers.base import ProviderRequest

if TYPE_CHECKING:
    from ai_agents.jobs.records import JobRecord
    from ai_agents.providers.base import ProviderResponse
    from ai_agents.providers.routing import Target
    from ai_agents.records import AgentRecord, ThreadRecord
    from ai_agents.runs.turn import Completion, RunTicket
    from ai_agents.store import AgentStore

__all__ = [
    "EXTRACTION_KIND",
    "ExtractionResult",
    "enqueue_extraction",
    "is_extraction",
    "parse_facts",
    "run_extraction",
]

log = logging.getLogger("ai_agents.memory")

#: ``jobs.metadata.kind`` of extraction jobs.
EXTRACTION_KIND = "memory_extraction"
#: Most facts taken from one reply; the rest are ignored.
MAX_FACTS_PER_TURN = 20

EXTRACTION_PROMPT = (
    "You extract durable facts about the USER from a conversation: preferences, names, "
    "circumstances, standing instructions that will still be true in later conversations. "
    "Ignore facts about the assistant, one-off requests and anything the user did not state "
    "about themselves. Known facts are listed; repeat a key only to change its value. "
    'Answer with JSON only, exactly {"facts": [{"key": "snake_case_name", "value": "short '
    'fact"}]}; answer {"facts": []} when there is nothing durable.'
)


def is_extraction(job: JobRecord) -> bool:
    return job.metadata.get("kind") == EXTRACTION_KIND


@dataclass(slots=True, kw_only=True)
class ExtractionResult:
    """What an extraction job did; its JSON form is the job's ``result``."""

    run_id: str
    status: Literal["written", "nothing", "malformed", "refused", "skipped"]
    facts: list[str] = field(default_factory=list)
    detail: str | None = None
    provider: str | None = None
    model: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": EXTRACTION_KIND,
            "run_id": self.run_id,
            "status": self.status,
            "facts": list(self.facts),
            "detail": self.detail,
            "provider": self.provider,
            "model": self.model,
            "usage": {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens},
            "cost": self.cost,
        }


# --- producing the job ----------------------------------------------------------------


async def enqueue_extraction(store: AgentStore, ticket: RunTicket, completion: Completion) -> None:
    """The after-turn hook: queue an extraction of the turn when the agent asks for one."""
    if completion.status != "completed" or not ticket.thread.user_id:
        return
    try:
        settings = read_settings(ticket.agent.settings)
    except AgentsError:
        return
    if not settings.memory_extraction:
        return
    thread = ticket.thread
    job = await store.jobs.submit(
        thread.id,
        f"memory extraction of run {ticket.id}",
        priority="low",
        metadata={
            "kind": EXTRACTION_KIND,
            "run_id": str(ticket.id),
            "agent_id": str(ticket.agent.id),
        },
        scope=Scope(thread.tenant_id),
        with_run=False,
    )
    log.debug("memory extraction job %s queued for run %s", job.id, ticket.id)


# --- running it -----------------------------------------------------------------------


def _model_of(store: AgentStore, agent: AgentRecord) -> tuple[str, str]:
    configured = store.runtime.settings.memory_extraction_model
    if configured:
        provider, sep, model = configured.partition(":")
        if not sep or not provider or not model:
            raise ConfigurationError(
                f"memory_extraction_model must be 'provider:model', got {configured!r}"
            )
        return provider, model
    if agent.provider == "auto":
        raise ConfigurationError(
            "memory extraction of an auto-routed agent needs Settings.memory_extraction_model"
        )
    return agent.provider, agent.model


_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)


def parse_facts(content: str) -> dict[str, str] | None:
    """The facts of a reply, or None when it is not ``{"facts": [{key, value}, ...]}``."""
    text = content.strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1)
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("facts"), list):
        return None
    facts: dict[str, str] = {}
    for item in data["facts"][:MAX_FACTS_PER_TURN]:
        if not isinstance(item, dict):
            return None
        key, value = item.get("key"), item.get("value")
        if not isinstance(key, str) or not isinstance(value, str):
            return None
        if key.strip() and value.strip():
            facts[key.strip()] = value
    return facts


async def run_extraction(store: AgentStore, job: JobRecord) -> ExtractionResult:
    """Execute an extraction job (the worker's side); *store* acts for the job's tenant."""
    from ai_agents.providers.registry import get_registry

    run_id = str(job.metadata.get("run_id", ""))
    thread = await store.get_thread(job.thread_id)
    agent = await store.get_agent(thread.agent_id)
    settings = read_settings(agent.settings)
    scope = memory_scope_of(agent, thread, settings)
    if scope is None or not settings.memory_extraction:
        return ExtractionResult(
            run_id=run_id, status="skipped", detail="extraction is off or the thread has no user"
        )
    with translate_errors("load the turn for memory extraction"):
        async with store.engine.connect() as conn:
            turn = await message_rows.by_run(conn, thread.id, UUID(run_id))
    turn = [m for m in turn if m.role in ("user", "assistant") and m.text]
    if not turn:
        return ExtractionResult(run_id=run_id, status="skipped", detail="no messages")
    provider, model = _model_of(store, agent)
    known = await store.for_tenant(scope.tenant_id).list_memory(
        scope.user_id, agent_id=scope.agent_id
    )
    body = (
        "Known facts:\n"
        + ("\n".join(f"- {k}: {v}" for k, v in known.items()) or "(none)")
        + "\n\nConversation:\n"
        + transcript(turn)
    )
    request = ProviderRequest(
        model=model,
        system_prompt=EXTRACTION_PROMPT,
        messages=[Message(role="user", content=body)],
        max_output_tokens=1024,
        tool_choice="none",
        temperature=0.0,
    )
    response, used = await _call_within_limits(store, agent, thread, provider, model, request)
    limits = get_registry().find(used.provider, used.model)
    usage = response.usage
    cost = (
        limits.cost(
            usage.input_tokens,
            usage.output_tokens,
            cache_read_tokens=usage.cache_read_tokens,
            cache_write_tokens=usage.cache_write_tokens,
        )
        if limits
        else 0.0
    )
    result = ExtractionResult(
        run_id=run_id,
        status="nothing",
        provider=used.provider,
        model=response.model or used.model,
        input_tokens=response.usage.input_tokens,
        output_tokens=response.usage.output_tokens,
        cost=cost,
    )
    await _record_usage(store, thread.id, thread.tenant_id, thread.user_id, result)
    facts = parse_facts(response.content)
    if facts is None:
        log.warning(
            "memory extraction job %s: the model's reply is not the facts JSON; nothing "
            "written (reply starts %r)",
            job.id,
            response.content[:200],
        )
        result.status, result.detail = "malformed", "the reply is not the facts JSON"
        return result
    if not facts:
        return result
    try:
        await write_facts(store.runtime, scope, facts)
    except MemoryLimitError as exc:
        log.warning("memory extraction job %s: nothing written: %s", job.id, exc)
        result.status, result.detail = "refused", str(exc)
        return result
    result.status, result.facts = "written", sorted(facts)
    return result


async def _record_usage(
    store: AgentStore,
    thread_id: UUID,
    tenant_id: str,
    user_id: str | None,
    result: ExtractionResult,
) -> None:
    """Add the extraction's tokens and cost to the thread's and the user's totals."""
    tokens_in, tokens_out, cost = result.input_tokens, result.output_tokens, result.cost
    if not (tokens_in or tokens_out or cost):
        return
    with translate_errors("record memory extraction usage"):
        async with store.engine.begin() as conn:
            await message_rows.add_usage(
                conn, thread_id, tenant_id, user_id, tokens_in, tokens_out, cost
            )


async def _call_within_limits(
    store: AgentStore,
    agent: AgentRecord,
    thread: ThreadRecord,
    provider: str,
    model: str,
    request: ProviderRequest,
) -> tuple[ProviderResponse, Target]:
    """One extraction call, admitted like a run's: the provider must be allowed for the
    tenant, and the call waits in (and is counted by) the same Redis rate-limit windows
    (the model's, with the tenant's share, and the user's)."""
    from ai_agents.providers.registry import get_registry
    from ai_agents.providers.routing import Target

    runner = store.runner
    runner.dispatcher.providers.check(provider, model, tenant=thread.tenant_id)
    limits = get_registry().get(provider, model)
    estimate = runner.counter.count_request(
        request.system_prompt, request.messages, provider=provider, model=model
    ) + (request.max_output_tokens or 0)
    limiter = runner.admissions.limiter(provider, model, limits, agent, thread)
    reservation = await limiter.wait_if_needed(estimate, max_wait=runner.admissions.max_wait)
    try:
        dispatched = await runner.dispatcher.complete([Target(provider, model)], request)
    except BaseException:
        await limiter.release(reservation)
        raise
    await limiter.record_request(reservation, dispatched.response.usage.total_tokens)
    return dispatched.response, dispatched.target
