"""ai_agents: persistent, provider-agnostic AI agents on your own PostgreSQL and Redis."""

from ai_agents.agent import Agent
from ai_agents.config import Settings
from ai_agents.definition import AgentDefinition
from ai_agents.errors import (
    AgentsError,
    LimitExceeded,
    NotFoundError,
    ProviderError,
    RunCancelled,
    RunExpired,
    ThreadBusyError,
    ValidationError,
)
from ai_agents.messages import Message, ToolCall
from ai_agents.records import AgentRecord, Page, ThreadRecord, UsageTotals
from ai_agents.response import AgentResponse
from ai_agents.runs import RunRecord, RunStep, ToolOutput
from ai_agents.store import AgentStore
from ai_agents.tools.decorator import ToolContext, tool

__all__ = [
    "Agent",
    "AgentResponse",
    "ToolContext",
    "tool",
    "AgentDefinition",
    "AgentRecord",
    "AgentStore",
    "AgentsError",
    "LimitExceeded",
    "Message",
    "NotFoundError",
    "Page",
    "ProviderError",
    "RunCancelled",
    "RunExpired",
    "RunRecord",
    "RunStep",
    "Settings",
    "ThreadBusyError",
    "ThreadRecord",
    "ToolCall",
    "ToolOutput",
    "UsageTotals",
    "ValidationError",
]
