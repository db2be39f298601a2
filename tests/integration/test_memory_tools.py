"""Memory the agent keeps (issue 17 item 4): the ``remember``/``forget``/``recall`` tools
over ``user_memory`` (scoping by tenant, user and optionally agent; size limits) and the
automatic extraction job after a turn (facts written, usage recorded, malformed replies
write nothing)."""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import replace
from typing import Any

import pytest
from redis.exceptions import RedisError
from sqlalchemy import select

from ai_agents import AgentDefinition, AgentStore
from ai_agents.config import Settings
from ai_agents.jobs.queue import QueueConfig, RedisJobQueue
from ai_agents.jobs.records import JobRecord
from ai_agents.jobs.tables import jobs
from ai_agents.memory.extraction import EXTRACTION_PROMPT, parse_facts
from ai_agents.providers.base import Usage
from ai_agents.providers.registry import ModelLimits, get_registry
from ai_agents.testing import ScriptedProvider, call, calls
from ai_agents.workers import WorkerConfig, WorkerPool

ROOMY = ModelLimits(100_000, 1000, 100_000, 100_000_000, True, False, 3.0, 15.0)
CHEAP = ModelLimits(100_000, 1000, 100_000, 100_000_000, True, False, 1.0, 2.0)
MEMORY = {"memory_tools": True}


@pytest.fixture(autouse=True)
def models() -> None:
    get_registry().register("scripted", "roomy", ROOMY)
    get_registry().register("cheap", "mini", CHEAP)


def new_user() -> str:
    return f"user-{uuid.uuid4().hex[:8]}"


async def make_agent(
    store: AgentStore, provider: ScriptedProvider, settings: dict[str, Any] | None = None
) -> uuid.UUID:
    store.register_provider("scripted", provider)
    return await store.create_agent(
        AgentDefinition(name="Keeper", role="You help and remember."),
        provider="scripted",
        model="roomy",
        settings=settings if settings is not None else dict(MEMORY),
    )


def tool_names(provider: ScriptedProvider, index: int) -> set[str]:
    return {t.name for t in provider.requests[index].tools}


# --- the tools ------------------------------------------------------------------------


async def test_remembered_fact_reaches_a_new_thread_of_the_same_user(store: AgentStore) -> None:
    user = new_user()
    provider = ScriptedProvider(
        [
            calls(call("remember", key="favourite_colour", value="green")),
            "Noted, green it is.",
            "Hello again!",
            calls(call("recall", query="colour")),
            "I know nothing about your colours.",
        ]
    )
    agent = await make_agent(store, provider)
    first = await store.create_thread(agent, user_id=user)
    reply = await store.run(first, "My favourite colour is green, remember that.")
    assert {"remember", "forget", "recall"} <= tool_names(provider, 0)
    assert [(r.call.name, r.result, r.is_error) for r in reply.tool_calls] == [
        ("remember", "Remembered favourite_colour.", False)
    ]
    assert await store.get_memory(user, "favourite_colour") == "green"  # user scope: shared
    assert "favourite_colour" not in provider.requests[0].system_prompt

    second = await store.create_thread(agent, user_id=user)
    await store.run(second, "Hi!")
    assert "- favourite_colour: green" in provider.requests[2].system_prompt

    stranger = await store.create_thread(agent, user_id=new_user())  # same tenant and agent
    reply = await store.run(stranger, "What is my favourite colour?")
    assert "favourite_colour" not in provider.requests[3].system_prompt
    assert json.loads(reply.tool_calls[0].result) == {"facts": [], "count": 0}


async def test_recall_finds_and_forget_removes(store: AgentStore) -> None:
    user = new_user()
    await store.set_memory(user, "favourite_colour", "green")
    await store.set_memory(user, "city", "Lyon")
    provider = ScriptedProvider(
        [
            calls(call("recall", query="COLOUR")),
            calls(call("recall", query="lyon")),
            calls(call("forget", key="favourite_colour")),
            calls(call("forget", key="favourite_colour")),
            "Done.",
        ]
    )
    agent = await make_agent(store, provider)
    thread = await store.create_thread(agent, user_id=user)
    reply = await store.run(thread, "What do you know about my colours? Then forget it.")
    results = [r.result for r in reply.tool_calls]
    assert json.loads(results[0]) == {
        "facts": [{"key": "favourite_colour", "value": "green"}],
        "count": 1,
    }
    assert json.loads(results[1]) == {"facts": [{"key": "city", "value": "Lyon"}], "count": 1}
    assert results[2] == "Forgot favourite_colour."
    assert results[3] == "Nothing was remembered under 'favourite_colour'."
    assert await store.get_memory(user, "favourite_colour") is None
    assert await store.list_memory(user) == {"city": "Lyon"}


async def test_same_user_id_in_another_tenant_sees_nothing(store: AgentStore) -> None:
    user = new_user()
    tenant_a = store.for_tenant(f"ta-{uuid.uuid4().hex[:6]}")
    tenant_b = store.for_tenant(f"tb-{uuid.uuid4().hex[:6]}")
    provider = ScriptedProvider(
        [
            calls(call("remember", key="favourite_colour", value="green")),
            "Noted.",
            calls(call("recall", query="")),
            "I know nothing about you.",
        ]
    )
    agent_a = await make_agent(tenant_a, provider)
    await tenant_a.run(await tenant_a.create_thread(agent_a, user_id=user), "Green!")
    assert await tenant_a.get_memory(user, "favourite_colour") == "green"

    agent_b = await make_agent(tenant_b, provider)
    reply = await tenant_b.run(await tenant_b.create_thread(agent_b, user_id=user), "Who am I?")
    assert "favourite_colour" not in provider.requests[2].system_prompt
    assert json.loads(reply.tool_calls[0].result) == {"facts": [], "count": 0}
    assert await tenant_b.list_memory(user) == {}


async def test_too_large_value_is_a_tool_error_and_saves_nothing(store: AgentStore) -> None:
    user = new_user()
    provider = ScriptedProvider(
        [
            calls(call("remember", key="essay", value="x" * 1001)),
            calls(call("remember", key="k" * 101, value="short")),
            "I could not remember that.",
        ]
    )
    agent = await make_agent(store, provider)
    reply = await store.run(await store.create_thread(agent, user_id=user), "Remember my essay")
    assert [r.is_error for r in reply.tool_calls] == [True, True]
    assert "at most 1000 allowed" in reply.tool_calls[0].result
    assert "at most 100 allowed" in reply.tool_calls[1].result
    assert reply.content == "I could not remember that."  # the run goes on
    assert await store.list_memory(user) == {}


async def test_user_byte_limit_counts_memory(store: AgentStore) -> None:
    tenant = store.for_tenant(f"tl-{uuid.uuid4().hex[:6]}")
    await store.set_tenant_limits(tenant._scope.tenant_id or "", max_user_bytes=1000)
    user = new_user()
    await tenant.set_memory(user, "notes", "n" * 600)
    provider = ScriptedProvider(
        [
            calls(call("remember", key="more_notes", value="m" * 500)),
            calls(call("remember", key="short", value="fits")),
            "Partly remembered.",
        ]
    )
    agent = await make_agent(tenant, provider)
    reply = await tenant.run(await tenant.create_thread(agent, user_id=user), "Remember these")
    assert reply.tool_calls[0].is_error
    assert "storage limit (1000 bytes)" in reply.tool_calls[0].result
    assert not reply.tool_calls[1].is_error
    assert await tenant.list_memory(user) == {"notes": "n" * 600, "short": "fits"}


async def test_agent_scope_keeps_facts_to_the_agent(store: AgentStore) -> None:
    user = new_user()
    provider = ScriptedProvider(
        [
            calls(call("remember", key="nickname", value="Ace")),
            "Noted.",
            "Hi (other agent).",
            "Hi Ace.",
        ]
    )
    own = await make_agent(store, provider, {"memory_tools": True, "memory_scope": "agent"})
    await store.run(await store.create_thread(own, user_id=user), "Call me Ace.")
    assert await store.get_memory(user, "nickname", agent_id=own) == "Ace"
    assert await store.get_memory(user, "nickname") is None  # not shared

    other = await make_agent(store, provider)  # user scope
    await store.run(await store.create_thread(other, user_id=user), "Hi")
    assert "nickname" not in provider.requests[2].system_prompt
    await store.run(await store.create_thread(own, user_id=user), "Hi")
    assert "- nickname: Ace" in provider.requests[3].system_prompt


async def test_no_memory_tools_when_off_or_without_a_user(store: AgentStore) -> None:
    provider = ScriptedProvider(["a", "b", "c"])
    plain = await make_agent(store, provider, {})
    await store.run(await store.create_thread(plain, user_id=new_user()), "hi")
    assert not tool_names(provider, 0) & {"remember", "forget", "recall"}

    keeper = await make_agent(store, provider)
    await store.run(await store.create_thread(keeper), "hi")  # no user_id
    assert not tool_names(provider, 1) & {"remember", "forget", "recall"}
    await store.run(await store.create_thread(keeper, user_id=new_user()), "hi")
    assert {"remember", "forget", "recall"} <= tool_names(provider, 2)


async def test_memory_settings_are_validated(store: AgentStore) -> None:
    from ai_agents.errors import ValidationError

    provider = ScriptedProvider([])
    with pytest.raises(ValidationError) as info:
        await make_agent(store, provider, {"memory_scope": "everyone"})
    assert info.value.details["field"] == "settings.memory_scope"
    with pytest.raises(ValidationError):
        await make_agent(store, provider, {"memory_tools": "yes"})


# --- extraction -----------------------------------------------------------------------


@pytest.fixture
async def cheap_store(settings: Settings, redis_cleanup: None) -> Any:
    store = AgentStore(settings=replace(settings, memory_extraction_model="cheap:mini"))
    store.use_job_queue(
        RedisJobQueue(store, QueueConfig(visibility_timeout=1.0, retry_backoff=0.05))
    )
    try:
        yield store
    finally:
        await store.close()


async def extraction_jobs(store: AgentStore, thread_id: uuid.UUID) -> list[JobRecord]:
    async with store.engine.connect() as conn:
        ids = (
            await conn.execute(
                select(jobs.c.id).where(jobs.c.thread_id == thread_id).order_by(jobs.c.created_at)
            )
        ).scalars()
        found = list(ids)
    return [await store.get_job(i) for i in found]


async def drain(store: AgentStore) -> None:
    await WorkerPool(store, WorkerConfig(burst=True, poll_interval=0.05)).run()


async def test_extraction_job_writes_facts_and_records_usage(cheap_store: AgentStore) -> None:
    store = cheap_store
    user = new_user()
    chat = ScriptedProvider(["Nice to meet you, Ada!"], usage=Usage(50, 10))
    cheap = ScriptedProvider(
        [
            '```json\n{"facts": [{"key": "name", "value": "Ada"},'
            ' {"key": "city", "value": "Lyon"}]}\n```'
        ],
        usage=Usage(1000, 100),
    )
    store.register_provider("cheap", cheap)
    agent = await make_agent(store, chat, {"memory_extraction": True})
    thread = await store.create_thread(agent, user_id=user)
    reply = await store.run(thread, "I'm Ada and I live in Lyon.")
    assert reply.content == "Nice to meet you, Ada!"
    before = await store.usage(thread_id=thread)

    (queued,) = await extraction_jobs(store, thread)
    assert queued.status == "queued" and queued.priority == "low"
    assert queued.metadata["kind"] == "memory_extraction"
    assert queued.metadata["run_id"] == str(reply.run_id)
    await drain(store)

    done = await store.get_job(queued.id)
    assert done.status == "succeeded", done.error
    assert done.result is not None
    assert done.result["status"] == "written"
    assert done.response is None  # not an AgentResponse
    assert done.result["facts"] == ["city", "name"]
    assert done.result["usage"] == {"input_tokens": 1000, "output_tokens": 100}
    assert done.result["cost"] == pytest.approx(CHEAP.cost(1000, 100))
    assert (done.result["provider"], done.result["model"]) == ("cheap", "mini")
    assert await store.list_memory(user) == {"city": "Lyon", "name": "Ada"}

    request = cheap.requests[0]
    assert request.system_prompt == EXTRACTION_PROMPT
    assert "user: I'm Ada and I live in Lyon." in (request.messages[0].content or "")
    assert len(chat.requests) == 1  # the agent's model was not asked

    after = await store.usage(thread_id=thread)
    assert after.input_tokens == before.input_tokens + 1000
    assert after.output_tokens == before.output_tokens + 100
    assert after.cost == pytest.approx(before.cost + CHEAP.cost(1000, 100))
    by_user = await store.usage(user_id=user)
    assert by_user.input_tokens == after.input_tokens
    # The extraction call is admitted and counted like a run's (the Redis windows).
    window = await store.runner.rate_window("cheap", "mini")
    assert (window.requests, window.tokens) == (1, 1100)


async def test_malformed_extraction_reply_writes_nothing(
    cheap_store: AgentStore, caplog: pytest.LogCaptureFixture
) -> None:
    store = cheap_store
    user = new_user()
    chat = ScriptedProvider(["Green is lovely.", "Blue too."])
    cheap = ScriptedProvider(
        [
            "Sure! The user likes green.",
            '{"facts": [{"key": "colour"}]}',
        ],
        usage=Usage(200, 20),
    )
    store.register_provider("cheap", cheap)
    agent = await make_agent(store, chat, {"memory_extraction": True})
    thread = await store.create_thread(agent, user_id=user)
    first = await store.run(thread, "I like green.")
    second = await store.run(thread, "And blue.")
    assert (first.content, second.content) == ("Green is lovely.", "Blue too.")
    with caplog.at_level(logging.WARNING, logger="ai_agents.memory"):
        await drain(store)
    results = [j.result for j in await extraction_jobs(store, thread)]
    assert [r and r["status"] for r in results] == ["malformed", "malformed"]
    assert await store.list_memory(user) == {}
    assert "not the facts JSON" in caplog.text
    # the call still cost something, and that is recorded
    assert [r and r["usage"]["input_tokens"] for r in results] == [200, 200]
    assert len((await store.list_messages(thread)).items) == 4  # the turns are untouched


async def test_no_extraction_job_without_the_setting_or_a_user(cheap_store: AgentStore) -> None:
    store = cheap_store
    chat = ScriptedProvider(["a", "b"])
    plain = await make_agent(store, chat, {})
    thread = await store.create_thread(plain, user_id=new_user())
    await store.run(thread, "hi")
    assert await extraction_jobs(store, thread) == []
    extracting = await make_agent(store, chat, {"memory_extraction": True})
    anonymous = await store.create_thread(extracting)
    await store.run(anonymous, "hi")
    assert await extraction_jobs(store, anonymous) == []


async def test_background_run_is_followed_by_its_extraction(cheap_store: AgentStore) -> None:
    """A run that is itself a job: its extraction job waits in the thread's chain and is
    published when the run's job finishes."""
    store = cheap_store
    user = new_user()
    chat = ScriptedProvider(["Hi Bo."])
    cheap = ScriptedProvider(['{"facts": [{"key": "name", "value": "Bo"}]}'])
    store.register_provider("cheap", cheap)
    agent = await make_agent(store, chat, {"memory_extraction": True})
    thread = await store.create_thread(agent, user_id=user)
    run_job = await store.enqueue_run(thread, "I'm Bo.")
    await drain(store)
    run, extraction = await extraction_jobs(store, thread)
    assert (run.id, run.status) == (run_job, "succeeded")
    assert extraction.status == "succeeded" and extraction.result is not None
    assert extraction.result["run_id"] == str(run.run_id)
    assert await store.list_memory(user) == {"name": "Bo"}


async def test_failed_enqueue_never_affects_the_turn(
    cheap_store: AgentStore, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    store = cheap_store

    async def redis_down(*args: object) -> None:
        raise RedisError("connection refused")

    monkeypatch.setattr(store.jobs.transport, "publish", redis_down)
    chat = ScriptedProvider(["Hello Ada."])
    agent = await make_agent(store, chat, {"memory_extraction": True})
    thread = await store.create_thread(agent, user_id=new_user())
    with caplog.at_level(logging.ERROR, logger="ai_agents.run"):
        reply = await store.run(thread, "I'm Ada.")
    assert (reply.status, reply.content) == ("completed", "Hello Ada.")
    assert len((await store.list_messages(thread)).items) == 2
    assert await extraction_jobs(store, thread) == []  # withdrawn: no stuck head job
    assert "after-turn hook failed" in caplog.text


def test_parse_facts() -> None:
    assert parse_facts('{"facts": []}') == {}
    assert parse_facts('{"facts": [{"key": " a ", "value": "b"}]}') == {"a": "b"}
    assert parse_facts("not json") is None
    assert parse_facts('{"facts": {"a": "b"}}') is None
    assert parse_facts('{"facts": [{"key": 1, "value": "b"}]}') is None
    assert parse_facts("[1, 2]") is None
