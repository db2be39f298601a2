"""Where ``upload_document`` may read files: each tenant only its own upload directories.

The model names a file; the tool must never read one that another tenant put there, nor
anything else on the server. So every tenant has its own directories:

- ``{root}/{tenant_id}`` under each configured upload root (``upload_dirs``), when the
  tenant id is a safe directory name (:func:`tenant_directory_name`: ASCII letters,
  digits and ``._@+=,-``, not starting with a dot, at most 255 characters); a tenant
  whose id is not one gets no directory under the roots;
- or, for the tenants listed in ``tenant_upload_dirs``, exactly the directories listed
  there (the roots are then not used for that tenant).

A path is resolved (``..`` and every symlink followed) and must lie inside one of the
calling tenant's directories. Anything else (a missing file, another tenant's file named
relatively, absolutely or through a symlink, a directory) is refused with one message
that names only the path the model gave, so the answer never tells whether a file exists
outside the tenant's directories.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from ai_agents.errors import UsageError
from ai_agents.rag.chunking import ingestible_suffixes
from ai_agents.rag.errors import UploadRejected

PathLike = str | os.PathLike[str]

#: A tenant id used as a directory name as it is: one path component, no leading dot (so
#: never ``.``, ``..`` or a hidden directory), no separator, ASCII only (no Unicode
#: normalization surprises), at most 255 bytes (the usual file name limit).
_SAFE_DIRECTORY_NAME = re.compile(r"[A-Za-z0-9_@+=,-][A-Za-z0-9._@+=,-]{0,254}")


def tenant_directory_name(tenant_id: str) -> str | None:
    """*tenant_id* if it can be used as a directory name unchanged, else None.

    Ids are not escaped into some other name: an operator creating ``{root}/{tenant_id}``
    should see the tenant id, and a tenant whose id is not a safe name is configured
    explicitly (``tenant_upload_dirs``) instead.
    """
    if isinstance(tenant_id, str) and _SAFE_DIRECTORY_NAME.fullmatch(tenant_id):
        return tenant_id
    return None


def _not_inside(file_path: str) -> UploadRejected:
    """The one refusal for every path that is not a file of the tenant's directories."""
    return UploadRejected(
        f"file_path {file_path!r} is not a file inside the upload directory; give a path "
        "relative to it, such as 'guide.pdf' or 'handbook/rules.md'",
        details={"file_path": file_path[:300]},
    )


def _check_file_path(file_path: str) -> None:
    if not isinstance(file_path, str) or not file_path.strip() or "\x00" in file_path:
        raise UploadRejected("file_path must be a file name such as 'guide.pdf'")


def _existing_directory(directory: PathLike) -> Path:
    root = Path(directory).resolve()
    if not root.is_dir():
        raise UsageError(f"upload directory {directory} does not exist")
    return root


class UploadDirectories:
    """A set of directories a path must resolve into (resolved once, symlinks included)."""

    def __init__(self, directories: Sequence[PathLike]) -> None:
        self.roots = [_existing_directory(d) for d in directories]

    def resolve(self, file_path: str) -> tuple[Path, str]:
        """The real file and its name relative to its directory, or UploadRejected."""
        if not self.roots:
            raise UploadRejected("uploading documents is not enabled (no upload directory)")
        return _resolve_inside(self.roots, file_path)


def _resolve_inside(roots: Sequence[Path], file_path: str) -> tuple[Path, str]:
    _check_file_path(file_path)
    requested = Path(file_path)
    for root in roots:
        candidate = requested if requested.is_absolute() else root / requested
        try:
            real = candidate.resolve(strict=True)
        except (OSError, RuntimeError):  # missing, or a symlink loop
            continue
        if real.is_relative_to(root) and real.is_file():
            readable = ingestible_suffixes()
            if real.suffix.lower() not in readable:
                supported = ", ".join(sorted(readable))
                raise UploadRejected(f"unsupported file type; supported: {supported}")
            return real, real.relative_to(root).as_posix()
    raise _not_inside(file_path)


class TenantUploads:
    """Each tenant's upload directories (see the module docstring)."""

    def __init__(
        self,
        roots: Sequence[PathLike] = (),
        tenant_dirs: Mapping[str, Sequence[PathLike]] | None = None,
    ) -> None:
        self.roots = [_existing_directory(d) for d in roots]
        self.tenant_dirs = {
            tenant: [_existing_directory(d) for d in dirs]
            for tenant, dirs in (tenant_dirs or {}).items()
        }

    @property
    def enabled(self) -> bool:
        return bool(self.roots or self.tenant_dirs)

    def directories(self, tenant_id: str) -> list[Path]:
        """The directories *tenant_id* may read now (those that exist)."""
        if tenant_id in self.tenant_dirs:
            return self.tenant_dirs[tenant_id]
        name = tenant_directory_name(tenant_id)
        if name is None:
            return []
        found = []
        for root in self.roots:
            # The exact name must be listed: on a case-insensitive file system
            # ``root / "ACME"`` would otherwise open tenant ``acme``'s directory.
            if name in os.listdir(root):
                directory = (root / name).resolve()
                if directory.is_dir():
                    found.append(directory)
        return found

    def resolve(self, tenant_id: str, file_path: str) -> tuple[Path, str]:
        """The real file of *tenant_id* and its name relative to the tenant's directory.

        Raises UploadRejected: when uploads are off, for an unsupported file type inside
        the tenant's directories, and (with the same message whatever the reason) for
        every path that is not a file inside them.
        """
        if not self.enabled:
            raise UploadRejected("uploading documents is not enabled (no upload directory)")
        _check_file_path(file_path)
        directories = self.directories(tenant_id)
        if not directories:
            raise _not_inside(file_path)
        return _resolve_inside(directories, file_path)
