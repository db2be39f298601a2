"""OpenAI's ``thread`` and ``thread.message`` objects, and the messages a request adds.

Shared by ``/v1/threads`` (create with ``messages``), ``/v1/threads/{id}/messages`` and
runs (``additional_messages``, ``thread.messages`` of create-and-run).

A message's ``content`` is stored as its text; an OpenAI content array of ``text`` parts
is joined with blank lines; ``image_url`` and ``image_file`` parts are kept on the user
message and shown to models that take images (:mod:`api.compat.images`). ``attachments``
are kept on the message and indexed for ``file_search`` (:mod:`api.compat.attachments`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from uuid import UUID

from ai_agents.api.auth import Principal
from ai_agents.api.compat import attachments, fields, ids
from ai_agents.api.compat import images as images_api
from ai_agents.api.compat.errors import invalid
from ai_agents.api.compat.stamps import unix
from ai_agents.api.compat.tool_resources import resources_object
from ai_agents.files.search import citation_refs, cites, file_citations, thread_resources
from ai_agents.messages import ImageInput, Message
from ai_agents.records import ThreadRecord
from ai_agents.store import AgentStore

#: The longest text a message added through ``/v1`` may have (OpenAI's limit).
MAX_MESSAGE_CHARS = 256_000
#: How many messages one request may add (``thread.messages``, ``additional_messages``).
MAX_NEW_MESSAGES = 32
_MESSAGE_FIELDS = ("role", "content", "attachments", "metadata")
#: What a run records in the metadata of the messages it saves (finish reason, rate-limit
#: wait, routing, ...): its bookkeeping, not the caller's metadata, so ``/v1`` hides it.
RUN_METADATA_KEYS = frozenset(
    {"finish_reason", "iteration", "rate_limit", "routing", "structured_output_retry", "is_error"}
)


def public_metadata(metadata: Mapping[str, Any], *, from_run: bool = False) -> dict[str, str]:
    """The pairs ``/v1`` shows: string values (OpenAI's metadata), without a run's
    bookkeeping on the messages a run saved (*from_run*)."""
    return {
        k: v
        for k, v in metadata.items()
        if isinstance(v, str) and not (from_run and k in RUN_METADATA_KEYS)
    }


def hidden_metadata_keys(message: Message) -> set[str]:
    """The keys of *message*'s metadata that ``/v1`` does not show (kept on modify)."""
    shown = public_metadata(message.metadata, from_run=message.run_id is not None)
    return set(message.metadata) - set(shown)


def thread_object(thread: ThreadRecord) -> dict[str, Any]:
    return {
        "id": ids.format_id(ids.THREAD, thread.id),
        "object": "thread",
        "created_at": unix(thread.created_at),
        "metadata": public_metadata(thread.metadata),
        "tool_resources": resources_object(thread_resources(thread.metadata)),
    }


def _content_of(content: Any, param: str) -> tuple[str, list[ImageInput]]:
    """The text of a message's ``content`` (text parts joined with blank lines) and its
    images (``image_url``, ``image_file`` parts)."""
    images: list[ImageInput] = []
    if isinstance(content, str):
        text = content
    elif isinstance(content, list) and content:
        parts: list[str] = []
        for i, part in enumerate(content):
            where = f"{param}[{i}]"
            kind = part.get("type") if isinstance(part, dict) else None
            if kind in ("image_url", "image_file"):
                images.append(images_api.parse_part(part, where))
                continue
            if kind != "text" or not isinstance(part.get("text"), str):
                raise invalid(f"{where} must be a text, image_url or image_file part", where)
            parts.append(part["text"])
        text = "\n\n".join(parts)
    else:
        raise invalid(f"{param} must be a string or a non-empty array of content parts", param)
    if not text.strip() and not images:
        raise invalid(f"{param} must not be empty", param)
    if len(text) > MAX_MESSAGE_CHARS:
        raise invalid(
            f"{param} may be at most {MAX_MESSAGE_CHARS} characters, got {len(text)}", param
        )
    if "\x00" in text:
        raise invalid(f"{param} must not contain NUL characters", param)
    return text, images


def new_message(body: Any, param: str = "") -> Message:
    """One message a request adds (``{role, content, attachments?, metadata?}``)."""
    prefix = f"{param}." if param else ""
    if not isinstance(body, dict):
        raise invalid(f"{param or 'the message'} must be an object", param or None)
    for name in body:
        if name not in _MESSAGE_FIELDS:
            raise invalid(f"Unrecognized request argument supplied: {prefix}{name}", prefix + name)
    role = body.get("role")
    if role not in ("user", "assistant"):
        raise invalid(f"{prefix}role must be 'user' or 'assistant'", prefix + "role")
    found = attachments.parse(body.get("attachments"), prefix + "attachments")
    text, images = _content_of(body.get("content"), prefix + "content")
    if images and role != "user":
        raise invalid(f"{prefix}content: only user messages may show images", prefix + "content")
    message = Message(
        role=role,
        content=text,
        metadata=fields.metadata(body.get("metadata"), prefix + "metadata"),
    )
    return attachments.with_attachments(images_api.with_images(message, images), found)


def new_messages(items: Any, param: str) -> list[Message]:
    if items is None:
        return []
    if not isinstance(items, list):
        raise invalid(f"{param} must be an array of messages", param)
    if len(items) > MAX_NEW_MESSAGES:
        raise invalid(f"{param} may have at most {MAX_NEW_MESSAGES} messages", param)
    return [new_message(item, f"{param}[{i}]") for i, item in enumerate(items)]


def message_object(
    message: Message,
    *,
    assistant_ids: Mapping[UUID, UUID] | None = None,
    citations: Mapping[UUID, Mapping[str, str]] | None = None,
) -> dict[str, Any]:
    """*message* (saved) as a ``thread.message``. *assistant_ids*: the agent of each run
    (by run id) for the ``assistant_id`` of the messages runs saved; *citations*: the
    refs each run's ``file_search`` calls gave the model (``file_citation`` annotations,
    :func:`message_citations`)."""
    assert message.id is not None and message.thread_id is not None
    created = unix(message.created_at)
    agent = (assistant_ids or {}).get(message.run_id) if message.run_id else None
    refs = (citations or {}).get(message.run_id) if message.run_id else None
    annotations = file_citations(message.text, refs) if refs else []
    content: list[dict[str, Any]] = []
    if message.text or not message.images:  # text first, then the images, as sent
        text = {"value": message.text, "annotations": annotations}
        content.append({"type": "text", "text": text})
    content += images_api.content_parts(message)
    return {
        "id": ids.format_id(ids.MESSAGE, message.id),
        "object": "thread.message",
        "created_at": created,
        "thread_id": ids.format_id(ids.THREAD, message.thread_id),
        "role": "assistant" if message.role == "assistant" else "user",
        "content": content,
        "assistant_id": ids.format_id(ids.ASSISTANT, agent) if agent else None,
        "run_id": ids.format_id(ids.RUN, message.run_id) if message.run_id else None,
        "attachments": attachments.of_message(message),
        "metadata": public_metadata(message.metadata, from_run=message.run_id is not None),
        "status": "completed",
        "completed_at": created,
        "incomplete_at": None,
        "incomplete_details": None,
    }


async def message_citations(
    store: AgentStore, messages: Iterable[Message]
) -> dict[UUID, dict[str, str]]:
    """The refs the runs of *messages* were given, for those of their answers that cite
    one (no query for a message without a ref)."""
    runs = [
        m.run_id
        for m in messages
        if m.run_id is not None and m.role == "assistant" and cites(m.text)
    ]
    return await citation_refs(store, runs) if runs else {}


async def load_new_messages(principal: Principal, messages: Sequence[Message]) -> None:
    """Before anything is written: the image files of *messages* loaded, their attached
    files checked (each a 404 naming a file that is not the tenant's)."""
    await images_api.resolve(principal, messages)
    await attachments.check_files(principal, messages)
