"""The OpenAPI document: Bearer security, the one error schema on every operation.

Litestar generates the operations from the handlers; :func:`finalize` then documents
what the handlers cannot say themselves: every error status an operation may answer
(all with the same ``Error`` schema, 429 with its ``Retry-After`` header, 415 on
operations with a body), that request bodies reject unknown fields. Operations that may answer a run as Server-Sent Events
declare it themselves with ``operation_class=StreamedRunOperation``. The schemathesis
test checks the live API against this document.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from litestar import Litestar
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import (
    Components,
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Parameter,
    Reference,
    Schema,
    SecurityScheme,
    Tag,
)

from api import schemas

DOCS_PATH = "/api/v1/docs"
SECURITY_SCHEME = "BearerAuth"

_ERRORS: dict[int, str] = {
    400: "Malformed request (wrong types, unknown fields, bad JSON).",
    401: "Missing, invalid or revoked API key.",
    403: "The key lacks the scope this needs (admin).",
    404: "No such object (or it belongs to another tenant).",
    409: "Conflict: the thread is busy with another run (`on_busy: reject`), or the run's "
    "status does not allow this (e.g. tool outputs for a run not in `requires_action`).",
    413: "Request body, thread, user or tenant size limit exceeded.",
    415: "The request body is not JSON (`Content-Type: application/json`).",
    422: "The request is well-formed but invalid (the message says which field).",
    429: "Rate limit of the API key exceeded, or too many failed authentications from "
    "this address; retry after `Retry-After` seconds.",
    502: "The model provider rejected the request.",
    503: "The model provider, PostgreSQL or Redis is unavailable; retry later.",
}
_PUBLIC_ERRORS = (503,)


def config() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="ai_agents REST API",
        version="1.0.0",
        description=(
            "Persistent AI agents on your own PostgreSQL and Redis: agents, threads, "
            "messages, runs (synchronous, streamed or background), jobs and user memory. "
            "Authenticate with `Authorization: Bearer <API key>`."
        ),
        path=DOCS_PATH,
        render_plugins=[SwaggerRenderPlugin()],
        security=[{SECURITY_SCHEME: []}],
        components=Components(
            security_schemes={
                SECURITY_SCHEME: SecurityScheme(
                    type="http",
                    scheme="bearer",
                    description="An API key (`ai-agents keys create`), sent as a Bearer token.",
                )
            }
        ),
        tags=[
            Tag(name="agents"),
            Tag(name="threads"),
            Tag(name="messages"),
            Tag(name="runs"),
            Tag(name="jobs"),
            Tag(name="memory"),
            Tag(name="usage"),
            Tag(name="models"),
            Tag(name="keys", description="Admin scope only."),
            Tag(name="system"),
        ],
        use_handler_docstrings=True,
    )


def _error_schema() -> Schema:
    return Schema(
        type=OpenAPIType.OBJECT,
        title="Error",
        description="Every failure has this shape.",
        required=["code", "message", "details", "retry_after"],
        properties={
            "code": Schema(type=OpenAPIType.STRING, description="Stable machine-readable code."),
            "message": Schema(type=OpenAPIType.STRING, description="What went wrong and the fix."),
            "details": Schema(
                type=OpenAPIType.OBJECT, description="The field or object concerned, limits..."
            ),
            "retry_after": Schema(
                one_of=[Schema(type=OpenAPIType.NUMBER), Schema(type=OpenAPIType.NULL)],
                description="Seconds after which retrying may succeed, when it applies.",
            ),
        },
    )


def _error_response(status: int) -> OpenAPIResponse:
    headers: dict[str, OpenAPIHeader | Reference] | None = None
    if status == 429:
        headers = {
            "Retry-After": OpenAPIHeader(
                schema=Schema(type=OpenAPIType.STRING),
                required=True,
                description="Seconds to wait before retrying.",
            )
        }
    return OpenAPIResponse(
        description=_ERRORS[status],
        content={
            "application/json": OpenAPIMediaType(schema=Reference(ref="#/components/schemas/Error"))
        },
        headers=headers,
    )


def _operations(app: Litestar) -> list[tuple[str, str, Operation]]:
    found = []
    for path, item in (app.openapi_schema.paths or {}).items():
        for method in ("get", "put", "post", "delete", "patch"):
            op = getattr(item, method, None)
            if op is not None:
                found.append((path, method, op))
    return found


def finalize(app: Litestar, *, public_paths: tuple[str, ...] = ()) -> None:
    """Add the error responses, the Error schema and the strictness of request bodies.

    Operations on *public_paths* need no API key: their security is emptied and they
    document only 503 (with their own body when they declare one).
    """
    openapi = app.openapi_schema
    components = openapi.components
    if components.schemas is None:
        components.schemas = {}
    components.schemas["Error"] = _error_schema()

    for name in _strict_schema_names():
        schema = components.schemas.get(name)
        if isinstance(schema, Schema):
            schema.additional_properties = False

    for path, _method, op in _operations(app):
        for param in op.parameters or ():
            if isinstance(param, Parameter) and isinstance(param.schema, Schema):
                param.schema = _without_null(param.schema)
        responses = op.responses if op.responses is not None else {}
        public = path in public_paths
        if public:
            op.security = []
        for status in _ERRORS:
            if public and status not in _PUBLIC_ERRORS:
                continue
            if status == 415 and op.request_body is None:
                continue  # only operations with a body check its media type
            if public and str(status) in responses:
                continue  # e.g. /health documents its own 503 body
            responses[str(status)] = _error_response(status)
        op.responses = responses


@dataclass
class StreamedRunOperation(Operation):
    """An operation whose 200 answer is, with ``stream: true``, ``text/event-stream``."""

    def __post_init__(self) -> None:
        ok = (self.responses or {}).get("200")
        if isinstance(ok, OpenAPIResponse) and ok.content is not None:
            ok.content["text/event-stream"] = OpenAPIMediaType(
                schema=Schema(
                    type=OpenAPIType.STRING,
                    description="`stream: true`: events run_started, text_delta, tool_call, "
                    "tool_result, done (the run), error (the Error schema).",
                )
            )


def _without_null(schema: Schema) -> Schema:
    """A query, path or header value is a string or absent, never JSON ``null``.

    Litestar renders an optional parameter as ``oneOf: [T, null]``; say plainly ``T``
    (optional is already expressed by ``required: false``).
    """
    if not schema.one_of:
        return schema
    kept = [s for s in schema.one_of if not (isinstance(s, Schema) and s.type == OpenAPIType.NULL)]
    if len(kept) != 1 or len(kept) == len(schema.one_of) or not isinstance(kept[0], Schema):
        return schema
    merged = kept[0]
    for f in dataclasses.fields(Schema):
        value = getattr(schema, f.name)
        if f.name != "one_of" and value is not None and getattr(merged, f.name) is None:
            setattr(merged, f.name, value)
    return merged


def _strict_schema_names() -> list[str]:
    """Request bodies are decoded with ``forbid_unknown_fields``: say so in the schema."""
    names = []
    for value in vars(schemas).values():
        if isinstance(value, type) and issubclass(value, schemas.In) and value is not schemas.In:
            names.append(value.__name__)
    return names
