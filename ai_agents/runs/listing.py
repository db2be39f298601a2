"""Run queries the OpenAI-compatible API needs beyond the store's own.

OpenAI pages a thread's runs by run ids (``after``/``before`` name a run of the list,
not an opaque cursor), names the thread's active run when it refuses a second one, and
lets a caller replace a run's metadata. Each query is scoped to the caller's tenant like
every store query (:class:`~ai_agents.db.scope.Scope`): another tenant's run or thread
is not found.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy import select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncEngine

from ai_agents.db.engine import translate_errors
from ai_agents.db.scope import Scope
from ai_agents.db.tables import runs
from ai_agents.errors import NotFoundError
from ai_agents.runs import rows
from ai_agents.runs.records import ACTIVE_STATUSES, RunRecord

_KEY = (runs.c.created_at, runs.c.id)


async def page_runs(
    engine: AsyncEngine,
    scope: Scope,
    thread_id: UUID,
    *,
    limit: int,
    order: str,
    after: UUID | None = None,
    before: UUID | None = None,
) -> tuple[list[RunRecord], bool]:
    """The thread's runs by ``(created_at, id)`` in *order*, strictly after and/or before
    the runs with those ids, and whether more follow the page.

    With only ``before`` the page is the *limit* runs closest to it, in *order*. A cursor
    that is not a run of this thread (of this tenant) is a :class:`NotFoundError`.
    """
    visible = (runs.c.thread_id == thread_id, scope.visible(runs.c.tenant_id))
    query = select(runs).where(*visible)
    descending = order == "desc"
    with translate_errors("page runs"):
        async with engine.connect() as conn:
            for cursor, past in ((after, True), (before, False)):
                if cursor is None:
                    continue
                anchor = (
                    await conn.execute(
                        select(runs.c.created_at, runs.c.id).where(runs.c.id == cursor, *visible)
                    )
                ).first()
                if anchor is None:
                    raise NotFoundError("run", cursor)
                later = tuple_(*_KEY) > tuple_(*anchor)
                earlier = tuple_(*_KEY) < tuple_(*anchor)
                # "after" in a descending list is earlier in time; "before" is later.
                query = query.where(later if past != descending else earlier)
            backwards = before is not None and after is None
            ascending = not descending if not backwards else descending
            columns = [c.asc() if ascending else c.desc() for c in _KEY]
            found = (await conn.execute(query.order_by(*columns).limit(limit + 1))).mappings()
            records = [rows.to_run(r) for r in found.all()]
    items = records[:limit]
    if backwards:
        items.reverse()
    return items, len(records) > limit


async def active_run(engine: AsyncEngine, scope: Scope, thread_id: UUID) -> UUID | None:
    """The run holding the thread (in progress, awaiting tool outputs, cancelling)."""
    query = select(runs.c.id).where(
        runs.c.thread_id == thread_id,
        scope.visible(runs.c.tenant_id),
        runs.c.status.in_(sorted(ACTIVE_STATUSES)),
    )
    with translate_errors("find active run"):
        async with engine.connect() as conn:
            value = (await conn.execute(query.limit(1))).scalar_one_or_none()
    return value if isinstance(value, UUID) else None


async def set_metadata(
    engine: AsyncEngine, scope: Scope, run_id: UUID, metadata: dict[str, Any]
) -> RunRecord:
    """Replace the run's metadata (any status: it describes the run, not its turn)."""
    statement = (
        update(runs)
        .where(runs.c.id == run_id, scope.visible(runs.c.tenant_id))
        .values(metadata=metadata)
        .returning(*runs.c)
    )
    with translate_errors("update run metadata"):
        async with engine.begin() as conn:
            row = (await conn.execute(statement)).mappings().first()
    if row is None:
        raise NotFoundError("run", run_id)
    return rows.to_run(row)
