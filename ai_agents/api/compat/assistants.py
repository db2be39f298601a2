"""``/v1/assistants``: create, retrieve, update, list and delete OpenAI assistants.

An assistant is an agent of the caller's tenant: ``instructions`` is its system prompt as
given, ``model`` names its provider (:mod:`api.compat.catalog`), function tools are its
client tools (a run stops in ``requires_action`` when the model calls one),
``temperature`` is its setting, ``metadata`` its metadata; ``description``, ``top_p``,
``response_format`` and the tools as given are kept in ``agents.assistant_fields``.
Deleting an assistant deactivates its agent: the threads it answered on stay readable.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Response, delete, get, post
from litestar.params import Parameter

from ai_agents.api.auth import Principal
from ai_agents.api.compat import fields, ids, tool_resources
from ai_agents.api.compat.catalog import public_model_name, resolve_model
from ai_agents.api.compat.errors import invalid
from ai_agents.api.compat.lists import envelope, list_query
from ai_agents.api.compat.stamps import unix
from ai_agents.api.compat.tool_resources import resources_object
from ai_agents.db import agents as agent_rows
from ai_agents.definition import AgentDefinition
from ai_agents.errors import NotFoundError
from ai_agents.files.search import (
    DEFAULT_MAX_RESULTS,
    FILE_SEARCH,
    MAX_RESULTS,
    RANKER,
    SearchOptions,
)
from ai_agents.records import AgentRecord
from ai_agents.runs.overrides import parse_client_tools, parse_response_format
from ai_agents.store import AgentStore

TAGS = ["openai: assistants"]
MAX_NAME = 256
MAX_DESCRIPTION = 512
MAX_INSTRUCTIONS = 256_000
MAX_TOOLS = 128
#: The agent name stored for an assistant created without one.
UNNAMED = "assistant"

_FIELDS = (
    "model",
    "name",
    "description",
    "instructions",
    "tools",
    "tool_resources",
    "metadata",
    "temperature",
    "top_p",
    "response_format",
    "reasoning_effort",
)


def _file_search(tool: dict[str, Any], where: str) -> dict[str, Any]:
    """A ``file_search`` tool entry, checked, with OpenAI's defaults filled in."""
    for name in tool:
        if name not in ("type", FILE_SEARCH):
            raise invalid(f"Unrecognized request argument supplied: {where}.{name}", where)
    spec = tool.get(FILE_SEARCH) or {}
    if not isinstance(spec, dict):
        raise invalid(f"{where}.file_search must be an object", f"{where}.file_search")
    for name in spec:
        if name not in ("max_num_results", "ranking_options"):
            raise invalid(
                f"Unrecognized request argument supplied: {where}.file_search.{name}", where
            )
    count = spec.get("max_num_results", DEFAULT_MAX_RESULTS)
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_RESULTS:
        raise invalid(
            f"{where}.file_search.max_num_results must be an integer from 1 to {MAX_RESULTS}",
            f"{where}.file_search.max_num_results",
        )
    ranking = spec.get("ranking_options") or {}
    if not isinstance(ranking, dict) or set(ranking) - {"ranker", "score_threshold"}:
        raise invalid(
            f"{where}.file_search.ranking_options takes ranker and score_threshold",
            f"{where}.file_search.ranking_options",
        )
    ranker = ranking.get("ranker", "auto")
    if ranker not in ("auto", RANKER):
        raise invalid(
            f"{where}.file_search.ranking_options.ranker must be 'auto' or '{RANKER}'",
            f"{where}.file_search.ranking_options.ranker",
        )
    threshold = fields.optional_number(
        ranking.get("score_threshold", 0.0),
        f"{where}.file_search.ranking_options.score_threshold",
        0,
        1,
    )
    options = SearchOptions(max_num_results=count, score_threshold=threshold or 0.0)
    return {"type": FILE_SEARCH, FILE_SEARCH: options.to_json()}


def parse_tools(value: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]:
    """The tools as given (normalized), the client tools they make and the server tools
    (``file_search``)."""
    if value is None:
        return [], [], []
    if not isinstance(value, list):
        raise invalid("tools must be an array", "tools")
    if len(value) > MAX_TOOLS:
        raise invalid(f"tools may have at most {MAX_TOOLS} entries, got {len(value)}", "tools")
    given: list[dict[str, Any]] = []
    functions: list[dict[str, Any]] = []
    server: list[str] = []
    for i, tool in enumerate(value):
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind == "code_interpreter":
            raise invalid(
                f"tools[{i}]: the code_interpreter tool is not supported by this server "
                "(function and file_search tools are)",
                f"tools[{i}].type",
            )
        if kind == FILE_SEARCH:
            if server:
                raise invalid(f"tools[{i}]: file_search is listed twice", f"tools[{i}]")
            given.append(_file_search(tool, f"tools[{i}]"))
            server.append(FILE_SEARCH)
            continue
        if kind != "function":
            raise invalid(
                f"tools[{i}].type must be 'function', 'file_search' or 'code_interpreter'",
                f"tools[{i}].type",
            )
        function = tool.get("function")
        if not isinstance(function, dict):
            raise invalid(f"tools[{i}].function must be an object", f"tools[{i}].function")
        if function.get("name") == FILE_SEARCH:
            raise invalid(
                f"tools[{i}]: the function name {FILE_SEARCH!r} is the file_search tool's",
                f"tools[{i}].function.name",
            )
        strict = function.get("strict")
        if strict is not None and not isinstance(strict, bool):
            raise invalid(f"tools[{i}].function.strict must be a boolean", f"tools[{i}]")
        entry = {"type": "function", "function": dict(function)}
        given.append(entry)
        functions.append(entry)
    client = list(parse_client_tools(functions, "tools"))
    for tool, parsed in zip(functions, client, strict=True):
        tool["function"] = {
            "name": parsed["name"],
            "description": parsed["description"],
            "parameters": parsed["parameters"],
            "strict": bool(tool["function"].get("strict") or False),
        }
    return given, client, server


def _response_format(value: Any) -> Any:
    if value is None or value == "auto":
        return value
    parse_response_format(value)  # a 400 naming response_format when malformed
    return value


def _parse(body: dict[str, Any], *, creating: bool) -> dict[str, Any]:
    """The agent changes a create or update body asks for (only what it names)."""
    if not isinstance(body, dict):
        raise invalid("the request body must be a JSON object")
    fields.reject_unknown(body, _FIELDS)
    if creating and "model" not in body:
        raise invalid("you must provide a model parameter", "model")
    extra: dict[str, Any] = {}
    changes: dict[str, Any] = {}
    if "model" in body:
        changes["provider"], changes["model"] = resolve_model(body["model"])
    if "name" in body:
        name = fields.optional_text(body["name"], "name", MAX_NAME)
        extra["name"] = name
        changes["name"] = name if name and name.strip() else UNNAMED
    if "description" in body:
        extra["description"] = fields.optional_text(
            body["description"], "description", MAX_DESCRIPTION
        )
    if "instructions" in body:
        instructions = fields.optional_text(body["instructions"], "instructions", MAX_INSTRUCTIONS)
        changes["instructions"] = instructions or ""
    if "tools" in body:
        extra["tools"], changes["client_tools"], changes["tools"] = parse_tools(body["tools"])
    if "metadata" in body:
        changes["metadata"] = fields.metadata(body["metadata"])
    if "temperature" in body:
        changes["temperature"] = fields.optional_number(body["temperature"], "temperature", 0, 2)
    if "top_p" in body:
        extra["top_p"] = fields.optional_number(body["top_p"], "top_p", 0, 1)
    if "response_format" in body:
        extra["response_format"] = _response_format(body["response_format"])
    if "reasoning_effort" in body:
        effort = body["reasoning_effort"]
        if effort is not None and effort not in ("minimal", "low", "medium", "high"):
            raise invalid(
                "reasoning_effort must be 'minimal', 'low', 'medium' or 'high'",
                "reasoning_effort",
            )
        extra["reasoning_effort"] = effort
    changes["assistant_fields"] = extra
    return changes


def assistant_object(agent: AgentRecord) -> dict[str, Any]:
    """The agent as an OpenAI ``assistant`` object."""
    extra = agent.assistant_fields
    instructions = agent.instructions
    if instructions is None:  # made through /api/v1: its compiled prompt
        instructions = agent.definition.compile()
    tools = extra.get("tools")
    if tools is None:
        tools = [
            {
                "type": "function",
                "function": {
                    "name": t["name"],
                    "description": t.get("description", ""),
                    "parameters": t.get("parameters") or {"type": "object", "properties": {}},
                    "strict": False,
                },
            }
            for t in agent.client_tools
        ]
    temperature = agent.settings.get("temperature")
    top_p = extra.get("top_p")
    return {
        "id": ids.format_id(ids.ASSISTANT, agent.id),
        "object": "assistant",
        "created_at": unix(agent.created_at),
        "name": extra.get("name", agent.definition.name),
        "description": extra.get("description"),
        "model": public_model_name(agent.provider, agent.model),
        "instructions": instructions or None,
        "tools": tools,
        "tool_resources": resources_object(extra.get("tool_resources")),
        "metadata": dict(agent.metadata),
        "temperature": float(temperature) if temperature is not None else 1.0,
        "top_p": float(top_p) if top_p is not None else 1.0,
        "response_format": extra.get("response_format") or "auto",
    }


async def find_assistant(store: AgentStore, assistant_id: str) -> AgentRecord:
    """The active agent behind *assistant_id*; a 404 naming the id otherwise (the
    library's own agents, such as the responses agent, are no assistants)."""
    ident = ids.parse_id(ids.ASSISTANT, assistant_id)
    try:
        agent = await store.get_agent(ident)
    except NotFoundError:
        agent = None
    if agent is None or not agent.is_active or agent_rows.is_system_agent(agent):
        raise NotFoundError("assistant", assistant_id)
    return agent


def _settings_with(agent_settings: dict[str, Any], temperature: Any) -> dict[str, Any]:
    settings = dict(agent_settings)
    if temperature is None:
        settings.pop("temperature", None)
    else:
        settings["temperature"] = temperature
    return settings


@post("/assistants", tags=TAGS, summary="Create an assistant", status_code=200)
async def create_assistant(data: dict[str, Any], principal: Principal) -> dict[str, Any]:
    changes = _parse(data, creating=True)
    resources = await tool_resources.checked(principal, data.get("tool_resources"))
    name = changes.pop("name", UNNAMED)
    changes["assistant_fields"].setdefault("name", None)  # the SDK reads None, not ours
    settings = _settings_with({}, changes.pop("temperature", None))
    store = principal.tenant_store
    changes["assistant_fields"]["tool_resources"] = await tool_resources.stored(
        principal, resources
    )
    agent_id = await store.create_agent(
        AgentDefinition(name=name, role="assistant", tools=changes.get("tools") or []),
        provider=changes["provider"],
        model=changes["model"],
        client_tools=changes.get("client_tools"),
        settings=settings,
        metadata=changes.get("metadata"),
        instructions=changes.get("instructions", ""),
        assistant_fields=changes["assistant_fields"],
        created_by=principal.actor,
        tenant_id=principal.tenant_id,
    )
    return assistant_object(await store.get_agent(agent_id))


@get("/assistants/{assistant_id:str}", tags=TAGS, summary="Retrieve an assistant")
async def retrieve_assistant(assistant_id: str, principal: Principal) -> dict[str, Any]:
    return assistant_object(await find_assistant(principal.tenant_store, assistant_id))


@post("/assistants/{assistant_id:str}", tags=TAGS, summary="Modify an assistant", status_code=200)
async def modify_assistant(
    assistant_id: str, data: dict[str, Any], principal: Principal
) -> dict[str, Any]:
    store = principal.tenant_store
    agent = await find_assistant(store, assistant_id)
    changes = _parse(data, creating=False)
    extra = {**agent.assistant_fields, **changes.pop("assistant_fields")}
    if "tool_resources" in data:
        resources = await tool_resources.checked(principal, data["tool_resources"])
        extra["tool_resources"] = await tool_resources.stored(principal, resources)
    if "temperature" in changes:
        changes["settings"] = _settings_with(agent.settings, changes.pop("temperature"))
    updated = await store.update_agent(agent.id, **changes, assistant_fields=extra)
    return assistant_object(updated)


@get("/assistants", tags=TAGS, summary="List assistants")
async def list_assistants(
    principal: Principal,
    limit: Annotated[str | None, Parameter(query="limit", required=False)] = None,
    order: Annotated[str | None, Parameter(query="order", required=False)] = None,
    after: Annotated[str | None, Parameter(query="after", required=False)] = None,
    before: Annotated[str | None, Parameter(query="before", required=False)] = None,
) -> dict[str, Any]:
    query = list_query(limit, order, after, before)
    agents, has_more = await principal.tenant_store.page_agents(
        limit=query.limit,
        order=query.order,
        after=ids.parse_id(ids.ASSISTANT, query.after) if query.after else None,
        before=ids.parse_id(ids.ASSISTANT, query.before) if query.before else None,
    )
    return envelope([assistant_object(a) for a in agents], has_more)


@delete("/assistants/{assistant_id:str}", tags=TAGS, summary="Delete an assistant", status_code=200)
async def delete_assistant(assistant_id: str, principal: Principal) -> Response[dict[str, Any]]:
    store = principal.tenant_store
    agent = await find_assistant(store, assistant_id)
    await store.deactivate_agent(agent.id)
    return Response(
        {"id": assistant_id, "object": "assistant.deleted", "deleted": True}, status_code=200
    )


HANDLERS = [
    create_assistant,
    retrieve_assistant,
    modify_assistant,
    list_assistants,
    delete_assistant,
]
