"""The retrieval evaluation set (bench/data/rag_eval) stays consistent with the chunker.

A renamed heading in the corpus, or a chunker change that names sections differently,
would silently make gold labels unreachable: every label must be a (source, section)
that ``extract`` + ``Chunker`` produce for the corpus file.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest

sys.path.append(str(Path(__file__).resolve().parents[2] / "bench"))  # bench/ is no package

import rag_eval  # noqa: E402


@pytest.fixture(scope="module")
def questions() -> list[rag_eval.Question]:
    return rag_eval.load_questions()


def test_questions_parse_with_unique_ids(questions: list[rag_eval.Question]) -> None:
    assert len(questions) >= 200
    ids = Counter(q.id for q in questions)
    assert [i for i, n in ids.items() if n > 1] == []
    texts = Counter(q.question.strip().lower() for q in questions)
    assert [t for t, n in texts.items() if n > 1] == []


def test_every_gold_label_is_a_chunk_section(questions: list[rag_eval.Question]) -> None:
    labels = rag_eval.corpus_labels()
    files = {p.name for p in rag_eval.corpus_files()}
    assert {q.source for q in questions} <= files
    missing = sorted({(q.source, q.section) for q in questions} - set(labels))
    assert missing == [], f"gold labels no chunk has (renamed heading?): {missing}"


def test_at_most_four_questions_per_section(questions: list[rag_eval.Question]) -> None:
    per_section = Counter((q.source, q.section) for q in questions)
    crowded = {k: n for k, n in per_section.items() if n > rag_eval.MAX_PER_SECTION}
    assert crowded == {}
    assert len(per_section) >= 100  # spread over the manual, not a few sections


def test_metrics() -> None:
    q = rag_eval.Question("q1", "?", "a.md", "Install")

    def hit(source: str, section: str | None) -> SimpleNamespace:
        return SimpleNamespace(chunk=SimpleNamespace(source=source, section=section))

    hits = [hit("a.md", "Other"), hit("b.md", "Install"), hit("a.md", "Install")]
    assert rag_eval.first_relevant_rank(hits, q) == 3
    assert rag_eval.first_relevant_rank(hits[:2], q) is None
    ranks = [1, 3, None, 7]
    assert rag_eval.recall_at(ranks, 5) == pytest.approx(0.5)
    assert rag_eval.recall_at(ranks, 10) == pytest.approx(0.75)
    assert rag_eval.mrr_at(ranks, 10) == pytest.approx((1 + 1 / 3 + 1 / 7) / 4)
    assert rag_eval.mrr_at(ranks, 5) == pytest.approx((1 + 1 / 3) / 4)
    assert rag_eval.recall_at([], 5) == 0.0
    assert rag_eval.mrr_at([], 10) == 0.0
