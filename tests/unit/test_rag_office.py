"""DOCX, PPTX and XLSX through markitdown: text, headings as sections, slides as pages,
table rows as ``Header: value`` paragraphs, clear errors for broken files and for a
missing ``documents`` extra."""

from __future__ import annotations

import sys

import pytest

from ai_agents.rag import chunking, office
from ai_agents.rag.chunking import SUPPORTED_SUFFIXES, Chunker, extract, ingestible_suffixes
from ai_agents.rag.errors import UnsupportedDocument
from tests.office_documents import (
    BUILDING_PPTX,
    CONTACTS_XLSX,
    LAUNDRY_DOCX,
    make_docx,
    make_pptx,
    make_xlsx,
)

needs_markitdown = pytest.mark.skipif(
    not office.markitdown_available(), reason="the documents extra (markitdown) is not installed"
)


@needs_markitdown
def test_docx_headings_become_title_and_sections() -> None:
    doc = extract(make_docx(LAUNDRY_DOCX), name="laundry.docx")
    assert doc.kind == "docx" and doc.title == "Laundry Room Guide"
    assert [(b.text, b.section, b.heading) for b in doc.blocks] == [
        ("Laundry Room Guide", "Laundry Room Guide", True),
        ("The washing machines run from 7 am to 10 pm every day.", "Laundry Room Guide", False),
        ("Fees", "Fees", True),
        # markitdown escapes the underscore (resident\_card); the chunk holds the word.
        ("Each wash costs two euros, paid with the resident_card at the door.", "Fees", False),
    ]
    for block in doc.blocks:
        assert doc.text[block.start : block.start + len(block.text)] == block.text
    chunks = Chunker().chunk(doc.blocks)
    assert [c.section for c in chunks] == ["Laundry Room Guide", "Fees"]
    assert "two euros" in chunks[1].content


@needs_markitdown
def test_pptx_slides_are_pages() -> None:
    doc = extract(make_pptx(BUILDING_PPTX), name="building.pptx")
    assert doc.kind == "pptx" and doc.metadata == {"slides": 2}
    assert doc.title == "Boiler room"  # the first slide's title
    assert "Slide number" not in doc.text  # markitdown's slide markers are read, not kept
    boiler = next(b for b in doc.blocks if "Hetta Heating" in b.text)
    bikes = next(b for b in doc.blocks if "basement cage" in b.text)
    assert (boiler.page, boiler.section) == (1, "Boiler room")
    assert (bikes.page, bikes.section) == (2, "Bike storage")
    assert [c.page for c in Chunker().chunk(doc.blocks)] == [1, 2]


@needs_markitdown
def test_xlsx_sheets_are_sections_and_rows_say_their_headers() -> None:
    doc = extract(make_xlsx(CONTACTS_XLSX), name="building-contacts.xlsx")
    assert doc.kind == "xlsx" and doc.title == "Building contacts"
    assert [(b.text, b.section) for b in doc.blocks if not b.heading] == [
        ("Role: Caretaker; Name: Olga Berg; Phone: 555-0101", "Contacts"),
        ("Role: Plumber; Name: Ivan Roos; Phone: 555-0102", "Contacts"),
        ("Item: Parking space; Monthly fee: 40", "Fees"),
        ("Item: Storage locker; Monthly fee: 12", "Fees"),
    ]
    chunks = Chunker().chunk(doc.blocks)
    assert [c.section for c in chunks] == ["Contacts", "Fees"]  # a chunk never spans sheets


@needs_markitdown
def test_broken_office_files_are_unsupported_documents_naming_the_file() -> None:
    for name in ("report.docx", "deck.pptx", "sheet.xlsx"):
        kind = name.rsplit(".", 1)[1].upper()
        with pytest.raises(UnsupportedDocument, match=rf"cannot read {kind} '{name}'"):
            extract(b"PK\x03\x04 not really a zip", name=name)


@needs_markitdown
def test_an_office_file_without_text_is_empty() -> None:
    assert extract(make_docx([]), name="blank.docx").blocks == []


def test_readable_markdown_rewrites_tables_comments_and_escapes() -> None:
    markdown = "\n".join(
        [
            "<!-- a comment -->",
            "## Sheet",
            "| Code | Unnamed: 1 | Note |",
            "| --- | --- | --- |",
            "| a\\_b | 3 | NaN |",
            "| c \\| d | NaN | \\*z\\* |",
            "text after",
            "",
            "| no | header |",
            "| only | rows |",
        ]
    )
    assert office.readable_markdown(markdown).split("\n") == [
        "",
        "## Sheet",
        "",
        "Code: a_b; 3",
        "",
        "Code: c | d; Note: *z*",
        "",
        "text after",
        "",
        "",
        "no; header",
        "",
        "only; rows",
        "",
    ]


def test_slides_cut_markdown_at_the_slide_markers() -> None:
    markdown = "intro\n<!-- Slide number: 1 -->\n# One\n\n<!-- Slide number: 2 -->\n# Two\n"
    assert office.slides(markdown) == [(None, "intro\n"), (1, "\n# One\n\n"), (2, "\n# Two\n")]
    assert office.slides("# plain\n") == [(None, "# plain\n")]


def test_without_markitdown_office_files_name_the_install_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "markitdown.converters", None)  # import fails
    with pytest.raises(UnsupportedDocument, match=r"pip install 'ai-agents-platform\[documents\]'"):
        extract(b"PK\x03\x04", name="report.docx")

    monkeypatch.setattr(chunking, "markitdown_available", lambda: False)
    readable = ingestible_suffixes()
    assert {".txt", ".md", ".html", ".pdf"} <= readable
    assert not readable & {".docx", ".pptx", ".xlsx"}
    monkeypatch.setattr(chunking, "markitdown_available", lambda: True)
    assert ingestible_suffixes() == set(SUPPORTED_SUFFIXES)
    assert {".docx", ".pptx", ".xlsx"} <= set(SUPPORTED_SUFFIXES)


def test_an_office_file_that_unpacks_too_large_is_refused_before_reading(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = make_docx(LAUNDRY_DOCX)
    monkeypatch.setattr(office, "MAX_UNPACKED_BYTES", 1000)
    with pytest.raises(UnsupportedDocument, match=r"'big.docx' unpacks to \d+ bytes"):
        extract(data, name="big.docx")
