"""Document search and ingestion benchmarks: ``python bench/rag.py [ingest|search|all]``.

- ``ingest`` (``bench/rag_ingest.py``): MiniLM ingestion chunks/s end to end, the old
  one-document-at-a-time path against the batched one, in one run;
- ``search`` (``bench/rag_search.py``): pgvector HNSW against the numpy path at 10k and
  100k passages (``--sizes 10000,100000,1000000`` for the million): p50/p99 per tenant,
  recall@10 against exact search, index build time;
- retrieval quality is ``bench/rag_quality.py`` (recall@5 and MRR@10 per mode and backend).

Arguments after the subcommand go to that script (``python bench/rag.py search --sizes
1000000``). ``all`` (the default) runs ``ingest`` then ``search`` with their defaults.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import rag_ingest  # noqa: E402
import rag_search  # noqa: E402


def main(argv: list[str]) -> None:
    command, rest = (argv[0], argv[1:]) if argv else ("all", [])
    if command in ("ingest", "all"):
        asyncio.run(rag_ingest.main(rest if command == "ingest" else []))
    if command in ("search", "all"):
        rag_search.main(rest if command == "search" else [])
    if command not in ("ingest", "search", "all"):
        raise SystemExit(f"unknown subcommand {command!r}: use ingest, search or all")


if __name__ == "__main__":
    main(sys.argv[1:])
