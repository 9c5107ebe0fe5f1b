"""Documents exported for a studio to send: Word (.docx), what the CLI and the API share."""

from __future__ import annotations

from domain.catalogue import deliverables
from domain.catalogue.plan import section
from domain.outputs.schemas import in_schema_order
from domain.render_docx import render_docx
from domain.sections import DocumentKind
from service.reviews import review_line
from storage import sections
from storage.db import DB
from storage.documents import StoredDocument

DOCX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def section_title(kind: str, key: str) -> str:
    if kind == DocumentKind.DELIVERABLE.value:
        return deliverables.section_kind(deliverables.kind_of(key)).title
    return section(key).title


async def docx(db: DB, docs: list[StoredDocument]) -> bytes:
    """The versions as one .docx (each under its title and review state, a page apart)."""
    out = []
    for doc in docs:
        stored = await sections.get_many(db, doc.section_ids)
        parts = [
            (section_title(doc.kind, stored[i].section_key), in_schema_order(stored[i].section_key, stored[i].content))
            for i in doc.section_ids
        ]
        title = doc.markdown.partition("\n")[0].removeprefix("# ").strip()
        status = review_line(doc).strip().removeprefix("> ").replace("**", "")
        out.append((title, status, parts))
    return render_docx(out)
