"""Rows of OpenAI files, vector stores, their files and file batches, always per tenant.

Every statement names the tenant: a row of another tenant is never read, changed or
deleted (the caller sees it as missing). Lists are keyset pages ordered by
``(created_at, id)``, the cursor being an id of the same list.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Select, delete, func, insert, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ai_agents.db.tables import (
    openai_files,
    vector_store_file_batches,
    vector_store_files,
    vector_stores,
)

STATUSES = ("in_progress", "completed", "failed", "cancelled")


@dataclass(frozen=True, slots=True)
class FileRow:
    id: UUID
    filename: str
    purpose: str
    bytes: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Counts:
    in_progress: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0

    @property
    def total(self) -> int:
        return self.in_progress + self.completed + self.failed + self.cancelled

    def to_json(self) -> dict[str, int]:
        return {
            "in_progress": self.in_progress,
            "completed": self.completed,
            "failed": self.failed,
            "cancelled": self.cancelled,
            "total": self.total,
        }


@dataclass(frozen=True, slots=True)
class StoreRow:
    id: UUID
    name: str | None
    metadata: dict[str, str]
    created_at: datetime
    last_active_at: datetime
    counts: Counts
    usage_bytes: int


@dataclass(frozen=True, slots=True)
class StoreFileRow:
    vector_store_id: UUID
    file_id: UUID
    batch_id: UUID | None
    status: str
    last_error: dict[str, str] | None
    usage_bytes: int
    file_hash: str | None
    attributes: dict[str, Any] | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class BatchRow:
    id: UUID
    vector_store_id: UUID
    cancelled: bool
    created_at: datetime
    counts: Counts


@dataclass(frozen=True, slots=True)
class Page:
    limit: int
    order: str
    after: UUID | None = None
    before: UUID | None = None


async def _page(
    conn: AsyncConnection, query: Select[Any], table: Any, page: Page, tenant_id: str
) -> tuple[list[Any], bool]:
    """The rows of *query* on *page* and whether more follow; a cursor that names no row
    of the tenant gives an empty page."""
    key = tuple_(table.c.created_at, table.c.id)
    for ident, later in ((page.after, page.order == "asc"), (page.before, page.order != "asc")):
        if ident is None:
            continue
        mark = (
            await conn.execute(
                select(table.c.created_at, table.c.id).where(
                    table.c.id == ident, table.c.tenant_id == tenant_id
                )
            )
        ).first()
        if mark is None:
            return [], False
        bound = tuple_(*mark)
        query = query.where(key > bound if later else key < bound)
    ordering = (table.c.created_at, table.c.id)
    if page.order == "desc":
        ordering = (table.c.created_at.desc(), table.c.id.desc())
    if page.before is not None and page.after is None:
        # Walk backwards from *before*, then restore the list's order.
        flipped = (
            (table.c.created_at.desc(), table.c.id.desc())
            if page.order == "asc"
            else (table.c.created_at, table.c.id)
        )
        rows = list((await conn.execute(query.order_by(*flipped).limit(page.limit + 1))).all())
        more = len(rows) > page.limit
        return list(reversed(rows[: page.limit])), more
    rows = list((await conn.execute(query.order_by(*ordering).limit(page.limit + 1))).all())
    return rows[: page.limit], len(rows) > page.limit


# --- files ------------------------------------------------------------------------------

_FILE_COLUMNS = (
    openai_files.c.id,
    openai_files.c.filename,
    openai_files.c.purpose,
    openai_files.c.bytes,
    openai_files.c.created_at,
)


async def insert_file(
    engine: AsyncEngine, tenant_id: str, *, filename: str, purpose: str, content: bytes
) -> FileRow:
    async with engine.begin() as conn:
        row = (
            await conn.execute(
                insert(openai_files)
                .values(
                    tenant_id=tenant_id,
                    filename=filename,
                    purpose=purpose,
                    bytes=len(content),
                    content=content,
                )
                .returning(*_FILE_COLUMNS)
            )
        ).one()
    return FileRow(*row)


async def get_file(engine: AsyncEngine, tenant_id: str, file_id: UUID) -> FileRow | None:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(*_FILE_COLUMNS).where(
                    openai_files.c.id == file_id, openai_files.c.tenant_id == tenant_id
                )
            )
        ).first()
    return FileRow(*row) if row is not None else None


async def get_files(
    engine: AsyncEngine, tenant_id: str, file_ids: Sequence[UUID]
) -> dict[UUID, FileRow]:
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(*_FILE_COLUMNS).where(
                    openai_files.c.id.in_(list(file_ids)), openai_files.c.tenant_id == tenant_id
                )
            )
        ).all()
    return {row[0]: FileRow(*row) for row in rows}


async def file_content(engine: AsyncEngine, tenant_id: str, file_id: UUID) -> bytes | None:
    async with engine.connect() as conn:
        value = await conn.scalar(
            select(openai_files.c.content).where(
                openai_files.c.id == file_id, openai_files.c.tenant_id == tenant_id
            )
        )
    return bytes(value) if value is not None else None


async def list_files(
    engine: AsyncEngine, tenant_id: str, page: Page, *, purpose: str | None = None
) -> tuple[list[FileRow], bool]:
    query = select(*_FILE_COLUMNS).where(openai_files.c.tenant_id == tenant_id)
    if purpose is not None:
        query = query.where(openai_files.c.purpose == purpose)
    async with engine.connect() as conn:
        rows, more = await _page(conn, query, openai_files, page, tenant_id)
    return [FileRow(*r) for r in rows], more


async def delete_file(engine: AsyncEngine, tenant_id: str, file_id: UUID) -> bool:
    async with engine.begin() as conn:
        result = await conn.execute(
            delete(openai_files).where(
                openai_files.c.id == file_id, openai_files.c.tenant_id == tenant_id
            )
        )
    return bool(result.rowcount)


# --- vector stores ----------------------------------------------------------------------


def _counts(rows: Sequence[Any]) -> Counts:
    found = {status: int(n) for status, n in rows}
    return Counts(**{s: found.get(s, 0) for s in STATUSES})


async def _store_row(conn: AsyncConnection, row: Any) -> StoreRow:
    f = vector_store_files.c
    counted = (
        await conn.execute(
            select(f.status, func.count()).where(f.vector_store_id == row.id).group_by(f.status)
        )
    ).all()
    usage = await conn.scalar(
        select(func.coalesce(func.sum(f.usage_bytes), 0)).where(
            f.vector_store_id == row.id, f.status == "completed"
        )
    )
    return StoreRow(
        id=row.id,
        name=row.name,
        metadata=dict(row.metadata or {}),
        created_at=row.created_at,
        last_active_at=row.last_active_at,
        counts=_counts(counted),
        usage_bytes=int(usage or 0),
    )


@asynccontextmanager
async def _connected(
    bind: AsyncEngine | AsyncConnection, *, write: bool
) -> AsyncIterator[AsyncConnection]:
    """*bind* itself when it is a connection (the caller's transaction), else one of its
    connections (in a transaction of its own when *write*)."""
    if isinstance(bind, AsyncConnection):
        yield bind
        return
    async with bind.begin() if write else bind.connect() as conn:
        yield conn


async def insert_store(
    bind: AsyncEngine | AsyncConnection,
    tenant_id: str,
    *,
    name: str | None,
    metadata: dict[str, str],
) -> UUID:
    async with _connected(bind, write=True) as conn:
        ident: UUID = await conn.scalar(
            insert(vector_stores)
            .values(tenant_id=tenant_id, name=name, metadata=metadata)
            .returning(vector_stores.c.id)
        )
    return ident


async def get_store(
    bind: AsyncEngine | AsyncConnection, tenant_id: str, store_id: UUID
) -> StoreRow | None:
    async with _connected(bind, write=False) as conn:
        row = (
            await conn.execute(
                select(vector_stores).where(
                    vector_stores.c.id == store_id, vector_stores.c.tenant_id == tenant_id
                )
            )
        ).first()
        return await _store_row(conn, row) if row is not None else None


async def update_store(
    engine: AsyncEngine, tenant_id: str, store_id: UUID, changes: dict[str, Any]
) -> bool:
    async with engine.begin() as conn:
        result = await conn.execute(
            update(vector_stores)
            .where(vector_stores.c.id == store_id, vector_stores.c.tenant_id == tenant_id)
            .values(**changes, last_active_at=func.now())
        )
    return bool(result.rowcount)


async def list_stores(
    engine: AsyncEngine, tenant_id: str, page: Page
) -> tuple[list[StoreRow], bool]:
    query = select(vector_stores).where(vector_stores.c.tenant_id == tenant_id)
    async with engine.connect() as conn:
        rows, more = await _page(conn, query, vector_stores, page, tenant_id)
        return [await _store_row(conn, r) for r in rows], more


async def delete_store(engine: AsyncEngine, tenant_id: str, store_id: UUID) -> bool:
    async with engine.begin() as conn:
        result = await conn.execute(
            delete(vector_stores).where(
                vector_stores.c.id == store_id, vector_stores.c.tenant_id == tenant_id
            )
        )
    return bool(result.rowcount)


# --- files of a vector store ------------------------------------------------------------


def _store_file(row: Any) -> StoreFileRow:
    return StoreFileRow(
        vector_store_id=row.vector_store_id,
        file_id=row.file_id,
        batch_id=row.batch_id,
        status=row.status,
        last_error=row.last_error,
        usage_bytes=int(row.usage_bytes),
        file_hash=row.file_hash,
        attributes=row.attributes,
        created_at=row.created_at,
    )


async def attach_file(
    engine: AsyncEngine,
    tenant_id: str,
    store_id: UUID,
    file_id: UUID,
    *,
    batch_id: UUID | None = None,
    attributes: dict[str, Any] | None = None,
) -> StoreFileRow:
    """The file's row in the store, ``in_progress`` (again, when it was there already)."""
    f = vector_store_files.c
    async with engine.begin() as conn:
        await conn.execute(
            delete(vector_store_files).where(f.vector_store_id == store_id, f.file_id == file_id)
        )
        row = (
            await conn.execute(
                insert(vector_store_files)
                .values(
                    vector_store_id=store_id,
                    file_id=file_id,
                    tenant_id=tenant_id,
                    batch_id=batch_id,
                    status="in_progress",
                    attributes=attributes,
                )
                .returning(vector_store_files)
            )
        ).one()
        await conn.execute(
            update(vector_stores)
            .where(vector_stores.c.id == store_id)
            .values(last_active_at=func.now())
        )
    return _store_file(row)


async def finish_file(
    engine: AsyncEngine,
    tenant_id: str,
    store_id: UUID,
    file_id: UUID,
    *,
    status: str,
    usage_bytes: int = 0,
    file_hash: str | None = None,
    last_error: dict[str, str] | None = None,
) -> None:
    """Record how the file's ingestion ended (a cancelled file stays cancelled)."""
    f = vector_store_files.c
    async with engine.begin() as conn:
        await conn.execute(
            update(vector_store_files)
            .where(
                f.vector_store_id == store_id,
                f.file_id == file_id,
                f.tenant_id == tenant_id,
                f.status == "in_progress",
            )
            .values(
                status=status, usage_bytes=usage_bytes, file_hash=file_hash, last_error=last_error
            )
        )


#: An ``in_progress`` file older than this was left by a request that died (indexing
#: runs inside the request that adds the file, far shorter than this).
INTERRUPTED_AFTER_SECONDS = 15 * 60
INTERRUPTED = {
    "code": "server_error",
    "message": "indexing was interrupted (the server stopped while adding the file); "
    "add the file again",
}


async def fail_interrupted(
    engine: AsyncEngine, tenant_id: str, store_id: UUID | None = None
) -> int:
    """Mark ``failed`` the files of the tenant (of one store) left ``in_progress`` by a
    request that never finished; how many."""
    f = vector_store_files.c
    stale = func.now() - func.make_interval(0, 0, 0, 0, 0, 0, INTERRUPTED_AFTER_SECONDS)
    where = [f.tenant_id == tenant_id, f.status == "in_progress", f.created_at < stale]
    if store_id is not None:
        where.append(f.vector_store_id == store_id)
    async with engine.begin() as conn:
        done = await conn.execute(
            update(vector_store_files).where(*where).values(status="failed", last_error=INTERRUPTED)
        )
    return int(done.rowcount or 0)


async def get_store_file(
    engine: AsyncEngine, tenant_id: str, store_id: UUID, file_id: UUID
) -> StoreFileRow | None:
    f = vector_store_files.c
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(vector_store_files).where(
                    f.vector_store_id == store_id, f.file_id == file_id, f.tenant_id == tenant_id
                )
            )
        ).first()
    return _store_file(row) if row is not None else None


async def list_store_files(
    engine: AsyncEngine,
    tenant_id: str,
    store_id: UUID,
    page: Page,
    *,
    status: str | None = None,
    batch_id: UUID | None = None,
) -> tuple[list[StoreFileRow], bool]:
    f = vector_store_files.c
    query = select(vector_store_files).where(
        f.vector_store_id == store_id, f.tenant_id == tenant_id
    )
    if status is not None:
        query = query.where(f.status == status)
    if batch_id is not None:
        query = query.where(f.batch_id == batch_id)
    async with engine.connect() as conn:
        rows, more = await _page_files(conn, query, store_id, page)
    return [_store_file(r) for r in rows], more


async def _page_files(
    conn: AsyncConnection, query: Select[Any], store_id: UUID, page: Page
) -> tuple[list[Any], bool]:
    """Files of a store are keyed by file id (the cursor) within the store."""
    f = vector_store_files.c
    key = tuple_(f.created_at, f.file_id)
    for ident, later in ((page.after, page.order == "asc"), (page.before, page.order != "asc")):
        if ident is None:
            continue
        mark = (
            await conn.execute(
                select(f.created_at, f.file_id).where(
                    f.vector_store_id == store_id, f.file_id == ident
                )
            )
        ).first()
        if mark is None:
            return [], False
        query = query.where(key > tuple_(*mark) if later else key < tuple_(*mark))
    forward = page.before is None or page.after is not None
    ascending = (page.order == "asc") == forward
    ordering = (f.created_at, f.file_id) if ascending else (f.created_at.desc(), f.file_id.desc())
    rows = list((await conn.execute(query.order_by(*ordering).limit(page.limit + 1))).all())
    more = len(rows) > page.limit
    rows = rows[: page.limit]
    return (rows if forward else list(reversed(rows))), more


async def detach_file(
    engine: AsyncEngine, tenant_id: str, store_id: UUID, file_id: UUID
) -> StoreFileRow | None:
    """Remove the file from the store; its row as it was, or None when it was not there."""
    f = vector_store_files.c
    async with engine.begin() as conn:
        row = (
            await conn.execute(
                delete(vector_store_files)
                .where(
                    f.vector_store_id == store_id, f.file_id == file_id, f.tenant_id == tenant_id
                )
                .returning(vector_store_files)
            )
        ).first()
    return _store_file(row) if row is not None else None


async def stores_of_file(engine: AsyncEngine, tenant_id: str, file_id: UUID) -> list[StoreFileRow]:
    f = vector_store_files.c
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(vector_store_files).where(f.file_id == file_id, f.tenant_id == tenant_id)
            )
        ).all()
    return [_store_file(r) for r in rows]


async def restart_file(engine: AsyncEngine, tenant_id: str, store_id: UUID, file_id: UUID) -> None:
    """Put an attached file back to ``in_progress`` (to be ingested again)."""
    f = vector_store_files.c
    async with engine.begin() as conn:
        await conn.execute(
            update(vector_store_files)
            .where(f.vector_store_id == store_id, f.file_id == file_id, f.tenant_id == tenant_id)
            .values(status="in_progress", file_hash=None, usage_bytes=0, last_error=None)
        )


async def store_file_ids(engine: AsyncEngine, tenant_id: str, store_id: UUID) -> list[StoreFileRow]:
    f = vector_store_files.c
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(vector_store_files).where(
                    f.vector_store_id == store_id, f.tenant_id == tenant_id
                )
            )
        ).all()
    return [_store_file(r) for r in rows]


# --- file batches -----------------------------------------------------------------------


async def insert_batch(engine: AsyncEngine, tenant_id: str, store_id: UUID) -> UUID:
    async with engine.begin() as conn:
        ident: UUID = await conn.scalar(
            insert(vector_store_file_batches)
            .values(tenant_id=tenant_id, vector_store_id=store_id)
            .returning(vector_store_file_batches.c.id)
        )
    return ident


async def get_batch(
    engine: AsyncEngine, tenant_id: str, store_id: UUID, batch_id: UUID
) -> BatchRow | None:
    b = vector_store_file_batches.c
    f = vector_store_files.c
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(b.id, b.vector_store_id, b.cancelled, b.created_at).where(
                    b.id == batch_id, b.vector_store_id == store_id, b.tenant_id == tenant_id
                )
            )
        ).first()
        if row is None:
            return None
        counted = (
            await conn.execute(
                select(f.status, func.count()).where(f.batch_id == batch_id).group_by(f.status)
            )
        ).all()
    return BatchRow(row.id, row.vector_store_id, row.cancelled, row.created_at, _counts(counted))


async def cancel_batch(engine: AsyncEngine, tenant_id: str, batch_id: UUID) -> None:
    """Mark the batch cancelled and its files not yet ingested ``cancelled``."""
    b = vector_store_file_batches.c
    f = vector_store_files.c
    async with engine.begin() as conn:
        await conn.execute(
            update(vector_store_file_batches)
            .where(b.id == batch_id, b.tenant_id == tenant_id)
            .values(cancelled=True)
        )
        await conn.execute(
            update(vector_store_files)
            .where(f.batch_id == batch_id, f.tenant_id == tenant_id, f.status == "in_progress")
            .values(status="cancelled")
        )
