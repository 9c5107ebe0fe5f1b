"""Word (.docx) rendering of a document's sections, beside the Markdown of domain/render.py:
the same headings, lists and tables, for a studio to send as is. Display only."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from docx import Document
from docx.document import Document as DocxDocument
from docx.enum.text import WD_BREAK

from domain.render import label

Section = tuple[str, dict[str, Any]]


def _value(doc: DocxDocument, value: Any, depth: int) -> None:
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        headers = list(value[0])
        table = doc.add_table(rows=1, cols=len(headers))
        table.style = "Table Grid"
        for cell, header in zip(table.rows[0].cells, headers, strict=True):
            cell.text = label(header)
            for run in cell.paragraphs[0].runs:
                run.bold = True
        for row in value:
            cells = table.add_row().cells
            for cell, header in zip(cells, headers, strict=True):
                cell.text = str(row.get(header, ""))
        doc.add_paragraph()
    elif isinstance(value, list):
        for item in value:
            doc.add_paragraph(str(item), style="List Bullet")
    elif isinstance(value, dict):
        for key, inner in value.items():
            doc.add_paragraph().add_run(label(key)).bold = True
            _value(doc, inner, depth + 1)
    else:
        doc.add_paragraph(str(value))


def render_docx(documents: Sequence[tuple[str, str | None, list[Section]]]) -> bytes:
    """One .docx holding each (title, status line, sections) in turn, a page apart."""
    doc = Document()
    for index, (title, status, sections) in enumerate(documents):
        if index:
            doc.add_paragraph().add_run().add_break(WD_BREAK.PAGE)
        doc.add_heading(title, level=0)
        if status:
            doc.add_paragraph(status).runs[0].italic = True
        for section_title, content in sections:
            doc.add_heading(section_title, level=1)
            for key, value in content.items():
                doc.add_heading(label(key), level=2)
                _value(doc, value, 0)
    out = io.BytesIO()
    doc.save(out)
    return out.getvalue()
