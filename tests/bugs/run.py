"""Apply each deliberate bug to a copy of the repository and check a test catches it.

    python -m tests.bugs.run [--limit 60] [--only NAME ...] [--no-control]

For each bug of :mod:`tests.bugs.catalog`: copy the files git knows (tracked and new,
not ignored) to a temporary directory, apply the bug's edits there, and run its tests
with ``pytest -x`` from that directory (so ``ai_agents`` is imported from the copy, also
by the processes the tests start). The bug is *caught* when pytest reports a failing
test before ``--limit`` seconds. First, a control run checks the same tests pass on the
unmodified copy, so a red test cannot be mistaken for a catch. Exit status 1 when any
bug is missed. The working tree is never modified.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.bugs.catalog import BUGS, DeliberateBug

REPO = Path(__file__).resolve().parents[2]
FAILED_LINE = re.compile(r"^(?:FAILED|ERROR) (\S+)", re.MULTILINE)


@dataclass
class Outcome:
    returncode: int | None  # None: still running at the limit
    seconds: float
    failed: list[str]
    tail: str


def copy_repository(target: Path) -> None:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        check=True,
        capture_output=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if not source.is_file():
            continue  # deleted in the working tree
        destination = target / name
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, destination)


def apply(bug: DeliberateBug, root: Path) -> None:
    for edit in bug.edits:
        path = root / edit.path
        text = path.read_text()
        if text.count(edit.old) != 1:
            raise SystemExit(f"{bug.name}: the text to break is not found once in {edit.path}")
        path.write_text(text.replace(edit.old, edit.new))


def run_tests(root: Path, tests: tuple[str, ...], limit: float) -> Outcome:
    env = dict(os.environ, PYTHONPATH=str(root), PYTHONDONTWRITEBYTECODE="1")
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-rfE", "-p", "no:cacheprovider"]
    command += ["-p", "no:randomly", *tests]
    started = time.monotonic()
    proc = subprocess.Popen(
        command, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        out, _ = proc.communicate(timeout=limit)
        returncode: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        returncode = None
    text = out.decode(errors="replace")
    return Outcome(returncode, time.monotonic() - started, FAILED_LINE.findall(text), text[-3000:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=float, default=60.0, help="seconds per bug")
    parser.add_argument("--only", nargs="*", default=None, help="bug names to try")
    parser.add_argument("--no-control", action="store_true", help="skip the control run")
    args = parser.parse_args(argv)
    bugs = [b for b in BUGS if args.only is None or b.name in args.only]
    if not bugs:
        parser.error(f"no such bug; known: {', '.join(b.name for b in BUGS)}")

    if not args.no_control:
        tests = tuple(dict.fromkeys(t for b in bugs for t in b.tests))
        with tempfile.TemporaryDirectory(prefix="bugs-control-") as tmp:
            copy_repository(Path(tmp))
            control = run_tests(Path(tmp), tests, limit=max(600.0, args.limit))
        if control.returncode != 0:
            print(control.tail)
            print(f"control run failed (exit {control.returncode}): fix the suite first")
            return 2
        print(f"control: {len(tests)} test files pass unmodified ({control.seconds:.1f} s)")

    missed = 0
    for bug in bugs:
        with tempfile.TemporaryDirectory(prefix=f"bug-{bug.name}-") as tmp:
            root = Path(tmp)
            copy_repository(root)
            apply(bug, root)
            outcome = run_tests(root, bug.tests, args.limit)
        if outcome.returncode not in (None, 0) and outcome.failed:
            print(f"CAUGHT  {bug.name} in {outcome.seconds:.1f} s by {outcome.failed[0]}")
        else:
            missed += 1
            why = "ran out of time" if outcome.returncode is None else "all tests passed"
            print(f"MISSED  {bug.name} ({bug.what}): {why} after {outcome.seconds:.1f} s")
            print(outcome.tail)
    print(f"{len(bugs) - missed} of {len(bugs)} deliberate bugs caught within {args.limit:.0f} s")
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
