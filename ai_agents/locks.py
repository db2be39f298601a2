"""Serializing runs on one thread: a PostgreSQL advisory lock held for the run.

The lock lives on the run's own connection, so it is released when the run ends, and
also when its process dies (the connection closes): a crashed run never wedges a thread.
The run does all its database work on that same connection, so waiting runs never
starve the lock holder of a pool connection.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal
from uuid import UUID

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ai_agents.db.engine import translate_errors
from ai_agents.errors import ThreadBusyError

BusyPolicy = Literal["enqueue", "reject"]


def lock_key(thread_id: UUID) -> int:
    """A signed 64-bit advisory-lock key derived from the thread id."""
    return int.from_bytes(thread_id.bytes[:8], "big", signed=True)


@asynccontextmanager
async def thread_lock(
    engine: AsyncEngine, thread_id: UUID, policy: BusyPolicy, *, wait_timeout: float
) -> AsyncIterator[AsyncConnection]:
    """Hold the thread's run lock; yield the connection the run must use."""
    key = lock_key(thread_id)
    with translate_errors("thread lock"):
        conn = await engine.connect()
    try:
        with translate_errors("thread lock"):
            if policy == "reject":
                got = (
                    await conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key})
                ).scalar()
                await conn.commit()
                if not got:
                    raise ThreadBusyError(thread_id)
            else:
                await conn.execute(text(f"SET lock_timeout = '{int(wait_timeout * 1000)}ms'"))
                try:
                    await conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
                except DBAPIError as exc:
                    if getattr(exc.orig, "sqlstate", None) == "55P03":  # lock_not_available
                        raise ThreadBusyError(thread_id) from exc
                    raise
                await conn.execute(text("SET lock_timeout = 0"))
                await conn.commit()
        try:
            yield conn
        finally:
            with translate_errors("thread unlock"):
                if conn.in_transaction():
                    await conn.rollback()
                await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                await conn.commit()
    finally:
        await conn.close()
