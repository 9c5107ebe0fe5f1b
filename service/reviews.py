"""Reviewing document versions: what the CLI, the REST API and the CRM's events share.

A version is named by its client, its document (the business plan, or a deliverable month's
document key) and its version number (default: the newest), or by its id. Only the newest
version of a document can be reviewed; anything else is refused with nothing changed.
"""

from __future__ import annotations

from domain.catalogue import deliverables
from domain.limits import quote
from domain.reviews import ReviewRefused, ReviewSource, ReviewState, UnknownDocument
from domain.sections import DocumentKind
from storage import clients, documents
from storage.db import DB
from storage.documents import StoredDocument

__all__ = ["ReviewRefused", "UnknownDocument", "find", "review"]


def document_name(month: int | None, document_key: str | None) -> tuple[DocumentKind, str]:
    """(kind, document key) of the business plan (no month) or of a month's document; a bad
    month or a key the month does not have is refused (UnknownDocument)."""
    if month is None:
        if document_key is not None:
            raise UnknownDocument("--document names a deliverable's document: give --month too")
        return DocumentKind.BUSINESS_PLAN, DocumentKind.BUSINESS_PLAN.value
    try:
        keys = [d.key for d in deliverables.documents(month)]
    except ValueError as err:
        raise UnknownDocument(str(err)) from None
    if document_key not in keys:
        raise UnknownDocument(
            f"month {month} has no document {quote(document_key)}; name one with --document: {', '.join(keys)}"
        )
    return DocumentKind.DELIVERABLE, document_key


async def find(
    db: DB, client_id: str, *, month: int | None = None, document_key: str | None = None, version: int | None = None
) -> StoredDocument:
    """The named version (default: the newest) of the client's document; UnknownClient or
    UnknownDocument when there is none."""
    kind, key = document_name(month, document_key)
    await clients.get(db, client_id)
    if version is None:
        doc = await documents.latest(db, client_id, kind.value, document_key=key)
    else:
        doc = await documents.version_of(db, client_id, kind.value, key, version)
    if doc is None:
        what = f"{key} v{version}" if version else key
        raise UnknownDocument(f"client {client_id!r} has no {what.replace('_', ' ')} yet")
    return doc


async def find_by_id(db: DB, document_id: int) -> StoredDocument:
    doc = await documents.get(db, document_id)
    if doc is None:
        raise UnknownDocument(f"no document {document_id}")
    return doc


async def review(
    db: DB,
    doc: StoredDocument,
    state: ReviewState,
    *,
    by: str | None = None,
    note: str | None = None,
    source: ReviewSource,
) -> StoredDocument:
    """Set ``doc``'s review state (ReviewRefused for a superseded version); the updated version."""
    return await documents.set_review(db, doc.id, state, by=by, note=note, source=source)


def review_line(doc: StoredDocument) -> str:
    """One line saying where a version stands, for the top of a Markdown document."""
    line = f"> Review: **{doc.review_state.replace('_', ' ')}** (version {doc.version}"
    if doc.reviewed_at is not None:
        who = f" by {doc.reviewed_by}" if doc.reviewed_by else ""
        line += f", {doc.reviewed_at:%Y-%m-%d %H:%M} UTC{who}"
    line += ")"
    if doc.review_note:
        line += f": {doc.review_note}"
    return line + "\n\n"
