"""The retrieval evaluation set (``bench/data/rag_eval``) and its metrics.

Imported by ``bench/rag_quality.py`` and by ``tests/unit/test_rag_eval_set.py``. A hit is
relevant when its chunk's ``source`` and ``section`` are the question's gold label;
``recall@k`` is the fraction of questions with a relevant hit in the top ``k``, ``MRR@k``
the mean of ``1 / rank`` of the first relevant hit within the top ``k`` (0 when none).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parent / "data" / "rag_eval"
CORPUS = DATA / "corpus"
QUESTIONS = DATA / "questions.jsonl"
MAX_PER_SECTION = 4


@dataclass(frozen=True, slots=True)
class Question:
    id: str
    question: str
    source: str
    section: str


def load_questions(path: Path = QUESTIONS) -> list[Question]:
    """Parse the JSONL file (one object per non-empty line, every field a non-empty string)."""
    out = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        row = json.loads(line)
        fields = ("id", "question", "source", "section")
        if set(row) != set(fields) or not all(isinstance(row[f], str) and row[f] for f in fields):
            raise ValueError(f"{path.name} line {number}: expected non-empty {fields}")
        out.append(Question(**{f: row[f] for f in fields}))
    return out


def corpus_files(corpus: Path = CORPUS) -> list[Path]:
    return sorted(p for p in corpus.iterdir() if p.suffix == ".md")


def corpus_labels(corpus: Path = CORPUS) -> dict[tuple[str, str | None], int]:
    """(source, section) -> chunk count, as ingestion produces them (default Chunker).

    The source of a chunk is the file's name: the bench ingests with ``root=corpus``.
    """
    from ai_agents.rag.chunking import Chunker, extract

    chunker = Chunker()
    labels: dict[tuple[str, str | None], int] = {}
    for path in corpus_files(corpus):
        document = extract(path.read_bytes(), name=path.name)
        for chunk in chunker.chunk(document.blocks):
            key = (path.name, chunk.section)
            labels[key] = labels.get(key, 0) + 1
    return labels


def is_relevant(hit: Any, question: Question) -> bool:
    """``hit`` is a :class:`~ai_agents.rag.index.SearchHit` (anything with ``.chunk``)."""
    return bool(hit.chunk.source == question.source and hit.chunk.section == question.section)


def first_relevant_rank(hits: Sequence[Any], question: Question) -> int | None:
    """1-based rank of the first relevant hit, or None."""
    for rank, hit in enumerate(hits, start=1):
        if is_relevant(hit, question):
            return rank
    return None


def recall_at(ranks: Iterable[int | None], k: int) -> float:
    """Fraction of questions whose first relevant hit is within the top ``k``."""
    ranks = list(ranks)
    if not ranks:
        return 0.0
    return sum(1 for r in ranks if r is not None and r <= k) / len(ranks)


def mrr_at(ranks: Iterable[int | None], k: int) -> float:
    """Mean reciprocal rank of the first relevant hit, counting 0 beyond ``k``."""
    ranks = list(ranks)
    if not ranks:
        return 0.0
    return sum(1.0 / r for r in ranks if r is not None and r <= k) / len(ranks)
