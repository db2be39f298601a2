"""The ``ai-agents worker`` command (also ``python -m workers``): one worker process.

Configuration comes from the environment like every other command
(``AI_AGENTS_DATABASE_URL``, ``AI_AGENTS_REDIS_URL``, ``AI_AGENTS_REDIS_PREFIX``, the
``AI_AGENTS_JOB_*`` queue settings, ``AI_AGENTS_TOOL_MODULES`` for tools), plus:

- ``AI_AGENTS_WORKER_SETUP="package.module:function"``: called with the worker's
  :class:`~ai_agents.store.AgentStore` before it takes jobs (sync or async). This is
  where a deployment registers its own providers (``store.register_provider``), model
  limits or anything else the runs need that environment variables cannot express.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import logging
import signal
import sys
from collections.abc import Callable
from typing import Any

from prometheus_client import start_http_server

from ai_agents.cli import command
from ai_agents.commands._shared import command_settings
from ai_agents.errors import ConfigurationError
from ai_agents.jobs.queue import QueueConfig, RedisJobQueue
from ai_agents.observability import tracing
from ai_agents.observability.logs import ENV as LOG_FORMAT_ENV
from ai_agents.observability.logs import json_requested, use_json_logs
from ai_agents.observability.metrics import Metrics
from ai_agents.settings import load_settings
from ai_agents.store import AgentStore
from ai_agents.workers.pool import WorkerConfig, WorkerPool

SETUP_ENV = "AI_AGENTS_WORKER_SETUP"
METRICS_PORT_ENV = "AI_AGENTS_WORKER_METRICS_PORT"
SERVICE_NAME = "ai-agents-worker"

log = logging.getLogger("workers")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-c", "--concurrency", type=int, default=10, help="jobs run at once (default 10)"
    )
    parser.add_argument(
        "--grace-period",
        type=float,
        default=30.0,
        help="seconds running jobs may take to finish on SIGTERM/SIGINT before they are "
        "handed back to other workers (default 30; a second signal hands back at once)",
    )
    parser.add_argument(
        "--visibility-timeout",
        type=float,
        default=None,
        help="seconds without heartbeat before a job is taken over from its worker "
        "(default AI_AGENTS_JOB_VISIBILITY_TIMEOUT or 60; all workers must agree)",
    )
    parser.add_argument(
        "--poll-interval", type=float, default=1.0, help="longest wait for work per read"
    )
    parser.add_argument("--burst", action="store_true", help="drain the queue, then exit")
    parser.add_argument("--name", help="worker name (default host:pid:random)")
    parser.add_argument(
        "--log-json",
        action="store_true",
        help=f"log one JSON object per line, with job fields (or {LOG_FORMAT_ENV}=json)",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help=f"serve Prometheus metrics on this port (default {METRICS_PORT_ENV} or none)",
    )
    parser.add_argument(
        "--metrics-host",
        default="127.0.0.1",
        help="interface of the metrics port (default 127.0.0.1; 0.0.0.0 for every one)",
    )


@command("worker", "run background jobs (agent runs queued with enqueue_run)", configure)
def worker_command(args: argparse.Namespace) -> int:
    # Every setting is checked now: a typo'd value stops the worker with one line.
    settings = load_settings()
    if json_requested(args.log_json):
        use_json_logs()
    tracing.configure_from_env(SERVICE_NAME)
    metrics = None
    port = args.metrics_port if args.metrics_port is not None else settings.worker_metrics_port
    if port is not None:
        # The worker's own values (not those of a PROMETHEUS_MULTIPROC_DIR it may share).
        metrics = Metrics()
        start_http_server(port, args.metrics_host, registry=metrics.registry)
        log.info("worker metrics on http://%s:%d/metrics", args.metrics_host, port)
    config = WorkerConfig(
        concurrency=args.concurrency,
        grace_period=args.grace_period,
        burst=args.burst,
        poll_interval=args.poll_interval,
        name=args.name,
    )
    return int(
        asyncio.run(serve(config, visibility_timeout=args.visibility_timeout, metrics=metrics))
    )


async def serve(
    config: WorkerConfig, *, visibility_timeout: float | None = None, metrics: Metrics | None = None
) -> int:
    """Run one worker pool until SIGTERM/SIGINT (or drained, in burst mode)."""
    settings = await asyncio.to_thread(command_settings)
    async with AgentStore(settings=settings) as store:
        await run_setup(store)
        queue = RedisJobQueue(store, QueueConfig.from_env(visibility_timeout=visibility_timeout))
        store.use_job_queue(queue)
        pool = WorkerPool(store, config, queue=queue, metrics=metrics)
        loop = asyncio.get_running_loop()
        signals = 0

        def on_signal() -> None:
            nonlocal signals
            signals += 1
            pool.stop(now=signals > 1)

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal)
        try:
            await pool.run()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
    return 0


def load_setup(spec: str) -> Callable[[AgentStore], Any]:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ConfigurationError(
            f"{SETUP_ENV} must look like 'package.module:function', got {spec!r}"
        )
    try:
        function = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(f"{SETUP_ENV}={spec!r} cannot be loaded: {exc}") from exc
    if not callable(function):
        raise ConfigurationError(f"{SETUP_ENV}={spec!r} is not callable")
    return function  # type: ignore[no-any-return]


async def run_setup(store: AgentStore) -> None:
    """Call the ``AI_AGENTS_WORKER_SETUP`` function, if any, with the worker's store."""
    spec = (load_settings().worker_setup or "").strip()
    if spec:
        result = load_setup(spec)(store)
        if inspect.isawaitable(result):
            await result


def main(argv: list[str] | None = None) -> int:
    """``python -m workers``: the ``worker`` subcommand of ``ai-agents``."""
    from ai_agents.cli import main as cli_main

    return cli_main(["worker", *(sys.argv[1:] if argv is None else argv)])
