"""Retrieval-augmented generation: embed, ingest, index, search and rerank documents, and
the built-in document tools that give agents access to them.

Pieces (each behind a small interface):

- embedders (:mod:`.embedders`): MiniLM (offline), Ollama, OpenAI; the
  :class:`~ai_agents.embeddings.Embedder` Protocol is shared with vector memory;
- ingestion (:mod:`.chunking`, :mod:`.ingest`): text, Markdown, HTML, PDF, and DOCX, PPTX,
  XLSX (:mod:`.office`) -> token-sized chunks with source and position, idempotent by
  content hash; :mod:`.progress` is what ``ai-agents ingest`` shows;
- indexes (:mod:`.index` Protocol): PostgreSQL (:mod:`.pg_index`, the default) and
  OpenSearch (:mod:`.opensearch_index`), both hybrid (full text + vectors);
- reranking (:mod:`.rerank`): MMR by default, or a local cross-encoder;
- tools (:mod:`.tools`) and wiring (:mod:`.setup`): ``enable_documents(store)``.

Importing this package needs only the core dependencies; the models, numpy, pypdf and
opensearch-py are imported where they are used (install the ``rag`` extra).
"""

from __future__ import annotations

from ai_agents.rag.index import Chunk, DocumentIndex, DocumentInfo, SearchHit, combine_scores

__all__ = ["Chunk", "DocumentIndex", "DocumentInfo", "SearchHit", "combine_scores"]
