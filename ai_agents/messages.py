"""The one internal message format. Providers convert to and from it at their edge.

A thread is a sequence of :class:`Message` rows:

- ``system`` / ``user``: ``content`` only; a user message may also show the model images
  (:attr:`Message.images`, kept in its metadata; providers whose models take no images
  refuse the run).
- ``assistant``: ``content`` (may be empty) and/or ``tool_calls``.
- ``tool``: the result of one tool call: ``tool_call_id`` and ``tool_name`` name the call
  it answers, ``content`` is the result text; ``metadata["is_error"]`` marks a failure.

Persisted messages also carry ``id``, ``seq`` (per-thread order), token counts, the
provider/model that wrote them and their cost.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

Role = Literal["system", "user", "assistant", "tool"]
ROLES: tuple[Role, ...] = ("system", "user", "assistant", "tool")


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A model's request to call a tool, with arguments already parsed to a dict."""

    id: str
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "arguments": self.arguments}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ToolCall:
        args = data.get("arguments") or {}
        if isinstance(args, str):  # tolerate rows written with encoded arguments
            try:
                args = json.loads(args)
            except json.JSONDecodeError:
                args = {"_raw": args}
        return cls(id=str(data["id"]), name=str(data["name"]), arguments=dict(args))


#: The metadata key holding a message's images (a list of :class:`ImageInput` objects).
IMAGES_KEY = "ai_agents.images"
IMAGE_DETAILS = ("auto", "low", "high")
_DATA_URL = re.compile(r"^data:(image/(?:png|jpeg|gif|webp));base64,([A-Za-z0-9+/=]+)$")


@dataclass(frozen=True, slots=True)
class ImageInput:
    """An image a user message shows the model: an ``https://`` link or a ``data:`` URL
    (``data:image/png;base64,...``). ``file_id`` names the uploaded file it came from."""

    url: str
    detail: str = "auto"
    file_id: str | None = None

    @property
    def inline(self) -> tuple[str, str] | None:
        """(media type, base64 data) of a ``data:`` URL; ``None`` for a link."""
        match = _DATA_URL.match(self.url)
        return (match.group(1), match.group(2)) if match else None

    def to_json(self) -> dict[str, Any]:
        out = {"url": self.url, "detail": self.detail}
        if self.file_id is not None:
            out["file_id"] = self.file_id
        return out

    @classmethod
    def from_json(cls, data: Any) -> ImageInput | None:
        if not isinstance(data, dict) or not isinstance(data.get("url"), str):
            return None
        detail = str(data["detail"]) if data.get("detail") in IMAGE_DETAILS else "auto"
        file_id = data.get("file_id")
        return cls(
            url=data["url"], detail=detail, file_id=file_id if isinstance(file_id, str) else None
        )


def is_image_url(url: str) -> bool:
    """Is *url* an image a vendor can read: an ``https``/``http`` link or an image
    ``data:`` URL (png, jpeg, gif, webp, base64)?"""
    return url.startswith(("https://", "http://")) or _DATA_URL.match(url) is not None


@dataclass(slots=True, kw_only=True)
class Message:
    """One message of a thread (saved or about to be)."""

    role: Role
    content: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str | None = None
    tool_name: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    # Filled in for persisted messages / by the runner.
    id: UUID | None = None
    thread_id: UUID | None = None
    seq: int | None = None
    created_at: datetime | None = None
    token_count: int | None = None
    provider: str | None = None
    model: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost: float | None = None
    #: The run whose turn saved it (``None``: added with ``add_messages``).
    run_id: UUID | None = None

    @property
    def text(self) -> str:
        return self.content or ""

    @property
    def is_error(self) -> bool:
        return bool(self.metadata.get("is_error"))

    @property
    def images(self) -> list[ImageInput]:
        """The images of a user message (kept in its metadata, :data:`IMAGES_KEY`)."""
        value = self.metadata.get(IMAGES_KEY)
        found = [ImageInput.from_json(v) for v in value] if isinstance(value, list) else []
        return [image for image in found if image is not None]

    def byte_size(self) -> int:
        """Bytes this message counts against thread/user size limits."""
        size = len(self.text.encode())
        if self.tool_calls:
            size += len(json.dumps([c.to_json() for c in self.tool_calls]).encode())
        size += sum(len(image.url) for image in self.images)
        return size


def system(content: str) -> Message:
    return Message(role="system", content=content)


def user(content: str) -> Message:
    return Message(role="user", content=content)


def assistant(content: str | None = None, tool_calls: list[ToolCall] | None = None) -> Message:
    return Message(role="assistant", content=content, tool_calls=list(tool_calls or []))


def tool_result(call: ToolCall, content: str, *, is_error: bool = False) -> Message:
    return Message(
        role="tool",
        content=content,
        tool_call_id=call.id,
        tool_name=call.name,
        metadata={"is_error": True} if is_error else {},
    )
