"""The summaries' catalogue (DESIGN.md §1): the thread summary and the client summary.

Specs in the section catalogue's shape, so routing, the writer, the cache and the ledger take
them as they take sections. A thread summary grows with the thread's new messages only; a
client summary is written from the client's compact context and its thread summaries (never
from raw messages).
"""

from __future__ import annotations

from domain.outputs.summaries import ClientSummary, ThreadSummary
from domain.sections import SectionSpec, Tier, UnknownSection

THREAD_SUMMARY = SectionSpec(
    key="thread_summary",
    title="Thread Summary",
    priority=1,
    target_tokens=250,
    purpose="Summarise the thread: its topic, key points, action items with owners, open questions and sentiment.",
    fields=(),
    # Summaries condense text the prompt carries; an invalid answer still escalates once.
    tier=Tier.ECONOMY,
    output=ThreadSummary,
)
CLIENT_SUMMARY = SectionSpec(
    key="client_summary",
    title="Client Summary",
    priority=1,
    target_tokens=350,
    purpose="Summarise where the client stands: status, highlights, risks, next steps and overall sentiment.",
    # The compact client context: what situates the brand, nothing personal (never the email).
    fields=("brandName", "industryNiche", "productCategories", "specificDeadlines", "scalingGoals"),
    tier=Tier.ECONOMY,
    output=ClientSummary,
)

SUMMARY_SPECS: dict[str, SectionSpec] = {s.key: s for s in (THREAD_SUMMARY, CLIENT_SUMMARY)}


def find(key: str) -> SectionSpec | None:
    return SUMMARY_SPECS.get(key)


def spec(key: str) -> SectionSpec:
    """A summary kind's spec; raises UnknownSection for other keys."""
    try:
        return SUMMARY_SPECS[key]
    except KeyError:
        raise UnknownSection(f"unknown summary kind {key!r}; known: {', '.join(SUMMARY_SPECS)}") from None
