"""Budget-driven compression: when a prompt takes too much of its section's token budget,
shrink it in a fixed order and record which steps fired."""

from __future__ import annotations

from collections.abc import Collection
from enum import StrEnum

from domain.needs import needed_fields
from domain.sections import DocumentKind, SectionSpec, UnknownSection
from tokenopt.projection import drop_repeated_sentences, truncate_sentences

# A section's token budget is twice its catalogue target (the max_completion_tokens we ask
# for). A prompt over 40% of it is worth compressing; a prompt larger than the whole budget
# after compression is refused before any call: it would cost more than the answer.
COMPRESS_AT = 0.4
LONG_FIELD_CHARS = 240


class Step(StrEnum):
    DROP_EXAMPLES = "drop_examples"
    SUMMARISE_LONG_FIELDS = "summarise_long_fields"
    REFERENCE_REPEATS = "reference_repeats"
    SIMPLIFY_CONSTRAINTS = "simplify_constraints"


ORDER = (Step.DROP_EXAMPLES, Step.SUMMARISE_LONG_FIELDS, Step.REFERENCE_REPEATS, Step.SIMPLIFY_CONSTRAINTS)


class BudgetExceeded(ValueError):
    """The prompt is still over budget after every compression step."""


def section_budget(spec: SectionSpec) -> int:
    return spec.target_tokens * 2


def compress_threshold(spec: SectionSpec) -> int:
    return int(section_budget(spec) * COMPRESS_AT)


def kept_whole(kind: DocumentKind, section_key: str) -> frozenset[str]:
    """The fields compression must not cut: the ones the section needs (domain.needs), whose
    facts a cut would lose. A section outside the needs table (a template, a test's) has none."""
    try:
        return frozenset(needed_fields(kind, section_key))
    except (UnknownSection, KeyError):
        return frozenset()


def shorten_long_fields(values: dict[str, str], keep_whole: Collection[str]) -> dict[str, str]:
    """SUMMARISE_LONG_FIELDS: repeated sentences go from every value (no fact is lost); a value
    the section does not need is then cut at a sentence boundary; a needed one stays whole."""
    out = {}
    for name, value in values.items():
        value = drop_repeated_sentences(value)
        out[name] = value if name in keep_whole else truncate_sentences(value, LONG_FIELD_CHARS)
    return out


def hard_limit(spec: SectionSpec) -> int:
    """The largest prompt a section may send."""
    return section_budget(spec)
