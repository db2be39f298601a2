"""Cross-thread user memory: (tenant, user, agent, key) -> value, with upsert semantics."""

from __future__ import annotations

from uuid import UUID

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from ai_agents.db.tables import user_memory


def _agent_filter(agent_id: UUID | None):  # type: ignore[no-untyped-def]
    return (
        user_memory.c.agent_id.is_(None) if agent_id is None else user_memory.c.agent_id == agent_id
    )


async def set_value(
    conn: AsyncConnection, tenant_id: str, user_id: str, agent_id: UUID | None, key: str, value: str
) -> None:
    stmt = pg_insert(user_memory).values(
        tenant_id=tenant_id, user_id=user_id, agent_id=agent_id, key=key, value=value
    )
    await conn.execute(
        stmt.on_conflict_do_update(
            constraint="uq_user_memory_key",
            set_={"value": stmt.excluded.value, "updated_at": func.now()},
        )
    )


async def get_value(
    conn: AsyncConnection, tenant_id: str, user_id: str, agent_id: UUID | None, key: str
) -> str | None:
    return (
        await conn.execute(
            select(user_memory.c.value).where(
                user_memory.c.tenant_id == tenant_id,
                user_memory.c.user_id == user_id,
                _agent_filter(agent_id),
                user_memory.c.key == key,
            )
        )
    ).scalar_one_or_none()


async def list_values(
    conn: AsyncConnection, tenant_id: str, user_id: str, agent_id: UUID | None
) -> dict[str, str]:
    rows = (
        await conn.execute(
            select(user_memory.c.key, user_memory.c.value)
            .where(
                user_memory.c.tenant_id == tenant_id,
                user_memory.c.user_id == user_id,
                _agent_filter(agent_id),
            )
            .order_by(user_memory.c.key)
        )
    ).all()
    return {r.key: r.value for r in rows}


async def delete_value(
    conn: AsyncConnection, tenant_id: str, user_id: str, agent_id: UUID | None, key: str | None
) -> int:
    stmt = delete(user_memory).where(
        user_memory.c.tenant_id == tenant_id,
        user_memory.c.user_id == user_id,
        _agent_filter(agent_id),
    )
    if key is not None:
        stmt = stmt.where(user_memory.c.key == key)
    return int((await conn.execute(stmt)).rowcount)
