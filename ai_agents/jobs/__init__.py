"""The background job queue: agent runs queued by producers and executed by workers.

- :mod:`ai_agents.jobs.queue`: :class:`~ai_agents.jobs.queue.RedisJobQueue` (the producer
  API: enqueue, get_result, cancel), :class:`~ai_agents.jobs.queue.QueueConfig`, ``job_queue``.
- :mod:`ai_agents.jobs.worker`: the consuming side of that queue (claim, heartbeat, settle
  with retry or failure, hand back, transport rebuild), used by ``workers/``.
- :mod:`ai_agents.jobs.records`: :class:`~ai_agents.jobs.records.JobRecord`, its error, JSON.
- :mod:`ai_agents.jobs.rows`: the SQL on the ``jobs`` table.
- :mod:`ai_agents.jobs.tables`: the ``jobs`` table and the job priorities and statuses.
- :mod:`ai_agents.jobs.transport`: the Redis streams that carry job ids to workers.
- :mod:`ai_agents.jobs.announcements`: wakes ``get_result`` waiters when a job finishes.

Nothing is imported here, so that :mod:`ai_agents.db.schema` can load the table alone.
"""
