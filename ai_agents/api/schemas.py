"""Request and response bodies (msgspec structs: validated on decode, documented in OpenAPI).

Request structs forbid unknown fields, so a misspelled field is a 400 naming it instead of
being silently ignored. Response structs are built from the store's records by the
``*_out`` functions below, so what is sent always matches the published schema.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec
from msgspec import UNSET, Meta, UnsetType

from ai_agents.api.errors import public_stored_error
from ai_agents.api.keys import ApiKey
from ai_agents.jobs.records import JobRecord
from ai_agents.jobs.tables import Priority
from ai_agents.mcp.storage import McpServerInfo
from ai_agents.messages import Message
from ai_agents.records import AgentRecord, ThreadRecord, UsageTotals
from ai_agents.runs.records import RunRecord, RunStep

NonEmpty = Annotated[str, Meta(min_length=1, max_length=10_000)]
Name = Annotated[str, Meta(min_length=1, max_length=200)]
Text = Annotated[str, Meta(max_length=100_000)]
Json = dict[str, Any]
MAX_INPUT_CHARS = 1_000_000


class In(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of request bodies."""


class Out(msgspec.Struct, kw_only=True):
    """Base of response bodies."""


# --- errors -----------------------------------------------------------------------


class ErrorBody(Out):
    """The one error schema."""

    code: str
    message: str
    details: Json
    retry_after: float | None = None


# --- agents -----------------------------------------------------------------------


class Example(In):
    user: Text
    assistant: Text


class Fallback(In):
    provider: Name
    model: Name


class ClientTool(In):
    """A function tool the caller executes: when the model calls it, the run stops in
    ``requires_action`` until its output is sent to ``POST /runs/{run_id}/tool_outputs``."""

    #: ``[a-zA-Z0-9_-]{1,64}``, unique, and not also one of the agent's server ``tools``.
    name: Name
    description: Text = ""
    #: JSON schema (``type: object``) of the arguments; default: no arguments.
    parameters: Json | None = None


class ClientToolOut(Out):
    name: str
    description: str
    parameters: Json


def _doc(text: str) -> Meta:
    return Meta(description=text)


class RetrySettings(In):
    """Retry policy of the agent's model calls (docs/providers.md); unset fields keep the
    deployment's policy."""

    max_attempts: Annotated[int, _doc(">= 1")] | UnsetType = UNSET
    base_delay: Annotated[float, _doc("seconds, >= 0")] | UnsetType = UNSET
    max_delay: Annotated[float, _doc("seconds, >= 0")] | UnsetType = UNSET
    max_total: Annotated[float, _doc("seconds, >= 0")] | UnsetType = UNSET
    jitter: Annotated[float, _doc("0 to 1")] | UnsetType = UNSET


class RoutingTarget(In):
    """One ``(provider, model)`` a routed run may call (``provider`` is not ``auto``)."""

    provider: Name
    model: Name


class RoutingSettings(In):
    """``settings.routing``: which target answers a run (docs/providers.md, "Routing").
    Needs a ``local`` or a ``cloud`` target (an agent's own concrete provider fills its
    slot); the bounds are checked when the agent is saved (422 naming the field)."""

    local: RoutingTarget | None | UnsetType = UNSET
    cloud: RoutingTarget | None | UnsetType = UNSET
    #: Runs above ``token_budget`` or ``complexity_threshold`` (default: ``cloud``).
    strong: RoutingTarget | None | UnsetType = UNSET
    prefer: (
        Annotated[
            Literal["local", "cloud", "strong"],
            _doc("The default target. Default: local when configured, else cloud."),
        ]
        | None
        | UnsetType
    ) = UNSET
    privacy_patterns: (
        Annotated[
            list[str] | dict[str, str],
            _doc(
                "RE2 regexes (a list, or {name: regex}); a run whose input or history "
                "matches one goes to local providers only. Default: built-in patterns "
                "(passwords, secrets, API keys, card numbers...); [] turns them off."
            ),
        ]
        | None
        | UnsetType
    ) = UNSET
    allow_xml_tools: (
        Annotated[bool, _doc("Give tools to a local model without native tool calls by XML.")]
        | UnsetType
    ) = UNSET
    token_budget: (
        Annotated[int, _doc("Estimated input tokens above which the strong target answers.")]
        | None
        | UnsetType
    ) = UNSET
    complexity_threshold: (
        Annotated[float, _doc("0 to 1: input complexity above which the strong target answers.")]
        | None
        | UnsetType
    ) = UNSET
    force_provider: (
        Annotated[str, _doc("Always this target: local, cloud, strong or one's provider.")]
        | None
        | UnsetType
    ) = UNSET


class MemoryConfig(In):
    """``memory_config``: the memory strategy's options. Which keys apply depends on
    ``memory_strategy`` (another key is a 422 naming the allowed ones): last_messages
    takes max_messages; first_last max_messages and preserve_first; summarize
    max_messages, summarize_batch, summary_provider and summary_model."""

    max_messages: (
        Annotated[int, _doc("Latest messages sent to the model (default 50; summarize: 20).")]
        | UnsetType
    ) = UNSET
    preserve_first: (
        Annotated[int, _doc("first_last: first messages kept (default 3).")] | UnsetType
    ) = UNSET
    summarize_batch: (
        Annotated[int, _doc("summarize: older messages folded into the summary at once (10).")]
        | UnsetType
    ) = UNSET
    summary_provider: (
        Annotated[Name, _doc("summarize: provider writing the summary (default: the agent's).")]
        | UnsetType
    ) = UNSET
    summary_model: (
        Annotated[Name, _doc("summarize: model writing the summary (default: the agent's).")]
        | UnsetType
    ) = UNSET


class AgentSettings(In):
    """What the runner reads of an agent (``ai_agents/agent_settings.py``). A wrong JSON
    type or an unknown key is a 400; a value out of its bounds (including the deployment's
    ceilings) a 422 whose ``details.field`` names it (``settings.max_tool_iterations``).
    Every field may be null (the default). Free-form data belongs in ``metadata``."""

    max_tool_iterations: (
        Annotated[
            int,
            _doc(
                "Tool-loop bound: 1 to the deployment's max_tool_iterations_ceiling "
                "(default 50). Default: AI_AGENTS_MAX_TOOL_ITERATIONS (10)."
            ),
        ]
        | None
        | UnsetType
    ) = UNSET
    tool_timeout: (
        Annotated[
            float,
            _doc(
                "Per-call timeout (seconds) of tools without their own: > 0, <= 86400. "
                "Default: AI_AGENTS_TOOL_TIMEOUT (60)."
            ),
        ]
        | None
        | UnsetType
    ) = UNSET
    max_output_tokens: (
        Annotated[
            int,
            _doc(
                "Output cap sent to the vendor and reserved in the token budget: 1 to the "
                "model's max_output and the deployment's max_output_tokens_ceiling "
                "(default 128000). Default: the model's max_output."
            ),
        ]
        | None
        | UnsetType
    ) = UNSET
    temperature: Annotated[float, _doc("0 to 2. Default: the vendor's.")] | None | UnsetType = UNSET
    use_user_memory: (
        Annotated[bool, _doc("Append the user's memory facts to the system prompt.")]
        | None
        | UnsetType
    ) = UNSET
    memory_tools: (
        Annotated[
            bool,
            _doc(
                "Offer the remember/forget/recall tools on threads with a user_id (the "
                "user's facts are then also in the system prompt). Default: off."
            ),
        ]
        | None
        | UnsetType
    ) = UNSET
    memory_scope: (
        Annotated[
            Literal["user", "agent"],
            _doc(
                "Where memory tools and extraction write: user (shared by the tenant's "
                "agents for that user) or agent (this agent's own). Default: user."
            ),
        ]
        | None
        | UnsetType
    ) = UNSET
    memory_extraction: (
        Annotated[
            bool,
            _doc(
                "After each completed turn, a background job extracts durable facts about "
                "the user into their memory (needs workers). Default: off."
            ),
        ]
        | None
        | UnsetType
    ) = UNSET
    user_rpm: (
        Annotated[int, _doc("Model calls per minute per user of this agent (>= 1).")]
        | None
        | UnsetType
    ) = UNSET
    user_tpm: (
        Annotated[int, _doc("Tokens per minute per user of this agent (>= 1).")] | None | UnsetType
    ) = UNSET
    retry: RetrySettings | None | UnsetType = UNSET
    #: Routing policy (docs/providers.md); set for ``provider: "auto"``.
    routing: RoutingSettings | None | UnsetType = UNSET


#: An agent's verbatim system prompt (the store's ``MAX_AGENT_INSTRUCTIONS``).
Instructions = Annotated[str, Meta(max_length=256_000)]


class AgentCreate(In):
    name: Name
    role: Annotated[str, Meta(min_length=1, max_length=100_000)]
    provider: Name
    model: Name
    goal: Text | None = None
    constraints: list[Text] = msgspec.field(default_factory=list)
    personality: dict[str, Text] | None = None
    examples: list[Example] = msgspec.field(default_factory=list)
    tools: list[Name] = msgspec.field(default_factory=list)
    client_tools: list[ClientTool] = msgspec.field(default_factory=list)
    #: The system prompt as given, instead of the one compiled from the definition.
    instructions: Instructions | None = None
    fallbacks: list[Fallback] = msgspec.field(default_factory=list)
    memory_strategy: Name = "last_messages"
    memory_config: MemoryConfig = msgspec.field(default_factory=MemoryConfig)
    settings: AgentSettings = msgspec.field(default_factory=AgentSettings)
    metadata: Json = msgspec.field(default_factory=dict)
    #: Admin keys only: the tenant that owns the new agent (default: the key's tenant).
    tenant_id: Name | None = None


class AgentUpdate(In):
    """Every field optional; only the fields sent change (validated as on create)."""

    name: Name | UnsetType = UNSET
    role: Annotated[str, Meta(min_length=1, max_length=100_000)] | UnsetType = UNSET
    provider: Name | UnsetType = UNSET
    model: Name | UnsetType = UNSET
    goal: Text | None | UnsetType = UNSET
    constraints: list[Text] | UnsetType = UNSET
    personality: dict[str, Text] | None | UnsetType = UNSET
    examples: list[Example] | UnsetType = UNSET
    tools: list[Name] | UnsetType = UNSET
    client_tools: list[ClientTool] | UnsetType = UNSET
    #: ``null``: back to the prompt compiled from the definition.
    instructions: Instructions | None | UnsetType = UNSET
    fallbacks: list[Fallback] | UnsetType = UNSET
    memory_strategy: Name | UnsetType = UNSET
    memory_config: MemoryConfig | UnsetType = UNSET
    #: Replaces the whole settings mapping.
    settings: AgentSettings | UnsetType = UNSET
    metadata: Json | UnsetType = UNSET
    is_active: bool | UnsetType = UNSET

    def changes(self) -> dict[str, Any]:
        """The fields that were sent, as plain values for ``store.update_agent``."""
        out: dict[str, Any] = {}
        for name in self.__struct_fields__:
            value = getattr(self, name)
            if value is not UNSET:
                out[name] = msgspec.to_builtins(value)
        return out


class AgentOut(Out):
    id: UUID
    tenant_id: str
    name: str
    role: str
    goal: str | None
    constraints: list[str]
    personality: dict[str, str] | None
    examples: list[dict[str, str]]
    tools: list[str]
    client_tools: list[ClientToolOut]
    #: The system prompt as given (``null``: compiled from the definition).
    instructions: str | None
    provider: str
    model: str
    fallbacks: list[Json]
    memory_strategy: str
    memory_config: Json
    #: As saved (the ``AgentSettings`` shape; an agent saved before settings were
    #: validated may hold other keys).
    settings: Json
    metadata: Json
    created_by: str | None
    is_active: bool
    created_at: datetime | None
    updated_at: datetime | None


class AgentPage(Out):
    data: list[AgentOut]
    next_cursor: str | None
    has_more: bool


def agent_out(record: AgentRecord) -> AgentOut:
    d = record.definition
    return AgentOut(
        id=record.id,
        tenant_id=record.tenant_id,
        name=d.name,
        role=d.role,
        goal=d.goal,
        constraints=list(d.constraints),
        personality=dict(d.personality) if d.personality is not None else None,
        examples=[dict(e) for e in d.examples],
        tools=list(d.tools),
        client_tools=[
            ClientToolOut(
                name=t["name"],
                description=t.get("description") or "",
                parameters=t.get("parameters") or {},
            )
            for t in record.client_tools
        ],
        instructions=record.instructions,
        provider=record.provider,
        model=record.model,
        fallbacks=list(record.fallbacks),
        memory_strategy=record.memory_strategy,
        memory_config=record.memory_config,
        settings=record.settings,
        metadata=record.metadata,
        created_by=record.created_by,
        is_active=record.is_active,
        created_at=record.created_at,
        updated_at=record.updated_at,
    )


# --- threads ----------------------------------------------------------------------


class ThreadCreate(In):
    agent_id: UUID
    user_id: Name | None = None
    title: Text | None = None
    metadata: Json = msgspec.field(default_factory=dict)


class ThreadUpdate(In):
    title: Text | UnsetType = UNSET
    metadata: Json | UnsetType = UNSET
    #: Archive (true) or unarchive (false) the thread.
    archived: bool | UnsetType = UNSET


class ThreadFork(In):
    #: Copy up to and including this message (default: the whole thread).
    up_to_message_id: UUID | None = None
    user_id: Name | None = None
    metadata: Json | None = None


class ThreadOut(Out):
    id: UUID
    tenant_id: str
    agent_id: UUID
    user_id: str | None
    title: str | None
    archived: bool
    metadata: Json
    message_count: int
    total_bytes: int
    last_seq: int
    input_tokens: int
    output_tokens: int
    cost: float
    forked_from_id: UUID | None
    forked_at_seq: int | None
    created_at: datetime | None
    updated_at: datetime | None
    last_used_at: datetime | None


class ThreadPage(Out):
    data: list[ThreadOut]
    next_cursor: str | None
    has_more: bool


def thread_out(record: ThreadRecord) -> ThreadOut:
    return ThreadOut(
        id=record.id,
        tenant_id=record.tenant_id,
        agent_id=record.agent_id,
        user_id=record.user_id,
        title=record.title,
        archived=record.archived,
        metadata=record.metadata,
        message_count=record.message_count,
        total_bytes=record.total_bytes,
        last_seq=record.last_seq,
        input_tokens=record.input_tokens,
        output_tokens=record.output_tokens,
        cost=record.cost,
        forked_from_id=record.forked_from_id,
        forked_at_seq=record.forked_at_seq,
        created_at=record.created_at,
        updated_at=record.updated_at,
        last_used_at=record.last_used_at,
    )


# --- messages ---------------------------------------------------------------------


class ToolCallIn(In):
    id: Name
    name: Name
    arguments: Json = msgspec.field(default_factory=dict)


class ToolCallOut(Out):
    id: str
    name: str
    arguments: Json


class MessageCreate(In):
    role: Literal["system", "user", "assistant", "tool"]
    content: Annotated[str, Meta(max_length=MAX_INPUT_CHARS)] | None = None
    tool_calls: list[ToolCallIn] = msgspec.field(default_factory=list)
    tool_call_id: Name | None = None
    tool_name: Name | None = None
    metadata: Json = msgspec.field(default_factory=dict)


class MessageOut(Out):
    id: UUID | None
    thread_id: UUID | None
    seq: int | None
    role: str
    content: str | None
    tool_calls: list[ToolCallOut]
    tool_call_id: str | None
    tool_name: str | None
    metadata: Json
    created_at: datetime | None
    token_count: int | None
    provider: str | None
    model: str | None
    input_tokens: int | None
    output_tokens: int | None
    cost: float | None


class MessagePage(Out):
    data: list[MessageOut]
    #: For ``order=asc`` pass it back as ``after``; for ``order=desc`` as ``before``.
    next_cursor: str | None
    has_more: bool


def message_out(m: Message) -> MessageOut:
    return MessageOut(
        id=m.id,
        thread_id=m.thread_id,
        seq=m.seq,
        role=m.role,
        content=m.content,
        tool_calls=[ToolCallOut(id=c.id, name=c.name, arguments=c.arguments) for c in m.tool_calls],
        tool_call_id=m.tool_call_id,
        tool_name=m.tool_name,
        metadata=m.metadata,
        created_at=m.created_at,
        token_count=m.token_count,
        provider=m.provider,
        model=m.model,
        input_tokens=m.input_tokens,
        output_tokens=m.output_tokens,
        cost=m.cost,
    )


# --- runs -------------------------------------------------------------------------


class TruncationIn(In):
    """``auto``: the agent's memory strategy picks the history; ``last_messages``: only
    the last ``last_messages`` messages (1-1000) of the thread's history are sent (with
    the new input after them)."""

    type: Literal["auto", "last_messages"]
    last_messages: int | None = None


class JsonSchemaFormat(In):
    #: The JSON schema the answer must satisfy.
    schema: Json
    #: ``[a-zA-Z0-9_-]{1,64}``.
    name: Name = "response"
    #: Ask the vendor to enforce the schema while decoding, where it can.
    strict: bool = False
    description: Text | None = None


class ResponseFormatIn(In):
    """OpenAI's ``response_format``: ``json_object`` (any JSON object) or ``json_schema``
    (JSON valid against ``json_schema.schema``; an answer that is not is a 502)."""

    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None


class RunOverridesIn(In):
    """What one run changes of its agent's configuration (absent or null: the agent's).

    The store validates them before the run starts: an invalid value is a 422 whose
    ``details.field`` names it. They are saved on the run (``overrides``), so a resumed
    run uses the same ones.
    """

    #: Provider for this run (needs ``model`` too).
    provider: Name | None = None
    model: Name | None = None
    #: Replaces the agent's system prompt.
    instructions: str | None = None
    #: Appended to the system prompt (the agent's or ``instructions``).
    additional_instructions: str | None = None
    #: Server tool names replacing the agent's ``tools``.
    tools: list[Name] | None = None
    #: Client tools replacing the agent's ``client_tools``.
    client_tools: list[ClientTool] | None = None
    #: ``auto``, ``none``, ``required`` or the name of a tool to force.
    tool_choice: Name | None = None
    #: ``false``: at most one tool call per model answer.
    parallel_tool_calls: bool | None = None
    #: 0-2.
    temperature: float | None = None
    #: 0-1.
    top_p: float | None = None
    #: Prompt tokens the whole run may use (over all its model calls); over it the run
    #: ends ``incomplete``. Each call's history is also trimmed to fit.
    max_prompt_tokens: int | None = None
    #: Completion tokens the whole run may use; over it the run ends ``incomplete``.
    max_completion_tokens: int | None = None
    truncation: TruncationIn | None = None
    response_format: ResponseFormatIn | None = None

    def overrides(self) -> dict[str, Any]:
        """The overrides sent, as keyword arguments for ``store.run``/``store.stream``."""
        out: dict[str, Any] = {}
        for name in RunOverridesIn.__struct_fields__:
            value = getattr(self, name)
            if value is not None:
                out[name] = msgspec.to_builtins(value)
        return out


class RunCreate(RunOverridesIn, kw_only=True):
    """The input, how to run it, and optional per-run overrides of the agent."""

    input: Annotated[str, Meta(min_length=1, max_length=MAX_INPUT_CHARS)]
    #: Answer with Server-Sent Events (run_started, text_delta, tool_call, tool_result,
    #: done, error).
    stream: bool = False
    #: Queue the run for a worker and answer 202 with the job at once.
    background: bool = False
    #: Another run holds the thread: wait for it ("enqueue") or answer 409 ("reject").
    on_busy: Literal["enqueue", "reject"] = "enqueue"
    #: Seconds to wait for a busy thread (default: the server's AI_AGENTS_API_BUSY_TIMEOUT).
    busy_timeout: Annotated[float, Meta(gt=0, le=3600)] | None = None
    #: A retried request with the same key returns the saved answer instead of running
    #: again (synchronous runs only; also accepted as the Idempotency-Key header).
    idempotency_key: Annotated[str, Meta(min_length=1, max_length=200)] | None = None
    #: Background runs: the job queue priority.
    priority: Priority = "normal"
    #: Stored on the run and on the user message of the turn (and on the job).
    metadata: Json = msgspec.field(default_factory=dict)


class RunUsage(Out):
    input_tokens: int
    output_tokens: int
    total_tokens: int


class RunToolCall(Out):
    id: str
    name: str
    arguments: Json
    result: str
    is_error: bool


class RunOut(Out):
    """What ``AgentResponse.to_json()`` holds (the ``done`` event carries the same)."""

    content: str
    thread_id: UUID
    run_id: UUID
    finish_reason: str
    tool_calls: list[RunToolCall]
    usage: RunUsage
    cost: float
    provider: str
    model: str
    message_ids: list[UUID]
    rate_limit_wait: float
    routing: Json
    replayed: bool
    #: ``completed``; ``incomplete`` (a run budget ran out: ``incomplete_details``);
    #: ``requires_action``: answer ``required_action`` at ``POST /runs/{run_id}/tool_outputs``.
    status: Literal["completed", "incomplete", "requires_action"]
    #: The client tool calls awaiting their outputs (empty unless ``requires_action``).
    required_action: list[ToolCallOut]
    #: ``{"reason": "max_prompt_tokens" | "max_completion_tokens" | ...}`` when incomplete.
    incomplete_details: Json | None


class ToolOutputIn(In):
    #: The ``id`` of a call in the run's ``required_action``.
    tool_call_id: Name
    #: What the model is told the tool returned.
    output: Annotated[str, Meta(max_length=MAX_INPUT_CHARS)]
    #: The output is an error message (the model sees it as a failed call).
    is_error: bool = False


class ToolOutputsSubmit(In):
    #: Exactly one output per awaited call.
    tool_outputs: Annotated[list[ToolOutputIn], Meta(max_length=128)]
    #: Answer with Server-Sent Events, like a streamed run.
    stream: bool = False


class RequiredActionOut(Out):
    type: Literal["submit_tool_outputs"]
    tool_calls: list[ToolCallOut]


class RunErrorOut(Out):
    code: str
    message: str


class RunRecordOut(Out):
    """A run as recorded: where it stands, what it was given, what it used."""

    id: UUID
    tenant_id: str
    thread_id: UUID
    agent_id: UUID
    #: The background job executing it, if any.
    job_id: UUID | None
    #: ``queued`` (waiting for its thread or a worker), ``in_progress``,
    #: ``requires_action``, ``cancelling``; then ``completed``, ``incomplete``,
    #: ``cancelled``, ``failed`` or ``expired`` (its process died, or nobody answered
    #: ``requires_action`` in time).
    status: Literal[
        "queued",
        "in_progress",
        "requires_action",
        "cancelling",
        "cancelled",
        "failed",
        "completed",
        "incomplete",
        "expired",
    ]
    input: str
    #: The provider and model of the last model call.
    provider: str | None
    model: str | None
    #: The per-run overrides it was given.
    overrides: Json
    required_action: RequiredActionOut | None
    #: Why it failed, was cancelled or expired.
    last_error: RunErrorOut | None
    incomplete_details: Json | None
    usage: RunUsage
    cost: float
    metadata: Json
    created_at: datetime | None
    started_at: datetime | None
    completed_at: datetime | None
    cancelled_at: datetime | None
    failed_at: datetime | None
    #: When a queued run stops waiting, or a ``requires_action`` run expires.
    expires_at: datetime | None


class RunPage(Out):
    data: list[RunRecordOut]
    next_cursor: str | None
    has_more: bool


class RunStepOut(Out):
    """One model call (``message_creation``) or one batch of tool calls (``tool_calls``).

    ``details`` of a ``message_creation`` step: ``message_id``, ``content``,
    ``tool_calls``, ``finish_reason``; of a ``tool_calls`` step: ``tool_calls``, each
    ``{id, name, arguments, output, is_error, client}`` (``output`` is null while a client
    tool's output is awaited).
    """

    id: UUID
    run_id: UUID
    thread_id: UUID
    seq: int
    type: Literal["message_creation", "tool_calls"]
    status: Literal["in_progress", "completed", "failed", "cancelled", "expired"]
    details: Json
    provider: str | None
    model: str | None
    usage: RunUsage
    cost: float
    last_error: RunErrorOut | None
    created_at: datetime | None
    completed_at: datetime | None


class RunStepList(Out):
    data: list[RunStepOut]


def _usage(input_tokens: int, output_tokens: int) -> RunUsage:
    return RunUsage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        total_tokens=input_tokens + output_tokens,
    )


def _error_out(error: dict[str, Any] | None) -> RunErrorOut | None:
    if error is None:
        return None
    code = str(error.get("code") or "error")
    return RunErrorOut(
        code=code, message=public_stored_error(code, str(error.get("message") or ""))
    )


def _tool_call_out(call: dict[str, Any]) -> ToolCallOut:
    return ToolCallOut(id=call["id"], name=call["name"], arguments=call.get("arguments") or {})


def run_record_out(run: RunRecord) -> RunRecordOut:
    action = run.required_action
    return RunRecordOut(
        id=run.id,
        tenant_id=run.tenant_id,
        thread_id=run.thread_id,
        agent_id=run.agent_id,
        job_id=run.job_id,
        status=run.status,
        input=run.input,
        provider=run.provider,
        model=run.model,
        overrides=run.overrides,
        required_action=(
            RequiredActionOut(
                type="submit_tool_outputs",
                tool_calls=[_tool_call_out(c) for c in action.get("tool_calls") or ()],
            )
            if action is not None
            else None
        ),
        last_error=_error_out(run.last_error),
        incomplete_details=run.incomplete_details,
        usage=_usage(run.input_tokens, run.output_tokens),
        cost=run.cost,
        metadata=run.metadata,
        created_at=run.created_at,
        started_at=run.started_at,
        completed_at=run.completed_at,
        cancelled_at=run.cancelled_at,
        failed_at=run.failed_at,
        expires_at=run.expires_at,
    )


def run_step_out(step: RunStep) -> RunStepOut:
    return RunStepOut(
        id=step.id,
        run_id=step.run_id,
        thread_id=step.thread_id,
        seq=step.seq,
        type=step.type,
        status=step.status,
        details=step.details,
        provider=step.provider,
        model=step.model,
        usage=_usage(step.input_tokens, step.output_tokens),
        cost=step.cost,
        last_error=_error_out(step.last_error),
        created_at=step.created_at,
        completed_at=step.completed_at,
    )


# --- jobs -------------------------------------------------------------------------


class JobErrorOut(Out):
    code: str
    message: str


class JobOut(Out):
    id: UUID
    tenant_id: str
    thread_id: UUID
    #: The job's run (``GET /runs/{run_id}``), created with the job.
    run_id: UUID | None
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    priority: str
    attempts: int
    max_attempts: int
    cancel_requested: bool
    metadata: Json
    #: ``succeeded``: the run, as a synchronous run returns it.
    result: Json | None
    #: ``failed``/``cancelled``: why; ``queued`` after a failed attempt: the error retried.
    error: JobErrorOut | None
    created_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None


def job_out(job: JobRecord) -> JobOut:
    return JobOut(
        id=job.id,
        tenant_id=job.tenant_id,
        thread_id=job.thread_id,
        run_id=job.run_id,
        status=job.status,
        priority=job.priority,
        attempts=job.attempts,
        max_attempts=job.max_attempts,
        cancel_requested=job.cancel_requested,
        metadata=job.metadata,
        result=job.result,
        error=JobErrorOut(
            code=job.error.code, message=public_stored_error(job.error.code, job.error.message)
        )
        if job.error
        else None,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
    )


# --- memory, usage, models ----------------------------------------------------------


class MemoryValue(In):
    value: Annotated[str, Meta(max_length=100_000)]


class MemoryPut(In):
    """Keys to set (upsert); keys not named are kept."""

    values: Annotated[
        dict[Name, Annotated[str, Meta(max_length=100_000)]], Meta(min_length=1, max_length=100)
    ]


class MemoryOut(Out):
    user_id: str
    agent_id: UUID | None
    values: dict[str, str]


class MemoryEntryOut(Out):
    user_id: str
    agent_id: UUID | None
    key: str
    value: str


class DeletedOut(Out):
    deleted: int


class UsageOut(Out):
    thread_id: UUID | None
    user_id: str | None
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cost: float
    messages: int


def usage_out(totals: UsageTotals, thread_id: UUID | None, user_id: str | None) -> UsageOut:
    return UsageOut(
        thread_id=thread_id,
        user_id=user_id,
        input_tokens=totals.input_tokens,
        output_tokens=totals.output_tokens,
        total_tokens=totals.total_tokens,
        cost=totals.cost,
        messages=totals.messages,
    )


class ModelOut(Out):
    provider: str
    model: str
    context_window: int
    max_output: int
    rpm: int
    tpm: int
    supports_tools: bool
    supports_vision: bool
    cost_per_1m_input: float
    cost_per_1m_output: float
    deprecated: bool
    #: Prompt-cache reads/writes are billed at these multiples of the input price.
    cache_read_multiplier: float
    cache_write_multiplier: float
    #: The figures are our guess, not published by the vendor: override them.
    estimated: bool


class ModelList(Out):
    data: list[ModelOut]


class HealthCheck(Out):
    ok: bool
    latency_ms: float
    error: str | None = None


class HealthOut(Out):
    status: Literal["ok", "unavailable"]
    checks: dict[str, HealthCheck]


# --- API keys ---------------------------------------------------------------------


class KeyCreate(In):
    name: Name
    tenant_id: Name
    scopes: list[Literal["admin"]] = msgspec.field(default_factory=list)
    #: Requests per minute (null: the server default, 0: unlimited).
    rate_limit_rpm: Annotated[int, Meta(ge=0, le=1_000_000_000)] | None = None


class KeyOut(Out):
    id: UUID
    tenant_id: str
    name: str
    prefix: str
    scopes: list[str]
    rate_limit_rpm: int | None
    created_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


class KeyCreated(KeyOut):
    #: The secret: shown this once, store it now (only its hash is kept).
    key: str


class KeyList(Out):
    data: list[KeyOut]


def key_out(key: ApiKey) -> KeyOut:
    return KeyOut(
        id=key.id,
        tenant_id=key.tenant_id,
        name=key.name,
        prefix=key.prefix,
        scopes=list(key.scopes),
        rate_limit_rpm=key.rate_limit_rpm,
        created_at=key.created_at,
        revoked_at=key.revoked_at,
        last_used_at=key.last_used_at,
    )


# --- MCP servers on agents ----------------------------------------------------------

Secret = Annotated[str, Meta(max_length=10_000)]


class McpServerCreate(In):
    """An MCP server whose tools the agent gets. ``headers`` and ``bearer_token`` are
    stored encrypted and never returned; the answer names the headers only."""

    #: ``[a-zA-Z0-9_-]{1,32}``, unique per agent; prefixes the server's tool names.
    name: Annotated[str, Meta(max_length=200, description="[a-zA-Z0-9_-]{1,32}")]
    transport: Annotated[str, Meta(max_length=200, description="streamable_http, sse or stdio")]
    #: ``streamable_http`` / ``sse``: an http(s) URL on a host the operator allows.
    url: Annotated[str, Meta(max_length=10_000)] | None = None
    #: ``stdio``: the name of a command the operator allows (never a command line).
    command: Annotated[str, Meta(max_length=200)] | None = None
    headers: dict[Annotated[str, Meta(max_length=200)], Secret] | None = None
    bearer_token: Secret | None = None
    #: Only these of the server's tools are offered (null: all of them).
    allowed_tools: list[Annotated[str, Meta(max_length=200)]] | None = None
    #: Seconds one tool call may take (null: the server's default).
    timeout: float | None = None


class McpServerOut(Out):
    id: UUID
    tenant_id: str
    agent_id: UUID
    name: str
    transport: str
    url: str | None
    command: str | None
    #: Names of the headers sent (their values are never returned).
    header_names: list[str]
    has_bearer_token: bool
    allowed_tools: list[str] | None
    timeout: float | None
    version: int
    created_at: datetime
    updated_at: datetime


class McpServerList(Out):
    data: list[McpServerOut]


def mcp_server_out(info: McpServerInfo) -> McpServerOut:
    return McpServerOut(
        id=info.id,
        tenant_id=info.tenant_id,
        agent_id=info.agent_id,
        name=info.name,
        transport=info.transport,
        url=info.url,
        command=info.command,
        header_names=list(info.header_names),
        has_bearer_token=info.has_bearer_token,
        allowed_tools=list(info.allowed_tools) if info.allowed_tools is not None else None,
        timeout=info.timeout,
        version=info.version,
        created_at=info.created_at,
        updated_at=info.updated_at,
    )
