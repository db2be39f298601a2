"""Ingestion: file or text -> chunks -> embeddings -> index, idempotently.

A document is identified by its content hash (:func:`~ai_agents.rag.chunking.file_hash`)
within its scope (tenant, entity). Ingesting it again with the same embedder and chunking
finds the same number of chunks already stored and does nothing ("unchanged"); ingesting
a new version of the same source replaces the old version's chunks ("replaced"), so a
source never appears twice. Extraction and chunking run in a worker thread (PDF parsing
is CPU-bound); embedding is batched.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ai_agents.embeddings import Embedder
from ai_agents.errors import ValidationError
from ai_agents.rag.chunking import (
    SUPPORTED_SUFFIXES,
    Chunker,
    ExtractedDocument,
    TextChunk,
    extract,
    file_hash,
)
from ai_agents.rag.index import Chunk, DocumentIndex, check_scope

IngestStatus = Literal["indexed", "replaced", "unchanged", "empty"]
#: Called with the number of chunks just embedded (for progress bars).
ProgressFn = Callable[[int], None]

MAX_DOCUMENT_BYTES = 50 * 1024 * 1024


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


class Ingestor:
    """Turns documents into indexed chunks for one index and one embedder."""

    def __init__(
        self,
        index: DocumentIndex,
        embedder: Embedder,
        *,
        chunker: Chunker | None = None,
        batch_size: int = 64,
        max_bytes: int = MAX_DOCUMENT_BYTES,
    ) -> None:
        self.index = index
        self.embedder = embedder
        self.chunker = chunker or Chunker()
        self.batch_size = batch_size
        self.max_bytes = max_bytes

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
        size = await asyncio.to_thread(lambda: file.stat().st_size)
        if size > self.max_bytes:
            raise ValidationError(
                f"{file.name} is {size} bytes; the ingestion limit is {self.max_bytes} bytes"
            )
        data = await asyncio.to_thread(file.read_bytes)
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
        if not source or not isinstance(source, str):
            raise ValidationError("source must be a non-empty string", details={"field": "source"})
        digest = file_hash(data)
        document, pieces = await asyncio.to_thread(self._prepare, data, name, kind)
        doc_title = title or document.title
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
                metadata={"kind": document.kind, **document.metadata},
            )
            for p in pieces
        ]
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

    def _prepare(
        self, data: bytes, name: str, kind: str | None
    ) -> tuple[ExtractedDocument, list[TextChunk]]:
        document = extract(data, name=name, kind=kind)
        return document, self.chunker.chunk(document.blocks)

    async def ingest_paths(
        self,
        paths: Iterable[str | os.PathLike[str]],
        *,
        tenant_id: str,
        entity_id: str | None = None,
        root: str | os.PathLike[str] | None = None,
        progress: ProgressFn | None = None,
        on_file: Callable[[IngestResult], None] | None = None,
    ) -> list[IngestResult]:
        """Ingest files one after the other; sources are relative to *root* when given."""
        results = []
        for path in paths:
            file = Path(path)
            source = str(file.relative_to(root)) if root else str(file)
            result = await self.ingest_file(
                file, tenant_id=tenant_id, entity_id=entity_id, source=source, progress=progress
            )
            results.append(result)
            if on_file is not None:
                on_file(result)
        return results


def discover(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """The supported files named by *paths* (directories are walked, sorted, no hidden files)."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for file in sorted(path.rglob("*")):
                hidden = any(part.startswith(".") for part in file.relative_to(path).parts)
                if file.is_file() and not hidden and file.suffix.lower() in SUPPORTED_SUFFIXES:
                    found.append(file)
        elif path.is_file():
            found.append(path)
        else:
            raise ValidationError(f"{path} does not exist", details={"path": str(path)})
    return found
