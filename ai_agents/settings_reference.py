"""The settings reference of ``docs/configuration.md``, generated from the settings model.

    python -m ai_agents.settings_reference                 # print the tables
    python -m ai_agents.settings_reference --write docs/configuration.md

Why generated: a hand-kept table drifts from the code; here every row comes from
:class:`ai_agents.settings.AgentsSettings` (name, variable, type, bounds, default,
description), and ``tests/unit/test_settings.py`` fails when the doc is stale.
"""

from __future__ import annotations

import argparse
import os
import sys
import types
import typing
from collections.abc import Callable, Iterable
from dataclasses import fields
from pathlib import Path
from typing import Any, Literal

import annotated_types
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from ai_agents.config import Settings
from ai_agents.settings import SECTIONS, AgentsSettings, env_names

START = "<!-- settings-reference:start (generated: python -m ai_agents.settings_reference) -->"
END = "<!-- settings-reference:end -->"

_CORE = {f.name for f in fields(Settings)}
GROUPS: tuple[tuple[str, Callable[[str], bool]], ...] = (
    ("Core settings (`ai_agents.Settings`)", lambda name: name in _CORE),
    ("REST API (`ApiConfig`, docs/api.md)", lambda name: name.startswith("api_")),
    ("Background jobs (`QueueConfig`, docs/jobs.md)", lambda name: name.startswith("job_")),
    (
        "Circuit breakers (`BreakerConfig`, docs/providers.md)",
        lambda name: name.startswith("breaker_"),
    ),
    ("Everything else", lambda name: True),
)


def _type(info: FieldInfo) -> str:
    """What the value looks like in the environment (the file takes the same or native)."""
    annotation = info.annotation
    metadata = list(info.metadata)
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        annotation = args[0]
    if typing.get_origin(annotation) is typing.Annotated:
        annotation, *more = typing.get_args(annotation)
        metadata += more
    origin = typing.get_origin(annotation)
    names = {getattr(getattr(m, "func", None), "__qualname__", "") for m in metadata}
    if origin is Literal:
        return " \\| ".join(f"`{v}`" for v in typing.get_args(annotation))
    if any("_tenant_weights" in n for n in names):
        text = "`name=int,...`"
    elif any("_job_weights" in n for n in names):
        text = "`int,int,int`"
    elif origin is tuple:
        sep = _separator(metadata)
        text = (
            "list, `:`-separated (`;` on Windows)"
            if sep == os.pathsep
            else f"list, `{sep}`-separated"
        )
    elif origin is dict:
        text = "JSON object"
    else:
        scalars: dict[Any, str] = {int: "integer", float: "number", bool: "boolean", str: "string"}
        text = scalars.get(annotation, str(annotation))
    return text + "".join(_bounds(info))


def _separator(metadata: list[Any]) -> str:
    for meta in metadata:
        func = getattr(meta, "func", None)
        if func is not None and func.__closure__:
            return str(func.__closure__[0].cell_contents)
    return ","


def _bounds(info: FieldInfo) -> Iterable[str]:
    symbols = {"ge": "≥", "gt": ">", "le": "≤", "lt": "<"}
    for meta in info.metadata:
        for attr, symbol in symbols.items():
            if isinstance(meta, annotated_types.BaseMetadata) and hasattr(meta, attr):
                yield f", {symbol} {getattr(meta, attr)}"


def _default(info: FieldInfo) -> str:
    value: Any = info.default
    if value is PydanticUndefined and info.default_factory is not None:
        value = info.default_factory()  # type: ignore[call-arg]
    if value is None:
        return "unset"
    if value in ("", (), {}):
        return "empty"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, tuple):
        return "`" + ",".join(str(v) for v in value) + "`"
    return f"`{value}`"


def _file_key(name: str) -> str:
    if name == "config":
        return "—"
    head, _, rest = name.partition("_")
    if head in SECTIONS and rest:
        return f"`{name}` or `[{head}] {rest}`"
    return f"`{name}`"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def render() -> str:
    """The reference, one table per group (markdown)."""
    out: list[str] = []
    done: set[str] = set()
    for title, belongs in GROUPS:
        names = [n for n in AgentsSettings.model_fields if n not in done and belongs(n)]
        done.update(names)
        out += [f"### {title}", ""]
        out += [
            "| variable | file key | type | default | meaning |",
            "| --- | --- | --- | --- | --- |",
        ]
        for name in names:
            info = AgentsSettings.model_fields[name]
            variables = ", else ".join(f"`{v}`" for v in env_names(name))
            out.append(
                f"| {variables} | {_file_key(name)} | {_type(info)} | {_default(info)} "
                f"| {_cell(info.description or '')} |"
            )
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def splice(document: str, reference: str) -> str:
    """*document* with the text between the markers replaced by *reference*."""
    try:
        head, rest = document.split(START, 1)
        _old, tail = rest.split(END, 1)
    except ValueError:
        raise ValueError(f"the document lacks the markers {START!r} ... {END!r}") from None
    return f"{head}{START}\n\n{reference}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", type=Path, help="update the reference inside this file")
    args = parser.parse_args(argv)
    if args.write is None:
        sys.stdout.write(render())
        return 0
    text = args.write.read_text(encoding="utf-8")
    args.write.write_text(splice(text, render()), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
