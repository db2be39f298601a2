"""The ``ai-agents ingest`` progress reporter, on captured streams: a loading model step
before the chunk count, a bar counting chunks (not files), one line per file, and the
failures listed again at the end with the exit status saying some failed."""

from __future__ import annotations

import io
import json
import re

import pytest

pytest.importorskip("tqdm")

from ai_agents.rag.ingest import IngestFailure, IngestResult  # noqa: E402
from ai_agents.rag.progress import IngestProgress  # noqa: E402

GOOD = IngestResult("a.md", "f" * 32, "A", 7, "indexed")
SAME = IngestResult("b.txt", "e" * 32, "B", 5, "unchanged")
BROKEN = IngestFailure("c.pdf", "cannot read PDF 'c.pdf': EOF marker not found")
GONE = IngestFailure("d.docx", "cannot read d.docx: No such file or directory")


def _frames(stream: io.StringIO) -> list[str]:
    """What the bar drew, frame by frame (tqdm separates frames with carriage returns)."""
    return [f.strip() for f in re.split(r"[\r\n]", stream.getvalue()) if f.strip()]


def test_the_bar_counts_chunks_after_a_loading_model_step() -> None:
    err, out = io.StringIO(), io.StringIO()
    report = IngestProgress(2, err=err, out=out)
    report.loading_model("all-MiniLM-L6-v2")
    report.found(7)  # files are chunked while the model loads
    report.found(5)
    report.model_loaded("all-MiniLM-L6-v2", 2.5)
    report.advanced(4)
    report.advanced(3)
    report.done(GOOD)
    report.advanced(5)
    report.done(SAME)
    assert report.finish([GOOD, SAME]) == 0

    frames = _frames(err)
    loading = frames.index("loading model all-MiniLM-L6-v2 ...")
    loaded = frames.index("model all-MiniLM-L6-v2 loaded in 2.5 s")
    # While the model loads, the bar says so and shows the chunks found, none embedded.
    waiting = [f for f in frames[loading:loaded] if f.startswith("loading model all-MiniLM")]
    assert any("0/12" in f for f in waiting[1:])
    # Then it counts chunks: 7 of 12, then 12 of 12 with both files done.
    counting = [f for f in frames[loaded:] if f.startswith("chunks:")]
    assert any("7/12" in f for f in counting)
    assert any("12/12" in f and "files=2/2" in f for f in counting)
    assert frames[-1] == "2 files, 1 (re)indexed, 12 chunks"
    assert out.getvalue().splitlines() == [
        f"indexed       7 chunks  {'f' * 32}  a.md",
        f"unchanged     5 chunks  {'e' * 32}  b.txt",
    ]


def test_failures_are_listed_at_the_end_and_the_status_is_1() -> None:
    err, out = io.StringIO(), io.StringIO()
    report = IngestProgress(4, err=err, out=out, bar=False)
    report.found(7)
    report.advanced(7)
    for outcome in (BROKEN, GOOD, GONE, SAME):
        report.done(outcome)
    assert report.finish([BROKEN, GOOD, GONE, SAME]) == 1

    assert err.getvalue().splitlines() == [
        "4 files, 1 (re)indexed, 12 chunks, 2 failed",
        "could not ingest 2 files:",
        "  c.pdf: cannot read PDF 'c.pdf': EOF marker not found",
        "  d.docx: cannot read d.docx: No such file or directory",
    ]
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("failed ") and lines[0].endswith(f"c.pdf: {BROKEN.error}")
    assert lines[1].startswith("indexed ")


def test_json_lines_one_object_per_file() -> None:
    err, out = io.StringIO(), io.StringIO()
    report = IngestProgress(2, err=err, out=out, bar=False, json_lines=True)
    report.done(GOOD)
    report.done(BROKEN)
    assert report.finish([GOOD, BROKEN]) == 1
    objects = [json.loads(line) for line in out.getvalue().splitlines()]
    assert objects == [GOOD.to_json(), BROKEN.to_json()]
    assert "  c.pdf: cannot read PDF" in err.getvalue()
