"""The agent that answers OpenAI Responses (``/v1/responses``) for a tenant.

A response is a run on a thread, and every run needs an active agent (the thread's).
A Responses request names no assistant, only a model and maybe instructions and tools,
which are the run's own overrides; so each tenant has **one** responses agent, made on
first use, with no instructions (no system prompt unless the request gives one), no
tools and no settings. Every response's run overrides its provider and model.

It is an ordinary agent (``created_by`` = :data:`RESPONSES_CREATOR`): ``/api/v1/agents``
lists it, ``/v1/assistants`` does not (the library's own agents are no assistants);
deactivating or deleting it is harmless: the next response makes a new one. Creation takes a per-tenant advisory lock,
so concurrent first requests share one agent.
"""

from __future__ import annotations

from uuid import UUID

from ai_agents.db import agents as agent_rows
from ai_agents.db.engine import translate_errors
from ai_agents.store import AgentStore

#: ``created_by`` of the responses agents (one active per tenant).
RESPONSES_CREATOR = "ai_agents:responses"


async def responses_agent(store: AgentStore) -> UUID:
    """The active responses agent of *store*'s tenant, created when there is none."""
    tenant = store.tenant_id or store.settings.default_tenant
    with translate_errors("responses_agent"):
        async with store.engine.begin() as conn:
            return await agent_rows.system_agent(
                conn,
                tenant,
                {
                    "name": "responses",
                    "role": "Answers /v1/responses requests with the model each one names.",
                    "provider": "none",
                    "model": "none",
                    "instructions": "",
                    "is_active": True,
                    "created_by": RESPONSES_CREATOR,
                },
            )
