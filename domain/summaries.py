"""Summaries' input: message threads between a client and the studio, as the CRM sends them.

What is summarised and what the model returns are the summaries' catalogue
(domain.catalogue.summaries) and outputs (domain.outputs.summaries).
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


class Author(StrEnum):
    CLIENT = "client"
    STUDIO = "studio"


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
