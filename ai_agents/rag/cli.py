"""``ai-agents ingest PATH...``: ingest files and directories into the document index.

Directories are walked for supported files (.txt, .md, .html, .pdf). A progress bar
(tqdm, on stderr) counts embedded chunks per file; ``--no-progress`` turns it off.
Re-running the command on the same files does nothing for the files already indexed.
Heavy imports happen inside the handler, so the CLI works without the ``rag`` extra
until this command is used.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
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
    from ai_agents.rag.ingest import Ingestor, IngestResult, discover

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
    ingestor = Ingestor(index, embedder, chunker=Chunker(args.chunk_size, args.overlap))
    bar: Any = tqdm(
        total=len(files), unit="file", disable=args.no_progress, file=sys.stderr, dynamic_ncols=True
    )
    chunks = 0

    def progress(n: int) -> None:
        nonlocal chunks
        chunks += n
        bar.set_postfix(chunks=chunks, refresh=True)

    def done(result: IngestResult) -> None:
        bar.update(1)
        line = (
            json.dumps(result.to_json())
            if args.json
            else f"{result.status:9} {result.chunks:5} chunks  {result.file_hash}  {result.source}"
        )
        bar.write(line, file=sys.stdout)

    try:
        await index.setup()
        results = []
        for file in files:
            result = await ingestor.ingest_file(
                file,
                tenant_id=tenant,
                entity_id=args.entity,
                source=_source(str(file), args.paths),
                progress=progress,
            )
            results.append(result)
            done(result)
    finally:
        bar.close()
        await index.aclose()
        closer = getattr(embedder, "aclose", None)
        if closer is not None:
            await closer()
    total = sum(r.chunks for r in results)
    changed = sum(1 for r in results if r.status in ("indexed", "replaced"))
    print(f"{len(results)} files, {changed} (re)indexed, {total} chunks", file=sys.stderr)
    return 0


def _source(file: str, paths: list[str]) -> str:
    """A file's name relative to the directory argument it was found in (else as given)."""
    absolute = os.path.abspath(file)
    for path in paths:
        root = os.path.abspath(path)
        if os.path.isdir(root) and absolute.startswith(root + os.sep):
            return os.path.relpath(absolute, root)
    return file
