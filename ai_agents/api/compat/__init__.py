"""The OpenAI-compatible API at ``/v1``: the official ``openai`` SDKs work against this
server with only ``base_url`` changed (see ``docs/openai-compat.md``).

It shares the server's API keys (the SDK's ``Authorization: Bearer``), tenants, rate
limits and store with ``/api/v1``; every object belongs to the key's own tenant (an admin
key too: OpenAI clients have one organization). Objects, ids, timestamps, list envelopes
and errors have OpenAI's shapes (:mod:`api.compat.ids`, :mod:`api.compat.lists`,
:mod:`api.compat.errors`).
"""

from __future__ import annotations

from litestar import Router

from ai_agents.api.compat import (
    assistants,
    chat,
    conversations,
    files,
    messages,
    models,
    responses,
    runs,
    threads,
    vector_stores,
)
from ai_agents.api.compat.errors import PREFIX

HANDLERS = [
    *assistants.HANDLERS,
    *threads.HANDLERS,
    *messages.HANDLERS,
    *runs.HANDLERS,
    *chat.HANDLERS,
    *models.HANDLERS,
    *responses.HANDLERS,
    *conversations.HANDLERS,
    *files.HANDLERS,
    *vector_stores.HANDLERS,
]


def router() -> Router:
    # Documented by OpenAI's own OpenAPI spec, not in this server's /schema (/api/v1).
    return Router(PREFIX, route_handlers=HANDLERS, include_in_schema=False)
