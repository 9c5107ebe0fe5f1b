"""What the two summary kinds return (their specs in domain.catalogue.summaries name the model)."""

from __future__ import annotations

from enum import StrEnum

from domain.outputs.base import OutputModel
from domain.summaries import Author


class Sentiment(StrEnum):
    POSITIVE = "positive"
    NEUTRAL = "neutral"
    NEGATIVE = "negative"
    MIXED = "mixed"


class ActionItem(OutputModel):
    owner: Author
    task: str
    due: str


class ThreadSummary(OutputModel):
    topic: str
    sentiment: Sentiment
    key_points: list[str]
    action_items: list[ActionItem]
    open_questions: list[str]


class ClientSummary(OutputModel):
    status: str
    sentiment: Sentiment
    highlights: list[str]
    risks: list[str]
    next_steps: list[str]
