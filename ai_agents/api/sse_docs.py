"""How a streamed run (``stream: true``) is documented: ``text/event-stream`` and its events.

OpenAPI 3.1 has no way to type the events of a stream, so the ``text/event-stream``
answer is a string whose description lists each ``event:`` name with the schema of its
``data:`` line (components ``RunStartedEvent``, ``TextDeltaEvent``, ``ToolCallEvent``,
``ToolResultEvent``, ``RunOut`` and ``StreamError``), with one real stream as example.
What is sent is :mod:`api.streaming`.
"""

from __future__ import annotations

from litestar.openapi.spec import (
    Example,
    OpenAPIFormat,
    OpenAPIMediaType,
    OpenAPIType,
    Reference,
    Schema,
)

#: ``event:`` name -> the component schema of its ``data:``, and when it is sent.
EVENTS: dict[str, tuple[str, str]] = {
    "run_started": ("RunStartedEvent", "first: the run exists (cancel it by `run_id`)"),
    "text_delta": ("TextDeltaEvent", "a piece of the answer's text"),
    "tool_call": ("ToolCallEvent", "the model calls a tool"),
    "tool_result": ("ToolResultEvent", "what the tool returned"),
    "done": ("RunOut", "last: the run's answer, the body a synchronous run returns"),
    "error": ("StreamError", "last: the run failed after the stream began"),
}

_STRING = Schema(type=OpenAPIType.STRING)
_ID = Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.UUID)


def _object(description: str, properties: dict[str, Schema | Reference]) -> Schema:
    return Schema(
        type=OpenAPIType.OBJECT,
        description=description,
        required=sorted(properties),
        properties=properties,
    )


def event_schemas() -> dict[str, Schema]:
    """The ``data:`` schemas of the events (``done`` is ``RunOut``, already a component)."""
    arguments = Schema(type=OpenAPIType.OBJECT, description="The call's JSON arguments.")
    return {
        "RunStartedEvent": _object("`event: run_started`", {"run_id": _ID, "thread_id": _ID}),
        "TextDeltaEvent": _object("`event: text_delta`", {"text": _STRING}),
        "ToolCallEvent": _object(
            "`event: tool_call`", {"id": _STRING, "name": _STRING, "arguments": arguments}
        ),
        "ToolResultEvent": _object(
            "`event: tool_result`",
            {
                "id": _STRING,
                "name": _STRING,
                "result": _STRING,
                "is_error": Schema(type=OpenAPIType.BOOLEAN),
            },
        ),
        "StreamError": Schema(
            description="`event: error`: the Error schema plus the HTTP `status` the same "
            "failure would have had before the stream began.",
            all_of=[
                Reference(ref="#/components/schemas/Error"),
                Schema(
                    type=OpenAPIType.OBJECT,
                    required=["status"],
                    properties={"status": Schema(type=OpenAPIType.INTEGER)},
                ),
            ],
        ),
    }


def _description() -> str:
    rows = "\n".join(
        f"| `{name}` | [{schema}](#/components/schemas/{schema}) | {when} |"
        for name, (schema, when) in EVENTS.items()
    )
    return (
        "With `stream: true`: Server-Sent Events, each an `event:` line naming it and one "
        "`data:` line of JSON.\n\n| event | data | sent |\n| --- | --- | --- |\n" + rows
    )


#: A one-sentence answer as it streams (the ``done`` data shortened to two fields).
EXAMPLE_STREAM = (
    "event: run_started\n"
    'data: {"run_id":"0b6f3c8e-5d2a-4f51-9a7e-2c1d8e4b7a10",'
    '"thread_id":"5e9d2b1a-7c3f-4e8d-a6b2-9f0c1d2e3a4b"}\n\n'
    "event: text_delta\n"
    'data: {"text":"Paris is the capital "}\n\n'
    "event: text_delta\n"
    'data: {"text":"of France."}\n\n'
    "event: done\n"
    'data: {"content":"Paris is the capital of France.","status":"completed",...}\n\n'
)


def event_stream_media() -> OpenAPIMediaType:
    return OpenAPIMediaType(
        schema=Schema(
            type=OpenAPIType.STRING,
            content_media_type="text/event-stream",
            description=_description(),
        ),
        examples={
            "answer": Example(summary="A streamed answer (done shortened)", value=EXAMPLE_STREAM)
        },
    )
