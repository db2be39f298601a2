"""Model calls that belong to no thread (``POST /v1/chat/completions``).

A stateless call goes through the very gateway a run's turn uses
(:class:`~ai_agents.runs.gateway.ModelGateway`, found on the store's runner): the
tenant's check of the provider, its share of the Redis rate-limit windows, retries,
circuit breakers and the fallback chain. Nothing is saved but the token and cost totals
of the caller's user (``user_usage``; the user ``''`` when the caller names none), so
``GET /api/v1/usage?user_id=...`` includes these calls.

The gateway takes its rate-limit scope from an agent and a thread; a call outside any
thread stands in with records that carry only the tenant and the user (no agent
settings: the per-user windows ``user_rpm``/``user_tpm`` are agent settings and do not
apply).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from uuid import UUID

from sqlalchemy import BigInteger, Float, Text, literal
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from ai_agents.db.engine import translate_errors
from ai_agents.db.tables import user_usage
from ai_agents.definition import AgentDefinition
from ai_agents.providers.base import ProviderRequest, Usage
from ai_agents.providers.registry import ModelLimits
from ai_agents.providers.routing import Plan, Target
from ai_agents.records import AgentRecord, ThreadRecord
from ai_agents.response import TextDeltaEvent
from ai_agents.runs.gateway import ModelAnswer
from ai_agents.runs.loop import ModelCaller

#: The id of the stand-in agent and thread (no row has it: nothing is saved under it).
STATELESS_ID = UUID(int=0)
_DEFINITION_NAME = "chat.completions"


@dataclass(frozen=True, slots=True, kw_only=True)
class StatelessCall:
    """One model call outside a thread: who pays for it and where it may go."""

    tenant_id: str
    #: The end user the caller names (OpenAI's ``user``), for usage totals.
    user_id: str | None
    #: The primary target first, then the fallbacks, in order.
    targets: Sequence[Target]
    request: ProviderRequest
    #: Output tokens reserved in the rate-limit window (the request's cap, or the model's).
    max_output: int


def output_cap(limits: ModelLimits, ceiling: int, requested: int | None) -> tuple[int, int | None]:
    """(tokens reserved, the cap sent to the vendor): the caller's cap, never above the
    model's ``max_output`` nor the deployment's ceiling, as a run's answers are capped."""
    cap = min(limits.max_output, ceiling)
    if requested is not None:
        value = min(requested, cap)
        return value, value
    return cap, cap if limits.max_output > cap else None


def stand_ins(call: StatelessCall) -> tuple[AgentRecord, ThreadRecord]:
    """The agent and thread records the gateway reads its rate-limit scope from."""
    primary = call.targets[0]
    agent = AgentRecord(
        id=STATELESS_ID,
        tenant_id=call.tenant_id,
        definition=AgentDefinition(name=_DEFINITION_NAME, role="stateless model call"),
        provider=primary.provider,
        model=primary.model,
    )
    thread = ThreadRecord(
        id=STATELESS_ID, tenant_id=call.tenant_id, agent_id=STATELESS_ID, user_id=call.user_id
    )
    return agent, thread


async def call_model(
    models: ModelCaller, call: StatelessCall, *, stream: bool
) -> AsyncIterator[TextDeltaEvent | ModelAnswer]:
    """The gateway's events for *call*: text deltas (when streaming), then one answer."""
    agent, thread = stand_ins(call)
    async for event in models.call(
        Plan(targets=list(call.targets)),
        call.request,
        specs=call.request.tools,
        agent=agent,
        thread=thread,
        max_output=call.max_output,
        stream=stream,
    ):
        yield event


async def charge_user(
    engine: AsyncEngine, tenant_id: str, user_id: str | None, usage: Usage, cost: float
) -> None:
    """Add a stateless call's tokens and cost to the user's usage totals (no bytes: no
    message is stored)."""
    stmt = pg_insert(user_usage).values(
        tenant_id=literal(tenant_id, Text),
        user_id=literal(user_id or "", Text),
        total_bytes=literal(0, BigInteger),
        input_tokens=literal(usage.input_tokens, BigInteger),
        output_tokens=literal(usage.output_tokens, BigInteger),
        cost=literal(cost, Float),
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[user_usage.c.tenant_id, user_usage.c.user_id],
        set_={
            "input_tokens": user_usage.c.input_tokens + stmt.excluded.input_tokens,
            "output_tokens": user_usage.c.output_tokens + stmt.excluded.output_tokens,
            "cost": user_usage.c.cost + stmt.excluded.cost,
        },
    )
    with translate_errors("charge_user"):
        async with engine.begin() as conn:
            await conn.execute(stmt)
