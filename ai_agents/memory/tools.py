"""Memory the agent keeps: the built-in ``remember``, ``forget`` and ``recall`` tools.

An agent with ``settings.memory_tools: true`` gets three tools on threads that have a
``user_id``; they read and write the ``user_memory`` rows of the thread's tenant and user
(``settings.memory_scope``: ``user``, the default, shares the facts with every agent of
the tenant for that user; ``agent`` keeps them to this agent). A thread without a user
gets no memory tools (there is nobody to remember things about). The facts are put in
the system prompt of the user's later runs (``PgRuns.user_facts``).

Writes are bounded (:class:`MemoryLimits`): key and value lengths, facts per user and
scope, and the user's byte limit (``Settings.max_user_bytes`` or the tenant's), which
counts the user's messages plus every memory fact of the user in the tenant. A write over
a bound raises :class:`MemoryLimitError`, which the model sees as the tool's error; nothing
is saved. The same checks apply to facts written by automatic extraction
(:mod:`ai_agents.memory.extraction`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from uuid import UUID

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from ai_agents.agent_settings import AgentSettings, read_settings
from ai_agents.db import memory as memory_rows
from ai_agents.db.engine import translate_errors
from ai_agents.db.tables import user_memory, user_usage
from ai_agents.errors import AgentsError
from ai_agents.tools.decorator import Tool, build_tool

if TYPE_CHECKING:
    from ai_agents.records import AgentRecord, ThreadRecord
    from ai_agents.runtime import Runtime

__all__ = [
    "MEMORY_TOOL_NAMES",
    "MemoryLimitError",
    "MemoryLimits",
    "MemoryScope",
    "MemoryToolSource",
    "memory_scope_of",
    "write_facts",
]

log = logging.getLogger("ai_agents.memory")

MEMORY_TOOL_NAMES = ("remember", "forget", "recall")


@dataclass(frozen=True, slots=True)
class MemoryLimits:
    """Bounds of what memory tools and extraction may write."""

    #: Longest key (characters).
    max_key_chars: int = 100
    #: Longest value (characters).
    max_value_chars: int = 1_000
    #: Most facts one user may have in one scope (shared, or one agent's).
    max_facts: int = 200
    #: Most facts ``recall`` answers.
    max_recall: int = 50


class MemoryLimitError(ValueError):
    """A memory write over a bound; its message is what the model sees."""


@dataclass(frozen=True, slots=True)
class MemoryScope:
    """Whose facts: the tenant's user, shared (``agent_id`` None) or one agent's own."""

    tenant_id: str
    user_id: str
    agent_id: UUID | None


def memory_scope_of(
    agent: AgentRecord, thread: ThreadRecord, settings: AgentSettings
) -> MemoryScope | None:
    """The scope memory tools/extraction write to for a run (None: the thread has no user)."""
    if not thread.user_id:
        return None
    agent_id = agent.id if settings.memory_scope == "agent" else None
    return MemoryScope(thread.tenant_id, thread.user_id, agent_id)


def _check_fact(key: Any, value: Any, limits: MemoryLimits) -> tuple[str, str]:
    if not isinstance(key, str) or not key.strip():
        raise MemoryLimitError("the memory key must be a non-empty string")
    if not isinstance(value, str) or not value.strip():
        raise MemoryLimitError("the memory value must be a non-empty string")
    key = key.strip()
    if len(key) > limits.max_key_chars:
        raise MemoryLimitError(
            f"the memory key is {len(key)} characters; at most {limits.max_key_chars} allowed"
        )
    if len(value) > limits.max_value_chars:
        raise MemoryLimitError(
            f"the memory value is {len(value)} characters; at most "
            f"{limits.max_value_chars} allowed (store a shorter summary)"
        )
    return key, value


def _size(key: str, value: str | None) -> int:
    return len(key.encode()) + len((value or "").encode())


async def write_facts(
    runtime: Runtime,
    scope: MemoryScope,
    facts: Mapping[str, str],
    limits: MemoryLimits | None = None,
) -> int:
    """Upsert *facts* in *scope*, all or nothing; returns how many were written.

    Raises :class:`MemoryLimitError` (nothing written) when a fact or the result is over
    a bound. Writes of one user are serialized (a transaction advisory lock), so two
    concurrent writers cannot both pass the checks.
    """
    limits = limits or MemoryLimits()
    checked = dict(_check_fact(k, v, limits) for k, v in facts.items())
    if not checked:
        return 0
    with translate_errors("write user memory"):
        async with runtime.engine.begin() as conn:
            await conn.execute(
                text("SELECT pg_advisory_xact_lock(hashtext(:t), hashtext(:u))"),
                {"t": scope.tenant_id, "u": scope.user_id},
            )
            current = await memory_rows.list_values(
                conn, scope.tenant_id, scope.user_id, scope.agent_id
            )
            new_keys = [k for k in checked if k not in current]
            if len(current) + len(new_keys) > limits.max_facts:
                raise MemoryLimitError(
                    f"the user already has {len(current)} remembered facts; at most "
                    f"{limits.max_facts} allowed (forget some first)"
                )
            added = sum(
                _size(k, v) - (_size(k, current[k]) if k in current else 0)
                for k, v in checked.items()
            )
            await _check_user_bytes(runtime, conn, scope, added)
            for key, value in checked.items():
                await memory_rows.set_value(
                    conn, scope.tenant_id, scope.user_id, scope.agent_id, key, value
                )
    return len(checked)


async def _check_user_bytes(
    runtime: Runtime, conn: AsyncConnection, scope: MemoryScope, added: int
) -> None:
    """The user's messages and memory (every scope) must stay within the user byte limit."""
    if added <= 0:
        return
    limit = (await runtime.size_limits(conn, scope.tenant_id)).user_bytes
    messages = (
        await conn.execute(
            select(func.coalesce(func.sum(user_usage.c.total_bytes), 0)).where(
                user_usage.c.tenant_id == scope.tenant_id, user_usage.c.user_id == scope.user_id
            )
        )
    ).scalar_one()
    memory = (
        await conn.execute(
            select(
                func.coalesce(
                    func.sum(
                        func.octet_length(user_memory.c.key)
                        + func.coalesce(func.octet_length(user_memory.c.value), 0)
                    ),
                    0,
                )
            ).where(
                user_memory.c.tenant_id == scope.tenant_id,
                user_memory.c.user_id == scope.user_id,
            )
        )
    ).scalar_one()
    used = int(messages) + int(memory)
    if used + added > limit:
        raise MemoryLimitError(
            f"the user's storage limit ({limit} bytes) would be exceeded: {used} bytes used, "
            f"this adds {added}"
        )


async def forget_fact(runtime: Runtime, scope: MemoryScope, key: str) -> bool:
    """Delete one fact in *scope*; whether it existed."""
    with translate_errors("delete user memory"):
        async with runtime.engine.begin() as conn:
            deleted = await memory_rows.delete_value(
                conn, scope.tenant_id, scope.user_id, scope.agent_id, key.strip()
            )
    return deleted > 0


async def visible_facts(runtime: Runtime, scope: MemoryScope) -> dict[str, str]:
    """The facts a run of *scope* sees: the shared ones, then the agent's own over them."""
    with translate_errors("read user memory"):
        async with runtime.engine.connect() as conn:
            facts = await memory_rows.list_values(conn, scope.tenant_id, scope.user_id, None)
            if scope.agent_id is not None:
                facts.update(
                    await memory_rows.list_values(
                        conn, scope.tenant_id, scope.user_id, scope.agent_id
                    )
                )
    return facts


class MemoryToolSource:
    """:class:`~ai_agents.tools.sources.ToolSource` of the built-in memory tools."""

    def __init__(self, runtime: Runtime, limits: MemoryLimits | None = None) -> None:
        self.runtime = runtime
        self.limits = limits or MemoryLimits()

    async def tools_for(self, agent: AgentRecord, thread: ThreadRecord) -> list[Tool]:
        try:
            settings = read_settings(agent.settings)
        except AgentsError:  # the run itself reports the agent's bad settings
            return []
        if not settings.memory_tools:
            return []
        scope = memory_scope_of(agent, thread, settings)
        if scope is None:
            return []
        return self.tools(scope)

    def tools(self, scope: MemoryScope) -> list[Tool]:
        """The three tools, bound to *scope* (the model cannot name another user)."""
        runtime, limits = self.runtime, self.limits

        async def remember(key: str, value: str) -> str:
            """Remember a durable fact about the user for later conversations (a
            preference, a name, a standing instruction). Saving an existing key replaces
            its value.

            Args:
                key: Short snake_case name of the fact, e.g. favourite_colour.
                value: The fact, in a short sentence or phrase.
            """
            written = await write_facts(runtime, scope, {key: value}, limits)
            return f"Remembered {key.strip()}." if written else "Nothing to remember."

        async def forget(key: str) -> str:
            """Forget a fact about the user that was remembered earlier.

            Args:
                key: The key of the fact to forget.
            """
            if await forget_fact(runtime, scope, key):
                return f"Forgot {key.strip()}."
            return f"Nothing was remembered under {key.strip()!r}."

        async def recall(query: str) -> dict[str, Any]:
            """Look up remembered facts about the user whose key or value contains the
            query (case-insensitive); an empty query lists every fact.

            Args:
                query: Words to look for in the facts' keys and values.
            """
            needle = query.strip().casefold()
            facts = await visible_facts(runtime, scope)
            found = {
                k: v
                for k, v in facts.items()
                if not needle or needle in k.casefold() or needle in v.casefold()
            }
            items = list(found.items())[: limits.max_recall]
            return {"facts": [{"key": k, "value": v} for k, v in items], "count": len(found)}

        return [build_tool(fn) for fn in (remember, forget, recall)]

    async def aclose(self) -> None:
        return None
