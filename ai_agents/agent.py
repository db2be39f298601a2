"""The simple facade (design section 13): an agent with one thread, in two lines.

    agent = Agent(name="Property Assistant", role="You help hosts.", provider="openai",
                  model="gpt-4o", tools=["search_documents"])
    response = await agent.chat("What documents do I have uploaded?")

The first ``chat`` creates the agent and a thread (and, when the Agent made its own
store, migrates the database); later calls continue the same thread. Everything is
persisted exactly as with :class:`AgentStore`; ``agent.thread_id`` and ``agent.agent_id``
let you pick the conversation up again later with the store.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any
from uuid import UUID

from ai_agents.definition import AgentDefinition
from ai_agents.response import AgentResponse, RunEvent
from ai_agents.store import AgentStore


class Agent:
    def __init__(
        self,
        *,
        name: str,
        role: str,
        provider: str,
        model: str,
        goal: str | None = None,
        constraints: Sequence[str] = (),
        personality: dict[str, str] | None = None,
        examples: Sequence[dict[str, str]] = (),
        tools: Sequence[str] = (),
        memory_strategy: str = "last_messages",
        memory_config: dict[str, Any] | None = None,
        settings: dict[str, Any] | None = None,
        user_id: str | None = None,
        store: AgentStore | None = None,
        thread_id: UUID | str | None = None,
    ) -> None:
        self.definition = AgentDefinition(
            name=name,
            role=role,
            goal=goal,
            constraints=list(constraints),
            personality=personality,
            examples=list(examples),
            tools=list(tools),
        )
        self.provider = provider
        self.model = model
        self.memory_strategy = memory_strategy
        self.memory_config = dict(memory_config or {})
        self.settings = dict(settings or {})
        self.user_id = user_id
        self._owns_store = store is None
        self.store = store or AgentStore()
        self.agent_id: UUID | None = None
        self.thread_id: UUID | None = UUID(str(thread_id)) if thread_id else None
        self._ready = asyncio.Lock()

    async def _ensure(self) -> UUID:
        async with self._ready:
            if self.thread_id is not None:
                return self.thread_id
            if self._owns_store:
                await self.store.migrate()
            self.agent_id = await self.store.create_agent(
                self.definition,
                provider=self.provider,
                model=self.model,
                memory_strategy=self.memory_strategy,
                memory_config=self.memory_config,
                settings=self.settings,
            )
            self.thread_id = await self.store.create_thread(self.agent_id, user_id=self.user_id)
            return self.thread_id

    async def chat(self, text: str) -> AgentResponse:
        """Send *text* on the agent's thread and return the answer (the turn is saved)."""
        return await self.store.run(await self._ensure(), text)

    async def stream(self, text: str) -> AsyncIterator[RunEvent]:
        async for event in self.store.stream(await self._ensure(), text):
            yield event

    async def close(self) -> None:
        if self._owns_store:
            await self.store.close()

    async def __aenter__(self) -> Agent:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
