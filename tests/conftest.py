"""Shared test fixtures.

Integration tests get a fresh PostgreSQL database per test (cloned from a migrated
template made once per session) and a unique Redis key prefix, so tests never see each
other's rows or keys, even when several test runs share one server.

Process-wide state a test may change (the default model and tool registries, the memory
strategies, the environment) is put back after every test, so tests pass in any order.
pytest-randomly shuffles the order and reseeds ``random`` for every run, printing its seed:
``--randomly-seed=N`` repeats a run, ``-p no:randomly`` keeps the file order.

Hypothesis: the ``ci`` profile (``HYPOTHESIS_PROFILE=ci``, or ``CI`` set; ``.ci/run``
sets it) derandomizes every property test (the same examples on every run, no example
database, the reproduction blob printed on failure); the ``dev`` profile (the default
elsewhere) explores new examples each run.

``AI_AGENTS_TEST_POOLER_URL`` (``make test-pgbouncer`` sets it): every test database is
reached through that pooler (``postgresql://user@host:port``, no database name), while
databases are still created and templated directly on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
from hypothesis import settings as hypothesis_settings

from ai_agents.config import Settings
from ai_agents.db import migrate
from ai_agents.memory import base as memory_base
from ai_agents.memory import strategies as _builtin_strategies  # noqa: F401  (registers them)
from ai_agents.providers import registry as model_registry
from ai_agents.store import AgentStore
from ai_agents.tools import registry as tool_registry

hypothesis_settings.register_profile(
    "ci", derandomize=True, database=None, print_blob=True, deadline=None
)
hypothesis_settings.register_profile("dev")
hypothesis_settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
)

ADMIN_URL = os.environ.get(
    "AI_AGENTS_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
POOLER_URL = os.environ.get("AI_AGENTS_TEST_POOLER_URL")
REDIS_URL = os.environ.get("AI_AGENTS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
#: ``AI_AGENTS_TEST_ON_PGVECTOR=1`` (``make test`` runs the RAG tests a second time so):
#: every test database lives on the embedded PostgreSQL 18 with pgvector, started for
#: the session, so the document index runs its pgvector path.
ON_PGVECTOR = "AI_AGENTS_TEST_ON_PGVECTOR"
_RUN = f"aat_{os.getpid()}_{uuid.uuid4().hex[:6]}"


def db_url(name: str) -> str:
    base, _, _ = ADMIN_URL.rpartition("/")
    return f"{base}/{name}"


def client_url(name: str) -> str:
    """How the library and the tests reach test database *name* (maybe via the pooler)."""
    return f"{POOLER_URL}/{name}" if POOLER_URL else db_url(name)


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(ADMIN_URL)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _drop_stale_databases() -> None:
    """Drop databases left by test runs whose process is gone (killed sessions)."""
    conn = await asyncpg.connect(ADMIN_URL)
    try:
        names = [
            r[0]
            for r in await conn.fetch(
                "SELECT datname FROM pg_database WHERE datname LIKE 'aat\\_%'"
            )
        ]
        for name in names:
            try:
                pid = int(name.split("_")[1])
                os.kill(pid, 0)
            except (ValueError, IndexError, ProcessLookupError):
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            except PermissionError:
                pass
    finally:
        await conn.close()


_PGVECTOR_SERVER: list[object] = []


def pytest_configure(config: pytest.Config) -> None:
    global ADMIN_URL
    if os.environ.get(ON_PGVECTOR) and not os.environ.get("PYTEST_XDIST_WORKER"):
        import tempfile
        from pathlib import Path

        from ai_agents.embedded import EmbeddedPostgres

        server = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="aat-pgvector-")))
        info = server.ensure()
        _PGVECTOR_SERVER.append(server)
        ADMIN_URL = info.url.rpartition("/")[0] + "/postgres"
        os.environ["AI_AGENTS_TEST_PGVECTOR_URL"] = ADMIN_URL


def pytest_unconfigure(config: pytest.Config) -> None:
    for server in _PGVECTOR_SERVER:
        server.stop()  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def template_database() -> Iterator[str]:
    name = f"{_RUN}_tmpl"
    asyncio.run(_drop_stale_databases())
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    migrate.upgrade(db_url(name))
    yield name
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def database_url(template_database: str) -> Iterator[str]:
    """A fresh, migrated database for this test only."""
    name = f"{_RUN}_{uuid.uuid4().hex[:10]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"'))
    yield client_url(name)
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def pgvector_admin_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A PostgreSQL 18 server with pgvector: the embedded one, started for this session.

    ``AI_AGENTS_TEST_PGVECTOR_URL`` (an admin database URL) uses a running server instead.
    """
    given = os.environ.get("AI_AGENTS_TEST_PGVECTOR_URL")
    if given:
        yield given
        return
    from pathlib import Path

    from ai_agents.embedded import EmbeddedPostgres

    server = EmbeddedPostgres(Path(tmp_path_factory.mktemp("pgvector")))
    info = server.ensure()
    try:
        yield info.url.rpartition("/")[0] + "/postgres"
    finally:
        server.stop()


@pytest.fixture
def pgvector_database_url(pgvector_admin_url: str) -> Iterator[str]:
    """A fresh database on the pgvector server (not migrated: tests choose how)."""
    name = f"{_RUN}_{uuid.uuid4().hex[:10]}"
    base = pgvector_admin_url.rpartition("/")[0]

    async def admin(statement: str) -> None:
        conn = await asyncpg.connect(pgvector_admin_url)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    yield f"{base}/{name}"
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def empty_database_url() -> Iterator[str]:
    """A fresh database with no schema at all (for migration tests)."""
    name = f"{_RUN}_{uuid.uuid4().hex[:10]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    yield client_url(name)
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def redis_prefix() -> str:
    return f"test:{uuid.uuid4().hex[:12]}:"


@pytest.fixture
async def redis_cleanup(redis_prefix: str) -> AsyncIterator[None]:
    yield
    from ai_agents.keys import RedisKeys
    from ai_agents.redis_client import connect

    client = connect(REDIS_URL)  # a cluster too (AI_AGENTS_TEST_REDIS_URL=redis+cluster://)
    try:
        keys = [
            k
            for pattern in RedisKeys(redis_prefix).patterns()
            async for k in client.scan_iter(match=pattern, count=1000)
        ]
        if keys:
            await client.delete(*keys)
    except OSError:
        pass
    finally:
        await client.aclose()


@pytest.fixture
def settings(database_url: str, redis_prefix: str) -> Settings:
    return Settings(database_url=database_url, redis_url=REDIS_URL, redis_prefix=redis_prefix)


@pytest.fixture
async def store(settings: Settings, redis_cleanup: None) -> AsyncIterator[AgentStore]:
    s = AgentStore(settings=settings)
    try:
        yield s
    finally:
        with contextlib.suppress(Exception):
            await s.close()


# --- process-wide state, restored after every test -------------------------------------


@pytest.fixture(autouse=True)
def _restore_model_registry() -> Iterator[None]:
    """``get_registry().register(...)`` in a test lasts for that test only."""
    default = model_registry._default  # None until the first get_registry()
    saved = default.snapshot() if default is not None else None
    yield
    model_registry._default = default  # a test may have called reset_registry()
    if default is not None and saved is not None:
        default.restore(saved)


@pytest.fixture(autouse=True)
def _restore_tool_registry() -> Iterator[None]:
    """A ``@tool`` without ``registry=`` defined in a test lasts for that test only."""
    default = tool_registry._default
    saved = dict(default._tools) if default is not None else None
    yield
    tool_registry._default = default
    if default is not None and saved is not None:
        with default._lock:
            default._tools = saved


@pytest.fixture(autouse=True)
def _restore_memory_strategies() -> Iterator[None]:
    saved = dict(memory_base._STRATEGIES)
    yield
    memory_base._STRATEGIES.clear()
    memory_base._STRATEGIES.update(saved)


@pytest.fixture(autouse=True)
def _restore_environment() -> Iterator[None]:
    saved = dict(os.environ)
    yield
    for name in os.environ.keys() - saved.keys():
        del os.environ[name]
    for name, value in saved.items():
        if os.environ.get(name) != value:
            os.environ[name] = value


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.integration)
