"""``/v1/assistants`` through the official ``openai`` SDK, unchanged, against a running
server: CRUD, list pagination, OpenAI's error classes, tenant isolation, and every answer
checked strictly against the SDK's typed models."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import openai
import pytest
from openai.types.beta import Assistant, AssistantDeleted

from ai_agents.api.compat import ids
from ai_agents.api.config import ApiConfig
from ai_agents.api.testing import RunningApi, running_api
from ai_agents.config import Settings
from ai_agents.responses_agent import responses_agent
from ai_agents.testing import FunctionProvider
from tests.openai_compat import sdk
from tests.openai_shapes import conforms

# The SDK marks the Assistants API deprecated (OpenAI shut it down): that is the point.
pytestmark = pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


@pytest.fixture
def scripted() -> FunctionProvider:
    return FunctionProvider(lambda request: "hello")


@pytest.fixture
def api(
    settings: Settings, redis_cleanup: None, scripted: FunctionProvider
) -> Iterator[RunningApi]:
    providers = {"scripted": scripted}
    with running_api(settings, providers=providers, config=ApiConfig(key_cache_ttl=60)) as running:
        yield running


@pytest.fixture
async def client(api: RunningApi) -> AsyncIterator[openai.AsyncOpenAI]:
    async with sdk(api) as c:
        yield c


async def raw_json(response: Any) -> Any:
    return response.http_response.json()


async def test_create_retrieve_update_delete(client: openai.AsyncOpenAI) -> None:
    created = await client.beta.assistants.with_raw_response.create(
        model="gpt-4o",
        name="Weather bot",
        description="Says the weather",
        instructions="You answer questions about the weather.",
        tools=[WEATHER],
        metadata={"team": "ops"},
        temperature=0.3,
        top_p=0.9,
        response_format={"type": "json_object"},
    )
    body = await raw_json(created)
    assistant = conforms(Assistant, body)
    assert assistant.id.startswith("asst_")
    assert assistant.object == "assistant"
    assert isinstance(body["created_at"], int)
    assert (assistant.name, assistant.description) == ("Weather bot", "Says the weather")
    assert assistant.model == "gpt-4o"
    assert assistant.instructions == "You answer questions about the weather."
    assert assistant.metadata == {"team": "ops"}
    assert (assistant.temperature, assistant.top_p) == (0.3, 0.9)
    assert body["response_format"] == {"type": "json_object"}
    assert body["tools"] == [
        {"type": "function", "function": {**WEATHER["function"], "strict": False}}
    ]

    fetched = await client.beta.assistants.with_raw_response.retrieve(assistant.id)
    assert conforms(Assistant, await raw_json(fetched)) == assistant

    updated = await client.beta.assistants.with_raw_response.update(
        assistant.id,
        name="Weather bot 2",
        instructions="Be brief.",
        model="scripted/echo",
        metadata={"team": "ops", "tier": "gold"},
        tools=[],
        temperature=1.5,
    )
    changed = conforms(Assistant, await raw_json(updated))
    assert changed.name == "Weather bot 2"
    assert changed.instructions == "Be brief."
    assert changed.model == "scripted/echo"
    assert changed.metadata == {"team": "ops", "tier": "gold"}
    assert changed.tools == []
    assert changed.temperature == 1.5
    # What the update did not name is kept.
    assert (changed.description, changed.top_p) == ("Says the weather", 0.9)
    assert changed.created_at == assistant.created_at

    deleted = await client.beta.assistants.with_raw_response.delete(assistant.id)
    gone = conforms(AssistantDeleted, await raw_json(deleted))
    assert (gone.id, gone.deleted, gone.object) == (assistant.id, True, "assistant.deleted")
    with pytest.raises(openai.NotFoundError) as missing:
        await client.beta.assistants.retrieve(assistant.id)
    assert assistant.id in missing.value.message


async def test_an_assistant_is_an_agent_whose_instructions_are_the_system_prompt(
    api: RunningApi, client: openai.AsyncOpenAI, scripted: FunctionProvider
) -> None:
    assistant = await client.beta.assistants.create(
        model="scripted/echo", instructions="Only ever say 'pong'."
    )
    # No name given: the SDK reads None, the agent still has one.
    assert assistant.name is None
    agent_id = assistant.id.removeprefix("asst_")
    key = client.api_key
    async with httpx.AsyncClient(
        base_url=f"{api.url}/api/v1", headers={"Authorization": f"Bearer {key}"}
    ) as native:
        agent = (await native.get(f"/agents/{agent_id}")).json()
        assert agent["instructions"] == "Only ever say 'pong'."
        assert agent["name"] and agent["client_tools"] == []
        thread = (await native.post("/threads", json={"agent_id": agent_id})).json()
        answer = await native.post(f"/threads/{thread['id']}/runs", json={"input": "ping"})
        assert answer.status_code == 200, answer.text
    assert scripted.requests[-1].system_prompt == "Only ever say 'pong'."

    # /api/v1 sets and clears instructions too; null goes back to the compiled prompt.
    async with httpx.AsyncClient(
        base_url=f"{api.url}/api/v1", headers={"Authorization": f"Bearer {key}"}
    ) as native:
        made = await native.post(
            "/agents",
            json={
                "name": "N",
                "role": "R",
                "provider": "scripted",
                "model": "m",
                "instructions": "I",
            },
        )
        assert made.json()["instructions"] == "I"
        cleared = await native.patch(f"/agents/{made.json()['id']}", json={"instructions": None})
        assert cleared.json()["instructions"] is None


async def test_list_pages_in_both_orders(client: openai.AsyncOpenAI) -> None:
    made = [
        (await client.beta.assistants.create(model="gpt-4o", name=f"a{i}")).id for i in range(5)
    ]

    first = await client.beta.assistants.with_raw_response.list(limit=2, order="asc")
    body = await raw_json(first)
    assert body["object"] == "list"
    assert [a["id"] for a in body["data"]] == made[:2]
    assert (body["first_id"], body["last_id"], body["has_more"]) == (made[0], made[1], True)
    for item in body["data"]:
        conforms(Assistant, item)

    page = await client.beta.assistants.list(limit=2, order="asc", after=made[1])
    assert [a.id for a in page.data] == made[2:4]
    assert page.has_more

    newest = await client.beta.assistants.list(limit=3)  # default order: desc
    assert [a.id for a in newest.data] == made[::-1][:3]
    before = await client.beta.assistants.list(limit=2, order="desc", before=made[1])
    assert [a.id for a in before.data] == [made[3], made[2]]

    # The SDK's auto-pagination walks every page with `after`.
    walked = [a.id async for a in client.beta.assistants.list(limit=2, order="asc")]
    assert walked == made

    await client.beta.assistants.delete(made[2])
    remaining = [a.id async for a in client.beta.assistants.list(order="asc")]
    assert remaining == made[:2] + made[3:]


async def test_errors_read_as_the_sdks_classes(api: RunningApi, client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as unknown_param:
        await client.beta.assistants.create(model="gpt-4o", extra_body={"colour": "blue"})
    assert unknown_param.value.body["param"] == "colour"  # type: ignore[index]
    assert unknown_param.value.body["type"] == "invalid_request_error"  # type: ignore[index]

    with pytest.raises(openai.BadRequestError) as no_model:
        await client.post("/assistants", body={"name": "x"}, cast_to=Assistant)
    assert no_model.value.body["param"] == "model"  # type: ignore[index]

    with pytest.raises(openai.BadRequestError) as unknown_model:
        await client.beta.assistants.create(model="no-such-model-anywhere")
    assert "no-such-model-anywhere" in unknown_model.value.message

    with pytest.raises(openai.BadRequestError) as code_tool:
        await client.beta.assistants.create(model="gpt-4o", tools=[{"type": "code_interpreter"}])
    assert "code_interpreter" in code_tool.value.message

    too_much = {f"k{i}": "v" for i in range(17)}
    with pytest.raises(openai.BadRequestError) as metadata:
        await client.beta.assistants.create(model="gpt-4o", metadata=too_much)
    assert metadata.value.body["param"] == "metadata"  # type: ignore[index]

    with pytest.raises(openai.BadRequestError) as temperature:
        await client.beta.assistants.create(model="gpt-4o", temperature=3)
    assert temperature.value.body["param"] == "temperature"  # type: ignore[index]

    with pytest.raises(openai.BadRequestError) as limit:
        await client.beta.assistants.list(limit=101)
    assert limit.value.body["param"] == "limit"  # type: ignore[index]

    # Query parameters an operation does not take are refused, not ignored.
    with pytest.raises(openai.BadRequestError) as unknown_query:
        await client.beta.assistants.list(extra_query={"colour": "blue"})
    assert "colour" in unknown_query.value.message

    for bad_id in ("asst_nope", "thread_" + "0" * 32, "asst_" + "0" * 32):
        with pytest.raises(openai.NotFoundError):
            await client.beta.assistants.retrieve(bad_id)

    async with openai.AsyncOpenAI(
        base_url=f"{api.url}/v1", api_key="sk-wrong", max_retries=0
    ) as stranger:
        with pytest.raises(openai.AuthenticationError) as denied:
            await stranger.beta.assistants.list()
    assert denied.value.body["code"] == "invalid_api_key"  # type: ignore[index]


async def test_error_bodies_have_openais_shape(api: RunningApi) -> None:
    async with httpx.AsyncClient(base_url=f"{api.url}/v1") as plain:
        for response in (
            await plain.get("/assistants"),
            await plain.get("/no-such-endpoint"),
        ):
            error = response.json()["error"]
            assert set(error) == {"message", "type", "param", "code"}, error
        assert (await plain.get("/assistants")).status_code == 401
        assert (await plain.get("/no-such-endpoint")).status_code == 404
        # /api/v1 keeps its own error shape.
        native = (await plain.get(f"{api.url}/api/v1/agents")).json()
        assert set(native) == {"code", "message", "details", "retry_after"}


async def test_tenants_see_only_their_assistants(api: RunningApi) -> None:
    async with sdk(api, "acme") as acme, sdk(api, "globex") as globex:
        mine = await acme.beta.assistants.create(model="gpt-4o", name="acme's")
        theirs = await globex.beta.assistants.create(model="gpt-4o", name="globex's")
        assert [a.id async for a in acme.beta.assistants.list()] == [mine.id]
        for call in (
            globex.beta.assistants.retrieve(mine.id),
            globex.beta.assistants.update(mine.id, name="taken"),
            globex.beta.assistants.delete(mine.id),
        ):
            with pytest.raises(openai.NotFoundError):
                await call
        with pytest.raises(openai.NotFoundError):
            await acme.beta.assistants.list(after=theirs.id)
        assert (await acme.beta.assistants.retrieve(mine.id)).name == "acme's"


async def test_the_librarys_own_agents_are_no_assistants(
    api: RunningApi, client: openai.AsyncOpenAI
) -> None:
    mine = await client.beta.assistants.create(model="gpt-4o")
    acme = api.store.for_tenant("acme")
    responses = api.call(responses_agent(acme))
    placeholder_thread = api.call(acme.create_unassigned_thread())
    placeholder = api.call(acme.get_thread(placeholder_thread)).agent_id
    assert [a.id async for a in client.beta.assistants.list()] == [mine.id]
    for agent in (responses, placeholder):
        with pytest.raises(openai.NotFoundError):
            await client.beta.assistants.retrieve(ids.format_id(ids.ASSISTANT, agent))
