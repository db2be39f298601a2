"""The web console: a build-free single page (HTML, CSS, JavaScript modules) at ``/console``.

Its files live in ``api/console/static/`` and ship in the package; they are read once when
the app is built and served from memory, by name only (a name that is not one of them is a
404, so no path can reach outside the folder). The page loads nothing from another host:
its Content-Security-Policy allows this origin only. It signs in with an API key, kept in
the tab's ``sessionStorage``, and talks to ``/api/v1`` (and ``/v1/files`` for documents)
with it as a Bearer token, like any other client: the console has no rights of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from litestar import Response, Router, get
from litestar.exceptions import NotFoundException

STATIC_DIR = Path(__file__).parent / "static"
PREFIX = "/console"

_MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}

#: This origin only: no CDN, no inline script, no framing.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    # Assets change with the package: revalidate rather than serve a stale module.
    "Cache-Control": "no-cache",
}


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str


def load_assets(root: Path = STATIC_DIR) -> dict[str, Asset]:
    """Every servable file under *root*, by its relative POSIX path."""
    assets: dict[str, Asset] = {}
    for path in sorted(root.rglob("*")):
        media_type = _MEDIA_TYPES.get(path.suffix)
        if path.is_file() and media_type is not None:
            assets[path.relative_to(root).as_posix()] = Asset(path.read_bytes(), media_type)
    if "index.html" not in assets:
        raise RuntimeError(f"the console's index.html is missing from {root}")
    return assets


def _response(asset: Asset) -> Response[bytes]:
    return Response(asset.body, media_type=asset.media_type, headers=_HEADERS)


def router(assets: dict[str, Asset] | None = None) -> Router:
    """The ``/console`` routes (left out of the OpenAPI document; they need no key)."""
    files = assets if assets is not None else load_assets()

    @get("/", include_in_schema=False, sync_to_thread=False)
    def index() -> Response[bytes]:
        return _response(files["index.html"])

    @get("/{name:path}", include_in_schema=False, sync_to_thread=False)
    def asset(name: str) -> Response[bytes]:
        found = files.get(name.lstrip("/"))
        if found is None:
            raise NotFoundException(f"no console file {name!r}")
        return _response(found)

    return Router(PREFIX, route_handlers=[index, asset])
