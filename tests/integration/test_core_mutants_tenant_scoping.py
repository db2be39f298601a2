"""Tenant scoping of thread rows, and forks, on the real PostgreSQL: the cases the
mutation run (``make mutation``) showed unchecked in :mod:`ai_agents.db.threads`."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text

from ai_agents import AgentDefinition, AgentStore
from ai_agents.db import threads as thread_rows
from ai_agents.db.scope import Scope
from ai_agents.errors import NotFoundError
from ai_agents.messages import Message, ToolCall

DEFINITION = AgentDefinition(name="Scoped", role="You help.")


async def _thread(store: AgentStore) -> uuid.UUID:
    agent = await store.create_agent(DEFINITION, provider="openai", model="gpt-4o")
    return await store.create_thread(agent, user_id="u1", title="mine")


def _is_missing_thread(exc: pytest.ExceptionInfo[NotFoundError], ident: uuid.UUID) -> None:
    assert (exc.value.kind, exc.value.ident) == ("thread", ident)
    assert exc.value.details == {"kind": "thread", "id": str(ident)}


async def test_another_tenant_cannot_update_or_archive_a_thread(store: AgentStore) -> None:
    a, b = store.for_tenant("tenant-a"), store.for_tenant("tenant-b")
    thread = await _thread(a)
    with pytest.raises(NotFoundError) as exc:
        await b.update_thread(thread, title="taken over")
    _is_missing_thread(exc, thread)
    with pytest.raises(NotFoundError) as exc:
        await b.archive_thread(thread)
    _is_missing_thread(exc, thread)
    with pytest.raises(NotFoundError) as exc:
        await b.get_thread(thread)
    _is_missing_thread(exc, thread)
    record = await a.get_thread(thread)
    assert (record.title, record.archived) == ("mine", False)
    # Its own tenant and the admin view may.
    assert (await a.update_thread(thread, title="renamed")).title == "renamed"
    assert (await store.for_tenant(None).archive_thread(thread)).archived


async def test_thread_rows_are_updated_and_deleted_only_within_the_scope(
    store: AgentStore,
) -> None:
    a = store.for_tenant("tenant-a")
    thread = await _thread(a)
    async with store.engine.begin() as conn:
        with pytest.raises(NotFoundError) as exc:
            await thread_rows.update_thread(conn, Scope("tenant-b"), thread, {"title": "x"})
        _is_missing_thread(exc, thread)
        with pytest.raises(NotFoundError) as exc:
            await thread_rows.delete_thread(conn, Scope("tenant-b"), thread)
        _is_missing_thread(exc, thread)
        assert (await thread_rows.get_thread(conn, Scope("tenant-a"), thread)).title == "mine"
    async with store.engine.begin() as conn:
        gone = await thread_rows.delete_thread(conn, Scope("tenant-a"), thread)
        assert gone.id == thread
        with pytest.raises(NotFoundError) as exc:
            await thread_rows.delete_thread(conn, Scope(None), thread)
        _is_missing_thread(exc, thread)


async def test_a_fork_of_an_empty_thread_has_zero_counters(store: AgentStore) -> None:
    thread = await _thread(store)
    fork = await store.get_thread(await store.fork_thread(thread))
    assert (fork.message_count, fork.total_bytes, fork.last_seq) == (0, 0, 0)
    assert fork.forked_at_seq == 0


async def test_a_fork_does_not_copy_idempotency_keys(store: AgentStore) -> None:
    thread = await _thread(store)
    await store.add_messages(
        thread, [Message(role="user", content="hello")], idempotency_key="key-1"
    )
    fork = await store.fork_thread(thread)
    async with store.engine.connect() as conn:
        keys = (
            await conn.execute(
                text("SELECT thread_id, idempotency_key FROM messages ORDER BY thread_id = :t"),
                {"t": thread},
            )
        ).all()
    assert sorted((row[0] == thread, row[1]) for row in keys) == [(False, None), (True, "key-1")]
    assert (await store.get_thread(fork)).message_count == 1


async def test_a_fork_cut_at_a_user_message_ends_there(store: AgentStore) -> None:
    thread = await _thread(store)
    asked = await store.add_message(thread, "user", "first")
    await store.add_message(thread, "assistant", "answer")
    await store.add_message(thread, "user", "second")
    fork = await store.fork_thread(thread, up_to_message_id=asked.id)
    copied = (await store.list_messages(fork)).items
    assert [m.content for m in copied] == ["first"]
    assert (await store.get_thread(fork)).forked_at_seq == 1


async def test_a_fork_cut_at_a_plain_answer_never_takes_what_follows(store: AgentStore) -> None:
    thread = await _thread(store)
    await store.add_message(thread, "user", "hi")
    answer = await store.add_message(thread, "assistant", "hello")
    # A stray tool result after a plain answer (answers no call of it): not part of its turn.
    await store.add_message(thread, "tool", "stray", tool_call_id="call_x", tool_name="t")
    await store.add_message(thread, "user", "later")
    fork = await store.fork_thread(thread, up_to_message_id=answer.id)
    assert [m.content for m in (await store.list_messages(fork)).items] == ["hi", "hello"]
    assert (await store.get_thread(fork)).forked_at_seq == 2


async def test_a_fork_cut_at_a_tool_call_takes_every_result_and_stops(store: AgentStore) -> None:
    thread = await _thread(store)
    await store.add_message(thread, "user", "hi")
    calls = [ToolCall(id=f"call_{i}", name="t", arguments={}) for i in range(3)]
    asked = await store.add_message(thread, "assistant", None, tool_calls=calls)
    for c in calls:
        await store.add_message(thread, "tool", c.id, tool_call_id=c.id, tool_name="t")
    await store.add_message(thread, "assistant", "done")
    fork = await store.fork_thread(thread, up_to_message_id=asked.id)
    copied = (await store.list_messages(fork)).items
    assert [m.role for m in copied] == ["user", "assistant", "tool", "tool", "tool"]
    assert (await store.get_thread(fork)).forked_at_seq == 5


async def test_a_fork_cut_at_a_call_with_many_results_keeps_them_all(store: AgentStore) -> None:
    # More results than any batch a cut might read at once (64 once): all stay together.
    thread = await _thread(store)
    await store.add_message(thread, "user", "hi")
    calls = [ToolCall(id=f"call_{i}", name="t", arguments={}) for i in range(70)]
    asked = await store.add_message(thread, "assistant", None, tool_calls=calls)
    await store.add_messages(
        thread,
        [Message(role="tool", content=c.id, tool_call_id=c.id, tool_name="t") for c in calls],
    )
    await store.add_message(thread, "assistant", "done")
    fork = await store.fork_thread(thread, up_to_message_id=asked.id)
    assert (await store.get_thread(fork)).forked_at_seq == 72
    copied = (await store.list_messages(fork, limit=200)).items
    assert [m.content for m in copied[2:]] == [c.id for c in calls]


async def test_threads_page_newest_first_with_ties_broken_by_id(store: AgentStore) -> None:
    agent = await store.create_agent(DEFINITION, provider="openai", model="gpt-4o")
    made = [await store.create_thread(agent) for _ in range(5)]
    tied, older, oldest = made[:3], made[3], made[4]
    async with store.engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE threads SET last_used_at = CASE "
                "WHEN id = :older THEN now() - interval '1 hour' "
                "WHEN id = :oldest THEN now() - interval '2 hours' "
                "ELSE date_trunc('second', now()) END"
            ),
            {"older": older, "oldest": oldest},
        )
    expected = [*sorted(tied, reverse=True), older, oldest]

    seen: list[uuid.UUID] = []
    cursor = None
    sizes = []
    while True:
        page = await store.list_threads(limit=2, cursor=cursor)
        seen += [t.id for t in page.items]
        sizes.append(len(page.items))
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == expected
    assert sizes == [2, 2, 1]
    # A page that holds exactly the rest has no next page; one short of it has.
    assert (await store.list_threads(limit=5)).next_cursor is None
    assert [t.id for t in (await store.list_threads(limit=5)).items] == expected
    short = await store.list_threads(limit=4)
    assert short.next_cursor is not None
    rest = await store.list_threads(limit=4, cursor=short.next_cursor)
    assert [t.id for t in rest.items] == [oldest] and rest.next_cursor is None


async def test_a_thread_reads_back_its_states_and_metadata(store: AgentStore) -> None:
    thread = await _thread(store)
    await store.update_thread(
        thread,
        provider_state={"openai": {"previous_response_id": "r1"}},
        memory_state={"summary": "so far"},
        metadata={"k": "v"},
    )
    record = await store.get_thread(thread)
    assert record.provider_state == {"openai": {"previous_response_id": "r1"}}
    assert (record.memory_state, record.metadata) == ({"summary": "so far"}, {"k": "v"})


async def test_the_admin_creates_rows_for_the_tenant_it_names_or_the_default(
    store: AgentStore,
) -> None:
    admin = store.for_tenant(None)
    named = await admin.create_agent(
        DEFINITION, provider="openai", model="gpt-4o", tenant_id="acme"
    )
    unnamed = await admin.create_agent(DEFINITION, provider="openai", model="gpt-4o")
    assert (await admin.get_agent(named)).tenant_id == "acme"
    assert (await admin.get_agent(unnamed)).tenant_id == "default"
    # A tenant's own view always creates for itself.
    mine = await store.for_tenant("t1").create_agent(
        DEFINITION, provider="openai", model="gpt-4o", tenant_id="acme"
    )
    assert (await admin.get_agent(mine)).tenant_id == "t1"


async def test_a_fork_cut_at_a_call_whose_results_end_the_thread_keeps_them(
    store: AgentStore,
) -> None:
    # A paused run (client tools) leaves the thread ending with results: no next message.
    # Another, longer thread must not lend the cut its later seqs.
    longer = await _thread(store)
    for n in range(6):
        await store.add_message(longer, "user", f"other {n}")
    thread = await _thread(store)
    await store.add_message(thread, "user", "hi")
    calls = [ToolCall(id=f"call_{i}", name="t", arguments={}) for i in range(2)]
    asked = await store.add_message(thread, "assistant", None, tool_calls=calls)
    for c in calls:
        await store.add_message(thread, "tool", c.id, tool_call_id=c.id, tool_name="t")
    fork = await store.fork_thread(thread, up_to_message_id=asked.id)
    assert (await store.get_thread(fork)).forked_at_seq == 4
    assert [m.role for m in (await store.list_messages(fork)).items] == [
        "user",
        "assistant",
        "tool",
        "tool",
    ]


async def test_a_fork_cut_reads_only_its_own_thread(store: AgentStore) -> None:
    """Other threads' messages at the same seqs (a plain answer where this thread has a
    call, a question where it has results) never move the cut."""
    agent = await store.create_agent(DEFINITION, provider="openai", model="gpt-4o")
    others = [await store.create_thread(agent) for _ in range(3)]
    for other in others:
        await store.add_message(other, "user", "other question")
        await store.add_message(other, "assistant", "other answer")
        await store.add_message(other, "user", "other follow-up")
    thread = await store.create_thread(agent)
    await store.add_message(thread, "user", "hi")
    calls = [ToolCall(id=f"call_{i}", name="t", arguments={}) for i in range(2)]
    asked = await store.add_message(thread, "assistant", None, tool_calls=calls)
    for c in calls:
        await store.add_message(thread, "tool", c.id, tool_call_id=c.id, tool_name="t")
    await store.add_message(thread, "assistant", "done")
    fork = await store.fork_thread(thread, up_to_message_id=asked.id)
    assert (await store.get_thread(fork)).forked_at_seq == 4
    copied = (await store.list_messages(fork)).items
    assert [m.content for m in copied[2:]] == ["call_0", "call_1"]
