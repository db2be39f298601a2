"""Bearer API keys: who is calling, which tenant they act for, and their rate limit.

Every authenticated handler receives a :class:`Principal` (the Litestar dependency
``principal``). Its :attr:`Principal.store` is the tenant view of the app's store, so
every query a handler makes is scoped to the caller's tenant; an admin key gets the
admin view (all tenants). Another tenant's object is a ``NotFoundError`` (404), never
a 403 that would confirm it exists.

Rate limits are per key, in the same Redis sliding window as provider limits
(:class:`~ai_agents.ratelimit.limiter.RedisRateLimiter`, scope ``("key", key_id)``),
so they hold across every API process. A refused request is a 429 with Retry-After.

Failed authentications are throttled per client address (:class:`FailedAuthThrottle`):
a flood of random keys costs a bounded number of database lookups, then 429s. A key this
process already knows to be valid is never throttled, so clients sharing an address
(behind a NAT or a proxy) with an attacker keep working.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from litestar import Request
from litestar.datastructures import State

from ai_agents.api.config import ApiConfig
from ai_agents.api.errors import ApiError, forbidden, unauthorized
from ai_agents.api.keys import ApiKey, KeyStore
from ai_agents.api.lru import LruCache
from ai_agents.ratelimit.limiter import RateLimits, RedisRateLimiter
from ai_agents.store import AgentStore

_MAX_LIMITERS = 4096
_MAX_ADDRESSES = 10_000


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
            # The limiter's "model" window named ("key", id) is the very Redis key of the
            # key's scope window (``RedisKeys.scope_rpm("key", id)``): limiting that one
            # window, instead of adding a scope window on the same key, checks and trims
            # it once per request instead of twice.
            limiter = RedisRateLimiter(
                self._store.redis,
                self._store.keys,
                provider="key",
                model=str(key.id),
                limits=RateLimits(rpm=rpm),
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


class FailedAuthThrottle:
    """Failed authentications per client address in a sliding window, in this process.

    Once an address has *limit* failures within *window* seconds, :meth:`check` refuses
    it (429, Retry-After: until its oldest failure leaves the window) before any database
    lookup. In-process on purpose: the point is to bound each process's database work,
    and a refusal costs no round trip at all. Addresses are kept in an LRU map.
    """

    def __init__(
        self,
        limit: int,
        window: float,
        *,
        max_addresses: int = _MAX_ADDRESSES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._failures: LruCache[str, deque[float]] = LruCache(max_addresses)

    def _recent(self, address: str, now: float) -> deque[float] | None:
        failures = self._failures.get(address)
        if failures is not None:
            while failures and now - failures[0] >= self.window:
                failures.popleft()
        return failures

    def check(self, address: str) -> None:
        """Raise a 429 ApiError if *address* failed too often lately."""
        if self.limit <= 0:
            return
        now = self._clock()
        failures = self._recent(address, now)
        if failures is None or len(failures) < self.limit:
            return
        retry_after = failures[0] + self.window - now
        raise ApiError(
            429,
            "rate_limited",
            f"too many failed authentications from this address; retry in "
            f"{math.ceil(retry_after)} s with a valid API key",
            details={
                "reason": "failed_authentications",
                "limit": self.limit,
                "window_seconds": self.window,
            },
            retry_after=retry_after,
        )

    def failed(self, address: str) -> None:
        if self.limit <= 0:
            return
        now = self._clock()
        failures = self._recent(address, now)
        if failures is None:
            failures = deque(maxlen=self.limit)
            self._failures.put(address, failures)
        failures.append(now)

    def attempt(self, address: str) -> None:
        """:meth:`check`, then count the attempt as failed until :meth:`forgive` (so that
        concurrent attempts cannot all pass the check before any of them has failed)."""
        self.check(address)
        self.failed(address)

    def forgive(self, address: str) -> None:
        """Take back the failure :meth:`attempt` counted (the key was valid after all)."""
        failures = self._failures.get(address)
        if failures:
            failures.pop()


def client_address(request: Request[Any, Any, Any]) -> str:
    """The caller's address for throttling: IPv4 as is, IPv6 by its /64 network.

    One IPv6 host usually holds a whole /64, so counting single addresses would let it
    rotate through them. Behind a proxy, run uvicorn with ``--forwarded-allow-ips`` so
    this is the real client, not the proxy.
    """
    host = request.client.host if request.client else ""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host or "unknown"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


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
    throttle: FailedAuthThrottle = state.auth_throttle
    address = client_address(request)
    # Only a key this process does not already know costs a lookup: only that is counted.
    # Requests that share a lookup already in flight (a burst with one key on a process
    # that has not met it yet) cost nothing more: they are checked, not counted, until
    # the lookup says whether the key is valid.
    counted = shared = False
    if not keys.known(token):
        shared = keys.lookup_pending(token)
        counted = not shared
    if counted:
        throttle.attempt(address)
    elif shared:
        throttle.check(address)
    try:
        key = await keys.authenticate(token)
    except Exception:
        if counted:
            throttle.forgive(address)  # the database failed, not the client
        raise
    if key is None:
        if not counted:
            throttle.failed(address)
        raise unauthorized("invalid or revoked API key")
    if counted:
        throttle.forgive(address)
    limiter: KeyRateLimiter = state.key_limiter
    await limiter.check(key)
    store: AgentStore = state.store
    tenant_store = store.for_tenant(key.tenant_id)
    view = store.for_tenant(None) if key.is_admin else tenant_store
    return Principal(key=key, store=view, tenant_store=tenant_store)
