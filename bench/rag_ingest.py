"""Issue 8: document ingestion throughput with MiniLM, end to end, old path vs batched.

Ingests a corpus of real text (``docs/*.md`` and ``tests/data/handbook``, copied until it
has ``--chunks`` chunks with the default chunker; each copy differs by trailing
whitespace only, so its file hash is new and it is embedded again) into a throwaway
PostgreSQL database, twice, in one run:

- **old path**: one document at a time (``Ingestor.ingest_bytes``), sentence-transformers
  on torch with the previous settings (batches of 64 texts in document order);
- **batched**: ``Ingestor.ingest_documents`` (``window`` chunks of several documents in
  flight, sorted by length, full batches) with the default ``MiniLMEmbedder`` backend
  (``--backend`` to choose; ``--also BACKEND`` adds a batched run with another one).

Each run prints chunks/s end to end (extract, chunk, embed, store) and the busy time of
each stage (in the batched run the stages overlap, so they add up to more than the wall
time). The model is loaded before the measurements. Usage:
``python bench/rag_ingest.py [--chunks 1000] [--backend B] [--also B] [--no-old]``
with B one of ``onnx-int8`` (the default), ``onnx``, ``torch``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import bench_database  # noqa: E402

from ai_agents.rag.chunking import Chunker, extract  # noqa: E402
from ai_agents.rag.embedders import MINILM_BACKENDS, MiniLMEmbedder, cpu_threads  # noqa: E402
from ai_agents.rag.index import Chunk  # noqa: E402
from ai_agents.rag.ingest import Document, Ingestor  # noqa: E402
from ai_agents.rag.pg_index import PgDocumentIndex  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def corpus(min_chunks: int) -> tuple[list[tuple[str, bytes]], int, list[int], list[str]]:
    """(source, bytes) of the real files, copied until the chunks reach *min_chunks*; the
    total chunks, and the token counts and embedded texts of one copy."""
    files = sorted((ROOT / "docs").glob("*.md")) + sorted((ROOT / "tests/data/handbook").iterdir())
    chunker = Chunker()
    originals = []
    tokens: list[int] = []
    texts: list[str] = []
    for path in files:
        data = path.read_bytes()
        document = extract(data, name=path.name)
        for piece in chunker.chunk(document.blocks):
            tokens.append(piece.token_count)
            chunk = Chunk(
                file_hash="-",
                source=path.name,
                position=piece.position,
                content=piece.content,
                title=document.title,
                section=piece.section,
            )
            texts.append(chunk.embedding_text())
        originals.append((str(path.relative_to(ROOT)), data))
    per_copy = len(tokens)
    copies = max(1, -(-min_chunks // per_copy))
    out = []
    for copy in range(copies):
        for source, data in originals:
            out.append((f"copy{copy}/{source}", data + b"\n" * copy))  # same text, new hash
    return out, per_copy * copies, tokens, texts


def cosine_texts(minimum: int) -> list[str]:
    """At least *minimum* distinct embedded chunk texts of real prose: the corpus, the
    README, then the long descriptions of installed packages (their PyPI pages)."""
    from importlib import metadata

    chunker = Chunker()
    texts: list[str] = []
    sources = [(p.name, p.read_bytes()) for p in sorted((ROOT / "docs").glob("*.md"))]
    sources += [(p.name, p.read_bytes()) for p in sorted((ROOT / "tests/data/handbook").iterdir())]
    sources.append(("README.md", (ROOT / "README.md").read_bytes()))
    for dist in sorted(metadata.distributions(), key=lambda d: d.metadata["Name"] or ""):
        body = dist.metadata.get_payload() or ""  # type: ignore[attr-defined]
        if len(body) > 2000:
            sources.append((f"{dist.metadata['Name']}.md", str(body).encode()))
    for name, data in sources:
        if len(set(texts)) >= minimum:
            break
        document = extract(data, name=name)
        for piece in chunker.chunk(document.blocks):
            chunk = Chunk(
                file_hash="-",
                source=name,
                position=piece.position,
                content=piece.content,
                title=document.title,
                section=piece.section,
            )
            texts.append(chunk.embedding_text())
    return list(dict.fromkeys(texts))


async def cosine_check(backend: MiniLMEmbedder, minimum: int) -> None:
    import numpy as np

    texts = cosine_texts(minimum)
    reference = np.asarray(await MiniLMEmbedder(backend="torch").embed(texts))
    vectors = np.asarray(await backend.embed(texts))
    cosines = (reference * vectors).sum(axis=1)
    norms = np.linalg.norm(vectors, axis=1)
    print(
        f"cosine {backend.backend} vs torch fp32 over {len(texts)} real chunks: mean "
        f"{cosines.mean():.5f}, min {cosines.min():.5f}, 1st percentile "
        f"{np.percentile(cosines, 1):.5f}; norms {norms.min():.6f}..{norms.max():.6f}",
        flush=True,
    )


class Timed:
    """Busy seconds per stage (summed over calls; stages may overlap)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {"extract+chunk": 0.0, "embed": 0.0, "store": 0.0}

    def add(self, stage: str, seconds: float) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds


class TimedEmbedder:
    def __init__(self, inner: MiniLMEmbedder, timed: Timed) -> None:
        self.inner, self.timed = inner, timed
        self.name, self.dimensions = inner.name, inner.dimensions

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        start = time.perf_counter()
        try:
            return await self.inner.embed(texts)
        finally:
            self.timed.add("embed", time.perf_counter() - start)


class TimedIndex:
    def __init__(self, inner: PgDocumentIndex, timed: Timed) -> None:
        self.inner, self.timed = inner, timed

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def replace_document(self, *args: Any, **kwargs: Any) -> int:
        start = time.perf_counter()
        try:
            return await self.inner.replace_document(*args, **kwargs)
        finally:
            self.timed.add("store", time.perf_counter() - start)

    async def count_chunks(self, *args: Any, **kwargs: Any) -> int:
        start = time.perf_counter()
        try:
            return await self.inner.count_chunks(*args, **kwargs)
        finally:
            self.timed.add("store", time.perf_counter() - start)


class TimedIngestor(Ingestor):
    timed: Timed

    def _chunks(
        self, data: bytes, name: str, source: str, kind: str | None, title: str | None
    ) -> tuple[str, str | None, list[Chunk]]:
        start = time.perf_counter()
        try:
            return super()._chunks(data, name, source, kind, title)
        finally:
            self.timed.add("extract+chunk", time.perf_counter() - start)


def _ingestor(url: str, embedder: MiniLMEmbedder, timed: Timed, **kwargs: Any) -> TimedIngestor:
    index = TimedIndex(PgDocumentIndex.from_url(url), timed)
    ingestor = TimedIngestor(index, TimedEmbedder(embedder, timed), **kwargs)  # type: ignore[arg-type]
    ingestor.timed = timed
    return ingestor


def _report(label: str, chunks: int, seconds: float, cpu: float, timed: Timed) -> float:
    rate = chunks / seconds
    cores = cpu_threads()
    split = ", ".join(
        f"{stage} {busy:.1f} s ({1000 * busy / chunks:.1f} ms/chunk)"
        for stage, busy in timed.seconds.items()
    )
    print(f"{label}: {chunks} chunks in {seconds:.1f} s = {rate:,.1f} chunks/s", flush=True)
    print(f"    busy time: {split}", flush=True)
    print(
        f"    CPU time {cpu:.1f} s on {cores} cores ({100 * cpu / seconds / cores:.0f}% of them; "
        f"load average {os.getloadavg()[0]:.1f}): {chunks * cores / cpu:,.1f} chunks/s "
        f"if the cores were this run's alone",
        flush=True,
    )
    return rate


async def sequential(url: str, docs: list[tuple[str, bytes]], embedder: MiniLMEmbedder) -> float:
    timed = Timed()
    ingestor = _ingestor(url, embedder, timed, batch_size=64)
    chunks = 0
    start, cpu = time.perf_counter(), time.process_time()
    for source, data in docs:
        result = await ingestor.ingest_bytes(data, name=source, source=source, tenant_id="old-path")
        chunks += result.chunks
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    await ingestor.index.aclose()
    label = "old path (one document at a time, torch, batches of 64)"
    return _report(label, chunks, seconds, cpu, timed)


async def batched(
    url: str,
    docs: list[tuple[str, bytes]],
    embedder: MiniLMEmbedder,
    tenant: str,
    args: argparse.Namespace,
) -> float:
    timed = Timed()
    ingestor = _ingestor(url, embedder, timed, batch_size=args.batch_size, window=args.window)
    start, cpu = time.perf_counter(), time.process_time()
    outcomes = await ingestor.ingest_documents(
        (Document(source=s, data=d, name=s) for s, d in docs), tenant_id=tenant
    )
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    await ingestor.index.aclose()
    failed = [o for o in outcomes if o.status == "failed"]
    if failed:
        raise SystemExit(f"{len(failed)} documents failed: {failed[0]}")
    chunks = sum(o.chunks for o in outcomes)
    label = f"batched ({embedder.backend}, window {args.window}, batches of {args.batch_size}, " + (
        f"encode batches of {embedder.encode_batch_size}, {embedder.threads} threads)"
        if embedder.backend == "torch"
        else f"one text per run, {embedder.threads} in parallel)"
    )
    return _report(label, chunks, seconds, cpu, timed)


async def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--chunks", type=int, default=1000, help="corpus size in chunks")
    parser.add_argument("--backend", choices=MINILM_BACKENDS, default=None, help="batched run")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--window", type=int, default=256)
    parser.add_argument(
        "--also", choices=MINILM_BACKENDS, action="append", default=[], help="another batched run"
    )
    parser.add_argument("--no-old", action="store_true", help="skip the old path")
    parser.add_argument(
        "--cosine",
        type=int,
        default=0,
        metavar="N",
        help="first compare the batched backend's vectors with torch fp32 on N real chunks",
    )
    args = parser.parse_args(argv)

    docs, chunks, tokens, texts = corpus(args.chunks)
    old = MiniLMEmbedder(backend="torch", batch_size=64, encode_batch_size=64)
    new = MiniLMEmbedder(backend=args.backend)
    start = time.perf_counter()
    old.load()
    new.load()  # the ONNX backend exports the graph once (cached) here
    await new.embed(["warm up"])
    await old.embed(["warm up"])
    print(f"model loaded in {time.perf_counter() - start:.1f} s", flush=True)
    model = old.model()
    mask = (getattr(model, "preprocess", None) or model.tokenize)(texts)["attention_mask"]
    pieces = [int(row.sum()) for row in mask]
    print(
        f"corpus: {len(docs)} documents, {chunks} chunks; per chunk (chunk_size 200, "
        f"overlap 40): mean {statistics.mean(tokens):.0f} cl100k tokens of content, "
        f"mean {statistics.mean(pieces):.0f} MiniLM word pieces embedded (title, section, "
        f"content; at most 256)",
        flush=True,
    )
    if args.cosine:
        await cosine_check(new, args.cosine)
    cm = bench_database()
    url = await asyncio.to_thread(cm.__enter__)
    try:
        rates = {}
        if not args.no_old:
            rates["old"] = await sequential(url, docs, old)
        rates["new"] = await batched(url, docs, new, "batched", args)
        for backend in args.also:
            other = MiniLMEmbedder(backend=backend)
            other.load()
            await other.embed(["warm up"])
            rates[backend] = await batched(url, docs, other, f"batched-{backend}", args)
        if "old" in rates:
            print(f"speed-up: {rates['new'] / rates['old']:.1f}x", flush=True)
    finally:
        await asyncio.to_thread(cm.__exit__, None, None, None)


if __name__ == "__main__":
    asyncio.run(main())
