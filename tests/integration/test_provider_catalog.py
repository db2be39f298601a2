"""Provider catalog (issue 15, item 6): prompt-cache prices, the ``google`` and ``groq``
providers.

Runs go through a real store, the real adapters and the strict vendor fakes; what is
checked is the cost the store records for the run.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest
from genai_prices import Usage, calc_price

from ai_agents import AgentDefinition, AgentStore
from ai_agents.api.testing import running_api
from ai_agents.config import Settings
from ai_agents.providers.anthropic import AnthropicProvider
from ai_agents.providers.base import ProviderSettings
from ai_agents.providers.openai import OpenAIChatProvider
from ai_agents.response import AgentResponse, DoneEvent
from tests.fakes.anthropic_fake import AnthropicFake
from tests.fakes.openai_fake import OpenAIFake
from tests.fakes.script import Reply
from tests.fakes.server import serve

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def anthropic_server() -> Iterator[tuple[AnthropicFake, str]]:
    fake = AnthropicFake(api_key="sk-ant-test")
    with serve(fake) as url:
        yield fake, url


@pytest.fixture(scope="module")
def openai_server() -> Iterator[tuple[OpenAIFake, str]]:
    fake = OpenAIFake(api_key="sk-gemini-test")
    with serve(fake) as url:
        yield fake, url + "/v1"


async def _thread(store: AgentStore, provider: str, model: str) -> uuid.UUID:
    agent = await store.create_agent(
        AgentDefinition(name="Helper", role="You help."), provider=provider, model=model
    )
    return await store.create_thread(agent, user_id="u1")


async def _answer(store: AgentStore, thread_id: uuid.UUID, *, streaming: bool) -> AgentResponse:
    if not streaming:
        return await store.run(thread_id, "hello")
    events = [event async for event in store.stream(thread_id, "hello")]
    done = events[-1]
    assert isinstance(done, DoneEvent)
    return done.response


@pytest.mark.parametrize("streaming", [False, True], ids=["complete", "stream"])
async def test_anthropic_cache_reads_and_writes_are_billed_at_cache_prices(
    store: AgentStore, anthropic_server: tuple[AnthropicFake, str], streaming: bool
) -> None:
    fake, url = anthropic_server
    fake.script.reset()
    settings = ProviderSettings(base_url=url, api_key="sk-ant-test", name="anthropic")
    store.register_provider("anthropic", AnthropicProvider(settings))
    thread_id = await _thread(store, "anthropic", "claude-haiku-4-5")  # $1 in / $5 out
    fake.push(Reply(content="Hi.", usage=(1_000, 200), cache_read=10_000, cache_write=2_000))

    response = await _answer(store, thread_id, streaming=streaming)

    assert response.content == "Hi."
    # input_tokens stays every input token, as before (uncached + cache read + cache write)
    assert response.usage.input_tokens == 13_000
    # 1000 x $1 + 10000 x $0.10 (read: 0.1x) + 2000 x $1.25 (5-minute write: 1.25x)
    # + 200 x $5, per 1M tokens; at the full input price it would be $0.014
    expected = (1_000 * 1.0 + 10_000 * 0.1 + 2_000 * 1.25 + 200 * 5.0) / 1e6
    assert response.cost == pytest.approx(expected)
    assert (await store.usage(thread_id=thread_id)).cost == pytest.approx(expected)


@pytest.mark.parametrize("streaming", [False, True], ids=["complete", "stream"])
async def test_openai_cached_input_is_billed_at_the_cached_price(
    store: AgentStore, openai_server: tuple[OpenAIFake, str], streaming: bool
) -> None:
    fake, url = openai_server
    fake.script.reset()
    settings = ProviderSettings(base_url=url, api_key="sk-gemini-test", name="openai")
    store.register_provider("openai", OpenAIChatProvider(settings))
    thread_id = await _thread(store, "openai", "gpt-5.2")  # $1.75 in / $14 out, cached 0.1x
    fake.push(Reply(content="Hi.", usage=(10_000, 1_000), cache_read=8_000))

    response = await _answer(store, thread_id, streaming=streaming)

    assert response.usage.input_tokens == 10_000  # prompt_tokens already include the cached
    expected = (2_000 * 1.75 + 8_000 * 0.175 + 1_000 * 14.0) / 1e6
    assert response.cost == pytest.approx(expected)
    assert (await store.usage(thread_id=thread_id)).cost == pytest.approx(expected)


async def test_a_google_agent_runs_through_geminis_openai_endpoint(
    store: AgentStore,
    openai_server: tuple[OpenAIFake, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake, url = openai_server
    fake.script.reset()
    monkeypatch.setenv("GEMINI_BASE_URL", url)
    monkeypatch.setenv("GEMINI_API_KEY", "sk-gemini-test")
    monkeypatch.setenv("GOOGLE_API_KEY", "not-this-one")
    monkeypatch.delenv("AI_AGENTS_PROVIDERS", raising=False)
    thread_id = await _thread(store, "google", "gemini-2.5-flash")
    fake.push(Reply(content="Bonjour.", usage=(4_000, 100), cache_read=1_000))

    response = await store.run(thread_id, "hello")

    assert response.content == "Bonjour."
    assert fake.script.headers[-1]["authorization"] == "Bearer sk-gemini-test"
    assert fake.requests[-1]["model"] == "gemini-2.5-flash"
    # genai-prices' price, its cached-input price included
    usage = Usage(input_tokens=4_000, cache_read_tokens=1_000, output_tokens=100)
    expected = calc_price(usage, "gemini-2.5-flash", provider_id="google").total_price
    assert response.cost == pytest.approx(float(expected))
    run = await store.get_run(response.run_id)
    assert (run.provider, run.model) == ("google", "gemini-2.5-flash")


async def test_models_endpoint_flags_guessed_entries_and_cache_prices(
    settings: Settings, redis_cleanup: None
) -> None:
    with running_api(settings) as api:
        headers = {"Authorization": f"Bearer {api.create_key('acme')}"}
        async with httpx.AsyncClient(base_url=api.api, headers=headers, timeout=30) as client:
            r = await client.get("/models", params={"provider": "anthropic"})
    assert r.status_code == 200
    models = {m["model"]: m for m in r.json()["data"]}
    assert models["claude-mythos-5"]["estimated"] is True  # a GUESS row
    assert models["claude-opus-4-7"]["estimated"] is False  # priced by genai-prices
    assert models["claude-haiku-4-5"]["estimated"] is False
    haiku = models["claude-haiku-4-5"]
    assert (haiku["cache_read_multiplier"], haiku["cache_write_multiplier"]) == (0.1, 1.25)


async def test_a_groq_agent_validates_runs_and_is_priced(
    store: AgentStore, openai_server: tuple[OpenAIFake, str]
) -> None:
    fake, url = openai_server
    fake.script.reset()
    settings = ProviderSettings(base_url=url, api_key="sk-gemini-test", name="groq")
    store.register_provider("groq", OpenAIChatProvider(settings))
    thread_id = await _thread(store, "groq", "llama-3.3-70b-versatile")
    fake.push(Reply(content="Hola.", usage=(2_000, 300)))

    response = await store.run(thread_id, "hello")

    assert response.content == "Hola."
    assert fake.requests[-1]["model"] == "llama-3.3-70b-versatile"
    usage = Usage(input_tokens=2_000, output_tokens=300)
    expected = calc_price(usage, "llama-3.3-70b-versatile", provider_id="groq").total_price
    assert response.cost == pytest.approx(float(expected)) and response.cost > 0
