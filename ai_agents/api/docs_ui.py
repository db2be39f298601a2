"""Swagger UI for ``/api/v1/docs``, served by this server: no request leaves the host.

Litestar's :class:`~litestar.openapi.plugins.SwaggerRenderPlugin` loads Swagger UI's
JavaScript, CSS and favicon from a CDN by default, so offline the page stays blank. Here
the files come from the ``swagger-ui-bundle-v2`` package (Swagger UI 5, which reads
OpenAPI 3.1) and are answered at ``<docs>/assets/<name>`` by a route added to the
documentation's own router: only the few files the page needs, read once, cached by
the browser for a day.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from litestar import Response, Router, get
from litestar.exceptions import NotFoundException
from litestar.openapi.plugins import SwaggerRenderPlugin
from swagger_ui_bundle import swagger_ui_path

ASSETS = "/assets"

#: The files the page uses, with their media types.
_FILES: dict[str, str] = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui-standalone-preset.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon-32x32.png": "image/png",
}


@cache
def _read(name: str) -> bytes:
    data: bytes = (swagger_ui_path / name).read_bytes()
    return data


@get(f"{ASSETS}/{{name:str}}", include_in_schema=False, sync_to_thread=False)
def swagger_ui_asset(name: str) -> Response[bytes]:
    media_type = _FILES.get(name)
    if media_type is None:
        raise NotFoundException(f"no documentation asset named {name!r}")
    return Response(
        _read(name), media_type=media_type, headers={"Cache-Control": "public, max-age=86400"}
    )


class LocalSwaggerUI(SwaggerRenderPlugin):
    """Swagger UI whose page references only ``<docs path>/assets/...`` on this server."""

    def __init__(self, docs_path: str, **kwargs: Any) -> None:
        assets = f"{docs_path.rstrip('/')}{ASSETS}"
        super().__init__(
            js_url=f"{assets}/swagger-ui-bundle.js",
            css_url=f"{assets}/swagger-ui.css",
            standalone_preset_js_url=f"{assets}/swagger-ui-standalone-preset.js",
            favicon=f"<link rel='icon' type='image/png' href='{assets}/favicon-32x32.png'>",
            **kwargs,
        )

    def receive_router(self, router: Router) -> None:
        router.register(swagger_ui_asset)
