"""``tool_resources`` of assistants, threads and create-and-run: what ``file_search`` searches.

Accepted, as OpenAI's API takes it::

    {"file_search": {"vector_store_ids": ["vs_..."]}}
    {"file_search": {"vector_stores": [{"file_ids": ["file-..."], "metadata": {...}}]}}

At most one vector store, of the caller's tenant (another id is a 404 naming it); the
second form creates that store from the files, indexed before the answer (as OpenAI's
helper does). Everything is checked before anything is written, so a refused request
creates no store. ``code_interpreter`` with files is refused (this server runs no code);
an empty one is accepted and ignored. The stored form keeps the vector store ids only
(:mod:`ai_agents.files.search` reads it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from ai_agents.api.auth import Principal
from ai_agents.api.compat import fields, ids
from ai_agents.api.compat.errors import invalid
from ai_agents.api.compat.vector_store_objects import check_chunking, checked_file_ids, service_of
from ai_agents.errors import NotFoundError
from ai_agents.files import ingestion, queries
from ai_agents.files.search import FILE_SEARCH, vector_store_ids

#: OpenAI's limit: one vector store per assistant, one per thread.
MAX_VECTOR_STORES = 1
_KINDS = ("file_search", "code_interpreter")


@dataclass(slots=True)
class Resources:
    """Checked ``tool_resources``: the stores named, and a store to make from files."""

    vector_store_ids: list[UUID] = field(default_factory=list)
    #: ``vector_stores[0]``: its files and metadata (the store is made by :func:`stored`).
    new_store: tuple[list[UUID], dict[str, str]] | None = None

    @property
    def is_empty(self) -> bool:
        return not self.vector_store_ids and self.new_store is None


async def checked(principal: Principal, value: Any, param: str = "tool_resources") -> Resources:
    """*value* checked against the caller's tenant; nothing is written."""
    found = Resources()
    if value is None:
        return found
    if not isinstance(value, dict):
        raise invalid(f"{param} must be an object", param)
    for name in value:
        if name not in _KINDS:
            raise invalid(f"Unrecognized request argument supplied: {param}.{name}", param)
    code = value.get("code_interpreter")
    if code is not None:
        if not isinstance(code, dict):
            raise invalid(f"{param}.code_interpreter must be an object", param)
        if code.get("file_ids"):
            raise invalid(
                f"{param}.code_interpreter: the code_interpreter tool is not supported by "
                "this server",
                f"{param}.code_interpreter",
            )
    spec = value.get(FILE_SEARCH)
    if spec is None:
        return found
    where = f"{param}.file_search"
    if not isinstance(spec, dict):
        raise invalid(f"{where} must be an object", where)
    for name in spec:
        if name not in ("vector_store_ids", "vector_stores"):
            raise invalid(f"Unrecognized request argument supplied: {where}.{name}", where)
    named = spec.get("vector_store_ids") or []
    made = spec.get("vector_stores") or []
    if not isinstance(named, list) or not all(isinstance(v, str) for v in named):
        raise invalid(f"{where}.vector_store_ids must be an array of ids", where)
    if not isinstance(made, list):
        raise invalid(f"{where}.vector_stores must be an array", where)
    if len(named) + len(made) > MAX_VECTOR_STORES:
        raise invalid(f"{where}: at most {MAX_VECTOR_STORES} vector store may be attached", where)
    engine, tenant = principal.tenant_store.engine, principal.tenant_id
    for value_id in named:
        ident = ids.parse_id(ids.VECTOR_STORE, value_id)
        if await queries.get_store(engine, tenant, ident) is None:
            raise NotFoundError("vector store", value_id)
        found.vector_store_ids.append(ident)
    if made:
        helper = made[0]
        if not isinstance(helper, dict):
            raise invalid(f"{where}.vector_stores[0] must be an object", where)
        for name in helper:
            if name not in ("file_ids", "metadata", "chunking_strategy"):
                raise invalid(
                    f"Unrecognized request argument supplied: {where}.vector_stores[0].{name}",
                    where,
                )
        check_chunking(helper.get("chunking_strategy"))
        service_of(principal)  # a 400 when the server indexes no documents
        files = await checked_file_ids(
            principal, helper.get("file_ids", []), f"{where}.vector_stores[0].file_ids"
        )
        metadata = fields.metadata(helper.get("metadata"), f"{where}.vector_stores[0].metadata")
        found.new_store = (files, metadata)
    return found


async def stored(principal: Principal, resources: Resources) -> dict[str, Any]:
    """The form kept on the assistant or thread; makes the ``vector_stores`` helper's store."""
    store_ids = list(resources.vector_store_ids)
    if resources.new_store is not None:
        files, metadata = resources.new_store
        engine, tenant = principal.tenant_store.engine, principal.tenant_id
        store_id = await queries.insert_store(engine, tenant, name=None, metadata=metadata)
        await ingestion.attach_and_ingest(
            principal.tenant_store, service_of(principal), tenant, store_id, files
        )
        store_ids.append(store_id)
    if not store_ids:
        return {}
    return {
        FILE_SEARCH: {"vector_store_ids": [ids.format_id(ids.VECTOR_STORE, s) for s in store_ids]}
    }


async def stored_all(principal: Principal, given: list[Resources]) -> dict[str, Any]:
    """One stored form for several checked ``tool_resources`` (create-and-run's two)."""
    store_ids: list[str] = []
    for resources in given:
        kept = await stored(principal, resources)
        store_ids += kept.get(FILE_SEARCH, {}).get("vector_store_ids", [])
    if not store_ids:
        return {}
    return {FILE_SEARCH: {"vector_store_ids": list(dict.fromkeys(store_ids))}}


def resources_object(stored_value: Any) -> dict[str, Any]:
    """OpenAI's ``tool_resources`` of an assistant or thread, from the stored form."""
    store_ids = vector_store_ids(stored_value)
    if not store_ids:
        return {}
    return {
        FILE_SEARCH: {"vector_store_ids": [ids.format_id(ids.VECTOR_STORE, s) for s in store_ids]}
    }
