"""Summaries: message threads between a client and the studio, and what the model returns for them.

Two kinds (DESIGN.md §1): a thread summary (topic, action items, sentiment) that grows with the
thread's new messages only, and a client summary written from the client's compact context and
its thread summaries (never from raw messages). Their output models are registered with the
section outputs (``domain.outputs.output_model``), so the writer, the cache and the stub treat
them like any section.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from domain.limits import (
    MAX_PROBLEMS,
    MESSAGES_PER_THREAD,
    THREAD_ID_PATTERN,
    THREADS_PER_INPUT,
    MessageId,
    MessageText,
    Subject,
    ThreadId,
    where,
)
from domain.sections import SectionSpec, UnknownSection


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Author(StrEnum):
    CLIENT = "client"
    STUDIO = "studio"


class Sentiment(StrEnum):
    POSITIVE = "positive"
    NEUTRAL = "neutral"
    NEGATIVE = "negative"
    MIXED = "mixed"


# -- outputs ---------------------------------------------------------------------------------
class ActionItem(_Out):
    owner: Author
    task: str
    due: str


class ThreadSummary(_Out):
    topic: str
    sentiment: Sentiment
    key_points: list[str]
    action_items: list[ActionItem]
    open_questions: list[str]


class ClientSummary(_Out):
    status: str
    sentiment: Sentiment
    highlights: list[str]
    risks: list[str]
    next_steps: list[str]


# -- the catalogue -----------------------------------------------------------------------------
# Specs in the section catalogue's shape, so routing, the writer, the cache and the ledger take
# them as they take sections. Targets are output tokens (the stub answers with exactly that).
THREAD_SUMMARY = SectionSpec(
    "thread_summary",
    "Thread Summary",
    1,
    250,
    "Summarise the thread: its topic, key points, action items with owners, open questions and sentiment.",
    (),
)
CLIENT_SUMMARY = SectionSpec(
    "client_summary",
    "Client Summary",
    1,
    350,
    "Summarise where the client stands: status, highlights, risks, next steps and overall sentiment.",
    # The compact client context: what situates the brand, nothing personal (never the email).
    ("brandName", "industryNiche", "productCategories", "specificDeadlines", "scalingGoals"),
)

SUMMARY_SPECS: dict[str, SectionSpec] = {s.key: s for s in (THREAD_SUMMARY, CLIENT_SUMMARY)}
SUMMARY_OUTPUTS: dict[str, type[_Out]] = {"thread_summary": ThreadSummary, "client_summary": ClientSummary}


def spec(key: str) -> SectionSpec:
    """A summary kind's spec; raises UnknownSection for other keys."""
    try:
        return SUMMARY_SPECS[key]
    except KeyError:
        raise UnknownSection(f"unknown summary kind {key!r}; known: {', '.join(SUMMARY_SPECS)}") from None


def output_model_for(key: str) -> type[_Out]:
    spec(key)
    return SUMMARY_OUTPUTS[key]


# -- messages ----------------------------------------------------------------------------------
class InvalidMessages(ValueError):
    """A messages file or payload that cannot be stored; nothing of it was stored."""

    def __init__(self, problems: list[str]):
        super().__init__("invalid messages: " + "; ".join(problems))
        self.problems = problems


class NewMessage(BaseModel):
    """A message as the CRM (or a messages file) sends it; ``id`` makes appends idempotent.
    Lengths and characters are bounded (domain/limits.py)."""

    model_config = ConfigDict(extra="forbid")

    id: MessageId
    author: Author
    text: MessageText
    sent_at: datetime

    @field_validator("text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value


class ThreadMessage(NewMessage):
    """A stored message: its position in the thread (``seq``, 1-based, in arrival order)."""

    seq: int


class ThreadInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    thread_id: ThreadId
    subject: Subject | None = None
    messages: list[NewMessage] = Field(min_length=1, max_length=MESSAGES_PER_THREAD)


def parse_threads(data: Any) -> list[ThreadInput]:
    """Validate a list of threads with their messages (the ``--messages`` file); raises
    InvalidMessages naming every problem, so a bad file is refused whole."""
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list) or not data:
        raise InvalidMessages(["expected a JSON list of threads, each {thread_id, messages: [...]}"])
    if len(data) > THREADS_PER_INPUT:
        raise InvalidMessages([f"{len(data):,} threads; at most {THREADS_PER_INPUT} at once"])
    threads, problems = [], []
    for index, item in enumerate(data):
        label = item.get("thread_id", f"#{index + 1}") if isinstance(item, dict) else f"#{index + 1}"
        label = label if isinstance(label, str) and re.match(THREAD_ID_PATTERN, label) else f"#{index + 1}"
        try:
            threads.append(ThreadInput.model_validate(item))
        except ValidationError as err:
            for e in err.errors():
                problems.append(f"thread {label}: {where(e['loc']) or '(thread)'}: {e['msg'][:160]}")
    seen: set[str] = set()
    for thread in threads:
        if thread.thread_id in seen:
            problems.append(f"thread {thread.thread_id}: listed twice; put all its messages in one entry")
        seen.add(thread.thread_id)
    if problems:
        raise InvalidMessages(problems[:MAX_PROBLEMS])
    return threads
