"""Engine creation and the one place where driver errors become library errors."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any
from uuid import UUID, uuid4

import asyncpg
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.util import greenlet_spawn

from ai_agents.config import Settings, normalize_database_url
from ai_agents.errors import AgentsError, StorageError, ValidationError

#: Engine execution option: prepared statements are off, a transaction pooler may sit
#: between us and PostgreSQL (:func:`autocommit` then uses transactions).
TRANSACTION_POOLER = "ai_agents_transaction_pooler"


def create_engine(database_url: str, settings: Settings) -> AsyncEngine:
    prepared = settings.prepared_statements
    return create_async_engine(
        normalize_database_url(database_url),
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_pre_ping=False,
        # JSONB round trips through asyncpg's json codecs (set by the dialect).
        connect_args=connect_args(prepared_statements=prepared),
        execution_options={TRANSACTION_POOLER: not prepared},
    )


@asynccontextmanager
async def autocommit(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection whose statements commit one by one (no BEGIN/COMMIT round trips).

    Behind a transaction pooler (prepared statements off) the statements share one
    transaction instead, committed when the block ends: SQLAlchemy prepares a statement
    and executes it in two exchanges, which must reach the same server connection.
    """
    pooled = engine.sync_engine.get_execution_options().get(TRANSACTION_POOLER)
    async with engine.connect() as conn:
        if pooled:
            async with conn.begin():
                yield conn
        else:
            yield await conn.execution_options(isolation_level="AUTOCOMMIT")


@asynccontextmanager
async def driver_connection(engine: AsyncEngine) -> AsyncIterator[Any]:
    """A pooled connection's asyncpg connection, for short work in driver statements.

    Checked out of the engine's pool without a SQLAlchemy ``Connection`` around it (a
    third of the cost of ``engine.connect()`` plus ``get_raw_connection()``): no
    transaction is begun, so each statement commits alone and there is nothing to roll
    back when it goes back. A connection that broke meanwhile is closed instead of being
    pooled again. (A statement cancelled half-way, e.g. its client went away, is cancelled
    on the server by asyncpg, and the connection waits for that before its next
    statement.) Behind a transaction pooler it is :func:`autocommit`'s connection (its
    statements share one transaction, committed when the block ends).
    """
    if engine.sync_engine.get_execution_options().get(TRANSACTION_POOLER):
        async with autocommit(engine) as conn:
            raw = await conn.get_raw_connection()
            yield raw.driver_connection
        return
    pooled = await engine.raw_connection()
    broken = False
    try:
        yield pooled.driver_connection
    except Exception as exc:
        broken = _breaks_connection(exc)
        raise
    finally:
        await greenlet_spawn(_check_in, pooled, broken)


def _breaks_connection(exc: Exception) -> bool:
    """Whether the connection can be trusted after *exc*: yes after an error the server
    answered about a statement; no after a lost connection, a shutdown of the server
    (its FATAL answer may come before the socket closes) or a client-side failure."""
    if isinstance(exc, asyncpg.PostgresError):
        state = exc.sqlstate or ""
        return state.startswith(("08", "57P"))
    return True


def refused_by_server(exc: BaseException) -> bool:
    """Whether *exc* (a driver error, or a library error raised from one) is the server's
    answer about a statement: its transaction was rolled back and the connection is
    sound. Not after a lost connection or a server shutdown, where whether a commit
    happened is unknown."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, asyncpg.PostgresError):
            return not _breaks_connection(cause)
        cause = cause.__cause__
    return False


def _check_in(pooled: PoolProxiedConnection, broken: bool) -> None:
    driver = pooled.driver_connection
    if broken or driver is None or driver.is_closed():
        pooled.invalidate()
    pooled.close()


def connect_args(*, prepared_statements: bool) -> dict[str, Any]:
    """The asyncpg connection options of every engine the library creates.

    Without *prepared_statements* (``AI_AGENTS_DB_PREPARED_STATEMENTS=off``) nothing
    outlives one statement on the server: asyncpg keeps no statement cache (its queries
    use unnamed statements) and the statements SQLAlchemy must prepare get names unique
    to this process, so a transaction-mode pooler (PgBouncer before 1.21) may hand each
    transaction to another server connection (docs/operations.md, "PgBouncer").
    """
    args: dict[str, Any] = {"server_settings": {"application_name": "ai_agents"}}
    if not prepared_statements:
        args.update(
            statement_cache_size=0,
            prepared_statement_cache_size=0,
            prepared_statement_name_func=_unique_statement_name,
        )
    return args


def _unique_statement_name() -> str:
    return f"__ai_agents_{uuid4().hex}__"


@contextmanager
def translate_errors(operation: str) -> Iterator[None]:
    """Re-raise driver errors as :class:`StorageError` (chained), library errors as-is."""
    try:
        yield
    except AgentsError:
        raise
    except DBAPIError as exc:
        orig = getattr(exc, "orig", None)
        detail = str(orig or exc).splitlines()[0]
        raise StorageError(
            f"database error during {operation}: {detail}",
            details={"operation": operation, "sqlstate": getattr(orig, "sqlstate", None)},
        ) from exc
    except asyncpg.PostgresError as exc:  # hot paths use the driver connection directly
        raise StorageError(
            f"database error during {operation}: {str(exc).splitlines()[0]}",
            details={"operation": operation, "sqlstate": exc.sqlstate},
        ) from exc
    except (
        SQLAlchemyError,
        asyncpg.InterfaceError,
        asyncpg.InternalClientError,  # e.g. the server ended the connection mid-statement
        OSError,
    ) as exc:
        raise StorageError(f"database unavailable during {operation}: {exc}") from exc


def parse_uuid(value: Any, kind: str) -> UUID:
    """Accept a UUID or its string form; anything else is a clear validation error."""
    if isinstance(value, UUID):
        return value
    try:
        return UUID(str(value))
    except (ValueError, TypeError, AttributeError) as exc:
        raise ValidationError(
            f"malformed {kind} id {value!r}: expected a UUID", details={"field": f"{kind}_id"}
        ) from exc
