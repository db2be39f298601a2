"""Wiring: give a store the document tools, and build them from environment settings.

In code (recommended)::

    store = AgentStore()
    enable_documents(store, upload_dirs=["/srv/uploads"])   # PostgreSQL index, MiniLM
    # tenant "acme" uploads from /srv/uploads/acme only
    await store.create_agent(definition, provider=..., model=..., tools=["search_documents"])

registers the five tools in the store's tool registry (the process-wide default registry
unless ``store.use_tools(...)`` gave it another registry), installs the embedder as
``store.runner.embedder`` so the ``vector`` memory strategy shares it, and closes the
index with the store.

From the environment (API servers, workers): list ``ai_agents.rag.builtin`` in
``AI_AGENTS_TOOL_MODULES`` and the default registry gets the tools, configured by:

- ``AI_AGENTS_RAG_BACKEND``: ``postgres`` (default; the database of ``AI_AGENTS_DATABASE_URL``)
  or ``opensearch`` (``OPENSEARCH_URL``, index ``AI_AGENTS_RAG_OPENSEARCH_INDEX``);
- ``AI_AGENTS_RAG_EMBEDDER``: ``minilm`` (default), ``hashing``, ``ollama:MODEL[@DIM]``,
  ``openai:MODEL[@DIM]``;
- ``AI_AGENTS_RAG_UPLOAD_DIRS``: upload roots (``os.pathsep`` separated; none: uploads are
  refused); a tenant's ``upload_document`` reads only ``{root}/{tenant_id}``;
- ``AI_AGENTS_RAG_TENANT_UPLOAD_DIRS``: JSON mapping a tenant to its own directory or list
  of directories, instead of ``{root}/{tenant_id}`` (e.g. a tenant id that is not a safe
  directory name: :func:`ai_agents.rag.uploads.tenant_directory_name`);
- ``AI_AGENTS_RAG_CROSS_ENCODER``: a local cross-encoder model directory (default: MMR).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from ai_agents.config import Settings
from ai_agents.embeddings import Embedder
from ai_agents.errors import ConfigurationError
from ai_agents.rag.embedders import MiniLMEmbedder, embedder_from_spec
from ai_agents.rag.index import DocumentIndex
from ai_agents.rag.rerank import CrossEncoderReranker, Reranker
from ai_agents.rag.service import DocumentService
from ai_agents.rag.tools import register_document_tools
from ai_agents.tools.registry import ToolRegistry

if TYPE_CHECKING:
    from ai_agents.store import AgentStore

EXTENSION = "documents"


def enable_documents(
    store: AgentStore,
    *,
    index: DocumentIndex | None = None,
    embedder: Embedder | None = None,
    upload_dirs: Sequence[str | os.PathLike[str]] = (),
    tenant_upload_dirs: Mapping[str, Sequence[str | os.PathLike[str]]] | None = None,
    reranker: Reranker | None = None,
    registry: ToolRegistry | None = None,
    share_embedder: bool = True,
) -> DocumentService:
    """Register the document tools for *store* (see the module docstring)."""
    from ai_agents.rag.pg_index import PgDocumentIndex

    embedder = embedder or MiniLMEmbedder()
    index = index or PgDocumentIndex(store.engine)
    service = register_document_tools(
        registry or store.tools,
        index=index,
        embedder=embedder,
        upload_dirs=upload_dirs,
        tenant_upload_dirs=tenant_upload_dirs,
        reranker=reranker,
    )
    if share_embedder:
        store.runner.embedder = embedder
    store.extensions[EXTENSION] = service  # closed by store.close()
    return service


def index_from_env(embedder: Embedder, settings: Settings | None = None) -> DocumentIndex:
    from ai_agents.settings import load_settings

    configured = load_settings()
    backend = configured.rag_backend
    if backend == "opensearch":
        from ai_agents.rag.opensearch_index import OpenSearchDocumentIndex

        url = os.environ.get("OPENSEARCH_URL")
        if not url:
            raise ConfigurationError("AI_AGENTS_RAG_BACKEND=opensearch needs OPENSEARCH_URL")
        return OpenSearchDocumentIndex(
            url=url,
            index=configured.rag_opensearch_index,
            dimensions=embedder.dimensions,
        )
    if backend in ("postgres", "postgresql"):
        from ai_agents.rag.pg_index import PgDocumentIndex

        settings = settings or Settings.from_env()
        if not settings.database_url:
            raise ConfigurationError(
                "the postgres document index needs AI_AGENTS_DATABASE_URL (or DATABASE_URL)"
            )
        return PgDocumentIndex.from_url(settings.database_url, settings)
    raise ConfigurationError(
        f"AI_AGENTS_RAG_BACKEND={backend!r}: use postgres or opensearch",
        details={"backend": backend},
    )


def tenant_upload_dirs_from_env() -> dict[str, list[str]]:
    """``AI_AGENTS_RAG_TENANT_UPLOAD_DIRS``: ``{"tenant": "/dir" | ["/dir", ...]}``."""
    from ai_agents.settings import load_settings

    mapping = load_settings().rag_tenant_upload_dirs  # a JSON object of lists (checked there)
    for tenant, dirs in mapping.items():
        if not all(dirs):
            raise ConfigurationError(
                f"AI_AGENTS_RAG_TENANT_UPLOAD_DIRS: an empty directory name for tenant {tenant!r}",
                details={"tenant": tenant},
            )
    return mapping


def register_from_env(registry: ToolRegistry) -> DocumentService:
    """Register the document tools in *registry* configured by environment variables."""
    from ai_agents.settings import load_settings

    configured = load_settings()
    embedder = embedder_from_spec(configured.rag_embedder)
    dirs = list(configured.rag_upload_dirs)
    cross_encoder = configured.rag_cross_encoder
    return register_document_tools(
        registry,
        index=index_from_env(embedder),
        embedder=embedder,
        upload_dirs=dirs,
        tenant_upload_dirs=tenant_upload_dirs_from_env(),
        reranker=CrossEncoderReranker(cross_encoder) if cross_encoder else None,
    )
