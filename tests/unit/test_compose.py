"""docker-compose.yml is valid YAML with a sound structure (no Docker engine runs here).

The checks are the mistakes that make ``docker compose up`` fail or hang: a service
without image/build, a dependency on a service that does not exist (or waiting for the
health of a service that has no health check), an undeclared named volume, a bad or
duplicated host port, and app services wired to the wrong hosts.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

yaml = pytest.importorskip("yaml", reason="PyYAML (dev extra) parses docker-compose.yml")

ROOT = Path(__file__).resolve().parents[2]
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    services = compose["services"]
    assert isinstance(services, dict) and services
    return services


def _one_shot(name: str, services: dict[str, dict[str, Any]]) -> bool:
    """A job others wait to *complete* (e.g. migrate): it needs no health check."""
    return any(
        isinstance(s.get("depends_on"), dict)
        and (s["depends_on"].get(name) or {}).get("condition") == "service_completed_successfully"
        for s in services.values()
    )


def test_the_expected_services_exist(services: dict[str, dict[str, Any]]) -> None:
    assert {"postgres", "redis", "opensearch", "ollama", "api", "worker", "migrate"} <= set(
        services
    )
    assert "version" not in services  # the obsolete top-level key is not mistaken for one


def test_versions_of_the_backing_services(services: dict[str, dict[str, Any]]) -> None:
    assert services["postgres"]["image"].startswith("postgres:16")
    assert services["redis"]["image"].startswith("redis:7")
    assert services["opensearch"]["image"].startswith("opensearchproject/opensearch:2.")
    assert services["ollama"]["image"].startswith("ollama/ollama")


def test_every_service_has_an_image_or_a_build(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        assert "image" in service or "build" in service, name
        build = service.get("build")
        if build is not None:
            context = build if isinstance(build, str) else build["context"]
            dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile")
            assert (ROOT / context / (dockerfile or "Dockerfile")).is_file(), name


def test_long_running_services_have_health_checks(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        if _one_shot(name, services):
            assert service.get("restart") == "no", f"{name} is a one-shot job"
            continue
        check = service.get("healthcheck")
        assert isinstance(check, dict), f"{name} has no healthcheck"
        test = check["test"]
        assert isinstance(test, list) and test[0] in ("CMD", "CMD-SHELL") and len(test) > 1, name
        for key in ("interval", "timeout"):
            assert str(check[key]).endswith("s"), (name, key)
        assert int(check["retries"]) >= 1, name


def test_depends_on_refers_to_existing_services_with_valid_conditions(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        deps = service.get("depends_on") or {}
        assert isinstance(deps, dict), f"{name}: use the long depends_on form with conditions"
        for dep, spec in deps.items():
            assert dep in services, f"{name} depends on unknown service {dep}"
            assert dep != name
            condition = spec["condition"]
            assert condition in CONDITIONS, (name, dep, condition)
            if condition == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits for {dep}'s health"


def test_no_dependency_cycle(services: dict[str, dict[str, Any]]) -> None:
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"cycle: {' -> '.join((*path, name))}"
        if name in done:
            return
        for dep in services[name].get("depends_on") or {}:
            visit(dep, (*path, name))
        done.add(name)

    for name in services:
        visit(name, ())


def test_named_volumes_are_declared(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    declared = set(compose.get("volumes") or {})
    used: set[str] = set()
    for name, service in services.items():
        for volume in service.get("volumes") or []:
            source = volume.split(":", 1)[0] if isinstance(volume, str) else volume["source"]
            if not source.startswith((".", "/", "~")):
                assert source in declared, f"{name} uses undeclared volume {source}"
                used.add(source)
    assert used == declared, f"declared but unused: {declared - used}"
    for stateful in ("postgres", "redis", "opensearch", "ollama"):
        assert services[stateful].get("volumes"), f"{stateful} keeps its data in a volume"


def _port_pairs(spec: str) -> tuple[str | None, int, int]:
    """("127.0.0.1:5432:5432") -> (ip, host port, container port)."""
    parts = str(spec).split(":")
    ip = parts[0] if len(parts) == 3 else None
    host, container = (int(parts[-2]), int(parts[-1])) if len(parts) >= 2 else (0, int(parts[0]))
    return ip, host, container


def test_ports_are_sane(services: dict[str, dict[str, Any]]) -> None:
    seen: dict[int, str] = {}
    for name, service in services.items():
        for spec in service.get("ports") or []:
            assert isinstance(spec, str), (
                f"{name}: quote port mappings (YAML reads 5432:5432 oddly)"
            )
            ip, host, container = _port_pairs(spec)
            assert 1 <= host <= 65535 and 1 <= container <= 65535, (name, spec)
            assert host not in seen, f"host port {host} used by {seen.get(host)} and {name}"
            seen[host] = name
            if name in ("postgres", "redis", "opensearch", "ollama"):
                assert ip == "127.0.0.1", f"{name} must not be exposed beyond the host"
    expected = {"postgres": 5432, "redis": 6379, "ollama": 11434, "api": 8000}
    for name, port in expected.items():
        containers = [_port_pairs(p)[2] for p in services[name].get("ports") or []]
        assert port in containers, f"{name} should publish its port {port}"


def test_app_services_are_wired_to_the_backing_services(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in ("api", "worker", "migrate"):
        service = services[name]
        env = service["environment"]
        assert env["AI_AGENTS_DATABASE_URL"].startswith("postgresql://")
        assert "@postgres:5432/" in env["AI_AGENTS_DATABASE_URL"]
        assert env["AI_AGENTS_REDIS_URL"] == "redis://redis:6379/0"
        assert env["OLLAMA_HOST"] == "http://ollama:11434"
        assert env["OPENSEARCH_URL"] == "http://opensearch:9200"
        assert env["AI_AGENTS_EMBEDDED"] == "0"
        assert service["build"]["context"] == "."
    assert services["api"]["command"][0] == "serve"
    assert "0.0.0.0" in services["api"]["command"]
    assert services["worker"]["command"][0] == "worker"
    assert services["migrate"]["command"] == ["migrate"]
    for name in ("api", "worker"):
        assert services[name]["depends_on"]["migrate"]["condition"] == (
            "service_completed_successfully"
        )
        assert services[name]["depends_on"]["redis"]["condition"] == "service_healthy"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "8000" in str(services["api"]["healthcheck"]["test"])
    assert "/api/v1/health" in str(services["api"]["healthcheck"]["test"])


def test_opensearch_without_security_is_on_an_internal_network_only(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    opensearch = services["opensearch"]
    env = opensearch["environment"]
    assert env["discovery.type"] == "single-node"
    if env.get("DISABLE_SECURITY_PLUGIN") != "true":
        return  # with its security plugin on, it may live anywhere
    # No login, no TLS: reachable only over an internal network, never from the host.
    assert not opensearch.get("ports"), "an OpenSearch without security publishes no port"
    networks = opensearch.get("networks")
    assert networks, "OpenSearch must not sit on the default network"
    for network in networks:
        assert compose["networks"][network].get("internal") is True, network
    members = {
        name
        for name, service in services.items()
        if set(service.get("networks") or ()) & set(networks)
    }
    assert members == {"opensearch", "api", "worker"}
    # The reason is written where someone would add a port.
    text = (ROOT / "docker-compose.yml").read_text()
    assert "internal" in text and "Do not add `ports:` here" in text


def _required(value: str, variable: str) -> bool:
    """``${VAR:?message}``: compose refuses to start when VAR is unset or empty."""
    return f"${{{variable}:?" in value


def test_the_postgres_password_is_required_from_the_environment(
    services: dict[str, dict[str, Any]],
) -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    assert "POSTGRES_PASSWORD:-" not in text and "POSTGRES_PASSWORD-" not in text, (
        "no default password"
    )
    assert _required(services["postgres"]["environment"]["POSTGRES_PASSWORD"], "POSTGRES_PASSWORD")
    for name in ("api", "worker", "migrate"):
        url = services[name]["environment"]["AI_AGENTS_DATABASE_URL"]
        assert _required(url, "POSTGRES_PASSWORD"), name
    assert "set POSTGRES_PASSWORD in .env" in text  # the error says what to do


def test_env_example_lists_every_variable_compose_reads() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    used = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", text))
    required = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*):\?", text))
    assert "POSTGRES_PASSWORD" in required
    example = (ROOT / ".env.example").read_text()
    values = dict(
        line.split("=", 1)
        for line in example.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    )
    assert used <= set(values), f"missing from .env.example: {used - set(values)}"
    # The example holds no secret: every value is left for the operator to fill in.
    assert all(not v.strip() for v in values.values()), values


def test_dockerfile_runs_the_cli() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert text.startswith("#") and "\nFROM python:3.11" in text
    assert 'ENTRYPOINT ["ai-agents"]' in text
    assert "AI_AGENTS_EMBEDDED=0" in text
    assert "USER app" in text  # not root
    for path in ("pyproject.toml", "alembic", "ai_agents"):
        assert path in text
        assert (ROOT / path).exists()
