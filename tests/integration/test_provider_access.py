"""Which providers tenants may use: the deployment allowlist, per-tenant lists, and the
local model directories (a tenant cannot probe the server's files through model names)."""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from ai_agents import AgentDefinition, AgentStore
from ai_agents.config import Settings
from ai_agents.errors import ConfigurationError, ProviderOverloaded, ValidationError
from ai_agents.providers.catalog import provider_env_vars
from ai_agents.providers.factory import ProviderNotAllowed
from ai_agents.providers.local import (
    DEFAULT_MODEL,
    LocalLlamaProvider,
    UnknownLocalModel,
    check_model,
)
from ai_agents.testing import ScriptedProvider

DEFINITION = AgentDefinition(name="a", role="You answer.")

#: Every variable that configures a provider (the tests start from a bare machine).
PROVIDER_VARS = (
    "AI_AGENTS_PROVIDERS",
    "AI_AGENTS_LOCAL_MODEL_PATH",
    "AI_AGENTS_LOCAL_MODEL_DIRS",
    *provider_env_vars(),  # every key and URL variable of the provider catalog
)

StoreMaker = Callable[..., AgentStore]


@pytest.fixture
def bare_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in PROVIDER_VARS:
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
async def make_store(
    settings: Settings, redis_cleanup: None, bare_env: None
) -> AsyncIterator[StoreMaker]:
    stores: list[AgentStore] = []

    def make(**changes: Any) -> AgentStore:
        store = AgentStore(settings=replace(settings, **changes))
        stores.append(store)
        return store

    yield make
    for store in stores:
        with contextlib.suppress(Exception):
            await store.close()


# --- the deployment allowlist ---------------------------------------------------------


async def test_unconfigured_ollama_is_refused_at_save_and_at_run(
    make_store: StoreMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = make_store()
    with pytest.raises(ProviderNotAllowed, match="'ollama' is not enabled") as info:
        await store.create_agent(DEFINITION, provider="ollama", model="llama3.2")
    assert isinstance(info.value, ValidationError)  # HTTP 422
    assert info.value.details["field"] == "provider"
    # The same for a fallback and a routing target, each naming its field.
    with pytest.raises(ProviderNotAllowed) as info:
        await store.create_agent(
            DEFINITION,
            provider="openai",
            model="gpt-4o",
            fallbacks=[{"provider": "ollama", "model": "llama3.2"}],
        )
    assert info.value.details["field"] == "fallbacks[0]"

    # Configured (OLLAMA_HOST), it is enabled; an agent saved then cannot run once the
    # operator unsets it: the server never connects to its default 127.0.0.1:11434.
    monkeypatch.setenv("OLLAMA_HOST", "127.0.0.1:1")
    agent = await store.create_agent(DEFINITION, provider="ollama", model="llama3.2")
    monkeypatch.delenv("OLLAMA_HOST")
    thread = await store.create_thread(agent)
    with pytest.raises(ProviderNotAllowed, match="'ollama' is not enabled"):
        await store.run(thread, "hi")


async def test_local_is_enabled_only_when_explicit_or_nothing_else_is_configured(
    make_store: StoreMaker, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A fresh machine: nothing configured, the bundled local model is the one choice.
    assert make_store().runner.providers.known("local")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    store = make_store()
    assert not store.runner.providers.known("local")
    with pytest.raises(ProviderNotAllowed, match="'local' is not enabled"):
        await store.create_agent(DEFINITION, provider="local", model=DEFAULT_MODEL)
    # Enabled explicitly by a model directory (or by the allowlist).
    assert make_store(local_model_dirs=(str(tmp_path),)).runner.providers.known("local")
    assert make_store(enabled_providers=("local",)).runner.providers.known("local")


async def test_explicit_allowlist_keeps_registered_providers(make_store: StoreMaker) -> None:
    store = make_store(enabled_providers=("openai",))
    store.register_provider("scripted", ScriptedProvider(["hello"]))
    await store.create_agent(DEFINITION, provider="openai", model="gpt-4o")
    with pytest.raises(ProviderNotAllowed, match="'anthropic'"):
        await store.create_agent(DEFINITION, provider="anthropic", model="claude-3-5-haiku-latest")
    agent = await store.create_agent(DEFINITION, provider="scripted", model="m")
    response = await store.run(await store.create_thread(agent), "hi")
    assert response.content == "hello"
    # "*" enables every built-in (the behaviour before the allowlist).
    assert make_store(enabled_providers=("*",)).runner.providers.known("ollama")


# --- per tenant -----------------------------------------------------------------------


async def test_tenant_lists_narrow_the_providers_at_save_and_at_run(
    make_store: StoreMaker,
) -> None:
    store = make_store(tenant_providers={"acme": ["scripted"], "*": ["scripted", "backup"]})
    store.register_provider("scripted", ScriptedProvider(["from scripted"] * 3))
    store.register_provider("backup", ScriptedProvider(["from backup"]))
    acme, beta = store.for_tenant("acme"), store.for_tenant("beta")

    with pytest.raises(ProviderNotAllowed, match="not enabled for tenant 'acme'"):
        await acme.create_agent(DEFINITION, provider="backup", model="m")
    with pytest.raises(ProviderNotAllowed, match="not enabled for tenant 'beta'"):
        await beta.create_agent(DEFINITION, provider="openai", model="gpt-4o")
    agent = await beta.create_agent(DEFINITION, provider="backup", model="m")
    assert (await beta.run(await beta.create_thread(agent), "hi")).content == "from backup"

    # Runs check the tenant too (an agent saved before the operator narrowed the list):
    # a forbidden primary fails the run, a forbidden fallback is skipped.
    narrowed = replace(store.settings, tenant_providers={"*": ["scripted"]})
    store.runner.providers.settings = narrowed
    thread = await beta.create_thread(agent)
    with pytest.raises(ProviderNotAllowed, match="'backup' is not enabled for tenant 'beta'"):
        await beta.run(thread, "hi")
    store.register_provider("down", ScriptedProvider([ProviderOverloaded("down", provider="down")]))
    store.runner.providers.settings = replace(narrowed, tenant_providers={})
    chained = await beta.create_agent(
        DEFINITION,
        provider="down",
        model="m",
        fallbacks=[{"provider": "backup", "model": "m"}, {"provider": "scripted", "model": "m"}],
    )
    store.runner.providers.settings = replace(
        narrowed, tenant_providers={"beta": ["down", "scripted"]}
    )
    response = await beta.run(await beta.create_thread(chained), "hi")
    assert (response.provider, response.content) == ("scripted", "from scripted")
    assert [(s["provider"], s["reason"]) for s in response.routing["skipped"]] == [
        ("down", "retries_exhausted"),
        ("backup", "not_allowed"),
    ]


# --- local model paths ----------------------------------------------------------------


def _same_error(model: str, **kw: Any) -> str:
    with pytest.raises(UnknownLocalModel) as info:
        check_model(model, **kw)
    return info.value.message.replace(repr(model), "<model>")


def test_local_model_paths_are_confined_to_the_model_dirs(tmp_path: Path) -> None:
    models = tmp_path / "models"
    models.mkdir()
    (models / "ok.gguf").write_bytes(b"GGUF")
    outside = tmp_path / "secret.gguf"
    outside.write_bytes(b"GGUF")
    (models / "link.gguf").symlink_to(outside)
    dirs = (str(models),)

    check_model(str(models / "ok.gguf"), model_dirs=dirs)
    check_model("ok.gguf", model_dirs=dirs)  # a name inside the directory
    check_model(DEFAULT_MODEL, model_dirs=())
    check_model("mine", models={"mine": "/srv/mine.gguf"}, model_dirs=())

    refused = [
        str(outside),  # exists, outside the directory
        str(tmp_path / "missing.gguf"),  # missing, outside
        str(models / "missing.gguf"),  # missing, inside
        str(models / ".." / "secret.gguf"),  # exists, escapes with ..
        str(models / "link.gguf"),  # exists, escapes through a symlink
        "/etc/passwd",  # not a .gguf file
    ]
    messages = {_same_error(model, model_dirs=dirs) for model in refused}
    # Existing or not, forbidden or unknown: one message, no oracle.
    assert len(messages) == 1
    # No directory configured: no path at all.
    assert _same_error(str(models / "ok.gguf"), model_dirs=()) in messages


async def test_local_model_path_is_checked_when_the_agent_is_saved(
    make_store: StoreMaker, tmp_path: Path
) -> None:
    (tmp_path / "ok.gguf").write_bytes(b"GGUF")
    elsewhere = tmp_path.parent / f"{tmp_path.name}-elsewhere.gguf"
    elsewhere.write_bytes(b"GGUF")
    try:
        store = make_store(local_model_dirs=(str(tmp_path),), enabled_providers=("local", "openai"))
        await store.create_agent(DEFINITION, provider="local", model=str(tmp_path / "ok.gguf"))
        errors = []
        for model in (str(elsewhere), str(tmp_path / "nope.gguf")):
            with pytest.raises(UnknownLocalModel) as info:
                await store.create_agent(DEFINITION, provider="local", model=model)
            assert isinstance(info.value, ValidationError)
            errors.append(info.value.message.replace(repr(model), "<model>"))
        assert errors[0] == errors[1]
    finally:
        elsewhere.unlink()


@pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None, reason="llama-cpp-python is not installed"
)
def test_the_local_provider_loads_only_from_its_model_dirs(tmp_path: Path) -> None:
    outside = tmp_path / "outside.gguf"
    outside.write_bytes(b"GGUF")
    provider = LocalLlamaProvider(model_dirs=())
    with pytest.raises(UnknownLocalModel) as info:
        provider.model_path(str(outside))
    assert isinstance(info.value, ConfigurationError)
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "in.gguf").write_bytes(b"GGUF")
    inside = LocalLlamaProvider(model_dirs=[str(tmp_path / "models")])
    assert inside.model_path("in.gguf") == str((tmp_path / "models" / "in.gguf").resolve())
