"""Engine creation and the one place where driver errors become library errors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from uuid import UUID

import asyncpg
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from ai_agents.config import Settings, normalize_database_url
from ai_agents.errors import AgentsError, StorageError, ValidationError


def create_engine(database_url: str, settings: Settings) -> AsyncEngine:
    return create_async_engine(
        normalize_database_url(database_url),
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_pre_ping=False,
        # JSONB round trips through asyncpg's json codecs (set by the dialect).
        connect_args={"server_settings": {"application_name": "ai_agents"}},
    )


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
    except (SQLAlchemyError, asyncpg.InterfaceError, OSError) as exc:
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
