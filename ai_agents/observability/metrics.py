"""Prometheus metrics through ``prometheus-client``, safe with several processes.

One :class:`Metrics` per API app or worker process, with its own registry (several apps
in one process, as in tests, never share counters). Two modes, chosen by
``prometheus-client`` when it is first imported:

- **single process** (the default): the registry is what a scrape shows, plus the
  standard ``process_*`` metrics of this process;
- **multiprocess**, when ``PROMETHEUS_MULTIPROC_DIR`` names a directory (``ai-agents serve
  --workers N`` sets one up): every process writes its values to files there and a scrape
  answered by ANY worker sums the counters and histograms of all of them (those of
  exited workers too, so counters never go backwards). ``process_*`` gauges are then one
  series per live worker (``pid`` label), refreshed at most every
  :data:`PROCESS_REFRESH_SECONDS` while it serves requests, and at every scrape it answers.
"""

from __future__ import annotations

import contextlib
import glob
import os
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import TypeVar

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
    values,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: Run latency buckets (seconds).
RUN_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
#: How often a worker updates its ``process_*`` gauges in multiprocess mode (seconds).
PROCESS_REFRESH_SECONDS = 5.0

Labels = tuple[tuple[str, str], ...]
#: A gauge read at scrape time: (name, help, labels, value).
GaugeSample = tuple[str, str, Labels, float]
M = TypeVar("M", Counter, Histogram)


# The ``*_created`` series (one extra gauge per counter and histogram series) are off:
# multiprocess mode has none, and both modes expose the same series.
disable_created_metrics()  # type: ignore[no-untyped-call]


def multiprocess_dir() -> str | None:
    """The shared metrics directory when ``prometheus-client`` runs in multiprocess mode."""
    if not getattr(values.ValueClass, "_multiprocess", False):
        return None  # (a directory set after prometheus_client was imported is not used)
    return os.environ.get(MULTIPROC_ENV) or None


def clear_multiprocess_dir(path: str) -> None:
    """Remove the value files of earlier runs (do it before the workers start)."""
    for name in glob.glob(os.path.join(path, "*.db")):
        with contextlib.suppress(FileNotFoundError):
            os.remove(name)


class Metrics:
    """The counters and histograms of one app or worker, exposed in the text format."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.directory = multiprocess_dir()
        self._counters: dict[str, Counter] = {}
        self._histograms: dict[str, Histogram] = {}
        started = Gauge(
            "ai_agents_process_start_time_seconds",
            "Start time of the process (unix; the oldest live worker's in multiprocess mode)",
            registry=self.registry,
            multiprocess_mode="livemin",
        )
        started.set(time.time())
        self._processes: _ProcessGauges | None = None
        if self.directory:
            self._processes = _ProcessGauges(self.registry)
            self._processes.refresh()
        else:
            ProcessCollector(registry=self.registry)

    # --- generic ------------------------------------------------------------------------

    def inc(self, name: str, text: str, labels: Labels = (), value: float = 1.0) -> None:
        """Add *value* to the counter *name* (``..._total``) of these *labels*."""
        counter = self._counters.get(name)
        if counter is None:
            counter = self._counters[name] = Counter(
                name, text, [k for k, _ in labels], registry=self.registry
            )
        _labelled(counter, name, labels).inc(value)

    def observe(
        self,
        name: str,
        text: str,
        value: float,
        labels: Labels = (),
        buckets: Sequence[float] = (),
    ) -> None:
        """Record *value* in the histogram *name* (buckets fixed by its first use)."""
        histogram = self._histograms.get(name)
        if histogram is None:
            histogram = self._histograms[name] = Histogram(
                name,
                text,
                [k for k, _ in labels],
                registry=self.registry,
                buckets=tuple(buckets or RUN_BUCKETS),
            )
        _labelled(histogram, name, labels).observe(value)

    # --- domain helpers -----------------------------------------------------------------

    def http_request(self, method: str, route: str, status: int, seconds: float) -> None:
        labels = (("method", method), ("route", route), ("status", str(status)))
        self.inc("ai_agents_http_requests_total", "HTTP requests answered", labels)
        self.observe(
            "ai_agents_http_request_duration_seconds",
            "HTTP request latency",
            seconds,
            (("method", method), ("route", route)),
            HTTP_BUCKETS,
        )
        if self._processes is not None:
            self._processes.refresh(every=PROCESS_REFRESH_SECONDS)

    def run_finished(
        self,
        *,
        mode: str,
        provider: str,
        model: str,
        seconds: float,
        input_tokens: int,
        output_tokens: int,
        cost: float,
    ) -> None:
        labels = (("mode", mode), ("provider", provider), ("model", model))
        self.inc("ai_agents_runs_total", "Runs completed", labels)
        pm = (("provider", provider), ("model", model))
        for direction, count in (("input", input_tokens), ("output", output_tokens)):
            self.inc(
                "ai_agents_tokens_total",
                "Tokens used by runs",
                (*pm, ("direction", direction)),
                count,
            )
        self.inc("ai_agents_cost_usd_total", "Cost of runs (USD)", pm, cost)
        self.observe("ai_agents_run_duration_seconds", "Run latency", seconds, (("mode", mode),))

    def run_failed(self, *, mode: str, code: str) -> None:
        self.inc(
            "ai_agents_run_errors_total",
            "Runs that ended in an error",
            (("mode", mode), ("code", code)),
        )

    def job_finished(self, *, outcome: str, kind: str, priority: str, seconds: float) -> None:
        """A background job attempt ended (worker): ``succeeded``, ``retrying``, ..."""
        labels = (("outcome", outcome), ("kind", kind), ("priority", priority))
        self.inc("ai_agents_jobs_total", "Background job attempts, by how they ended", labels)
        self.observe(
            "ai_agents_job_duration_seconds",
            "Background job attempt latency",
            seconds,
            (("kind", kind),),
        )
        if self._processes is not None:
            self._processes.refresh(every=PROCESS_REFRESH_SECONDS)

    # --- exposition ---------------------------------------------------------------------

    def collector(self) -> Collector:
        """What a scrape shows: this registry, or every worker's values in multiprocess mode."""
        if self.directory is None:
            return self.registry
        assert self._processes is not None
        self._processes.refresh()
        forget_dead_processes(self.directory)
        merged = CollectorRegistry()
        MultiProcessCollector(merged, path=self.directory)  # type: ignore[no-untyped-call]
        return merged

    def render(self, gauges: Iterable[GaugeSample] = ()) -> str:
        """The Prometheus text format, with *gauges* read at scrape time appended."""
        text = generate_latest(self.collector()).decode()
        families: dict[str, GaugeMetricFamily] = {}
        for name, help_text, labels, value in gauges:
            family = families.get(name)
            if family is None:
                family = families[name] = GaugeMetricFamily(
                    name, help_text, labels=[k for k, _ in labels]
                )
            family.add_metric([v for _, v in labels], value)
        if families:
            text += generate_latest(_Fixed(list(families.values()))).decode()
        return text


def _labelled(metric: M, name: str, labels: Labels) -> M:
    if not labels:
        return metric
    try:
        return metric.labels(**dict(labels))
    except ValueError as exc:
        raise ValueError(f"metric {name}: labels {[k for k, _ in labels]}: {exc}") from exc


class _Fixed(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterable[Metric]:
        return self.families


class _ProcessGauges:
    """This process's ``process_*`` metrics as multiprocess gauges (one series per pid)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry
        self._source = ProcessCollector(registry=None)
        self._gauges: dict[str, Gauge] = {}
        self._last = float("-inf")

    def refresh(self, *, every: float = 0.0) -> None:
        now = time.monotonic()
        if now - self._last < every:
            return
        self._last = now
        for family in self._source.collect():
            for sample in family.samples:
                gauge = self._gauges.get(sample.name)
                if gauge is None:
                    gauge = self._gauges[sample.name] = Gauge(
                        sample.name,
                        family.documentation,
                        registry=self._registry,
                        multiprocess_mode="liveall",
                    )
                gauge.set(sample.value)


def forget_dead_processes(path: str) -> None:
    """Drop the live-gauge files of processes that are gone (a crashed or replaced worker):
    their ``process_*`` series disappear; their counters stay in the sums."""
    for name in glob.glob(os.path.join(path, "gauge_live*_*.db")):
        pid_text = os.path.basename(name)[: -len(".db")].rpartition("_")[2]
        if pid_text.isdigit() and not _alive(int(pid_text)):
            mark_process_dead(int(pid_text), path)  # type: ignore[no-untyped-call]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def multiprocess_directory(workers: int) -> Iterator[str | None]:
    """The shared metrics directory of ``serve --workers N``, set in the environment the
    workers inherit: ``PROMETHEUS_MULTIPROC_DIR`` when given (its old files removed), else,
    for more than one worker, a new temporary directory removed afterwards."""
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        os.makedirs(given, exist_ok=True)
        clear_multiprocess_dir(given)
        yield given
        return
    if workers <= 1:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="ai-agents-metrics-") as made:
        os.environ[MULTIPROC_ENV] = made
        try:
            yield made
        finally:
            os.environ.pop(MULTIPROC_ENV, None)
