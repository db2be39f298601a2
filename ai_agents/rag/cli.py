"""``ai-agents ingest PATH...``: ingest files and directories into the document index.

Directories are walked for supported files (.txt, .md, .html, .pdf). Files are ingested
batched (:meth:`~ai_agents.rag.ingest.Ingestor.ingest_documents`): several files in
flight, their chunks embedded together. The progress bar (tqdm, on stderr) counts chunks:
its total grows as files are chunked (which starts while the embedding model loads, said
by a "loading model" line) and it advances as chunks are embedded or found already
stored; ``--no-progress`` turns it off. A file that cannot be read is reported (a
``failed`` line) and the others are ingested; the exit status is then 1. Re-running the
command on the same files does nothing for the files already indexed. Heavy imports happen
inside the handler, so the CLI works without the ``rag`` extra until this command is used.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from typing import Any

from ai_agents.cli import command, run_async


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", help="files or directories to ingest")
    parser.add_argument("--tenant", default=None, help="tenant (default: the default tenant)")
    parser.add_argument("--entity", default=None, help="entity within the tenant (optional)")
    parser.add_argument(
        "--backend",
        choices=("postgres", "opensearch"),
        default=os.environ.get("AI_AGENTS_RAG_BACKEND", "postgres"),
    )
    parser.add_argument("--opensearch-url", default=os.environ.get("OPENSEARCH_URL"))
    parser.add_argument(
        "--index-name",
        default=os.environ.get("AI_AGENTS_RAG_OPENSEARCH_INDEX", "ai_agents_documents"),
    )
    parser.add_argument(
        "--embedder",
        default=os.environ.get("AI_AGENTS_RAG_EMBEDDER", "minilm"),
        help="minilm (default), hashing, ollama:MODEL, openai:MODEL",
    )
    parser.add_argument("--chunk-size", type=int, default=200, help="tokens per chunk")
    parser.add_argument("--overlap", type=int, default=40, help="tokens shared by neighbours")
    parser.add_argument(
        "--batch-size", type=int, default=64, help="chunks per embedding call (default 64)"
    )
    parser.add_argument(
        "--window",
        type=int,
        default=256,
        help="chunks of several files embedded together, sorted by length (default 256)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--json", action="store_true", help="print one JSON line per file")


@command(
    "ingest", "ingest documents (text, Markdown, HTML, PDF) for the document tools", _configure
)
def ingest_command(args: argparse.Namespace) -> int:
    return int(run_async(_ingest(args)))


async def _ingest(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ai_agents.config import Settings
    from ai_agents.errors import ConfigurationError
    from ai_agents.rag.chunking import Chunker
    from ai_agents.rag.embedders import embedder_from_spec
    from ai_agents.rag.index import DocumentIndex
    from ai_agents.rag.ingest import Document, Ingestor, IngestOutcome, IngestResult, discover

    settings = Settings.from_env()
    tenant = args.tenant or settings.default_tenant
    files = discover(args.paths)
    if not files:
        print("no supported files found (.txt, .md, .html, .pdf)", file=sys.stderr)
        return 1
    embedder = embedder_from_spec(args.embedder)
    index: DocumentIndex
    if args.backend == "opensearch":
        from ai_agents.rag.opensearch_index import OpenSearchDocumentIndex

        if not args.opensearch_url:
            raise ConfigurationError(
                "--backend opensearch needs --opensearch-url or OPENSEARCH_URL"
            )
        index = OpenSearchDocumentIndex(
            url=args.opensearch_url, index=args.index_name, dimensions=embedder.dimensions
        )
    else:
        from ai_agents.rag.pg_index import PgDocumentIndex

        if not settings.database_url:
            raise ConfigurationError("set AI_AGENTS_DATABASE_URL (or DATABASE_URL) first")
        index = PgDocumentIndex.from_url(settings.database_url, settings)
    ingestor = Ingestor(
        index,
        embedder,
        chunker=Chunker(args.chunk_size, args.overlap),
        batch_size=args.batch_size,
        window=args.window,
    )
    bar: Any = tqdm(
        total=0,
        unit="chunk",
        desc="chunks",
        disable=args.no_progress,
        file=sys.stderr,
        dynamic_ncols=True,
    )
    files_done = 0

    def found(n: int) -> None:
        bar.total += n
        bar.refresh()

    def progress(n: int) -> None:
        bar.update(n)

    def done(outcome: IngestOutcome) -> None:
        nonlocal files_done
        files_done += 1
        bar.set_postfix(files=f"{files_done}/{len(files)}", refresh=True)
        if args.json:
            line = json.dumps(outcome.to_json())
        elif isinstance(outcome, IngestResult):
            line = f"{outcome.status:9} {outcome.chunks:5} chunks  {outcome.file_hash}  {outcome.source}"
        else:
            line = f"{'failed':9} {0:5} chunks  {'-':32}  {outcome.source}: {outcome.error}"
        bar.write(line, file=sys.stdout)

    loading: asyncio.Task[None] | None = None
    load = getattr(embedder, "load", None)
    if callable(load):
        bar.write(f"loading model {embedder.name} ...", file=sys.stderr)
        started = time.perf_counter()

        def load_model() -> None:
            load()
            bar.write(
                f"model {embedder.name} loaded in {time.perf_counter() - started:.1f} s",
                file=sys.stderr,
            )

        loading = asyncio.create_task(asyncio.to_thread(load_model))  # chunking goes on
        loading.add_done_callback(lambda task: task.cancelled() or task.exception())
    outcomes: list[IngestOutcome] = []
    try:
        await index.setup()
        outcomes = await ingestor.ingest_documents(
            (Document.from_path(f, source=_source(str(f), args.paths)) for f in files),
            tenant_id=tenant,
            entity_id=args.entity,
            progress=progress,
            on_total=found,
            on_result=done,
        )
        if loading is not None:
            await loading
    finally:
        bar.close()
        await index.aclose()
        closer = getattr(embedder, "aclose", None)
        if closer is not None:
            await closer()
    results = [o for o in outcomes if isinstance(o, IngestResult)]
    failed = len(outcomes) - len(results)
    total = sum(r.chunks for r in results)
    changed = sum(1 for r in results if r.status in ("indexed", "replaced"))
    summary = f"{len(outcomes)} files, {changed} (re)indexed, {total} chunks"
    print(summary + (f", {failed} failed" if failed else ""), file=sys.stderr)
    return 1 if failed else 0


def _source(file: str, paths: list[str]) -> str:
    """A file's name relative to the directory argument it was found in (else as given)."""
    absolute = os.path.abspath(file)
    for path in paths:
        root = os.path.abspath(path)
        if os.path.isdir(root) and absolute.startswith(root + os.sep):
            return os.path.relpath(absolute, root)
    return file
