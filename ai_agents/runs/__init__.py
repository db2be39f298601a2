"""Runs as durable rows: records, overrides, the turn loop and its PostgreSQL storage.

- :mod:`~ai_agents.runs.records`: ``RunRecord``, ``RunStep``, ``ToolOutput``, statuses.
- :mod:`~ai_agents.runs.overrides`: per-run overrides, validated.
- :mod:`~ai_agents.runs.loop`: the turn loop (prepare, call, tools, persist) and its ports.
- :mod:`~ai_agents.runs.turn`: the state of a turn while it runs, its steps and response.
- :mod:`~ai_agents.runs.gateway`: one model call with rate limits, retries, fallbacks.
- :mod:`~ai_agents.runs.rows` / :mod:`~ai_agents.runs.pg`: the run statements on PostgreSQL.
- :mod:`~ai_agents.runs.supervisor`: leases, cancels and waits of one process's runs.
- :mod:`~ai_agents.runs.structured`: checking answers against a ``response_format``.
"""

from ai_agents.runs.overrides import RunOverrides
from ai_agents.runs.records import RunRecord, RunStatus, RunStep, ToolOutput

__all__ = ["RunOverrides", "RunRecord", "RunStatus", "RunStep", "ToolOutput"]
