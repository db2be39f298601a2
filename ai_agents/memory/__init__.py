"""Memory strategies: which part of a thread's history a run sends to the model."""

from ai_agents.memory.base import (
    LoadPlan,
    MemoryInput,
    MemoryServices,
    MemoryStrategy,
    Prepared,
    get_strategy,
    register_strategy,
    strategy_names,
)

__all__ = [
    "LoadPlan",
    "MemoryInput",
    "MemoryServices",
    "MemoryStrategy",
    "Prepared",
    "get_strategy",
    "register_strategy",
    "strategy_names",
]
