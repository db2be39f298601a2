"""Observability pieces that need no services: tracing stays optional, JSON log lines,
request ids, the metrics registry and the multiprocess directory of ``serve``."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ai_agents.api.observability import request_id
from ai_agents.errors import ConfigurationError
from ai_agents.observability.logs import JsonFormatter, json_requested, log_fields
from ai_agents.observability.metrics import MULTIPROC_ENV, Metrics, multiprocess_directory
from tests.prometheus_text import sample

ROOT = Path(__file__).resolve().parents[2]

# Runs in a fresh interpreter where the otel extra's packages cannot be imported.
_WITHOUT_EXTRA = textwrap.dedent(
    """
    import importlib.abc, os, sys

    class NoExtra(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name.startswith(("opentelemetry.sdk", "opentelemetry.instrumentation",
                                "opentelemetry.exporter")):
                raise ImportError(f"{name} is not installed")
            return None

    sys.meta_path.insert(0, NoExtra())
    from ai_agents.config import Settings
    from ai_agents.errors import ConfigurationError
    from ai_agents.observability import tracing
    from ai_agents.store import AgentStore
    from ai_agents.api.app import create_app
    import ai_agents.workers.cli

    settings = Settings(database_url="postgresql://u@127.0.0.1:1/x",
                        redis_url="redis://127.0.0.1:1/0")
    create_app(AgentStore(settings=settings))
    loaded = sorted(m for m in sys.modules if m.startswith("opentelemetry.sdk"))
    assert not loaded and not tracing.enabled(), loaded
    os.environ["AI_AGENTS_OTEL"] = "1"
    try:
        create_app(AgentStore(settings=settings))
    except ConfigurationError as exc:
        print("refused:", exc.message)
    """
)


def test_tracing_is_optional_and_asks_for_the_extra_when_turned_on() -> None:
    env = {k: v for k, v in os.environ.items() if k != "AI_AGENTS_OTEL"}
    result = subprocess.run(
        [sys.executable, "-c", _WITHOUT_EXTRA],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "refused: tracing (AI_AGENTS_OTEL=1) needs the otel extra" in result.stdout


def test_json_lines_carry_the_context_ids_and_the_record_fields() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("tests.observability")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        with log_fields(request_id="r-1", run_id=None), log_fields(job_id="j-1"):
            logger.info("inside %s", "block", extra={"outcome": "succeeded"})
        logger.info("after")
    finally:
        logger.removeHandler(handler)
    inside, after = (json.loads(line) for line in stream.getvalue().splitlines())
    assert inside["message"] == "inside block" and inside["level"] == "INFO"
    assert inside["request_id"] == "r-1" and inside["job_id"] == "j-1"
    assert inside["outcome"] == "succeeded" and "run_id" not in inside
    assert "request_id" not in after and "job_id" not in after


def test_log_format_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AI_AGENTS_LOG_FORMAT", raising=False)
    assert not json_requested() and json_requested(True)
    monkeypatch.setenv("AI_AGENTS_LOG_FORMAT", "JSON")
    assert json_requested()
    monkeypatch.setenv("AI_AGENTS_LOG_FORMAT", "yaml")
    with pytest.raises(ConfigurationError, match="AI_AGENTS_LOG_FORMAT must be"):
        json_requested()


def test_request_ids_are_echoed_only_when_plain() -> None:
    def scope(value: bytes) -> dict[str, object]:
        return {"headers": [(b"x-request-id", value)]}

    assert request_id(scope(b"abc-123:x.y_z")) == "abc-123:x.y_z"  # type: ignore[arg-type]
    for hostile in (b"a b", b"x\r\nSet-Cookie: 1", b"x" * 129, b""):
        made = request_id(scope(hostile))  # type: ignore[arg-type]
        assert len(made) == 32 and made != hostile.decode(errors="replace")


def test_metrics_render_counters_histograms_and_gauges() -> None:
    metrics = Metrics()
    other = Metrics()  # its own registry: nothing shared between apps
    for _ in range(3):
        metrics.http_request("GET", "/api/v1/health", 200, 0.003)
    metrics.run_finished(
        mode="sync",
        provider="p",
        model="m",
        seconds=0.2,
        input_tokens=5,
        output_tokens=2,
        cost=0.5,
    )
    gauges = [("ai_agents_queue_depth", "Jobs", (("priority", "high"),), 4.0)]
    text = metrics.render(gauges)
    assert sample(text, "ai_agents_http_requests_total", route="/api/v1/health") == 3
    assert sample(text, "ai_agents_http_request_duration_seconds_bucket", le="0.005") == 3
    assert sample(text, "ai_agents_tokens_total", direction="output") == 2
    assert sample(text, "ai_agents_cost_usd_total", provider="p") == 0.5
    assert sample(text, "ai_agents_queue_depth", priority="high") == 4
    assert sample(text, "ai_agents_http_requests_created") is None  # no *_created series
    assert sample(other.render(), "ai_agents_http_requests_total") is None
    with pytest.raises(ValueError, match="ai_agents_runs_total"):
        metrics.inc("ai_agents_runs_total", "x", (("mode", "sync"),))


def test_serve_gets_a_temporary_metrics_directory_for_several_workers(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(MULTIPROC_ENV, raising=False)
    with multiprocess_directory(1) as none:
        assert none is None and MULTIPROC_ENV not in os.environ
    with multiprocess_directory(2) as made:
        assert made and os.path.isdir(made) and os.environ[MULTIPROC_ENV] == made
    assert not os.path.exists(made) and MULTIPROC_ENV not in os.environ
    given = tmp_path / "metrics"
    given.mkdir()
    (given / "counter_123.db").write_bytes(b"old")
    (given / "keep.txt").write_text("not ours")
    monkeypatch.setenv(MULTIPROC_ENV, str(given))
    with multiprocess_directory(2) as used:
        assert used == str(given)
    assert sorted(p.name for p in given.iterdir()) == ["keep.txt"]  # old values removed
