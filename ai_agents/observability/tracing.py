"""OpenTelemetry tracing: off by default, nothing imported until it is turned on.

Turn it on with ``AI_AGENTS_OTEL=1`` (``ai-agents serve`` and ``ai-agents worker`` then
call :func:`configure_from_env`), or in your own process with :func:`enable` (given a
``TracerProvider``, else the global one). It needs the ``otel`` extra
(``pip install 'ai-agents-platform[otel]'``): the SDK, the OTLP/HTTP exporter and the
instrumentations of the ASGI app (Litestar's middleware), SQLAlchemy, Redis and httpx.

The exporter and the resource follow the standard variables: ``OTEL_TRACES_EXPORTER``
(``otlp``, the default; ``console``; ``none``), ``OTEL_EXPORTER_OTLP_ENDPOINT`` /
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``, ``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``,
``OTEL_TRACES_SAMPLER``; ``OTEL_SDK_DISABLED=true`` keeps everything off. A process that
already set a global ``TracerProvider`` (``opentelemetry-instrument``) keeps it.

The library's own spans (a run, each model call, each tool call) are made in
:mod:`ai_agents.observability.genai`, with the helpers below.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from ai_agents.errors import ConfigurationError

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer, TracerProvider

ENV = "AI_AGENTS_OTEL"
INSTRUMENTATION_NAME = "ai_agents"

log = logging.getLogger("ai_agents.observability")

T = TypeVar("T")

_tracer: Tracer | None = None
_provider: TracerProvider | None = None
_configured = False


def enabled() -> bool:
    """True when the library makes spans."""
    return _tracer is not None


def env_enabled() -> bool:
    """The ``otel`` setting (``AI_AGENTS_OTEL`` or ``otel`` in the settings file) is on
    and OpenTelemetry's own ``OTEL_SDK_DISABLED`` is not."""
    from ai_agents.settings import load_settings

    on = load_settings().otel
    return on and os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() != "true"


def require_if_enabled() -> None:
    """Fail now, naming the extra, when ``AI_AGENTS_OTEL`` is on but the SDK is missing."""
    if env_enabled():
        _require()


def _require() -> None:
    try:
        import opentelemetry.sdk  # noqa: F401
    except ImportError as exc:
        raise ConfigurationError(
            f"tracing ({ENV}=1) needs the otel extra: pip install 'ai-agents-platform[otel]' ({exc})"
        ) from exc


def enable(tracer_provider: TracerProvider | None = None) -> None:
    """Make the library's spans with *tracer_provider* (default: the global one)."""
    global _tracer, _provider
    from opentelemetry import trace

    _provider = tracer_provider
    _tracer = (tracer_provider or trace.get_tracer_provider()).get_tracer(INSTRUMENTATION_NAME)


def disable() -> None:
    """Stop making spans (tests)."""
    global _tracer, _provider
    _tracer = _provider = None


def configure_from_env(service_name: str) -> bool:
    """When ``AI_AGENTS_OTEL`` is on: set up the SDK (unless a provider is already set),
    instrument SQLAlchemy, Redis and httpx, and :func:`enable` the library's spans.

    Idempotent; returns whether tracing is on. Call it in each process (after a fork)."""
    global _configured
    if not env_enabled():
        return False
    if _configured:
        return True
    _require()
    from opentelemetry import trace

    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        trace.set_tracer_provider(_sdk_provider(service_name))
    _instrument_libraries()
    enable()
    _configured = True
    log.info("OpenTelemetry tracing on (service %s)", service_name)
    return True


def _sdk_provider(service_name: str) -> TracerProvider:
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    resource = Resource.create({SERVICE_NAME: service_name})
    if os.environ.get("OTEL_SERVICE_NAME"):
        resource = Resource.create()  # the variable wins over our default name
    provider = SdkTracerProvider(resource=resource)
    exporters = os.environ.get("OTEL_TRACES_EXPORTER", "otlp").replace(" ", "").split(",")
    for name in exporters:
        if name == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        elif name == "console":
            provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
        elif name not in ("none", ""):
            raise ConfigurationError(
                f"OTEL_TRACES_EXPORTER={name!r} is not supported (otlp, console or none)"
            )
    return provider


def _instrument_libraries() -> None:
    import sqlalchemy.ext.asyncio
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    from ai_agents.db import engine

    SQLAlchemyInstrumentor().instrument()
    # Our engine module bound create_async_engine when it was imported: bind the
    # instrumented one, so engines created from now on trace their statements.
    engine.create_async_engine = sqlalchemy.ext.asyncio.create_async_engine  # type: ignore[attr-defined]
    RedisInstrumentor().instrument()
    HTTPXClientInstrumentor().instrument()


def asgi_middleware() -> Any:
    """Litestar's OpenTelemetry middleware (a server span per request), for the app."""
    from litestar.plugins.opentelemetry import OpenTelemetryConfig

    return OpenTelemetryConfig(
        tracer_provider=_provider, exclude=[r"/api/v1/health$", r"/api/v1/metrics$"]
    ).middleware


# --- helpers for the library's spans ------------------------------------------------------


def start_span(name: str, attributes: Mapping[str, Any], *, client: bool = False) -> Span | None:
    """A new child of the current span (not made current), or ``None`` when tracing is off."""
    if _tracer is None:
        return None
    from opentelemetry.trace import SpanKind

    kind = SpanKind.CLIENT if client else SpanKind.INTERNAL
    return _tracer.start_span(name, kind=kind, attributes=dict(attributes))


@contextmanager
def current(span: Span | None) -> Iterator[Span | None]:
    """*span* is the current span inside the block; it ends (with the error, if any) after."""
    if span is None:
        yield None
        return
    from opentelemetry.trace import use_span

    with use_span(span, end_on_exit=False, record_exception=False, set_status_on_exception=False):
        try:
            yield span
        except BaseException as exc:
            fail(span, exc)
            raise
        finally:
            span.end()


async def iterate_in(
    span: Span, items: AsyncIterator[T], on_item: Callable[[Span, T], None]
) -> AsyncIterator[T]:
    """Iterate *items* with *span* current while each next item is computed (never
    across a ``yield``, so the caller's context is left as it was); end the span after."""
    from opentelemetry.trace import use_span

    try:
        while True:
            with use_span(
                span, end_on_exit=False, record_exception=False, set_status_on_exception=False
            ):
                try:
                    item = await anext(items)
                except StopAsyncIteration:
                    break
            on_item(span, item)
            yield item
    except GeneratorExit:
        raise
    except BaseException as exc:
        fail(span, exc)
        raise
    finally:
        span.end()
        closing = getattr(items, "aclose", None)
        if closing is not None:
            await closing()


def fail(span: Span, exc: BaseException) -> None:
    """Mark *span* as failed: ``error.type`` is the library's error code, else the type."""
    from opentelemetry.trace import Status, StatusCode

    code = getattr(exc, "code", None)
    span.set_attribute("error.type", code if isinstance(code, str) else type(exc).__qualname__)
    span.set_status(Status(StatusCode.ERROR, str(exc)[:500]))
    if not getattr(exc, "code", None):
        span.record_exception(exc)
