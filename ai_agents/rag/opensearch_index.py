"""The OpenSearch document index (``opensearch-py`` async client).

One index holds every tenant's chunks; each document carries ``tenant_id`` and
``entity_id`` keyword fields and every query filters on them (a missing filter is a
cross-tenant read, so the bodies are built in one place, :class:`QueryBodies`, and
asserted in tests). Mapping: ``dynamic: strict``; ``content`` and ``heading`` are
``text`` with the ``english`` analyzer; ``embedding`` is a ``knn_vector`` with an HNSW
graph on the Lucene engine and ``cosinesimil`` space (Lucene supports efficient filtering
inside the k-NN search, so a tenant filter still returns k results).

Hybrid retrieval sends two searches at once: BM25 (a ``bool`` query whose ``should``
matches ``content`` and, at half weight, ``heading``) and k-NN (``knn`` query with the
same filter). Their scores are combined client-side by
:func:`ai_agents.rag.index.combine_scores` exactly as on PostgreSQL (that is OpenSearch's
``normalization-processor`` with ``min_max`` and a weighted ``arithmetic_mean``, without
requiring a search pipeline on the cluster).

Replacing a document is delete-by-query then a bulk index with ``refresh=true``; chunk
ids are deterministic (scope, hash, position), so a retried bulk overwrites rather than
duplicates.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from typing import Any

from ai_agents.errors import ConfigurationError
from ai_agents.rag.errors import DocumentIndexError
from ai_agents.rag.index import (
    DEFAULT_ALPHA,
    Chunk,
    DocumentInfo,
    SearchHit,
    check_scope,
    combine_scores,
    stored_entity,
)

DEFAULT_INDEX = "ai_agents_documents"
_KEYWORD = {"type": "keyword"}
_STORED_ONLY = {"type": "keyword", "index": False}


def index_body(dimensions: int, *, ef_construction: int = 128, m: int = 16) -> dict[str, Any]:
    """The create-index request body (settings + mappings)."""
    return {
        "settings": {"index": {"knn": True}},
        "mappings": {
            "dynamic": "strict",
            "properties": {
                "tenant_id": _KEYWORD,
                "entity_id": _KEYWORD,
                "file_hash": _KEYWORD,
                "source": _KEYWORD,
                "embedder": _KEYWORD,
                "title": _STORED_ONLY,
                "section": _STORED_ONLY,
                "heading": {"type": "text", "analyzer": "english"},
                "content": {"type": "text", "analyzer": "english"},
                "position": {"type": "integer"},
                "page": {"type": "integer"},
                "char_start": {"type": "integer"},
                "char_end": {"type": "integer"},
                "token_count": {"type": "integer"},
                "metadata": {"type": "object", "enabled": False},
                "embedding": {
                    "type": "knn_vector",
                    "dimension": dimensions,
                    "method": {
                        "name": "hnsw",
                        "space_type": "cosinesimil",
                        "engine": "lucene",
                        "parameters": {"ef_construction": ef_construction, "m": m},
                    },
                },
            },
        },
    }


class QueryBodies:
    """Every request body the index sends (pure functions of their arguments)."""

    @staticmethod
    def scope_filter(
        tenant_id: str, entity_id: str | None, embedder: str | None = None
    ) -> list[dict[str, Any]]:
        clauses: list[dict[str, Any]] = [{"term": {"tenant_id": tenant_id}}]
        if entity_id is not None:
            clauses.append({"term": {"entity_id": entity_id}})
        if embedder is not None:
            clauses.append({"term": {"embedder": embedder}})
        return clauses

    @classmethod
    def text_search(
        cls, tenant_id: str, entity_id: str | None, embedder: str, text: str, size: int
    ) -> dict[str, Any]:
        return {
            "size": size,
            "query": {
                "bool": {
                    "should": [
                        {"match": {"content": {"query": text}}},
                        {"match": {"heading": {"query": text, "boost": 0.5}}},
                    ],
                    "minimum_should_match": 1,
                    "filter": cls.scope_filter(tenant_id, entity_id, embedder),
                }
            },
        }

    @classmethod
    def knn_search(
        cls,
        tenant_id: str,
        entity_id: str | None,
        embedder: str,
        vector: Sequence[float],
        size: int,
    ) -> dict[str, Any]:
        return {
            "size": size,
            "query": {
                "knn": {
                    "embedding": {
                        "vector": [float(x) for x in vector],
                        "k": size,
                        "filter": {
                            "bool": {"filter": cls.scope_filter(tenant_id, entity_id, embedder)}
                        },
                    }
                }
            },
        }

    @classmethod
    def count(
        cls, tenant_id: str, entity_id: str | None, file_hash: str, embedder: str
    ) -> dict[str, Any]:
        clauses = cls.scope_filter(tenant_id, entity_id, embedder)
        clauses.append({"term": {"file_hash": file_hash}})
        return {"query": {"bool": {"filter": clauses}}}

    @classmethod
    def delete_file(cls, tenant_id: str, entity_id: str | None, file_hash: str) -> dict[str, Any]:
        clauses = cls.scope_filter(tenant_id, entity_id)
        clauses.append({"term": {"file_hash": file_hash}})
        return {"query": {"bool": {"filter": clauses}}}

    @classmethod
    def delete_versions(
        cls, tenant_id: str, entity_id: str, file_hash: str, source: str
    ) -> dict[str, Any]:
        """Earlier chunks of this file hash or of this source in exactly this scope."""
        return {
            "query": {
                "bool": {
                    "filter": cls.scope_filter(tenant_id, entity_id),
                    "should": [
                        {"term": {"file_hash": file_hash}},
                        {"term": {"source": source}},
                    ],
                    "minimum_should_match": 1,
                }
            }
        }

    @classmethod
    def list_documents(cls, tenant_id: str, entity_id: str | None, limit: int) -> dict[str, Any]:
        return {
            "size": 0,
            "query": {"bool": {"filter": cls.scope_filter(tenant_id, entity_id)}},
            "aggs": {
                "files": {
                    "terms": {"field": "file_hash", "size": limit},
                    "aggs": {
                        "entities": {
                            "terms": {"field": "entity_id", "size": 100},
                            "aggs": {
                                "first": {
                                    "top_hits": {
                                        "size": 1,
                                        "_source": {"includes": ["source", "title", "embedder"]},
                                    }
                                }
                            },
                        }
                    },
                }
            },
        }


def chunk_id(tenant_id: str, entity_id: str, file_hash: str, position: int) -> str:
    """A stable document id (ids are limited to 512 bytes: hash the scope)."""
    scope = hashlib.sha256(f"{tenant_id}\x1f{entity_id}".encode()).hexdigest()[:24]
    return f"{scope}-{file_hash}-{position}"


class OpenSearchDocumentIndex:
    """Documents in one OpenSearch index (created on first use with :func:`index_body`)."""

    backend = "opensearch"

    def __init__(
        self,
        client: Any = None,
        *,
        url: str | None = None,
        index: str = DEFAULT_INDEX,
        dimensions: int,
        refresh: str = "true",
        timeout: float = 30.0,
    ) -> None:
        if client is None:
            if not url:
                raise ConfigurationError("OpenSearchDocumentIndex needs a client or url")
            try:
                from opensearchpy import AsyncOpenSearch
            except ImportError as exc:
                raise ConfigurationError(
                    "the OpenSearch backend needs opensearch-py[async]: "
                    "pip install 'ai-agents-platform[rag]'"
                ) from exc
            client = AsyncOpenSearch(hosts=[url], timeout=timeout)
            self._owns_client = True
        else:
            self._owns_client = False
        self.client = client
        self.index = index
        self.dimensions = dimensions
        self.refresh = refresh
        self._ready = False
        self._ready_lock = asyncio.Lock()
        # Delete-then-bulk is not atomic: writers of one source take turns (in this process;
        # across processes, ingest one source from one place at a time).
        self._write_locks = [asyncio.Lock() for _ in range(64)]

    async def aclose(self) -> None:
        if self._owns_client:
            await self.client.close()

    async def _call(self, operation: str, coro: Any) -> Any:
        from opensearchpy.exceptions import OpenSearchException, TransportError

        try:
            return await coro
        except TransportError as exc:
            status = exc.status_code if isinstance(exc.status_code, int) else None
            raise DocumentIndexError(
                f"OpenSearch {operation} failed: {exc.error} ({exc.info if status else exc})",
                details={"operation": operation, "status": status},
            ) from exc
        except (TimeoutError, OpenSearchException, OSError) as exc:
            raise DocumentIndexError(
                f"OpenSearch {operation} failed: {exc}", details={"operation": operation}
            ) from exc

    async def setup(self) -> None:
        """Create the index if missing; check an existing one has our vector dimensions."""
        async with self._ready_lock:
            if self._ready:
                return
            exists = await self._call("index exists", self.client.indices.exists(index=self.index))
            if not exists:
                await self._call(
                    "create index",
                    self.client.indices.create(index=self.index, body=index_body(self.dimensions)),
                )
            else:
                mapping = await self._call(
                    "get mapping", self.client.indices.get_mapping(index=self.index)
                )
                props = next(iter(mapping.values()))["mappings"].get("properties", {})
                found = props.get("embedding", {}).get("dimension")
                if found != self.dimensions:
                    raise ConfigurationError(
                        f"OpenSearch index {self.index!r} stores {found}-dimensional "
                        f"embeddings but the embedder has {self.dimensions}: use another "
                        "index name for this embedder"
                    )
            self._ready = True

    async def _ensure(self) -> None:
        if not self._ready:
            await self.setup()

    # --- writes -----------------------------------------------------------------------

    async def replace_document(
        self,
        tenant_id: str,
        entity_id: str | None,
        chunks: Sequence[Chunk],
        embeddings: Sequence[Sequence[float]],
        embedder: str,
    ) -> int:
        entity = check_scope(tenant_id, entity_id)
        if len(chunks) != len(embeddings):
            raise DocumentIndexError("one embedding per chunk is required")
        if not chunks:
            return 0
        if len({c.file_hash for c in chunks}) != 1 or len({c.source for c in chunks}) != 1:
            raise DocumentIndexError("replace_document takes the chunks of exactly one file")
        for vec in embeddings:
            if len(vec) != self.dimensions:
                raise ConfigurationError(
                    f"embedding has {len(vec)} dimensions; the index expects {self.dimensions}"
                )
        await self._ensure()
        first = chunks[0]
        lines: list[dict[str, Any]] = []
        for c, vec in zip(chunks, embeddings, strict=True):
            ident = chunk_id(tenant_id, entity, c.file_hash, c.position)
            lines.append({"index": {"_index": self.index, "_id": ident}})
            lines.append(self._document(tenant_id, entity, c, vec, embedder))
        key = f"{tenant_id}\x1f{entity}\x1f{first.source}".encode()
        lock = self._write_locks[int.from_bytes(hashlib.blake2b(key, digest_size=2).digest()) % 64]
        async with lock:
            removed = await self._call(
                "delete old versions",
                self.client.delete_by_query(
                    index=self.index,
                    body=QueryBodies.delete_versions(
                        tenant_id, entity, first.file_hash, first.source
                    ),
                    refresh=True,
                    conflicts="proceed",
                ),
            )
            result = await self._call(
                "bulk index", self.client.bulk(body=lines, refresh=self.refresh)
            )
        if result.get("errors"):
            failed = [
                item["index"]["error"]
                for item in result.get("items", [])
                if "error" in item.get("index", {})
            ]
            raise DocumentIndexError(
                f"OpenSearch rejected {len(failed)} of {len(chunks)} chunks: {failed[0]}",
                details={"errors": failed[:5]},
            )
        return int(removed.get("deleted", 0))

    @staticmethod
    def _document(
        tenant_id: str, entity: str, c: Chunk, vec: Sequence[float], embedder: str
    ) -> dict[str, Any]:
        return {
            "tenant_id": tenant_id,
            "entity_id": entity,
            "file_hash": c.file_hash,
            "source": c.source,
            "embedder": embedder,
            "title": c.title,
            "section": c.section,
            "heading": c.heading,
            "content": c.content,
            "position": c.position,
            "page": c.page,
            "char_start": c.char_start,
            "char_end": c.char_end,
            "token_count": c.token_count,
            "metadata": dict(c.metadata),
            "embedding": [float(x) for x in vec],
        }

    async def delete_document(
        self, tenant_id: str, file_hash: str, *, entity_id: str | None = None
    ) -> int:
        check_scope(tenant_id, entity_id)
        await self._ensure()
        result = await self._call(
            "delete document",
            self.client.delete_by_query(
                index=self.index,
                body=QueryBodies.delete_file(tenant_id, entity_id, file_hash),
                refresh=True,
                conflicts="proceed",
            ),
        )
        return int(result.get("deleted", 0))

    # --- reads ------------------------------------------------------------------------

    async def count_chunks(
        self, tenant_id: str, entity_id: str | None, file_hash: str, embedder: str
    ) -> int:
        entity = check_scope(tenant_id, entity_id)
        await self._ensure()
        result = await self._call(
            "count",
            self.client.count(
                index=self.index, body=QueryBodies.count(tenant_id, entity, file_hash, embedder)
            ),
        )
        return int(result.get("count", 0))

    async def list_documents(
        self, tenant_id: str, *, entity_id: str | None = None, limit: int = 100
    ) -> list[DocumentInfo]:
        check_scope(tenant_id, entity_id)
        await self._ensure()
        result = await self._call(
            "list documents",
            self.client.search(
                index=self.index, body=QueryBodies.list_documents(tenant_id, entity_id, limit)
            ),
        )
        out = []
        for bucket in result["aggregations"]["files"]["buckets"]:
            for sub in bucket["entities"]["buckets"]:
                source = sub["first"]["hits"]["hits"][0]["_source"]
                out.append(
                    DocumentInfo(
                        file_hash=bucket["key"],
                        source=source["source"],
                        title=source.get("title"),
                        entity_id=stored_entity(sub["key"]),
                        chunks=int(sub["doc_count"]),
                        embedder=source.get("embedder", ""),
                    )
                )
        out.sort(key=lambda d: (d.source, d.entity_id or "", d.file_hash))
        return out

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
        check_scope(tenant_id, entity_id)
        await self._ensure()
        text_result, knn_result = await asyncio.gather(
            self._call(
                "text search",
                self.client.search(
                    index=self.index,
                    body=QueryBodies.text_search(tenant_id, entity_id, embedder, text, candidates),
                ),
            ),
            self._call(
                "k-NN search",
                self.client.search(
                    index=self.index,
                    body=QueryBodies.knn_search(tenant_id, entity_id, embedder, vector, candidates),
                ),
            ),
        )
        docs: dict[str, dict[str, Any]] = {}
        text_scores: dict[str, float] = {}
        vector_scores: dict[str, float] = {}
        for result, scores in ((text_result, text_scores), (knn_result, vector_scores)):
            for hit in result["hits"]["hits"]:
                source = hit["_source"]
                if source.get("tenant_id") != tenant_id:  # defense in depth
                    continue
                docs[hit["_id"]] = source
                scores[hit["_id"]] = float(hit["_score"])
        combined = combine_scores(text_scores, vector_scores, alpha=alpha)
        ranked = sorted(combined, key=lambda i: (-combined[i], i))[:candidates]
        return [
            SearchHit(
                chunk=_chunk(docs[i]),
                entity_id=stored_entity(docs[i].get("entity_id")),
                score=combined[i],
                text_score=text_scores.get(i),
                vector_score=vector_scores.get(i),
                embedding=docs[i].get("embedding"),
            )
            for i in ranked
        ]


def _chunk(source: dict[str, Any]) -> Chunk:
    return Chunk(
        file_hash=source["file_hash"],
        source=source["source"],
        position=int(source["position"]),
        content=source["content"],
        title=source.get("title"),
        section=source.get("section"),
        page=source.get("page"),
        char_start=int(source.get("char_start") or 0),
        char_end=int(source.get("char_end") or 0),
        token_count=int(source.get("token_count") or 0),
        metadata=dict(source.get("metadata") or {}),
    )
