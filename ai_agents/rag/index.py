"""The document index contract, its value types, and the hybrid scoring both backends share.

Scope. Every operation names a ``tenant_id`` (the platform's isolation boundary) and an
optional ``entity_id`` (an owner *within* the tenant: a property, a customer, a team).
Documents stored without an entity belong to the tenant as a whole. Reads with
``entity_id=None`` see every document of the tenant; reads with an entity see exactly the
documents stored under that entity of that tenant, so an entity id that belongs to another
tenant finds nothing. Nothing ever crosses tenants.

Hybrid scoring (:func:`combine_scores`). A search gathers candidates from full-text
search (PostgreSQL ``ts_rank_cd``, OpenSearch BM25) and from embedding similarity
(cosine). The two scales are unrelated, so each is min-max normalized over the candidate
set, and the final score is::

    score = alpha * norm(vector) + (1 - alpha) * norm(text)        (alpha = 0.5 by default)

where ``norm(x) = (x - min) / (max - min)`` over the candidates that have that score
(1.0 when they all tie) and a candidate missing from one list gets 0 for it. This is
OpenSearch's ``normalization-processor`` with ``min_max`` and a weighted
``arithmetic_mean``, computed client-side so both backends rank identically.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeVar, runtime_checkable

from ai_agents.errors import ValidationError

K = TypeVar("K")

DEFAULT_ALPHA = 0.5
MAX_ID_LENGTH = 200


@dataclass(frozen=True, slots=True, kw_only=True)
class Chunk:
    """One indexed passage of a document, with where it came from (for citations)."""

    file_hash: str
    source: str
    position: int
    content: str
    title: str | None = None
    section: str | None = None
    page: int | None = None
    char_start: int = 0
    char_end: int = 0
    token_count: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def heading(self) -> str:
        """Title and section, searched with a lower weight than the content."""
        parts = [p for p in (self.title, self.section) if p]
        if len(parts) == 2 and parts[0] == parts[1]:
            parts = parts[:1]
        return " / ".join(parts)

    def embedding_text(self) -> str:
        """What is embedded: the heading gives a passage the context of its document."""
        return f"{self.heading}\n{self.content}" if self.heading else self.content


@dataclass(slots=True, kw_only=True)
class SearchHit:
    """A retrieved chunk with its scores (``score`` is the combined or reranked one)."""

    chunk: Chunk
    entity_id: str | None
    score: float
    text_score: float | None = None
    vector_score: float | None = None
    embedding: Sequence[float] | None = None
    rerank_score: float | None = None

    @property
    def citation(self) -> str:
        """A human-readable reference: ``source, page N, chunk M``."""
        parts = [self.chunk.source]
        if self.chunk.page is not None:
            parts.append(f"page {self.chunk.page}")
        parts.append(f"chunk {self.chunk.position}")
        return ", ".join(parts)

    def to_json(self) -> dict[str, Any]:
        c = self.chunk
        return {
            "source": c.source,
            "title": c.title,
            "section": c.section,
            "page": c.page,
            "position": c.position,
            "char_start": c.char_start,
            "char_end": c.char_end,
            "file_hash": c.file_hash,
            "entity_id": self.entity_id,
            "citation": self.citation,
            "score": round(self.score, 4),
            "text": c.content,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class DocumentInfo:
    """One ingested document as listed (one row per entity and file)."""

    file_hash: str
    source: str
    title: str | None
    entity_id: str | None
    chunks: int
    embedder: str
    created_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "file_hash": self.file_hash,
            "source": self.source,
            "title": self.title,
            "entity_id": self.entity_id,
            "chunks": self.chunks,
        }


@runtime_checkable
class DocumentIndex(Protocol):
    """Where chunks and their embeddings live. Implementations: PostgreSQL, OpenSearch."""

    backend: str

    async def setup(self) -> None:
        """Create what the index needs (idempotent). PostgreSQL: the migration does it."""

    async def count_chunks(
        self, tenant_id: str, entity_id: str | None, file_hash: str, embedder: str
    ) -> int:
        """How many chunks of this file are stored in exactly this scope with this embedder."""

    async def replace_document(
        self,
        tenant_id: str,
        entity_id: str | None,
        chunks: Sequence[Chunk],
        embeddings: Sequence[Sequence[float]],
        embedder: str,
    ) -> int:
        """Store the chunks of one file, replacing earlier chunks of the same file hash or
        the same source in this scope. Returns how many old chunks were removed."""

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
        """Hybrid search within the scope: up to ``candidates`` hits, best first, with
        embeddings filled in (for MMR)."""

    async def delete_document(
        self, tenant_id: str, file_hash: str, *, entity_id: str | None = None
    ) -> int:
        """Delete the file's chunks in the scope; returns how many were deleted."""

    async def list_documents(
        self, tenant_id: str, *, entity_id: str | None = None, limit: int = 100
    ) -> list[DocumentInfo]:
        """Documents in the scope (one per entity and file hash), by source."""

    async def aclose(self) -> None:
        """Release connections the index owns."""


def check_scope(tenant_id: str, entity_id: str | None) -> str:
    """Validate a scope; returns the stored form of the entity ('' for tenant-wide)."""
    if not isinstance(tenant_id, str) or not tenant_id:
        raise ValidationError("tenant_id must be a non-empty string", details={"field": "tenant"})
    if entity_id is None:
        return ""
    if not isinstance(entity_id, str) or not entity_id.strip() or len(entity_id) > MAX_ID_LENGTH:
        raise ValidationError(
            f"entity_id must be a non-empty string of at most {MAX_ID_LENGTH} characters",
            details={"field": "entity_id"},
        )
    return entity_id


def stored_entity(value: str | None) -> str | None:
    """The API form of a stored entity ('' means tenant-wide: None)."""
    return value or None


def min_max(scores: Mapping[K, float]) -> dict[K, float]:
    """Scale scores to [0, 1] over the set (all 1.0 when they tie)."""
    if not scores:
        return {}
    low, high = min(scores.values()), max(scores.values())
    if high - low <= 1e-12:
        return dict.fromkeys(scores, 1.0)
    return {k: (v - low) / (high - low) for k, v in scores.items()}


def combine_scores(
    text: Mapping[K, float], vector: Mapping[K, float], *, alpha: float = DEFAULT_ALPHA
) -> dict[K, float]:
    """``alpha * minmax(vector) + (1 - alpha) * minmax(text)``; a missing score counts 0."""
    if not 0.0 <= alpha <= 1.0:
        raise ValidationError("alpha must be between 0 and 1", details={"field": "alpha"})
    t, v = min_max(text), min_max(vector)
    return {k: alpha * v.get(k, 0.0) + (1 - alpha) * t.get(k, 0.0) for k in {*t, *v}}
