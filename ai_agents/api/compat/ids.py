"""OpenAI-style ids over our UUIDs: ``asst_<32 hex>`` is the agent with that UUID.

The prefix names the kind (``asst_``, ``thread_``, ``msg_``, ``run_``, ``step_``,
``file-``, ``vs_``, ``chatcmpl-``, ``resp_``, ``conv_``), as OpenAI's ids do, and is checked when an id is read
back: a malformed id or one of another kind is the same 404 as an unknown one.
"""

from __future__ import annotations

import uuid
from uuid import UUID

from ai_agents.errors import NotFoundError

ASSISTANT = "asst_"
THREAD = "thread_"
MESSAGE = "msg_"
RUN = "run_"
STEP = "step_"
FILE = "file-"
VECTOR_STORE = "vs_"
CHAT_COMPLETION = "chatcmpl-"
RESPONSE = "resp_"
CONVERSATION = "conv_"

#: The object names used in "No <kind> found with id ..." answers.
_KINDS = {
    ASSISTANT: "assistant",
    THREAD: "thread",
    MESSAGE: "message",
    RUN: "run",
    STEP: "run step",
    FILE: "file",
    VECTOR_STORE: "vector store",
    RESPONSE: "response",
    CONVERSATION: "conversation",
}


def format_id(prefix: str, ident: UUID) -> str:
    return f"{prefix}{ident.hex}"


def parse_id(prefix: str, value: str) -> UUID:
    """The UUID behind *value*; a 404 naming the id when it is not one of *prefix*."""
    kind = _KINDS.get(prefix, "object")
    if isinstance(value, str) and value.startswith(prefix):
        body = value[len(prefix) :]
        if len(body) == 32:
            try:
                return UUID(hex=body)
            except ValueError:
                pass
    raise NotFoundError(kind, value)


def new_id(prefix: str) -> str:
    """A fresh id of *prefix* for objects that are not rows (a chat completion)."""
    return format_id(prefix, uuid.uuid4())
