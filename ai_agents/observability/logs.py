"""JSON log lines with the ids of what is being done (request, run, job).

:func:`log_fields` binds ids to the current context (an HTTP request, a run's task, a
job's task, and every task they start); :class:`JsonFormatter` writes each record as one
JSON object with those ids, the record's own ``extra`` fields, and the trace and span
ids when tracing is on. ``ai-agents serve --log-json``, ``ai-agents worker --log-json``
or ``AI_AGENTS_LOG_FORMAT=json`` for either turn it on.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType
from typing import Any

ENV = "AI_AGENTS_LOG_FORMAT"

_fields: ContextVar[Mapping[str, str]] = ContextVar(
    "ai_agents_log_fields", default=MappingProxyType({})
)


@contextmanager
def log_fields(**fields: str | None) -> Iterator[None]:
    """Add *fields* (``None`` ones skipped) to every log line written inside the block."""
    token = _fields.set({**_fields.get(), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _fields.reset(token)


def current_fields() -> Mapping[str, str]:
    """The ids bound to the current context."""
    return _fields.get()


def json_requested(flag: bool = False) -> bool:
    """*flag* (a ``--log-json`` option), or ``AI_AGENTS_LOG_FORMAT=json``."""
    from ai_agents.settings import load_settings

    return flag or load_settings().log_format == "json"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the context's ids
    (``request_id``, ``run_id``, ``job_id``...), the record's extra fields, and
    ``trace_id``/``span_id`` inside a span."""

    _STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        data.update(_fields.get())
        data.update(_trace_ids())
        data.update({k: v for k, v in record.__dict__.items() if k not in self._STANDARD})
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


def _trace_ids() -> dict[str, str]:
    from ai_agents.observability import tracing

    if not tracing.enabled():
        return {}
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return {}
    return {"trace_id": f"{context.trace_id:032x}", "span_id": f"{context.span_id:016x}"}


def use_json_logs() -> None:
    """Format the root logger's handlers (the CLI's stderr handler) as JSON."""
    for handler in logging.getLogger().handlers:
        handler.setFormatter(JsonFormatter())


def uvicorn_log_config(level: str) -> dict[str, Any]:
    """uvicorn's ``log_config`` writing JSON lines: its own loggers and the app's (root),
    in every worker process."""
    formatter = f"{__name__}.{JsonFormatter.__name__}"
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    loud = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": formatter}},
        "handlers": {"json": handler},
        "loggers": {
            "uvicorn": {"handlers": ["json"], "level": loud, "propagate": False},
            "uvicorn.error": {"level": loud},
            "uvicorn.access": {"handlers": ["json"], "level": loud, "propagate": False},
        },
        "root": {"handlers": ["json"], "level": loud},
    }
