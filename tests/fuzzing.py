"""Counts from the property-based (Hypothesis) tests: inputs tried, refused, accepted and 5xx
answers seen, per target. Printed at the end of a pytest run (tests/conftest.py), so the
figures in docs/benchmarks.md ("Fuzzing") come from a command, not from memory:

    uv run pytest tests/unit/test_limits.py tests/e2e/test_hostile_input_e2e.py -q
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from typing import Any

from hypothesis import strategies as st

from domain.client import KNOWN_FIELDS
from domain.limits import JSON_DEPTH
from wavelaunch.commands import sample_client_file, sample_messages_file

COUNTS: defaultdict[str, Counter[str]] = defaultdict(Counter)


def record(target: str, outcome: str) -> None:
    """One input tried against ``target``; ``outcome``: accepted, refused or 5xx."""
    COUNTS[target]["tried"] += 1
    COUNTS[target][outcome] += 1


def summary() -> list[str]:
    return [
        f"{target}: {c['tried']} inputs tried, {c['accepted']} accepted, {c['refused']} refused, {c['5xx']} 5xx"
        for target, c in sorted(COUNTS.items())
    ]


# -- strategies: hostile JSON and the records, bodies and files built from it -------------------
# Characters that broke things before: NUL and other controls, unpaired surrogates, plus any.
_NASTY = ["\x00", "\x01", "\x1b", "\x7f", "\n", "\r", "\t", "\ud800", "\udfff", "\u2028", "\ufeff", "é", "𝄞"]
chars = st.one_of(st.characters(), st.sampled_from(_NASTY))
short_text = st.text(chars, max_size=24)
# Now and then far longer than any limit.
long_text = st.builds(lambda c, n: c * n, st.sampled_from(["x", "é", "\x00", "a\n"]), st.integers(0, 12_000))
# And often one of the values that broke the service before, whole.
known_bad = st.sampled_from(["\x00", "Maya\x00Okafor", "\ud800", "calm \udc80", "red\x1b[31m", "a\x7fb"])
text = st.one_of(short_text, known_bad, long_text)
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True, allow_infinity=True), text
)
json_values = st.recursive(
    scalars, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(short_text, kids, max_size=4), max_leaves=12
)

SAMPLE_RECORD: dict[str, Any] = json.loads(sample_client_file().read_text())
SAMPLE_THREADS: list[dict[str, Any]] = json.loads(sample_messages_file().read_text())
_FIELDS = sorted(KNOWN_FIELDS)
_TEXT_FIELDS = sorted(KNOWN_FIELDS - {"id", "email", "age", "status", "productCategories"})


@st.composite
def client_records(draw: st.DrawFn) -> dict[str, Any]:
    """The sample record with a few fields (known or not) replaced by hostile values; a fresh id
    unless the id itself is one of them."""
    record = dict(SAMPLE_RECORD) | {"id": f"fz{draw(st.uuids()).hex[:16]}"}
    for _ in range(draw(st.integers(0, 4))):
        match draw(st.integers(0, 3)):
            case 0 | 1:  # a text field the record has, given hostile text
                record[draw(st.sampled_from(_TEXT_FIELDS))] = draw(text)
            case 2:
                record[draw(st.sampled_from(_FIELDS))] = draw(json_values)
            case _:  # a field the CRM does not define (kept in the snapshot)
                record[draw(short_text)] = draw(json_values)
    return record


@st.composite
def message_files(draw: st.DrawFn) -> Any:
    """The sample messages file with hostile values here and there, or any JSON at all."""
    if draw(st.integers(0, 9)) == 0:
        return draw(json_values)
    threads = json.loads(json.dumps(SAMPLE_THREADS))
    for thread in threads:
        thread["thread_id"] = f"t{draw(st.uuids()).hex[:12]}"
    for _ in range(draw(st.integers(0, 4))):
        thread = draw(st.sampled_from(threads))
        if draw(st.booleans()):
            thread[draw(st.sampled_from(["thread_id", "subject", "messages", "extra"]))] = draw(json_values)
        elif isinstance(thread.get("messages"), list) and thread["messages"]:
            message = draw(st.sampled_from(thread["messages"]))
            if isinstance(message, dict) and draw(st.booleans()):
                message["text"] = draw(text)
            elif isinstance(message, dict):
                message[draw(st.sampled_from(["id", "author", "text", "sent_at", "extra"]))] = draw(json_values)
    return threads


EVENTS = ["client.created", "client.updated", "client.archived", "deliverable.created", "ticket.created", "x.y"]


@st.composite
def webhook_bodies(draw: st.DrawFn, timestamp: str, *, events: list[str] = EVENTS) -> str:
    """A delivery's body: mostly an envelope around a hostile record or hostile data, sometimes
    an envelope with hostile parts, deeply nested JSON, or any JSON at all."""
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return deep_json(draw(st.integers(JSON_DEPTH - 2, 3_000)))
    if kind == 1:
        return dumps(draw(json_values))
    event = draw(st.one_of(st.sampled_from(events), short_text)) if kind == 2 else draw(st.sampled_from(events))
    data: Any = draw(client_records())
    if kind == 3:
        data = {"client": data}
    elif kind in (4, 5):
        data = draw(st.dictionaries(st.sampled_from(["id", "clientId", "client", "month"]), json_values, max_size=3))
    elif kind == 6:
        data = draw(json_values)
    return dumps({"event": event, "timestamp": timestamp, "data": data})


def deep_json(depth: int) -> str:
    """JSON nested ``depth`` lists deep (built as text: the value itself could not be dumped)."""
    return "[" * depth + "]" * depth


def dumps(value: Any) -> str:
    # ensure_ascii: lone surrogates go out as \\ud800 escapes, as a hostile sender would write them.
    return json.dumps(value, ensure_ascii=True)
