"""The web console's files as ``/console`` serves them: every page and module the console
loads is served with its type and the same-origin Content-Security-Policy; nothing else
is (no path outside the folder); no file names another host (the console works offline).
The console in a real browser: tests/integration/test_console_browser.py."""

from __future__ import annotations

import re

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from ai_agents.api import console

ASSETS = console.load_assets()
#: An XML namespace names no host the browser contacts.
SVG_NAMESPACE = "http://www.w3.org/2000/svg"


@pytest.fixture
def client() -> TestClient[Litestar]:
    return TestClient(Litestar(route_handlers=[console.router(ASSETS)]))


def test_the_index_is_served_with_a_same_origin_policy(client: TestClient[Litestar]) -> None:
    for path in ("/console", "/console/"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith("text/html")
        csp = response.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "connect-src 'self'" in csp
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "/console/js/app.js" in response.text


def test_every_file_the_console_loads_is_served_with_its_type(
    client: TestClient[Litestar],
) -> None:
    index = ASSETS["index.html"].body.decode()
    wanted = {
        p.removeprefix("/console/") for p in re.findall(r'(?:src|href)="(/console/[^"]+)"', index)
    }
    for name, asset in ASSETS.items():
        if name.endswith(".js"):
            for module in re.findall(r'from "\./([^"]+)"', asset.body.decode()):
                wanted.add(f"js/{module}")
    assert {"console.css", "js/app.js", "js/chat.js", "js/usage.js"} <= wanted
    types = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
    for name in sorted(wanted):
        response = client.get(f"/console/{name}")
        assert response.status_code == 200, name
        assert response.headers["content-type"].startswith(types[name[name.rindex(".") :]]), name
        assert response.content == ASSETS[name].body


@pytest.mark.parametrize(
    "path",
    [
        "/console/nope.js",
        "/console/../__init__.py",
        "/console/%2e%2e/__init__.py",
        "/console/js/../../__init__.py",
        "/console/__init__.py",
    ],
)
def test_nothing_but_the_console_files_is_served(client: TestClient[Litestar], path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404, path
    assert b"from __future__" not in response.content


def test_no_file_loads_anything_from_another_host() -> None:
    for name, asset in ASSETS.items():
        text = asset.body.decode().replace(SVG_NAMESPACE, "")
        assert not re.search(r"(?i)\b(?:https?:|wss?:)?//[a-z0-9.-]+\.[a-z]{2,}", text), name
        assert "@import" not in text, name
