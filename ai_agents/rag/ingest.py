"""Ingestion: file or text -> chunks -> embeddings -> index, idempotently.

A document is identified by its content hash (:func:`~ai_agents.rag.chunking.file_hash`)
within its scope (tenant, entity). Ingesting it again with the same embedder and chunking
finds the same number of chunks already stored and does nothing ("unchanged"); ingesting
a new version of the same source replaces the old version's chunks ("replaced"), so a
source never appears twice. Extraction and chunking run in a worker thread (PDF parsing
is CPU-bound).

Two paths give the same stored rows:

- one document at a time (:meth:`Ingestor.ingest_file`, :meth:`~Ingestor.ingest_text`,
  :meth:`~Ingestor.ingest_bytes`): the document's chunks are embedded in batches of
  ``batch_size`` and stored with one ``replace_document``;
- batched (:meth:`Ingestor.ingest_documents`, :meth:`~Ingestor.ingest_paths`, the
  ``ai-agents ingest`` command): several documents are in flight. Documents are chunked
  until ``window`` chunks are waiting; those chunks, from every waiting document, are
  sorted by length (so a batch pads little) and embedded in full batches of
  ``batch_size``; each document is then stored with one ``replace_document``. While one
  window is being embedded (in a worker thread), the next one is read and chunked and the
  previous one is stored. A document whose source or content hash is already in flight
  waits until that one is stored, so the outcome is exactly the one-at-a-time outcome.
  A document that cannot be read, extracted or stored is reported as an
  :class:`IngestFailure` and the others are ingested; an embedder error stops the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ai_agents.embeddings import Embedder
from ai_agents.errors import AgentsError, ValidationError
from ai_agents.rag.chunking import SUPPORTED_SUFFIXES, Chunker, extract, file_hash
from ai_agents.rag.index import Chunk, DocumentIndex, check_scope

IngestStatus = Literal["indexed", "replaced", "unchanged", "empty"]
#: Called with the number of chunks just embedded, or found already stored (progress bars).
ProgressFn = Callable[[int], None]

MAX_DOCUMENT_BYTES = 50 * 1024 * 1024
#: Chunks embedded together by :meth:`Ingestor.ingest_documents` (sorted by length).
DEFAULT_WINDOW = 256


@dataclass(frozen=True, slots=True)
class IngestResult:
    source: str
    file_hash: str
    title: str | None
    chunks: int
    status: IngestStatus

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "file_hash": self.file_hash,
            "title": self.title,
            "chunks": self.chunks,
            "status": self.status,
        }


@dataclass(frozen=True, slots=True)
class IngestFailure:
    """A document of a batch that could not be ingested (the others were)."""

    source: str
    error: str
    exception: BaseException | None = field(default=None, repr=False, compare=False)
    status: Literal["failed"] = "failed"
    chunks: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "status": self.status, "error": self.error}


@dataclass(frozen=True, slots=True)
class Document:
    """One document for :meth:`Ingestor.ingest_documents`: a file (read when its turn
    comes) or bytes; ``name`` (default: the file name or *source*) gives the format by its
    suffix unless ``kind`` is given."""

    source: str
    path: Path | None = None
    data: bytes | None = None
    name: str | None = None
    kind: str | None = None
    title: str | None = None

    @classmethod
    def from_path(cls, path: str | os.PathLike[str], *, source: str | None = None) -> Document:
        return cls(source=source or str(path), path=Path(path))

    @classmethod
    def from_text(
        cls,
        text: str,
        *,
        source: str,
        kind: Literal["text", "markdown", "html"] = "text",
        title: str | None = None,
    ) -> Document:
        if not isinstance(text, str):
            raise ValidationError("text must be a string", details={"field": "text"})
        return cls(source=source, data=text.encode(), name=source, kind=kind, title=title)


IngestOutcome = IngestResult | IngestFailure


@dataclass(slots=True)
class _Prepared:
    position: int
    source: str
    digest: str
    title: str | None
    chunks: list[Chunk]
    vectors: list[list[float]] = field(default_factory=list)


class Ingestor:
    """Turns documents into indexed chunks for one index and one embedder."""

    def __init__(
        self,
        index: DocumentIndex,
        embedder: Embedder,
        *,
        chunker: Chunker | None = None,
        batch_size: int = 64,
        window: int = DEFAULT_WINDOW,
        max_bytes: int = MAX_DOCUMENT_BYTES,
    ) -> None:
        if batch_size < 1 or window < 1:
            raise ValidationError("batch_size and window must be positive")
        self.index = index
        self.embedder = embedder
        self.chunker = chunker or Chunker()
        self.batch_size = batch_size
        self.window = window
        self.max_bytes = max_bytes

    # --- one document at a time -------------------------------------------------------

    async def ingest_file(
        self,
        path: str | os.PathLike[str],
        *,
        tenant_id: str,
        entity_id: str | None = None,
        source: str | None = None,
        progress: ProgressFn | None = None,
    ) -> IngestResult:
        """Ingest one file; ``source`` (default: the path as given) is what citations show."""
        file = Path(path)
        data = await asyncio.to_thread(self._read, file)
        return await self.ingest_bytes(
            data,
            name=file.name,
            source=source or str(path),
            tenant_id=tenant_id,
            entity_id=entity_id,
            progress=progress,
        )

    async def ingest_text(
        self,
        text: str,
        *,
        source: str,
        tenant_id: str,
        entity_id: str | None = None,
        title: str | None = None,
        kind: Literal["text", "markdown", "html"] = "text",
        progress: ProgressFn | None = None,
    ) -> IngestResult:
        """Ingest raw text (``kind`` says how to read it) under the name *source*."""
        if not isinstance(text, str):
            raise ValidationError("text must be a string", details={"field": "text"})
        return await self.ingest_bytes(
            text.encode(),
            name=source,
            source=source,
            tenant_id=tenant_id,
            entity_id=entity_id,
            kind=kind,
            title=title,
            progress=progress,
        )

    async def ingest_bytes(
        self,
        data: bytes,
        *,
        name: str,
        source: str,
        tenant_id: str,
        entity_id: str | None = None,
        kind: str | None = None,
        title: str | None = None,
        progress: ProgressFn | None = None,
    ) -> IngestResult:
        check_scope(tenant_id, entity_id)
        _check_source(source)
        digest, doc_title, chunks = await asyncio.to_thread(
            self._chunks, data, name, source, kind, title
        )
        if not chunks:
            return IngestResult(source, digest, doc_title, 0, "empty")
        stored = await self.index.count_chunks(tenant_id, entity_id, digest, self.embedder.name)
        if stored == len(chunks):
            if progress is not None:
                progress(len(chunks))
            return IngestResult(source, digest, doc_title, len(chunks), "unchanged")
        vectors: list[list[float]] = []
        for start in range(0, len(chunks), self.batch_size):
            batch = chunks[start : start + self.batch_size]
            vectors.extend(await self.embedder.embed([c.embedding_text() for c in batch]))
            if progress is not None:
                progress(len(batch))
        removed = await self.index.replace_document(
            tenant_id, entity_id, chunks, vectors, self.embedder.name
        )
        return IngestResult(
            source, digest, doc_title, len(chunks), "replaced" if removed else "indexed"
        )

    def _read(self, file: Path) -> bytes:
        size = file.stat().st_size
        if size > self.max_bytes:
            raise ValidationError(
                f"{file.name} is {size} bytes; the ingestion limit is {self.max_bytes} bytes"
            )
        return file.read_bytes()

    def _chunks(
        self, data: bytes, name: str, source: str, kind: str | None, title: str | None
    ) -> tuple[str, str | None, list[Chunk]]:
        """Hash, extract and chunk one document (CPU-bound: runs in a worker thread)."""
        digest = file_hash(data)
        document = extract(data, name=name, kind=kind)
        doc_title = title or document.title
        metadata = {"kind": document.kind, **document.metadata}
        chunks = [
            Chunk(
                file_hash=digest,
                source=source,
                position=p.position,
                content=p.content,
                title=doc_title,
                section=p.section,
                page=p.page,
                char_start=p.char_start,
                char_end=p.char_end,
                token_count=p.token_count,
                metadata=dict(metadata),
            )
            for p in self.chunker.chunk(document.blocks)
        ]
        return digest, doc_title, chunks

    # --- several documents in flight --------------------------------------------------

    async def ingest_documents(
        self,
        documents: Iterable[Document],
        *,
        tenant_id: str,
        entity_id: str | None = None,
        progress: ProgressFn | None = None,
        on_total: ProgressFn | None = None,
        on_result: Callable[[IngestOutcome], None] | None = None,
        raise_errors: bool = False,
    ) -> list[IngestOutcome]:
        """Ingest many documents with batched embedding; one outcome per document, in order.

        ``on_total(n)`` is called with each document's chunk count as soon as it is
        chunked (a progress bar's total grows with it), ``progress(n)`` with the chunks just
        embedded or found already stored (the calls sum to the total), ``on_result`` when a
        document is done (stored, unchanged, empty or failed). A failing document is an
        :class:`IngestFailure` (``raise_errors=True`` raises its exception instead).
        """
        check_scope(tenant_id, entity_id)
        run = _BatchRun(self, tenant_id, entity_id, progress, on_result, raise_errors)
        try:
            for position, document in enumerate(documents):
                try:
                    _check_source(document.source)
                    prepared = await asyncio.to_thread(self._prepare, position, document)
                except Exception as exc:  # one unreadable document never stops the others
                    run.fail(position, document.source, exc)
                    continue
                if on_total is not None:
                    on_total(len(prepared.chunks))
                await run.add(prepared)
            await run.drain()
        except BaseException:
            await run.cancel()
            raise
        return run.outcomes()

    def _prepare(self, position: int, document: Document) -> _Prepared:
        if document.data is not None:
            data = document.data
        elif document.path is not None:
            data = self._read(document.path)
        else:
            raise ValidationError(f"document {document.source!r} has neither a path nor data")
        name = document.name or (document.path.name if document.path else document.source)
        digest, title, chunks = self._chunks(
            data, name, document.source, document.kind, document.title
        )
        return _Prepared(position, document.source, digest, title, chunks)

    async def ingest_paths(
        self,
        paths: Iterable[str | os.PathLike[str]],
        *,
        tenant_id: str,
        entity_id: str | None = None,
        root: str | os.PathLike[str] | None = None,
        progress: ProgressFn | None = None,
        on_file: Callable[[IngestResult], None] | None = None,
        on_error: Callable[[IngestFailure], None] | None = None,
    ) -> list[IngestResult]:
        """Ingest files, batched; sources are relative to *root* when given.

        With ``on_error`` a file that fails is reported to it and the others are ingested;
        without, its exception is raised.
        """
        documents = [
            Document.from_path(p, source=str(Path(p).relative_to(root)) if root else None)
            for p in paths
        ]

        def dispatch(outcome: IngestOutcome) -> None:
            if isinstance(outcome, IngestFailure):
                if on_error is not None:
                    on_error(outcome)
            elif on_file is not None:
                on_file(outcome)

        outcomes = await self.ingest_documents(
            documents,
            tenant_id=tenant_id,
            entity_id=entity_id,
            progress=progress,
            on_result=dispatch,
            raise_errors=on_error is None,
        )
        return [o for o in outcomes if isinstance(o, IngestResult)]


class _BatchRun:
    """The state of one :meth:`Ingestor.ingest_documents` call.

    Three stages overlap: the caller reads and chunks the next documents (worker thread),
    ``embedding`` embeds the previous window (worker thread), ``storing`` stores the window
    before it (event loop). At most one embedding and one store are in flight.
    """

    def __init__(
        self,
        ingestor: Ingestor,
        tenant_id: str,
        entity_id: str | None,
        progress: ProgressFn | None,
        on_result: Callable[[IngestOutcome], None] | None,
        raise_errors: bool,
    ) -> None:
        self.ingestor = ingestor
        self.tenant_id = tenant_id
        self.entity_id = entity_id
        self.progress = progress
        self.on_result = on_result
        self.raise_errors = raise_errors
        self.results: dict[int, IngestOutcome] = {}
        self.wave: list[_Prepared] = []
        self.wave_chunks = 0
        self.embedding: tuple[list[_Prepared], asyncio.Task[None]] | None = None
        self.storing: asyncio.Task[None] | None = None
        self.sources: dict[str, int] = {}  # in flight (waiting, embedding or storing)
        self.digests: dict[str, int] = {}

    def outcomes(self) -> list[IngestOutcome]:
        return [self.results[i] for i in sorted(self.results)]

    def done(self, position: int, outcome: IngestOutcome) -> None:
        self.results[position] = outcome
        if self.on_result is not None:
            self.on_result(outcome)

    def fail(self, position: int, source: str, exc: Exception) -> None:
        if self.raise_errors:
            raise exc
        self.done(position, IngestFailure(source, describe_error(exc), exc))

    async def add(self, doc: _Prepared) -> None:
        ingestor = self.ingestor
        if not doc.chunks:
            self.done(doc.position, IngestResult(doc.source, doc.digest, doc.title, 0, "empty"))
            return
        if doc.source in self.sources or doc.digest in self.digests:
            await self.drain()  # same source or content in flight: settle it first
        try:
            stored = await ingestor.index.count_chunks(
                self.tenant_id, self.entity_id, doc.digest, ingestor.embedder.name
            )
        except Exception as exc:
            self.fail(doc.position, doc.source, exc)
            return
        if stored == len(doc.chunks):
            if self.progress is not None:
                self.progress(len(doc.chunks))
            self.done(
                doc.position,
                IngestResult(doc.source, doc.digest, doc.title, len(doc.chunks), "unchanged"),
            )
            return
        _hold(self.sources, doc.source)
        _hold(self.digests, doc.digest)
        self.wave.append(doc)
        self.wave_chunks += len(doc.chunks)
        if self.wave_chunks >= ingestor.window:
            await self.launch()

    async def launch(self) -> None:
        """Hand the embedded window to the store and start embedding the waiting one."""
        if self.embedding is not None:
            embedded, task = self.embedding
            self.embedding = None
            await task
            if self.storing is not None:
                await self.storing
            self.storing = asyncio.create_task(self.store(embedded))
        if self.wave:
            wave, self.wave, self.wave_chunks = self.wave, [], 0
            self.embedding = (wave, asyncio.create_task(self.embed(wave)))

    async def drain(self) -> None:
        while self.wave or self.embedding is not None:
            await self.launch()
        if self.storing is not None:
            storing, self.storing = self.storing, None
            await storing

    async def cancel(self) -> None:
        tasks = [t for t in (self.storing, self.embedding[1] if self.embedding else None) if t]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task

    async def embed(self, wave: list[_Prepared]) -> None:
        """Embed a window's chunks in full batches of similar length (little padding)."""
        refs = [(doc, chunk.embedding_text()) for doc in wave for chunk in doc.chunks]
        for doc in wave:
            doc.vectors = [[] for _ in doc.chunks]
        slots = [(doc, i) for doc in wave for i in range(len(doc.chunks))]
        order = sorted(range(len(refs)), key=lambda k: len(refs[k][1]))
        size = self.ingestor.batch_size
        embedder = self.ingestor.embedder
        for start in range(0, len(order), size):
            batch = order[start : start + size]
            vectors = await embedder.embed([refs[k][1] for k in batch])
            if len(vectors) != len(batch):
                raise ValueError(
                    f"embedder {embedder.name} returned {len(vectors)} vectors "
                    f"for {len(batch)} texts"
                )
            for k, vector in zip(batch, vectors, strict=True):
                doc, i = slots[k]
                doc.vectors[i] = vector
            if self.progress is not None:
                self.progress(len(batch))

    async def store(self, wave: list[_Prepared]) -> None:
        ingestor = self.ingestor
        for doc in wave:
            try:
                removed = await ingestor.index.replace_document(
                    self.tenant_id, self.entity_id, doc.chunks, doc.vectors, ingestor.embedder.name
                )
            except Exception as exc:
                self.fail(doc.position, doc.source, exc)
            else:
                status: IngestStatus = "replaced" if removed else "indexed"
                self.done(
                    doc.position,
                    IngestResult(doc.source, doc.digest, doc.title, len(doc.chunks), status),
                )
            finally:
                _release(self.sources, doc.source)
                _release(self.digests, doc.digest)
                doc.vectors = []


def describe_error(exc: BaseException) -> str:
    """Why a document failed, in one line: the library's own errors say it themselves; a
    file system error names the file and the reason; anything else shows its type too."""
    if isinstance(exc, AgentsError):
        return str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        return f"cannot read {exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _hold(counts: dict[str, int], key: str) -> None:
    counts[key] = counts.get(key, 0) + 1


def _release(counts: dict[str, int], key: str) -> None:
    counts[key] -= 1
    if not counts[key]:
        del counts[key]


def _check_source(source: object) -> None:
    if not source or not isinstance(source, str):
        raise ValidationError("source must be a non-empty string", details={"field": "source"})


def discover(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """The supported files named by *paths* (directories are walked, sorted, no hidden
    files); a file named twice (directly and through its directory) is listed once."""
    found: list[Path] = []
    seen: set[Path] = set()

    def add(file: Path) -> None:
        key = file.resolve()
        if key not in seen:
            seen.add(key)
            found.append(file)

    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for file in sorted(path.rglob("*")):
                hidden = any(part.startswith(".") for part in file.relative_to(path).parts)
                if file.is_file() and not hidden and file.suffix.lower() in SUPPORTED_SUFFIXES:
                    add(file)
        elif path.is_file():
            add(path)
        else:
            raise ValidationError(f"{path} does not exist", details={"path": str(path)})
    return found
