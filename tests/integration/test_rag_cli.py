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

from ai_agents.embeddings import HashingEmbedder  # noqa: E402
from ai_agents.rag.pg_index import PgDocumentIndex  # noqa: E402
from tests.office_documents import (  # noqa: E402
    BUILDING_PPTX,
    CONTACTS_XLSX,
    LAUNDRY_DOCX,
    make_docx,
    make_pptx,
    make_xlsx,
)

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
    assert "model all-MiniLM-L6-v2 loaded in" in run.stderr
    assert " INFO " not in run.stderr  # no log lines of the model loader across the bar
    assert run.stdout.startswith("indexed")


def test_ingest_command_skips_bad_files_lists_them_at_the_end_and_indexes_the_rest(
    database_url: str, tmp_path: Path
) -> None:
    """Good text, Markdown, DOCX, PPTX and XLSX files next to a corrupt PDF, a corrupt DOCX
    and a file no reader understands: the good ones are indexed and searchable, the bad
    ones are skipped, listed at the end with their errors, and the exit status is 1."""
    pytest.importorskip("markitdown")
    folder = tmp_path / "docs"
    folder.mkdir()
    shutil.copy(HANDBOOK / "pets.md", folder / "pets.md")
    shutil.copy(HANDBOOK / "laundry.txt", folder / "laundry.txt")
    (folder / "laundry-room.docx").write_bytes(make_docx(LAUNDRY_DOCX))
    (folder / "building.pptx").write_bytes(make_pptx(BUILDING_PPTX))
    (folder / "contacts.xlsx").write_bytes(make_xlsx(CONTACTS_XLSX))
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4 not really a PDF")
    (folder / "garbled.docx").write_bytes(b"PK\x03\x04 this zip was cut short")
    photo = tmp_path / "photo.png"  # named on the command line: no reader takes it
    photo.write_bytes(b"\x89PNG\r\n\x1a\n")
    run = _ingest(
        database_url, str(folder), str(photo), "--embedder", "hashing", "--tenant", "acme"
    )
    assert run.returncode == 1, run.stderr
    statuses = {}
    for line in run.stdout.splitlines():  # "status  N chunks  hash  source[: error]"
        status, _, _, _, rest = line.split(maxsplit=4)
        statuses[rest.split(": ", 1)[0]] = status
    assert statuses == {
        "broken.pdf": "failed",
        "building.pptx": "indexed",
        "contacts.xlsx": "indexed",
        "garbled.docx": "failed",
        "laundry-room.docx": "indexed",
        "laundry.txt": "indexed",
        "pets.md": "indexed",
        str(photo): "failed",
    }
    # The summary, then every failure with its error: the last lines of stderr.
    tail = run.stderr.splitlines()[-4:]
    assert tail[0] == "could not ingest 3 files:"
    assert tail[1].startswith("  broken.pdf: cannot read PDF 'broken.pdf'")
    assert tail[2].startswith("  garbled.docx: cannot read DOCX 'garbled.docx'")
    assert tail[3].startswith(f"  {photo}: cannot ingest 'photo.png': supported file types")
    assert "8 files, 5 (re)indexed" in run.stderr and ", 3 failed" in run.stderr
    assert "WARNING" not in run.stderr  # pypdf's complaints: the failure says it once

    async def indexed() -> tuple[set[str], dict[str, str]]:
        index = PgDocumentIndex.from_url(database_url)
        embedder = HashingEmbedder()
        try:
            sources = {d.source for d in await index.list_documents("acme")}
            found = {}
            for query in ("Olga Berg caretaker phone", "boiler serviced Hetta Heating"):
                (vector,) = await embedder.embed([query])
                hits = await index.search(
                    "acme",
                    entity_id=None,
                    text=query,
                    vector=vector,
                    embedder=embedder.name,
                    candidates=3,
                )
                found[query] = f"{hits[0].chunk.source} {hits[0].chunk.content}"
            return sources, found
        finally:
            await index.aclose()

    sources, found = asyncio.run(indexed())
    assert sources == {
        "pets.md",
        "laundry.txt",
        "laundry-room.docx",
        "building.pptx",
        "contacts.xlsx",
    }
    assert found["Olga Berg caretaker phone"].startswith("contacts.xlsx ")
    assert "Name: Olga Berg; Phone: 555-0101" in found["Olga Berg caretaker phone"]
    assert found["boiler serviced Hetta Heating"].startswith("building.pptx ")
