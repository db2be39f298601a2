"""The built-in document tools (design section 11), registered by name.

``search_documents(query, entity_id=None, top_k=5)``, ``ask_documents(question,
entity_id=None)``, ``upload_document(file_path, entity_id=None)``,
``delete_document(file_hash)`` and ``list_documents(entity_id=None)``.

Scope. The tenant always comes from the run (``ToolContext.tenant_id``), never from the
model. ``entity_id`` narrows *within* that tenant, so an entity id of another tenant finds
nothing. A conversation can be pinned to one entity with ``entity_id`` in the thread's
metadata (or, failing that, the agent's metadata): the tools then use it by default and
refuse any other entity the model names.

Uploads. ``upload_document`` only reads regular files inside the calling tenant's own
upload directories (``{root}/{tenant_id}``, or the directories configured for the tenant:
:mod:`ai_agents.rag.uploads`): the path is resolved (``..`` and symlinks included) and
must stay inside one of them, so ``../../etc/passwd``, ``/etc/passwd``, another tenant's
file or a symlink pointing out are refused, without being opened, with the same message
as a missing file.

``ask_documents`` retrieves passages, then asks the calling agent's own provider and model
to answer from them with numbered citations; the sources come back with the answer.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from pydantic import Field

from ai_agents.embeddings import Embedder
from ai_agents.errors import UsageError
from ai_agents.messages import Message
from ai_agents.providers.base import ProviderRequest
from ai_agents.rag.chunking import Chunker
from ai_agents.rag.index import DocumentIndex, SearchHit, check_scope
from ai_agents.rag.rerank import Reranker
from ai_agents.rag.service import MAX_TOP_K, DocumentService, SearchSettings
from ai_agents.rag.uploads import TenantUploads
from ai_agents.rag.uploads import UploadDirectories as UploadDirectories  # re-exported
from ai_agents.tools.decorator import ToolContext, tool
from ai_agents.tools.registry import ToolRegistry

DOCUMENT_TOOLS = (
    "search_documents",
    "ask_documents",
    "upload_document",
    "delete_document",
    "list_documents",
)
ASK_TOP_K = 5
ENTITY_KEY = "entity_id"

ASK_SYSTEM_PROMPT = (
    "You answer questions using only the numbered sources provided. After every statement, "
    "cite the source(s) it comes from as [n]. If the sources do not contain the answer, say "
    "that the documents do not say, and do not guess."
)

EntityArg = Annotated[
    str | None,
    Field(max_length=200, description="Only documents of this entity; omit for all"),
]


async def _pinned_entity(ctx: ToolContext) -> str | None:
    """The entity a conversation is limited to (thread metadata, else agent metadata)."""
    value = ctx.extras.get(ENTITY_KEY)
    if value is None and ctx.store is not None:
        store = ctx.store.for_tenant(ctx.tenant_id)
        thread = await store.get_thread(ctx.thread_id)
        value = thread.metadata.get(ENTITY_KEY)
        if value is None:
            agent = await store.get_agent(ctx.agent_id)
            value = agent.metadata.get(ENTITY_KEY)
    return str(value) if value is not None else None


async def resolve_scope(ctx: ToolContext | None, requested: str | None) -> tuple[str, str | None]:
    """(tenant, entity) for a tool call; the tenant is the run's, never the model's."""
    if ctx is None or not ctx.tenant_id:
        raise UsageError("document tools run inside an agent run (they need its tenant)")
    pinned = await _pinned_entity(ctx)
    if pinned is not None:
        if requested is not None and requested != pinned:
            raise UsageError(
                f"this conversation can only use the documents of entity {pinned!r}; omit entity_id"
            )
        requested = pinned
    check_scope(ctx.tenant_id, requested)
    return ctx.tenant_id, requested


def _sources_block(hits: Sequence[SearchHit]) -> str:
    return "\n\n".join(
        f"[{n}] ({hit.citation})\n{hit.chunk.content}" for n, hit in enumerate(hits, 1)
    )


def register_document_tools(
    registry: ToolRegistry,
    *,
    index: DocumentIndex,
    embedder: Embedder,
    upload_dirs: Sequence[str | os.PathLike[str]] = (),
    tenant_upload_dirs: Mapping[str, Sequence[str | os.PathLike[str]]] | None = None,
    reranker: Reranker | None = None,
    chunker: Chunker | None = None,
    search_settings: SearchSettings | None = None,
) -> DocumentService:
    """Register the five document tools in *registry*; returns the service they share.

    ``upload_dirs`` are upload *roots*: a tenant reads only ``{root}/{tenant_id}``.
    ``tenant_upload_dirs`` maps a tenant to its own directories instead.
    """
    service = DocumentService(
        index, embedder, reranker=reranker, chunker=chunker, settings=search_settings
    )
    uploads = TenantUploads(upload_dirs, tenant_upload_dirs)

    @tool(registry=registry, name="search_documents")
    async def search_documents(
        query: Annotated[str, Field(min_length=1, max_length=4000)],
        ctx: ToolContext,
        entity_id: EntityArg = None,
        top_k: Annotated[int, Field(ge=1, le=MAX_TOP_K)] = 5,
    ) -> dict[str, Any]:
        """Search the documents for passages relevant to a query.

        Every result has a citation (source, page, chunk): cite it when you use the text.

        Args:
            query: What to look for, in natural language
            entity_id: Only documents of this entity (e.g. a property id); omit for all
            top_k: How many passages to return
        """
        tenant, entity = await resolve_scope(ctx, entity_id)
        hits = await service.search(tenant, query, entity_id=entity, top_k=top_k)
        return {"query": query, "results": [h.to_json() for h in hits]}

    @tool(registry=registry, name="ask_documents")
    async def ask_documents(
        question: Annotated[str, Field(min_length=1, max_length=4000)],
        ctx: ToolContext,
        entity_id: EntityArg = None,
    ) -> dict[str, Any]:
        """Answer a question from the documents, with numbered citations to the sources.

        Args:
            question: The question to answer
            entity_id: Only documents of this entity (e.g. a property id); omit for all
        """
        tenant, entity = await resolve_scope(ctx, entity_id)
        hits = await service.search(tenant, question, entity_id=entity, top_k=ASK_TOP_K)
        if not hits:
            return {"answer": "No document mentions this.", "sources": []}
        if ctx.store is None:
            raise UsageError("ask_documents needs the run's store to reach the agent's model")
        store = ctx.store.for_tenant(ctx.tenant_id)
        agent = await store.get_agent(ctx.agent_id)
        provider = store.runner.providers.get(agent.provider)
        prompt = f"Sources:\n\n{_sources_block(hits)}\n\nQuestion: {question}"
        response = await provider.complete(
            ProviderRequest(
                model=agent.model,
                system_prompt=ASK_SYSTEM_PROMPT,
                messages=[Message(role="user", content=prompt)],
                temperature=0.0,
            )
        )
        return {
            "answer": response.content,
            "sources": [
                {"ref": n, "citation": h.citation, "source": h.chunk.source, **_where(h)}
                for n, h in enumerate(hits, 1)
            ],
        }

    @tool(registry=registry, name="upload_document")
    async def upload_document(
        file_path: Annotated[str, Field(min_length=1, max_length=1000)],
        ctx: ToolContext,
        entity_id: EntityArg = None,
    ) -> dict[str, Any]:
        """Add a document from the upload directory to the searchable documents.

        Args:
            file_path: Path relative to the upload directory, e.g. 'guide.pdf'
            entity_id: Store it for this entity (e.g. a property id); omit for everyone
        """
        tenant, entity = await resolve_scope(ctx, entity_id)
        real, source = uploads.resolve(tenant, file_path)
        result = await service.ingestor.ingest_file(
            real, tenant_id=tenant, entity_id=entity, source=source
        )
        return result.to_json()

    @tool(registry=registry, name="delete_document")
    async def delete_document(
        file_hash: Annotated[str, Field(min_length=1, max_length=128)], ctx: ToolContext
    ) -> dict[str, Any]:
        """Delete a document (all its passages) by its file_hash, as shown by list_documents.

        Args:
            file_hash: The document's file_hash
        """
        tenant, entity = await resolve_scope(ctx, None)
        deleted = await service.delete(tenant, file_hash, entity_id=entity)
        return {"deleted": file_hash, "chunks": deleted}

    @tool(registry=registry, name="list_documents")
    async def list_documents(ctx: ToolContext, entity_id: EntityArg = None) -> dict[str, Any]:
        """List the documents that can be searched (source, title, file_hash, passages).

        Args:
            entity_id: Only documents of this entity (e.g. a property id); omit for all
        """
        tenant, entity = await resolve_scope(ctx, entity_id)
        documents = await service.list_documents(tenant, entity_id=entity)
        return {"documents": [d.to_json() for d in documents]}

    return service


def _where(hit: SearchHit) -> dict[str, Any]:
    return {
        "page": hit.chunk.page,
        "position": hit.chunk.position,
        "file_hash": hit.chunk.file_hash,
    }
