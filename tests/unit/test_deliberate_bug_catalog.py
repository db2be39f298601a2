"""The deliberate bugs of `make deliberate-bugs` still point at the code they break."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bugs.catalog import BUGS, DeliberateBug

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("bug", BUGS, ids=[b.name for b in BUGS])
def test_each_edit_matches_its_file_exactly_once(bug: DeliberateBug) -> None:
    for edit in bug.edits:
        text = (REPO / edit.path).read_text()
        assert text.count(edit.old) == 1, f"{bug.name}: {edit.old!r} not found once"
        assert edit.new != edit.old


@pytest.mark.parametrize("bug", BUGS, ids=[b.name for b in BUGS])
def test_each_bug_names_tests_that_exist(bug: DeliberateBug) -> None:
    assert bug.tests
    for name in bug.tests:
        assert (REPO / name).is_file(), f"{bug.name}: {name} does not exist"


def test_bug_names_are_unique() -> None:
    assert len({b.name for b in BUGS}) == len(BUGS)
