"""``file_search``: the built-in tool that searches the vector stores of a conversation.

An OpenAI assistant with the ``file_search`` tool is an agent whose tools include
``file_search``. Every runner offers this tool under that name (a built-in of
:class:`~ai_agents.tools.registry.ToolRegistry`: a registered tool of the same name wins).
It searches the vector stores named in ``tool_resources.file_search.vector_store_ids``
of the agent (``assistant_fields``) and of the thread (its metadata key
:data:`THREAD_RESOURCES_KEY`, a JSON object, so ``/v1`` never shows it as metadata),
within the run's tenant: a store of another tenant, or one deleted since, finds nothing.

Every result reaches the model with its file, its score, its passage and a ``ref`` such
as ``【4f2a:0†guide.md】`` (a digest of the file id, the passage's position in the file,
the file name): the model cites a passage by writing its ref after the statement it
supports, as OpenAI's models do. :func:`citation_refs` reads back, from a run's steps,
which file each ref it was given names, so an answer's refs become ``file_citation``
annotations; a ref the run never received is left as text.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

from pydantic import Field

from ai_agents.errors import UsageError
from ai_agents.tools.decorator import Tool, ToolContext, build_tool

if TYPE_CHECKING:
    from ai_agents.runs.records import RunStep
    from ai_agents.store import AgentStore

FILE_SEARCH = "file_search"
#: The thread metadata key holding the thread's ``tool_resources`` (a JSON object).
THREAD_RESOURCES_KEY = "ai_agents.tool_resources"
#: OpenAI's default and largest ``max_num_results``.
DEFAULT_MAX_RESULTS = 20
MAX_RESULTS = 50
RANKER = "default_2024_08_21"
#: A ref as written by this tool: ``【<4 hex>:<position>†<file name>】``.
CITATION = re.compile(r"【[0-9a-f]{4}:\d+†[^【】]*】")
_QUERY_CHARS = 4000

DESCRIPTION = (
    "Search the files the user attached (documents, manuals, notes) for passages relevant "
    "to a query. Each result has a ref such as 【4f2a:0†guide.md】: when your answer uses a "
    "passage, write its ref right after the statement it supports."
)


@dataclass(frozen=True, slots=True)
class SearchOptions:
    """An assistant's ``file_search`` settings: how many results, from what score."""

    max_num_results: int = DEFAULT_MAX_RESULTS
    score_threshold: float = 0.0
    ranker: str = RANKER

    def to_json(self) -> dict[str, Any]:
        return {
            "max_num_results": self.max_num_results,
            "ranking_options": {"ranker": self.ranker, "score_threshold": self.score_threshold},
        }

    @classmethod
    def of_tools(cls, tools: Any) -> SearchOptions:
        """The options of the ``file_search`` entry among an assistant's tools as stored."""
        for entry in tools if isinstance(tools, list) else ():
            if isinstance(entry, dict) and entry.get("type") == FILE_SEARCH:
                spec = entry.get(FILE_SEARCH) or {}
                ranking = spec.get("ranking_options") or {}
                return cls(
                    max_num_results=int(spec.get("max_num_results") or DEFAULT_MAX_RESULTS),
                    score_threshold=float(ranking.get("score_threshold") or 0.0),
                    ranker=str(ranking.get("ranker") or RANKER),
                )
        return cls()


def vector_store_ids(resources: Any) -> list[UUID]:
    """The vector store ids of a stored ``tool_resources`` object (none when malformed)."""
    if not isinstance(resources, Mapping):
        return []
    found = (resources.get(FILE_SEARCH) or {}).get("vector_store_ids") or []
    out: list[UUID] = []
    for value in found if isinstance(found, list) else ():
        try:
            out.append(UUID(hex=str(value).removeprefix("vs_")))
        except ValueError:
            continue
    return out


def thread_resources(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """A thread's ``tool_resources`` as stored in its metadata (empty when none)."""
    value = metadata.get(THREAD_RESOURCES_KEY)
    return dict(value) if isinstance(value, Mapping) else {}


def citation_ref(file_id: str, position: int, file_name: str) -> str:
    """The ref the model writes to cite passage *position* of a file."""
    digest = hashlib.sha256(file_id.encode()).hexdigest()[:4]
    name = re.sub(r"[【】\s]+", " ", file_name).strip() or "file"
    return f"【{digest}:{position}†{name}】"


def _file_id(source: str) -> str | None:
    """``file-<hex>``: the source of a vector store passage (ingestion.source_for)."""
    return source if source.startswith("file-") else None


async def search_files(ctx: ToolContext, query: str) -> dict[str, Any]:
    """The passages of the run's vector stores that best match *query*."""
    from ai_agents.files import ingestion

    if ctx.store is None or not ctx.tenant_id:
        raise UsageError("file_search runs inside an agent run (it needs its store and tenant)")
    store = ctx.store.for_tenant(ctx.tenant_id)
    agent = await store.get_agent(ctx.agent_id)
    thread = await store.get_thread(ctx.thread_id)
    stores = list(
        dict.fromkeys(
            [
                *vector_store_ids(agent.assistant_fields.get("tool_resources")),
                *vector_store_ids(thread_resources(thread.metadata)),
            ]
        )
    )
    if not stores:
        return {"query": query, "results": [], "note": "no vector store is attached"}
    service = ingestion.document_service(store)
    if service is None:
        raise UsageError("file_search needs document search, which this server does not enable")
    options = SearchOptions.of_tools(agent.assistant_fields.get("tools"))
    hits = []
    for store_id in stores:
        hits += await service.search(
            ctx.tenant_id,
            query,
            entity_id=ingestion.entity_for(store_id),
            top_k=min(options.max_num_results, MAX_RESULTS),
        )
    hits.sort(key=lambda h: h.score, reverse=True)
    results = []
    for hit in hits:
        file_id = _file_id(hit.chunk.source)
        score = min(max(float(hit.score), 0.0), 1.0)  # OpenAI's scores are 0..1
        if file_id is None or score < options.score_threshold:
            continue
        name = hit.chunk.title or file_id
        results.append(
            {
                "ref": citation_ref(file_id, hit.chunk.position, name),
                "file_id": file_id,
                "file_name": name,
                "score": round(score, 6),
                "content": hit.chunk.content,
            }
        )
        if len(results) == options.max_num_results:
            break
    ranking = {"ranker": RANKER, "score_threshold": options.score_threshold}
    return {"query": query, "results": results, "ranking_options": ranking}


async def file_search(
    query: Annotated[str, Field(min_length=1, max_length=_QUERY_CHARS)], ctx: ToolContext
) -> dict[str, Any]:
    """Search the attached files.

    Args:
        query: What to look for, in natural language
    """
    return await search_files(ctx, query)


FILE_SEARCH_TOOL: Tool = build_tool(file_search, name=FILE_SEARCH, description=DESCRIPTION)


# --- reading a run's searches back ------------------------------------------------------------


def search_output(output: Any) -> dict[str, Any] | None:
    """A ``file_search`` call's recorded output (the JSON above), None when it failed."""
    if not isinstance(output, str):
        return None
    try:
        data = json.loads(output)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("results"), list):
        return None
    return data


def search_calls(step: RunStep) -> Iterable[dict[str, Any]]:
    """The ``file_search`` calls a ``tool_calls`` step recorded."""
    if step.type != "tool_calls":
        return ()
    return [
        c
        for c in step.details.get("tool_calls") or []
        if c.get("name") == FILE_SEARCH and not c.get("client")
    ]


def refs_of_steps(steps: Iterable[RunStep]) -> dict[str, str]:
    """Every ref a run's searches gave the model → the file id it names."""
    refs: dict[str, str] = {}
    for step in steps:
        for call in search_calls(step):
            data = search_output(call.get("output")) or {"results": []}
            for result in data["results"]:
                if isinstance(result, dict) and isinstance(result.get("ref"), str):
                    refs[result["ref"]] = str(result.get("file_id"))
    return refs


async def citation_refs(store: AgentStore, run_ids: Iterable[UUID]) -> dict[UUID, dict[str, str]]:
    """For each run: the refs its searches gave the model → their file ids."""
    return {run: refs_of_steps(await store.list_run_steps(run)) for run in set(run_ids)}


def file_citations(text: str, refs: Mapping[str, str]) -> list[dict[str, Any]]:
    """OpenAI's ``file_citation`` annotations of the refs in *text* the run was given."""
    return [
        {
            "type": "file_citation",
            "text": match.group(),
            "start_index": match.start(),
            "end_index": match.end(),
            "file_citation": {"file_id": refs[match.group()]},
        }
        for match in CITATION.finditer(text)
        if match.group() in refs
    ]


def cites(text: str) -> bool:
    """Does *text* hold a ref (worth reading its run's searches)?"""
    return CITATION.search(text) is not None
