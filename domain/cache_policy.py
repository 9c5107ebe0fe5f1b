"""What may be cached, for how long, and how: the policy a section's spec carries.

The per-section rules live in the catalogues (``cache=`` on a spec; CachePolicy in
domain.sections says what each flag means); this is the one place callers ask.
"""

from __future__ import annotations

from enum import StrEnum

from domain import catalogue
from domain.sections import CachePolicy, DocumentKind, UnknownSection

_DEFAULT = CachePolicy()


class CacheTier(StrEnum):
    """The reuse tier that served a section; results, usage rows and metric labels carry it."""

    # Written now by a model call.
    NONE = "none"
    # The section stored for the same inputs (the client version did not touch it).
    STORED = "stored"
    EXACT = "exact"
    TEMPLATE = "template"
    # An earlier answer from the same inputs under another prompt.
    SEMANTIC = "semantic"
    # The stored answer patched for a few changed facts.
    PATCH = "patch"


def policy(kind: DocumentKind, section_key: str) -> CachePolicy:
    """The policy of a section; a deliverable section's is its kind's (``m1_x__kpis`` -> kpis).
    Raises UnknownSection for an unknown deliverable key; other unknown keys get the default."""
    try:
        return catalogue.spec(kind, section_key).cache
    except UnknownSection:
        if kind is DocumentKind.DELIVERABLE:
            raise
        return _DEFAULT
