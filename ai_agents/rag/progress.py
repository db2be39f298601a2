"""What ``ai-agents ingest`` shows while it works, and the summary it ends with.

- A **loading model** step: the bar is labelled ``loading model NAME`` until the embedding
  model is loaded (the first run of MiniLM exports and quantizes it, which takes a while;
  files are read and chunked meanwhile, so the total grows while nothing is embedded yet),
  then a line says how long the load took and the bar is labelled ``chunks``.
- A bar counting **chunks** (tqdm, on the error stream): its total grows as files are
  chunked, it advances as chunks are embedded or found already stored; its postfix counts
  the files done.
- One line per file on the output stream (``indexed``, ``replaced``, ``unchanged``,
  ``empty`` or ``failed``), or one JSON object per file.
- At the end, a summary line and **every file that failed, with its error**, so a failure
  scrolled away among hundreds of lines is still seen; :meth:`IngestProgress.finish`
  returns the exit status: 0 when every file was ingested, 1 when some failed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, TextIO

from ai_agents.rag.ingest import IngestFailure, IngestOutcome, IngestResult

LOADING = "loading model"
CHUNKS = "chunks"


class IngestProgress:
    """The progress reporter of one ingestion run over *files* files."""

    def __init__(
        self,
        files: int,
        *,
        err: TextIO,
        out: TextIO,
        bar: bool = True,
        json_lines: bool = False,
    ) -> None:
        from tqdm import tqdm

        self.files = files
        self.err = err
        self.out = out
        self.json_lines = json_lines
        self.files_done = 0
        self.bar: Any = tqdm(
            total=0,
            unit="chunk",
            desc=CHUNKS,
            disable=not bar,
            file=err,
            dynamic_ncols=True,
        )

    # --- the loading model step -------------------------------------------------------

    def loading_model(self, name: str) -> None:
        self.bar.write(f"{LOADING} {name} ...", file=self.err)
        self.bar.set_description(f"{LOADING} {name}", refresh=True)

    def model_loaded(self, name: str, seconds: float) -> None:
        self.bar.write(f"model {name} loaded in {seconds:.1f} s", file=self.err)
        self.bar.set_description(CHUNKS, refresh=True)

    # --- chunks and files ---------------------------------------------------------------

    def found(self, chunks: int) -> None:
        """*chunks* more chunks to embed (a file was chunked)."""
        self.bar.total += chunks
        self.bar.refresh()

    def advanced(self, chunks: int) -> None:
        """*chunks* chunks embedded or found already stored."""
        self.bar.update(chunks)

    def done(self, outcome: IngestOutcome) -> None:
        """A file is finished: its line goes to the output stream."""
        self.files_done += 1
        self.bar.set_postfix(files=f"{self.files_done}/{self.files}", refresh=True)
        self.bar.write(file_line(outcome, json_lines=self.json_lines), file=self.out)

    def close(self) -> None:
        self.bar.close()

    def finish(self, outcomes: Sequence[IngestOutcome]) -> int:
        """Close the bar, print the summary and the failures; the exit status."""
        self.close()
        results = [o for o in outcomes if isinstance(o, IngestResult)]
        failures = [o for o in outcomes if isinstance(o, IngestFailure)]
        chunks = sum(r.chunks for r in results)
        changed = sum(1 for r in results if r.status in ("indexed", "replaced"))
        summary = f"{len(outcomes)} files, {changed} (re)indexed, {chunks} chunks"
        if failures:
            summary += f", {len(failures)} failed"
        print(summary, file=self.err)
        if failures:
            plural = "s" if len(failures) > 1 else ""
            print(f"could not ingest {len(failures)} file{plural}:", file=self.err)
            for failure in failures:
                print(f"  {failure.source}: {failure.error}", file=self.err)
        self.err.flush()
        return 1 if failures else 0


def file_line(outcome: IngestOutcome, *, json_lines: bool = False) -> str:
    if json_lines:
        return json.dumps(outcome.to_json())
    if isinstance(outcome, IngestResult):
        return (
            f"{outcome.status:9} {outcome.chunks:5} chunks  {outcome.file_hash}  {outcome.source}"
        )
    return f"{'failed':9} {0:5} chunks  {'-':32}  {outcome.source}: {outcome.error}"
