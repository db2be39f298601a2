"""RAG errors, each under the library's existing branches so callers catch them as usual.

- A path outside the upload directories, an unsupported file type, a bad argument:
  :class:`~ai_agents.errors.ValidationError` children (fix the call).
- A document that is not in the caller's scope: :class:`~ai_agents.errors.NotFoundError`.
- The search backend failing underneath us: :class:`~ai_agents.errors.StorageError`.
"""

from __future__ import annotations

from typing import Any

from ai_agents.errors import NotFoundError, StorageError, ValidationError


class UploadRejected(ValidationError):
    """``upload_document`` was asked for a file outside the configured upload directories."""

    code = "upload_rejected"


class UnsupportedDocument(ValidationError):
    """The file type cannot be ingested (or its content could not be extracted)."""

    code = "unsupported_document"


class DocumentNotFound(NotFoundError):
    """No document with this ``file_hash`` in the caller's tenant (and entity)."""

    code = "document_not_found"

    def __init__(self, file_hash: str) -> None:
        super().__init__("document", file_hash)


class DocumentIndexError(StorageError):
    """The document index (OpenSearch or PostgreSQL) failed or answered unexpectedly."""

    code = "document_index_error"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message, details=details)
