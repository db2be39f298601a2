"""The OpenAPI document: Bearer security, readable operation ids, each operation's errors.

Litestar generates the operations from the handlers; :func:`finalize` then documents
what the handlers cannot say themselves: the error statuses an operation may answer (all
with the same ``Error`` schema, 429 with its ``Retry-After`` header), that request bodies
reject unknown fields. Which errors an operation documents (:func:`operation_errors`):

- every operation that needs a key: 400 (malformed request, unknown query parameter),
  401, 429 and 503;
- with a request body: 413 (body too large) and 415 (not JSON);
- with a path parameter: 404;
- and what its handler declares with ``opt=errors(...)`` (403, 404 for an object named
  in the body or query, 409, 413 for a size limit, 422, 502).

Operation ids are the handlers' names in camelCase (``create_run`` -> ``createRun``).
Operations that may answer a run as Server-Sent Events declare it themselves with
``operation_class=StreamedRunOperation`` (:mod:`api.sse_docs`). The page at
:data:`DOCS_PATH` is Swagger UI served from this server (:mod:`api.docs_ui`). The
schemathesis test checks the live API against this document.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from litestar import Litestar
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import OpenAPIConfig
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
from litestar.routes import HTTPRoute

from ai_agents.api import schemas, sse_docs
from ai_agents.api.docs_ui import LocalSwaggerUI

DOCS_PATH = "/api/v1/docs"
SECURITY_SCHEME = "BearerAuth"

_ERRORS: dict[int, str] = {
    400: "Malformed request (wrong types, unknown fields or query parameters, bad JSON).",
    401: "Missing, invalid or revoked API key.",
    403: "The key lacks the scope this needs (admin).",
    404: "No such object (or it belongs to another tenant).",
    409: "Conflict: the thread is busy with another run (`on_busy: reject`), or the "
    "object's state does not allow this (e.g. tool outputs for a run not in "
    "`requires_action`, a name already taken).",
    413: "Request body, thread, user or tenant size limit exceeded.",
    415: "The request body is not JSON (`Content-Type: application/json`).",
    422: "The request is well-formed but invalid (the message says which field).",
    429: "Rate limit of the API key exceeded, or too many failed authentications from "
    "this address; retry after `Retry-After` seconds.",
    502: "The model provider rejected the request or sent an unreadable answer.",
    503: "The model provider, PostgreSQL or Redis is unavailable; retry later.",
}
#: What any operation needing a key may answer.
_AUTHENTICATED = (400, 401, 429, 503)
_WITH_BODY = (413, 415)
_WITH_PATH_PARAMETER = (404,)
_PUBLIC_ERRORS = (503,)
_OPT_KEY = "errors"


def errors(*statuses: int) -> dict[str, Any]:
    """A handler's ``opt`` declaring the errors its own logic may answer, beyond those
    of its shape (see the module docstring): ``@get(..., opt=errors(403, 422))``."""
    unknown = sorted(set(statuses) - set(_ERRORS))
    if unknown:
        raise ValueError(f"no documented error status {unknown}: use one of {sorted(_ERRORS)}")
    return {_OPT_KEY: tuple(statuses)}


def operation_id(handler: HTTPRouteHandler, *_: Any) -> str:
    """The handler's name in camelCase: ``list_run_steps`` -> ``listRunSteps``."""
    first, *rest = handler.handler_name.strip("_").split("_")
    return first + "".join(word.capitalize() for word in rest)


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
        render_plugins=[LocalSwaggerUI(DOCS_PATH)],
        operation_id_creator=operation_id,
        create_examples=False,
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
            Tag(name="mcp servers"),
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


def _declared_errors(app: Litestar) -> dict[str, tuple[int, ...]]:
    """Operation id -> the errors its handler declares with :func:`errors`."""
    declared: dict[str, tuple[int, ...]] = {}
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            if not handler.resolve_include_in_schema():
                continue  # e.g. /v1, documented by OpenAI's own document
            name = handler.operation_id if isinstance(handler.operation_id, str) else None
            declared[name or operation_id(handler)] = tuple(handler.opt.get(_OPT_KEY, ()))
    return declared


def operation_errors(op: Operation, declared: Iterable[int], *, public: bool) -> list[int]:
    """The error statuses *op* documents (see the module docstring)."""
    if public:
        return list(_PUBLIC_ERRORS)
    found = set(_AUTHENTICATED) | set(declared)
    if op.request_body is not None:
        found.update(_WITH_BODY)
    if any(isinstance(p, Parameter) and p.param_in == "path" for p in op.parameters or ()):
        found.update(_WITH_PATH_PARAMETER)
    return sorted(found)


def finalize(app: Litestar, *, public_paths: tuple[str, ...] = ()) -> None:
    """Add each operation's error responses, the Error and event schemas and the
    strictness of request bodies.

    Operations on *public_paths* need no API key: their security is emptied and they
    document only 503 (with their own body when they declare one).
    """
    openapi = app.openapi_schema
    components = openapi.components
    if components.schemas is None:
        components.schemas = {}
    components.schemas["Error"] = _error_schema()
    components.schemas.update(sse_docs.event_schemas())

    for name in _strict_schema_names():
        schema = components.schemas.get(name)
        if isinstance(schema, Schema):
            schema.additional_properties = False

    declared = _declared_errors(app)
    for path, _method, op in _operations(app):
        for param in op.parameters or ():
            if isinstance(param, Parameter) and isinstance(param.schema, Schema):
                param.schema = _without_null(param.schema)
        responses = op.responses if op.responses is not None else {}
        public = path in public_paths
        if public:
            op.security = []
        own = declared.get(op.operation_id or "", ())
        for status in operation_errors(op, own, public=public):
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
            ok.content["text/event-stream"] = sse_docs.event_stream_media()


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
