"""Bearer API keys: who is calling, which tenant they act for, and their rate limit.

Every authenticated handler receives a :class:`Principal` (the Litestar dependency
``principal``). Its :attr:`Principal.store` is the tenant view of the app's store, so
every query a handler makes is scoped to the caller's tenant; an admin key gets the
admin view (all tenants). Another tenant's object is a ``NotFoundError`` (404), never
a 403 that would confirm it exists.

Rate limits are per key, in the same Redis sliding window as provider limits
(:class:`~ai_agents.queue.rate_limiter.RedisRateLimiter`, scope ``("key", key_id)``),
so they hold across every API process. A refused request is a 429 with Retry-After.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from litestar import Request
from litestar.datastructures import State

from ai_agents.queue.rate_limiter import RateLimits, RedisRateLimiter
from ai_agents.store import AgentStore
from api.config import ApiConfig
from api.errors import ApiError, forbidden, unauthorized
from api.keys import ApiKey, KeyStore

_MAX_LIMITERS = 4096


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller."""

    key: ApiKey
    #: The store view for this caller: its tenant, or every tenant for an admin key.
    store: AgentStore
    #: The store view for the key's own tenant (user memory and usage need one tenant).
    tenant_store: AgentStore

    @property
    def tenant_id(self) -> str:
        return self.key.tenant_id

    @property
    def is_admin(self) -> bool:
        return self.key.is_admin

    @property
    def actor(self) -> str:
        """What ``created_by`` records for objects this caller creates."""
        return f"api_key:{self.key.id}"

    def require_admin(self) -> None:
        if not self.is_admin:
            raise forbidden("this endpoint needs an API key with the 'admin' scope")

    def store_for_tenant(self, tenant_id: str | None) -> AgentStore:
        """The tenant store for an explicit ``tenant_id`` (admin only; others: their own)."""
        if tenant_id is None or tenant_id == self.tenant_id:
            return self.tenant_store
        if not self.is_admin:
            raise forbidden("only admin keys may act for another tenant (tenant_id)")
        return self.store.for_tenant(tenant_id)


class KeyRateLimiter:
    """One Redis limiter per API key (created on first use, bounded LRU)."""

    def __init__(self, store: AgentStore, config: ApiConfig) -> None:
        self._store = store
        self._config = config
        self._limiters: OrderedDict[tuple[UUID, int], RedisRateLimiter] = OrderedDict()

    def rpm_for(self, key: ApiKey) -> int:
        return self._config.default_rpm if key.rate_limit_rpm is None else key.rate_limit_rpm

    def _limiter(self, key: ApiKey, rpm: int) -> RedisRateLimiter:
        ident = (key.id, rpm)
        limiter = self._limiters.get(ident)
        if limiter is None:
            settings = self._store.settings
            # The limiter always tracks a "model" window too; naming it ("key", id) makes
            # its request window the very same Redis key as the key's scope window.
            limiter = RedisRateLimiter(
                self._store.redis,
                self._store.keys,
                provider="key",
                model=str(key.id),
                limits=RateLimits(),
                scopes=[("key", str(key.id), RateLimits(rpm=rpm))],
                window_seconds=settings.rate_limit_window,
                fail_open=settings.rate_limit_fail_open,
            )
            self._limiters[ident] = limiter
            if len(self._limiters) > _MAX_LIMITERS:
                self._limiters.popitem(last=False)
        else:
            self._limiters.move_to_end(ident)
        return limiter

    async def check(self, key: ApiKey) -> None:
        """Count one request against the key's window, or raise a 429 ApiError."""
        rpm = self.rpm_for(key)
        if rpm == 0:
            return
        reservation, retry_after = await self._limiter(key, rpm).try_acquire(0)
        if reservation is None:
            raise ApiError(
                429,
                "rate_limited",
                f"rate limit of {rpm} requests per minute for this API key exceeded",
                details={"limit_rpm": rpm, "key_id": str(key.id)},
                retry_after=retry_after,
            )


def bearer_token(request: Request[Any, Any, Any]) -> str:
    header = request.headers.get("authorization")
    if not header:
        raise unauthorized("missing Authorization header: send 'Authorization: Bearer <API key>'")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise unauthorized("malformed Authorization header: expected 'Bearer <API key>'")
    return token


async def provide_principal(request: Request[Any, Any, Any], state: State) -> Principal:
    """Litestar dependency: authenticate the caller and count the request."""
    token = bearer_token(request)
    keys: KeyStore = state.key_store
    key = await keys.authenticate(token)
    if key is None:
        raise unauthorized("invalid or revoked API key")
    limiter: KeyRateLimiter = state.key_limiter
    await limiter.check(key)
    store: AgentStore = state.store
    tenant_store = store.for_tenant(key.tenant_id)
    view = store.for_tenant(None) if key.is_admin else tenant_store
    return Principal(key=key, store=view, tenant_store=tenant_store)
