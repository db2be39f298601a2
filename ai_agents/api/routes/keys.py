"""``/keys`` (admin scope): create, list, read and revoke API keys."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from litestar import delete, get, post
from litestar.datastructures import State
from litestar.params import Parameter

from ai_agents.api.auth import Principal
from ai_agents.api.keys import KeyStore
from ai_agents.api.openapi import errors
from ai_agents.api.schemas import KeyCreate, KeyCreated, KeyList, KeyOut, key_out

TAGS = ["keys"]


@post("/keys", tags=TAGS, summary="Create an API key (admin)", opt=errors(403, 422))
async def create_key(data: KeyCreate, principal: Principal, state: State) -> KeyCreated:
    """The answer holds the secret ``key``: it is shown this once (only a hash is stored)."""
    principal.require_admin()
    keys: KeyStore = state.key_store
    created = await keys.create(
        tenant_id=data.tenant_id,
        name=data.name,
        scopes=list(data.scopes),
        rate_limit_rpm=data.rate_limit_rpm,
    )
    out = key_out(created.key)
    return KeyCreated(**{f: getattr(out, f) for f in out.__struct_fields__}, key=created.secret)


@get("/keys", tags=TAGS, summary="List API keys (admin)", opt=errors(403, 422))
async def list_keys(
    principal: Principal,
    state: State,
    tenant_id: Annotated[str | None, Parameter(min_length=1, max_length=200)] = None,
    include_revoked: bool = True,
) -> KeyList:
    principal.require_admin()
    keys: KeyStore = state.key_store
    found = await keys.list_keys(tenant_id=tenant_id, include_revoked=include_revoked)
    return KeyList(data=[key_out(k) for k in found])


@get("/keys/{key_id:uuid}", tags=TAGS, summary="Get an API key (admin)", opt=errors(403))
async def get_key(key_id: UUID, principal: Principal, state: State) -> KeyOut:
    principal.require_admin()
    keys: KeyStore = state.key_store
    return key_out(await keys.get(key_id))


@delete(
    "/keys/{key_id:uuid}",
    tags=TAGS,
    summary="Revoke an API key (admin)",
    status_code=200,
    opt=errors(403),
)
async def revoke_key(key_id: UUID, principal: Principal, state: State) -> KeyOut:
    """The key stops working at once in every API process (the revocation is announced
    on Redis; should that fail, other processes drop it within the key cache TTL)."""
    principal.require_admin()
    keys: KeyStore = state.key_store
    return key_out(await keys.revoke(key_id))


HANDLERS = [create_key, list_keys, get_key, revoke_key]
