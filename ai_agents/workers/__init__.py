"""Background workers: run the agent turns queued with ``store.enqueue_run``.

Start one with ``ai-agents worker`` or ``python -m ai_agents.workers`` (see ``docs/jobs.md``), or
in-process with :class:`WorkerPool` (``WorkerConfig(burst=True)`` drains the queue and
returns, as tests do).
"""

from ai_agents.workers.pool import WorkerConfig, WorkerPool, WorkerStats

__all__ = ["WorkerConfig", "WorkerPool", "WorkerStats"]
