"""Extraction (text, Markdown, HTML, PDF) and token-sized chunking with positions."""

from __future__ import annotations

import io
import textwrap
from pathlib import Path

import pytest

from ai_agents.errors import ValidationError
from ai_agents.rag.chunking import (
    Block,
    Chunker,
    default_tokenizer,
    extract,
    file_hash,
    word_tokenizer,
)
from ai_agents.rag.errors import UnsupportedDocument

HANDBOOK = Path(__file__).resolve().parents[1] / "data" / "handbook"


def make_pdf(pages: list[list[str]], *, title: str | None = None) -> bytes:
    """A text PDF built with pypdf (Helvetica, one paragraph after another, a gap between).

    ``tests/data/handbook/house-rules.pdf`` was written by this function.
    """
    pypdf = pytest.importorskip("pypdf")
    from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

    writer = pypdf.PdfWriter()
    font = writer._add_object(
        DictionaryObject(
            {
                NameObject("/Type"): NameObject("/Font"),
                NameObject("/Subtype"): NameObject("/Type1"),
                NameObject("/BaseFont"): NameObject("/Helvetica"),
                NameObject("/Encoding"): NameObject("/WinAnsiEncoding"),
            }
        )
    )
    for paragraphs in pages:
        page = writer.add_blank_page(width=612, height=792)
        page[NameObject("/Resources")] = DictionaryObject(
            {NameObject("/Font"): DictionaryObject({NameObject("/F1"): font})}
        )
        ops = ["BT", "/F1 11 Tf", "14 TL", "72 740 Td"]
        for paragraph in paragraphs:
            for line in textwrap.wrap(paragraph, 90):
                escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
                ops.append(f"({escaped}) Tj T*")
            ops.append("T*")
        ops.append("ET")
        stream = DecodedStreamObject()
        stream.set_data("\n".join(ops).encode("latin-1"))
        page[NameObject("/Contents")] = writer._add_object(stream)
    if title:
        writer.add_metadata({"/Title": title})
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_markdown_sections_lists_and_inline_markup() -> None:
    text = textwrap.dedent(
        """\
        # Pet Policy

        Pets are **welcome** with [registration](https://example.com/reg).

        ## Allowed pets

        - Up to two pets per apartment.
        - Dogs up to 25 kg.

        ```
        code stays
        ```
        """
    )
    doc = extract(text.encode(), name="pets.md")
    assert doc.kind == "markdown"
    assert doc.title == "Pet Policy"
    assert [(b.text, b.section, b.heading) for b in doc.blocks] == [
        ("Pet Policy", "Pet Policy", True),
        ("Pets are welcome with registration.", "Pet Policy", False),
        ("Allowed pets", "Allowed pets", True),
        ("- Up to two pets per apartment.", "Allowed pets", False),
        ("- Dogs up to 25 kg.", "Allowed pets", False),
        ("code stays", "Allowed pets", False),
    ]
    # Offsets point into the extracted text.
    for block in doc.blocks:
        assert doc.text[block.start : block.start + len(block.text)] == block.text


def test_html_skips_scripts_and_tracks_headings() -> None:
    doc = extract((HANDBOOK / "parking.html").read_bytes(), name="parking.html")
    assert doc.title == "Parking and Vehicles"
    assert "never be indexed" not in doc.text
    assert "font-family" not in doc.text
    visitor = next(b for b in doc.blocks if "visitor bays" in b.text)
    assert visitor.section == "Visitor parking"
    items = [b.text for b in doc.blocks if b.section == "Electric vehicles" and not b.heading]
    assert len(items) == 3  # one block per list item


def test_text_headings_are_short_unpunctuated_lines() -> None:
    doc = extract((HANDBOOK / "laundry.txt").read_bytes(), name="laundry.txt")
    assert doc.title == "Laundry Room"
    payment = next(b for b in doc.blocks if "$2.50" in b.text)
    assert payment.section == "Payment"
    # A wrapped sentence line is not mistaken for a heading.
    wifi = extract((HANDBOOK / "wifi-and-technology.txt").read_bytes(), name="wifi.txt")
    assert all(not b.text.startswith("and password") for b in wifi.blocks if b.heading)


def test_pdf_pages_paragraphs_and_title(tmp_path: Path) -> None:
    data = make_pdf(
        [
            ["Smoking", "Smoking is not allowed (anywhere) in the building."],
            ["Rent", "Rent is due on the first day of each month.", "Late rent costs $60."],
        ],
        title="Rules",
    )
    doc = extract(data, name="rules.pdf")
    assert doc.kind == "pdf" and doc.title == "Rules" and doc.metadata == {"pages": 2}
    assert [(b.text, b.page, b.section) for b in doc.blocks] == [
        ("Smoking", 1, "Smoking"),
        ("Smoking is not allowed (anywhere) in the building.", 1, "Smoking"),
        ("Rent", 2, "Rent"),
        ("Rent is due on the first day of each month.", 2, "Rent"),
        ("Late rent costs $60.", 2, "Rent"),
    ]
    chunks = Chunker().chunk(doc.blocks)
    assert [(c.page, c.section) for c in chunks] == [(1, "Smoking"), (2, "Rent")]


def test_committed_handbook_pdf_has_two_pages_of_rules() -> None:
    doc = extract((HANDBOOK / "house-rules.pdf").read_bytes(), name="house-rules.pdf")
    assert doc.title == "House Rules and Payments"
    smoking = next(b for b in doc.blocks if b.text.startswith("Smoking and vaping"))
    late = next(b for b in doc.blocks if "late fee of $60" in b.text)
    assert (smoking.page, smoking.section) == (1, "Smoking")
    assert (late.page, late.section) == (2, "Rent and Payments")


def test_unsupported_and_broken_documents() -> None:
    with pytest.raises(UnsupportedDocument, match=r"\.pdf"):
        extract(b"MZ\x90\x00", name="tool.exe")
    with pytest.raises(UnsupportedDocument, match="cannot read PDF"):
        extract(b"%PDF-1.4 this is not really a pdf", name="broken.pdf")
    with pytest.raises(UnsupportedDocument, match="no extractable text"):
        extract(make_pdf([[]]), name="scan.pdf")


def test_file_hash_is_stable_content_address() -> None:
    data = (HANDBOOK / "pets.md").read_bytes()
    assert file_hash(data) == file_hash(bytes(data))
    assert len(file_hash(data)) == 32
    assert file_hash(data) != file_hash(data + b"\n")


def _blocks(*paragraphs: str, section: str | None = "S") -> list[Block]:
    out, offset = [], 0
    for p in paragraphs:
        out.append(Block(p, section, None, offset))
        offset += len(p) + 2
    return out


def test_chunks_respect_size_paragraphs_and_overlap() -> None:
    tokenizer = word_tokenizer()
    paragraphs = [" ".join(f"p{i}w{j}" for j in range(12)) + "." for i in range(10)]
    chunker = Chunker(chunk_size=40, overlap=12, tokenizer=tokenizer)
    chunks = chunker.chunk(_blocks(*paragraphs))
    assert len(chunks) > 3
    for chunk in chunks:
        assert chunk.token_count <= 40
        # Whole paragraphs only: each paragraph appears intact or not at all.
        for p in paragraphs:
            words = set(p.split())
            present = words & set(chunk.content.split())
            assert not present or present == words
    for previous, current in zip(chunks, chunks[1:], strict=False):
        shared = set(previous.content.split("\n\n")) & set(current.content.split("\n\n"))
        assert len(shared) == 1  # the last paragraph of one starts the next (12 <= overlap)
    assert [c.position for c in chunks] == list(range(len(chunks)))
    joined = "\n\n".join(paragraphs)
    for chunk in chunks:
        assert joined[chunk.char_start : chunk.char_end] == chunk.content


def test_chunks_do_not_cross_sections_and_drop_lone_headings() -> None:
    blocks = [
        Block("Title", "Title", heading=True),
        Block("Check-in", "Check-in", start=7, heading=True),
        Block("Check-in starts at 3 pm.", "Check-in", start=17),
        Block("Check-out", "Check-out", start=43, heading=True),
        Block("Check-out is by 11 am.", "Check-out", start=54),
    ]
    chunks = Chunker(chunk_size=100, overlap=10, tokenizer=word_tokenizer()).chunk(blocks)
    assert [(c.section, c.content) for c in chunks] == [
        ("Check-in", "Check-in\n\nCheck-in starts at 3 pm."),
        ("Check-out", "Check-out\n\nCheck-out is by 11 am."),
    ]


def test_oversized_paragraph_is_split_at_sentences_then_tokens() -> None:
    tokenizer = default_tokenizer()
    sentence = "The pool is open from seven in the morning until ten at night. "
    long_word_run = "x" * 3000
    block = Block(sentence * 30 + long_word_run, "Pool")
    chunker = Chunker(chunk_size=60, overlap=10, tokenizer=tokenizer)
    chunks = chunker.chunk([block])
    assert all(c.token_count <= 60 for c in chunks)
    assert chunks[0].content.startswith("The pool is open")
    assert chunks[0].content.endswith("night.")  # cut at a sentence end
    assert "".join(c.content for c in chunks).count("x") >= 3000  # nothing lost
    for chunk in chunks:
        assert block.text[chunk.char_start : chunk.char_end].startswith(chunk.content[:20])


def test_chunker_rejects_nonsense_settings() -> None:
    with pytest.raises(ValidationError):
        Chunker(chunk_size=8)
    with pytest.raises(ValidationError):
        Chunker(chunk_size=100, overlap=60)


def test_handbook_chunks_fit_minilm_window() -> None:
    chunker = Chunker()
    total = 0
    for path in sorted(HANDBOOK.iterdir()):
        doc = extract(path.read_bytes(), name=path.name)
        chunks = chunker.chunk(doc.blocks)
        assert chunks, path.name
        assert all(0 < c.token_count <= 200 for c in chunks)
        total += len(chunks)
    assert len(list(HANDBOOK.iterdir())) == 12
    assert total >= 40
