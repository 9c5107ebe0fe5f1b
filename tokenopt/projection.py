"""Context compression: each section sees only the client fields it reads, cleaned up.

The field list comes from the section catalogue (domain.catalogue); this module only decides
how values are normalised. Email never reaches a prompt, whatever a catalogue entry says.
"""

from __future__ import annotations

import re
from typing import Any

NEVER_SENT = frozenset({"email", "id", "status"})
_SPACE = re.compile(r"\s+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s")


def normalise(value: Any) -> str | None:
    """One line of text for a field value; None when there is nothing worth sending."""
    if value is None:
        return None
    if isinstance(value, list):
        items = [normalise(v) for v in value]
        text = ", ".join(i for i in items if i)
    else:
        text = _SPACE.sub(" ", str(value)).strip()
    return text or None


def truncate_sentences(text: str, max_chars: int) -> str:
    """Cut at the last sentence boundary within ``max_chars`` (deterministic summarising)."""
    if len(text) <= max_chars:
        return text
    cut = text[:max_chars]
    boundaries = [m.start() for m in _SENTENCE_END.finditer(cut)]
    if boundaries and boundaries[-1] > max_chars // 3:
        return cut[: boundaries[-1]].rstrip()
    return cut.rsplit(" ", 1)[0].rstrip(" ,;:") + "…"


def drop_repeated_sentences(text: str) -> str:
    """``text`` with every sentence after its first occurrence removed: shorter, no fact lost."""
    seen: set[str] = set()
    kept = []
    for sentence in _SENTENCE_END.split(text):
        key = sentence.strip().casefold()
        if key and key not in seen:
            seen.add(key)
            kept.append(sentence.strip())
    return " ".join(kept)


def project(record: dict[str, Any], fields: tuple[str, ...] | list[str]) -> dict[str, str]:
    """The named fields of a wire-format record, normalised, in catalogue order, empty ones dropped."""
    out: dict[str, str] = {}
    for name in fields:
        if name in NEVER_SENT:
            continue
        text = normalise(record.get(name))
        if text:
            out[name] = text
    return out


def full_record(record: dict[str, Any]) -> dict[str, str]:
    """Every non-empty field except the ones never sent: what the naive way puts in a prompt."""
    return project(record, [k for k in record if k not in NEVER_SENT])
