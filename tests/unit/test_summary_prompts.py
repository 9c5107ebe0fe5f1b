"""Summary prompts, redaction, the naive counterfactual and the summary outputs (pure code)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from domain.catalogue.summaries import CLIENT_SUMMARY, THREAD_SUMMARY
from domain.outputs.schemas import output_model, schema_name, strict_json_schema
from domain.outputs.summaries import ClientSummary, ThreadSummary
from domain.sections import Tier
from domain.summaries import InvalidMessages, ThreadMessage, parse_threads
from stubs.llm_server import target_tokens
from tokenopt.counting import count_messages, count_tokens
from tokenopt.naive import naive_summary_messages, naive_summary_tokens
from tokenopt.redaction import redact
from tokenopt.routing import tier_for
from tokenopt.summary_prompts import (
    build_client_prompt,
    build_thread_prompt,
    client_inputs_hash,
    message_line,
    next_step,
)
from wavelaunch.commands import load_records, sample_client_file

START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
PREVIOUS = {
    "topic": "Soft launch timing",
    "sentiment": "positive",
    "key_points": ["Launch in early May"],
    "action_items": [{"owner": "studio", "task": "Send samples", "due": "20 March"}],
    "open_questions": ["Which colourways?"],
}


def msg(seq: int, text: str | None = None) -> ThreadMessage:
    return ThreadMessage(
        id=f"m{seq}",
        seq=seq,
        author="client" if seq % 2 else "studio",
        text=text or f"Message number {seq} about the launch plan.",
        sent_at=START + timedelta(days=seq),
    )


def record() -> dict[str, object]:
    return load_records(sample_client_file())[0].wire()


def user(prompt) -> str:  # type: ignore[no-untyped-def]
    return prompt.messages[-1]["content"]


# -- redaction ---------------------------------------------------------------------------------
def test_redaction_removes_emails_and_phone_numbers_and_keeps_dates_prices_and_counts():
    text = (
        "Mail maya@example.com or Ops.Team+x@studio.co.uk; call +44 7911 123456, 07911 123456 or "
        "(415) 555-0132. Launch on 2026-05-04 at 10:30, £45 a bundle, 410000 followers, order 123456789."
    )
    out = redact(text)
    assert "@" not in out and "7911" not in out and "555" not in out
    assert out.count("[email]") == 2 and out.count("[phone]") == 3
    for kept in ("2026-05-04", "10:30", "£45", "410000", "123456789"):
        assert kept in out


def test_known_values_are_redacted_whatever_their_case():
    assert redact("write to MAYA@Example.com please", known=["maya@example.com"]) == "write to [email] please"


# -- thread prompts ----------------------------------------------------------------------------
def test_first_thread_prompt_carries_every_message_and_no_previous_summary():
    prompt = build_thread_prompt("t1", None, [msg(1), msg(2), msg(3)], model="gpt-4.1-nano")
    text = user(prompt)
    assert "PREVIOUS" not in text and "MESSAGES\n#1 client 2026-03-02: Message number 1" in text
    assert all(f"Message number {n} " in text for n in (1, 2, 3))
    assert prompt.inputs == {"thread": "t1", "through_seq": "3"}
    assert prompt.estimated_tokens == count_messages(prompt.messages, "gpt-4.1-nano")


def test_incremental_prompt_is_the_previous_summary_plus_the_new_messages_only():
    new = [msg(31), msg(32), msg(33)]
    prompt = build_thread_prompt("t1", PREVIOUS, new, model="gpt-4.1-nano")
    text = user(prompt)
    assert text.index("PREVIOUS\n") < text.index("NEW MESSAGES\n") < text.index("TASK\n")
    assert json.dumps(PREVIOUS, separators=(",", ":")) in text
    assert [line.split(" ")[0] for line in text.split("NEW MESSAGES\n")[1].splitlines()[:3]] == ["#31", "#32", "#33"]
    # Its size follows the new messages: three more cost about three messages more, not a thread.
    more = [msg(34), msg(35), msg(36)]
    six = build_thread_prompt("t1", PREVIOUS, [*new, *more], model="gpt-4.1-nano")
    added = count_tokens("\n" + "\n".join(message_line(m) for m in more), "gpt-4.1-nano")
    assert abs((six.estimated_tokens - prompt.estimated_tokens) - added) <= 2


def test_thread_prompt_redacts_messages_and_the_previous_summary():
    leaky = {**PREVIOUS, "key_points": ["Reach her at maya@example.com"]}
    prompt = build_thread_prompt(
        "t1",
        leaky,
        [msg(4, "My email is Maya@Example.com and my phone +44 7911 123456")],
        model="gpt-4.1-nano",
        known=["maya@example.com"],
    )
    everything = json.dumps(prompt.messages).lower()
    assert "maya@example.com" not in everything and "7911" not in everything
    assert user(prompt).count("[email]") == 2 and "[phone]" in user(prompt)


def test_a_very_long_message_is_cut_at_a_sentence():
    long = "This is one sentence about the launch. " * 100
    prompt = build_thread_prompt("t1", None, [msg(1, long)], model="gpt-4.1-nano")
    assert len(user(prompt)) < 1800


# -- client prompts ----------------------------------------------------------------------------
def test_client_prompt_is_compact_context_plus_thread_summaries_and_never_the_email():
    data = record()
    data["specificDeadlines"] = "Launch by May; send contracts to maya@example.com."
    prompt = build_client_prompt(data, [("t1", PREVIOUS)], model="gpt-4.1-nano", known=["maya@example.com"])
    text = user(prompt)
    assert "maya@example.com" not in json.dumps(prompt.messages)
    assert text.startswith("CLIENT\n") and "\nTHREADS\nt1: {" in text
    # Only the spec's fields: no handles, no name, no personal story.
    assert set(prompt.inputs) <= set(CLIENT_SUMMARY.fields)
    for absent in ("fullName", "instagramHandle", "personalTurningPoints", "email"):
        assert f"{absent}:" not in text


def test_client_inputs_hash_moves_with_the_thread_summaries_not_their_order():
    inputs = {"brandName": "Move"}
    a = client_inputs_hash(inputs, [("t1", 1), ("t2", 2)])
    assert a == client_inputs_hash(inputs, [("t2", 2), ("t1", 1)])
    assert a != client_inputs_hash(inputs, [("t1", 1), ("t2", 3)])
    assert a != client_inputs_hash({"brandName": "Other"}, [("t1", 1), ("t2", 2)])


# -- the naive counterfactual ---------------------------------------------------------------------
def test_naive_summary_resends_the_whole_thread_verbosely_and_grows_with_it():
    thread = [msg(n) for n in range(1, 34)]
    messages = naive_summary_messages({"t1": thread})
    assert "expert client-relations manager" in messages[0]["content"]
    assert all(f"Message number {n} " in messages[1]["content"] for n in range(1, 34))
    ours = build_thread_prompt("t1", PREVIOUS, thread[-3:], model="gpt-4.1")
    naive = naive_summary_tokens({"t1": thread}, None, "gpt-4.1")
    assert naive > 4 * ours.estimated_tokens
    assert naive_summary_tokens({"t1": thread[:30]}, None, "gpt-4.1") < naive


def test_naive_client_summary_sends_every_field_and_message_but_never_the_email():
    thread = [msg(1, "write to maya@example.com")]
    messages = naive_summary_messages({"t1": thread}, record())
    text = json.dumps(messages)
    assert "Maya Okafor" in text and "maya@example.com" not in text and "Here are all the conversations" in text


# -- outputs and the catalogue ---------------------------------------------------------------------
def test_summary_outputs_are_registered_with_strict_schemas():
    assert output_model("thread_summary") is ThreadSummary and output_model("client_summary") is ClientSummary
    assert schema_name("thread_summary", 1) == "thread_summary_v1"
    schema = strict_json_schema(ThreadSummary)
    assert schema["required"] == ["topic", "sentiment", "key_points", "action_items", "open_questions"]
    assert schema["additionalProperties"] is False
    assert schema["$defs"]["Sentiment"]["enum"] == ["positive", "neutral", "negative", "mixed"]
    assert schema["$defs"]["ActionItem"]["required"] == ["owner", "task", "due"]
    assert strict_json_schema(ClientSummary)["required"] == ["status", "sentiment", "highlights", "risks", "next_steps"]


def test_the_stub_and_the_router_know_summaries():
    assert target_tokens("thread_summary", None) == THREAD_SUMMARY.target_tokens
    assert target_tokens("client_summary", None) == CLIENT_SUMMARY.target_tokens
    assert tier_for("thread_summary") is Tier.ECONOMY and tier_for("client_summary") is Tier.ECONOMY


def test_a_messages_file_is_refused_whole_with_every_problem():
    good = {"thread_id": "t1", "messages": [{"id": "a", "author": "client", "text": "hi", "sent_at": "2026-03-01"}]}
    assert parse_threads(good)[0].thread_id == "t1"
    with pytest.raises(InvalidMessages) as info:
        parse_threads(
            [
                good,
                good,
                {"thread_id": "bad id!", "messages": []},
                {"thread_id": "t3", "messages": [{"id": "b", "author": "bot", "text": " ", "sent_at": "never"}]},
            ]
        )
    problems = " | ".join(info.value.problems)
    for expected in ("listed twice", "thread_id", "messages: List should have at least 1 item", "author", "text"):
        assert expected in problems
    with pytest.raises(InvalidMessages, match="expected a JSON list"):
        parse_threads("nope")


def test_a_step_takes_the_leading_messages_that_fit_and_never_none():
    lines = [msg(n, "word " * 100) for n in range(1, 11)]
    one = count_tokens(message_line(lines[0]), "gpt-4.1-nano")
    step = next_step(lines, model="gpt-4.1-nano", max_tokens=3 * one + 1)
    assert [m.seq for m in step] == [1, 2, 3]
    assert [m.seq for m in next_step(lines, model="gpt-4.1-nano")] == list(range(1, 11))  # a usual update: one step
    # A single message larger than a step is still read (alone), never skipped.
    assert [m.seq for m in next_step(lines, model="gpt-4.1-nano", max_tokens=5)] == [1]


def test_a_young_thread_is_read_again_whole_an_older_one_folded():
    from tokenopt.summary_prompts import rereads_whole_thread

    young = [msg(n, f"Short note {n}.") for n in range(1, 5)]
    assert rereads_whole_thread(PREVIOUS, young, young[-1:], model="gpt-4.1-nano")
    older = [msg(n) for n in range(1, 41)]
    assert not rereads_whole_thread(PREVIOUS, older, older[-3:], model="gpt-4.1-nano")
    assert not rereads_whole_thread(None, young, young, model="gpt-4.1-nano")  # nothing to fold into
