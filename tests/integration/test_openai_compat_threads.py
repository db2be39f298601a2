"""``/v1/threads`` and ``/v1/threads/{id}/messages`` through the official ``openai`` SDK,
unchanged, against a running server: CRUD, initial messages (all or nothing), list
pagination both ways (cursors, ``has_more``, the SDK's auto-pagination), the run's
messages (``run_id``, ``assistant_id``, the ``run_id`` filter), tool exchanges hidden as
OpenAI hides them, deletes that keep every counter exact, OpenAI's error classes, tenant
isolation, and every answer checked strictly against the SDK's typed models."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Coroutine, Iterator
from typing import Any, TypeVar
from uuid import UUID

import openai
import pytest
from openai.types.beta import Thread, ThreadDeleted
from openai.types.beta.threads import Message, MessageDeleted
from sqlalchemy import select

from ai_agents.api.testing import RunningApi
from ai_agents.config import Settings
from ai_agents.db.tables import user_usage
from ai_agents.store import AgentStore
from ai_agents.testing import ScriptedProvider, call, calls
from tests.openai_compat import sdk, serve_compat
from tests.openai_shapes import conforms

# The SDK marks the Assistants API deprecated (OpenAI shut it down): that is the point.
pytestmark = [
    pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:The Assistants API is deprecated:DeprecationWarning"),
]

T = TypeVar("T")
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


@pytest.fixture
def provider() -> ScriptedProvider:
    return ScriptedProvider()


@pytest.fixture
def api(
    settings: Settings, redis_cleanup: None, provider: ScriptedProvider
) -> Iterator[RunningApi]:
    with serve_compat(settings, {"scripted": provider}) as running:
        yield running


@pytest.fixture
async def client(api: RunningApi) -> AsyncIterator[openai.AsyncOpenAI]:
    async with sdk(api) as c:
        yield c


async def on_server(api: RunningApi, coro: Coroutine[Any, Any, T]) -> T:
    """Run *coro* (e.g. a store call) in the server's event loop."""
    return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, api.loop))


def acme(api: RunningApi) -> AgentStore:
    return api.store.for_tenant("acme")


def uuid_of(prefixed: str) -> UUID:
    return UUID(hex=prefixed.rsplit("_", 1)[1])


def text_of(message: Message) -> str:
    (block,) = message.content
    assert block.type == "text"
    return block.text.value


async def raw(response: Any) -> Any:
    return response.http_response.json()


async def listed(
    client: openai.AsyncOpenAI, thread_id: str, **params: Any
) -> tuple[list[Message], bool]:
    """One page, each message and the envelope checked strictly."""
    response = await client.beta.threads.messages.with_raw_response.list(thread_id, **params)
    body = await raw(response)
    assert body["object"] == "list"
    messages = [conforms(Message, m) for m in body["data"]]
    assert body["first_id"] == (messages[0].id if messages else None)
    assert body["last_id"] == (messages[-1].id if messages else None)
    assert isinstance(body["has_more"], bool)
    return messages, body["has_more"]


async def add(client: openai.AsyncOpenAI, thread_id: str, text: str, role: str = "user") -> Message:
    created = await client.beta.threads.messages.with_raw_response.create(
        thread_id,
        role=role,  # type: ignore[arg-type]
        content=text,
    )
    return conforms(Message, await raw(created))


async def assistant_with_weather(client: openai.AsyncOpenAI) -> str:
    assistant = await client.beta.assistants.create(
        model="scripted/roomy",
        instructions="You help.",
        tools=[WEATHER],  # type: ignore[list-item]
    )
    return assistant.id


async def test_thread_crud(client: openai.AsyncOpenAI) -> None:
    created = await client.beta.threads.with_raw_response.create(metadata={"team": "ops"})
    body = await raw(created)
    thread = conforms(Thread, body)
    assert thread.id.startswith("thread_") and thread.object == "thread"
    assert isinstance(body["created_at"], int)
    assert thread.metadata == {"team": "ops"}
    assert body["tool_resources"] == {}

    fetched = await client.beta.threads.with_raw_response.retrieve(thread.id)
    assert conforms(Thread, await raw(fetched)) == thread

    updated = await client.beta.threads.with_raw_response.update(
        thread.id, metadata={"team": "sales", "tier": "gold"}
    )
    changed = conforms(Thread, await raw(updated))
    assert changed.metadata == {"team": "sales", "tier": "gold"}
    assert changed.created_at == thread.created_at
    # A modify without metadata changes nothing.
    same = await client.beta.threads.with_raw_response.update(thread.id)
    assert conforms(Thread, await raw(same)).metadata == {"team": "sales", "tier": "gold"}

    deleted = await client.beta.threads.with_raw_response.delete(thread.id)
    gone = conforms(ThreadDeleted, await raw(deleted))
    assert (gone.id, gone.object, gone.deleted) == (thread.id, "thread.deleted", True)
    with pytest.raises(openai.NotFoundError) as missing:
        await client.beta.threads.retrieve(thread.id)
    assert thread.id in missing.value.message
    with pytest.raises(openai.NotFoundError):
        await client.beta.threads.delete(thread.id)


async def test_create_with_initial_messages(api: RunningApi, client: openai.AsyncOpenAI) -> None:
    thread = await client.beta.threads.create(
        messages=[
            {"role": "user", "content": "I plan a trip.", "metadata": {"n": "1"}},
            {
                "role": "assistant",
                "content": [{"type": "text", "text": "Where to?"}],
            },
            {"role": "user", "content": [{"type": "text", "text": "Oslo"}]},
        ]
    )
    messages, has_more = await listed(client, thread.id, order="asc")
    assert not has_more
    assert [(m.role, text_of(m)) for m in messages] == [
        ("user", "I plan a trip."),
        ("assistant", "Where to?"),
        ("user", "Oslo"),
    ]
    first = messages[0]
    assert (first.thread_id, first.status, first.object) == (
        thread.id,
        "completed",
        "thread.message",
    )
    assert (first.run_id, first.assistant_id, first.attachments) == (None, None, [])
    assert first.metadata == {"n": "1"} and messages[1].metadata == {}
    record = await on_server(api, acme(api).get_thread(uuid_of(thread.id)))
    assert record.message_count == 3


async def test_a_failed_create_leaves_no_thread(
    api: RunningApi, client: openai.AsyncOpenAI
) -> None:
    store = acme(api)
    await on_server(api, store.set_tenant_limits("acme", max_thread_bytes=100))
    before = await on_server(api, store.list_threads(archived=None))
    with pytest.raises(openai.APIStatusError) as refused:
        await client.beta.threads.create(
            messages=[{"role": "user", "content": "x" * 60}, {"role": "user", "content": "y" * 60}]
        )
    assert refused.value.status_code == 413
    after = await on_server(api, store.list_threads(archived=None))
    assert [t.id for t in after.items] == [t.id for t in before.items]
    # Within the limit it works.
    made = await client.beta.threads.create(messages=[{"role": "user", "content": "x" * 60}])
    assert len((await listed(client, made.id))[0]) == 1


async def test_pagination_both_orders(client: openai.AsyncOpenAI) -> None:
    thread = await client.beta.threads.create()
    ids = [(await add(client, thread.id, f"m{i}")).id for i in range(7)]
    newest_first = list(reversed(ids))

    page, more = await listed(client, thread.id, limit=3)  # desc by default
    assert [m.id for m in page] == newest_first[:3] and more
    page, more = await listed(client, thread.id, limit=3, after=page[-1].id)
    assert [m.id for m in page] == newest_first[3:6] and more
    page, more = await listed(client, thread.id, limit=3, after=page[-1].id)
    assert [m.id for m in page] == newest_first[6:] and not more

    page, more = await listed(client, thread.id, limit=4, order="asc")
    assert [m.id for m in page] == ids[:4] and more
    page, more = await listed(client, thread.id, limit=4, order="asc", after=ids[3])
    assert [m.id for m in page] == ids[4:] and not more

    # before: the page closest to the cursor, still in the list's order.
    page, more = await listed(client, thread.id, limit=2, order="asc", before=ids[5])
    assert [m.id for m in page] == ids[3:5] and more
    page, more = await listed(client, thread.id, limit=2, order="asc", before=ids[2])
    assert [m.id for m in page] == ids[:2] and not more
    page, more = await listed(client, thread.id, limit=2, before=ids[1])  # desc
    assert [m.id for m in page] == [ids[3], ids[2]] and more
    page, more = await listed(client, thread.id, limit=5, before=ids[4])
    assert [m.id for m in page] == [ids[6], ids[5]] and not more
    # Both cursors: the messages strictly between them.
    page, more = await listed(client, thread.id, order="asc", after=ids[1], before=ids[5])
    assert [m.id for m in page] == ids[2:5] and not more

    walked = [m.id async for m in client.beta.threads.messages.list(thread.id, limit=2)]
    assert walked == newest_first
    walked = [
        m.id async for m in client.beta.threads.messages.list(thread.id, limit=3, order="asc")
    ]
    assert walked == ids


async def test_run_messages_have_run_and_assistant_ids(
    api: RunningApi, client: openai.AsyncOpenAI, provider: ScriptedProvider
) -> None:
    provider.add("Paris.")
    assistant = await client.beta.assistants.create(model="scripted/roomy")
    thread = await client.beta.threads.create(
        messages=[{"role": "user", "content": "Capital of France?"}]
    )
    store, ident = acme(api), uuid_of(thread.id)
    await on_server(api, store.assign_agent(ident, uuid_of(assistant.id)))
    answer = await on_server(api, store.run(ident, None))
    run_id = f"run_{answer.run_id.hex}"

    messages, _ = await listed(client, thread.id, order="asc")
    question, reply = messages
    assert (question.run_id, question.assistant_id) == (None, None)
    assert text_of(reply) == "Paris."
    assert (reply.role, reply.run_id, reply.assistant_id) == ("assistant", run_id, assistant.id)
    # The run's bookkeeping (finish reason, rate-limit wait) is not the caller's metadata.
    assert reply.metadata == {}
    fetched = await client.beta.threads.messages.with_raw_response.retrieve(
        reply.id, thread_id=thread.id
    )
    assert conforms(Message, await raw(fetched)) == reply

    only_run, more = await listed(client, thread.id, run_id=run_id)
    assert [m.id for m in only_run] == [reply.id] and not more
    other_run = f"run_{'0' * 32}"
    assert await listed(client, thread.id, run_id=other_run) == ([], False)


async def test_tool_exchanges_are_hidden_and_guarded(
    api: RunningApi, client: openai.AsyncOpenAI, provider: ScriptedProvider
) -> None:
    provider.add(calls(call("get_weather", city="Oslo")), "Snow in Oslo.")
    assistant_id = await assistant_with_weather(client)
    thread = await client.beta.threads.create(
        messages=[{"role": "user", "content": "Weather in Oslo?"}]
    )
    question = (await listed(client, thread.id))[0][0]
    store, ident = acme(api), uuid_of(thread.id)
    await on_server(api, store.assign_agent(ident, uuid_of(assistant_id)))
    paused = await on_server(api, store.run(ident, None))
    assert paused.status == "requires_action"
    run_id = f"run_{paused.run_id.hex}"

    # While the run holds the thread: no new message (OpenAI's 400), no delete (409).
    with pytest.raises(openai.BadRequestError) as busy:
        await add(client, thread.id, "Hello?")
    assert busy.value.body["message"] == (  # type: ignore[index]
        f"Can't add messages to {thread.id} while a run {run_id} is active."
    )
    with pytest.raises(openai.ConflictError):
        await client.beta.threads.messages.delete(question.id, thread_id=thread.id)
    # The call is not a message in OpenAI's list: it is a run step.
    assert [m.id for m in (await listed(client, thread.id))[0]] == [question.id]

    (pending,) = paused.required_action
    done = await on_server(
        api,
        store.submit_tool_outputs(paused.run_id, [{"tool_call_id": pending.id, "output": "snow"}]),
    )
    assert done.status == "completed"
    saved = (await on_server(api, store.list_messages(ident))).items
    assert [m.role for m in saved] == ["user", "assistant", "tool", "assistant"]

    messages, more = await listed(client, thread.id, order="asc")
    assert [(m.role, text_of(m)) for m in messages] == [
        ("user", "Weather in Oslo?"),
        ("assistant", "Snow in Oslo."),
    ]
    assert not more
    assert (messages[1].run_id, messages[1].assistant_id) == (run_id, assistant_id)
    # Pages count listed messages only; has_more is exact around the hidden ones.
    page, more = await listed(client, thread.id, order="asc", limit=1)
    assert [m.id for m in page] == [question.id] and more
    page, more = await listed(client, thread.id, order="asc", limit=1, after=question.id)
    assert [m.id for m in page] == [messages[1].id] and not more
    page, more = await listed(client, thread.id, limit=1, after=messages[1].id)
    assert [m.id for m in page] == [question.id] and not more
    assert [m.id for m in (await listed(client, thread.id, run_id=run_id))[0]] == [messages[1].id]

    # The hidden messages are not OpenAI messages, and cannot be deleted on their own.
    call_message, tool_message = saved[1], saved[2]
    for hidden in (call_message, tool_message):
        assert hidden.id is not None
        message_id = f"msg_{hidden.id.hex}"
        with pytest.raises(openai.NotFoundError):
            await client.beta.threads.messages.retrieve(message_id, thread_id=thread.id)
        with pytest.raises(openai.BadRequestError) as refused:
            await client.beta.threads.messages.delete(message_id, thread_id=thread.id)
        assert "tool exchange" in refused.value.message
    assert (await on_server(api, store.get_thread(ident))).message_count == 4

    # Adding works again once the run is over.
    assert text_of(await add(client, thread.id, "Thanks")) == "Thanks"


async def user_bytes(api: RunningApi, user_id: str) -> int:
    async def read() -> int:
        async with api.store.engine.connect() as conn:
            total = (
                await conn.execute(
                    select(user_usage.c.total_bytes).where(
                        user_usage.c.tenant_id == "acme", user_usage.c.user_id == user_id
                    )
                )
            ).scalar_one()
        return int(total)

    return await on_server(api, read())


async def test_delete_keeps_counters_exact(api: RunningApi, client: openai.AsyncOpenAI) -> None:
    store = acme(api)
    ident = await on_server(api, store.create_unassigned_thread(user_id="u1"))
    other = await on_server(api, store.create_unassigned_thread(user_id="u1"))
    thread_id = f"thread_{ident.hex}"
    texts = ["first", "the middle one: ünïcödé", "last"]
    added = [await add(client, thread_id, t) for t in texts]
    await add(client, f"thread_{other.hex}", "elsewhere")
    record = await on_server(api, store.get_thread(ident))
    assert (record.message_count, record.total_bytes) == (3, sum(len(t.encode()) for t in texts))
    user_before = await user_bytes(api, "u1")

    deleted = await client.beta.threads.messages.with_raw_response.delete(
        added[1].id, thread_id=thread_id
    )
    gone = conforms(MessageDeleted, await raw(deleted))
    assert (gone.id, gone.object, gone.deleted) == (added[1].id, "thread.message.deleted", True)
    size = len(texts[1].encode())
    record = await on_server(api, store.get_thread(ident))
    assert (record.message_count, record.total_bytes) == (2, len(b"first") + len(b"last"))
    assert await user_bytes(api, "u1") == user_before - size
    assert [m.id for m in (await listed(client, thread_id, order="asc"))[0]] == [
        added[0].id,
        added[2].id,
    ]
    with pytest.raises(openai.NotFoundError):
        await client.beta.threads.messages.retrieve(added[1].id, thread_id=thread_id)
    with pytest.raises(openai.NotFoundError):
        await client.beta.threads.messages.delete(added[1].id, thread_id=thread_id)
    # An assistant text message goes too; the counters follow.
    reply = await add(client, thread_id, "an answer", role="assistant")
    await client.beta.threads.messages.delete(reply.id, thread_id=thread_id)
    record = await on_server(api, store.get_thread(ident))
    assert (record.message_count, record.total_bytes) == (2, len(b"first") + len(b"last"))
    assert await user_bytes(api, "u1") == user_before - size
    # New messages still get fresh seqs after the deleted ones.
    last = await add(client, thread_id, "after")
    assert [m.id for m in (await listed(client, thread_id, limit=1))[0]] == [last.id]


async def test_modify_message_metadata(api: RunningApi, client: openai.AsyncOpenAI) -> None:
    thread = await client.beta.threads.create()
    message = await add(client, thread.id, "hello")
    updated = await client.beta.threads.messages.with_raw_response.update(
        message.id, thread_id=thread.id, metadata={"tag": "greeting", "n": "1"}
    )
    changed = conforms(Message, await raw(updated))
    assert changed.metadata == {"tag": "greeting", "n": "1"}
    assert (text_of(changed), changed.created_at, changed.role) == (
        "hello",
        message.created_at,
        "user",
    )
    replaced = await client.beta.threads.messages.update(
        message.id, thread_id=thread.id, metadata={"n": "2"}
    )
    assert replaced.metadata == {"n": "2"}
    fetched = await client.beta.threads.messages.retrieve(message.id, thread_id=thread.id)
    assert fetched.metadata == {"n": "2"} and text_of(fetched) == "hello"
    with pytest.raises(openai.BadRequestError) as refused:
        await client.beta.threads.messages.update(
            message.id, thread_id=thread.id, extra_body={"content": "changed"}
        )
    assert refused.value.body["param"] == "content"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError):
        await client.beta.threads.messages.update(
            message.id, thread_id=thread.id, metadata={str(i): "x" for i in range(17)}
        )


async def test_modify_keeps_a_runs_bookkeeping(
    api: RunningApi, client: openai.AsyncOpenAI, provider: ScriptedProvider
) -> None:
    provider.add("Hi.")
    assistant = await client.beta.assistants.create(model="scripted/roomy")
    thread = await client.beta.threads.create(messages=[{"role": "user", "content": "Hello"}])
    store, ident = acme(api), uuid_of(thread.id)
    await on_server(api, store.assign_agent(ident, uuid_of(assistant.id)))
    await on_server(api, store.run(ident, None))
    reply = (await listed(client, thread.id))[0][0]
    changed = await client.beta.threads.messages.update(
        reply.id, thread_id=thread.id, metadata={"rating": "good"}
    )
    assert changed.metadata == {"rating": "good"}
    assert changed.assistant_id == assistant.id
    saved = (await on_server(api, store.list_messages(ident))).items[-1]
    assert saved.metadata["rating"] == "good"
    assert saved.metadata["finish_reason"] == "stop"  # still there for the run machinery
    with pytest.raises(openai.BadRequestError):
        await client.beta.threads.messages.update(
            reply.id, thread_id=thread.id, metadata={"finish_reason": "mine"}
        )


async def test_bad_requests_are_400s_naming_the_param(client: openai.AsyncOpenAI) -> None:
    thread = await client.beta.threads.create()

    async def param_of(coro: Awaitable[Any]) -> Any:
        with pytest.raises(openai.BadRequestError) as refused:
            await coro
        return refused.value.body["param"]  # type: ignore[index]

    assert await param_of(client.beta.threads.create(extra_body={"assistant_id": "x"})) == (
        "assistant_id"
    )
    assert await param_of(client.beta.threads.update(thread.id, extra_body={"x": 1})) == "x"
    assert (
        await param_of(
            client.beta.threads.create(tool_resources={"code_interpreter": {"file_ids": ["f"]}})
        )
        == "tool_resources.code_interpreter"
    )
    empty = await client.beta.threads.create(tool_resources={"code_interpreter": {"file_ids": []}})
    assert empty.tool_resources is not None
    assert (
        await param_of(client.beta.threads.create(messages=[{"role": "system", "content": "x"}]))  # type: ignore[list-item,typeddict-item]
        == "messages[0].role"
    )
    messages = client.beta.threads.messages
    assert await param_of(messages.create(thread.id, role="user", content="")) == "content"
    assert (
        await param_of(
            messages.create(
                thread.id,
                role="user",
                content=[{"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}],
            )
        )
        == "content[0].image_url.url"
    )
    assert (
        await param_of(
            messages.create(
                thread.id,
                role="user",
                content="see file",
                attachments=[{"file_id": "file-abc", "tools": [{"type": "code_interpreter"}]}],
            )
        )
        == "attachments[0].tools[0].type"
    )
    assert (
        await param_of(messages.create(thread.id, role="user", content="x", extra_body={"y": 1}))
        == "y"
    )
    assert await param_of(messages.list(thread.id, limit=0)) == "limit"
    assert await param_of(messages.list(thread.id, order="up")) == "order"  # type: ignore[arg-type]
    # Nothing was added by the refused requests.
    assert (await listed(client, thread.id))[0] == []


async def test_unknown_and_foreign_ids_are_404s(
    api: RunningApi, client: openai.AsyncOpenAI
) -> None:
    mine = await client.beta.threads.create(messages=[{"role": "user", "content": "mine"}])
    (my_message,) = (await listed(client, mine.id))[0]
    sibling = await client.beta.threads.create(messages=[{"role": "user", "content": "sibling"}])
    (sibling_message,) = (await listed(client, sibling.id))[0]
    messages = client.beta.threads.messages

    async def not_found(coro: Awaitable[Any]) -> str:
        with pytest.raises(openai.NotFoundError) as missing:
            await coro
        return missing.value.message

    unknown = f"thread_{'0' * 32}"
    for bad in (unknown, "thread_nope", my_message.id):
        assert bad in await not_found(client.beta.threads.retrieve(bad))
    assert unknown in await not_found(messages.create(unknown, role="user", content="x"))
    assert unknown in await not_found(messages.list(unknown))
    # A message of another thread is not a message of this one, not even as a cursor.
    assert sibling_message.id in await not_found(
        messages.retrieve(sibling_message.id, thread_id=mine.id)
    )
    await not_found(messages.update(sibling_message.id, thread_id=mine.id, metadata={}))
    await not_found(messages.delete(sibling_message.id, thread_id=mine.id))
    assert sibling_message.id in await not_found(messages.list(mine.id, after=sibling_message.id))
    assert sibling_message.id in await not_found(messages.list(mine.id, before=sibling_message.id))
    await not_found(messages.list(mine.id, after=mine.id))  # an id of another kind

    async with sdk(api, "globex") as theirs:
        await not_found(theirs.beta.threads.retrieve(mine.id))
        await not_found(theirs.beta.threads.update(mine.id, metadata={"x": "y"}))
        await not_found(theirs.beta.threads.delete(mine.id))
        await not_found(theirs.beta.threads.messages.list(mine.id))
        await not_found(theirs.beta.threads.messages.create(mine.id, role="user", content="x"))
        await not_found(theirs.beta.threads.messages.retrieve(my_message.id, thread_id=mine.id))
        await not_found(
            theirs.beta.threads.messages.update(my_message.id, thread_id=mine.id, metadata={})
        )
        await not_found(theirs.beta.threads.messages.delete(my_message.id, thread_id=mine.id))
    # Untouched by the other tenant.
    assert (await client.beta.threads.retrieve(mine.id)).metadata == {}
    assert [m.id for m in (await listed(client, mine.id))[0]] == [my_message.id]
