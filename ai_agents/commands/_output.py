"""How commands print: JSON lines or aligned tables, and shared flags (``--json``, ``--tenant``).

``--json`` means the same everywhere: one JSON object per line, for a listing (one line
per item) as for a single object (one line). A reader that stops early (``| head``) ends
the command quietly: :func:`ai_agents.cli.main` turns the ``BrokenPipeError`` into a
silent exit (see :func:`silence_stdout`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

if TYPE_CHECKING:
    from ai_agents.store import AgentStore


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON lines (one object a line)")


def add_tenant_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tenant",
        help="act for this tenant (default: AI_AGENTS_DEFAULT_TENANT, else 'default')",
    )


def tenant_view(store: AgentStore, tenant: str | None) -> AgentStore:
    """*store* acting for *tenant* (``None``: the store's default tenant)."""
    return store if tenant is None else store.for_tenant(tenant)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def json_line(obj: dict[str, Any]) -> None:
    """One object as one line of JSON."""
    print(json.dumps(obj, default=_plain, ensure_ascii=False), flush=True)


def json_lines(objs: Iterable[dict[str, Any]]) -> None:
    for obj in objs:
        json_line(obj)


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Columns aligned to their widest cell; the last column is not padded."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    for row in [list(headers), *cells]:
        padded = [v.ljust(w) for v, w in zip(row[:-1], widths, strict=False)]
        print("  ".join([*padded, row[-1]]).rstrip())


def fields(pairs: Iterable[tuple[str, Any]]) -> None:
    """``name: value`` lines, the values aligned."""
    pairs = [(name, _cell(value)) for name, value in pairs]
    width = max((len(name) for name, _ in pairs), default=0) + 1
    for name, value in pairs:
        print(f"{name + ':':<{width}} {value}")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value) or "-"
    return str(value)


def silence_stdout() -> None:
    """After a ``BrokenPipeError``: point stdout at devnull so the interpreter's final
    flush does not fail again (the recipe of Python's ``signal`` documentation)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is no real file (tests, embedding)
        pass
    finally:
        os.close(devnull)
