"""Input limits: how long, how deep and which characters outside input may carry.

One table for every path by which data comes in (the CRM's webhooks, the REST API,
`clients import`, messages files), so a value refused on one is refused on all. The sizes are
CRM-realistic (a studio's application form, an email thread), documented in the README; the
characters are those Postgres and a prompt can take (jsonb refuses NUL; an unpaired surrogate
is not UTF-8). HTTP-level limits (the request body cap) are in crm/limits.py.
"""

from __future__ import annotations

import json
import math
import re
from typing import Annotated, Any

from pydantic import AfterValidator, ValidationInfo

# -- identifiers -------------------------------------------------------------------------------
# A CRM client id is a cuid (25 characters); room for other id schemes, nothing else.
CLIENT_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
# Thread and message ids: the CRM's own, or an email's Message-ID without its brackets.
THREAD_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,200}$"
MESSAGE_ID_PATTERN = r"^[A-Za-z0-9._:@+=-]{1,200}$"
# X-Webhook-ID: whd_<ms>_<rand> from the CRM; bounded so its index row always fits.
DELIVERY_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"
# An event name such as client.updated.
EVENT_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,30}(\.[a-z][a-z0-9_]{0,30}){0,3}$"
# A catalogue key (executive_summary, m1_brand_architecture, ...).
SECTION_KEY_PATTERN = r"^[a-z0-9_]{1,64}$"
# Workflow ids we make (plan-<id>, deliverable-<id>-m1, bulk-<hash>) or an operator chose.
WORKFLOW_ID_PATTERN = r"^[A-Za-z0-9._:@=+-]{1,255}$"

# -- text and lists ----------------------------------------------------------------------------
NAME_CHARS = 200  # fullName, brandName
HANDLE_CHARS = 100  # instagramHandle, tiktokHandle (the platforms allow 30 and 24)
SHORT_TEXT_CHARS = 200  # one-line answers: country, industryNiche, targetDemographicAge, ...
FREE_TEXT_CHARS = 5_000  # a form's text area: professionalMilestones, visionForVenture, ...
LIST_ITEMS = 50  # productCategories, section and thread lists
EXTRA_FIELDS = 50  # fields the CRM sends that we do not map (kept in the snapshot)
EXTRA_FIELD_CHARS = 5_000  # one such field's value, as JSON
MESSAGE_CHARS = 20_000  # one message: a long email
SUBJECT_CHARS = 300
MESSAGES_PER_THREAD = 2_000  # in one file or request
THREADS_PER_INPUT = 500
JSON_DEPTH = 32  # a client record is 3 levels deep inside its envelope
FILE_BYTES = 16 * 1024 * 1024  # a file given to the CLI (a few thousand records)
# How much of a refused value an error message may quote.
QUOTE_CHARS = 40
# At most this many problems are listed for one input (a hostile one may have thousands).
MAX_PROBLEMS = 20

# C0 controls and DEL; free text keeps tab, newline and carriage return. Unpaired surrogates
# (from a JSON "\udc80" escape) cannot be encoded as UTF-8 for Postgres or a prompt.
_ONE_LINE_BAD = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")
_FREE_TEXT_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_]{1,64}$")


class InputRefused(ValueError):
    """Input that breaks a limit; ``problems`` names each field at fault (never a long value)."""

    def __init__(self, problems: list[str]):
        self.problems = problems[:MAX_PROBLEMS]
        super().__init__("; ".join(self.problems))


class NotJSON(InputRefused):
    """Bytes that are not a JSON document at all."""


def quote(value: Any) -> str:
    """``repr(value)``, cut to QUOTE_CHARS: error messages never echo a long value back."""
    text = repr(value)
    if len(text) <= QUOTE_CHARS:
        return text
    return f"{text[:QUOTE_CHARS]}… ({len(str(value)):,} chars)"


def text_problem(value: str, *, multiline: bool) -> str | None:
    """Why ``value`` cannot be stored, or None: a control character (tab and newlines allowed in
    free text) or an unpaired surrogate."""
    found = (_FREE_TEXT_BAD if multiline else _ONE_LINE_BAD).search(value)
    if found is None:
        return None
    char = found.group()
    what = "an unpaired surrogate" if "\ud800" <= char <= "\udfff" else "a control character"
    return f"contains {what} (U+{ord(char):04X}) at position {found.start()}"


# Context for data read back from our own storage: it passed these checks when it came in, and
# a later, tighter limit must not make a stored record unreadable.
TRUSTED: dict[str, Any] = {"trusted": True}


def _trusted(info: ValidationInfo) -> bool:
    return bool(info.context and info.context.get("trusted"))


def _text(max_chars: int, *, multiline: bool, min_chars: int = 0) -> AfterValidator:
    def check(value: str, info: ValidationInfo) -> str:
        if _trusted(info):
            return value
        if len(value) < min_chars:
            raise ValueError("must not be empty")
        if len(value) > max_chars:
            raise ValueError(f"at most {max_chars:,} characters (got {len(value):,})")
        if problem := text_problem(value, multiline=multiline):
            raise ValueError(problem)
        return value

    return AfterValidator(check)


def _items(max_items: int) -> AfterValidator:
    def check(value: list[Any], info: ValidationInfo) -> list[Any]:
        if not _trusted(info) and len(value) > max_items:
            raise ValueError(f"at most {max_items} items (got {len(value):,})")
        return value

    return AfterValidator(check)


def _id(pattern: str, spelled: str) -> AfterValidator:
    compiled = re.compile(pattern)

    def check(value: str, info: ValidationInfo) -> str:
        if not _trusted(info) and not compiled.match(value):
            raise ValueError(f"must be {spelled}")
        return value

    return AfterValidator(check)


# Field types for the pydantic models that take outside input.
ClientId = Annotated[str, _id(CLIENT_ID_PATTERN, "1-64 letters, digits, _ or -")]
# The CRM's other ids (planId, deliverableId, ticketId): cuids, like a client's.
CrmId = Annotated[str, _id(CLIENT_ID_PATTERN, "1-64 letters, digits, _ or -")]
ThreadId = Annotated[str, _id(THREAD_ID_PATTERN, "1-200 letters, digits, '.', '_', ':' or '-'")]
MessageId = Annotated[str, _id(MESSAGE_ID_PATTERN, "1-200 letters, digits or any of . _ : @ + = -")]
SectionKey = Annotated[str, _id(SECTION_KEY_PATTERN, "a catalogue key: 1-64 lowercase letters, digits or _")]
WorkflowId = Annotated[str, _id(WORKFLOW_ID_PATTERN, "1-255 letters, digits or any of . _ : @ + = -")]
Name = Annotated[str, _text(NAME_CHARS, multiline=False, min_chars=1)]
Handle = Annotated[str, _text(HANDLE_CHARS, multiline=False)]
ShortText = Annotated[str, _text(SHORT_TEXT_CHARS, multiline=False)]
FreeText = Annotated[str, _text(FREE_TEXT_CHARS, multiline=True)]
Subject = Annotated[str, _text(SUBJECT_CHARS, multiline=False)]
MessageText = Annotated[str, _text(MESSAGE_CHARS, multiline=True, min_chars=1)]
ShortList = _items(LIST_ITEMS)  # Annotated[list[...], ShortList]


def key_label(key: Any) -> str:
    """A field name fit to print: as is when plain, otherwise quoted and cut."""
    return key if isinstance(key, str) and _PLAIN_KEY.match(key) else quote(key)


def where(loc: tuple[Any, ...] | list[Any]) -> str:
    """A pydantic error location as a dotted path (``data.client.fullName``, ``threads.0.id``)."""
    return ".".join(key_label(part) if isinstance(part, str) else str(part) for part in loc)


def json_problems(value: Any, path: str = "", *, max_depth: int = JSON_DEPTH) -> list[str]:
    """What any parsed JSON value breaks, field by field: nesting deeper than ``max_depth``, a
    string or key with NUL or another control character (tab and newlines allowed), a number
    that is not finite. Iterative, so a deep value cannot exhaust the stack."""
    problems: list[str] = []
    stack: list[tuple[Any, str, int]] = [(value, path, 1)]
    while stack and len(problems) < MAX_PROBLEMS:
        item, at, depth = stack.pop()
        label = at or "(document)"
        if isinstance(item, dict | list):
            if depth > max_depth:
                problems.append(f"{label}: nested more than {max_depth} levels")
                continue
            if isinstance(item, dict):
                for key, child in item.items():
                    if problem := text_problem(key, multiline=False):
                        problems.append(f"{label}: a field name {problem}")
                        continue
                    stack.append((child, f"{at}.{key_label(key)}" if at else key_label(key), depth + 1))
            else:
                # Dotted like pydantic's locations: data.client.productCategories.3
                stack.extend((child, f"{at}.{i}" if at else str(i), depth + 1) for i, child in enumerate(item))
        elif isinstance(item, str):
            if problem := text_problem(item, multiline=True):
                problems.append(f"{label}: {problem}")
        elif isinstance(item, float) and not math.isfinite(item):
            problems.append(f"{label}: must be a finite number")
    return problems


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999
        raise ValueError(f"{text[:QUOTE_CHARS]} is too large for a JSON number")
    return value


# Only these escapes (or a raw DEL) can put a refused character into a parsed string: strict
# json.loads refuses raw control characters. \n, \r and \t are allowed in free text but not in
# a field name, so they take the full check too. Conservative: an escaped backslash before
# "u0000" also matches, and only costs the full check.
_RISKY_ESCAPE = re.compile(r"\\u(?:00[01][0-9a-fA-F]|007[fF]|[dD][89a-fA-F][0-9a-fA-F]{2})|\\[bfnrt]|\x7f")


def parse_json(raw: bytes | str, what: str = "input") -> Any:
    """Parse ``raw`` as JSON and check it with json_problems. Raises NotJSON for what is not
    JSON (NaN and Infinity included), InputRefused for JSON that breaks a limit."""
    try:
        # JSON is UTF-8 (RFC 8259); a byte-order mark is tolerated.
        text = raw.decode("utf-8-sig") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError:
        raise NotJSON([f"{what} is not JSON: not UTF-8 text"]) from None
    try:
        data = json.loads(text, parse_constant=_no_constant, parse_float=_finite)
    except RecursionError:
        raise InputRefused([f"{what}: nested more than {JSON_DEPTH} levels"]) from None
    except ValueError as err:  # JSONDecodeError included; its message quotes no input
        raise NotJSON([f"{what} is not JSON: {err}"[:200]]) from None
    # The walk only when it can find something (the webhook's hot path skips it): deeper than
    # the limit needs at least that many brackets.
    could_nest = text.count("[") + text.count("{") > JSON_DEPTH
    if (could_nest or _RISKY_ESCAPE.search(text)) and (problems := json_problems(data)):
        raise InputRefused(problems)
    return data


def extra_field_problems(extra: dict[str, Any]) -> list[str]:
    """Fields a record carries beyond the CRM's (kept in the snapshot, never sent to a model):
    how many, their names and their size."""
    problems = []
    if len(extra) > EXTRA_FIELDS:
        problems.append(f"(record): {len(extra)} unknown fields; at most {EXTRA_FIELDS}")
    for key, value in extra.items():
        name = key_label(key)
        if not _PLAIN_KEY.match(key):
            problems.append(f"{name}: an unknown field's name must be letters, digits or _ (at most 64)")
            continue
        found = json_problems(value, name)
        if not found and len(json.dumps(value)) > EXTRA_FIELD_CHARS:
            found = [f"{name}: an unknown field may hold at most {EXTRA_FIELD_CHARS:,} characters of JSON"]
        problems += found
    return problems[:MAX_PROBLEMS]
