"""Issue 8, acceptance 5: RAG ingestion throughput and search latency on PostgreSQL.

Prints, on a throwaway database:

- ingestion chunks/s end to end (extract, chunk, MiniLM embeddings, store) on a sample;
- ingestion chunks/s of the indexing part (extract, chunk, store) while growing the
  corpus to 1,000 and then 10,000 chunks. Embedding 10,000 chunks with MiniLM takes
  many minutes on a 2-core machine, so by default those vectors are MiniLM vectors of
  the sample replayed with noise (same distribution, no model time); ``--full`` embeds
  every chunk with MiniLM instead;
- search p50 at 1,000 and 10,000 chunks in one tenant (the worst case: no entity filter
  narrows the scan): warm (vectors cached in the process) right after the bulk ingestion
  and again after ``VACUUM ANALYZE`` (the steady state autovacuum reaches: planner
  statistics and the visibility map for index-only scans), cold (cache dropped before each
  query), and end to end with the MiniLM query embedding and MMR reranking.

Usage: ``python bench/rag.py [--full] [--sample 300] [--repeat 30]``.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from _common import bench_database, median_ms  # noqa: E402
from sqlalchemy import text as sql  # noqa: E402

from ai_agents.rag.chunking import extract  # noqa: E402
from ai_agents.rag.embedders import CachingEmbedder, MiniLMEmbedder  # noqa: E402
from ai_agents.rag.pg_index import PgDocumentIndex  # noqa: E402
from ai_agents.rag.service import DocumentService  # noqa: E402

HANDBOOK = Path(__file__).resolve().parents[1] / "tests" / "data" / "handbook"
SIZES = (1_000, 10_000)
TENANT = "bench"
QUESTIONS = [
    "What time do I have to check out?",
    "Where can my visitors park their car?",
    "What is the Wi-Fi password?",
    "How much does it cost to bring my dog?",
    "Which days is the recycling picked up?",
    "Until what time is the swimming pool open?",
    "A pipe burst at night, who do I call?",
    "Am I allowed to smoke on my balcony?",
    "When do quiet hours start?",
    "Where do we gather when the fire alarm goes off?",
]


def _sentences() -> list[str]:
    out = []
    for path in sorted(HANDBOOK.iterdir()):
        for block in extract(path.read_bytes(), name=path.name).blocks:
            out.extend(s.strip() for s in block.text.split(". ") if len(s.split()) > 4)
    return out


def make_documents(count: int, seed: int) -> list[str]:
    """Markdown documents in the handbook's style: 6 sections of 3 paragraphs each."""
    rng = random.Random(seed)
    sentences = _sentences()
    docs = []
    for n in range(count):
        parts = [f"# Building {seed}-{n} notes"]
        for s in range(6):
            parts.append(f"## Section {s} {rng.choice(['rules', 'hours', 'fees', 'tips'])}")
            for _ in range(3):
                picked = rng.sample(sentences, 4)
                parts.append(". ".join(picked).replace("$", f"${rng.randint(5, 500)} / $") + ".")
        docs.append("\n\n".join(parts))
    return docs


class ReplayEmbedder:
    """MiniLM vectors of the sample, replayed with noise (no model time; same geometry)."""

    def __init__(self, vectors: Sequence[Sequence[float]], name: str) -> None:
        self.base = np.asarray(vectors, dtype=np.float32)
        self.name = name
        self.dimensions = self.base.shape[1]
        self.rng = np.random.default_rng(0)

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        rows = self.base[self.rng.integers(0, len(self.base), len(texts))]
        rows = rows + self.rng.normal(0, 0.05, rows.shape).astype(np.float32)
        rows /= np.linalg.norm(rows, axis=1, keepdims=True)
        return [[float(x) for x in row] for row in rows]


async def count_chunks(index: PgDocumentIndex) -> int:
    return sum(d.chunks for d in await index.list_documents(TENANT, limit=100_000))


async def grow(service: DocumentService, target: int, seed: int) -> tuple[int, float]:
    """Ingest generated documents until the tenant has *target* chunks: (chunks, seconds)."""
    have = await count_chunks(service.index)  # type: ignore[arg-type]
    added, elapsed, batch = 0, 0.0, 0
    while have < target:
        docs = make_documents(max(1, min(50, (target - have) // 12)), seed + batch)
        batch += 1
        start = time.perf_counter()
        for i, doc in enumerate(docs):
            result = await service.ingestor.ingest_text(
                doc, source=f"gen/{seed}-{batch}-{i}.md", tenant_id=TENANT, kind="markdown"
            )
            added += result.chunks
        elapsed += time.perf_counter() - start
        have = await count_chunks(service.index)  # type: ignore[arg-type]
    return added, elapsed


async def main(url: str, args: argparse.Namespace) -> None:
    minilm = CachingEmbedder(MiniLMEmbedder())
    await minilm.embed(["warm up"])  # load the model outside the measurements
    index = PgDocumentIndex.from_url(url)
    try:
        # 1. End to end with MiniLM on a sample.
        sample_index = PgDocumentIndex.from_url(url)
        sample = DocumentService(sample_index, minilm)
        chunks, seconds = 0, 0.0
        sample_docs = make_documents(max(1, args.sample // 12), seed=999)
        start = time.perf_counter()
        for i, doc in enumerate(sample_docs):
            r = await sample.ingestor.ingest_text(
                doc, source=f"sample/{i}.md", tenant_id="sample", kind="markdown"
            )
            chunks += r.chunks
        seconds = time.perf_counter() - start
        await sample_index.aclose()
        print(
            f"ingestion, end to end with MiniLM: {chunks} chunks in {seconds:.1f} s "
            f"= {chunks / seconds:,.0f} chunks/s"
        )
        vectors = list(minilm._cache.values())
        bulk_embedder = minilm if args.full else ReplayEmbedder(vectors, minilm.name)
        service = DocumentService(index, bulk_embedder)
        query_service = DocumentService(index, minilm)
        query_vectors = await minilm.embed(QUESTIONS)
        label = "with MiniLM" if args.full else "indexing only, vectors precomputed"

        queue = list(zip(QUESTIONS, query_vectors, strict=True))
        for size in SIZES:
            added, seconds = await grow(service, size, seed=size)
            total = await count_chunks(index)
            print(
                f"\n== {total:,} chunks: ingestion ({label}): {added:,} chunks in "
                f"{seconds:.1f} s = {added / seconds:,.0f} chunks/s"
            )
            turn = 0

            async def warm() -> None:
                nonlocal turn
                question, vector = queue[turn % len(queue)]
                turn += 1
                await index.search(
                    TENANT,
                    entity_id=None,
                    text=question,
                    vector=vector,
                    embedder=minilm.name,
                    candidates=40,
                )

            async def cold() -> None:
                index._cache.clear()
                await warm()

            async def end_to_end() -> None:
                nonlocal turn
                question = QUESTIONS[turn % len(QUESTIONS)] + f" ({turn})"  # not cached
                turn += 1
                await query_service.search(TENANT, question, top_k=5)

            fresh = await median_ms(warm, repeat=args.repeat)
            async with index.engine.connect() as conn:  # what autovacuum does soon after
                conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                await conn.execute(sql("VACUUM ANALYZE document_chunks"))
            p50_warm = await median_ms(warm, repeat=args.repeat)
            p50_cold = await median_ms(cold, repeat=max(5, args.repeat // 3), warmup=1)
            p50_e2e = await median_ms(end_to_end, repeat=args.repeat)
            print(f"search p50, index, warm, right after ingestion:  {fresh:7.1f} ms")
            print(f"search p50, index, warm (vectors cached):        {p50_warm:7.1f} ms")
            print(f"search p50, index, cold (vectors read from SQL): {p50_cold:7.1f} ms")
            print(f"search p50, end to end (MiniLM query + MMR):     {p50_e2e:7.1f} ms")
    finally:
        await index.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="embed every chunk with MiniLM")
    parser.add_argument("--sample", type=int, default=300, help="chunks embedded end to end")
    parser.add_argument("--repeat", type=int, default=30, help="queries per measurement")
    arguments = parser.parse_args()
    with bench_database() as database_url:
        asyncio.run(main(database_url, arguments))
