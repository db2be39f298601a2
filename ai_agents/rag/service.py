"""DocumentService: one index, one embedder, one reranker; what the tools and the CLI call.

Search = embed the query, take ``candidates`` hybrid hits from the index (see
:func:`ai_agents.rag.index.combine_scores`), rerank them (MMR by default), return the top
``k``. Every call names its tenant; the service never reads across tenants.
"""

from __future__ import annotations

from dataclasses import dataclass

from ai_agents.embeddings import Embedder
from ai_agents.errors import ValidationError
from ai_agents.rag.chunking import Chunker
from ai_agents.rag.errors import DocumentNotFound
from ai_agents.rag.index import DEFAULT_ALPHA, DocumentIndex, DocumentInfo, SearchHit, check_scope
from ai_agents.rag.ingest import Ingestor
from ai_agents.rag.rerank import MMRReranker, Reranker

MAX_TOP_K = 50
MAX_QUERY_CHARS = 4000


@dataclass(slots=True)
class SearchSettings:
    """Retrieval knobs: candidates gathered before reranking and the hybrid weight."""

    candidates: int = 40
    alpha: float = DEFAULT_ALPHA


class DocumentService:
    def __init__(
        self,
        index: DocumentIndex,
        embedder: Embedder,
        *,
        reranker: Reranker | None = None,
        chunker: Chunker | None = None,
        settings: SearchSettings | None = None,
    ) -> None:
        self.index = index
        self.embedder = embedder
        self.reranker: Reranker = reranker or MMRReranker()
        self.settings = settings or SearchSettings()
        self.ingestor = Ingestor(index, embedder, chunker=chunker)

    async def aclose(self) -> None:
        await self.index.aclose()
        closer = getattr(self.embedder, "aclose", None)
        if closer is not None:
            await closer()

    async def search(
        self, tenant_id: str, query: str, *, entity_id: str | None = None, top_k: int = 5
    ) -> list[SearchHit]:
        check_scope(tenant_id, entity_id)
        if not isinstance(query, str) or not query.strip():
            raise ValidationError("query must be a non-empty string", details={"field": "query"})
        if len(query) > MAX_QUERY_CHARS:
            raise ValidationError(
                f"query is too long (limit {MAX_QUERY_CHARS} characters)",
                details={"field": "query"},
            )
        if not isinstance(top_k, int) or not 1 <= top_k <= MAX_TOP_K:
            raise ValidationError(
                f"top_k must be between 1 and {MAX_TOP_K}", details={"field": "top_k"}
            )
        (vector,) = await self.embedder.embed([query])
        hits = await self.index.search(
            tenant_id,
            entity_id=entity_id,
            text=query,
            vector=vector,
            embedder=self.embedder.name,
            candidates=max(self.settings.candidates, top_k),
            alpha=self.settings.alpha,
        )
        return await self.reranker.rerank(query, vector, hits, top_k)

    async def delete(self, tenant_id: str, file_hash: str, *, entity_id: str | None = None) -> int:
        """Delete a document in the scope; :class:`DocumentNotFound` when nothing matched."""
        if not isinstance(file_hash, str) or not file_hash.strip():
            raise ValidationError("file_hash must be a non-empty string")
        deleted = await self.index.delete_document(tenant_id, file_hash, entity_id=entity_id)
        if not deleted:
            raise DocumentNotFound(file_hash)
        return deleted

    async def list_documents(
        self, tenant_id: str, *, entity_id: str | None = None, limit: int = 100
    ) -> list[DocumentInfo]:
        return await self.index.list_documents(tenant_id, entity_id=entity_id, limit=limit)
