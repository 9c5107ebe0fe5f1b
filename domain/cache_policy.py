"""What may be cached, for how long, and how: one table per document kind and section.

Follows the seed: identical client-data regeneration, template-based content, reference
material and boilerplate are cacheable; anything time-sensitive, dynamic data (prices, dates)
and personalised recommendations flagged as such are not.
"""

from __future__ import annotations

from dataclasses import dataclass

from domain import deliverables
from domain.sections import DocumentKind


@dataclass(frozen=True)
class CachePolicy:
    cacheable: bool = True
    # An earlier answer written from the same inputs under another prompt may be served.
    semantic: bool = True
    # A few changed facts may be patched into the earlier answer instead of a rewrite.
    patchable: bool = True
    reason: str = ""


_DEFAULT = CachePolicy()

POLICIES: dict[tuple[DocumentKind, str], CachePolicy] = {
    # Figures depend on the client's numbers and dates: an exact match is safe, a "similar"
    # one is not, so financial projections never come from the semantic tier.
    (DocumentKind.BUSINESS_PLAN, "financial_projections"): CachePolicy(
        semantic=False, reason="prices and dates must match exactly"
    ),
    (DocumentKind.BUSINESS_PLAN, "operations_plan"): CachePolicy(semantic=False, reason="deadlines must match exactly"),
    # Deliverables are keyed by section kind (domain.deliverables): KPI targets are figures and
    # dates, so a "similar" answer is never served.
    (DocumentKind.DELIVERABLE, "kpis"): CachePolicy(semantic=False, reason="KPI targets must match exactly"),
}


def policy(kind: DocumentKind, section_key: str) -> CachePolicy:
    """The policy of a section; a deliverable section's is its kind's (``m1_x__kpis`` -> kpis)."""
    if kind is DocumentKind.DELIVERABLE:
        section_key = deliverables.kind_of(section_key)
    return POLICIES.get((kind, section_key), _DEFAULT)
