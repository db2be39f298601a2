from __future__ import annotations

import asyncio

import pytest

from ai_agents.errors import ProviderRateLimited
from ai_agents.messages import ToolCall, user
from ai_agents.providers.base import (
    ProviderRequest,
    ProviderResponse,
    ProviderSettings,
    ResponseDone,
    StreamEvent,
    TextDelta,
    ToolCallReady,
    Usage,
)
from ai_agents.testing import (
    FunctionProvider,
    ScriptedProvider,
    ScriptExhausted,
    ScriptNotConsumed,
    call,
    calls,
    text,
)


def req(content: str = "hi", model: str = "test-model") -> ProviderRequest:
    return ProviderRequest(model=model, system_prompt="be brief", messages=[user(content)])


async def collect(events: object) -> list[StreamEvent]:
    return [e async for e in events]  # type: ignore[attr-defined]


async def test_scripted_consumes_in_order_and_records_requests() -> None:
    provider = ScriptedProvider(["first", call("search", query="x"), "last"])
    r1 = await provider.complete(req("a"))
    r2 = await provider.complete(req("b"))
    assert provider.remaining == 1
    r3 = await provider.complete(req("c"))

    assert (r1.content, r1.finish_reason, r1.tool_calls) == ("first", "stop", [])
    assert r2.finish_reason == "tool_calls"
    assert [(c.name, c.arguments) for c in r2.tool_calls] == [("search", {"query": "x"})]
    assert r2.tool_calls[0].id.startswith("call_")
    assert r3.content == "last"
    assert [r.messages[-1].content for r in provider.requests] == ["a", "b", "c"]
    assert provider.last_request.messages[-1].content == "c"
    assert r1.provider == "scripted"
    assert r1.model == "test-model"
    assert r1.usage.estimated
    assert r1.usage.input_tokens > 0
    assert r1.usage.output_tokens > 0
    provider.assert_complete()


async def test_running_out_names_the_script_length() -> None:
    provider = ScriptedProvider(["only"])
    await provider.complete(req())
    with pytest.raises(ScriptExhausted, match=r"request #2 but only 1 response was scripted"):
        await provider.complete(req("again"))
    assert isinstance(ScriptExhausted("x"), AssertionError)
    assert len(provider.requests) == 2


async def test_assert_complete_reports_unused() -> None:
    provider = ScriptedProvider(["a", "b", "c"])
    await provider.complete(req())
    with pytest.raises(ScriptNotConsumed, match=r"2 of 3 scripted responses"):
        provider.assert_complete()
    provider.add("d")
    assert provider.remaining == 3


async def test_exceptions_are_raised_and_consumed() -> None:
    err = ProviderRateLimited("slow down", provider="scripted", status=429, retry_after=2.0)
    provider = ScriptedProvider([err, TimeoutError, "ok"])
    with pytest.raises(ProviderRateLimited) as info:
        await provider.complete(req())
    assert info.value.retry_after == 2.0
    with pytest.raises(TimeoutError):
        await provider.complete(req())
    assert (await provider.complete(req())).content == "ok"
    provider.assert_complete()


async def test_list_of_calls_and_explicit_ids_and_response_items() -> None:
    explicit = ToolCall(id="call_fixed", name="a", arguments={"n": 1})
    given = ProviderResponse(
        content="thinking", tool_calls=[call("b")], usage=Usage(7, 3), provider="", model=""
    )
    provider = ScriptedProvider([[explicit, call("c")], given, calls(call("d"), content="x")])
    r1 = await provider.complete(req())
    assert r1.tool_calls[0] == explicit
    assert r1.tool_calls[1].name == "c"
    assert r1.tool_calls[1].id
    assert r1.tool_calls[0].id != r1.tool_calls[1].id
    r2 = await provider.complete(req())
    assert r2.usage == Usage(7, 3)  # a ProviderResponse keeps its own usage
    assert r2.finish_reason == "tool_calls"
    assert r2.tool_calls[0].id
    assert r2.provider == "scripted"
    assert r2.model == "test-model"
    assert given.tool_calls[0].id == ""  # the scripted object is not mutated
    r3 = await provider.complete(req())
    assert r3.content == "x"
    assert r3.tool_calls[0].name == "d"


async def test_stream_event_order() -> None:
    provider = ScriptedProvider(
        [
            "The quick brown fox jumps over the lazy dog",
            calls(call("a", x=1), call("b"), content="Let me look."),
        ]
    )
    events = await collect(provider.stream(req()))
    deltas = [e for e in events if isinstance(e, TextDelta)]
    assert len(deltas) > 1
    assert "".join(d.text for d in deltas) == "The quick brown fox jumps over the lazy dog"
    assert isinstance(events[-1], ResponseDone)
    assert events[-1].response.content == "The quick brown fox jumps over the lazy dog"

    events = await collect(provider.stream(req()))
    kinds = [e.type for e in events]
    assert kinds[-3:] == ["tool_call", "tool_call", "response_done"]
    assert set(kinds[:-3]) == {"text_delta"}
    done = events[-1]
    assert isinstance(done, ResponseDone)
    ready = [e.call for e in events if isinstance(e, ToolCallReady)]
    assert ready == done.response.tool_calls
    assert len(provider.requests) == 2
    provider.assert_complete()


async def test_stream_raises_scripted_exception_before_any_event() -> None:
    provider = ScriptedProvider([ProviderRateLimited("x", provider="scripted", status=429)])
    events: list[StreamEvent] = []

    async def consume() -> None:
        async for event in provider.stream(req()):
            events.append(event)

    with pytest.raises(ProviderRateLimited):
        await consume()
    assert events == []


async def test_name_from_settings_and_fixed_usage() -> None:
    provider = ScriptedProvider(["a"], settings=ProviderSettings(name="fake"), usage=Usage(1, 2))
    response = await provider.complete(req())
    assert provider.name == "fake"
    assert response.provider == "fake"
    assert response.usage == Usage(1, 2)
    assert ScriptedProvider.supports_native_tools
    assert ScriptedProvider.supports_streaming
    assert provider.native_tools_for("anything")


async def test_bad_script_item_is_a_type_error() -> None:
    provider = ScriptedProvider([42])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="cannot turn 42"):
        await provider.complete(req())


async def test_function_provider_sync_and_async() -> None:
    def answer(request: ProviderRequest) -> str | list[ToolCall]:
        last = request.messages[-1].text
        return [call("lookup", q=last)] if last.startswith("?") else f"echo {last}"

    provider = FunctionProvider(answer)
    assert provider.name == "function"
    r1 = await provider.complete(req("hello"))
    assert r1.content == "echo hello"
    assert r1.finish_reason == "stop"
    r2 = await provider.complete(req("?x"))
    assert r2.finish_reason == "tool_calls"
    assert r2.tool_calls[0].arguments == {"q": "?x"}
    assert r2.tool_calls[0].id
    assert len(provider.requests) == 2

    async def slow(request: ProviderRequest) -> ProviderResponse:
        await asyncio.sleep(0)
        return text(f"{request.model} says hi")

    provider2 = FunctionProvider(slow, settings=ProviderSettings(name="fn"))
    events = await collect(provider2.stream(req(model="m1")))
    assert isinstance(events[-1], ResponseDone)
    assert events[-1].response.content == "m1 says hi"
    assert events[-1].response.provider == "fn"
    assert provider2.last_request.model == "m1"


async def test_function_provider_propagates_errors() -> None:
    def boom(request: ProviderRequest) -> str:
        raise ProviderRateLimited("nope", provider="function", status=429)

    provider = FunctionProvider(boom)
    with pytest.raises(ProviderRateLimited):
        await provider.complete(req())
    assert len(provider.requests) == 1


def test_call_allows_name_as_argument() -> None:
    c = call("rename", name="new")
    assert c.name == "rename"
    assert c.arguments == {"name": "new"}
    assert c.id == ""


async def test_a_provider_that_does_not_record_keeps_no_request() -> None:
    # A benchmark's provider answers thousands of runs: it must not hold every request.
    provider = FunctionProvider(lambda request: "ok", record_requests=False)
    for _ in range(3):
        assert (await provider.complete(req())).content == "ok"
    assert provider.requests == []
    with pytest.raises(AssertionError, match="does not record"):
        _ = provider.last_request
