"""Text extraction (text, Markdown, HTML, PDF, DOCX, PPTX, XLSX) and token-sized chunking.

Extraction turns a file into :class:`Block` s: paragraphs, list items and headings, each
with the section heading it belongs to, its page (PDF page, PPTX slide) and its character
offset in the extracted text. Office files are read as Markdown made by markitdown (the
``documents`` extra, :mod:`ai_agents.rag.office`). Chunking packs whole blocks into
chunks of at most ``chunk_size`` tokens; a chunk never straddles two sections, and
consecutive chunks share up to ``overlap`` tokens of whole trailing blocks (or
sentences), so a passage cut at a chunk boundary is still found whole in one of the two.
Only a block larger than a chunk is split, at sentence ends first and at token boundaries
last.

Tokens are counted with tiktoken's ``cl100k_base`` (shipped offline with the library);
that is close to the MiniLM word-piece count, so a 200-token chunk stays inside MiniLM's
256-piece window.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Protocol

from ai_agents.errors import ValidationError
from ai_agents.rag.errors import UnsupportedDocument
from ai_agents.rag.office import (
    OFFICE_SUFFIXES,
    markitdown_available,
    readable_markdown,
    slides,
    to_markdown,
)

#: File suffixes :func:`extract` understands.
SUPPORTED_SUFFIXES = {
    ".txt": "text",
    ".text": "text",
    ".md": "markdown",
    ".markdown": "markdown",
    ".html": "html",
    ".htm": "html",
    ".pdf": "pdf",
    **OFFICE_SUFFIXES,
}

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=\S)")
_BLANK_LINES = re.compile(r"\n\s*\n")


def ingestible_suffixes() -> frozenset[str]:
    """The suffixes this installation can read: :data:`SUPPORTED_SUFFIXES` less the
    office ones when markitdown (the ``documents`` extra) is not installed."""
    if markitdown_available():
        return frozenset(SUPPORTED_SUFFIXES)
    return frozenset(s for s in SUPPORTED_SUFFIXES if s not in OFFICE_SUFFIXES)


class Tokenizer(Protocol):
    def encode(self, text: str) -> list[int]: ...
    def decode(self, tokens: list[int]) -> str: ...


def default_tokenizer() -> Tokenizer:
    from ai_agents.tokens import CL100K_BASE, get_encoding

    encoding: Any = get_encoding(CL100K_BASE)

    class _Tiktoken:
        def encode(self, text: str) -> list[int]:
            return list(encoding.encode(text, disallowed_special=()))

        def decode(self, tokens: list[int]) -> str:
            return str(encoding.decode(tokens))

    return _Tiktoken()


def file_hash(data: bytes) -> str:
    """Content address of a document: the same bytes always give the same hash."""
    return hashlib.sha256(data).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Block:
    """A paragraph-level piece of extracted text."""

    text: str
    section: str | None = None
    page: int | None = None
    start: int = 0
    heading: bool = False


@dataclass(slots=True)
class ExtractedDocument:
    title: str | None
    blocks: list[Block]
    kind: str
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return "\n\n".join(b.text for b in self.blocks)


def _with_offsets(blocks: Sequence[Block]) -> list[Block]:
    """Offsets as positions in ``"\\n\\n".join(texts)`` (the document's extracted text)."""
    out, offset = [], 0
    for b in blocks:
        if not b.text.strip():
            continue
        out.append(Block(b.text, b.section, b.page, offset, b.heading))
        offset += len(b.text) + 2
    return out


# --- extraction -------------------------------------------------------------------


def extract(data: bytes, *, name: str, kind: str | None = None) -> ExtractedDocument:
    """Extract the blocks of a document; *kind* defaults to the one of *name*'s suffix."""
    kind = kind or SUPPORTED_SUFFIXES.get(Path(name).suffix.lower())
    if kind is None:
        supported = ", ".join(sorted(SUPPORTED_SUFFIXES))
        raise UnsupportedDocument(
            f"cannot ingest {Path(name).name!r}: supported file types are {supported}",
            details={"file": Path(name).name},
        )
    if kind == "pdf":
        return _extract_pdf(data, name)
    if kind in OFFICE_SUFFIXES.values():
        return _extract_office(data, name, kind)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    if kind == "markdown":
        return _extract_markdown(text, name)
    if kind == "html":
        return _extract_html(text, name)
    return _extract_text(text, name)


def _stem_title(name: str) -> str:
    return Path(name).stem.replace("-", " ").replace("_", " ").strip().capitalize()


def _paragraphs(text: str) -> list[list[str]]:
    """Paragraphs (separated by blank lines) as lists of their non-empty lines."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    out = []
    for paragraph in _BLANK_LINES.split(text):
        lines = [" ".join(line.split()) for line in paragraph.split("\n")]
        lines = [line for line in lines if line]
        if lines:
            out.append(lines)
    return out


def _looks_like_heading(line: str) -> bool:
    """A short line without closing punctuation ("Visitor parking") reads as a heading."""
    return (
        len(line) <= 60
        and len(line.split()) <= 8
        and not line.endswith((".", ":", "!", "?", ",", ";"))
        and any(ch.isalpha() for ch in line)
        and line[0].isupper()
    )


def _sectioned(
    paragraphs: list[list[str]], section: str | None, page: int | None = None
) -> tuple[list[Block], str | None]:
    """Blocks of plain paragraphs, taking heading-like first lines as section headings."""
    blocks: list[Block] = []
    for i, lines in enumerate(paragraphs):
        is_last = i == len(paragraphs) - 1
        if _looks_like_heading(lines[0]) and (len(lines) > 1 or not is_last):
            section = lines[0]
            blocks.append(Block(section, section, page, heading=True))
            lines = lines[1:]
        if lines:
            blocks.append(Block(" ".join(lines), section, page))
    return blocks, section


def _extract_text(text: str, name: str) -> ExtractedDocument:
    paragraphs = _paragraphs(text)
    blocks, _ = _sectioned(paragraphs, None)
    title = blocks[0].text if blocks and blocks[0].heading else None
    return ExtractedDocument(title or _stem_title(name), _with_offsets(blocks), "text")


_MD_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_MD_LIST = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")
_MD_INLINE = [
    (re.compile(r"!\[[^\]]*\]\([^)]*\)"), ""),  # images
    (re.compile(r"\[([^\]]+)\]\([^)]*\)"), r"\1"),  # links -> their text
    (re.compile(r"(\*\*|__)(.+?)\1"), r"\2"),  # bold
    (re.compile(r"(?<![\w*])[*_](\S(?:.*?\S)?)[*_](?![\w*])"), r"\1"),  # italics
    (re.compile(r"`([^`]*)`"), r"\1"),  # inline code
]


def _md_inline(text: str) -> str:
    for pattern, repl in _MD_INLINE:
        text = pattern.sub(repl, text)
    return text


def _extract_markdown(text: str, name: str) -> ExtractedDocument:
    title, blocks = _markdown_blocks(text)
    return ExtractedDocument(title or _stem_title(name), _with_offsets(blocks), "markdown")


def _markdown_blocks(text: str) -> tuple[str | None, list[Block]]:
    """The first level-1 heading (if any) and the blocks of a Markdown text."""
    title: str | None = None
    section: str | None = None
    blocks: list[Block] = []
    current: list[str] = []
    in_fence = False

    def flush() -> None:
        if current:
            blocks.append(Block(" ".join(" ".join(current).split()), section))
            current.clear()

    for raw in text.replace("\r\n", "\n").split("\n"):
        line = raw.rstrip()
        if line.strip().startswith("```"):
            flush()
            in_fence = not in_fence
            continue
        if in_fence:
            current.append(line)
            continue
        heading = _MD_HEADING.match(line)
        if heading:
            flush()
            section = _md_inline(heading.group(2))
            if title is None and len(heading.group(1)) == 1:
                title = section
            blocks.append(Block(section, section, heading=True))
            continue
        if not line.strip() or re.fullmatch(r"\s*(-{3,}|\*{3,}|_{3,})\s*", line):
            flush()
            continue
        if _MD_LIST.match(line):
            flush()  # every list item is its own block
        current.append(_md_inline(line.strip()))
    flush()
    return title, blocks


class _HtmlText(HTMLParser):
    BLOCK = {
        "p", "div", "li", "tr", "td", "th", "br", "section", "article", "table", "ul", "ol",
        "pre", "blockquote", "dt", "dd", "header", "footer", "main", "nav", "aside", "hr",
        "h1", "h2", "h3", "h4", "h5", "h6", "figcaption", "address", "dl",
    }  # fmt: skip
    SKIP = {"script", "style", "noscript", "template", "head", "svg"}
    HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[Block] = []
        self.title: str | None = None
        self.h1: str | None = None
        self.section: str | None = None
        self._buffer: list[str] = []
        self._skip = 0
        self._in_title = False
        self._heading: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        if tag in self.SKIP:
            self._skip += 1
        elif tag in self.BLOCK:
            self._flush()
            if tag in self.HEADINGS:
                self._heading = tag

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        if tag in self.SKIP:
            self._skip = max(0, self._skip - 1)
        elif tag in self.BLOCK:
            self._flush()

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title = " ".join(((self.title or "") + " " + data).split())
        elif not self._skip:
            self._buffer.append(data)

    def _flush(self) -> None:
        text = " ".join("".join(self._buffer).split())
        self._buffer.clear()
        if not text:
            self._heading = None
            return
        heading = self._heading is not None
        if heading:
            self.section = text
            if self._heading == "h1" and self.h1 is None:
                self.h1 = text
            self._heading = None
        self.blocks.append(Block(text, self.section, heading=heading))

    def close(self) -> None:
        super().close()
        self._flush()


def _extract_html(text: str, name: str) -> ExtractedDocument:
    parser = _HtmlText()
    parser.feed(text)
    parser.close()
    title = parser.title or parser.h1 or _stem_title(name)
    return ExtractedDocument(title, _with_offsets(parser.blocks), "html")


def _extract_pdf(data: bytes, name: str) -> ExtractedDocument:
    try:
        from pypdf import PdfReader
        from pypdf.errors import PdfReadError
    except ImportError as exc:
        raise UnsupportedDocument(
            "PDF ingestion needs pypdf: pip install 'ai-agents-platform[rag]'"
        ) from exc
    try:
        reader = PdfReader(io.BytesIO(data))
        pages = [_page_text(page) for page in reader.pages]
        info = reader.metadata
    except (PdfReadError, ValueError, KeyError, TypeError) as exc:
        raise UnsupportedDocument(f"cannot read PDF {Path(name).name!r}: {exc}") from exc
    blocks: list[Block] = []
    section: str | None = None
    for number, page_text in enumerate(pages, start=1):
        page_blocks, section = _sectioned(_paragraphs(page_text), section, number)
        blocks.extend(page_blocks)
    if not blocks:
        raise UnsupportedDocument(
            f"PDF {Path(name).name!r} has no extractable text (scanned images need OCR first)"
        )
    title = str(info.title) if info is not None and info.title else None
    return ExtractedDocument(
        title or _stem_title(name), _with_offsets(blocks), "pdf", {"pages": len(pages)}
    )


def _extract_office(data: bytes, name: str, kind: str) -> ExtractedDocument:
    """DOCX, PPTX, XLSX: markitdown's Markdown read as Markdown; a slide is a page."""
    markdown = to_markdown(data, name=name, kind=kind)
    title: str | None = None
    blocks: list[Block] = []
    numbers: set[int | None] = set()
    for number, part in slides(markdown):
        heading, part_blocks = _markdown_blocks(readable_markdown(part))
        title = title or heading
        blocks.extend(Block(b.text, b.section, number, heading=b.heading) for b in part_blocks)
        numbers.add(number)
    metadata = {"slides": len(numbers - {None})} if kind == "pptx" else {}
    return ExtractedDocument(title or _stem_title(name), _with_offsets(blocks), kind, metadata)


def _page_text(page: Any) -> str:
    """Layout mode keeps the vertical gaps between paragraphs as blank lines."""
    try:
        return str(page.extract_text(extraction_mode="layout") or "")
    except Exception:  # layout mode is stricter about odd fonts; plain mode still works
        return str(page.extract_text() or "")


# --- chunking ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TextChunk:
    """One chunk of a document before it is embedded (see :class:`~ai_agents.rag.index.Chunk`)."""

    position: int
    content: str
    section: str | None
    page: int | None
    char_start: int
    char_end: int
    token_count: int


@dataclass(frozen=True, slots=True)
class _Unit:
    text: str
    tokens: int
    block: int
    section: str | None
    page: int | None
    start: int
    end: int
    heading: bool = False


class Chunker:
    """Packs blocks into chunks of ``chunk_size`` tokens with ``overlap`` tokens of context."""

    def __init__(
        self,
        chunk_size: int = 200,
        overlap: int = 40,
        *,
        tokenizer: Tokenizer | None = None,
    ) -> None:
        if chunk_size < 16:
            raise ValidationError("chunk_size must be at least 16 tokens")
        if not 0 <= overlap < chunk_size // 2:
            raise ValidationError("overlap must be between 0 and half of chunk_size")
        self.chunk_size = chunk_size
        self.overlap = overlap
        self._tokenizer = tokenizer

    @property
    def tokenizer(self) -> Tokenizer:
        if self._tokenizer is None:
            self._tokenizer = default_tokenizer()
        return self._tokenizer

    def count(self, text: str) -> int:
        return len(self.tokenizer.encode(text))

    def chunk(self, blocks: Sequence[Block]) -> list[TextChunk]:
        units = [u for i, b in enumerate(blocks) for u in self._units(i, b)]
        chunks: list[list[_Unit]] = []
        current: list[_Unit] = []
        size = 0
        for unit in units:
            new_section = bool(current) and unit.section != current[-1].section
            if current and (new_section or size + unit.tokens > self.chunk_size):
                if not all(u.heading for u in current):  # a lone heading is no passage
                    chunks.append(current)
                current = [] if new_section else self._overlap_tail(current, unit.tokens)
                size = sum(u.tokens for u in current)
            current.append(unit)
            size += unit.tokens
        if current and (not chunks or not all(u.heading for u in current)):
            chunks.append(current)
        return [self._join(i, c) for i, c in enumerate(chunks)]

    def _overlap_tail(self, previous: list[_Unit], incoming: int) -> list[_Unit]:
        tail: list[_Unit] = []
        total = 0
        for unit in reversed(previous):
            if total + unit.tokens > self.overlap:
                break
            tail.insert(0, unit)
            total += unit.tokens
        if total + incoming > self.chunk_size or len(tail) == len(previous):
            return []  # no room, or the whole previous chunk: overlap would only repeat it
        return tail

    def _units(self, index: int, block: Block) -> list[_Unit]:
        tokens = self.count(block.text)
        if tokens <= self.chunk_size:
            end = block.start + len(block.text)
            return [
                _Unit(
                    block.text,
                    tokens,
                    index,
                    block.section,
                    block.page,
                    block.start,
                    end,
                    block.heading,
                )
            ]
        units: list[_Unit] = []
        cursor = 0
        for sentence in _SENTENCE_END.split(block.text):
            offset = block.text.find(sentence, cursor)
            cursor = offset + len(sentence)
            for piece, start in self._split_tokens(sentence, offset):
                units.append(
                    _Unit(
                        piece,
                        self.count(piece),
                        index,
                        block.section,
                        block.page,
                        block.start + start,
                        block.start + start + len(piece),
                    )
                )
        return units

    def _split_tokens(self, sentence: str, offset: int) -> list[tuple[str, int]]:
        ids = self.tokenizer.encode(sentence)
        if len(ids) <= self.chunk_size:
            return [(sentence, offset)]
        pieces, cursor = [], 0
        for i in range(0, len(ids), self.chunk_size):
            piece = self.tokenizer.decode(ids[i : i + self.chunk_size])
            found = sentence.find(piece.strip(), cursor)
            start = found if found >= 0 else cursor
            cursor = start + len(piece.strip())
            pieces.append((piece.strip(), offset + start))
        return [(p, s) for p, s in pieces if p]

    def _join(self, position: int, units: list[_Unit]) -> TextChunk:
        parts: list[str] = []
        for i, unit in enumerate(units):
            if i and unit.block != units[i - 1].block:
                parts.append("\n\n")
            elif i:
                parts.append(" ")
            parts.append(unit.text)
        content = "".join(parts)
        return TextChunk(
            position=position,
            content=content,
            section=units[0].section,
            page=units[0].page,
            char_start=units[0].start,
            char_end=units[-1].end,
            token_count=self.count(content),
        )


def word_tokenizer() -> Tokenizer:
    """Whitespace tokens (for tests and for callers that want no tiktoken dependency)."""
    vocabulary: dict[str, int] = {}
    words: list[str] = []

    class _Words:
        def encode(self, text: str) -> list[int]:
            out = []
            for word in text.split():
                if word not in vocabulary:
                    vocabulary[word] = len(words)
                    words.append(word)
                out.append(vocabulary[word])
            return out

        def decode(self, tokens: list[int]) -> str:
            return " ".join(words[t] for t in tokens)

    return _Words()
