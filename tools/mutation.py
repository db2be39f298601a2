"""Mutation testing of the core with mutmut: run it, then print the score.

    python tools/mutation.py run [GROUP ...]    # mutmut run over the groups (default: all)
    python tools/mutation.py rerun [GROUP ...]  # only their mutants not killed last time
    python tools/mutation.py score [GROUP ...]  # the score of the last run, by module and group

The groups (one per behaviour) and their mutmut mutant-name patterns are the
``[mutation]`` section of setup.cfg; mutmut's own settings (files, tests, timeouts) are
its ``[mutmut]`` section. ``make mutation`` runs every group from a clean ``mutants/``.
Environment: ``MUTATION_CHILDREN`` (default 2) mutants are tested at once.
"""

from __future__ import annotations

import configparser
import fnmatch
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: mutmut's exit codes of a mutant's test run (mutmut/stats.py), by what they mean here.
STATUS = {
    1: "killed",
    3: "killed",
    37: "killed",  # caught by the type checker
    0: "survived",
    5: "no tests",
    33: "no tests",
    34: "skipped",
    36: "timeout",
    24: "timeout",
    -24: "timeout",
    152: "timeout",
    255: "timeout",
    None: "not run",
}
COLUMNS = ("killed", "survived", "timeout", "no tests", "not run", "other")


def groups() -> dict[str, list[str]]:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(ROOT / "setup.cfg", encoding="utf-8")
    return {
        name: [p.strip() for p in value.splitlines() if p.strip()]
        for name, value in parser["mutation"].items()
    }


def chosen(names: list[str]) -> dict[str, list[str]]:
    every = groups()
    unknown = [n for n in names if n not in every]
    if unknown:
        sys.exit(f"unknown group(s) {unknown}; setup.cfg [mutation] has {sorted(every)}")
    return {n: every[n] for n in names} if names else every


def run(names: list[str], *, again: bool = False) -> int:
    patterns = [p for group in chosen(names).values() for p in group]
    if again:  # mutmut reruns every mutant it is given by name: give it the survivors only
        found = results()
        patterns = sorted(
            key
            for key, (_, code) in found.items()
            if status(code) not in ("killed", "timeout")
            and any(fnmatch.fnmatchcase(key, p) for p in patterns)
        )
        if not patterns:
            return 0
    children = os.environ.get("MUTATION_CHILDREN", "2")
    mutmut = Path(sys.executable).with_name("mutmut")
    command = [str(mutmut), "run", "--max-children", children, *patterns]
    return subprocess.call(command, cwd=ROOT)


def results() -> dict[str, tuple[str, int | None]]:
    """Every mutant of the last run: name -> (module path, exit code)."""
    out: dict[str, tuple[str, int | None]] = {}
    for meta in (ROOT / "mutants").rglob("*.py.meta"):
        module = str(meta.relative_to(ROOT / "mutants"))[: -len(".meta")]
        for key, code in json.loads(meta.read_text())["exit_code_by_key"].items():
            out[key] = (module, code)
    return out


def status(code: int | None) -> str:
    found = STATUS.get(code, "other")
    return found if found in COLUMNS else "other"


def line(label: str, counts: Counter[str]) -> str:
    total = sum(counts.values())
    killed = counts["killed"]
    score = f"{100 * killed / total:5.1f} %" if total else "    -  "
    cells = " ".join(f"{counts[c]:>8}" for c in COLUMNS)
    return f"{label:<34} {killed:>5} / {total:<5} {score} {cells}"


def score(names: list[str]) -> int:
    found = results()
    if not found:
        print("no mutmut results: run `make mutation` first")
        return 1
    header = f"{'':<34} {'killed / total':>13} {'score':>7} " + " ".join(f"{c:>8}" for c in COLUMNS)
    overall: Counter[str] = Counter()
    by_group: dict[str, Counter[str]] = {}
    by_module: dict[str, Counter[str]] = {}
    survivors: list[str] = []
    seen: set[str] = set()  # a mutant in two groups counts once per module and overall
    for group, patterns in chosen(names).items():
        counts: Counter[str] = Counter()
        for key, (module, code) in sorted(found.items()):
            if not any(fnmatch.fnmatchcase(key, p) for p in patterns):
                continue
            s = status(code)
            counts[s] += 1
            if key in seen:
                continue
            seen.add(key)
            by_module.setdefault(module, Counter())[s] += 1
            overall[s] += 1
            if s != "killed":
                survivors.append(f"{s:<9} {key}")
        by_group[group] = counts
    print("Mutation score (mutants killed / mutants), by module:")
    print(header)
    for module, counts in sorted(by_module.items()):
        print(line(module, counts))
    print("\nBy behaviour (setup.cfg [mutation]):")
    print(header)
    for group, counts in by_group.items():
        print(line(group, counts))
    print()
    print(line("overall", overall))
    if survivors:
        print(f"\nNot killed ({len(survivors)}; `.venv/bin/mutmut show NAME` shows one):")
        print("\n".join(f"  {s}" for s in survivors))
    return 0


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in ("run", "rerun", "score"):
        print(__doc__)
        return 2
    names = sys.argv[2:]
    if sys.argv[1] != "score":
        code = run(names, again=sys.argv[1] == "rerun")
        if code != 0:
            return code
    return score(names)


if __name__ == "__main__":
    sys.exit(main())
