"""OpenAI files and vector stores (``/v1/files``, ``/v1/vector_stores``).

A file is stored with its bytes in PostgreSQL (:mod:`ai_agents.files.queries`); a vector
store is a named scope of the RAG index: each attached file is chunked, embedded and
indexed by the tenant's :class:`~ai_agents.rag.service.DocumentService` under the entity
``vs_<hex>`` (:mod:`ai_agents.files.ingestion`), so the document search the tools use is
the one ``file_search`` uses.
"""
