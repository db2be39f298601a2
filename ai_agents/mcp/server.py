"""Our agents as an MCP server: an MCP client (Claude Desktop, an IDE, another agent)
lists a tenant's agents, opens threads, runs turns and searches the tenant's documents.

    server = create_server(store, tenant="acme")         # stdio: one tenant per process
    await server.run_stdio_async()

Every session acts for ONE tenant, fixed when it starts: ``ai-agents mcp`` resolves it
from ``--tenant`` or an API key once; the API's ``/mcp`` endpoint authenticates every
HTTP request with the caller's API key (its tenant is put in the request's ASGI scope
under :data:`TENANT_SCOPE_KEY`, and the SDK binds each session to the key that opened
it). Every tool works on ``store.for_tenant(tenant)``, so another tenant's agent, thread
or run is "not found" exactly like one that does not exist.

Tools: ``list_agents``, ``create_thread``, ``run_turn`` (progress notifications while the
run streams, when the client sent a progress token), ``read_messages`` and
``search_documents`` (the RAG index the store's document tools use). Failures are MCP
tool errors (``isError``) with a clear message; unexpected ones keep their details in
the server log.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from typing import TYPE_CHECKING, Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from ai_agents.errors import AgentsError, ProviderError, StorageError
from ai_agents.response import (
    DoneEvent,
    RunStartedEvent,
    TextDeltaEvent,
    ToolCallEvent,
    ToolResultEvent,
)

if TYPE_CHECKING:
    from ai_agents.messages import Message
    from ai_agents.rag.service import DocumentService
    from ai_agents.store import AgentStore

log = logging.getLogger(__name__)

SERVER_NAME = "ai-agents"
#: Key of the ASGI scope where the API's ``/mcp`` endpoint puts the caller's tenant.
TENANT_SCOPE_KEY = "ai_agents.tenant"
#: A progress notification at most this often (seconds) while text streams in.
PROGRESS_INTERVAL = 0.25
MAX_MESSAGES = 200
MAX_TEXT = 100_000

#: Resolves the tenant of the session a tool call belongs to (raises ToolError if none).
TenantResolver = Callable[[Context], Awaitable[str]]

INSTRUCTIONS = (
    "Agents of one tenant of an ai_agents deployment. list_agents shows the agents; "
    "create_thread opens a conversation with one; run_turn sends a user message and "
    "returns the agent's answer (the whole turn is saved on the thread); read_messages "
    "reads a thread back; search_documents searches the tenant's documents."
)


def fixed_tenant(tenant_id: str) -> TenantResolver:
    """A resolver for a session whose tenant never changes (stdio)."""
    if not tenant_id:
        raise ValueError("tenant_id must be a non-empty string")

    async def resolve(_ctx: Context) -> str:
        return tenant_id

    return resolve


async def tenant_from_request(ctx: Context) -> str:
    """The tenant the HTTP endpoint authenticated for this request (fails closed)."""
    request = ctx.request_context.request
    scope = getattr(request, "scope", None)
    tenant = scope.get(TENANT_SCOPE_KEY) if isinstance(scope, dict) else None
    if not isinstance(tenant, str) or not tenant:
        raise ToolError("not authenticated: this MCP endpoint needs an API key")
    return tenant


def _tool_error(exc: AgentsError) -> ToolError:
    """A clear, tenant-safe message for a library error."""
    if isinstance(exc, StorageError):
        log.warning("MCP tool failed on storage: %s", exc.message)
        return ToolError("the database or Redis is unavailable; try again later")
    if isinstance(exc, ProviderError):
        return ToolError(f"the model provider failed: {exc.message}")
    return ToolError(exc.message)


def _message_json(message: Message) -> dict[str, Any]:
    data: dict[str, Any] = {
        "seq": message.seq,
        "role": message.role,
        "content": message.content or "",
        "created_at": message.created_at.isoformat() if message.created_at else None,
    }
    if message.tool_calls:
        data["tool_calls"] = [c.to_json() for c in message.tool_calls]
    if message.tool_name:
        data["tool_name"] = message.tool_name
        data["tool_call_id"] = message.tool_call_id
    return data


def document_service(store: AgentStore) -> DocumentService | None:
    """The document search the store's agents use, if one is configured.

    ``enable_documents(store)`` installs it as a store extension; listing
    ``ai_agents.rag.builtin`` in ``AI_AGENTS_TOOL_MODULES`` configures it from the
    environment (imported with the default tool registry).
    """
    from ai_agents.rag.setup import EXTENSION

    service = store.extensions.get(EXTENSION)
    if service is not None:
        return service  # type: ignore[no-any-return]
    try:
        _ = store.tools  # imports AI_AGENTS_TOOL_MODULES (the default registry)
    except AgentsError:
        return None
    builtin = sys.modules.get("ai_agents.rag.builtin")
    found = getattr(builtin, "service", None)
    return found  # type: ignore[no-any-return]


class _Progress:
    """Progress notifications for one streamed run: one per event, text deltas batched."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.step = 0
        self.chars = 0
        self.pending = 0
        self.last = 0.0

    async def report(self, message: str) -> None:
        self.step += 1
        self.pending = 0
        self.last = time.monotonic()
        await self.ctx.report_progress(self.step, None, message)

    async def text(self, delta: str) -> None:
        self.chars += len(delta)
        self.pending += len(delta)
        if time.monotonic() - self.last >= PROGRESS_INTERVAL:
            await self.report(f"streaming: {self.chars} characters")

    async def flush(self) -> None:
        if self.pending:
            await self.report(f"streaming: {self.chars} characters")


def create_server(store: AgentStore, tenant: str | TenantResolver) -> MCPServer:
    """An MCP server over *store*; every tool acts for the session's tenant.

    *tenant*: a tenant id (stdio: the whole process acts for it) or a resolver reading
    it from the request (:func:`tenant_from_request` for the HTTP endpoint).
    """
    resolve = fixed_tenant(tenant) if isinstance(tenant, str) else tenant
    # The SDK configures the root logger (logging.basicConfig) when it has no handlers:
    # leave the process's logging to its owner (the CLI, uvicorn, pytest).
    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    server = MCPServer(SERVER_NAME, instructions=INSTRUCTIONS, log_level="WARNING")
    root.setLevel(saved[0])
    root.handlers[:] = saved[1]

    async def scoped(ctx: Context) -> AgentStore:
        tenant_id = await resolve(ctx)
        if not tenant_id:  # never the admin view (None) of every tenant
            raise ToolError("not authenticated")
        return store.for_tenant(tenant_id)

    @server.tool()
    async def list_agents(
        ctx: Context,
        limit: Annotated[int, Field(ge=1, le=200, description="Most agents to return")] = 50,
        cursor: Annotated[
            str | None, Field(max_length=500, description="next_cursor of the previous page")
        ] = None,
    ) -> dict[str, Any]:
        """List the active agents you can talk to (id, name, role, model, tools)."""
        view = await scoped(ctx)
        try:
            page = await view.list_agents(limit=limit, cursor=cursor)
        except AgentsError as exc:
            raise _tool_error(exc) from exc
        return {
            "agents": [
                {
                    "id": str(a.id),
                    "name": a.definition.name,
                    "role": a.definition.role,
                    "goal": a.definition.goal,
                    "provider": a.provider,
                    "model": a.model,
                    "tools": list(a.definition.tools),
                }
                for a in page.items
            ],
            "next_cursor": page.next_cursor,
        }

    @server.tool()
    async def create_thread(
        ctx: Context,
        agent_id: Annotated[str, Field(max_length=100, description="An agent id (list_agents)")],
        user_id: Annotated[
            str | None,
            Field(min_length=1, max_length=200, description="End user the thread belongs to"),
        ] = None,
        title: Annotated[str | None, Field(max_length=500, description="A title")] = None,
    ) -> dict[str, Any]:
        """Open a new conversation (thread) with an agent; returns its thread_id."""
        view = await scoped(ctx)
        try:
            agent = await view.get_agent(agent_id)
            if not agent.is_active:
                raise ToolError(f"agent {agent.id} is deactivated: it cannot take new threads")
            thread_id = await view.create_thread(agent.id, user_id=user_id, title=title)
        except AgentsError as exc:
            raise _tool_error(exc) from exc
        return {"thread_id": str(thread_id), "agent_id": str(agent.id), "agent": agent.name}

    @server.tool()
    async def run_turn(
        ctx: Context,
        thread_id: Annotated[str, Field(max_length=100, description="A thread id")],
        text: Annotated[
            str, Field(min_length=1, max_length=MAX_TEXT, description="The user's message")
        ],
    ) -> dict[str, Any]:
        """Send a user message on a thread and return the agent's answer and the run id.

        The agent may call its tools first; the whole turn is saved on the thread. With a
        progress token the client gets progress notifications while the answer streams.
        """
        view = await scoped(ctx)
        progress = _Progress(ctx)
        response = None
        try:
            async with aclosing(view.stream(thread_id, text)) as events:
                async for event in events:
                    if isinstance(event, TextDeltaEvent):
                        await progress.text(event.text)
                    elif isinstance(event, RunStartedEvent):
                        await progress.report(f"run {event.run_id} started")
                    elif isinstance(event, ToolCallEvent):
                        await progress.flush()
                        await progress.report(f"calling tool {event.call.name}")
                    elif isinstance(event, ToolResultEvent):
                        outcome = "failed" if event.is_error else "returned"
                        await progress.report(f"tool {event.call.name} {outcome}")
                    elif isinstance(event, DoneEvent):
                        await progress.flush()
                        response = event.response
        except AgentsError as exc:
            raise _tool_error(exc) from exc
        if response is None:
            raise ToolError("the run ended without an answer")
        await progress.report(f"run {response.run_id} {response.status}")
        result: dict[str, Any] = {
            "answer": response.content,
            "run_id": str(response.run_id),
            "thread_id": str(response.thread_id),
            "status": response.status,
            "finish_reason": response.finish_reason,
            "tool_calls": [
                {"name": r.call.name, "arguments": r.call.arguments, "is_error": r.is_error}
                for r in response.tool_calls
            ],
            "usage": {
                "input_tokens": response.usage.input_tokens,
                "output_tokens": response.usage.output_tokens,
            },
        }
        if response.required_action:
            result["required_action"] = [c.to_json() for c in response.required_action]
        return result

    @server.tool()
    async def read_messages(
        ctx: Context,
        thread_id: Annotated[str, Field(max_length=100, description="A thread id")],
        limit: Annotated[
            int, Field(ge=1, le=MAX_MESSAGES, description="How many of the last messages")
        ] = 20,
    ) -> dict[str, Any]:
        """Read the last messages of a thread, oldest first."""
        view = await scoped(ctx)
        try:
            messages = await view.last_messages(thread_id, limit)
        except AgentsError as exc:
            raise _tool_error(exc) from exc
        return {"thread_id": thread_id, "messages": [_message_json(m) for m in messages]}

    @server.tool()
    async def search_documents(
        ctx: Context,
        query: Annotated[str, Field(min_length=1, max_length=4000, description="What to find")],
        entity_id: Annotated[
            str | None, Field(max_length=200, description="Only this entity's documents")
        ] = None,
        top_k: Annotated[int, Field(ge=1, le=50, description="How many passages")] = 5,
    ) -> dict[str, Any]:
        """Search your documents for passages relevant to a query, with citations."""
        tenant_id = (await scoped(ctx)).tenant_id
        if tenant_id is None:  # scoped() never returns the admin view; fail closed anyway
            raise ToolError("not authenticated")
        service = document_service(store)
        if service is None:
            raise ToolError(
                "document search is not configured on this server (no document index: "
                "enable_documents(store), or ai_agents.rag.builtin in AI_AGENTS_TOOL_MODULES)"
            )
        try:
            hits = await service.search(tenant_id, query, entity_id=entity_id, top_k=top_k)
        except AgentsError as exc:
            raise _tool_error(exc) from exc
        return {"query": query, "results": [h.to_json() for h in hits]}

    return server
