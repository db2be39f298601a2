"""The runtime: what every component of one store shares (pools, settings, tenant limits).

The store and the runner both receive it; neither reaches into the other. It creates
the PostgreSQL engine and the Redis client on first use and closes them once.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ai_agents.config import Settings
from ai_agents.db.engine import create_engine
from ai_agents.db.messages import SizeLimits
from ai_agents.db.tables import tenants
from ai_agents.errors import ConfigurationError
from ai_agents.keys import RedisKeys

if TYPE_CHECKING:
    from redis.asyncio import Redis

_TENANT_LIMITS_TTL = 30.0


class Runtime:
    """Engine, Redis client, settings and the per-tenant size limits cache."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.keys = RedisKeys(settings.redis_prefix)
        self._engine: AsyncEngine | None = None
        self._redis: Redis | None = None
        self._tenant_limits: dict[str, tuple[float, SizeLimits]] = {}

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            url = self.settings.database_url
            if not url:
                raise ConfigurationError(
                    "no database configured: pass database_url or set AI_AGENTS_DATABASE_URL "
                    "(or DATABASE_URL) to a PostgreSQL URL"
                )
            self._engine = create_engine(url, self.settings)
        return self._engine

    @property
    def redis(self) -> Redis:
        if self._redis is None:
            from ai_agents.redis_client import connect

            url = self.settings.redis_url
            if not url:
                raise ConfigurationError(
                    "no Redis configured: pass redis_url or set AI_AGENTS_REDIS_URL (or REDIS_URL)"
                )
            self._redis = connect(url, decode_responses=False)
        return self._redis

    @property
    def has_redis(self) -> bool:
        return self._redis is not None

    async def aclose(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None

    # --- tenant size limits -----------------------------------------------------------

    def forget_limits(self, tenant_id: str) -> None:
        self._tenant_limits.pop(tenant_id, None)

    async def size_limits(self, conn: AsyncConnection, tenant_id: str) -> SizeLimits:
        """The tenant's thread/user/total byte limits (cached for 30 s per process)."""
        cached = self._tenant_limits.get(tenant_id)
        now = time.monotonic()
        if cached and now - cached[0] < _TENANT_LIMITS_TTL:
            return cached[1]
        row = (
            await conn.execute(
                select(
                    tenants.c.max_thread_bytes, tenants.c.max_user_bytes, tenants.c.max_total_bytes
                ).where(tenants.c.id == tenant_id)
            )
        ).first()
        limits = SizeLimits(
            thread_bytes=(row and row.max_thread_bytes) or self.settings.max_thread_bytes,
            user_bytes=(row and row.max_user_bytes) or self.settings.max_user_bytes,
            tenant_bytes=row.max_total_bytes if row else None,
        )
        self._tenant_limits[tenant_id] = (now, limits)
        return limits
