"""Input limits (domain/limits.py) on the records, messages and JSON every entry path parses."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from crm.events import ArchivedData, DeliverableData, event_data, parse_envelope
from domain.client import InvalidClientRecord, parse_client
from domain.limits import (
    FREE_TEXT_CHARS,
    JSON_DEPTH,
    QUOTE_CHARS,
    InputRefused,
    NotJSON,
    json_problems,
    parse_json,
    quote,
)
from domain.summaries import InvalidMessages, parse_threads
from tests import fuzzing
from tests.fuzzing import SAMPLE_RECORD, SAMPLE_THREADS, client_records, deep_json, message_files, webhook_bodies

PURE = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def storable(value: Any) -> bool:
    """What Postgres (jsonb, text) and a prompt can take: no NUL, no unpaired surrogate, finite."""
    text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    text.encode("utf-8")  # raises on an unpaired surrogate
    return "\x00" not in text


@pytest.mark.parametrize(
    "field, value, says",
    [
        ("fullName", "A\x00B", "fullName: Value error, contains a control character (U+0000)"),
        ("fullName", "Maya\nOkafor", "fullName: Value error, contains a control character (U+000A)"),
        ("fullName", "x" * 201, "at most 200 characters (got 201)"),
        ("instagramHandle", "@" + "m" * 200, "instagramHandle: Value error, at most 100 characters"),
        ("additionalInfo", "x" * (FREE_TEXT_CHARS + 1), f"additionalInfo: Value error, at most {FREE_TEXT_CHARS:,}"),
        ("brandValues", "calm\x1b[31m", "brandValues: Value error, contains a control character (U+001B)"),
        ("productCategories", [f"c{n}" for n in range(51)], "productCategories: Value error, at most 50 items"),
        ("id", "c" * 10_000, "id: Value error, must be 1-64 letters"),
        ("id", {"nested": True}, "id: Input should be a valid string"),
        ("favouriteThing\x00", 1, "an unknown field's name must be"),
        ("notes", {"a": "\x00"}, "notes.a: contains a control character (U+0000)"),
        ("notes", "n" * 6_000, "notes: an unknown field may hold at most 5,000 characters"),
    ],
)
def test_a_record_breaking_a_limit_is_refused_naming_the_field(field, value, says):
    with pytest.raises(InvalidClientRecord) as refused:
        parse_client(SAMPLE_RECORD | {field: value})
    assert any(says in problem for problem in refused.value.problems), refused.value.problems
    assert all(len(problem) < 300 for problem in refused.value.problems)


def test_free_text_keeps_newlines_and_tabs():
    record = parse_client(SAMPLE_RECORD | {"additionalInfo": "Line one.\r\n\tLine two."})
    assert record.additional_info == "Line one.\r\n\tLine two."


def test_quote_never_echoes_a_long_value():
    assert quote("short") == "'short'"
    long = quote("c" * 10_000)
    assert len(long) < QUOTE_CHARS + 30 and "10,000 chars" in long


@pytest.mark.parametrize(
    "raw, error, says",
    [
        (b"\xff\xfe\x00garbage", NotJSON, "not UTF-8"),
        (b'{"a": NaN}', NotJSON, "NaN is not a JSON number"),
        (b'{"a": ', NotJSON, "is not JSON"),
        (deep_json(5_000).encode(), InputRefused, f"nested more than {JSON_DEPTH} levels"),
        (deep_json(JSON_DEPTH + 1).encode(), InputRefused, f"nested more than {JSON_DEPTH} levels"),
        (b'{"event": "a\\u0000b"}', InputRefused, "event: contains a control character (U+0000)"),
        (b'{"data": {"x": "\\udc80"}}', InputRefused, "data.x: contains an unpaired surrogate (U+DC80)"),
    ],
)
def test_json_input_is_parsed_within_its_limits(raw, error, says):
    with pytest.raises(error) as refused:
        parse_json(raw, "body")
    assert says in str(refused.value)


def test_json_at_the_depth_limit_is_accepted():
    assert parse_json(deep_json(JSON_DEPTH)) is not None


@pytest.mark.parametrize(
    "model, data, says",
    [
        (ArchivedData, {"id": {"nested": True}}, "data.id: Input should be a valid string"),
        (ArchivedData, {"clientId": "c" * 10_000}, "data.clientId: Value error, must be 1-64"),
        (DeliverableData, {"clientId": "c1", "month": "M" + "9" * 5000}, "data.month: Value error, must be 1-8"),
        (DeliverableData, {"clientId": "c1", "month": [1]}, "data.month"),
        (DeliverableData, {"month": 1}, "data.clientId: Field required"),
    ],
)
def test_event_data_of_the_wrong_shape_is_refused_naming_the_field(model, data, says):
    with pytest.raises(InputRefused) as refused:
        event_data(model, data)
    assert says in str(refused.value) and len(str(refused.value)) < 300


def test_archived_finds_the_id_wherever_the_crm_puts_it():
    assert event_data(ArchivedData, {"client": {"id": "c1", "fullName": "x"}}).target() == "c1"
    assert event_data(ArchivedData, {"clientId": "c2"}).target() == "c2"
    with pytest.raises(ValueError, match="needs data.id"):
        event_data(ArchivedData, {}).target()


@pytest.mark.parametrize(
    "change, says",
    [
        ({"text": "hi\x00"}, "text: Value error, contains a control character (U+0000)"),
        ({"text": "x" * 20_001}, "text: Value error, at most 20,000 characters"),
        ({"id": "m 1"}, "id: Value error, must be 1-200"),
    ],
)
def test_a_message_breaking_a_limit_is_refused_naming_the_field(change, says):
    threads = json.loads(json.dumps(SAMPLE_THREADS))
    threads[0]["messages"][0].update(change)
    with pytest.raises(InvalidMessages) as refused:
        parse_threads(threads)
    assert any(says in p for p in refused.value.problems), refused.value.problems


# -- properties ----------------------------------------------------------------------------
@PURE
@given(client_records())
def test_a_client_record_is_accepted_storable_or_refused_with_named_fields(data):
    try:
        record = parse_client(data)
    except InvalidClientRecord as err:
        fuzzing.record("client record (parse)", "refused")
        assert err.problems and all(len(p) < 300 for p in err.problems)
        return
    fuzzing.record("client record (parse)", "accepted")
    assert storable(record.wire())


@PURE
@given(message_files())
def test_a_messages_file_is_accepted_storable_or_refused_with_named_fields(data):
    try:
        threads = parse_threads(data)
    except InvalidMessages as err:
        fuzzing.record("messages file (parse)", "refused")
        assert err.problems and all(len(p) < 300 for p in err.problems)
        return
    fuzzing.record("messages file (parse)", "accepted")
    assert storable([t.model_dump(mode="json") for t in threads])


@PURE
@given(webhook_bodies(datetime.now(UTC).isoformat()))
def test_any_body_is_an_envelope_or_refused_without_a_crash(body):
    raw = body.encode()
    try:
        envelope = parse_envelope(raw)
    except InputRefused as err:  # NotJSON included
        fuzzing.record("webhook envelope (parse)", "refused")
        assert all(len(p) < 300 for p in err.problems)
        return
    fuzzing.record("webhook envelope (parse)", "accepted")
    assert storable(envelope.model_dump(mode="json"))
    assert not json_problems(envelope.data)


def test_a_field_name_with_an_escaped_newline_is_refused():
    # Found by the property test above: "\n" is allowed in free text, never in a field name.
    body = b'{"event": "client.created", "timestamp": "2026-11-30T15:59:14+00:00", "data": {"id": {"\\n": null}}}'
    with pytest.raises(InputRefused, match="field name"):
        parse_envelope(body)
