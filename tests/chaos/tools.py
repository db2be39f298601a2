"""The server tool of the chaos run's agent (``AI_AGENTS_TOOL_MODULES=tests.chaos.tools``
in its API servers and workers), so that some turns contain a tool call and its result."""

from __future__ import annotations

from typing import Any

from ai_agents.tools.decorator import tool


@tool(name="chaos_lookup")
async def chaos_lookup(code: str) -> dict[str, Any]:
    """Look up a booking by its code.

    Args:
        code: The booking code
    """
    return {"code": code, "status": "confirmed"}
