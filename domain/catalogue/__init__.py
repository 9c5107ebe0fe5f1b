"""The section catalogues, one per document kind: ``plan``, ``deliverables`` (M1–M8), ``summaries``.

Every section is a keyword-built SectionSpec (domain.sections) carrying all its facts. Keys are
distinct across kinds (a deliverable kind is never named like a plan section), so a key alone
finds its spec; routing, caching and output schemas look sections up here.
"""

from __future__ import annotations

from domain.catalogue import deliverables, plan, summaries
from domain.sections import DocumentKind, SectionSpec


def spec(kind: DocumentKind, key: str) -> SectionSpec:
    """The spec of section ``key`` in ``kind``'s catalogue; raises UnknownSection."""
    if kind is DocumentKind.BUSINESS_PLAN:
        return plan.section(key)
    if kind is DocumentKind.DELIVERABLE:
        return deliverables.section_spec(key)
    return summaries.spec(key)


def document_kind(key: str) -> DocumentKind:
    """The kind of document whose catalogue knows section ``key``; raises UnknownSection."""
    if plan.find(key) is not None:
        return DocumentKind.BUSINESS_PLAN
    if summaries.find(key) is not None:
        return DocumentKind.SUMMARY
    deliverables.find(key) or deliverables.section_spec(key)  # unknown keys raise
    return DocumentKind.DELIVERABLE


def spec_of(key: str) -> SectionSpec:
    """The spec of ``key`` in whichever catalogue knows it (a deliverable section kind's key
    gives the kind's spec); raises UnknownSection."""
    found = plan.find(key) or summaries.find(key) or deliverables.find(key)
    return found if found is not None else deliverables.section_spec(key)
