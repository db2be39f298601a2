"""Metrics, traces and structured logs of the API and the workers.

- :mod:`ai_agents.observability.metrics`: Prometheus metrics (``prometheus-client``),
  multiprocess-safe under ``ai-agents serve --workers N``;
- :mod:`ai_agents.observability.tracing`: OpenTelemetry spans (the ``otel`` extra), off
  unless ``AI_AGENTS_OTEL=1`` (or :func:`~ai_agents.observability.tracing.enable`);
- :mod:`ai_agents.observability.logs`: JSON log lines carrying the request, run and job ids.

See ``docs/observability.md``.
"""
