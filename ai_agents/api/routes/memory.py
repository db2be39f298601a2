"""``/users/{user_id}/memory``: what agents remember about a user across threads.

Memory is per tenant and, with ``agent_id``, per agent (without it: shared by every
agent of the tenant). Admin keys act on their own tenant unless they pass ``tenant_id``.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from litestar import delete, get, put
from litestar.params import Parameter

from ai_agents.api.auth import Principal
from ai_agents.api.openapi import errors
from ai_agents.api.schemas import DeletedOut, MemoryEntryOut, MemoryOut, MemoryPut, MemoryValue
from ai_agents.errors import NotFoundError
from ai_agents.store import AgentStore

TAGS = ["memory"]
PATH = "/users/{user_id:str}/memory"

UserId = Annotated[str, Parameter(min_length=1, max_length=200, description="The user's id.")]
Key = Annotated[str, Parameter(min_length=1, max_length=200, description="The memory key.")]
AgentId = Annotated[
    UUID | None,
    Parameter(description="Memory of this agent only (omit: memory shared by all agents)."),
]
TenantId = Annotated[
    str | None,
    Parameter(min_length=1, max_length=200, description="Admin keys: act for this tenant."),
]


def _store(principal: Principal, tenant_id: str | None) -> AgentStore:
    return principal.store_for_tenant(tenant_id)


@get(PATH, tags=TAGS, summary="Get a user's memory", opt=errors(403, 422))
async def get_memory(
    user_id: UserId, principal: Principal, agent_id: AgentId = None, tenant_id: TenantId = None
) -> MemoryOut:
    values = await _store(principal, tenant_id).list_memory(user_id, agent_id=agent_id)
    return MemoryOut(user_id=user_id, agent_id=agent_id, values=values)


@put(PATH, tags=TAGS, summary="Set memory keys", opt=errors(403, 422))
async def put_memory(
    user_id: UserId,
    data: MemoryPut,
    principal: Principal,
    agent_id: AgentId = None,
    tenant_id: TenantId = None,
) -> MemoryOut:
    """Set every key given (upsert); keys not named keep their value."""
    store = _store(principal, tenant_id)
    for key, value in data.values.items():
        await store.set_memory(user_id, key, value, agent_id=agent_id)
    values = await store.list_memory(user_id, agent_id=agent_id)
    return MemoryOut(user_id=user_id, agent_id=agent_id, values=values)


@delete(PATH, tags=TAGS, summary="Forget a user's memory", status_code=200, opt=errors(403, 422))
async def delete_memory(
    user_id: UserId, principal: Principal, agent_id: AgentId = None, tenant_id: TenantId = None
) -> DeletedOut:
    """Delete every key of the user (for that agent, or the shared memory)."""
    deleted = await _store(principal, tenant_id).delete_memory(user_id, agent_id=agent_id)
    return DeletedOut(deleted=deleted)


@get(PATH + "/{key:str}", tags=TAGS, summary="Get one memory key", opt=errors(403, 422))
async def get_memory_key(
    user_id: UserId,
    key: Key,
    principal: Principal,
    agent_id: AgentId = None,
    tenant_id: TenantId = None,
) -> MemoryEntryOut:
    value = await _store(principal, tenant_id).get_memory(user_id, key, agent_id=agent_id)
    if value is None:
        raise NotFoundError("memory key", key)
    return MemoryEntryOut(user_id=user_id, agent_id=agent_id, key=key, value=value)


@put(PATH + "/{key:str}", tags=TAGS, summary="Set one memory key", opt=errors(403, 422))
async def put_memory_key(
    user_id: UserId,
    key: Key,
    data: MemoryValue,
    principal: Principal,
    agent_id: AgentId = None,
    tenant_id: TenantId = None,
) -> MemoryEntryOut:
    await _store(principal, tenant_id).set_memory(user_id, key, data.value, agent_id=agent_id)
    return MemoryEntryOut(user_id=user_id, agent_id=agent_id, key=key, value=data.value)


@delete(PATH + "/{key:str}", tags=TAGS, summary="Forget one memory key", opt=errors(403, 422))
async def delete_memory_key(
    user_id: UserId,
    key: Key,
    principal: Principal,
    agent_id: AgentId = None,
    tenant_id: TenantId = None,
) -> None:
    deleted = await _store(principal, tenant_id).delete_memory(user_id, key, agent_id=agent_id)
    if not deleted:
        raise NotFoundError("memory key", key)


HANDLERS = [
    get_memory,
    put_memory,
    delete_memory,
    get_memory_key,
    put_memory_key,
    delete_memory_key,
]
