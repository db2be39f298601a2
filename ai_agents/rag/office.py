"""Office documents (DOCX, PPTX, XLSX) as Markdown, through ``markitdown``.

``markitdown`` (the ``documents`` extra) converts each format to Markdown: Word headings
become ``#`` headings, each slide of a presentation comes after a
``<!-- Slide number: N -->`` marker, each sheet of a workbook is a ``## name`` heading
and a Markdown table. Only markitdown's converter for the one format is run (no format
guessing, no plugins, nothing fetched), after a check that the file (a zip) does not
unpack to more than :data:`MAX_UNPACKED_BYTES`. Three rewrites make the Markdown read well in
chunks (:func:`readable_markdown`):

- a table row becomes a paragraph of ``Header: value`` pairs, so a row found alone in a
  chunk still says what its values are, and a big sheet chunks by rows;
- HTML comments are dropped (the slide markers are read first, see :func:`slides`);
- markitdown's backslash escapes (``file\\_name``) are undone: chunks hold the words.

:mod:`ai_agents.rag.chunking` then reads that Markdown as it reads a ``.md`` file.
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path
from typing import Any

from ai_agents.rag.errors import UnsupportedDocument

#: The office formats, by suffix.
OFFICE_SUFFIXES = {".docx": "docx", ".pptx": "pptx", ".xlsx": "xlsx"}
INSTALL_HINT = "pip install 'ai-agents-platform[documents]'"
#: The most an office file (a zip) may unpack to: a small upload that unpacks to
#: gigabytes (a zip bomb) is refused before any reader opens it.
MAX_UNPACKED_BYTES = 256 * 1024 * 1024

_SLIDE_MARKER = re.compile(r"^<!-- Slide number: (\d+) -->\s*$", re.MULTILINE)
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_CELL_SPLIT = re.compile(r"(?<!\\)\|")
_SEPARATOR_CELL = re.compile(r":?-{3,}:?")
#: What pandas writes for an empty cell or a missing header.
_EMPTY_CELLS = {"", "nan", "NaN", "None"}
_UNNAMED = re.compile(r"Unnamed: \d+")
_ESCAPED = re.compile(r"\\([\\`*_{}\[\]()#+\-.!|<>~])")


def markitdown_available() -> bool:
    """Whether the ``documents`` extra (markitdown) is installed."""
    import importlib.util

    return importlib.util.find_spec("markitdown") is not None


def to_markdown(data: bytes, *, name: str, kind: str) -> str:
    """The document's Markdown, from markitdown's converter for *kind*."""
    converter = _converter(kind, name)
    _check_unpacked_size(data, name, kind)
    from markitdown import StreamInfo
    from markitdown._exceptions import MissingDependencyException

    suffix = "." + kind
    try:
        result = converter.convert(
            io.BytesIO(data), StreamInfo(extension=suffix, filename=Path(name).name)
        )
    except MissingDependencyException as exc:
        raise UnsupportedDocument(
            f"reading {suffix} files needs markitdown's {kind} support: {INSTALL_HINT}"
        ) from exc
    except Exception as exc:  # a corrupt file fails in zipfile, lxml, openpyxl, mammoth...
        reason = str(exc) or type(exc).__name__
        raise UnsupportedDocument(
            f"cannot read {kind.upper()} {Path(name).name!r}: {reason}",
            details={"file": Path(name).name},
        ) from exc
    return str(result.markdown)


def _check_unpacked_size(data: bytes, name: str, kind: str) -> None:
    """Refuse a zip whose members add up to more than :data:`MAX_UNPACKED_BYTES` (zipfile
    never inflates a member past its declared size, so the declared sizes bound it)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unpacked = sum(member.file_size for member in archive.infolist())
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise UnsupportedDocument(
            f"cannot read {kind.upper()} {Path(name).name!r}: {exc}",
            details={"file": Path(name).name},
        ) from exc
    if unpacked > MAX_UNPACKED_BYTES:
        raise UnsupportedDocument(
            f"{kind.upper()} {Path(name).name!r} unpacks to {unpacked} bytes; "
            f"the limit is {MAX_UNPACKED_BYTES} bytes",
            details={"file": Path(name).name},
        )


def _converter(kind: str, name: str) -> Any:
    try:
        from markitdown.converters import DocxConverter, PptxConverter, XlsxConverter
    except ImportError as exc:
        raise UnsupportedDocument(
            f"cannot ingest {Path(name).name!r}: {kind.upper()} files need markitdown: "
            f"{INSTALL_HINT}",
            details={"file": Path(name).name},
        ) from exc
    converters: dict[str, Any] = {
        "docx": DocxConverter,
        "pptx": PptxConverter,
        "xlsx": XlsxConverter,
    }
    return converters[kind]()


def slides(markdown: str) -> list[tuple[int | None, str]]:
    """The Markdown cut at markitdown's slide markers: (slide number, its Markdown); text
    before the first marker (or without markers) has no number."""
    parts: list[tuple[int | None, str]] = []
    matches = list(_SLIDE_MARKER.finditer(markdown))
    head = markdown[: matches[0].start()] if matches else markdown
    if head.strip():
        parts.append((None, head))
    for i, match in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(markdown)
        parts.append((int(match.group(1)), markdown[match.end() : end]))
    return parts


def readable_markdown(markdown: str) -> str:
    """Tables as one ``Header: value; Header: value`` paragraph per row, no comments, no
    backslash escapes."""
    lines = _COMMENT.sub("", markdown).split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        if not _is_row(lines[i]):
            out.append(lines[i])
            i += 1
            continue
        table = []
        while i < len(lines) and _is_row(lines[i]):
            table.append(_cells(lines[i]))
            i += 1
        out.append("")
        for row in _table_rows(table):
            out.extend((row, ""))
    return _ESCAPED.sub(r"\1", "\n".join(out))


def _is_row(line: str) -> bool:
    stripped = line.strip()
    return len(stripped) > 1 and stripped.startswith("|") and stripped.endswith("|")


def _cells(line: str) -> list[str]:
    inner = line.strip()[1:-1]
    return [" ".join(c.split()) for c in _CELL_SPLIT.split(inner)]


def _table_rows(table: list[list[str]]) -> list[str]:
    header: list[str] = []
    body = table
    if len(table) >= 2 and all(_SEPARATOR_CELL.fullmatch(c) for c in table[1] if c):
        header = ["" if _UNNAMED.fullmatch(h) else h for h in table[0]]
        body = table[2:]
    rows = []
    for cells in body:
        pairs = []
        for k, cell in enumerate(cells):
            if cell in _EMPTY_CELLS:
                continue
            label = header[k] if k < len(header) and header[k] not in _EMPTY_CELLS else ""
            pairs.append(f"{label}: {cell}" if label else cell)
        if pairs:
            rows.append("; ".join(pairs))
    if not body and header:  # a table with a header row only
        rows.append("; ".join(h for h in header if h))
    return rows
