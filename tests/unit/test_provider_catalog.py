"""The provider catalog is the one place provider facts live (issue 15, item 6).

Every consumer (factory, breaker, doctor, registry, docs) is checked against
:data:`ai_agents.providers.catalog.PROVIDERS`, and a scan of ``ai_agents/`` catches a new
copy of a provider's key or URL variable written anywhere else.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from ai_agents.commands.doctor import Check, _check_providers
from ai_agents.config import Settings
from ai_agents.providers.breaker import endpoint_of
from ai_agents.providers.catalog import (
    PROVIDERS,
    ProviderSpec,
    markdown_table,
    provider_env_vars,
    setup_hint,
)
from ai_agents.providers.factory import BUILTIN, OPENAI_COMPATIBLE, SERVER_SIDE, ProviderFactory
from ai_agents.providers.registry import DEFAULT_LOCAL_PROVIDERS, builtin_models
from tests.fakes.server import free_port

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "ai_agents"
CATALOG = PACKAGE / "providers" / "catalog.py"
#: A vendor-looking variable name (``MISTRAL_API_KEY``, ``FOO_BASE_URL``), ours excepted.
VENDOR_VAR = re.compile(r"^(?!AI_AGENTS_)[A-Z][A-Z0-9_]*_(API_KEY|BASE_URL)$")


@pytest.fixture
def bare_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No provider variable set (whatever the machine running the tests has)."""
    for var in (*provider_env_vars(), "AI_AGENTS_PROVIDERS", "AI_AGENTS_ENABLED_PROVIDERS"):
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


def dummy_url(spec: ProviderSpec, port: int = 9) -> str:
    """A URL nobody is asked (port 9 is discard; the tests build clients, never call)."""
    return f"http://127.0.0.1:{port}/{spec.name}/v1"


def set_all(env: pytest.MonkeyPatch, spec: ProviderSpec, port: int = 9) -> None:
    for var in spec.key_envs:
        env.setenv(var, f"key-of-{spec.name}")
    if spec.url_env:
        env.setenv(spec.url_env, dummy_url(spec, port))


def string_literals(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]


# --- one place ------------------------------------------------------------------------


def test_provider_variables_are_written_only_in_the_catalog() -> None:
    ours = set(provider_env_vars())
    assert {"OPENAI_API_KEY", "GROQ_API_KEY", "OLLAMA_HOST", "VLLM_BASE_URL"} <= ours
    found = [
        f"{path.relative_to(ROOT)}:{line}: {value}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != CATALOG
        for line, value in string_literals(path)
        if value in ours or VENDOR_VAR.match(value)
    ]
    assert not found, "read these from ai_agents.providers.catalog instead:\n" + "\n".join(found)
    # ... and the scan does see the catalog's own literals (it is not looking at nothing).
    assert ours <= {value for _, value in string_literals(CATALOG)}


def test_the_factory_and_the_registry_take_their_names_from_the_catalog() -> None:
    assert set(BUILTIN) | set(OPENAI_COMPATIBLE) == set(PROVIDERS)
    assert not set(BUILTIN) & set(OPENAI_COMPATIBLE)
    assert set(SERVER_SIDE) == {"ollama", "local"}
    assert {"ollama", "local", "vllm", "llamacpp", "openai_compatible"} == DEFAULT_LOCAL_PROVIDERS
    assert {n for n, p in PROVIDERS.items() if p.local} == DEFAULT_LOCAL_PROVIDERS
    # every built-in model belongs to a catalog provider
    assert {provider for provider, *_ in builtin_models()} <= set(PROVIDERS)


def test_spec_helpers_read_the_given_environment() -> None:
    google = PROVIDERS["google"]
    assert google.api_key({}) is None and not google.configured({})
    assert google.api_key({"GOOGLE_API_KEY": "g"}) == "g"
    assert google.api_key({"GOOGLE_API_KEY": "g", "GEMINI_API_KEY": "m"}) == "m"  # first wins
    assert google.resolve_base_url({}) == google.default_url
    assert google.resolve_base_url({"GEMINI_BASE_URL": "http://x/v1"}) == "http://x/v1"
    assert google.configured({"GOOGLE_API_KEY": "g"})
    ollama = PROVIDERS["ollama"]  # a default URL, but configured only by its variable
    assert not ollama.configured({}) and ollama.configured({"OLLAMA_HOST": "box"})
    vllm = PROVIDERS["vllm"]  # self-hosted: the URL configures it, a key alone does not
    assert not vllm.configured({"VLLM_API_KEY": "k"}) and vllm.mentioned({"VLLM_API_KEY": "k"})
    assert vllm.configured({"VLLM_BASE_URL": "http://v/v1"})
    assert vllm.resolve_base_url({}) is None
    assert setup_hint() == "OPENAI_API_KEY, ANTHROPIC_API_KEY or OLLAMA_HOST"


# --- the factory builds every entry; the breaker keys it on the catalog URL -----------


@pytest.mark.parametrize("name", list(PROVIDERS))
def test_the_factory_builds_every_catalog_provider(bare_env: pytest.MonkeyPatch, name: str) -> None:
    spec = PROVIDERS[name]
    set_all(bare_env, spec)
    if spec.adapter == "local":
        pytest.importorskip("llama_cpp")
    factory = ProviderFactory(Settings(enabled_providers=("*",)))
    assert factory.known(name)
    provider = factory.get(name)
    assert (provider.name, provider.kind) == (name, spec.kind)
    if spec.adapter == "local":
        assert endpoint_of(provider) == "local:local"
        return
    url = str(spec.resolve_base_url())  # the dummy URL, or the vendor's (no URL variable)
    assert url == (dummy_url(spec) if spec.url_env else spec.default_url)
    assert endpoint_of(provider) == url.rstrip("/")  # the breaker's key
    if spec.adapter == "openai-compatible":
        assert provider.settings.base_url == url
        assert provider.settings.api_key == (f"key-of-{name}" if spec.key_envs else "not-needed")
    if spec.adapter in ("openai", "anthropic"):  # the SDK client gets the catalog's values
        client = provider.client  # type: ignore[attr-defined]
        assert client.api_key == f"key-of-{name}"
        assert str(client.base_url).rstrip("/") == url


@pytest.mark.parametrize("name", [n for n, p in PROVIDERS.items() if p.default_url])
def test_without_a_url_variable_the_breaker_key_is_the_catalog_default(
    bare_env: pytest.MonkeyPatch, name: str
) -> None:
    provider = ProviderFactory(Settings(enabled_providers=("*",))).get(name)
    assert endpoint_of(provider) == str(PROVIDERS[name].default_url).rstrip("/")


@pytest.mark.parametrize("name", [n for n, p in PROVIDERS.items() if p.default_url is None])
def test_a_provider_without_a_default_url_is_not_built_without_its_variable(
    bare_env: pytest.MonkeyPatch, name: str
) -> None:
    spec = PROVIDERS[name]
    if spec.adapter == "local":
        return
    with pytest.raises(Exception, match=str(spec.url_env)):
        ProviderFactory(Settings(enabled_providers=("*",))).get(name)


def test_unconfigured_server_side_providers_are_not_enabled_by_default(
    bare_env: pytest.MonkeyPatch,
) -> None:
    bare_env.setenv("OPENAI_API_KEY", "k")  # something is configured: local is not the fallback
    allowed = ProviderFactory(Settings()).allowed()
    assert allowed is not None
    assert set(allowed) == set(PROVIDERS) - set(SERVER_SIDE)
    bare_env.setenv("OLLAMA_HOST", "127.0.0.1:9")
    assert "ollama" in (ProviderFactory(Settings()).allowed() or ())


# --- the doctor reports every entry ---------------------------------------------------


def doctor_lines(checks: list[Check], spec: ProviderSpec) -> list[Check]:
    wanted = "local model" if spec.adapter == "local" else f"provider {spec.name}"
    return [c for c in checks if c.name == wanted]


async def test_the_doctor_reports_every_catalog_provider_unconfigured(
    bare_env: pytest.MonkeyPatch,
) -> None:
    checks: list[Check] = []
    await _check_providers(checks)
    for spec in PROVIDERS.values():
        lines = doctor_lines(checks, spec)
        assert lines, f"doctor says nothing about {spec.name}"
        if spec.adapter in ("local", "ollama"):
            continue  # depends on what this machine has installed / running
        (line,) = lines
        assert line.status == "info"
        for var in spec.key_envs if spec.needs_key else (spec.url_env,):
            assert f"{var}" in line.detail


async def test_the_doctor_checks_every_catalog_provider_with_its_variables(
    bare_env: pytest.MonkeyPatch,
) -> None:
    closed = free_port()  # every URL variable points at a closed port: each probe fails
    for spec in PROVIDERS.values():
        set_all(bare_env, spec, closed)
    checks: list[Check] = []
    usable = await _check_providers(checks)
    for spec in PROVIDERS.values():
        if spec.adapter == "local":
            continue
        text = "\n".join(f"{c.status} {c.detail}" for c in doctor_lines(checks, spec))
        if spec.needs_key:
            assert f"ok {spec.key_envs[0]} is set" in text
        if spec.url_env:  # its URL was asked, found dead, and named
            assert f"FAIL {spec.url_env}={dummy_url(spec, closed)}" in text, text
            assert usable[spec.name] is False
        else:
            assert usable[spec.name] is True


# --- the docs --------------------------------------------------------------------------


def test_docs_providers_table_is_the_catalog() -> None:
    text = (ROOT / "docs" / "providers.md").read_text(encoding="utf-8")
    match = re.search(r"<!-- catalog:begin[^>]*-->\n(.*?)\n<!-- catalog:end -->", text, re.S)
    assert match, "docs/providers.md lost its catalog markers"
    assert match.group(1) == markdown_table(), (
        "docs/providers.md's provider table differs from the catalog: paste the output of\n"
        'python -c "from ai_agents.providers.catalog import markdown_table; '
        'print(markdown_table())"'
    )
    for name in PROVIDERS:
        assert f"| `{name}` |" in match.group(1)
