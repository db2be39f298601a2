"""API key storage: create (secret shown once), list, revoke, authenticate.

A key is ``aak_`` followed by 43 url-safe characters (256 random bits). Only its hash is
stored: SHA-256, or HMAC-SHA256 with a server pepper when ``AI_AGENTS_API_KEY_PEPPER``
is set. A slow password hash is not needed because the secret is random and long: there
is nothing to brute-force, and a fast hash keeps authentication a single indexed lookup.

Authentication results are cached in-process so a request costs no database round trip:
a valid key for ``key_cache_ttl`` seconds, an unknown or revoked one for
:data:`NEGATIVE_TTL` seconds (a client retrying a bad key costs one lookup, not one per
request). Requests that need the same lookup at the same time (a busy key whose entry
just expired) share one. Both caches are bounded and evict the least recently used entry
first, so a flood of random keys cannot push the valid keys out. Revoking publishes the key id on
Redis (``api_key_revoked_channel``): every API process drops the key and confirms it, and
the revocation returns once every process that received the announcement has confirmed
(at most :data:`REVOCATION_WAIT` seconds), so a revoked key is refused everywhere from
then on; the TTL is only the fallback for an announcement lost while Redis was unreachable. ``last_used_at``
is written at most once a minute per key, not on every request.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from redis.exceptions import RedisError
from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncEngine

from ai_agents.api.lru import LruCache
from ai_agents.db.api_keys_table import api_keys
from ai_agents.db.engine import parse_uuid, translate_errors
from ai_agents.errors import NotFoundError, ValidationError
from ai_agents.pubsub import Subscription
from ai_agents.redis_client import publish
from ai_agents.store import AgentStore

log = logging.getLogger("api.keys")

KEY_PREFIX = "aak_"
#: Scopes a key may carry. ``admin`` manages keys and sees every tenant.
SCOPES = frozenset({"admin"})
#: Most valid keys (and, separately, most failed lookups) remembered per process.
CACHE_SIZE = 10_000
#: Seconds a revocation waits for every API process to confirm it dropped the key.
REVOCATION_WAIT = 2.0
#: Seconds the confirmations of one revocation are kept in Redis.
_ACKS_TTL = 60

#: Seconds an unknown or revoked key is remembered as such (no lookup meanwhile). A
#: secret is random: one that was unknown cannot become valid later.
NEGATIVE_TTL = 30.0
_TOUCH_EVERY = 60.0
_MAX_SECRET = 200


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A stored key (never the secret)."""

    id: UUID
    tenant_id: str
    name: str
    prefix: str
    scopes: tuple[str, ...] = ()
    rate_limit_rpm: int | None = None
    created_at: datetime | None = None
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None

    @property
    def is_admin(self) -> bool:
        return "admin" in self.scopes

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True, slots=True)
class CreatedKey:
    """A new key and its secret: the only time the secret is available."""

    key: ApiKey
    secret: str


@dataclass(slots=True)
class _Cached:
    key: ApiKey
    fetched: float
    touched: float = field(default=0.0)


def _to_key(row: RowMapping) -> ApiKey:
    return ApiKey(
        id=row["id"],
        tenant_id=row["tenant_id"],
        name=row["name"],
        prefix=row["prefix"],
        scopes=tuple(row["scopes"] or ()),
        rate_limit_rpm=row["rate_limit_rpm"],
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
        last_used_at=row["last_used_at"],
    )


def validate_key_fields(
    tenant_id: Any, name: Any, scopes: Sequence[str], rate_limit_rpm: Any
) -> None:
    """Clear errors for fields a caller (CLI or admin endpoint) gives a new key."""
    if not isinstance(tenant_id, str) or not tenant_id.strip():
        raise ValidationError(
            "tenant_id must be a non-empty string", details={"field": "tenant_id"}
        )
    if not isinstance(name, str) or not name.strip():
        raise ValidationError("name must be a non-empty string", details={"field": "name"})
    unknown = sorted(set(scopes) - SCOPES)
    if unknown:
        raise ValidationError(
            f"unknown scope(s): {', '.join(unknown)} (known: {', '.join(sorted(SCOPES))})",
            details={"field": "scopes", "unknown": unknown},
        )
    if rate_limit_rpm is not None and (
        isinstance(rate_limit_rpm, bool)
        or not isinstance(rate_limit_rpm, int)
        or rate_limit_rpm < 0
    ):
        raise ValidationError(
            "rate_limit_rpm must be a non-negative integer (0: unlimited) or null",
            details={"field": "rate_limit_rpm"},
        )


class KeyStore:
    """API keys in PostgreSQL, sharing the store's connection pool."""

    def __init__(
        self,
        store: AgentStore,
        *,
        pepper: str | None = None,
        cache_ttl: float = 5.0,
        cache_size: int = CACHE_SIZE,
    ) -> None:
        self._store = store
        self._pepper = pepper.encode() if pepper else None
        self._ttl = cache_ttl
        self._cache: LruCache[str, _Cached] = LruCache(cache_size)
        #: Digests of secrets found unknown or revoked, with when.
        self._misses: LruCache[str, float] = LruCache(cache_size)
        #: Ids revoked while this process runs: a lookup that raced the revocation must
        #: not cache the key as active again.
        self._revoked: LruCache[UUID, float] = LruCache(cache_size)
        self._revocations = Subscription(
            lambda: store.redis, {store.keys.api_key_revoked_channel: self._forget}
        )
        self._listening = False
        self._confirming: set[asyncio.Task[None]] = set()
        #: Lookups in flight by digest: concurrent requests with one key share one lookup.
        self._pending: dict[str, asyncio.Future[ApiKey | None]] = {}

    @property
    def _engine(self) -> AsyncEngine:
        # Resolved on use: the pool is created in the event loop that serves requests.
        return self._store.engine

    def hash(self, secret: str) -> str:
        data = secret.encode()
        if self._pepper is not None:
            return hmac.new(self._pepper, data, hashlib.sha256).hexdigest()
        return hashlib.sha256(data).hexdigest()

    async def create(
        self,
        *,
        tenant_id: str,
        name: str,
        scopes: Sequence[str] = (),
        rate_limit_rpm: int | None = None,
    ) -> CreatedKey:
        scopes = sorted(set(scopes))
        validate_key_fields(tenant_id, name, scopes, rate_limit_rpm)
        secret = KEY_PREFIX + secrets.token_urlsafe(32)
        values = {
            "tenant_id": tenant_id,
            "name": name,
            "prefix": secret[: len(KEY_PREFIX) + 6],
            "key_hash": self.hash(secret),
            "scopes": scopes,
            "rate_limit_rpm": rate_limit_rpm,
        }
        with translate_errors("create api key"):
            async with self._engine.begin() as conn:
                row = (
                    (await conn.execute(insert(api_keys).values(**values).returning(api_keys)))
                    .mappings()
                    .one()
                )
        return CreatedKey(_to_key(row), secret)

    async def get(self, key_id: UUID | str) -> ApiKey:
        ident = parse_uuid(key_id, "key")
        with translate_errors("get api key"):
            async with self._engine.connect() as conn:
                row = (
                    (await conn.execute(select(api_keys).where(api_keys.c.id == ident)))
                    .mappings()
                    .first()
                )
        if row is None:
            raise NotFoundError("api key", ident)
        return _to_key(row)

    async def list_keys(
        self, *, tenant_id: str | None = None, include_revoked: bool = True
    ) -> list[ApiKey]:
        query = select(api_keys).order_by(api_keys.c.created_at, api_keys.c.id)
        if tenant_id is not None:
            query = query.where(api_keys.c.tenant_id == tenant_id)
        if not include_revoked:
            query = query.where(api_keys.c.revoked_at.is_(None))
        with translate_errors("list api keys"):
            async with self._engine.connect() as conn:
                rows = (await conn.execute(query)).mappings().all()
        return [_to_key(r) for r in rows]

    async def revoke(self, key_id: UUID | str) -> ApiKey:
        """Revoke a key (idempotent: revoking twice keeps the first time)."""
        ident = parse_uuid(key_id, "key")
        with translate_errors("revoke api key"):
            async with self._engine.begin() as conn:
                row = (
                    (
                        await conn.execute(
                            update(api_keys)
                            .where(api_keys.c.id == ident)
                            .values(revoked_at=func.coalesce(api_keys.c.revoked_at, func.now()))
                            .returning(api_keys)
                        )
                    )
                    .mappings()
                    .first()
                )
        if row is None:
            raise NotFoundError("api key", ident)
        self._drop(ident)
        await self._announce_revocation(ident)
        return _to_key(row)

    def listen(self) -> None:
        """Follow revocations announced by other processes (the app starts this)."""
        self._listening = True
        self._revocations.ensure_listening()

    async def aclose(self) -> None:
        self._listening = False
        await self._revocations.aclose()
        confirming = list(self._confirming)
        for task in confirming:
            task.cancel()
        await asyncio.gather(*confirming, return_exceptions=True)

    def _drop(self, key_id: UUID) -> None:
        self._revoked.put(key_id, time.monotonic())
        self._cache.drop_where(lambda cached: cached.key.id == key_id)

    def _forget(self, key_id: UUID) -> None:
        """A revocation announced on Redis: drop the key, then confirm it to the revoker."""
        self._drop(key_id)
        task = asyncio.get_running_loop().create_task(self._confirm(key_id))
        self._confirming.add(task)
        task.add_done_callback(self._confirming.discard)

    async def _confirm(self, key_id: UUID) -> None:
        acks = self._store.keys.api_key_revocation_acks(key_id)
        try:
            async with self._store.redis.pipeline(transaction=False) as pipe:
                pipe.rpush(acks, "1")
                pipe.expire(acks, _ACKS_TTL)
                await pipe.execute()
        except (RedisError, OSError) as exc:  # the revoker stops waiting after a while
            log.debug("revocation of API key %s not confirmed: %s", key_id, exc)

    async def _announce_revocation(self, key_id: UUID) -> None:
        redis = self._store.redis
        acks = self._store.keys.api_key_revocation_acks(key_id)
        try:
            receivers = int(
                await publish(redis, self._store.keys.api_key_revoked_channel, str(key_id))
            )
            confirmed = 0
            deadline = time.monotonic() + REVOCATION_WAIT
            while confirmed < receivers and (left := deadline - time.monotonic()) > 0:
                # Redis takes a fractional timeout; redis-py's stub says int.
                popped = await redis.blpop([acks], timeout=max(left, 0.01))  # type: ignore[arg-type,misc]
                if popped is None:
                    break
                confirmed += 1
            await redis.delete(acks)
        except (RedisError, OSError) as exc:
            log.warning(
                "revocation of API key %s not announced (Redis: %s); other API processes "
                "drop it when their key cache entry expires",
                key_id,
                exc,
            )
            return
        if confirmed < receivers:
            log.warning(
                "revocation of API key %s confirmed by %d of %d API processes within %.0f s; "
                "the others drop it when their key cache entry expires",
                key_id,
                confirmed,
                receivers,
                REVOCATION_WAIT,
            )

    def known(self, secret: str) -> bool:
        """Whether *secret* is a valid key this process remembers (no I/O at all).

        Also while its cache entry is due for the re-verification :meth:`authenticate`
        makes: the entry is dropped at once when the key is revoked (announced or found
        so), and a key that stopped being valid costs that one lookup before it is
        forgotten. So a client's requests in flight when its entry expires are not counted
        as failed authentications of its address (they would be throttled together).
        """
        if not secret.startswith(KEY_PREFIX) or len(secret) > _MAX_SECRET:
            return False
        return self.hash(secret) in self._cache

    def lookup_pending(self, secret: str) -> bool:
        """Whether a lookup of *secret* is in flight: a request now shares it (no I/O)."""
        if not secret.startswith(KEY_PREFIX) or len(secret) > _MAX_SECRET:
            return False
        return self.hash(secret) in self._pending

    async def authenticate(self, secret: str) -> ApiKey | None:
        """The active key with this secret, or None (unknown, malformed or revoked)."""
        if not secret.startswith(KEY_PREFIX) or len(secret) > _MAX_SECRET:
            return None
        if self._listening:
            self._revocations.ensure_listening()  # restarts a listener that died
        digest = self.hash(secret)
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is None or now - cached.fetched > self._ttl:
            missed = self._misses.get(digest)
            if missed is not None and now - missed <= NEGATIVE_TTL:
                return None
            key = await self._shared_lookup(digest)
            if key is None or not key.active or key.id in self._revoked:
                self._cache.pop(digest)
                self._misses.put(digest, now)
                return None
            self._misses.pop(digest)
            cached = _Cached(key, now, cached.touched if cached else 0.0)
            self._cache.put(digest, cached)
        if now - cached.touched > _TOUCH_EVERY:
            cached.touched = now
            await self._touch(cached.key.id)
        return cached.key

    async def _shared_lookup(self, digest: str) -> ApiKey | None:
        """:meth:`_lookup`, once for all the requests that need the same digest meanwhile."""
        pending = self._pending.get(digest)
        if pending is None:
            pending = asyncio.ensure_future(self._lookup(digest))
            self._pending[digest] = pending
            pending.add_done_callback(lambda done: self._settled(digest, done))
        # One waiter cancelled (its client went away) does not cancel the others' lookup.
        return await asyncio.shield(pending)

    def _settled(self, digest: str, done: asyncio.Future[ApiKey | None]) -> None:
        if self._pending.get(digest) is done:
            del self._pending[digest]
        if not done.cancelled():
            done.exception()  # retrieved, even if every waiter was cancelled

    async def _lookup(self, digest: str) -> ApiKey | None:
        with translate_errors("authenticate"):
            async with self._engine.connect() as conn:
                row = (
                    (await conn.execute(select(api_keys).where(api_keys.c.key_hash == digest)))
                    .mappings()
                    .first()
                )
        return _to_key(row) if row is not None else None

    async def _touch(self, key_id: UUID) -> None:
        with translate_errors("touch api key"):
            async with self._engine.begin() as conn:
                await conn.execute(
                    update(api_keys).where(api_keys.c.id == key_id).values(last_used_at=func.now())
                )
