"""``ai-agents ingest PATH...``: ingest files and directories into the document index.

Directories are walked for supported files (.txt, .md, .html, .pdf, and .docx, .pptx,
.xlsx with the ``documents`` extra). Files are ingested batched
(:meth:`~ai_agents.rag.ingest.Ingestor.ingest_documents`): several files in flight, their
chunks embedded together. What is shown (:class:`~ai_agents.rag.progress.IngestProgress`):
a "loading model" step while the embedding model loads (files are chunked meanwhile), a
progress bar on stderr counting chunks (``--no-progress`` turns it off), one line per file
on stdout. A file that cannot be read is reported (a ``failed`` line) and skipped, the
others are ingested, the failures are listed again at the end with their errors, and the
exit status is 1 (0 when every file was ingested). Re-running the command on the same
files does nothing for the files already indexed. Heavy imports happen inside the handler,
so the CLI works without the ``rag`` extra until this command is used.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time

from ai_agents.cli import command, run_async


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", help="files or directories to ingest")
    parser.add_argument("--tenant", default=None, help="tenant (default: the default tenant)")
    parser.add_argument("--entity", default=None, help="entity within the tenant (optional)")
    parser.add_argument(
        "--backend",
        choices=("postgres", "opensearch"),
        default=None,
        help="document index (default AI_AGENTS_RAG_BACKEND or postgres)",
    )
    parser.add_argument("--opensearch-url", default=os.environ.get("OPENSEARCH_URL"))
    parser.add_argument(
        "--index-name",
        default=None,
        help="OpenSearch index (default AI_AGENTS_RAG_OPENSEARCH_INDEX or ai_agents_documents)",
    )
    parser.add_argument(
        "--embedder",
        default=None,
        help="minilm (default, or AI_AGENTS_RAG_EMBEDDER), hashing, ollama:MODEL, openai:MODEL",
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
    "ingest",
    "ingest documents (text, Markdown, HTML, PDF, DOCX, PPTX, XLSX) for the document tools",
    _configure,
)
def ingest_command(args: argparse.Namespace) -> int:
    return int(run_async(_ingest(args)))


async def _ingest(args: argparse.Namespace) -> int:
    from tqdm.contrib.logging import logging_redirect_tqdm

    from ai_agents.config import Settings
    from ai_agents.errors import ConfigurationError
    from ai_agents.rag.chunking import SUPPORTED_SUFFIXES, Chunker
    from ai_agents.rag.embedders import embedder_from_spec
    from ai_agents.rag.index import DocumentIndex
    from ai_agents.rag.ingest import Document, Ingestor, IngestOutcome, discover
    from ai_agents.rag.progress import IngestProgress
    from ai_agents.settings import load_settings

    configured = load_settings()  # every setting checked; the options' defaults
    settings = Settings.from_env()
    args.backend = args.backend or (
        "postgres" if configured.rag_backend == "postgresql" else configured.rag_backend
    )
    args.index_name = args.index_name or configured.rag_opensearch_index
    args.embedder = args.embedder or configured.rag_embedder
    tenant = args.tenant or settings.default_tenant
    files = discover(args.paths)
    if not files:
        supported = ", ".join(sorted(SUPPORTED_SUFFIXES))
        print(f"no supported files found ({supported})", file=sys.stderr)
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
        from ai_agents.commands._shared import command_settings
        from ai_agents.rag.pg_index import PgDocumentIndex

        # The configured database, else this user's embedded one (as every command).
        settings = await asyncio.to_thread(
            lambda: command_settings(
                redis=False, announce=lambda line: print(line, file=sys.stderr)
            )
        )
        assert settings.database_url is not None
        index = PgDocumentIndex.from_url(settings.database_url, settings)
    ingestor = Ingestor(
        index,
        embedder,
        chunker=Chunker(args.chunk_size, args.overlap),
        batch_size=args.batch_size,
        window=args.window,
    )
    _quiet_libraries(verbose=getattr(args, "verbose", False))
    report = IngestProgress(
        len(files),
        err=sys.stderr,
        out=sys.stdout,
        bar=not args.no_progress,
        json_lines=args.json,
    )
    outcomes: list[IngestOutcome] = []
    with logging_redirect_tqdm():  # log records go above the bar, not through it
        loading: asyncio.Task[None] | None = None
        load = getattr(embedder, "load", None)
        if callable(load):
            report.loading_model(embedder.name)
            started = time.perf_counter()

            def loaded(task: asyncio.Task[None]) -> None:
                if not task.cancelled() and task.exception() is None:
                    report.model_loaded(embedder.name, time.perf_counter() - started)

            loading = asyncio.create_task(asyncio.to_thread(load))  # chunking goes on
            loading.add_done_callback(loaded)
        try:
            await index.setup()
            outcomes = await ingestor.ingest_documents(
                (Document.from_path(f, source=_source(str(f), args.paths)) for f in files),
                tenant_id=tenant,
                entity_id=args.entity,
                progress=report.advanced,
                on_total=report.found,
                on_result=report.done,
            )
            if loading is not None:
                await loading
        finally:
            report.close()
            if loading is not None and not loading.done():
                loading.cancel()
            await index.aclose()
            closer = getattr(embedder, "aclose", None)
            if closer is not None:
                await closer()
    return report.finish(outcomes)


def _quiet_libraries(*, verbose: bool) -> None:
    """Without ``-v``: no INFO lines from the model loader, and no pypdf warnings about
    damaged PDFs (a PDF that cannot be read is reported as a failed file anyway)."""
    if verbose:
        return
    logging.getLogger("sentence_transformers").setLevel(logging.WARNING)
    logging.getLogger("pypdf").setLevel(logging.ERROR)


def _source(file: str, paths: list[str]) -> str:
    """A file's name relative to the directory argument it was found in (else as given)."""
    absolute = os.path.abspath(file)
    for path in paths:
        root = os.path.abspath(path)
        if os.path.isdir(root) and absolute.startswith(root + os.sep):
            return os.path.relpath(absolute, root)
    return file
