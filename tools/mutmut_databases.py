"""pytest plugin for ``make mutation``: test databases named after the mutant's process.

mutmut runs every mutant's tests in a process forked from its own, which has already
imported ``tests/conftest.py``; the conftest names its databases after the process that
imported it (``aat_<pid>_...``). Renamed here per process, two mutants tested at once
never share a template database, and the databases of a mutant killed by its timeout
are dropped by the next session (its process is gone).
"""

from __future__ import annotations

import os
import sys
import uuid

import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    for name, module in list(sys.modules.items()):
        run = getattr(module, "_RUN", None)
        if (
            name.endswith("conftest")
            and isinstance(run, str)
            and run.startswith("aat_")
            and run.split("_")[1] != str(os.getpid())
        ):
            module._RUN = f"aat_{os.getpid()}_{uuid.uuid4().hex[:6]}"  # type: ignore[attr-defined]
