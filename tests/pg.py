"""Raw asyncpg connections of the tests, fit for the pooler the suite may run behind.

Under ``make test-pgbouncer`` (``AI_AGENTS_DB_PREPARED_STATEMENTS=off``) a test's own
connection goes through PgBouncer in transaction mode like the library's, so it must
not keep named prepared statements either.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from ai_agents.config import prepared_statements_from_env


async def connect(url: str, **options: Any) -> asyncpg.Connection:
    if not prepared_statements_from_env():
        options.setdefault("statement_cache_size", 0)
    return await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"), **options)
