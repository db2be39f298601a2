"""Agent rows: create, read, update, list, deactivate, delete."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy import and_, delete, func, insert, or_, select, tuple_, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from ai_agents.db.scope import Scope
from ai_agents.db.tables import agents
from ai_agents.definition import AgentDefinition
from ai_agents.errors import NotFoundError
from ai_agents.records import AgentRecord, Page, decode_time_cursor, encode_cursor

DEFINITION_FIELDS = ("name", "role", "goal", "constraints", "personality", "examples", "tools")
CONFIG_FIELDS = (
    "provider",
    "model",
    "fallbacks",
    "memory_strategy",
    "memory_config",
    "settings",
    "metadata",
    "client_tools",
    "instructions",
    "assistant_fields",
    "created_by",
    "is_active",
)


#: ``created_by`` of the agents this library makes for itself (the placeholder of
#: unassigned threads, the responses agent): never listed as assistants.
SYSTEM_CREATOR_PREFIX = "ai_agents:"


def is_system_agent(record: AgentRecord) -> bool:
    return (record.created_by or "").startswith(SYSTEM_CREATOR_PREFIX)


async def system_agent(conn: AsyncConnection, tenant_id: str, values: dict[str, Any]) -> UUID:
    """The tenant's agent the library makes for itself with *values* (its ``created_by``
    under :data:`SYSTEM_CREATOR_PREFIX`, its ``is_active``), created on first use: once,
    under a per-tenant lock, so concurrent first uses share it."""
    creator = values["created_by"]
    assert creator.startswith(SYSTEM_CREATOR_PREFIX), creator
    await conn.execute(select(func.pg_advisory_xact_lock(func.hashtext(f"{creator}:{tenant_id}"))))
    found = (
        await conn.execute(
            select(agents.c.id)
            .where(
                agents.c.tenant_id == tenant_id,
                agents.c.created_by == creator,
                agents.c.is_active.is_(values["is_active"]),
            )
            .order_by(agents.c.created_at)
            .limit(1)
        )
    ).scalar()
    if found is not None:
        return found  # type: ignore[no-any-return]
    return (await insert_agent(conn, tenant_id, values)).id


def to_record(row: RowMapping) -> AgentRecord:
    return AgentRecord(
        id=row["id"],
        tenant_id=row["tenant_id"],
        definition=AgentDefinition(
            name=row["name"],
            role=row["role"],
            goal=row["goal"],
            constraints=list(row["constraints"] or []),
            personality=row["personality"],
            examples=list(row["examples"] or []),
            tools=list(row["tools"] or []),
        ),
        provider=row["provider"],
        model=row["model"],
        fallbacks=list(row["fallbacks"] or []),
        memory_strategy=row["memory_strategy"],
        memory_config=dict(row["memory_config"] or {}),
        settings=dict(row["settings"] or {}),
        metadata=dict(row["metadata"] or {}),
        client_tools=list(row["client_tools"] or []),
        instructions=row["instructions"],
        assistant_fields=dict(row["assistant_fields"] or {}),
        created_by=row["created_by"],
        is_active=row["is_active"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


async def insert_agent(
    conn: AsyncConnection, tenant_id: str, values: dict[str, Any]
) -> AgentRecord:
    row = (
        (await conn.execute(insert(agents).values(tenant_id=tenant_id, **values).returning(agents)))
        .mappings()
        .one()
    )
    return to_record(row)


async def get_agent(conn: AsyncConnection, scope: Scope, agent_id: UUID) -> AgentRecord:
    row = (
        (
            await conn.execute(
                select(agents).where(agents.c.id == agent_id, scope.visible(agents.c.tenant_id))
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        raise NotFoundError("agent", agent_id)
    return to_record(row)


async def update_agent(
    conn: AsyncConnection, scope: Scope, agent_id: UUID, values: dict[str, Any]
) -> AgentRecord:
    row = (
        (
            await conn.execute(
                update(agents)
                .where(agents.c.id == agent_id, scope.visible(agents.c.tenant_id))
                .values(**values)
                .returning(agents)
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        raise NotFoundError("agent", agent_id)
    return to_record(row)


async def delete_agent(conn: AsyncConnection, scope: Scope, agent_id: UUID) -> None:
    result = await conn.execute(
        delete(agents).where(agents.c.id == agent_id, scope.visible(agents.c.tenant_id))
    )
    if result.rowcount == 0:
        raise NotFoundError("agent", agent_id)


async def list_agents(
    conn: AsyncConnection,
    scope: Scope,
    *,
    limit: int,
    cursor: str | None,
    include_inactive: bool,
) -> Page[AgentRecord]:
    """Oldest first, keyset-paginated on (created_at, id)."""
    query = select(agents).where(scope.visible(agents.c.tenant_id))
    if not include_inactive:
        query = query.where(agents.c.is_active.is_(True))
    if cursor:
        created_at, ident = decode_time_cursor(cursor)
        query = query.where(
            or_(
                agents.c.created_at > created_at,
                and_(agents.c.created_at == created_at, agents.c.id > ident),
            )
        )
    query = query.order_by(agents.c.created_at, agents.c.id).limit(limit + 1)
    rows = (await conn.execute(query)).mappings().all()
    items = [to_record(r) for r in rows[:limit]]
    next_cursor = (
        encode_cursor(items[-1].created_at, items[-1].id) if len(rows) > limit and items else None
    )
    return Page(items, next_cursor)


async def page_agents(
    conn: AsyncConnection,
    scope: Scope,
    *,
    limit: int,
    order: str,
    after: UUID | None = None,
    before: UUID | None = None,
) -> tuple[list[AgentRecord], bool]:
    """Active agents by (created_at, id) in *order*, strictly after and/or before the
    agents with those ids (OpenAI's list cursors), and whether more follow the page.
    The library's own agents (:data:`SYSTEM_CREATOR_PREFIX`) are left out.

    With only ``before``, the page is the *limit* agents closest to it, in *order*. An
    unknown cursor id is a :class:`NotFoundError`.
    """
    key = (agents.c.created_at, agents.c.id)
    query = select(agents).where(
        scope.visible(agents.c.tenant_id),
        agents.c.is_active.is_(True),
        or_(
            agents.c.created_by.is_(None),
            ~agents.c.created_by.startswith(SYSTEM_CREATOR_PREFIX, autoescape=True),
        ),
    )
    descending = order == "desc"
    for cursor, past in ((after, True), (before, False)):
        if cursor is None:
            continue
        anchor = (
            await conn.execute(
                select(agents.c.created_at, agents.c.id).where(
                    agents.c.id == cursor, scope.visible(agents.c.tenant_id)
                )
            )
        ).first()
        if anchor is None:
            raise NotFoundError("agent", cursor)
        later = tuple_(*key) > tuple_(*anchor)
        earlier = tuple_(*key) < tuple_(*anchor)
        # "after" in a descending list is earlier in time; "before" is later.
        query = query.where(later if past != descending else earlier)
    backwards = before is not None and after is None
    ascending = not descending if not backwards else descending
    columns = [c.asc() if ascending else c.desc() for c in key]
    rows = (await conn.execute(query.order_by(*columns).limit(limit + 1))).mappings().all()
    items = [to_record(r) for r in rows[:limit]]
    if backwards:
        items.reverse()
    return items, len(rows) > limit
