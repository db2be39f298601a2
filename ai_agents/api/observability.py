"""The app's request ids and, when tracing is on, OpenTelemetry's server spans.

Every request gets an id: the client's ``X-Request-ID`` when it is a plain token (letters,
digits, ``._:-``, at most 128), else a new one. It is echoed in the ``X-Request-ID``
response header and bound to the request's log lines (``request_id``, JSON logs).
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from ai_agents.observability import tracing
from ai_agents.observability.logs import log_fields

HEADER = b"x-request-id"
_TOKEN = re.compile(rb"[A-Za-z0-9._:\-]{1,128}")
SERVICE_NAME = "ai-agents-api"


def request_id(scope: Scope) -> str:
    """The client's id when it is safe to log and echo, else a new one."""
    for name, value in scope.get("headers", ()):
        if name == HEADER and _TOKEN.fullmatch(value):
            return value.decode()
    return uuid.uuid4().hex


class RequestIdMiddleware(ASGIMiddleware):
    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        rid = request_id(scope)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", ()) if h[0].lower() != HEADER]
                message = {**message, "headers": [*headers, (HEADER, rid.encode())]}  # type: ignore[typeddict-item]
            await send(message)

        with log_fields(request_id=rid):
            await next_app(scope, receive, send_with_id)


def middleware() -> list[Any]:
    """The app's observability middleware, outermost first: OpenTelemetry's (when tracing
    is on: ``AI_AGENTS_OTEL=1``, or :func:`ai_agents.observability.tracing.enable`), then
    the request ids."""
    tracing.configure_from_env(SERVICE_NAME)
    found: list[Any] = [RequestIdMiddleware()]
    if tracing.enabled():
        found.insert(0, tracing.asgi_middleware())
    return found
