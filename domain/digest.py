"""The digest of earlier months a deliverable month builds on: decisions and KPI names, bounded.

A month never reads earlier months' full text: this compact digest (a title, a few decisions
and the KPI names per earlier document) is what the kinds that build on earlier months carry in
their prompt (SectionSpec.uses_digest).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Annotated, Any

from pydantic import Field, StringConstraints

from domain.catalogue import deliverables
from domain.outputs.base import OutputModel

# What later months must receive (domain.needs: the decisions and KPI names of every earlier
# month) sets the size. The strategy's schema asks for 3-5 decisions of at most 8 words, so one
# document is a title, up to five decisions whole and the KPI names no earlier document carried
# (KPIs repeat from document to document; a name is a fact once): about 50-70 tokens, some
# 1,700-2,500 for the 35 documents before M8. The budget leaves room for that; trimming the
# oldest months first (_TRIM_STAGES) and then dropping the oldest documents is the guard for
# answers that ignore the schema's limits, not the everyday path. The month just before is
# trimmed last: it is what the next month builds on directly.
DIGEST_TOKEN_BUDGET = 2800
MAX_DECISIONS = 5
MIN_DECISIONS = 3  # kept while the budget allows
# Eight words fit whole (a clipped decision loses its tail).
DECISION_CHARS = 80
MAX_KPIS = 6
KPI_CHARS = 48
MAX_DIGEST_DOCUMENTS = (deliverables.LAST_MONTH - 1) * 5

# Which outputs the digest reads, per kind: decisions from the strategy (topped up from the
# summary's key points), KPI names from the KPIs section. Nothing else of a month is carried.
DIGEST_FIELDS: dict[str, tuple[str, ...]] = {
    "framework_strategy": ("key_decisions",),
    "exec_summary": ("key_points",),
    "kpis": ("kpis[].name",),
}


def approx_tokens(text: str) -> int:
    """A dependency-free estimate (4 characters a token, English prose). Callers that can pass
    tokenopt.counting.count_tokens to build_digest get an exact bound instead."""
    return -(-len(text) // 4)


Decision = Annotated[str, StringConstraints(max_length=DECISION_CHARS)]
KpiName = Annotated[str, StringConstraints(max_length=KPI_CHARS)]


class DigestDocument(OutputModel):
    key: str
    month: int
    title: str
    decisions: list[Decision] = Field(max_length=MAX_DECISIONS)
    kpis: list[KpiName] = Field(max_length=MAX_KPIS)


class Digest(OutputModel):
    """What month ``for_month`` is told of the months before it."""

    for_month: int
    documents: list[DigestDocument] = Field(max_length=MAX_DIGEST_DOCUMENTS)


def digest_fields() -> dict[str, tuple[str, ...]]:
    """Section kind -> the output fields the digest reads (``a[].b``: b of each item of a)."""
    return dict(DIGEST_FIELDS)


def digest_section_keys(n: int) -> list[str]:
    """The stored sections month ``n``'s digest is built from (earlier months only)."""
    deliverables.month(n)
    return [
        deliverables.section_key(d.key, kind)
        for m in deliverables.MONTHS[: n - 1]
        for d in m.documents
        for kind in DIGEST_FIELDS
    ]


_SPACE = re.compile(r"\s+")
# Words a clipped phrase should not end on ("...the palette as the" -> "...the palette").
_DANGLING = frozenset("a an and as at by for from in of on or the to with".split())


def clip(text: str, max_chars: int) -> str:
    """One line of at most ``max_chars``, cut at a word boundary and marked with an ellipsis."""
    text = _SPACE.sub(" ", text).strip().rstrip(".")
    if len(text) <= max_chars:
        return text
    words = text[: max_chars - 1].split(" ")
    if len(words) > 1:
        words.pop()  # the last word is probably cut in half
    while len(words) > 1 and words[-1].casefold() in _DANGLING:
        words.pop()
    return " ".join(words).rstrip(" ,;:-") + "…"


def _strings(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str) and v.strip()] if isinstance(value, list) else []


def _pick(candidates: list[str], limit: int, max_chars: int, seen: set[str] | None = None) -> list[str]:
    """Up to ``limit`` distinct clipped items; ``seen`` (shared across documents) skips items
    an earlier document already carries."""
    picked: list[str] = []
    seen = set() if seen is None else seen
    for text in candidates:
        clipped = clip(text, max_chars)
        if clipped and clipped.casefold() not in seen:
            seen.add(clipped.casefold())
            picked.append(clipped)
        if len(picked) == limit:
            break
    return picked


def _render(for_month: int, docs: list[DigestDocument]) -> str:
    if not docs:
        return ""
    lines = [f"EARLIER MONTHS (before M{for_month})"]
    current = 0
    for doc in docs:
        if doc.month != current:
            current = doc.month
            lines.append(f"M{current} {deliverables.MONTHS[current - 1].title}")
        line = f"- {doc.title}: {'; '.join(doc.decisions)}"
        if doc.kpis:
            line += f" | KPIs: {', '.join(doc.kpis)}"
        lines.append(line)
    return "\n".join(lines)


# Trimming order: (which months, field, floor). Older months give up detail first; the month
# just before keeps three decisions until older months are down to one.
_TRIM_STAGES: tuple[tuple[str, str, int], ...] = (
    ("older", "decisions", MIN_DECISIONS),
    ("older", "kpis", 1),
    ("previous", "decisions", MIN_DECISIONS),
    ("older", "decisions", 1),
    ("older", "kpis", 0),
    ("previous", "kpis", 1),
    ("previous", "decisions", 1),
    ("previous", "kpis", 0),
)


def _trim(for_month: int, docs: list[DigestDocument], fits: Callable[[], bool]) -> None:
    """Shorten ``docs`` in place until ``fits()``, oldest month first."""
    for which, field, floor in _TRIM_STAGES:
        numbers = range(1, for_month - 1) if which == "older" else (for_month - 1,)
        for number in numbers:
            in_month = [d for d in docs if d.month == number]
            while in_month and not fits():
                # The document of this month with the most items loses its last one.
                longest = max(reversed(in_month), key=lambda d: len(getattr(d, field)))
                if len(getattr(longest, field)) <= floor:
                    break
                getattr(longest, field).pop()
            if fits():
                return
    while docs and not fits():
        docs.pop(0)


def build_digest(
    n: int,
    sections: Mapping[str, Mapping[str, Any]],
    *,
    count_tokens: Callable[[str], int] = approx_tokens,
    max_tokens: int = DIGEST_TOKEN_BUDGET,
) -> Digest:
    """The compact digest month ``n`` is given of months 1..n-1.

    ``sections`` maps deliverable section keys to their content as the output models dump it
    (see digest_section_keys); other keys and missing sections are ignored, and documents with
    nothing to carry are left out. Picks decisions and KPI names, clips them, then trims the
    oldest months until ``count_tokens(render_digest(...)) <= max_tokens``.
    """
    deliverables.month(n)
    docs: list[DigestDocument] = []
    kpis_seen: set[str] = set()
    for m in deliverables.MONTHS[: n - 1]:
        for doc in m.documents:
            strategy = sections.get(deliverables.section_key(doc.key, "framework_strategy")) or {}
            summary = sections.get(deliverables.section_key(doc.key, "exec_summary")) or {}
            kpis = sections.get(deliverables.section_key(doc.key, "kpis")) or {}
            decisions = _pick(
                _strings(strategy.get("key_decisions")) + _strings(summary.get("key_points")),
                MAX_DECISIONS,
                DECISION_CHARS,
            )
            names = [k.get("name") for k in kpis.get("kpis") or [] if isinstance(k, Mapping)]
            kpi_names = _pick(_strings(names), MAX_KPIS, KPI_CHARS, kpis_seen)
            if decisions or kpi_names:
                docs.append(
                    DigestDocument(key=doc.key, month=m.number, title=doc.title, decisions=decisions, kpis=kpi_names)
                )
    _trim(n, docs, lambda: count_tokens(_render(n, docs)) <= max_tokens)
    return Digest(for_month=n, documents=docs)


def render_digest(digest: Digest) -> str:
    """The digest as prompt text, one line per earlier document under its month; empty for M1."""
    return _render(digest.for_month, digest.documents)
