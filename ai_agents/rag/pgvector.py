"""pgvector for the PostgreSQL document index: detect it, switch to it, index by dimension.

Without the ``vector`` extension, embeddings live in ``document_chunks.embedding``
(``REAL[]``) and similarity is computed in numpy (:mod:`ai_agents.rag.pg_index`). With it,
they live in ``embedding_vector`` (type ``vector``, any dimension) and the search is one
SQL statement ordered by an HNSW index (cosine). The column is the record of the switch:
present means pgvector is in use, and ``embedding`` is then NULL on every row.

Embedders differ in dimensions (MiniLM 384, OpenAI 1,536 or 3,072), and an HNSW index
needs one, so there is one partial expression index per dimension::

    CREATE INDEX ix_document_chunks_hnsw_384 ON document_chunks
        USING hnsw ((embedding_vector::vector(384)) vector_cosine_ops)
        WHERE vector_dims(embedding_vector) = 384

created when the first chunks of that dimension are stored (``halfvec`` above 2,000
dimensions, the ``vector`` HNSW limit; no index above 4,000: those searches are exact).
Queries repeat the index's expression and predicate so the planner can use it.

Switching happens in ``ai-agents migrate`` (migration ``0010`` and, for a server that
gets pgvector later, every later ``migrate``): create the extension when the server has
it and the role may, add the column, move the vectors over, build the indexes.
``AI_AGENTS_PGVECTOR=off`` keeps the numpy path.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text as sql
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

log = logging.getLogger(__name__)

VECTOR_COLUMN = "embedding_vector"
#: HNSW indexes ``vector`` up to 2,000 dimensions and ``halfvec`` up to 4,000.
VECTOR_INDEX_LIMIT = 2000
HALFVEC_INDEX_LIMIT = 4000
#: Graph parameters of new indexes (pgvector's defaults).
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 64
SWITCH_ENV = "AI_AGENTS_PGVECTOR"


#: Without it the planner guesses ``vector_dims(...) = d`` matches 0.5 % of the rows, so
#: for a small tenant it walks the HNSW graph (200 ms at 100k rows) instead of reading
#: the tenant's few rows by the scope index and sorting them exactly (2 ms).
CREATE_STATISTICS = (
    "CREATE STATISTICS IF NOT EXISTS st_document_chunks_vector_dims "
    f"ON (vector_dims({VECTOR_COLUMN})) FROM document_chunks"
)


def cast_type(dimensions: int) -> str:
    """The typed form vectors of *dimensions* are indexed and compared as."""
    if not 0 < dimensions <= 16000:
        raise ValueError(f"vector dimensions must be 1..16000, not {dimensions}")
    kind = "vector" if dimensions <= VECTOR_INDEX_LIMIT else "halfvec"
    return f"{kind}({int(dimensions)})"


def indexed(dimensions: int) -> bool:
    return dimensions <= HALFVEC_INDEX_LIMIT


def index_name(dimensions: int) -> str:
    return f"ix_document_chunks_hnsw_{int(dimensions)}"


def create_index_sql(dimensions: int) -> str:
    typed = cast_type(dimensions)
    ops = "vector_cosine_ops" if typed.startswith("vector") else "halfvec_cosine_ops"
    return (
        f"CREATE INDEX IF NOT EXISTS {index_name(dimensions)} ON document_chunks "
        f"USING hnsw (({VECTOR_COLUMN}::{typed}) {ops}) "
        f"WITH (m = {HNSW_M}, ef_construction = {HNSW_EF_CONSTRUCTION}) "
        f"WHERE vector_dims({VECTOR_COLUMN}) = {int(dimensions)}"
    )


@dataclass(frozen=True, slots=True)
class VectorState:
    """What a database offers and uses (``ai-agents doctor`` prints it)."""

    available: str | None  # the extension version the server could install
    installed: str | None  # the version created in this database
    active: bool  # embeddings are stored in ``embedding_vector``
    indexed_dimensions: tuple[int, ...] = ()

    def describe(self) -> str:
        if self.active:
            dims = ", ".join(str(d) for d in self.indexed_dimensions) or "none yet"
            return f"pgvector {self.installed}: HNSW (cosine) indexes for dimensions {dims}"
        if self.available:
            return (
                f"numpy over REAL[] (pgvector {self.available} is available: "
                "`ai-agents migrate` switches to it unless AI_AGENTS_PGVECTOR=off)"
            )
        return "numpy over REAL[] (the server has no pgvector extension)"


_STATE = """
SELECT (SELECT default_version FROM pg_available_extensions WHERE name = 'vector') AS available,
       (SELECT extversion FROM pg_extension WHERE extname = 'vector') AS installed,
       EXISTS (SELECT 1 FROM pg_attribute
               WHERE attrelid = to_regclass('document_chunks')
                 AND attname = :column AND NOT attisdropped) AS active
"""
_INDEXES = """
SELECT indexname FROM pg_indexes
WHERE tablename = 'document_chunks' AND indexname LIKE 'ix\\_document\\_chunks\\_hnsw\\_%'
"""


def read_state(conn: Connection) -> VectorState:
    row = conn.execute(sql(_STATE), {"column": VECTOR_COLUMN}).one()
    dims: tuple[int, ...] = ()
    if row.active:
        names = conn.execute(sql(_INDEXES)).scalars().all()
        dims = tuple(sorted(int(n.rsplit("_", 1)[1]) for n in names))
    return VectorState(row.available, row.installed, bool(row.active), dims)


async def read_state_asyncpg(conn: Any) -> VectorState:
    """:func:`read_state` on a plain asyncpg connection (``ai-agents doctor``)."""
    row = await conn.fetchrow(_STATE.replace(":column", "$1"), VECTOR_COLUMN)
    dims: tuple[int, ...] = ()
    if row["active"]:
        names = [r["indexname"] for r in await conn.fetch(_INDEXES)]
        dims = tuple(sorted(int(n.rsplit("_", 1)[1]) for n in names))
    return VectorState(row["available"], row["installed"], bool(row["active"]), dims)


def switched_off() -> bool:
    """``AI_AGENTS_PGVECTOR=off`` (settings model): keep the numpy search."""
    from ai_agents.settings import load_settings

    return load_settings().pgvector == "off"


def ensure_pgvector(conn: Connection) -> VectorState:
    """Switch the document index to pgvector when the server has it (idempotent).

    Runs inside the migration's transaction: the extension, the column, the moved
    vectors and the indexes appear together or not at all. A role that may not create
    the extension keeps the numpy path (logged), as does ``AI_AGENTS_PGVECTOR=off``.
    """
    from ai_agents.db.migrate import MIGRATION_LOCK_KEY

    conn.execute(sql("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
    state = read_state(conn)
    if state.active or not state.available or switched_off():
        return state
    if not state.installed:
        try:
            with conn.begin_nested():
                conn.execute(sql("CREATE EXTENSION IF NOT EXISTS vector"))
        except DBAPIError as exc:
            log.warning(
                "pgvector is available but could not be created (%s); document search "
                "stays on the numpy path. A superuser can run CREATE EXTENSION vector; "
                "then run `ai-agents migrate` again.",
                str(exc.orig).strip().splitlines()[0] if exc.orig else exc,
            )
            return state
    conn.execute(sql(f"ALTER TABLE document_chunks ADD COLUMN {VECTOR_COLUMN} vector"))
    conn.execute(sql("ALTER TABLE document_chunks ALTER COLUMN embedding DROP NOT NULL"))
    conn.execute(sql(CREATE_STATISTICS))
    # Vectors inline (MAIN: out of line only when a row cannot fit otherwise): an exact
    # search of a small scope reads its rows' vectors, and a TOAST fetch per row would
    # triple that. The HNSW index keeps its own copy.
    conn.execute(sql(f"ALTER TABLE document_chunks ALTER COLUMN {VECTOR_COLUMN} SET STORAGE MAIN"))
    moved = conn.execute(
        sql(
            f"UPDATE document_chunks SET {VECTOR_COLUMN} = embedding::vector, embedding = NULL "
            "WHERE embedding IS NOT NULL"
        )
    ).rowcount
    dimensions = conn.execute(
        sql(f"SELECT DISTINCT vector_dims({VECTOR_COLUMN}) FROM document_chunks")
    ).scalars()
    for dims in dimensions:
        if dims and indexed(int(dims)):
            conn.execute(sql(create_index_sql(int(dims))))
    conn.execute(sql("ANALYZE document_chunks"))
    log.info("document index switched to pgvector (%s chunks moved)", moved)
    return read_state(conn)


# --- search -----------------------------------------------------------------------------

#: One round trip: the nearest chunks, the full-text top N, and the rows of both (with
#: their vectors, for MMR). Nearest: a scope of fewer than ``:exact_below`` rows (counted
#: up to that bound by the scope index) is searched exactly, its rows sorted by distance
#: (recall 1, and faster than walking a graph built for the whole table); a larger one by
#: the HNSW index (the first branch repeats its expression and predicate). Both branches
#: are planned; the one-time filter on the count runs only one. Full-text ranking has no index order: every
#: matching row is read and ranked (about 13 us each), so a question made of common words
#: over a million passages would rank tens of thousands of rows. ``:text_scan`` bounds
#: that (``AI_AGENTS_RAG_TEXT_SCAN_LIMIT``); the vector side still searches everything. ``{typed}``/``{dims}`` are integers from the
#: query vector's length; everything else is a bound parameter.
_SEARCH = """
WITH scope AS (
    SELECT count(*) AS n FROM (
        SELECT 1 FROM document_chunks c
        WHERE c.tenant_id = :tenant AND c.embedder = :embedder {entity}
        LIMIT :exact_below
    ) counted
), nearest AS (
    SELECT * FROM (
        SELECT c.id, (c.{column}::{typed}) <=> CAST(CAST(:vector AS real[]) AS {typed})
               AS distance
        FROM document_chunks c
        WHERE c.tenant_id = :tenant AND c.embedder = :embedder {entity}
          AND vector_dims(c.{column}) = {dims}
        ORDER BY (c.{column}::{typed}) <=> CAST(CAST(:vector AS real[]) AS {typed})
        LIMIT :limit
    ) approximate WHERE (SELECT n FROM scope) >= :exact_below
    UNION ALL
    SELECT * FROM (
        SELECT c.id, c.{column} <=> CAST(CAST(:vector AS real[]) AS vector) AS distance
        FROM document_chunks c
        WHERE c.tenant_id = :tenant AND c.embedder = :embedder {entity}
          AND vector_dims(c.{column}) = {dims}
        ORDER BY distance
        LIMIT :limit
    ) exact WHERE (SELECT n FROM scope) < :exact_below
), query AS (
    SELECT nullif(replace(plainto_tsquery('english', :text)::text, ' & ', ' | '), '')::tsquery
           AS tsq
), matched AS MATERIALIZED (
    SELECT * FROM (
        SELECT c.id, c.tsv FROM document_chunks c, query q
        WHERE c.tenant_id || '' = :tenant AND c.embedder = :embedder {entity}
          AND c.tsv @@ q.tsq
        LIMIT :text_scan
    ) large_scope WHERE (SELECT n FROM scope) >= :exact_below
    UNION ALL
    SELECT * FROM (
        SELECT c.id, c.tsv FROM document_chunks c, query q
        WHERE c.tenant_id = :tenant AND c.embedder = :embedder {entity} AND c.tsv @@ q.tsq
        LIMIT :text_scan
    ) small_scope WHERE (SELECT n FROM scope) < :exact_below
), matches AS (
    SELECT m.id, ts_rank(m.tsv, q.tsq, 1) AS rank
    FROM matched m, query q
    ORDER BY rank DESC, m.id
    LIMIT :limit
)
SELECT {columns}, vector_send(c.{column}) AS vector_bytes, n.distance, m.rank
FROM (SELECT id FROM nearest UNION SELECT id FROM matches) found
JOIN document_chunks c ON c.id = found.id AND c.tenant_id = :tenant
LEFT JOIN nearest n ON n.id = found.id
LEFT JOIN matches m ON m.id = found.id
"""

#: Per transaction: how wide the HNSW search is, and keep scanning the graph when the
#: scope filter (tenant, entity, embedder) removes candidates (pgvector 0.8 iterative
#: scans; ``relaxed_order`` is fine: the results are re-ranked after fusion anyway).
#: Custom plans: the statement is prepared, and a generic plan cannot see that this
#: tenant is small (exact search over its rows) or large (the HNSW index).
SEARCH_SETTINGS = (
    "SELECT set_config('hnsw.ef_search', :ef_search, true), "
    "set_config('hnsw.iterative_scan', :iterative_scan, true), "
    "set_config('hnsw.max_scan_tuples', :max_scan, true), "
    "set_config('plan_cache_mode', 'force_custom_plan', true)"
)


def search_sql(dimensions: int, *, columns: str, entity: bool) -> str:
    return _SEARCH.format(
        column=VECTOR_COLUMN,
        typed=cast_type(dimensions),
        dims=int(dimensions),
        columns=columns,
        entity="AND c.entity_id = :entity" if entity else "",
    )
