"""AgentStore round trips against the real PostgreSQL (issue 2, acceptance 3-6)."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text

from ai_agents import AgentDefinition, AgentStore
from ai_agents.config import Settings
from ai_agents.db import messages as message_rows
from ai_agents.errors import (
    LimitExceeded,
    NotFoundError,
    StorageError,
    UsageError,
    ValidationError,
)
from ai_agents.messages import ToolCall
from tests.conftest import POOLER_URL

DEFINITION = AgentDefinition(
    name="Property Assistant",
    role="You are a helpful property management assistant.",
    goal="Help hosts manage their properties.",
    constraints=["Always cite which document information comes from"],
    personality={"tone": "friendly", "style": "concise"},
    examples=[{"user": "Hi", "assistant": "Hello! How can I help?"}],
)


async def _agent(store: AgentStore, **kw: object) -> uuid.UUID:
    return await store.create_agent(DEFINITION, provider="openai", model="gpt-4o", **kw)  # type: ignore[arg-type]


# --- agents -----------------------------------------------------------------------------


async def test_agent_round_trip(store: AgentStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_HOST", "127.0.0.1:11434")  # ollama is enabled where configured
    agent_id = await _agent(
        store,
        memory_strategy="summarize",
        memory_config={"max_messages": 20},
        metadata={"team": "ops"},
        created_by="admin",
    )
    agent = await store.get_agent(agent_id)
    assert agent.definition == DEFINITION
    assert agent.provider == "openai"
    assert agent.model == "gpt-4o"
    assert agent.memory_strategy == "summarize"
    assert agent.memory_config == {"max_messages": 20}
    assert agent.metadata == {"team": "ops"}
    assert agent.tenant_id == "default"
    assert agent.is_active
    assert agent.created_at is not None
    assert agent.created_at.tzinfo is not None

    updated = await store.update_agent(
        agent_id, provider="ollama", model="llama3.3:70b", goal="New goal"
    )
    assert (updated.provider, updated.model, updated.definition.goal) == (
        "ollama",
        "llama3.3:70b",
        "New goal",
    )
    assert updated.definition.role == DEFINITION.role
    assert updated.updated_at is not None and agent.updated_at is not None
    assert updated.updated_at >= agent.updated_at
    assert "# Goal\nNew goal" in updated.definition.compile()

    with pytest.raises(ValidationError, match="unknown agent field"):
        await store.update_agent(agent_id, colour="blue")
    with pytest.raises(ValidationError, match="role"):
        await store.update_agent(agent_id, role="")
    assert (await store.get_agent(agent_id)).definition.role == DEFINITION.role

    await store.deactivate_agent(agent_id)
    assert not (await store.get_agent(agent_id)).is_active
    assert [a.id for a in (await store.list_agents()).items] == []
    assert [a.id for a in (await store.list_agents(include_inactive=True)).items] == [agent_id]

    await store.delete_agent(agent_id)
    with pytest.raises(NotFoundError):
        await store.get_agent(agent_id)


async def test_list_agents_pagination(store: AgentStore) -> None:
    ids = [await _agent(store) for _ in range(5)]
    seen: list[uuid.UUID] = []
    cursor = None
    while True:
        page = await store.list_agents(limit=2, cursor=cursor)
        seen.extend(a.id for a in page.items)
        if not page.has_more:
            break
        cursor = page.next_cursor
    assert seen == ids


async def test_bad_ids_give_clear_errors(store: AgentStore) -> None:
    with pytest.raises(ValidationError, match="malformed agent id"):
        await store.get_agent("not-a-uuid")
    with pytest.raises(ValidationError, match="malformed thread id"):
        await store.get_thread("12")
    with pytest.raises(NotFoundError, match="agent .* not found"):
        await store.get_agent(uuid.uuid4())
    with pytest.raises(NotFoundError):
        await store.create_thread(uuid.uuid4())
    with pytest.raises(NotFoundError):
        await store.add_message(uuid.uuid4(), "user", "hi")
    with pytest.raises(ValidationError, match="malformed pagination cursor"):
        await store.list_threads(cursor="garbage!!")
    with pytest.raises(ValidationError, match="limit"):
        await store.list_threads(limit=0)


async def _field_of(call: object) -> str:
    with pytest.raises(ValidationError) as info:
        await call  # type: ignore[misc]
    field: str = info.value.details["field"]
    return field


async def test_agent_settings_are_validated_on_create_and_update(store: AgentStore) -> None:
    """Hardening 2: what no run could use is refused when saved, naming the field."""
    for settings, field in [
        ({"max_tool_iterations": "abc"}, "settings.max_tool_iterations"),
        ({"max_tool_iterations": -5}, "settings.max_tool_iterations"),
        ({"max_tool_iterations": 100_000}, "settings.max_tool_iterations"),  # the ceiling
        ({"tool_timeout": "x"}, "settings.tool_timeout"),
        ({"max_output_tokens": "lots"}, "settings.max_output_tokens"),
        ({"max_output_tokens": 1_000_000}, "settings.max_output_tokens"),
        ({"max_output_tokens": 16_001}, "settings.max_output_tokens"),  # gpt-4o's max_output
        ({"user_rpm": "x"}, "settings.user_rpm"),
        ({"retry": {"max_attempts": 0}}, "settings.retry.max_attempts"),
        ({"routing": {"colour": 1}}, "settings.routing"),
        ({"colour": "blue"}, "settings.colour"),
    ]:
        assert await _field_of(_agent(store, settings=settings)) == field, settings
    assert (await store.list_agents()).items == []  # nothing was saved

    agent_id = await _agent(store, settings={"max_tool_iterations": 50, "temperature": 0.3})
    assert await _field_of(store.update_agent(agent_id, settings={"tool_timeout": 0})) == (
        "settings.tool_timeout"
    )
    # A smaller model makes a saved output cap invalid: checked when the model changes.
    await store.update_agent(agent_id, settings={"max_output_tokens": 16_000})
    assert await _field_of(store.update_agent(agent_id, model="gpt-4")) == (
        "settings.max_output_tokens"
    )
    agent = await store.get_agent(agent_id)
    assert (agent.model, agent.settings) == ("gpt-4o", {"max_output_tokens": 16_000})


async def test_agent_ceilings_come_from_the_deployment_settings(
    settings: Settings, redis_cleanup: None
) -> None:
    low = AgentStore(
        settings=replace(settings, max_tool_iterations_ceiling=5, max_output_tokens_ceiling=100)
    )
    try:
        with pytest.raises(ValidationError, match="at most 5 .*max_tool_iterations_ceiling"):
            await _agent(low, settings={"max_tool_iterations": 6})
        with pytest.raises(ValidationError, match="at most 100 .*max_output_tokens_ceiling"):
            await _agent(low, settings={"max_output_tokens": 101})
        await _agent(low, settings={"max_tool_iterations": 5, "max_output_tokens": 100})
    finally:
        await low.close()


async def test_an_agent_saved_before_validation_can_still_be_renamed(store: AgentStore) -> None:
    agent_id = await _agent(store)
    async with store.engine.begin() as conn:
        await conn.execute(
            text("UPDATE agents SET settings = :s WHERE id = :id"),
            {"s": '{"max_tool_iterations": "abc", "legacy": 1}', "id": agent_id},
        )
    renamed = await store.update_agent(agent_id, name="Renamed")
    assert renamed.definition.name == "Renamed"
    await store.deactivate_agent(agent_id)
    with pytest.raises(ValidationError, match="settings.max_tool_iterations"):
        await store.update_agent(agent_id, settings={"max_tool_iterations": "abc"})
    fixed = await store.update_agent(agent_id, settings={"max_tool_iterations": 3})
    assert fixed.settings == {"max_tool_iterations": 3}


async def test_fallbacks_and_memory_config_name_the_bad_field(store: AgentStore) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"fallbacks": [{"provider": "openai"}]}, "fallbacks[0]"),
        ({"fallbacks": [{"provider": "openai", "model": "m", "x": 1}]}, "fallbacks[0]"),
        ({"fallbacks": [{"provider": 5, "model": "gpt-4o"}]}, "fallbacks[0].provider"),
        ({"fallbacks": [{"provider": "nope", "model": "m"}]}, "fallbacks[0]"),
        ({"fallbacks": {"provider": "openai"}}, "fallbacks"),
        ({"memory_config": {"max_messages": "20"}}, "memory_config.max_messages"),
        ({"memory_config": {"max_messages": 10**12}}, "memory_config.max_messages"),
        (
            {"memory_strategy": "first_last", "memory_config": {"preserve_first": 2.5}},
            "memory_config.preserve_first",
        ),
        (
            {"memory_strategy": "summarize", "memory_config": {"summary_model": 4}},
            "memory_config.summary_model",
        ),
        (
            {"memory_strategy": "summarize", "memory_config": {"summary_provider": "nope"}},
            "memory_config.summary_provider",
        ),
        ({"memory_strategy": "vector", "memory_config": {"top_k": -1}}, "memory_config.top_k"),
    ]
    for kw, field in cases:
        assert await _field_of(_agent(store, **kw)) == field, kw
    await _agent(store, fallbacks=[{"provider": "openai", "model": "gpt-4o-mini"}])


async def test_messages_with_nul_are_refused_naming_the_field(store: AgentStore) -> None:
    """Hardening 9: a clear ValidationError, not a driver error after the insert."""
    thread_id = await store.create_thread(await _agent(store))
    assert await _field_of(store.add_message(thread_id, "user", "a\x00b")) == "content"
    assert await _field_of(
        store.add_message(thread_id, "user", "hi", metadata={"tags": ["ok", "\x00"]})
    ) == ("metadata.tags[1]")
    call = ToolCall(id="c1", name="add", arguments={"a": "\x00"})
    assert await _field_of(store.add_message(thread_id, "assistant", None, tool_calls=[call])) == (
        "tool_calls[0].arguments.a"
    )
    assert (await store.get_thread(thread_id)).message_count == 0


# --- threads ----------------------------------------------------------------------------


async def test_thread_round_trip_archive_and_listing(store: AgentStore) -> None:
    agent_id = await _agent(store)
    other_agent = await _agent(store)
    t1 = await store.create_thread(agent_id, user_id="u1", metadata={"topic": "a"})
    t2 = await store.create_thread(agent_id, user_id="u1")
    t3 = await store.create_thread(other_agent, user_id="u2")
    await store.add_message(t1, "user", "touch t1 so it is the most recent")

    thread = await store.get_thread(t1)
    assert thread.agent_id == agent_id and thread.user_id == "u1"
    assert thread.metadata == {"topic": "a"}
    assert thread.message_count == 1

    listed = await store.list_threads(user_id="u1")
    assert [t.id for t in listed.items] == [t1, t2]  # newest last_used_at first
    assert [t.id for t in (await store.list_threads(agent_id=other_agent)).items] == [t3]

    updated = await store.update_thread(t2, metadata={"topic": "b"}, title="Second")
    assert updated.metadata == {"topic": "b"} and updated.title == "Second"

    await store.archive_thread(t2)
    assert [t.id for t in (await store.list_threads(user_id="u1")).items] == [t1]
    assert [t.id for t in (await store.list_threads(user_id="u1", archived=True)).items] == [t2]
    await store.unarchive_thread(t2)
    assert {t.id for t in (await store.list_threads(user_id="u1")).items} == {t1, t2}

    await store.delete_thread(t2)
    with pytest.raises(NotFoundError):
        await store.get_thread(t2)


async def test_thread_listing_cursor_pages_everything_once(store: AgentStore) -> None:
    agent_id = await _agent(store)
    created = {await store.create_thread(agent_id, user_id="u") for _ in range(7)}
    seen: list[uuid.UUID] = []
    cursor = None
    while True:
        page = await store.list_threads(user_id="u", limit=3, cursor=cursor)
        seen.extend(t.id for t in page.items)
        if not page.has_more:
            break
        cursor = page.next_cursor
    assert len(seen) == 7 and set(seen) == created


async def test_fork_copies_up_to_a_message_and_keeps_tool_pairs(store: AgentStore) -> None:
    agent_id = await _agent(store)
    thread_id = await store.create_thread(agent_id, user_id="u1")
    await store.add_message(thread_id, "user", "What's the weather?")
    call = ToolCall(id="call_1", name="weather", arguments={"city": "Paris"})
    asked = await store.add_message(thread_id, "assistant", None, tool_calls=[call])
    await store.add_message(thread_id, "tool", "sunny", tool_call_id="call_1", tool_name="weather")
    await store.add_message(thread_id, "assistant", "It is sunny.")
    await store.add_message(thread_id, "user", "Thanks")

    fork_id = await store.fork_thread(thread_id, up_to_message_id=asked.id)
    fork = await store.get_thread(fork_id)
    copied = (await store.list_messages(fork_id)).items
    # The cut at the tool-calling message extends over its result.
    assert [m.role for m in copied] == ["user", "assistant", "tool"]
    assert copied[1].tool_calls == [call]
    assert copied[2].tool_call_id == "call_1"
    assert fork.message_count == 3 and fork.last_seq == 3
    assert fork.total_bytes == sum(m.byte_size() for m in copied)
    assert fork.forked_from_id == thread_id and fork.forked_at_seq == 3

    # The fork is independent: new messages continue its own seq.
    added = await store.add_message(fork_id, "user", "In the fork")
    assert added.seq == 4
    assert (await store.get_thread(thread_id)).message_count == 5

    whole = await store.fork_thread(thread_id)
    assert (await store.get_thread(whole)).message_count == 5


# --- messages ---------------------------------------------------------------------------


async def test_messages_pagination_and_cursor_stability(store: AgentStore) -> None:
    agent_id = await _agent(store)
    thread_id = await store.create_thread(agent_id)
    for i in range(10):
        await store.add_message(thread_id, "user" if i % 2 == 0 else "assistant", f"m{i}")

    first = await store.list_messages(thread_id, limit=4)
    assert [m.content for m in first.items] == ["m0", "m1", "m2", "m3"]
    assert first.next_cursor == "4"
    # New messages arrive between page reads: the cursor still continues exactly.
    await store.add_message(thread_id, "user", "m10")
    second = await store.list_messages(thread_id, limit=4, after=int(first.next_cursor))
    assert [m.content for m in second.items] == ["m4", "m5", "m6", "m7"]
    rest = await store.list_messages(thread_id, limit=10, after=int(second.next_cursor or 0))
    assert [m.content for m in rest.items] == ["m8", "m9", "m10"]
    assert not rest.has_more

    newest = await store.list_messages(thread_id, limit=3, order="desc")
    assert [m.content for m in newest.items] == ["m10", "m9", "m8"]
    older = await store.list_messages(thread_id, limit=3, order="desc", before=newest.items[-1].seq)
    assert [m.content for m in older.items] == ["m7", "m6", "m5"]

    assert [m.content for m in await store.last_messages(thread_id, 3)] == ["m8", "m9", "m10"]
    assert [m.content for m in await store.first_messages(thread_id, 2)] == ["m0", "m1"]
    with pytest.raises(ValidationError, match="order"):
        await store.list_messages(thread_id, order="sideways")


async def test_message_page_and_thread_check_are_one_statement(store: AgentStore) -> None:
    """The page statement both checks the thread and reads it: a visible thread with no
    message in range is an empty page (not a 404, not a message of NULLs), an invisible
    one is a 404 whatever the bounds, and every combination of bounds numbers its
    parameters right, for a tenant and for the admin view."""
    tenant = store.for_tenant("pages-a")
    admin = store.for_tenant(None)
    other = store.for_tenant("pages-b")
    agent_id = await _agent(tenant)
    empty = await tenant.create_thread(agent_id)
    for view in (tenant, admin):
        page = await view.list_messages(empty)
        assert (page.items, page.next_cursor, page.has_more) == ([], None, False)
    thread_id = await tenant.create_thread(agent_id)
    for i in range(1, 7):
        await tenant.add_message(thread_id, "user", f"m{i}")
    for view in (tenant, admin):
        between = await view.list_messages(thread_id, after=1, before=6, limit=2)
        assert [m.content for m in between.items] == ["m2", "m3"]
        assert between.next_cursor == "3"
        backwards = await view.list_messages(thread_id, after=1, before=6, order="desc", limit=9)
        assert [m.content for m in backwards.items] == ["m5", "m4", "m3", "m2"]
        assert not backwards.has_more
        assert (await view.list_messages(thread_id, after=6)).items == []
        assert (await view.list_messages(thread_id, before=1, order="desc")).items == []
    for bounds in ({}, {"after": 0}, {"before": 9}, {"after": 0, "before": 9}):
        with pytest.raises(NotFoundError):
            await other.list_messages(thread_id, **bounds)  # type: ignore[arg-type]
        with pytest.raises(NotFoundError):
            await tenant.list_messages(uuid.uuid4(), **bounds)  # type: ignore[arg-type]


async def test_a_broken_connection_is_not_pooled_again_by_the_page_read(
    settings: Settings, redis_cleanup: None
) -> None:
    """``list_messages`` checks its connection out without a SQLAlchemy Connection: one
    that the server closed under it is invalidated, so only the read that met it fails.
    (Behind a transaction pooler the store holds no server connection between reads, so
    there is none to kill: the pooler shields it.)"""
    if POOLER_URL:
        pytest.skip("behind a transaction pooler no server connection is held between reads")
    store = AgentStore(settings=replace(settings, db_pool_size=1, db_max_overflow=0))
    try:
        thread_id = await store.create_thread(await _agent(store))
        await store.add_message(thread_id, "user", "hello")
        assert len((await store.list_messages(thread_id)).items) == 1
        killer = await asyncpg.connect(settings.database_url)
        try:
            killed = await killer.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        finally:
            await killer.close()
        assert killed == 1
        # The one pooled connection is gone: at most one read meets it.
        failures = 0
        for _ in range(3):
            try:
                page = await store.list_messages(thread_id)
            except StorageError:
                failures += 1
            else:
                assert [m.content for m in page.items] == ["hello"]
        assert failures <= 1
    finally:
        await store.close()


async def test_a_page_read_cancelled_mid_statement_leaves_a_usable_pool(
    settings: Settings, redis_cleanup: None
) -> None:
    """A client that goes away while its page is read cancels the read: the connection,
    its statement half-way, is not handed to the next read as if it were idle."""
    store = AgentStore(settings=replace(settings, db_pool_size=1, db_max_overflow=0))
    try:
        thread_id = await store.create_thread(await _agent(store))
        await store.add_message(thread_id, "user", "hello")
        locker = await asyncpg.connect(settings.database_url)
        try:
            lock = locker.transaction()
            await lock.start()
            await locker.execute("LOCK TABLE messages IN ACCESS EXCLUSIVE MODE")
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(store.list_messages(thread_id), timeout=0.5)
            await lock.rollback()
        finally:
            await locker.close()
        for _ in range(3):
            page = await asyncio.wait_for(store.list_messages(thread_id), timeout=10)
            assert [m.content for m in page.items] == ["hello"]
    finally:
        await store.close()


async def test_message_fields_round_trip(store: AgentStore) -> None:
    agent_id = await _agent(store)
    thread_id = await store.create_thread(agent_id)
    calls = [ToolCall("c1", "a", {"x": 1}), ToolCall("c2", "b", {"nested": {"y": [1, 2]}})]
    await store.add_message(thread_id, "system", "be nice")
    await store.add_message(thread_id, "assistant", "", tool_calls=calls, metadata={"k": "v"})
    await store.add_message(
        thread_id, "tool", "boom", tool_call_id="c1", tool_name="a", metadata={"is_error": True}
    )
    msgs = (await store.list_messages(thread_id)).items
    assert [m.seq for m in msgs] == [1, 2, 3]
    assert msgs[1].tool_calls == calls and msgs[1].metadata == {"k": "v"}
    assert msgs[2].is_error and msgs[2].tool_name == "a"
    assert all(m.id and m.created_at and m.thread_id == thread_id for m in msgs)

    with pytest.raises(ValidationError, match="role"):
        await store.add_message(thread_id, "robot", "hi")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="tool_call_id"):
        await store.add_message(thread_id, "tool", "result")
    with pytest.raises(ValidationError, match="non-empty"):
        await store.add_message(thread_id, "user", "")
    assert (await store.get_thread(thread_id)).message_count == 3


async def test_concurrent_add_message_is_exact(store: AgentStore) -> None:
    """Acceptance 4: 20 concurrent writers -> seq 1..20, exact counters."""
    agent_id = await _agent(store)
    thread_id = await store.create_thread(agent_id, user_id="u1")
    contents = [f"message {i} " + "x" * i + " é" for i in range(20)]
    await asyncio.gather(*(store.add_message(thread_id, "user", c) for c in contents))

    msgs = (await store.list_messages(thread_id, limit=100)).items
    assert [m.seq for m in msgs] == list(range(1, 21))
    assert sorted(m.content or "" for m in msgs) == sorted(contents)
    thread = await store.get_thread(thread_id)
    assert thread.message_count == 20
    assert thread.last_seq == 20
    assert thread.total_bytes == sum(len(c.encode()) for c in contents)


async def test_thread_size_limit_rejects_and_writes_nothing(store: AgentStore) -> None:
    """Acceptance 5."""
    await store.set_tenant_limits("default", max_thread_bytes=1000, max_user_bytes=1500)
    agent_id = await _agent(store)
    thread_id = await store.create_thread(agent_id, user_id="u1")
    await store.add_message(thread_id, "user", "a" * 900)
    before = await store.get_thread(thread_id)

    with pytest.raises(LimitExceeded, match="thread size limit exceeded") as info:
        await store.add_message(thread_id, "assistant", "b" * 200)
    assert info.value.scope == "thread" and info.value.limit == 1000

    after = await store.get_thread(thread_id)
    assert (after.message_count, after.total_bytes, after.last_seq) == (
        before.message_count,
        before.total_bytes,
        before.last_seq,
    )
    assert len((await store.list_messages(thread_id)).items) == 1
    # A batch is all-or-nothing too.
    from ai_agents.messages import assistant, user

    with pytest.raises(LimitExceeded):
        await store.add_messages(thread_id, [user("ok"), assistant("c" * 500)])
    assert (await store.get_thread(thread_id)).message_count == 1

    # The user limit spans threads.
    other = await store.create_thread(agent_id, user_id="u1")
    await store.add_message(other, "user", "d" * 500)
    with pytest.raises(LimitExceeded, match="user size limit"):
        await store.add_message(other, "user", "e" * 200)
    # Deleting a thread gives its bytes back to the user.
    await store.delete_thread(thread_id)
    await store.add_message(other, "user", "e" * 200)


async def test_tenant_total_limit(store: AgentStore) -> None:
    await store.set_tenant_limits("acme", max_total_bytes=100)
    acme = store.for_tenant("acme")
    agent_id = await acme.create_agent(DEFINITION, provider="openai", model="gpt-4o")
    t1 = await acme.create_thread(agent_id, user_id="a")
    t2 = await acme.create_thread(agent_id, user_id="b")
    await acme.add_message(t1, "user", "x" * 60)
    with pytest.raises(LimitExceeded, match="tenant size limit"):
        await acme.add_message(t2, "user", "y" * 60)


async def test_user_memory(store: AgentStore) -> None:
    agent_id = await _agent(store)
    await store.set_memory("u1", "name", "Ada")
    await store.set_memory("u1", "name", "Ada Lovelace")  # upsert
    await store.set_memory("u1", "city", "London", agent_id=agent_id)
    assert await store.get_memory("u1", "name") == "Ada Lovelace"
    assert await store.get_memory("u1", "city") is None  # agent-scoped key
    assert await store.get_memory("u1", "city", agent_id=agent_id) == "London"
    assert await store.list_memory("u1") == {"name": "Ada Lovelace"}
    assert await store.list_memory("u1", agent_id=agent_id) == {"city": "London"}
    assert await store.delete_memory("u1", "name") == 1
    assert await store.get_memory("u1", "name") is None
    assert await store.delete_memory("u1", agent_id=agent_id) == 1
    with pytest.raises(ValidationError):
        await store.set_memory("", "k", "v")
    with pytest.raises(UsageError):
        await store.for_tenant(None).get_memory("u1", "name")


async def test_tenant_isolation(store: AgentStore) -> None:
    a = store.for_tenant("tenant-a")
    b = store.for_tenant("tenant-b")
    agent_a = await a.create_agent(DEFINITION, provider="openai", model="gpt-4o")
    thread_a = await a.create_thread(agent_a, user_id="u1")
    await a.add_message(thread_a, "user", "secret")
    await a.set_memory("u1", "k", "v")

    for call in (
        b.get_agent(agent_a),
        b.get_thread(thread_a),
        b.list_messages(thread_a),
        b.add_message(thread_a, "user", "hi"),
        b.fork_thread(thread_a),
        b.delete_thread(thread_a),
        b.update_agent(agent_a, model="x"),
        b.create_thread(agent_a),
    ):
        with pytest.raises(NotFoundError):
            await call
    assert (await b.list_threads()).items == []
    assert (await b.list_agents()).items == []
    assert await b.get_memory("u1", "k") is None
    admin = store.for_tenant(None)
    assert [t.id for t in (await admin.list_threads(user_id="u1")).items] == [thread_a]
    assert (await a.get_thread(thread_a)).message_count == 1


async def test_last_messages_is_one_index_range_scan(store: AgentStore) -> None:
    """Acceptance 6 (plan shape): 'last N' uses the (thread_id, seq) index backwards."""
    agent_id = await _agent(store)
    thread_id = await store.create_thread(agent_id)
    async with store.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO messages (thread_id, seq, role, content, byte_size) "
                "SELECT :t, g, 'user', 'm' || g, 2 FROM generate_series(1, 20000) g"
            ),
            {"t": thread_id},
        )
        await conn.execute(text("ANALYZE messages"))
        # The statement last_messages really runs, on the driver connection it runs on.
        raw = await message_rows.driver(conn)
        plan = [r[0] for r in await raw.fetch("EXPLAIN " + message_rows._LAST_N, thread_id, 50)]
    assert [m.content for m in await store.last_messages(thread_id, 2)] == ["m19999", "m20000"]
    plan_text = "\n".join(plan)
    assert "Index Scan Backward using uq_messages_thread_seq" in plan_text, plan_text
    assert "Sort" not in plan_text and "Seq Scan" not in plan_text
