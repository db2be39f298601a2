"""Run the suite several times in a row, in random order, next to CPU burners.

    python -m tests.loaded_runs [--runs 5] [--burners 2] [--command "make test"]

Each run gets its own pytest-randomly seed (``--randomly-seed=N`` through
``PYTEST_ADDOPTS``), printed before it starts so a failure can be replayed with
``PYTEST_ADDOPTS="--randomly-seed=N" make test``. The burners are processes spinning
on the CPU for the whole time, so timing assumptions that only hold on a quiet machine
show up. Stops at the first failing run; exit status 0 only when every run passed.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import shlex
import subprocess
import sys
import time


def burn() -> None:
    while True:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--burners", type=int, default=1)
    parser.add_argument("--command", default="make test")
    args = parser.parse_args(argv)

    burners = [multiprocessing.Process(target=burn, daemon=True) for _ in range(args.burners)]
    for process in burners:
        process.start()
    print(f"{args.burners} CPU burners running; {args.runs} runs of: {args.command}", flush=True)
    try:
        for run in range(1, args.runs + 1):
            seed = random.randrange(1, 2**31)
            extra = os.environ.get("PYTEST_ADDOPTS", "")
            env = dict(os.environ, PYTEST_ADDOPTS=f"{extra} --randomly-seed={seed}".strip())
            print(f"run {run}/{args.runs}: randomly_seed={seed}", flush=True)
            started = time.monotonic()
            code = subprocess.call(shlex.split(args.command), env=env)
            elapsed = time.monotonic() - started
            if code != 0:
                print(f"run {run} FAILED (exit {code}) after {elapsed:.0f} s, seed {seed}")
                return 1
            print(f"run {run} passed in {elapsed:.0f} s", flush=True)
    finally:
        for process in burners:
            process.terminate()
    print(f"{args.runs} of {args.runs} runs passed under load")
    return 0


if __name__ == "__main__":
    sys.exit(main())
