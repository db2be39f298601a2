"""``/agents``: create, list, read, change and delete agents."""

from __future__ import annotations

from uuid import UUID

import msgspec
from litestar import delete, get, patch, post

from ai_agents.api.auth import Principal
from ai_agents.api.openapi import errors
from ai_agents.api.routes._params import Cursor, Limit, checked_cursor
from ai_agents.api.schemas import AgentCreate, AgentOut, AgentPage, AgentUpdate, agent_out
from ai_agents.definition import AgentDefinition

TAGS = ["agents"]


@post("/agents", tags=TAGS, summary="Create an agent", opt=errors(403, 422))
async def create_agent(data: AgentCreate, principal: Principal) -> AgentOut:
    """Create an agent in the caller's tenant (admin keys may name another ``tenant_id``)."""
    store = principal.store
    if data.tenant_id is not None and data.tenant_id != principal.tenant_id:
        principal.require_admin()
    definition = AgentDefinition(
        name=data.name,
        role=data.role,
        goal=data.goal,
        constraints=list(data.constraints),
        personality=dict(data.personality) if data.personality is not None else None,
        examples=[msgspec.to_builtins(e) for e in data.examples],
        tools=list(data.tools),
    )
    agent_id = await store.create_agent(
        definition,
        provider=data.provider,
        model=data.model,
        memory_strategy=data.memory_strategy,
        memory_config=msgspec.to_builtins(data.memory_config),
        fallbacks=[msgspec.to_builtins(f) for f in data.fallbacks],
        client_tools=[msgspec.to_builtins(t) for t in data.client_tools],
        instructions=data.instructions,
        settings=msgspec.to_builtins(data.settings),
        metadata=data.metadata,
        created_by=principal.actor,
        tenant_id=data.tenant_id or principal.tenant_id,
    )
    return agent_out(await store.get_agent(agent_id))


@get("/agents", tags=TAGS, summary="List agents", opt=errors(422))
async def list_agents(
    principal: Principal,
    limit: Limit = 50,
    cursor: Cursor = None,
    include_inactive: bool = False,
) -> AgentPage:
    """Agents oldest first; pass ``next_cursor`` back as ``cursor`` for the next page."""
    page = await principal.store.list_agents(
        limit=limit, cursor=checked_cursor(cursor), include_inactive=include_inactive
    )
    return AgentPage(
        data=[agent_out(a) for a in page.items],
        next_cursor=page.next_cursor,
        has_more=page.has_more,
    )


@get("/agents/{agent_id:uuid}", tags=TAGS, summary="Get an agent")
async def get_agent(agent_id: UUID, principal: Principal) -> AgentOut:
    return agent_out(await principal.store.get_agent(agent_id))


@patch("/agents/{agent_id:uuid}", tags=TAGS, summary="Change an agent", opt=errors(422))
async def update_agent(agent_id: UUID, data: AgentUpdate, principal: Principal) -> AgentOut:
    """Change any definition or configuration field; ``is_active: false`` deactivates."""
    return agent_out(await principal.store.update_agent(agent_id, **data.changes()))


@delete("/agents/{agent_id:uuid}", tags=TAGS, summary="Delete an agent")
async def delete_agent(agent_id: UUID, principal: Principal) -> None:
    """Delete the agent with all its threads, messages and agent-scoped memory."""
    await principal.store.delete_agent(agent_id)


HANDLERS = [create_agent, list_agents, get_agent, update_agent, delete_agent]
