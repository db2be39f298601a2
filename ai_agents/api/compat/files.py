"""``/v1/files``: upload, list, retrieve, delete and download OpenAI files.

A file is kept with its bytes in PostgreSQL (``openai_files``), per tenant, for vector
stores (:mod:`api.compat.vector_stores`) to index. Only what the RAG chunker reads is
accepted (``.txt``, ``.md``, ``.html``, ``.pdf``, and ``.docx``, ``.pptx``, ``.xlsx`` when
the ``documents`` extra is installed: :func:`~ai_agents.rag.chunking.ingestible_suffixes`):
a file that could never be searched is refused at upload rather than failing later in a
vector store. Purposes: ``assistants`` and ``user_data``, and ``vision`` for images (png,
jpeg, gif, webp, checked by their bytes) that messages show as ``image_file`` parts; the
others (fine-tuning, batch) belong to features this server does not have.

The file object leaves out ``expires_at`` and ``status_details``: files here never expire
and ``status_details`` is deprecated, and OpenAI's schema types both as non-nullable
optional fields (an integer, a string), so ``null`` would break it; the SDK defaults both
to ``None``. The content download is the stored bytes, unchanged, as
``application/octet-stream`` (the SDK reads it as binary).

Size: at most :data:`MAX_FILE_BYTES` per file. The app's body limit
(``AI_AGENTS_API_MAX_BODY_BYTES``, 2 MB by default) is for JSON bodies; the upload route
has its own, the file limit plus :data:`MULTIPART_OVERHEAD`, and a request announcing a
larger body is refused before it is read.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Annotated, Any

from litestar import Request, Response, delete, get, post
from litestar.datastructures import UploadFile
from litestar.params import Parameter

from ai_agents.api.auth import Principal
from ai_agents.api.compat import ids
from ai_agents.api.compat.errors import invalid
from ai_agents.api.compat.images import media_type
from ai_agents.api.compat.lists import envelope, list_query
from ai_agents.api.compat.stamps import unix
from ai_agents.errors import NotFoundError
from ai_agents.files import ingestion, queries
from ai_agents.rag.chunking import ingestible_suffixes

TAGS = ["openai: files"]
MB = 1024 * 1024
#: The largest file accepted (bytes).
MAX_FILE_BYTES = 32 * MB
#: Room for the multipart framing and the other fields around the file.
MULTIPART_OVERHEAD = 1 * MB
MAX_FILENAME = 255
PURPOSES = ("assistants", "user_data", "vision")
#: What a ``vision`` file may be (its bytes are checked too).
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".gif", ".webp"})
_FIELDS = ("file", "purpose")


def file_object(row: queries.FileRow) -> dict[str, Any]:
    return {
        "id": ids.format_id(ids.FILE, row.id),
        "object": "file",
        "bytes": row.bytes,
        "created_at": unix(row.created_at),
        "filename": row.filename,
        "purpose": row.purpose,
        "status": "processed",
    }


async def find_file(principal: Principal, file_id: str) -> queries.FileRow:
    ident = ids.parse_id(ids.FILE, file_id)
    row = await queries.get_file(principal.tenant_store.engine, principal.tenant_id, ident)
    if row is None:
        raise NotFoundError("file", file_id)
    return row


def _too_large(size: int) -> Exception:
    return invalid(
        f"file is {size} bytes; the limit is {MAX_FILE_BYTES} bytes ({MAX_FILE_BYTES // MB} MB)",
        "file",
    )


def _filename(upload: UploadFile, purpose: str) -> str:
    name = PurePosixPath((upload.filename or "").replace("\\", "/")).name
    if not name or "\x00" in name or len(name) > MAX_FILENAME:
        raise invalid(f"file must have a name of 1 to {MAX_FILENAME} characters", "file")
    suffix = PurePosixPath(name).suffix.lower()
    allowed = IMAGE_SUFFIXES if purpose == "vision" else ingestible_suffixes()
    if suffix not in allowed:
        supported = ", ".join(sorted(allowed))
        shown = suffix or "(no extension)"
        raise invalid(
            f"file type {shown} of {name!r} is not supported; supported types: {supported}",
            "file",
        )
    return name


async def _read_form(request: Request[Any, Any, Any]) -> tuple[UploadFile, str]:
    announced = request.headers.get("content-length")
    limit = MAX_FILE_BYTES + MULTIPART_OVERHEAD
    if announced is not None and announced.isdigit() and int(announced) > limit:
        raise _too_large(int(announced))
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise invalid("upload the file as multipart/form-data with 'file' and 'purpose'", "file")
    form = await request.form()
    for name in form:
        if name not in _FIELDS:
            raise invalid(f"Unrecognized request argument supplied: {name}", name)
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise invalid("file is required (a multipart file part)", "file")
    purpose = form.get("purpose")
    if not isinstance(purpose, str) or not purpose:
        raise invalid("purpose is required", "purpose")
    if purpose not in PURPOSES:
        raise invalid(
            f"purpose {purpose!r} is not supported here; use one of: {', '.join(PURPOSES)}",
            "purpose",
        )
    return upload, purpose


@post(
    "/files",
    tags=TAGS,
    summary="Upload a file",
    status_code=200,
    request_max_body_size=MAX_FILE_BYTES + MULTIPART_OVERHEAD,
)
async def upload_file(request: Request[Any, Any, Any], principal: Principal) -> dict[str, Any]:
    upload, purpose = await _read_form(request)
    filename = _filename(upload, purpose)
    content = await upload.read()
    if len(content) > MAX_FILE_BYTES:
        raise _too_large(len(content))
    if not content:
        raise invalid("file is empty", "file")
    if purpose == "vision" and media_type(content) is None:
        raise invalid(f"{filename!r} is not a png, jpeg, gif or webp image", "file")
    row = await queries.insert_file(
        principal.tenant_store.engine,
        principal.tenant_id,
        filename=filename,
        purpose=purpose,
        content=content,
    )
    return file_object(row)


@get("/files", tags=TAGS, summary="List files")
async def list_files(
    principal: Principal,
    purpose: Annotated[str | None, Parameter(query="purpose", required=False)] = None,
    limit: Annotated[str | None, Parameter(query="limit", required=False)] = None,
    order: Annotated[str | None, Parameter(query="order", required=False)] = None,
    after: Annotated[str | None, Parameter(query="after", required=False)] = None,
) -> dict[str, Any]:
    query = list_query(limit, order, after, None)
    page = queries.Page(
        query.limit, query.order, after=ids.parse_id(ids.FILE, after) if after else None
    )
    rows, more = await queries.list_files(
        principal.tenant_store.engine, principal.tenant_id, page, purpose=purpose or None
    )
    return envelope([file_object(r) for r in rows], more)


@get("/files/{file_id:str}", tags=TAGS, summary="Retrieve a file")
async def retrieve_file(file_id: str, principal: Principal) -> dict[str, Any]:
    return file_object(await find_file(principal, file_id))


@get("/files/{file_id:str}/content", tags=TAGS, summary="Retrieve a file's content")
async def file_content(file_id: str, principal: Principal) -> Response[bytes]:
    row = await find_file(principal, file_id)
    data = await queries.file_content(principal.tenant_store.engine, principal.tenant_id, row.id)
    if data is None:
        raise NotFoundError("file", file_id)
    return Response(data, media_type="application/octet-stream", status_code=200)


@delete("/files/{file_id:str}", tags=TAGS, summary="Delete a file", status_code=200)
async def delete_file(file_id: str, principal: Principal) -> Response[dict[str, Any]]:
    """Deleting a file takes it out of every vector store (its passages go too)."""
    row = await find_file(principal, file_id)
    store = principal.tenant_store
    tenant = principal.tenant_id
    service = ingestion.document_service(store)
    for attached in await queries.stores_of_file(store.engine, tenant, row.id):
        removed = await queries.detach_file(store.engine, tenant, attached.vector_store_id, row.id)
        if removed is not None and service is not None:
            await ingestion.remove(store, service, tenant, removed)
    if not await queries.delete_file(store.engine, tenant, row.id):
        raise NotFoundError("file", file_id)
    return Response({"id": file_id, "object": "file", "deleted": True}, status_code=200)


HANDLERS = [upload_file, list_files, retrieve_file, file_content, delete_file]
