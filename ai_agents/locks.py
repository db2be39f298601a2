"""Serializing runs on one thread: a PostgreSQL advisory lock held for the run.

The lock lives on the run's own connection, so it is released when the run ends, and
also when its process dies (the connection closes): a crashed run never wedges a thread.
The run does all its database work on that same connection, so waiting runs never
starve the lock holder of a pool connection.

The connection is in autocommit mode: taking the lock, the run's reads and releasing
the lock are one round trip each; the run opens an explicit transaction only to save.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal
from uuid import UUID

import asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ai_agents.db.engine import translate_errors
from ai_agents.db.messages import driver
from ai_agents.errors import ThreadBusyError

BusyPolicy = Literal["enqueue", "reject"]

_TRY_LOCK = "SELECT pg_try_advisory_lock($1)"
# set_config runs first (target lists are evaluated left to right), so the wait for the
# lock is bounded by lock_timeout; the unlock statement puts the setting back.
_LOCK = "SELECT set_config('lock_timeout', $2, false), pg_advisory_lock($1)"
_UNLOCK = "SELECT pg_advisory_unlock($1), set_config('lock_timeout', '0', false)"
_RESET = "SELECT set_config('lock_timeout', '0', false)"


def lock_key(thread_id: UUID) -> int:
    """A signed 64-bit advisory-lock key derived from the thread id."""
    return int.from_bytes(thread_id.bytes[:8], "big", signed=True)


@asynccontextmanager
async def thread_lock(
    engine: AsyncEngine, thread_id: UUID, policy: BusyPolicy, *, wait_timeout: float
) -> AsyncIterator[AsyncConnection]:
    """Hold the thread's run lock; yield the (autocommit) connection the run must use."""
    key = lock_key(thread_id)
    with translate_errors("thread lock"):
        conn = await engine.connect()
    try:
        with translate_errors("thread lock"):
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            apg = await driver(conn)
            if policy == "reject":
                if not await apg.fetchval(_TRY_LOCK, key):
                    raise ThreadBusyError(thread_id)
            else:
                try:
                    await apg.fetchval(_LOCK, key, f"{max(1, int(wait_timeout * 1000))}ms")
                except asyncpg.LockNotAvailableError as exc:
                    await apg.fetchval(_RESET)
                    raise ThreadBusyError(thread_id) from exc
        try:
            yield conn
        finally:
            with translate_errors("thread unlock"):
                if conn.in_transaction():
                    await conn.rollback()
                await conn.execution_options(isolation_level="AUTOCOMMIT")
                await (await driver(conn)).fetchval(_UNLOCK, key)
    finally:
        await conn.close()
