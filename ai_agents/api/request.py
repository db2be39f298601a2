"""What every request must satisfy before a handler sees it, in one place.

- **JSON bodies** (:class:`ApiRequest`, the app's ``request_class``): Litestar decodes a
  handler's ``data`` through :meth:`ApiRequest.json`, so every body endpoint gets the
  same checks: ``Content-Type: application/json`` (or an ``application/*+json`` type,
  UTF-8) else 415; nesting of arrays/objects at most ``max_json_depth`` levels (default
  32, the body itself is level 1) else 400, measured on the raw bytes *before* decoding
  (the decoder recurses: a body nested a thousand levels deep would otherwise exhaust
  the stack). Sizes of strings, arrays and objects are bounded by the body size limit
  (``max_body_bytes``, 413).
- **Path and query** (:class:`RequestChecks`, the app's ``before_request``): percent
  escapes must decode to valid UTF-8 (400; the ASGI server would otherwise replace them
  with U+FFFD, so ``/memory/%FE`` and ``/memory/%FF`` would name the same key), and
  query parameters must be ones the operation documents (400 naming the unknown ones);
  under ``/v1``, which this server's document leaves to OpenAI's, the ones its handler
  declares.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote_to_bytes

from litestar import Litestar, Request
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.spec import Parameter
from litestar.params import ParameterKwarg
from litestar.routes import HTTPRoute

from ai_agents.api.config import ApiConfig
from ai_agents.api.errors import ApiError

_ESCAPED = re.compile(rb"\\.", re.DOTALL)
_STRING = re.compile(rb'"[^"]*"')
_EMPTY_PAIR = re.compile(rb"\[\]|\{\}")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def json_depth_exceeds(body: bytes, limit: int) -> bool:
    """Whether the JSON text *body* nests arrays/objects more than *limit* levels deep.

    Works on the bytes with C-speed passes only (no recursion, no per-byte Python loop):
    drop escapes, then strings, keep the brackets, then remove innermost ``[]``/``{}``
    pairs once per level. Malformed text answers False: the decoder reports it.
    """
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    brackets = _STRING.sub(b"", _ESCAPED.sub(b"", body)).translate(None, _NOT_BRACKETS)
    for _ in range(limit):
        brackets, removed = _EMPTY_PAIR.subn(b"", brackets)
        if not brackets or not removed:
            return False
    return bool(brackets)


def _is_json(media_type: str, options: dict[str, str]) -> bool:
    kind, _, subtype = media_type.lower().partition("/")
    if kind != "application" or not (subtype == "json" or subtype.endswith("+json")):
        return False
    charset = options.get("charset", "utf-8").lower()
    return charset in ("utf-8", "utf8")


class ApiRequest(Request[Any, Any, Any]):
    """The app's request class: JSON bodies are checked before they are decoded."""

    async def json(self) -> Any:
        media_type, options = self.content_type
        if not _is_json(media_type, options):
            raise ApiError(
                415,
                "unsupported_media_type",
                "request bodies must be JSON: send 'Content-Type: application/json'",
                details={"content_type": media_type or None},
            )
        body = await self.body()
        config: ApiConfig = self.app.state.api_config
        limit = config.max_json_depth
        if json_depth_exceeds(body, limit):
            raise _too_deep(limit)
        try:
            return await super().json()
        except RecursionError:  # not reachable within the limit; never a 500 anyway
            raise _too_deep(limit) from None


def _too_deep(limit: int) -> ApiError:
    return ApiError(
        400,
        "invalid_request",
        f"JSON body nested too deeply: at most {limit} levels of arrays/objects",
        details={"max_depth": limit},
    )


def _undecodable(raw: bytes) -> bool:
    try:
        unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


#: Paths whose handlers are not in the OpenAPI document: their query names come from the
#: handlers' signatures.
UNDOCUMENTED_PREFIXES = ("/v1/",)
#: Handler arguments Litestar fills from elsewhere than the query.
_NOT_QUERY = frozenset(
    {"data", "request", "scope", "state", "headers", "cookies", "query", "body", "socket"}
)


def _declared_query_names(route: HTTPRoute, handler: HTTPRouteHandler) -> frozenset[str]:
    skip = _NOT_QUERY | set(route.path_parameters) | set(handler.resolve_dependencies())
    names: set[str] = set()
    for name, field in handler.parsed_fn_signature.parameters.items():
        kwarg = field.kwarg_definition
        if name in skip or (isinstance(kwarg, ParameterKwarg) and (kwarg.header or kwarg.cookie)):
            continue
        if isinstance(kwarg, ParameterKwarg):
            names.add(kwarg.query or name)
        elif kwarg is None:
            names.add(name)
    return frozenset(names)


class RequestChecks:
    """``before_request``: valid UTF-8 in the path and query, documented query names only.

    The allowed query names come from the finished OpenAPI document (:meth:`load`), so
    what is accepted is exactly what is documented.
    """

    def __init__(self) -> None:
        self.allowed: dict[tuple[str, str], frozenset[str]] = {}

    def load(self, app: Litestar) -> None:
        for path, item in (app.openapi_schema.paths or {}).items():
            for method in ("get", "put", "post", "delete", "patch"):
                op = getattr(item, method, None)
                if op is None:
                    continue
                names = {
                    p.name
                    for p in op.parameters or ()
                    if isinstance(p, Parameter) and p.param_in == "query"
                }
                self.allowed[(method.upper(), path)] = frozenset(names)
        # ``/v1`` is left out of the document (OpenAI's own spec describes it): the names
        # its handlers declare.
        for route in app.routes:
            if isinstance(route, HTTPRoute) and route.path.startswith(UNDOCUMENTED_PREFIXES):
                for handler in route.route_handlers:
                    declared = _declared_query_names(route, handler)
                    for method in handler.http_methods:
                        self.allowed.setdefault((method, route.path_format), declared)

    async def __call__(self, request: Request[Any, Any, Any]) -> None:
        self._check_encoding(request)
        self._check_query_names(request)

    @staticmethod
    def _check_encoding(request: Request[Any, Any, Any]) -> None:
        raw_path = request.scope.get("raw_path")
        if isinstance(raw_path, bytes) and _undecodable(raw_path):
            raise ApiError(
                400,
                "invalid_request",
                "the URL path is not valid UTF-8 once percent-decoded",
                details={"location": "path"},
            )
        query = request.scope.get("query_string") or b""
        if query and _undecodable(query.replace(b"+", b" ")):
            raise ApiError(
                400,
                "invalid_request",
                "the query string is not valid UTF-8 once percent-decoded",
                details={"location": "query"},
            )

    def _check_query_names(self, request: Request[Any, Any, Any]) -> None:
        allowed = self.allowed.get((request.method, str(request.scope.get("path_template"))))
        if allowed is None or not request.scope.get("query_string"):
            return
        unknown = sorted(set(request.query_params) - allowed)
        if unknown:
            raise ApiError(
                400,
                "invalid_request",
                f"unknown query parameter(s): {', '.join(unknown)}",
                details={"unknown": unknown, "allowed": sorted(allowed)},
            )
