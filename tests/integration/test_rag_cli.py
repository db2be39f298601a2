"""``ai-agents ingest``: a progress bar, one line per file, idempotent re-runs."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("tqdm")
pytest.importorskip("numpy")

from ai_agents.rag.pg_index import PgDocumentIndex  # noqa: E402

HANDBOOK = Path(__file__).resolve().parents[1] / "data" / "handbook"


def _ingest(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AI_AGENTS_DATABASE_URL": database_url}
    return subprocess.run(
        [sys.executable, "-m", "ai_agents", "ingest", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_ingest_command_indexes_a_directory_once(database_url: str) -> None:
    args = (str(HANDBOOK), "--tenant", "acme", "--entity", "harbor-view", "--embedder", "hashing")
    first = _ingest(database_url, *args)
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert len(lines) == 12
    assert all(line.startswith("indexed") for line in lines)
    assert any(line.endswith(" house-rules.pdf") for line in lines)
    assert "12/12" in first.stderr and "chunks=" in first.stderr  # the progress bar
    assert "12 files, 12 (re)indexed" in first.stderr

    second = _ingest(database_url, *args, "--no-progress")
    assert second.returncode == 0, second.stderr
    assert all(line.startswith("unchanged") for line in second.stdout.splitlines())
    assert "12/12" not in second.stderr and "12 files, 0 (re)indexed" in second.stderr

    async def listed() -> list[tuple[str, str | None]]:
        index = PgDocumentIndex.from_url(database_url)
        try:
            return [(d.source, d.entity_id) for d in await index.list_documents("acme")]
        finally:
            await index.aclose()

    documents = asyncio.run(listed())
    assert len(documents) == 12 and ("parking.html", "harbor-view") in documents


def test_ingest_command_errors(database_url: str, tmp_path: Path) -> None:
    empty = _ingest(database_url, str(tmp_path), "--embedder", "hashing")
    assert empty.returncode == 1 and "no supported files" in empty.stderr
    missing = _ingest(database_url, str(tmp_path / "nope.md"), "--embedder", "hashing")
    assert missing.returncode == 1 and "does not exist" in missing.stderr
