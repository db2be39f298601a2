"""Tool sources: tools an agent gets at run time besides the registered Python tools.

A source (MCP servers configured on the agent, the built-in memory tools) looks at the
agent and thread of a run and returns :class:`~ai_agents.tools.decorator.Tool` objects,
which the turn loop offers and calls exactly like registered tools. A source that fails
to produce its tools must not fail the run: it returns what it can (a dead MCP server
gives no tools, or a tool whose call reports the failure to the model).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ai_agents.records import AgentRecord, ThreadRecord
    from ai_agents.tools.decorator import Tool


class ToolSource(Protocol):
    async def tools_for(self, agent: AgentRecord, thread: ThreadRecord) -> list[Tool]:
        """The tools this source gives *agent* for a run on *thread* (may be empty)."""
        ...

    async def aclose(self) -> None:
        """Release connections the source keeps across runs."""
        ...


async def gather_tools(
    sources: list[ToolSource], agent: AgentRecord, thread: ThreadRecord
) -> list[Tool]:
    """The tools of every source, in order; a later tool never replaces an earlier name."""
    tools: list[Tool] = []
    for source in sources:
        tools.extend(await source.tools_for(agent, thread))
    return tools
