"""Redaction of contact details in free text before it reaches any prompt.

Message threads are free text: a client may paste an email address or a phone number into one.
Emails are found by pattern; phone numbers by Google's libphonenumber (``phonenumbers``), which
knows real numbering plans, so dates, prices and counts are left alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import phonenumbers

EMAIL_MARK = "[email]"
PHONE_MARK = "[phone]"

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
# National formats are read as numbers of these regions (the studio's markets); international
# ones ("+44 ...") are found whatever the region.
PHONE_REGIONS = ("US", "GB")


def _phone_spans(text: str) -> list[tuple[int, int]]:
    spans = [
        (m.start, m.end) for m in phonenumbers.PhoneNumberMatcher(text, None, leniency=phonenumbers.Leniency.POSSIBLE)
    ]
    for region in PHONE_REGIONS:
        spans += [
            (m.start, m.end)
            for m in phonenumbers.PhoneNumberMatcher(text, region, leniency=phonenumbers.Leniency.VALID)
        ]
    return spans


def redact(text: str, known: Iterable[str] = ()) -> str:
    """``text`` with email addresses and phone numbers replaced by ``[email]`` / ``[phone]``;
    ``known`` values (e.g. the client's own email) are replaced wherever they appear."""
    for value in known:
        if value:
            text = re.sub(re.escape(value), EMAIL_MARK if "@" in value else "[redacted]", text, flags=re.IGNORECASE)
    text = _EMAIL.sub(EMAIL_MARK, text)
    if not any(ch.isdigit() for ch in text):
        return text
    # Replace from the end so earlier spans keep their offsets; overlapping spans merge.
    merged: list[tuple[int, int]] = []
    for start, end in sorted(_phone_spans(text)):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    for start, end in reversed(merged):
        text = text[:start] + PHONE_MARK + text[end:]
    return text
