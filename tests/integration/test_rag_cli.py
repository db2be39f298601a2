"""``ai-agents ingest``: a progress bar counting chunks, one line per file, idempotent
re-runs, a failing file reported while the others are ingested."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
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
    total = sum(int(line.split()[1]) for line in lines)
    # The progress bar counts chunks (its total grows as files are chunked) and files.
    assert f"{total}/{total}" in first.stderr and "files=12/12" in first.stderr
    assert f"12 files, 12 (re)indexed, {total} chunks" in first.stderr

    second = _ingest(database_url, *args, "--no-progress")
    assert second.returncode == 0, second.stderr
    assert all(line.startswith("unchanged") for line in second.stdout.splitlines())
    assert "files=12/12" not in second.stderr and "12 files, 0 (re)indexed" in second.stderr

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


def test_ingest_command_reports_a_failing_file_and_ingests_the_others(
    database_url: str, tmp_path: Path
) -> None:
    folder = tmp_path / "docs"
    shutil.copytree(HANDBOOK, folder)
    (folder / "m-broken.pdf").write_bytes(b"%PDF-1.4 not really a PDF")
    run = _ingest(database_url, str(folder), "--embedder", "hashing", "--tenant", "acme")
    assert run.returncode == 1, run.stderr  # partial failure: non-zero exit status
    lines = run.stdout.splitlines()
    assert len(lines) == 13
    failed = [line for line in lines if line.startswith("failed")]
    assert len(failed) == 1 and "m-broken.pdf" in failed[0]
    assert sum(line.startswith("indexed") for line in lines) == 12
    assert "13 files, 12 (re)indexed" in run.stderr and "1 failed" in run.stderr

    # --json: one object per file, the failure with its error.
    again = _ingest(
        database_url, str(folder), "--embedder", "hashing", "--tenant", "acme", "--json"
    )
    objects = [json.loads(line) for line in again.stdout.splitlines()]
    assert [o["status"] for o in objects].count("unchanged") == 12
    (bad,) = [o for o in objects if o["status"] == "failed"]
    assert bad["source"] == "m-broken.pdf" and "m-broken.pdf" in bad["error"]


def test_ingest_command_with_minilm_says_it_loads_the_model(
    database_url: str, tmp_path: Path
) -> None:
    pytest.importorskip("sentence_transformers")
    shutil.copy(HANDBOOK / "pets.md", tmp_path / "pets.md")
    run = _ingest(database_url, str(tmp_path), "--embedder", "minilm")
    assert run.returncode == 0, run.stderr
    assert "loading model all-MiniLM-L6-v2" in run.stderr
    assert "Loading weights" not in run.stderr  # no progress bar of transformers' own
    assert run.stdout.startswith("indexed")
