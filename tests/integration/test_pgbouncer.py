"""Behind PgBouncer in transaction mode (issue "Scale out", item 2).

PgBouncer 1.18 (Debian's) gives each transaction whichever server connection is free
and keeps no prepared statements per client. Here several stores share two server
connections: with prepared statements off (``db_prepared_statements=False``) runs,
listings, migrations and forks work; with them on, the second client's statements
collide with the first's on the shared server connection, which shows the pooler really
multiplexes and the setting is what makes it work. ``make test-pgbouncer`` runs the
whole integration suite this way.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import uuid
from asyncio.subprocess import PIPE, STDOUT
from collections.abc import AsyncIterator, Iterator

import pytest

from ai_agents import AgentDefinition, AgentStore, Settings
from ai_agents.providers.base import ProviderRequest
from ai_agents.providers.registry import ModelLimits, get_registry
from ai_agents.testing import FunctionProvider
from tests import pg
from tests.conftest import REDIS_URL
from tests.pgbouncer import PgBouncer

UPSTREAM = os.environ.get(
    "AI_AGENTS_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


@pytest.fixture(scope="module")
def bouncer() -> Iterator[PgBouncer]:
    with PgBouncer(UPSTREAM, server_connections=2) as running:
        yield running


def through(bouncer: PgBouncer, database_url: str) -> str:
    return f"{bouncer.base_url}/{database_url.rsplit('/', 1)[1]}"


@pytest.fixture
def roomy_model() -> None:
    get_registry().register(
        "echo-pool", "roomy", ModelLimits(100_000, 1000, 100_000, 100_000_000, True, False, 1, 1)
    )


@contextlib.asynccontextmanager
async def pooled_store(url: str, redis_prefix: str, *, prepared: bool) -> AsyncIterator[AgentStore]:
    settings = Settings(
        database_url=url,
        redis_url=REDIS_URL,
        redis_prefix=redis_prefix,
        db_pool_size=4,
        db_max_overflow=0,
        db_prepared_statements=prepared,
    )
    store = AgentStore(settings=settings)
    try:
        yield store
    finally:
        await store.close()


def answer(request: ProviderRequest) -> str:
    return f"echo {request.messages[-1].content}"


async def test_runs_and_reads_share_two_server_connections(
    bouncer: PgBouncer,
    database_url: str,
    redis_prefix: str,
    redis_cleanup: None,
    roomy_model: None,
) -> None:
    url = through(bouncer, database_url)
    async with (
        pooled_store(url, redis_prefix, prepared=False) as first,
        pooled_store(url, redis_prefix, prepared=False) as second,
    ):
        for store in (first, second):
            store.register_provider("echo-pool", FunctionProvider(answer))
        agent = await first.create_agent(
            AgentDefinition(name="Echo", role="You echo."), provider="echo-pool", model="roomy"
        )
        threads = [await first.create_thread(agent, user_id=f"u{i}") for i in range(6)]

        async def turns(store: AgentStore, thread_id: uuid.UUID) -> None:
            for n in range(3):
                await store.run(thread_id, f"{thread_id} {n}")
                await store.list_messages(thread_id, limit=20)

        await asyncio.wait_for(
            asyncio.gather(
                *(turns(first, t) for t in threads), *(turns(second, t) for t in threads)
            ),
            timeout=90,
        )
        for thread_id in threads:
            saved = (await second.list_messages(thread_id, limit=100)).items
            assert [m.role for m in saved] == ["user", "assistant"] * 6
            for user, reply in zip(saved[::2], saved[1::2], strict=True):
                assert reply.content == f"echo {user.content}"
            fork = await first.fork_thread(thread_id, up_to_message_id=saved[3].id)
            copied = (await first.list_messages(fork, limit=100)).items
            assert [m.content for m in copied] == [m.content for m in saved[:4]]


async def test_migrations_run_through_the_pooler_one_at_a_time(
    bouncer: PgBouncer, empty_database_url: str
) -> None:
    """Two processes migrate at once through the pooler (``ai-agents migrate``)."""
    env = {
        **os.environ,
        "AI_AGENTS_DATABASE_URL": through(bouncer, empty_database_url),
        "AI_AGENTS_DB_PREPARED_STATEMENTS": "off",
    }

    async def migrate() -> tuple[int | None, bytes]:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ai_agents", "migrate", env=env, stdout=PIPE, stderr=STDOUT
        )
        output, _ = await process.communicate()
        return process.returncode, output

    results = await asyncio.wait_for(asyncio.gather(migrate(), migrate()), timeout=120)
    for code, output in results:
        assert code == 0, output.decode()
    conn = await pg.connect(empty_database_url, statement_cache_size=0)
    try:
        tables = {r[0] for r in await conn.fetch("SELECT tablename FROM pg_tables")}
        locks = await conn.fetchval(
            "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database"
            " WHERE l.locktype = 'advisory' AND d.datname = current_database()"
        )
    finally:
        await conn.close()
    assert {"agents", "threads", "messages", "runs", "jobs"} <= tables
    assert locks == 0, "a migration left an advisory lock held on a pooled server connection"


#: Two stores with prepared statements on, behind the pooler. Run in a child process:
#: the connections that fail to start are not all closed, and their sockets must not be
#: collected (a ResourceWarning) in the middle of a later test of this process.
_COLLIDE = """
import asyncio, sys
from ai_agents import AgentStore, Settings
from ai_agents.errors import StorageError

async def main() -> None:
    stores = [
        AgentStore(settings=Settings(database_url=sys.argv[1], db_pool_size=4,
                                     db_max_overflow=0, db_prepared_statements=True))
        for _ in range(2)
    ]
    try:
        for _ in range(5):
            await asyncio.gather(*(s.list_agents() for s in stores))
    except StorageError as exc:
        print("refused:", exc)
        return
    finally:
        for s in stores:
            await s.close()
    print("no error")

asyncio.run(main())
"""


async def test_prepared_statements_on_collide_behind_the_pooler(
    bouncer: PgBouncer, database_url: str
) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-W",
        "ignore",
        "-c",
        _COLLIDE,
        through(bouncer, database_url),
        stdout=PIPE,
        stderr=STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    text = output.decode()
    assert process.returncode == 0, text
    assert "refused:" in text and "prepared statement" in text, text
