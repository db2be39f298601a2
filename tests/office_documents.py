"""Small DOCX, PPTX and XLSX files made in the test (no committed binaries).

A DOCX is a zip of three XML parts, written here by hand (python-docx is not needed);
PPTX and XLSX come from python-pptx and openpyxl, which markitdown's extras install.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Sequence
from xml.sax.saxutils import escape

import pytest

_W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" '
    'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/word/document.xml" ContentType="application/'
    'vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/>'
    "</Types>"
)
_RELS = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/'
    '2006/relationships/officeDocument" Target="word/document.xml"/>'
    "</Relationships>"
)


def make_docx(paragraphs: Sequence[tuple[str | None, str]]) -> bytes:
    """A Word document of (style, text) paragraphs; style ``Heading1``, ``Heading2``... or
    ``None`` for body text."""

    def paragraph(style: str | None, text: str) -> str:
        props = f'<w:pPr><w:pStyle w:val="{style}"/></w:pPr>' if style else ""
        return f'<w:p>{props}<w:r><w:t xml:space="preserve">{escape(text)}</w:t></w:r></w:p>'

    body = "".join(paragraph(style, text) for style, text in paragraphs)
    document = (
        f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        f'<w:document xmlns:w="{_W}"><w:body>{body}</w:body></w:document>'
    )
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", _CONTENT_TYPES)
        archive.writestr("_rels/.rels", _RELS)
        archive.writestr("word/document.xml", document)
    return out.getvalue()


def make_pptx(slides: Sequence[tuple[str, str]]) -> bytes:
    """A presentation of (title, body text) slides."""
    pptx = pytest.importorskip("pptx")
    presentation = pptx.Presentation()
    for title, body in slides:
        slide = presentation.slides.add_slide(presentation.slide_layouts[1])
        slide.shapes.title.text = title
        slide.placeholders[1].text = body
    out = io.BytesIO()
    presentation.save(out)
    return out.getvalue()


def make_xlsx(sheets: dict[str, Sequence[Sequence[object]]]) -> bytes:
    """A workbook with one sheet per name, the first row of each a header."""
    openpyxl = pytest.importorskip("openpyxl")
    workbook = openpyxl.Workbook()
    workbook.remove(workbook.active)
    for name, rows in sheets.items():
        sheet = workbook.create_sheet(name)
        for row in rows:
            sheet.append(list(row))
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


LAUNDRY_DOCX = [
    ("Heading1", "Laundry Room Guide"),
    (None, "The washing machines run from 7 am to 10 pm every day."),
    ("Heading2", "Fees"),
    (None, "Each wash costs two euros, paid with the resident_card at the door."),
]
BUILDING_PPTX = [
    ("Boiler room", "The boiler is serviced every October by Hetta Heating."),
    ("Bike storage", "Bicycles are kept in the basement cage; the code is on your key tag."),
]
CONTACTS_XLSX: dict[str, Sequence[Sequence[object]]] = {
    "Contacts": [
        ("Role", "Name", "Phone"),
        ("Caretaker", "Olga Berg", "555-0101"),
        ("Plumber", "Ivan Roos", "555-0102"),
    ],
    "Fees": [("Item", "Monthly fee"), ("Parking space", 40), ("Storage locker", 12)],
}
