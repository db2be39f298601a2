"""Image parts of ``/v1`` messages: ``image_url`` (a link or an image ``data:`` URL) and
``image_file`` (a file uploaded with purpose ``vision``).

They are kept on the user message (:attr:`ai_agents.messages.Message.images`) and sent
to the model as its vendor takes images (OpenAI ``image_url`` parts, Anthropic ``image``
blocks, Ollama ``images``). A run on a model the registry marks without vision
(``supports_vision``) fails with an error saying so. An ``image_file`` is read once, when
the message is added, and kept inline (a ``data:`` URL) with its ``file_id``, so the run
never needs the file again; deleting the file later does not change the message.

:func:`parse_part` checks one part (with the message); :func:`resolve` loads the files,
before anything is written; :func:`content_parts` shows a saved message's parts.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

from ai_agents.api.auth import Principal
from ai_agents.api.compat import ids
from ai_agents.api.compat.errors import invalid
from ai_agents.errors import NotFoundError
from ai_agents.files import queries
from ai_agents.messages import IMAGE_DETAILS, IMAGES_KEY, ImageInput, Message, is_image_url

#: How many images one message may show.
MAX_IMAGES = 10
#: The longest image URL (a ``data:`` URL holds the image).
MAX_URL_CHARS = 20 * 1024 * 1024
_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


def media_type(data: bytes) -> str | None:
    """The image type of *data* by its first bytes (png, jpeg, gif, webp), else None."""
    for magic, kind in _MAGIC:
        if data.startswith(magic):
            return kind
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def _detail(spec: dict[str, Any], where: str) -> str:
    detail = spec.get("detail", "auto")
    if detail not in IMAGE_DETAILS:
        raise invalid(f"{where}.detail must be 'auto', 'low' or 'high'", f"{where}.detail")
    return str(detail)


def parse_part(part: dict[str, Any], where: str) -> ImageInput:
    """One ``image_url`` or ``image_file`` part, checked (a file is loaded by :func:`resolve`)."""
    kind = part["type"]
    spec = part.get(kind)
    if not isinstance(spec, dict):
        raise invalid(f"{where}.{kind} must be an object", f"{where}.{kind}")
    if kind == "image_url":
        url = spec.get("url")
        if not isinstance(url, str) or len(url) > MAX_URL_CHARS or not is_image_url(url):
            raise invalid(
                f"{where}.image_url.url must be an https link or a data:image/(png|jpeg|gif|webp)"
                ";base64 URL",
                f"{where}.image_url.url",
            )
        return ImageInput(url=url, detail=_detail(spec, f"{where}.image_url"))
    file_id = spec.get("file_id")
    if not isinstance(file_id, str) or not file_id:
        raise invalid(f"{where}.image_file.file_id must be a file id", f"{where}.image_file")
    return ImageInput(url="", detail=_detail(spec, f"{where}.image_file"), file_id=file_id)


def with_images(message: Message, images: list[ImageInput]) -> Message:
    """*message* carrying *images* (as saved)."""
    if images:
        if len(images) > MAX_IMAGES:
            raise invalid(f"a message may show at most {MAX_IMAGES} images, got {len(images)}")
        message.metadata = {**message.metadata, IMAGES_KEY: [i.to_json() for i in images]}
    return message


async def resolve(principal: Principal, messages: Sequence[Message]) -> None:
    """Load the ``image_file`` parts of *messages* (the tenant's image files; a 404 naming
    one that is not, a 400 for a file that is no image). Nothing is written."""
    engine, tenant = principal.tenant_store.engine, principal.tenant_id
    for message in messages:
        images = message.images
        if not any(i.file_id and not i.url for i in images):
            continue
        loaded: list[ImageInput] = []
        for image in images:
            if image.url or image.file_id is None:
                loaded.append(image)
                continue
            data = await queries.file_content(engine, tenant, ids.parse_id(ids.FILE, image.file_id))
            if data is None:
                raise NotFoundError("file", image.file_id)
            kind = media_type(data)
            if kind is None:
                raise invalid(
                    f"file {image.file_id} is not a png, jpeg, gif or webp image", "image_file"
                )
            url = f"data:{kind};base64,{base64.b64encode(data).decode()}"
            loaded.append(ImageInput(url=url, detail=image.detail, file_id=image.file_id))
        message.metadata = {**message.metadata, IMAGES_KEY: [i.to_json() for i in loaded]}


def content_parts(message: Message) -> list[dict[str, Any]]:
    """OpenAI's image parts of a saved message: ``image_file`` for an uploaded file,
    ``image_url`` (the link or ``data:`` URL as given) otherwise."""
    parts: list[dict[str, Any]] = []
    for image in message.images:
        if image.file_id is not None:
            parts.append(
                {
                    "type": "image_file",
                    "image_file": {"file_id": image.file_id, "detail": image.detail},
                }
            )
        else:
            parts.append(
                {"type": "image_url", "image_url": {"url": image.url, "detail": image.detail}}
            )
    return parts
