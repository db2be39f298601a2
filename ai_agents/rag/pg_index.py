"""The PostgreSQL document index: pgvector when the database has it, numpy otherwise.

With pgvector (see :mod:`ai_agents.rag.pgvector`; the ``embedding_vector`` column exists)
a search is one statement: the HNSW index's nearest chunks in the caller's scope
(iterative scans keep the tenant/entity filter from costing recall), the full-text top N
and the rows of both; the two score lists are fused here as below. Without it:

Full text: a generated ``tsvector`` with a GIN index. The question's lexemes are OR-ed
(``plainto_tsquery`` ANDs them, which misses most natural-language questions) and ranked
with ``ts_rank`` (length-normalized).

Embeddings: ``REAL[]`` without pgvector, so similarity is computed in numpy over the
vectors of the caller's scope (tenant, entity, embedder). Those are read with
``array_send`` (PostgreSQL's binary array format, parsed by numpy in one call instead of
building a Python float per element) and cached per scope. The scope's ``count(*)`` and
``max(id)`` (an index-only scan, fetched in the same round trip as the full-text query)
tell whether the cache is exact: ids only grow and rows are never updated, so any insert
or delete changes the pair. After appends only the new rows are read; after a delete the
scope is read again. A warm search is one matrix-vector product (about a millisecond at
10,000 chunks) plus two queries: the full-text one and the fetch of the winners' rows.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import DateTime, bindparam, delete, func, literal_column, select
from sqlalchemy import text as sql
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, REAL
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ai_agents.config import Settings
from ai_agents.db.engine import create_engine, translate_errors
from ai_agents.errors import ConfigurationError
from ai_agents.rag import pgvector
from ai_agents.rag.errors import DocumentIndexError
from ai_agents.rag.index import (
    DEFAULT_ALPHA,
    Chunk,
    DocumentInfo,
    SearchHit,
    check_scope,
    combine_scores,
    stored_entity,
)
from ai_agents.rag.tables import document_chunks as chunks_table

_FLOAT4_OID = 700
_ARRAY_HEADER = 20  # ndim, has-null flag, element oid, then (size, lower bound) of 1 dim

# One round trip: the scope's fingerprint (for the vector cache) and the full-text top N.
_SEARCH = """
WITH scope AS (
    SELECT count(*) AS n, coalesce(max(id), 0) AS last
    FROM document_chunks c
    WHERE c.tenant_id = :tenant AND c.embedder = :embedder {entity}
), matches AS (
    SELECT c.id, ts_rank(c.tsv, q.query, 1) AS rank
    FROM document_chunks c,
         (SELECT nullif(replace(plainto_tsquery('english', :text)::text, ' & ', ' | '), '')
                 ::tsquery AS query) q
    WHERE c.tenant_id = :tenant AND c.embedder = :embedder {entity} AND c.tsv @@ q.query
    ORDER BY rank DESC, c.id
    LIMIT :limit
)
SELECT scope.n, scope.last, matches.id, matches.rank FROM scope LEFT JOIN matches ON true
"""


class _SwitchedToPgvector(Exception):
    """Rows without a REAL[] vector on the numpy path: the table was switched to pgvector."""


@dataclass(slots=True)
class _Vectors:
    ids: np.ndarray[Any, Any]  # sorted chunk ids
    matrix: np.ndarray[Any, Any]  # (n, dimensions) float32 unit vectors

    @property
    def fingerprint(self) -> tuple[int, int]:
        return (len(self.ids), int(self.ids[-1]) if len(self.ids) else 0)


def parse_real_arrays(blobs: Sequence[bytes]) -> np.ndarray[Any, Any]:
    """Decode ``array_send(real[])`` values (all one-dimensional, same length) to a matrix."""
    if not blobs:
        return np.zeros((0, 0), dtype=np.float32)
    first = blobs[0]
    header = np.frombuffer(first[:_ARRAY_HEADER], dtype=">i4")
    if header[0] != 1 or header[1] != 0 or header[2] != _FLOAT4_OID:
        raise DocumentIndexError("embeddings must be one-dimensional REAL[] without NULLs")
    dims = int(header[3])
    size = _ARRAY_HEADER + 8 * dims
    if any(len(b) != size for b in blobs):
        raise DocumentIndexError(
            "stored embeddings of one embedder have different dimensions; re-ingest them"
        )
    raw = np.frombuffer(b"".join(blobs), dtype=np.uint8).reshape(len(blobs), size)
    # Each element is a 4-byte length (always 4) followed by the big-endian float.
    values = raw[:, _ARRAY_HEADER:].reshape(len(blobs), dims, 8)[:, :, 4:]
    return np.ascontiguousarray(values).view(">f4").reshape(len(blobs), dims).astype(np.float32)


class PgDocumentIndex:
    """Documents in the ``document_chunks`` table (created by ``ai-agents migrate``).

    ``ef_search`` (``AI_AGENTS_RAG_HNSW_EF_SEARCH``, default 200; never below the number
    of candidates asked for) is the HNSW search width: higher finds more of the exact
    nearest neighbours, slower. ``max_scan_tuples`` (``AI_AGENTS_RAG_HNSW_MAX_SCAN_TUPLES``,
    default 20,000) bounds how far an iterative scan walks the graph for a narrow scope.
    """

    backend = "postgres"

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        owns_engine: bool = False,
        cache_scopes: int = 32,
        ef_search: int | None = None,
        max_scan_tuples: int | None = None,
    ) -> None:
        self.engine = engine
        self._owns_engine = owns_engine
        self._cache: OrderedDict[tuple[str, str | None, str], _Vectors] = OrderedDict()
        self._cache_scopes = cache_scopes
        from ai_agents.settings import load_settings

        configured = load_settings()
        self.ef_search = ef_search or configured.rag_hnsw_ef_search
        self.max_scan_tuples = max_scan_tuples or configured.rag_hnsw_max_scan_tuples
        #: pgvector path: at most this many full-text matches are ranked per search.
        self.text_scan_limit = configured.rag_text_scan_limit
        #: pgvector path: scopes of fewer rows are searched exactly (0: always HNSW).
        self.exact_search_below = configured.rag_exact_search_below
        #: ``relaxed_order`` (iterative scans) or ``off`` (one pass: a narrow scope may
        #: get fewer than the asked-for candidates; measured in bench/rag_search.py).
        self.iterative_scan = "relaxed_order"
        self._pgvector: bool | None = None
        self._indexed_dimensions: set[int] = set()

    @classmethod
    def from_url(
        cls,
        database_url: str,
        settings: Settings | None = None,
        *,
        ef_search: int | None = None,
        max_scan_tuples: int | None = None,
    ) -> PgDocumentIndex:
        """An index with its own connection pool (closed by :meth:`aclose`)."""
        engine = create_engine(database_url, settings or Settings(database_url=database_url))
        return cls(engine, owns_engine=True, ef_search=ef_search, max_scan_tuples=max_scan_tuples)

    async def aclose(self) -> None:
        self._cache.clear()
        if self._owns_engine:
            await self.engine.dispose()

    @asynccontextmanager
    async def _conn(self, operation: str, *, write: bool = False) -> AsyncIterator[AsyncConnection]:
        with translate_errors(operation), _errors(operation):
            if write:
                async with self.engine.begin() as conn:
                    yield conn
            else:
                async with self.engine.connect() as conn:
                    yield conn

    async def setup(self) -> None:
        async with self._conn("document index setup") as conn:
            exists = await conn.scalar(sql("SELECT to_regclass('document_chunks') IS NOT NULL"))
        if not exists:
            raise ConfigurationError(
                "the document_chunks table does not exist: run `ai-agents migrate` first"
            )
        await self.vector_state()

    async def vector_state(self) -> pgvector.VectorState:
        """Whether this database stores the vectors in pgvector (re-read on every call)."""
        async with self._conn("document index state") as conn:
            state = await conn.run_sync(pgvector.read_state)
        self._pgvector = state.active
        self._indexed_dimensions = set(state.indexed_dimensions)
        return state

    async def uses_pgvector(self) -> bool:
        if self._pgvector is None:
            await self.vector_state()
        return bool(self._pgvector)

    async def _writes_to_pgvector(self) -> bool:
        """A write re-checks a numpy choice (one catalog query): ``ai-agents migrate`` in
        another process may have switched to pgvector since, and a REAL[] row written
        after the switch would be invisible to every search."""
        if await self.uses_pgvector():
            return True
        return (await self.vector_state()).active

    # --- writes -----------------------------------------------------------------------

    async def replace_document(
        self,
        tenant_id: str,
        entity_id: str | None,
        chunks: Sequence[Chunk],
        embeddings: Sequence[Sequence[float]],
        embedder: str,
    ) -> int:
        entity = check_scope(tenant_id, entity_id)
        if len(chunks) != len(embeddings):
            raise DocumentIndexError("one embedding per chunk is required")
        if not chunks:
            return 0
        file_hashes = {c.file_hash for c in chunks}
        sources = {c.source for c in chunks}
        if len(file_hashes) != 1 or len(sources) != 1:
            raise DocumentIndexError("replace_document takes the chunks of exactly one file")
        (file_hash,), (source,) = file_hashes, sources
        rows = [
            {
                "tenant_id": tenant_id,
                "entity_id": entity,
                "file_hash": c.file_hash,
                "source": c.source,
                "title": c.title,
                "section": c.section,
                "position": c.position,
                "page": c.page,
                "char_start": c.char_start,
                "char_end": c.char_end,
                "content": c.content,
                "token_count": c.token_count,
                "embedder": embedder,
                "embedding": [float(x) for x in vec],
                "metadata": dict(c.metadata),
            }
            for c, vec in zip(chunks, embeddings, strict=True)
        ]
        in_pgvector = await self._writes_to_pgvector()
        dimensions = {len(vec) for vec in embeddings}
        if in_pgvector and len(dimensions) != 1:
            raise DocumentIndexError("the embeddings of one document must have one dimension")
        t = chunks_table.c
        async with self._conn("store document", write=True) as conn:
            # Serialize writers of one document (same scope and source) across processes.
            # Taken before the index check: a writer that creates the index holds a share
            # lock on the table until it commits, and must not then wait for this lock.
            await conn.execute(
                sql("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
                {"key": f"document\x1f{tenant_id}\x1f{entity}\x1f{source}"},
            )
            if in_pgvector:
                await self._ensure_vector_index(conn, next(iter(dimensions)))
            removed = await conn.execute(
                delete(chunks_table).where(
                    t.tenant_id == tenant_id,
                    t.entity_id == entity,
                    (t.file_hash == file_hash) | (t.source == source),
                )
            )
            if in_pgvector:
                await conn.execute(_INSERT_VECTOR, rows)
            else:
                await conn.execute(chunks_table.insert(), rows)
        if in_pgvector:  # committed: other writers of this process may skip the check
            self._indexed_dimensions.update(dimensions)
        return int(removed.rowcount or 0)

    async def _ensure_vector_index(self, conn: AsyncConnection, dimensions: int) -> None:
        """The first chunks of a new dimension get their HNSW index (partial, so cheap)."""
        if dimensions in self._indexed_dimensions or not pgvector.indexed(dimensions):
            return
        name = pgvector.index_name(dimensions)
        if await conn.scalar(sql("SELECT to_regclass(:name) IS NOT NULL"), {"name": name}):
            return  # made by another writer (committed)
        # Concurrent first writers of one dimension: one creates, the others wait here.
        await conn.execute(
            sql("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
            {"key": f"document index\x1f{dimensions}"},
        )
        await conn.execute(sql(pgvector.create_index_sql(dimensions)))

    async def delete_document(
        self, tenant_id: str, file_hash: str, *, entity_id: str | None = None
    ) -> int:
        check_scope(tenant_id, entity_id)
        t = chunks_table.c
        condition = (t.tenant_id == tenant_id) & (t.file_hash == file_hash)
        if entity_id is not None:
            condition &= t.entity_id == entity_id
        async with self._conn("delete document", write=True) as conn:
            result = await conn.execute(delete(chunks_table).where(condition))
        return int(result.rowcount or 0)

    # --- reads ------------------------------------------------------------------------

    async def count_chunks(
        self, tenant_id: str, entity_id: str | None, file_hash: str, embedder: str
    ) -> int:
        entity = check_scope(tenant_id, entity_id)
        t = chunks_table.c
        async with self._conn("count chunks") as conn:
            value = await conn.scalar(
                select(func.count()).where(
                    t.tenant_id == tenant_id,
                    t.entity_id == entity,
                    t.file_hash == file_hash,
                    t.embedder == embedder,
                )
            )
        return int(value or 0)

    async def list_documents(
        self, tenant_id: str, *, entity_id: str | None = None, limit: int = 100
    ) -> list[DocumentInfo]:
        check_scope(tenant_id, entity_id)
        t = chunks_table.c
        query = (
            select(
                t.entity_id,
                t.file_hash,
                func.min(t.source).label("source"),
                func.min(t.title).label("title"),
                func.count().label("chunks"),
                func.min(t.embedder).label("embedder"),
                func.min(t.created_at).label("created_at"),
            )
            .where(t.tenant_id == tenant_id)
            .group_by(t.entity_id, t.file_hash)
            .order_by(literal_column("source"), t.entity_id, t.file_hash)
            .limit(limit)
        )
        if entity_id is not None:
            query = query.where(t.entity_id == entity_id)
        async with self._conn("list documents") as conn:
            rows = (await conn.execute(query)).all()
        return [
            DocumentInfo(
                file_hash=r.file_hash,
                source=r.source,
                title=r.title,
                entity_id=stored_entity(r.entity_id),
                chunks=int(r.chunks),
                embedder=r.embedder,
                created_at=r.created_at,
            )
            for r in rows
        ]

    async def search(
        self,
        tenant_id: str,
        *,
        entity_id: str | None,
        text: str,
        vector: Sequence[float],
        embedder: str,
        candidates: int,
        alpha: float = DEFAULT_ALPHA,
    ) -> list[SearchHit]:
        check_scope(tenant_id, entity_id)
        if not await self.uses_pgvector():
            try:
                return await self._search_numpy(
                    tenant_id, entity_id, text, vector, embedder, candidates, alpha
                )
            except _SwitchedToPgvector:
                self._cache.clear()  # migrated in another process: vectors moved
                await self.vector_state()
        return await self._search_pgvector(
            tenant_id, entity_id, text, vector, embedder, candidates, alpha
        )

    async def _search_numpy(
        self,
        tenant_id: str,
        entity_id: str | None,
        text: str,
        vector: Sequence[float],
        embedder: str,
        candidates: int,
        alpha: float,
    ) -> list[SearchHit]:
        params: dict[str, Any] = {
            "tenant": tenant_id,
            "embedder": embedder,
            "text": text,
            "limit": candidates,
        }
        entity_sql = ""
        if entity_id is not None:
            entity_sql = "AND c.entity_id = :entity"
            params["entity"] = entity_id
        async with self._conn("search documents") as conn:
            result = (await conn.execute(sql(_SEARCH.format(entity=entity_sql)), params)).all()
            fingerprint = (int(result[0].n), int(result[0].last))
            text_scores = {int(r.id): float(r.rank) for r in result if r.id is not None}
            vectors = await self._vectors(conn, tenant_id, entity_id, embedder, fingerprint)
            vector_scores = _top_cosine(vectors, vector, candidates)
            scores = combine_scores(text_scores, vector_scores, alpha=alpha)
            ranked = sorted(scores, key=lambda i: (-scores[i], i))[:candidates]
            rows = await self._rows(conn, tenant_id, ranked)
        hits = []
        for ident in ranked:
            row = rows.get(ident)
            if row is None:  # deleted between the two reads
                continue
            hits.append(
                SearchHit(
                    chunk=_chunk(row),
                    entity_id=stored_entity(row.entity_id),
                    score=scores[ident],
                    text_score=text_scores.get(ident),
                    vector_score=vector_scores.get(ident),
                    embedding=_vector_of(vectors, ident),
                )
            )
        return hits

    async def _search_pgvector(
        self,
        tenant_id: str,
        entity_id: str | None,
        text: str,
        vector: Sequence[float],
        embedder: str,
        candidates: int,
        alpha: float,
    ) -> list[SearchHit]:
        query = [float(x) for x in vector]
        if not query:
            raise ConfigurationError("the query embedding is empty")
        params: dict[str, Any] = {
            "tenant": tenant_id,
            "embedder": embedder,
            "text": text,
            "limit": candidates,
            "vector": query,
            "ef_search": str(max(self.ef_search, candidates)),
            "max_scan": str(self.max_scan_tuples),
            "iterative_scan": self.iterative_scan,
            "text_scan": max(self.text_scan_limit, candidates),
            "exact_below": self.exact_search_below,
        }
        if entity_id is not None:
            params["entity"] = entity_id
        statement = pgvector.search_sql(
            len(query), columns=_ROW_COLUMNS, entity=entity_id is not None
        )
        async with self._conn("search documents") as conn:
            await conn.execute(sql(pgvector.SEARCH_SETTINGS), params)
            rows = (await conn.execute(sql(statement).columns(**_TYPED_COLUMNS), params)).all()
        text_scores = {int(r.id): float(r.rank) for r in rows if r.rank is not None}
        vector_scores = {int(r.id): 1.0 - float(r.distance) for r in rows if r.distance is not None}
        if not vector_scores:
            await self._check_dimensions(tenant_id, entity_id, embedder, len(query))
        scores = combine_scores(text_scores, vector_scores, alpha=alpha)
        by_id = {int(r.id): r for r in rows}
        ranked = sorted(scores, key=lambda i: (-scores[i], i))[:candidates]
        return [
            SearchHit(
                chunk=_chunk(by_id[ident]),
                entity_id=stored_entity(by_id[ident].entity_id),
                score=scores[ident],
                text_score=text_scores.get(ident),
                vector_score=vector_scores.get(ident),
                embedding=_parse_vector(by_id[ident].vector_bytes),
            )
            for ident in ranked
        ]

    async def _check_dimensions(
        self, tenant_id: str, entity_id: str | None, embedder: str, dimensions: int
    ) -> None:
        """Nothing found: was it because the stored vectors have another dimension?"""
        t = chunks_table.c
        condition = (t.tenant_id == tenant_id) & (t.embedder == embedder)
        if entity_id is not None:
            condition &= t.entity_id == entity_id
        column: Any = literal_column(f"vector_dims(document_chunks.{pgvector.VECTOR_COLUMN})")
        async with self._conn("search documents") as conn:
            stored = await conn.scalar(select(column).where(condition).limit(1))
        if stored is not None and int(stored) != dimensions:
            raise ConfigurationError(
                f"query embedding has {dimensions} dimensions, stored embeddings {stored}: "
                "search with the embedder the documents were ingested with"
            )

    async def _rows(self, conn: AsyncConnection, tenant_id: str, ids: list[int]) -> dict[int, Any]:
        if not ids:
            return {}
        t = chunks_table.c
        columns = [c for c in chunks_table.c if c.name not in ("embedding", "tsv")]
        result = await conn.execute(select(*columns).where(t.tenant_id == tenant_id, t.id.in_(ids)))
        return {int(r.id): r for r in result.all()}

    async def _vectors(
        self,
        conn: AsyncConnection,
        tenant_id: str,
        entity_id: str | None,
        embedder: str,
        fingerprint: tuple[int, int],
    ) -> _Vectors:
        """The scope's vectors: cached, extended by new rows only, or read in full."""
        t = chunks_table.c
        condition = (t.tenant_id == tenant_id) & (t.embedder == embedder)
        if entity_id is not None:
            condition &= t.entity_id == entity_id
        key = (tenant_id, entity_id, embedder)
        cached = self._cache.get(key)
        if cached is not None and cached.fingerprint == fingerprint:
            self._cache.move_to_end(key)
            return cached
        loaded: _Vectors | None = None
        if cached is not None and len(cached.ids) and fingerprint[1] > cached.fingerprint[1]:
            # Only appends since the cache was filled? Then read just the new rows.
            newer = await self._read_vectors(conn, condition & (t.id > int(cached.ids[-1])))
            if len(cached.ids) + len(newer.ids) == fingerprint[0] and (
                newer.matrix.shape[1] == cached.matrix.shape[1]
            ):
                loaded = _Vectors(
                    ids=np.concatenate([cached.ids, newer.ids]),
                    matrix=np.concatenate([cached.matrix, newer.matrix]),
                )
        if loaded is None:
            loaded = await self._read_vectors(conn, condition)
        self._cache[key] = loaded
        self._cache.move_to_end(key)
        while len(self._cache) > self._cache_scopes:
            self._cache.popitem(last=False)
        return loaded

    @staticmethod
    async def _read_vectors(conn: AsyncConnection, condition: Any) -> _Vectors:
        t = chunks_table.c
        rows = (
            await conn.execute(
                select(t.id, func.array_send(t.embedding)).where(condition).order_by(t.id)
            )
        ).all()
        if any(r[1] is None for r in rows):
            raise _SwitchedToPgvector
        return _Vectors(
            ids=np.array([r[0] for r in rows], dtype=np.int64),
            matrix=parse_real_arrays([bytes(r[1]) for r in rows]),
        )


_ROW_COLUMNS = ", ".join(
    f"c.{c.name}" for c in chunks_table.c if c.name not in ("embedding", "tsv")
)
_INSERT_VECTOR = sql(
    "INSERT INTO document_chunks (tenant_id, entity_id, file_hash, source, title, section, "
    "position, page, char_start, char_end, content, token_count, embedder, metadata, "
    f"{pgvector.VECTOR_COLUMN}) VALUES (:tenant_id, :entity_id, :file_hash, :source, :title, "
    ":section, :position, :page, :char_start, :char_end, :content, :token_count, :embedder, "
    ":metadata, CAST(:embedding AS vector))"
).bindparams(bindparam("metadata", type_=JSONB), bindparam("embedding", type_=ARRAY(REAL)))


_TYPED_COLUMNS: dict[str, Any] = {"metadata": JSONB(), "created_at": DateTime(timezone=True)}


def _parse_vector(blob: bytes | None) -> Any:
    """``vector_send`` format: int16 dimensions, int16 unused, big-endian float4s."""
    if blob is None:
        return None
    dims = int.from_bytes(blob[:2], "big")
    return np.frombuffer(blob, dtype=">f4", count=dims, offset=4).astype(np.float32)


def _top_cosine(vectors: _Vectors, query: Sequence[float], n: int) -> dict[int, float]:
    if not len(vectors.ids):
        return {}
    q = np.asarray(query, dtype=np.float32)
    if q.shape[0] != vectors.matrix.shape[1]:
        raise ConfigurationError(
            f"query embedding has {q.shape[0]} dimensions, stored embeddings "
            f"{vectors.matrix.shape[1]}: search with the embedder the documents were ingested with"
        )
    sims = vectors.matrix @ q
    n = min(n, len(sims))
    top = np.argpartition(-sims, n - 1)[:n]
    return {int(vectors.ids[i]): float(sims[i]) for i in top}


def _vector_of(vectors: _Vectors, ident: int) -> Sequence[float] | None:
    index = int(np.searchsorted(vectors.ids, ident))
    if index < len(vectors.ids) and vectors.ids[index] == ident:
        return vectors.matrix[index]  # type: ignore[no-any-return]
    return None


def _chunk(row: Any) -> Chunk:
    return Chunk(
        file_hash=row.file_hash,
        source=row.source,
        position=row.position,
        content=row.content,
        title=row.title,
        section=row.section,
        page=row.page,
        char_start=row.char_start,
        char_end=row.char_end,
        token_count=row.token_count,
        metadata=dict(row.metadata or {}),
    )


@contextlib.contextmanager
def _errors(operation: str) -> Iterator[None]:
    """A missing table is a setup problem with a known fix, not a storage failure."""
    try:
        yield
    except DBAPIError as exc:
        if getattr(getattr(exc, "orig", None), "sqlstate", None) == "42P01":
            raise ConfigurationError(
                f"{operation}: the document_chunks table does not exist: "
                "run `ai-agents migrate` first"
            ) from exc
        raise
