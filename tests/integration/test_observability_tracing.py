"""OpenTelemetry spans of a run (issue 15, item 3): one ``invoke_agent`` span, a ``chat``
span per model call with its token usage and an ``execute_tool`` span per tool call,
with the GenAI semantic conventions' attributes; exported to the SDK's in-memory
exporter. Over HTTP the run's span joins the request's trace."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from dataclasses import replace

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from ai_agents import AgentDefinition, AgentStore
from ai_agents.api.testing import running_api
from ai_agents.config import Settings
from ai_agents.errors import ProviderError
from ai_agents.observability import tracing
from ai_agents.observability.logs import JsonFormatter
from ai_agents.providers.base import ProviderResponse, Usage
from ai_agents.providers.registry import ModelLimits, get_registry
from ai_agents.response import DoneEvent
from ai_agents.testing import FunctionProvider, ScriptedProvider, call, calls
from ai_agents.tools.decorator import tool
from ai_agents.tools.registry import ToolRegistry

MODEL = "traced"
USAGE = Usage(11, 7)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.enable(provider)
    try:
        yield exporter
    finally:
        tracing.disable()
        provider.shutdown()


@pytest.fixture
def tools() -> ToolRegistry:
    registry = ToolRegistry()

    @tool(registry=registry)
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    @tool(registry=registry)
    def explode() -> str:
        """Always fails."""
        raise RuntimeError("boom")

    return registry


@pytest.fixture
def model() -> None:
    get_registry().register(
        "scripted", MODEL, ModelLimits(100_000, 1000, 100_000, 100_000_000, True, False, 1.0, 2.0)
    )


async def _thread(store: AgentStore, provider: object, tools: list[str]) -> object:
    store.register_provider("scripted", provider)  # type: ignore[arg-type]
    agent = await store.create_agent(
        AgentDefinition(name="Calculator", role="You add.", tools=tools),
        provider="scripted",
        model=MODEL,
    )
    return await store.create_thread(agent)


def _named(spans: list[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


@pytest.mark.parametrize("stream", [False, True])
async def test_a_run_with_one_tool_call_makes_the_genai_spans(
    store: AgentStore,
    tools: ToolRegistry,
    model: None,
    spans: InMemorySpanExporter,
    stream: bool,
) -> None:
    store.use_tools(tools)
    provider = ScriptedProvider(
        [
            replace(calls(call("add", a=2, b=3)), usage=USAGE),
            ProviderResponse(content="Five.", usage=USAGE),
        ]
    )
    thread = await _thread(store, provider, ["add"])
    if stream:
        done = [
            e
            async for e in store.stream(thread, "2 + 3?")  # type: ignore[arg-type]
            if isinstance(e, DoneEvent)
        ]
        run_id = done[0].response.run_id
    else:
        answer = await store.run(thread, "2 + 3?")  # type: ignore[arg-type]
        run_id = answer.run_id
    finished = list(spans.get_finished_spans())

    [run] = _named(finished, "invoke_agent Calculator")
    chats = _named(finished, f"chat {MODEL}")
    [tool_span] = _named(finished, "execute_tool add")
    assert len(chats) == 2 and len(finished) == 4, [s.name for s in finished]
    assert run.context is not None and run.parent is None
    assert {s.context.trace_id for s in finished if s.context} == {run.context.trace_id}
    for child in (*chats, tool_span):
        assert child.parent is not None and child.parent.span_id == run.context.span_id

    attrs = dict(run.attributes or {})
    assert attrs["gen_ai.operation.name"] == "invoke_agent"
    assert attrs["gen_ai.agent.name"] == "Calculator"
    assert attrs["gen_ai.conversation.id"] == str(thread)
    assert attrs["gen_ai.provider.name"] == "scripted" and attrs["gen_ai.request.model"] == MODEL
    assert attrs["ai_agents.run.id"] == str(run_id)
    assert attrs["gen_ai.usage.input_tokens"] == 22 and attrs["gen_ai.usage.output_tokens"] == 14
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)

    first, second = sorted(chats, key=lambda s: s.start_time or 0)
    for span, finish in ((first, "tool_calls"), (second, "stop")):
        attrs = dict(span.attributes or {})
        assert span.kind is SpanKind.CLIENT
        assert attrs["gen_ai.operation.name"] == "chat"
        assert attrs["gen_ai.provider.name"] == attrs["gen_ai.system"] == "scripted"
        assert attrs["gen_ai.request.model"] == attrs["gen_ai.response.model"] == MODEL
        assert attrs["gen_ai.usage.input_tokens"] == 11
        assert attrs["gen_ai.usage.output_tokens"] == 7
        assert attrs["gen_ai.response.finish_reasons"] == (finish,)
    # The tool ran between the two model calls, inside the run.
    assert first.end_time and tool_span.start_time and first.end_time <= tool_span.start_time
    attrs = dict(tool_span.attributes or {})
    assert attrs["gen_ai.operation.name"] == "execute_tool"
    assert attrs["gen_ai.tool.name"] == "add" and attrs["gen_ai.tool.type"] == "function"
    assert attrs["gen_ai.tool.call.id"] == provider.requests[1].messages[-1].tool_call_id
    assert all(s.status.status_code is not StatusCode.ERROR for s in finished)


async def test_failures_mark_their_spans(
    store: AgentStore, tools: ToolRegistry, model: None, spans: InMemorySpanExporter
) -> None:
    store.use_tools(tools)
    provider = ScriptedProvider([calls(call("explode")), "It failed."], usage=USAGE)
    thread = await _thread(store, provider, ["explode"])
    await store.run(thread, "go")  # type: ignore[arg-type]
    [tool_span] = _named(list(spans.get_finished_spans()), "execute_tool explode")
    assert tool_span.status.status_code is StatusCode.ERROR
    assert (tool_span.attributes or {})["error.type"] == "tool_error"
    spans.clear()

    def refuse(request: object) -> str:
        raise ProviderError("the vendor refused", provider="scripted", status=400)

    thread = await _thread(store, FunctionProvider(refuse), [])
    with pytest.raises(ProviderError):
        await store.run(thread, "go")  # type: ignore[arg-type]
    finished = list(spans.get_finished_spans())
    [chat] = _named(finished, f"chat {MODEL}")
    [run] = _named(finished, "invoke_agent Calculator")
    for span in (chat, run):
        assert span.status.status_code is StatusCode.ERROR
        assert (span.attributes or {})["error.type"] == "provider_error"


async def test_over_http_the_run_joins_the_request_trace_and_logs_its_ids(
    settings: Settings, redis_cleanup: None, model: None, spans: InMemorySpanExporter
) -> None:
    logs = io.StringIO()
    handler = logging.StreamHandler(logs)
    handler.setFormatter(JsonFormatter())
    run_log = logging.getLogger("ai_agents.run")
    run_log.addHandler(handler)
    level = run_log.level
    run_log.setLevel(logging.INFO)
    try:
        with running_api(settings, providers={"scripted": FunctionProvider(lambda r: "hi")}) as api:
            secret = api.create_key("acme")
            headers = {"Authorization": f"Bearer {secret}", "X-Request-ID": "trace-me-1"}
            async with httpx.AsyncClient(base_url=api.api, headers=headers) as c:
                agent = await c.post(
                    "/agents",
                    json={"name": "Greeter", "role": "You greet.", "provider": "scripted"}
                    | {"model": MODEL},
                )
                assert agent.status_code == 201, agent.text
                thread = (await c.post("/threads", json={"agent_id": agent.json()["id"]})).json()
                r = await c.post(f"/threads/{thread['id']}/runs", json={"input": "hello"})
                assert r.status_code == 200, r.text
                assert r.headers["x-request-id"] == "trace-me-1"
    finally:
        run_log.removeHandler(handler)
        run_log.setLevel(level)
    finished = list(spans.get_finished_spans())
    [run] = _named(finished, "invoke_agent Greeter")
    [server] = [
        s for s in finished if s.kind is SpanKind.SERVER and "/runs" in s.name and s.parent is None
    ]
    assert run.context and server.context and run.context.trace_id == server.context.trace_id
    [line] = [json.loads(x) for x in logs.getvalue().splitlines() if "run finished" in x]
    assert line["request_id"] == "trace-me-1" and line["run_id"] == r.json()["run_id"]
    assert line["trace_id"] == f"{run.context.trace_id:032x}"
