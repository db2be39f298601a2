"""Threads that no agent answers yet, and moving a thread to another agent.

Every thread row names an agent (``threads.agent_id`` is NOT NULL: the run's claim, the
job queue and the usage totals read it). An OpenAI thread has no assistant until a run
names one, so a thread created without an agent belongs to its tenant's **placeholder
agent**: one inactive agent per tenant (``created_by`` = :data:`PLACEHOLDER_CREATOR`),
which cannot run and is listed nowhere an active agent is. A run names its agent by
moving the thread to it first (:func:`assign_agent`); the thread keeps that agent until
the next move, so ``/api/v1`` runs on it continue with the last agent that answered.
"""

from __future__ import annotations

from uuid import UUID

from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ai_agents.db import agents as agent_rows
from ai_agents.db.scope import Scope
from ai_agents.db.tables import runs, threads
from ai_agents.errors import NotFoundError, ThreadBusyError, UsageError

#: ``created_by`` of the placeholder agents (one per tenant).
PLACEHOLDER_CREATOR = "ai_agents:unassigned-threads"
_ACTIVE = ("in_progress", "requires_action", "cancelling")


async def placeholder_agent(conn: AsyncConnection, tenant_id: str) -> UUID:
    """The tenant's placeholder agent, created on first use (once, under a lock)."""
    return await agent_rows.system_agent(
        conn,
        tenant_id,
        {
            "name": "unassigned threads",
            "role": "Holds the threads no agent has answered yet; it never runs.",
            "provider": "none",
            "model": "none",
            "is_active": False,
            "created_by": PLACEHOLDER_CREATOR,
        },
    )


async def assign_agent(
    conn: AsyncConnection, scope: Scope, thread_id: UUID, agent_id: UUID
) -> None:
    """Move the thread to *agent_id* (active, of the thread's tenant). A run holding the
    thread (in progress, waiting for tool outputs, cancelling) is a ``ThreadBusyError``:
    it keeps the agent it started with, and so does the thread."""
    thread = (
        await conn.execute(
            select(threads.c.tenant_id, threads.c.agent_id)
            .where(threads.c.id == thread_id, scope.visible(threads.c.tenant_id))
            .with_for_update()
        )
    ).first()
    if thread is None:
        raise NotFoundError("thread", thread_id)
    agent = await agent_rows.get_agent(conn, scope, agent_id)
    if agent.tenant_id != thread.tenant_id:
        raise NotFoundError("agent", agent_id)  # another tenant's: as if it did not exist
    if not agent.is_active:
        raise UsageError(f"agent {agent_id} is deactivated; reactivate it to run")
    if thread.agent_id == agent_id:
        return
    busy = (
        await conn.execute(
            select(runs.c.id)
            .where(runs.c.thread_id == thread_id, runs.c.status.in_(_ACTIVE))
            .limit(1)
        )
    ).first()
    if busy is not None:
        raise ThreadBusyError(thread_id)
    await conn.execute(
        update(threads)
        .where(threads.c.id == thread_id)
        .values(agent_id=agent_id, updated_at=text("now()"))
    )
