"""The library's spans, following OpenTelemetry's GenAI semantic conventions.

- ``invoke_agent {agent name}`` for each run (one per execution: a run that pauses in
  ``requires_action`` and is resumed makes two), with the run's total token usage;
- ``chat {model}`` (span kind CLIENT) for each vendor call, retries and fallbacks
  included, with its token usage, response model, id and finish reason;
- ``execute_tool {tool name}`` for each server tool the run executes.

Prompts, answers and tool arguments are never recorded (they may hold personal data).
Every helper is a no-op, importing nothing of OpenTelemetry, while tracing is off.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ai_agents.observability import tracing
from ai_agents.providers.base import ResponseDone

if TYPE_CHECKING:
    from opentelemetry.trace import Span

    from ai_agents.providers.base import ProviderRequest
    from ai_agents.response import AgentResponse
    from ai_agents.runs.turn import RunTicket

OPERATION = "gen_ai.operation.name"
PROVIDER = "gen_ai.provider.name"
#: The attribute older conventions (and some backends) use for the provider.
SYSTEM = "gen_ai.system"
REQUEST_MODEL = "gen_ai.request.model"
RESPONSE_MODEL = "gen_ai.response.model"
RESPONSE_ID = "gen_ai.response.id"
FINISH_REASONS = "gen_ai.response.finish_reasons"
INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
AGENT_ID = "gen_ai.agent.id"
AGENT_NAME = "gen_ai.agent.name"
CONVERSATION_ID = "gen_ai.conversation.id"
TOOL_NAME = "gen_ai.tool.name"
TOOL_CALL_ID = "gen_ai.tool.call.id"
TOOL_TYPE = "gen_ai.tool.type"
TOOL_DESCRIPTION = "gen_ai.tool.description"
RUN_ID = "ai_agents.run.id"
TENANT_ID = "ai_agents.tenant.id"


def _provider(name: str) -> dict[str, str]:
    return {PROVIDER: name, SYSTEM: name}


@dataclass(slots=True)
class RunSpan:
    """The run's span (``None`` when tracing is off); :meth:`done` records its answer."""

    span: Span | None

    def done(self, response: AgentResponse) -> None:
        if self.span is None:
            return
        self.span.set_attributes(
            {
                **_provider(response.provider),
                RESPONSE_MODEL: response.model,
                FINISH_REASONS: [response.finish_reason],
                INPUT_TOKENS: response.usage.input_tokens,
                OUTPUT_TOKENS: response.usage.output_tokens,
                "ai_agents.run.status": response.status,
            }
        )


@contextmanager
def agent_run(ticket: RunTicket) -> Iterator[RunSpan]:
    """The ``invoke_agent`` span around a run's task (current inside the block)."""
    if not tracing.enabled():
        yield RunSpan(None)
        return
    agent, ov = ticket.agent, ticket.overrides
    name = agent.definition.name
    span = tracing.start_span(
        f"invoke_agent {name}",
        {
            OPERATION: "invoke_agent",
            **_provider(ov.provider or agent.provider),
            REQUEST_MODEL: ov.model or agent.model,
            AGENT_ID: str(agent.id),
            AGENT_NAME: name,
            CONVERSATION_ID: str(ticket.thread.id),
            RUN_ID: str(ticket.id),
            TENANT_ID: ticket.thread.tenant_id,
        },
    )
    with tracing.current(span):
        yield RunSpan(span)


def model_call(
    provider: str, request: ProviderRequest, events: AsyncIterator[Any]
) -> AsyncIterator[Any]:
    """*events* of one vendor call inside its ``chat {model}`` span (*events* as is when
    tracing is off). The span ends with the call; the answer's usage is recorded on it."""
    if not tracing.enabled():
        return events
    attributes: dict[str, Any] = {
        OPERATION: "chat",
        **_provider(provider),
        REQUEST_MODEL: request.model,
    }
    for key, value in (
        ("gen_ai.request.max_tokens", request.max_output_tokens),
        ("gen_ai.request.temperature", request.temperature),
        ("gen_ai.request.top_p", request.top_p),
    ):
        if value is not None:
            attributes[key] = value
    span = tracing.start_span(f"chat {request.model}", attributes, client=True)
    if span is None:
        return events
    return tracing.iterate_in(span, events, _answered)


def _answered(span: Span, item: Any) -> None:
    if not isinstance(item, ResponseDone):
        return
    response = item.response
    attributes: dict[str, Any] = {
        INPUT_TOKENS: response.usage.input_tokens,
        OUTPUT_TOKENS: response.usage.output_tokens,
        FINISH_REASONS: [response.finish_reason],
    }
    if response.model:
        attributes[RESPONSE_MODEL] = response.model
    if response.raw_id:
        attributes[RESPONSE_ID] = response.raw_id
    span.set_attributes(attributes)


@contextmanager
def tool_call(name: str, call_id: str, description: str | None = None) -> Iterator[Span | None]:
    """The ``execute_tool {name}`` span around one tool's execution (current inside)."""
    if not tracing.enabled():
        yield None
        return
    attributes = {
        OPERATION: "execute_tool",
        TOOL_NAME: name,
        TOOL_CALL_ID: call_id,
        TOOL_TYPE: "function",
    }
    if description:
        attributes[TOOL_DESCRIPTION] = description[:500]
    with tracing.current(tracing.start_span(f"execute_tool {name}", attributes)) as span:
        yield span


def tool_failed(span: Span | None, message: str) -> None:
    """A tool answered with an error (the run goes on: the model reads the error)."""
    if span is None:
        return
    from opentelemetry.trace import Status, StatusCode

    span.set_attribute("error.type", "tool_error")
    span.set_status(Status(StatusCode.ERROR, message[:500]))
