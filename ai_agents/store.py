"""AgentStore: owns agents, threads, messages and user memory in PostgreSQL.

    store = AgentStore()                      # env AI_AGENTS_DATABASE_URL / DATABASE_URL, REDIS_URL
    async with store:
        agent_id = await store.create_agent(definition=AgentDefinition(...), provider="openai",
                                            model="gpt-4o")
        thread_id = await store.create_thread(agent_id=agent_id, user_id="user_123")
        response = await store.run(thread_id, "What's the checkout time?")

One store holds one connection pool (and one Redis client) for its lifetime. It is
scoped to a tenant (``settings.default_tenant`` unless given); :meth:`for_tenant`
returns a view on another tenant sharing the same pools.
"""

from __future__ import annotations

from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Mapping,
    Sequence,
)
from contextlib import aclosing, asynccontextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ai_agents.agent_settings import Ceilings, prefixed, validate_settings
from ai_agents.config import Settings
from ai_agents.db import agents as agent_rows
from ai_agents.db import assignment, message_edits
from ai_agents.db import memory as memory_rows
from ai_agents.db import messages as message_rows
from ai_agents.db import migrate as migrations
from ai_agents.db import threads as thread_rows
from ai_agents.db.engine import autocommit, driver_connection, parse_uuid, translate_errors
from ai_agents.db.scope import Scope
from ai_agents.db.tables import tenants, user_usage
from ai_agents.definition import AgentDefinition
from ai_agents.errors import ConfigurationError, LimitExceeded, UsageError, ValidationError
from ai_agents.keys import RedisKeys
from ai_agents.mcp.storage import ServerCache
from ai_agents.messages import Message, Role, ToolCall
from ai_agents.nul import nul_path
from ai_agents.providers.catalog import PROVIDERS
from ai_agents.records import AgentRecord, Page, ThreadRecord, UsageTotals
from ai_agents.runtime import Runtime

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from ai_agents.jobs.queue import RedisJobQueue
    from ai_agents.jobs.records import JobRecord
    from ai_agents.mcp.config import McpServerConfig
    from ai_agents.mcp.storage import McpServerInfo
    from ai_agents.providers.base import Provider
    from ai_agents.response import AgentResponse, RunEvent
    from ai_agents.runner import AgentRunner, RunOptions
    from ai_agents.runs.records import RunRecord, RunStep, ToolOutput
    from ai_agents.runs.turn import Completion, RunTicket
    from ai_agents.tools.registry import ToolRegistry

MAX_PAGE = 1000
#: Hosted vendors: their model names are looked up strictly in the registry.
_VENDOR_PROVIDERS = frozenset(name for name, spec in PROVIDERS.items() if not spec.local)


def _page_limit(limit: int) -> int:
    if not isinstance(limit, int) or limit < 1 or limit > MAX_PAGE:
        raise ValidationError(
            f"limit must be an integer between 1 and {MAX_PAGE}", details={"field": "limit"}
        )
    return limit


class _Shared:
    """The runtime (pools, limits cache) and components shared by every tenant view."""

    def __init__(self, settings: Settings, tools: ToolRegistry | None) -> None:
        self.runtime = Runtime(settings)
        self.tools = tools
        self.runner: AgentRunner | None = None
        self.jobs: RedisJobQueue | None = None
        #: Optional components of other packages (e.g. documents), closed with the store.
        self.extensions: dict[str, Any] = {}
        #: Each agent's MCP servers as its last run here read them (by ``updated_at``).
        self.mcp_servers = ServerCache()


class AgentStore:
    """The data owner: CRUD for agents, threads, messages and user memory, plus runs."""

    def __init__(
        self,
        database_url: str | None = None,
        redis_url: str | None = None,
        *,
        settings: Settings | None = None,
        tenant_id: str | None = None,
        tools: ToolRegistry | None = None,
    ) -> None:
        """``tools``: the registry agents' tool names resolve in (default: the process-wide
        registry that ``@tool`` fills)."""
        if settings is None:
            # The URLs given win over the environment's (whose DATABASE_URL may be another
            # program's: it is not even looked at then).
            settings = Settings.from_env(database_url=database_url, redis_url=redis_url)
        settings = replace(
            settings,
            database_url=database_url or settings.database_url,
            redis_url=redis_url or settings.redis_url,
        )
        self._shared = _Shared(settings, tools)
        self._scope = Scope(tenant_id or settings.default_tenant)

    # --- lifecycle --------------------------------------------------------------------

    @property
    def settings(self) -> Settings:
        return self._shared.runtime.settings

    @property
    def runtime(self) -> Runtime:
        """Pools, settings and tenant limits shared by the store and its runner."""
        return self._shared.runtime

    @property
    def tenant_id(self) -> str | None:
        """The tenant this view acts for (``None``: the admin view of every tenant)."""
        return self._scope.tenant_id

    @property
    def keys(self) -> RedisKeys:
        return self._shared.runtime.keys

    @property
    def scope(self) -> Scope:
        """The tenant scope every query of this view applies (for modules that add their
        own queries, such as the ``/v1`` runs listing)."""
        return self._scope

    def for_tenant(self, tenant_id: str | None) -> AgentStore:
        """A view of this store acting for *tenant_id* (``None``: admin, sees all tenants)."""
        view = object.__new__(type(self))
        view.__dict__.update(self.__dict__)
        view._scope = Scope(tenant_id)
        return view

    @property
    def engine(self) -> AsyncEngine:
        return self._shared.runtime.engine

    @property
    def redis(self) -> Redis:
        return self._shared.runtime.redis

    @property
    def extensions(self) -> dict[str, Any]:
        """Per-store components of other packages (e.g. ``documents``), closed with it."""
        return self._shared.extensions

    def use_tools(self, tools: ToolRegistry) -> None:
        """Resolve agents' tools in *tools* from now on (instead of the default registry)."""
        self._shared.tools = tools
        if self._shared.runner is not None:
            self._shared.runner.use_tools(tools)

    @property
    def jobs(self) -> RedisJobQueue:
        """The store's background job queue (created on first use), for this tenant view."""
        from ai_agents.jobs.queue import RedisJobQueue

        if self._shared.jobs is None:
            self._shared.jobs = RedisJobQueue(self)
        return self._shared.jobs.bound_to(self)

    def use_job_queue(self, queue: RedisJobQueue) -> None:
        """Use *queue* (e.g. with its own :class:`QueueConfig`) as the store's job queue."""
        self._shared.jobs = queue

    async def __aenter__(self) -> AgentStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close every pool and component the store opened. Safe to call twice."""
        shared = self._shared
        for ext in [*shared.extensions.values(), shared.jobs, shared.runner]:
            closer = getattr(ext, "aclose", None)
            if closer is not None:
                await closer()
        shared.extensions.clear()
        shared.jobs = shared.runner = None
        await shared.runtime.aclose()

    async def migrate(self) -> None:
        """Upgrade the database schema to the newest revision (a no-op when current)."""
        if not self.settings.database_url:
            raise ConfigurationError("no database configured: cannot migrate")
        await migrations.upgrade_async(
            self.settings.database_url,
            prepared_statements=self.settings.prepared_statements,
        )

    @asynccontextmanager
    async def _tx(self, operation: str) -> AsyncIterator[AsyncConnection]:
        with translate_errors(operation):
            async with self.engine.begin() as conn:
                yield conn

    @asynccontextmanager
    async def _autocommit(self, operation: str) -> AsyncIterator[AsyncConnection]:
        """A connection without a SQLAlchemy transaction (for statements that run their own)."""
        with translate_errors(operation):
            async with autocommit(self.engine) as conn:
                yield conn

    @asynccontextmanager
    async def _read(self, operation: str) -> AsyncIterator[AsyncConnection]:
        with translate_errors(operation):
            async with self.engine.connect() as conn:
                yield conn

    # --- agents -----------------------------------------------------------------------

    async def create_agent(
        self,
        definition: AgentDefinition,
        *,
        provider: str,
        model: str,
        memory_strategy: str = "last_messages",
        memory_config: dict[str, Any] | None = None,
        tools: Sequence[str] | None = None,
        fallbacks: Sequence[dict[str, Any]] | None = None,
        settings: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        created_by: str | None = None,
        tenant_id: str | None = None,
        client_tools: Sequence[dict[str, Any]] | None = None,
        instructions: str | None = None,
        assistant_fields: dict[str, Any] | None = None,
    ) -> UUID:
        """Create an agent; ``tools`` (if given) replaces ``definition.tools``.

        ``instructions``: the system prompt as given, instead of the one compiled from
        the definition. ``assistant_fields``: OpenAI assistant fields kept for ``/v1``.

        ``client_tools``: function tools the caller executes, ``{name, description,
        parameters}`` each; when the model calls one the run stops in
        ``requires_action`` until :meth:`submit_tool_outputs`.
        """
        if not isinstance(definition, AgentDefinition):
            raise ValidationError(
                "definition must be an AgentDefinition", details={"field": "definition"}
            )
        if tools is not None:
            definition = AgentDefinition.from_dict({**definition.to_dict(), "tools": list(tools)})
        values: dict[str, Any] = {
            **definition.to_dict(),
            "provider": provider,
            "model": model,
            "memory_strategy": memory_strategy,
            # Copies of what is well-formed; anything else is named by the validation.
            "memory_config": _copy(memory_config),
            "fallbacks": (
                [_copy(f) for f in fallbacks]
                if isinstance(fallbacks, list | tuple)
                else fallbacks or []
            ),
            "settings": _copy(settings),
            "metadata": dict(metadata or {}),
            "client_tools": list(client_tools or ()),
            "instructions": instructions,
            "assistant_fields": dict(assistant_fields or {}),
            "created_by": created_by,
        }
        owner = self._scope.owner(tenant_id, self.settings.default_tenant)
        self._validate_agent_values(values, tenant=owner)
        async with self._tx("create_agent") as conn:
            record = await agent_rows.insert_agent(conn, owner, values)
        return record.id

    async def get_agent(self, agent_id: UUID | str) -> AgentRecord:
        ident = parse_uuid(agent_id, "agent")
        async with self._read("get_agent") as conn:
            return await agent_rows.get_agent(conn, self._scope, ident)

    async def update_agent(self, agent_id: UUID | str, **changes: Any) -> AgentRecord:
        """Change any field of the definition or configuration; validated as on create."""
        ident = parse_uuid(agent_id, "agent")
        if "definition" in changes:
            definition = changes.pop("definition")
            if not isinstance(definition, AgentDefinition):
                raise ValidationError(
                    "definition must be an AgentDefinition", details={"field": "definition"}
                )
            changes = {**definition.to_dict(), **changes}
        allowed = set(agent_rows.DEFINITION_FIELDS) | set(agent_rows.CONFIG_FIELDS)
        unknown = set(changes) - allowed
        if unknown:
            raise ValidationError(
                f"unknown agent field(s): {', '.join(sorted(unknown))}",
                details={"fields": sorted(unknown), "allowed": sorted(allowed)},
            )
        if not changes:
            return await self.get_agent(ident)
        async with self._tx("update_agent") as conn:
            current = await agent_rows.get_agent(conn, self._scope, ident)
            merged_def = {**current.definition.to_dict()}
            merged_def.update(
                {k: v for k, v in changes.items() if k in agent_rows.DEFINITION_FIELDS}
            )
            definition = AgentDefinition.from_dict(merged_def)  # validates
            values = {
                "provider": current.provider,
                "model": current.model,
                "memory_strategy": current.memory_strategy,
                "memory_config": current.memory_config,
                "fallbacks": current.fallbacks,
                "settings": current.settings,
                "client_tools": current.client_tools,
                **{k: v for k, v in changes.items() if k in agent_rows.CONFIG_FIELDS},
                **definition.to_dict(),
            }
            self._validate_agent_values(values, changed=set(changes), tenant=current.tenant_id)
            return await agent_rows.update_agent(conn, self._scope, ident, values)

    async def list_agents(
        self, *, limit: int = 50, cursor: str | None = None, include_inactive: bool = False
    ) -> Page[AgentRecord]:
        async with self._read("list_agents") as conn:
            return await agent_rows.list_agents(
                conn,
                self._scope,
                limit=_page_limit(limit),
                cursor=cursor,
                include_inactive=include_inactive,
            )

    async def page_agents(
        self,
        *,
        limit: int = 20,
        order: str = "desc",
        after: UUID | str | None = None,
        before: UUID | str | None = None,
    ) -> tuple[list[AgentRecord], bool]:
        """Active agents by creation time in *order*, after/before the agents with those
        ids (OpenAI's list cursors), and whether more follow the page."""
        if order not in ("asc", "desc"):
            raise ValidationError("order must be 'asc' or 'desc'", details={"field": "order"})
        async with self._read("page_agents") as conn:
            return await agent_rows.page_agents(
                conn,
                self._scope,
                limit=_page_limit(limit),
                order=order,
                after=parse_uuid(after, "agent") if after is not None else None,
                before=parse_uuid(before, "agent") if before is not None else None,
            )

    async def deactivate_agent(self, agent_id: UUID | str) -> AgentRecord:
        """Soft delete: the agent stays (with its threads) but cannot run."""
        return await self.update_agent(agent_id, is_active=False)

    async def delete_agent(self, agent_id: UUID | str) -> None:
        """Delete the agent with all its threads, messages and agent-scoped memory."""
        ident = parse_uuid(agent_id, "agent")
        async with self._tx("delete_agent") as conn:
            threads = await thread_rows.list_threads(
                conn,
                self._scope,
                agent_id=ident,
                user_id=None,
                archived=None,
                limit=MAX_PAGE,
                cursor=None,
            )
            await agent_rows.get_agent(conn, self._scope, ident)
            await self._delete_threads_of_agent(conn, ident, threads.items)
            await agent_rows.delete_agent(conn, self._scope, ident)

    async def _delete_threads_of_agent(
        self, conn: AsyncConnection, agent_id: UUID, first_page: list[ThreadRecord]
    ) -> None:
        """Delete the agent's threads one by one so user byte totals stay exact."""
        page = first_page
        while page:
            for thread in page:
                await self._delete_thread_in(conn, thread.id)
            page = (
                await thread_rows.list_threads(
                    conn,
                    self._scope,
                    agent_id=agent_id,
                    user_id=None,
                    archived=None,
                    limit=MAX_PAGE,
                    cursor=None,
                )
            ).items

    def _validate_agent_values(
        self,
        values: dict[str, Any],
        changed: Collection[str] | None = None,
        *,
        tenant: str | None = None,
    ) -> None:
        """Everything a run reads of the agent, checked before it is saved: a value no run
        could use is a ``ValidationError`` naming its field (``settings.tool_timeout``).

        *changed* (updates): the fields being changed. ``settings`` and ``fallbacks`` are
        only re-checked when they or what they depend on change, so an agent saved before
        these checks can still be renamed or deactivated (its runs name the bad field).
        """
        from ai_agents.memory import get_strategy
        from ai_agents.providers.registry import get_registry
        from ai_agents.providers.routing import AUTO, validate_agent_routing

        for name in ("provider", "model", "memory_strategy"):
            if not isinstance(values.get(name), str) or not values[name].strip():
                raise ValidationError(f"{name} must be a non-empty string", details={"field": name})
        _check_instructions(values.get("instructions"))
        if not isinstance(values.get("assistant_fields", {}), dict):
            raise ValidationError(
                "assistant_fields must be a mapping", details={"field": "assistant_fields"}
            )
        if not isinstance(values.get("memory_config"), dict):
            raise ValidationError(
                "memory_config must be a mapping", details={"field": "memory_config"}
            )
        fallbacks = values.get("fallbacks") or ()
        if not isinstance(fallbacks, list | tuple):
            raise ValidationError(
                "fallbacks must be a list of {provider, model}", details={"field": "fallbacks"}
            )
        checked = fallbacks if changed is None or "fallbacks" in changed else ()
        for i, fallback in enumerate(checked):
            if not isinstance(fallback, dict) or set(fallback) != {"provider", "model"}:
                raise ValidationError(
                    f"fallbacks[{i}] must be a mapping with exactly 'provider' and 'model'",
                    details={"field": f"fallbacks[{i}]"},
                )
            for key in ("provider", "model"):
                if not isinstance(fallback[key], str) or not fallback[key].strip():
                    raise ValidationError(
                        f"fallbacks[{i}].{key} must be a non-empty string",
                        details={"field": f"fallbacks[{i}].{key}"},
                    )
        registry = get_registry()
        provider, model, settings = values["provider"], values["model"], values.get("settings")
        if not isinstance(settings, dict):
            raise ValidationError("settings must be a mapping", details={"field": "settings"})
        if changed is None or {"settings", "provider", "model"} & set(changed):
            # Routed agents choose their model per run (the run caps the output there).
            routed = provider == AUTO or settings.get("routing") is not None
            primary = None if routed else registry.find(provider, model)
            validate_settings(
                settings,
                ceilings=Ceilings.of(self.settings),
                model_max_output=primary.max_output if primary is not None else None,
            )

        strategy = get_strategy(values["memory_strategy"])
        strategy.validate_config(values["memory_config"])
        memory = values["memory_config"]
        with prefixed("settings"):
            # provider="auto" / settings["routing"]: the policy's targets instead
            routed_targets = validate_agent_routing(
                provider, model, settings, is_local=registry.is_local
            )
        targets = [(p, m, "provider") for p, m in routed_targets]
        targets += [(f["provider"], f["model"], f"fallbacks[{i}]") for i, f in enumerate(fallbacks)]
        if values["memory_strategy"] == "summarize":
            if provider == AUTO and "summary_provider" not in memory:
                raise ValidationError(
                    "the summarize strategy with provider='auto' needs "
                    "memory_config.summary_provider and summary_model",
                    details={"field": "memory_config.summary_provider"},
                )
            targets.append(
                (
                    memory.get("summary_provider", provider),
                    memory.get("summary_model", model),
                    "memory_config.summary_provider",
                )
            )
        runner = self.runner
        for target_provider, target_model, where in targets:
            # Unknown, not enabled (for this tenant), or a local model path outside the
            # operator's model directories: a ValidationError naming the field.
            runner.providers.check(target_provider, target_model, tenant=tenant, field=where)
            registry.get(target_provider, target_model)  # UnknownModelError names the fix
        runner.tools.resolve(values.get("tools") or ())
        if "client_tools" in values:
            from ai_agents.runs.overrides import parse_client_tools

            values["client_tools"] = list(parse_client_tools(values["client_tools"]))
            clash = sorted(
                {t["name"] for t in values["client_tools"]} & set(values.get("tools") or ())
            )
            if clash:
                raise ValidationError(
                    f"client_tools and tools both name {', '.join(clash)}",
                    details={"field": "client_tools"},
                )

    # --- runs -------------------------------------------------------------------------

    @property
    def runner(self) -> AgentRunner:
        """The store's runner (created on first use; holds provider clients and limiters)."""
        if self._shared.runner is None:
            from ai_agents.runner import AgentRunner

            self._shared.runner = AgentRunner(
                self.runtime, tools=self._shared.tools, tool_store=self
            )
            self._install_memory(self._shared.runner)
            self._install_mcp(self._shared.runner)
        return self._shared.runner

    def _install_mcp(self, runner: AgentRunner) -> None:
        """The tools of the MCP servers configured on the agent (docs/tools.md)."""
        from ai_agents.mcp.source import McpToolSource

        runner.add_tool_source(
            McpToolSource(self.settings, loader=self.for_tenant(None)._load_mcp_servers)
        )

    def _install_memory(self, runner: AgentRunner) -> None:
        """Memory the agent keeps: the memory tools, and extraction after turns."""
        from ai_agents.memory.extraction import enqueue_extraction
        from ai_agents.memory.tools import MemoryToolSource

        runner.add_tool_source(MemoryToolSource(self.runtime))
        store = self.for_tenant(None)

        async def extract_after(ticket: RunTicket, completion: Completion) -> None:
            await enqueue_extraction(store, ticket, completion)

        runner.runs.after_turn.append(extract_after)

    @property
    def tools(self) -> ToolRegistry:
        return self.runner.tools

    def register_provider(self, name: str, provider: Provider) -> None:
        """Use *provider* for agents whose ``provider`` is *name* (e.g. a test model)."""
        from ai_agents.providers.registry import get_registry

        registry = get_registry()
        # A directly registered provider (a test model, an in-house server) gets the
        # documented local defaults for models the registry does not list; the
        # vendors' own names keep their strict lookups.
        if name not in _VENDOR_PROVIDERS and not registry.is_local(name):
            registry.register_local_provider(name)
        self.runner.register_provider(name, provider)

    def _options(
        self,
        *,
        on_busy: str,
        busy_timeout: float,
        metadata: dict[str, Any] | None,
        overrides: dict[str, Any],
        idempotency_key: str | None = None,
        stream: bool = False,
    ) -> RunOptions:
        from ai_agents.runner import RunOptions
        from ai_agents.runs.overrides import parse_overrides

        if metadata is not None and not isinstance(metadata, dict):
            raise ValidationError("metadata must be a mapping", details={"field": "metadata"})
        return RunOptions(
            on_busy=_busy_policy(on_busy),
            busy_timeout=_busy_timeout(busy_timeout),
            idempotency_key=idempotency_key,
            metadata=dict(metadata or {}),
            stream=stream,
            overrides=parse_overrides(overrides),
        )

    async def run(
        self,
        thread_id: UUID | str,
        text: str | None,
        *,
        on_busy: str = "enqueue",
        busy_timeout: float = 300.0,
        idempotency_key: str | None = None,
        metadata: dict[str, Any] | None = None,
        **overrides: Any,
    ) -> AgentResponse:
        """Run one turn: the agent answers *text* on the thread; the whole turn is saved.

        *text* ``None``: a run without input, answering the thread as it stands (messages
        added with :meth:`add_messages` first: OpenAI's add-messages-then-run flow).

        The run is a row (``response.run_id``; :meth:`get_run`, :meth:`cancel_run`).
        ``on_busy``: ``"enqueue"`` (default) waits (holding no database connection) for
        a run already on the thread to finish; ``"reject"`` raises
        :class:`ThreadBusyError` at once. Keyword overrides change this run only:
        ``provider``/``model``, ``instructions``, ``additional_instructions``, ``tools``,
        ``client_tools``, ``tool_choice``, ``parallel_tool_calls``, ``temperature``,
        ``top_p``, ``max_prompt_tokens``, ``max_completion_tokens``, ``truncation``,
        ``response_format`` (see ``docs/runs.md``). When the model calls a client tool
        the response has ``status="requires_action"``: answer it with
        :meth:`submit_tool_outputs`.
        """
        options = self._options(
            on_busy=on_busy,
            busy_timeout=busy_timeout,
            metadata=metadata,
            overrides=overrides,
            idempotency_key=idempotency_key,
        )
        return await self.runner.run(self._scope, thread_id, text, options)

    async def stream(
        self,
        thread_id: UUID | str,
        text: str | None,
        *,
        on_busy: str = "enqueue",
        busy_timeout: float = 300.0,
        idempotency_key: str | None = None,
        metadata: dict[str, Any] | None = None,
        **overrides: Any,
    ) -> AsyncGenerator[RunEvent, None]:
        """Like :meth:`run`, yielding ``run_started`` (with the run id), text deltas, tool
        calls, tool results, then done.

        The run executes in its own task; closing the stream early cancels it (nothing of
        its turn is saved). Wrap it in ``contextlib.aclosing`` when you may stop early.
        """
        options = self._options(
            on_busy=on_busy,
            busy_timeout=busy_timeout,
            metadata=metadata,
            overrides=overrides,
            idempotency_key=idempotency_key,
            stream=True,
        )
        async with aclosing(self.runner.events(self._scope, thread_id, text, options)) as events:
            async for event in events:
                yield event

    async def get_run(self, run_id: UUID | str) -> RunRecord:
        """A run: status, model used, overrides, required action, error, usage, times.
        A run whose process died reads as ``expired`` once its lease has passed."""
        return await self.runner.get_run(self._scope, run_id)

    async def list_runs(
        self,
        thread_id: UUID | str,
        *,
        limit: int = 20,
        cursor: str | None = None,
        order: str = "desc",
    ) -> Page[RunRecord]:
        """The thread's runs, newest first (``order="asc"``: oldest first)."""
        ident = parse_uuid(thread_id, "thread")
        if order not in ("asc", "desc"):
            raise ValidationError("order must be 'asc' or 'desc'", details={"field": "order"})
        return await self.runner.runs.list_runs(
            self._scope, ident, limit=_page_limit(limit), cursor=cursor, order=order
        )

    async def list_run_steps(self, run_id: UUID | str) -> list[RunStep]:
        """The run's steps in order: each model call, each batch of tool calls."""
        return await self.runner.list_steps(self._scope, run_id)

    async def cancel_run(self, run_id: UUID | str) -> RunRecord:
        """Cancel a run wherever it is: queued, in progress (in any process; the model call
        in flight is abandoned), streaming, or waiting in ``requires_action``. Nothing of
        its turn is saved. Returns the run (``cancelling`` until its process stops it)."""
        record = await self.runner.cancel(self._scope, run_id)
        if record.job_id is not None:
            await self.jobs.cancel(record.job_id, scope=self._scope, cancel_run=False)
        return record

    async def submit_tool_outputs(
        self,
        run_id: UUID | str,
        tool_outputs: Sequence[ToolOutput | dict[str, Any]],
        *,
        stream: bool = False,
    ) -> AgentResponse:
        """Resume a run in ``requires_action`` with one output per client tool call
        (``{"tool_call_id", "output"}``); any process may resume it. Returns the run's
        next response (completed, or ``requires_action`` again)."""
        from ai_agents.runner import RunOptions

        return await self.runner.submit_tool_outputs(
            self._scope, run_id, tool_outputs, RunOptions(stream=stream)
        )

    async def stream_tool_outputs(
        self, run_id: UUID | str, tool_outputs: Sequence[ToolOutput | dict[str, Any]]
    ) -> AsyncGenerator[RunEvent, None]:
        """:meth:`submit_tool_outputs`, streamed like :meth:`stream`."""
        from ai_agents.runner import RunOptions

        events = self.runner.stream_tool_outputs(
            self._scope, run_id, tool_outputs, RunOptions(stream=True)
        )
        async with aclosing(events) as stream:
            async for event in stream:
                yield event

    # --- threads ----------------------------------------------------------------------

    async def create_thread(
        self,
        agent_id: UUID | str,
        *,
        user_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        title: str | None = None,
    ) -> UUID:
        ident = parse_uuid(agent_id, "agent")
        if user_id is not None and (not isinstance(user_id, str) or not user_id):
            raise ValidationError(
                "user_id must be a non-empty string", details={"field": "user_id"}
            )
        if metadata is not None and not isinstance(metadata, dict):
            raise ValidationError("metadata must be a mapping", details={"field": "metadata"})
        async with self._tx("create_thread") as conn:
            agent = await agent_rows.get_agent(conn, self._scope, ident)
            record = await thread_rows.insert_thread(
                conn,
                {
                    "tenant_id": agent.tenant_id,
                    "agent_id": ident,
                    "user_id": user_id,
                    "title": title,
                    "metadata": dict(metadata or {}),
                },
            )
        return record.id

    async def create_unassigned_thread(
        self,
        *,
        user_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        title: str | None = None,
        tenant_id: str | None = None,
    ) -> UUID:
        """A thread no agent answers yet (an OpenAI thread): it belongs to the tenant's
        placeholder agent, which cannot run, until :meth:`assign_agent` (or a ``/v1``
        run naming an assistant) gives it one. Messages can be added meanwhile."""
        if user_id is not None and (not isinstance(user_id, str) or not user_id):
            raise ValidationError(
                "user_id must be a non-empty string", details={"field": "user_id"}
            )
        if metadata is not None and not isinstance(metadata, dict):
            raise ValidationError("metadata must be a mapping", details={"field": "metadata"})
        owner = self._scope.owner(tenant_id, self.settings.default_tenant)
        async with self._tx("create_thread") as conn:
            holder = await assignment.placeholder_agent(conn, owner)
            record = await thread_rows.insert_thread(
                conn,
                {
                    "tenant_id": owner,
                    "agent_id": holder,
                    "user_id": user_id,
                    "title": title,
                    "metadata": dict(metadata or {}),
                },
            )
        return record.id

    async def assign_agent(self, thread_id: UUID | str, agent_id: UUID | str) -> None:
        """Make *agent_id* the thread's agent: its next runs use it. The agent must be
        active and of the thread's tenant; while a run holds the thread (in progress,
        waiting for tool outputs, cancelling) this is a ``ThreadBusyError``."""
        thread = parse_uuid(thread_id, "thread")
        agent = parse_uuid(agent_id, "agent")
        async with self._tx("assign_agent") as conn:
            await assignment.assign_agent(conn, self._scope, thread, agent)

    async def get_thread(self, thread_id: UUID | str) -> ThreadRecord:
        ident = parse_uuid(thread_id, "thread")
        async with self._read("get_thread") as conn:
            return await thread_rows.get_thread(conn, self._scope, ident)

    async def list_threads(
        self,
        *,
        agent_id: UUID | str | None = None,
        user_id: str | None = None,
        archived: bool | None = False,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[ThreadRecord]:
        """Threads most recently used first; ``archived=None`` lists both kinds."""
        agent = parse_uuid(agent_id, "agent") if agent_id is not None else None
        async with self._read("list_threads") as conn:
            return await thread_rows.list_threads(
                conn,
                self._scope,
                agent_id=agent,
                user_id=user_id,
                archived=archived,
                limit=_page_limit(limit),
                cursor=cursor,
            )

    async def update_thread(
        self,
        thread_id: UUID | str,
        *,
        metadata: dict[str, Any] | None = None,
        title: str | None = None,
        provider_state: dict[str, Any] | None = None,
        memory_state: dict[str, Any] | None = None,
    ) -> ThreadRecord:
        ident = parse_uuid(thread_id, "thread")
        values: dict[str, Any] = {}
        for name, value in (
            ("metadata", metadata),
            ("provider_state", provider_state),
            ("memory_state", memory_state),
        ):
            if value is not None:
                if not isinstance(value, dict):
                    raise ValidationError(f"{name} must be a mapping", details={"field": name})
                values[name] = value
        if title is not None:
            values["title"] = title
        async with self._tx("update_thread") as conn:
            if not values:
                return await thread_rows.get_thread(conn, self._scope, ident)
            return await thread_rows.update_thread(conn, self._scope, ident, values)

    async def change_thread_metadata(
        self,
        thread_id: UUID | str,
        change: Callable[[AsyncConnection, dict[str, Any]], Awaitable[dict[str, Any] | None]],
    ) -> ThreadRecord:
        """Read, change and write a thread's metadata with its row locked throughout.

        *change* gets the transaction's connection (whatever else it writes there commits
        or rolls back with the metadata; it should use no other connection, which could
        leave the pool empty while this one waits) and the current metadata, and returns
        the new metadata (``None``: no change).
        Concurrent callers on one thread run one after the other, each seeing what the one
        before wrote, so none overwrites another's change (``update_thread`` replaces the
        metadata it is given, whatever was written in between).
        """
        ident = parse_uuid(thread_id, "thread")
        async with self._tx("change_thread_metadata") as conn:
            thread = await thread_rows.get_thread(conn, self._scope, ident, for_update=True)
            changed = await change(conn, dict(thread.metadata))
            if changed is None:
                return thread
            if not isinstance(changed, dict):
                raise ValidationError("metadata must be a mapping", details={"field": "metadata"})
            return await thread_rows.update_thread(conn, self._scope, ident, {"metadata": changed})

    async def archive_thread(self, thread_id: UUID | str) -> ThreadRecord:
        return await self._set_archived(thread_id, True)

    async def unarchive_thread(self, thread_id: UUID | str) -> ThreadRecord:
        return await self._set_archived(thread_id, False)

    async def _set_archived(self, thread_id: UUID | str, archived: bool) -> ThreadRecord:
        ident = parse_uuid(thread_id, "thread")
        async with self._tx("archive_thread") as conn:
            return await thread_rows.update_thread(conn, self._scope, ident, {"archived": archived})

    async def delete_thread(self, thread_id: UUID | str) -> None:
        ident = parse_uuid(thread_id, "thread")
        async with self._tx("delete_thread") as conn:
            await thread_rows.get_thread(conn, self._scope, ident)
            await self._delete_thread_in(conn, ident)

    async def _delete_thread_in(self, conn: AsyncConnection, thread_id: UUID) -> None:
        record = await thread_rows.delete_thread(conn, self._scope, thread_id)
        await conn.execute(
            user_usage.update()
            .where(
                user_usage.c.tenant_id == record.tenant_id,
                user_usage.c.user_id == (record.user_id or ""),
            )
            .values(total_bytes=user_usage.c.total_bytes - record.total_bytes)
        )

    async def fork_thread(
        self,
        thread_id: UUID | str,
        *,
        up_to_message_id: UUID | str | None = None,
        user_id: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> UUID:
        """Copy the thread's messages up to (and including) a message into a new thread.

        The cut never separates a tool call from its results: it extends over the tool
        results that follow it. The new thread records where it came from.
        """
        ident = parse_uuid(thread_id, "thread")
        async with self._tx("fork_thread") as conn:
            source = await thread_rows.get_thread(conn, self._scope, ident, for_update=True)
            up_to = None
            if up_to_message_id is not None:
                up_to = await message_rows.seq_of(
                    conn, ident, parse_uuid(up_to_message_id, "message")
                )
            cut = await thread_rows.fork_cut_seq(conn, source, up_to)
            fork = await thread_rows.insert_thread(
                conn,
                {
                    "tenant_id": source.tenant_id,
                    "agent_id": source.agent_id,
                    "user_id": user_id if user_id is not None else source.user_id,
                    "title": source.title,
                    "metadata": dict(metadata if metadata is not None else source.metadata),
                    "forked_from_id": source.id,
                    "forked_at_seq": cut,
                },
            )
            count, size, last_seq = await thread_rows.copy_messages(conn, source.id, fork.id, cut)
            limits = await self.runtime.size_limits(conn, source.tenant_id)
            if size > limits.thread_bytes:
                raise LimitExceeded("thread", limits.thread_bytes, 0, size)
            await message_rows.charge_user(conn, fork.tenant_id, fork.user_id, size, limits)
            await thread_rows.update_thread(
                conn,
                self._scope,
                fork.id,
                {"message_count": count, "total_bytes": size, "last_seq": last_seq},
            )
        return fork.id

    # --- messages ---------------------------------------------------------------------

    async def add_message(
        self,
        thread_id: UUID | str,
        role: Role,
        content: str | None = None,
        *,
        tool_calls: Sequence[ToolCall] | None = None,
        tool_call_id: str | None = None,
        tool_name: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Message:
        """Append one message; counters and size limits are checked in the same transaction."""
        message = Message(
            role=role,
            content=content,
            tool_calls=list(tool_calls or ()),
            tool_call_id=tool_call_id,
            tool_name=tool_name,
            metadata=dict(metadata or {}),
        )
        (saved,) = await self.add_messages(thread_id, [message])
        return saved

    async def add_messages(
        self,
        thread_id: UUID | str,
        batch: Sequence[Message],
        *,
        run_id: UUID | None = None,
        idempotency_key: str | None = None,
    ) -> list[Message]:
        """Append several messages atomically, in order (all or nothing)."""
        ident = parse_uuid(thread_id, "thread")
        async with self._autocommit("add_messages") as conn:
            if not batch:  # nothing to add, but an unknown thread still fails
                await self._check_thread_visible(conn, ident)
                return []
            tenant = await self._thread_tenant(conn, ident)
            limits = await self.runtime.size_limits(conn, tenant)
            return await message_rows.append(
                conn,
                self._scope,
                ident,
                batch,
                limits,
                run_id=run_id,
                idempotency_key=idempotency_key,
            )

    async def _thread_tenant(self, conn: AsyncConnection, thread_id: UUID) -> str:
        if self._scope.tenant_id is not None:
            return self._scope.tenant_id
        return (await thread_rows.get_thread(conn, self._scope, thread_id)).tenant_id

    async def list_messages(
        self,
        thread_id: UUID | str,
        *,
        limit: int = 50,
        after: int | None = None,
        before: int | None = None,
        order: str = "asc",
    ) -> Page[Message]:
        """Messages by seq. ``after``/``before`` are exclusive seq cursors (stable under appends)."""
        ident = parse_uuid(thread_id, "thread")
        if order not in ("asc", "desc"):
            raise ValidationError("order must be 'asc' or 'desc'", details={"field": "order"})
        for name, value in (("after", after), ("before", before)):
            if value is not None and (not isinstance(value, int) or value < 0):
                raise ValidationError(f"{name} must be a non-negative seq", details={"field": name})
        limit = _page_limit(limit)
        # The hottest read of the API: one driver statement, no SQLAlchemy Connection.
        with translate_errors("list_messages"):
            async with driver_connection(self.engine) as apg:
                return await message_rows.page(
                    apg,
                    self._scope,
                    ident,
                    limit=limit,
                    after=after,
                    before=before,
                    order=order,  # type: ignore[arg-type]
                )

    async def last_messages(self, thread_id: UUID | str, n: int) -> list[Message]:
        """The last *n* messages, oldest first (one index range scan, any thread length)."""
        ident = parse_uuid(thread_id, "thread")
        async with self._read("last_messages") as conn:
            await self._check_thread_visible(conn, ident)
            return await message_rows.last_n(conn, ident, _page_limit(n))

    async def first_messages(self, thread_id: UUID | str, m: int) -> list[Message]:
        ident = parse_uuid(thread_id, "thread")
        async with self._read("first_messages") as conn:
            await self._check_thread_visible(conn, ident)
            return await message_rows.first_m(conn, ident, _page_limit(m))

    async def _check_thread_visible(self, conn: AsyncConnection, thread_id: UUID) -> None:
        await thread_rows.get_thread(conn, self._scope, thread_id)

    # --- OpenAI's view of messages (/v1; ai_agents.db.message_edits) ----------------------

    async def page_listed_messages(
        self,
        thread_id: UUID | str,
        *,
        limit: int = 20,
        order: str = "desc",
        after: UUID | None = None,
        before: UUID | None = None,
        run_id: UUID | None = None,
    ) -> tuple[list[Message], bool, dict[UUID, UUID]]:
        """The user and assistant text messages (OpenAI's list: no tool exchanges) by
        seq in *order*, after/before the messages with those ids, only *run_id*'s when
        given; whether more follow; and the agent of each run on the page (by run id)."""
        ident = parse_uuid(thread_id, "thread")
        if order not in ("asc", "desc"):
            raise ValidationError("order must be 'asc' or 'desc'", details={"field": "order"})
        async with self._read("list_messages") as conn:
            items, more = await message_edits.page_listed(
                conn,
                self._scope,
                ident,
                limit=_page_limit(limit),
                order=order,
                after=after,
                before=before,
                run_id=run_id,
            )
            agents = await message_edits.run_agents(
                conn, self._scope, message_edits.run_ids_of(items)
            )
        return items, more, agents

    async def get_message(
        self, thread_id: UUID | str, message_id: UUID | str
    ) -> tuple[Message, UUID | None]:
        """One message of the thread and the agent of the run that saved it (if any)."""
        thread = parse_uuid(thread_id, "thread")
        ident = parse_uuid(message_id, "message")
        async with self._read("get_message") as conn:
            message = await message_edits.get_message(conn, self._scope, thread, ident)
            agents = await message_edits.run_agents(
                conn, self._scope, message_edits.run_ids_of([message])
            )
        return message, agents.get(message.run_id) if message.run_id else None

    async def set_message_metadata(
        self,
        thread_id: UUID | str,
        message_id: UUID | str,
        metadata: dict[str, Any],
        *,
        keep: Collection[str] = (),
    ) -> Message:
        """Replace a message's metadata (the current values of the keys in *keep* stay);
        nothing else of the message changes."""
        thread = parse_uuid(thread_id, "thread")
        ident = parse_uuid(message_id, "message")
        if not isinstance(metadata, dict):
            raise ValidationError("metadata must be a mapping", details={"field": "metadata"})
        where = nul_path(metadata, "metadata")
        if where is not None:
            raise ValidationError(
                f"{where} contains a NUL character (U+0000), which cannot be stored",
                details={"field": where},
            )
        async with self._tx("set_message_metadata") as conn:
            return await message_edits.set_metadata(
                conn, self._scope, thread, ident, metadata, keep
            )

    async def delete_message(self, thread_id: UUID | str, message_id: UUID | str) -> Message:
        """Delete one user or assistant text message; the thread's ``message_count`` and
        ``total_bytes`` and its user's byte total stay exact. A message of a tool exchange
        is a ``ValidationError``; a run holding the thread, a ``ThreadBusyError``."""
        thread = parse_uuid(thread_id, "thread")
        ident = parse_uuid(message_id, "message")
        async with self._tx("delete_message") as conn:
            return await message_edits.delete_listed(conn, self._scope, thread, ident)

    async def holding_run(self, thread_id: UUID | str) -> UUID | None:
        """The run holding the thread (in progress, waiting for tool outputs,
        cancelling), if any."""
        ident = parse_uuid(thread_id, "thread")
        async with self._read("holding_run") as conn:
            return await message_edits.holding_run(conn, self._scope, ident)

    # --- user memory ------------------------------------------------------------------

    async def set_memory(
        self, user_id: str, key: str, value: str, *, agent_id: UUID | str | None = None
    ) -> None:
        """Remember ``key = value`` for the user (per agent, or for all agents when None)."""
        agent = await self._memory_scope(user_id, key, agent_id)
        if not isinstance(value, str):
            raise ValidationError("memory value must be a string", details={"field": "value"})
        async with self._tx("set_memory") as conn:
            await memory_rows.set_value(conn, self._owner(), user_id, agent, key, value)

    async def get_memory(
        self, user_id: str, key: str, *, agent_id: UUID | str | None = None
    ) -> str | None:
        agent = await self._memory_scope(user_id, key, agent_id)
        async with self._read("get_memory") as conn:
            return await memory_rows.get_value(conn, self._owner(), user_id, agent, key)

    async def list_memory(
        self, user_id: str, *, agent_id: UUID | str | None = None
    ) -> dict[str, str]:
        agent = await self._memory_scope(user_id, "_", agent_id)
        async with self._read("list_memory") as conn:
            return await memory_rows.list_values(conn, self._owner(), user_id, agent)

    async def delete_memory(
        self, user_id: str, key: str | None = None, *, agent_id: UUID | str | None = None
    ) -> int:
        """Delete one key (or, with ``key=None``, all of the user's memory for that agent)."""
        agent = await self._memory_scope(user_id, key or "_", agent_id)
        async with self._tx("delete_memory") as conn:
            return await memory_rows.delete_value(conn, self._owner(), user_id, agent, key)

    def _owner(self) -> str:
        if self._scope.tenant_id is None:
            raise UsageError("user memory needs a tenant: use store.for_tenant(tenant_id)")
        return self._scope.tenant_id

    async def _memory_scope(
        self, user_id: str, key: str, agent_id: UUID | str | None
    ) -> UUID | None:
        if not isinstance(user_id, str) or not user_id:
            raise ValidationError(
                "user_id must be a non-empty string", details={"field": "user_id"}
            )
        if not isinstance(key, str) or not key:
            raise ValidationError("memory key must be a non-empty string", details={"field": "key"})
        if agent_id is None:
            return None
        agent = parse_uuid(agent_id, "agent")
        await self.get_agent(agent)  # visible to this tenant?
        return agent

    # --- MCP servers on agents (docs/tools.md) ---------------------------------------

    async def add_mcp_server(
        self,
        agent_id: UUID | str,
        *,
        name: str,
        transport: str,
        url: str | None = None,
        command: str | None = None,
        headers: Mapping[str, str] | None = None,
        bearer_token: str | None = None,
        allowed_tools: Sequence[str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - each tool call's limit, stored
    ) -> McpServerInfo:
        """Give the agent the tools of an MCP server; its secrets are stored encrypted.

        ``url`` (``streamable_http``/``sse``) must name a host of
        ``settings.mcp_allowed_hosts`` resolving to public addresses; ``command``
        (``stdio``) a name of ``settings.mcp_stdio_commands``. The answer names the
        headers and says whether a token is set, never their values.
        """
        from ai_agents.mcp import storage as mcp_storage

        ident = parse_uuid(agent_id, "agent")
        server = await mcp_storage.validate_server(
            self.settings,
            name=name,
            transport=transport,
            url=url,
            command=command,
            headers=headers,
            bearer_token=bearer_token,
            allowed_tools=allowed_tools,
            timeout=timeout,
        )
        async with self._tx("add_mcp_server") as conn:
            return await mcp_storage.insert_server(conn, self._scope, ident, server, self.settings)

    async def list_mcp_servers(self, agent_id: UUID | str) -> list[McpServerInfo]:
        """The agent's MCP servers, oldest first (without secret values)."""
        from ai_agents.mcp import storage as mcp_storage

        ident = parse_uuid(agent_id, "agent")
        async with self._read("list_mcp_servers") as conn:
            return await mcp_storage.list_servers(conn, self._scope, ident)

    async def get_mcp_server(self, agent_id: UUID | str, server_id: UUID | str) -> McpServerInfo:
        from ai_agents.mcp import storage as mcp_storage

        ident = parse_uuid(agent_id, "agent")
        server = parse_uuid(server_id, "mcp_server")
        async with self._read("get_mcp_server") as conn:
            return await mcp_storage.get_server(conn, self._scope, ident, server)

    async def remove_mcp_server(self, agent_id: UUID | str, server_id: UUID | str) -> None:
        """Remove one MCP server of the agent (its next run no longer has its tools)."""
        from ai_agents.mcp import storage as mcp_storage

        ident = parse_uuid(agent_id, "agent")
        server = parse_uuid(server_id, "mcp_server")
        async with self._tx("remove_mcp_server") as conn:
            await mcp_storage.delete_server(conn, self._scope, ident, server)

    async def rotate_mcp_secrets(self) -> int:
        """Re-encrypt every MCP server's secrets under the first key of
        ``settings.mcp_secret_key`` (admin view only: all tenants). Returns the rows."""
        from ai_agents.mcp import storage as mcp_storage

        if not self._scope.is_admin:
            raise UsageError("rotating MCP secrets needs the admin view: store.for_tenant(None)")
        async with self._tx("rotate_mcp_secrets") as conn:
            return await mcp_storage.rotate_secrets(conn, self.settings)

    async def _load_mcp_servers(self, agent: AgentRecord) -> list[McpServerConfig]:
        """The agent's MCP servers with secrets decrypted (the run-time tool source's
        loader); read again only when the agent changed since the last run here."""
        from ai_agents.mcp import storage as mcp_storage

        cache = self._shared.mcp_servers
        servers = cache.get(agent.id, agent.updated_at)
        if servers is None:
            async with self._read("load_mcp_servers") as conn:
                servers = await mcp_storage.load_mcp_servers(
                    conn, self.settings, tenant_id=agent.tenant_id, agent_id=agent.id
                )
            cache.put(agent.id, agent.updated_at, servers)
        return servers

    # --- usage ------------------------------------------------------------------------

    async def usage(
        self, *, thread_id: UUID | str | None = None, user_id: str | None = None
    ) -> UsageTotals:
        """Token and cost totals of one thread or one user (kept exact on every write)."""
        if (thread_id is None) == (user_id is None):
            raise ValidationError("give exactly one of thread_id or user_id")
        if thread_id is not None:
            thread = await self.get_thread(thread_id)
            return UsageTotals(
                thread.input_tokens, thread.output_tokens, thread.cost, thread.message_count
            )
        async with self._read("usage") as conn:
            row = (
                await conn.execute(
                    select(user_usage).where(
                        user_usage.c.tenant_id == self._owner(), user_usage.c.user_id == user_id
                    )
                )
            ).first()
        if row is None:
            return UsageTotals()
        return UsageTotals(row.input_tokens, row.output_tokens, row.cost, 0)

    # --- tenants and limits -----------------------------------------------------------

    async def set_tenant_limits(
        self,
        tenant_id: str,
        *,
        max_thread_bytes: int | None = None,
        max_user_bytes: int | None = None,
        max_total_bytes: int | None = None,
        name: str | None = None,
    ) -> None:
        """Per-tenant size limits (None: the global default from settings)."""
        values = {
            "id": tenant_id,
            "name": name,
            "max_thread_bytes": max_thread_bytes,
            "max_user_bytes": max_user_bytes,
            "max_total_bytes": max_total_bytes,
        }
        stmt = pg_insert(tenants).values(**values)
        stmt = stmt.on_conflict_do_update(
            index_elements=[tenants.c.id], set_={k: stmt.excluded[k] for k in values if k != "id"}
        )
        async with self._tx("set_tenant_limits") as conn:
            await conn.execute(stmt)
        self.runtime.forget_limits(tenant_id)

    # --- background jobs (docs/jobs.md) -----------------------------------------------

    async def enqueue_run(
        self,
        thread_id: UUID | str,
        text: str,
        *,
        priority: str = "normal",
        metadata: dict[str, Any] | None = None,
        **overrides: Any,
    ) -> UUID:
        """Queue a run of *text* on the thread for the workers; returns the job id at once.

        The job's run exists from now on, ``queued`` (``(await store.get_job(id)).run_id``);
        keyword overrides apply to it as in :meth:`run`.
        """
        return (
            await self.submit_run(
                thread_id, text, priority=priority, metadata=metadata, **overrides
            )
        ).id

    async def submit_run(
        self,
        thread_id: UUID | str,
        text: str,
        *,
        priority: str = "normal",
        metadata: dict[str, Any] | None = None,
        **overrides: Any,
    ) -> JobRecord:
        """:meth:`enqueue_run`, answering the job record itself (as it was committed)."""
        from ai_agents.runs.overrides import parse_overrides

        parsed = parse_overrides(overrides)
        self.runner.check_overrides(parsed)
        return await self.jobs.submit(
            thread_id,
            text,
            priority=priority,
            metadata=metadata,
            scope=self._scope,
            overrides=parsed,
        )

    async def get_job(self, job_id: UUID | str) -> JobRecord:
        """A background job: status, attempts, timings, and its answer or error."""
        return await self.jobs.get_job(job_id, scope=self._scope)

    async def cancel_job(self, job_id: UUID | str) -> JobRecord:
        """Cancel a job: a queued one never starts, a running one stops at a safe point."""
        return await self.jobs.cancel(job_id, scope=self._scope)


def _busy_timeout(value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0.001:
        raise ValidationError(
            "busy_timeout must be a number of seconds >= 0.001", details={"field": "busy_timeout"}
        )
    return float(value)


def _copy(value: Any) -> Any:
    """A mapping argument of ``create_agent`` as a dict (``None``: empty); anything else
    unchanged, for the validation to name."""
    if value is None:
        return {}
    return dict(value) if isinstance(value, Mapping) else value


def _busy_policy(value: str) -> Any:
    if value not in ("enqueue", "reject"):
        raise ValidationError("on_busy must be 'enqueue' or 'reject'", details={"field": "on_busy"})
    return value


#: The longest ``instructions`` an agent may have (OpenAI's assistants limit).
MAX_AGENT_INSTRUCTIONS = 256_000


def _check_instructions(value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        raise ValidationError("instructions must be a string", details={"field": "instructions"})
    if len(value) > MAX_AGENT_INSTRUCTIONS:
        raise ValidationError(
            f"instructions are too long ({len(value)} characters; the limit is "
            f"{MAX_AGENT_INSTRUCTIONS})",
            details={"field": "instructions"},
        )
    if "\x00" in value:
        raise ValidationError(
            "instructions must not contain NUL characters", details={"field": "instructions"}
        )
