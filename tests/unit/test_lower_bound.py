"""The independent lower bound on workloads small enough to check by hand."""

from __future__ import annotations

import json

import pytest

from bench.lower_bound import lower_bound, parse_models
from bench.workload import Event, EventKind, Workload
from domain.catalogue import deliverables
from domain.catalogue.summaries import CLIENT_SUMMARY, THREAD_SUMMARY
from domain.needs import needs
from domain.sections import DocumentKind
from tokenopt.counting import count_messages, count_tokens
from tokenopt.projection import project
from wavelaunch.commands import sample_client_file

MODEL = "gpt-4.1-nano"
RECORD = json.loads(sample_client_file().read_text())


def workload(*events: Event) -> Workload:
    setup = [
        Event(kind=EventKind.ONBOARD, client=0, warmup=True),
        Event(kind=EventKind.DELIVERABLE, client=0, month=1, warmup=True),
    ]
    return Workload(name="tiny", seed=0, clients=[RECORD], events=[*setup, *events])


def user(text: str) -> int:
    return count_messages([{"role": "user", "content": text}], MODEL)


def messages(thread: int, *texts: str) -> Event:
    batch = [{"id": f"m{i}", "author": "client", "text": t} for i, t in enumerate(texts)]
    return Event(kind=EventKind.MESSAGES, client=0, thread=thread, messages=batch)


def test_summaries_edits_and_repeats_by_hand():
    edit = Event(kind=EventKind.REVISE, client=0, changes={"country": "Portugal"})
    bound = lower_bound(
        workload(
            messages(0, "Can we ship on Friday?"),
            messages(0, "Yes, 500 units."),
            Event(kind=EventKind.CLIENT_SUMMARY, client=0),
            Event(kind=EventKind.CLIENT_SUMMARY, client=0),  # nothing new: it exists already
            edit,
            Event(kind=EventKind.REPEAT, client=0),  # unchanged document: free
        ),
        MODEL,
    )
    instruction = f"Summarise the thread: {THREAD_SUMMARY.purpose}"
    first = user(f"{instruction}\nclient: Can we ship on Friday?")
    # The second summary reads the smaller of the whole thread and (previous summary + new lines).
    second = min(
        user(f"{instruction}\nclient: Can we ship on Friday?\nclient: Yes, 500 units."),
        user(f"{instruction}\nclient: Yes, 500 units.") + THREAD_SUMMARY.target_tokens,
    )
    client = user(f"Summarise where the client stands: {CLIENT_SUMMARY.purpose}") + THREAD_SUMMARY.target_tokens
    # domain.needs: the plan sections that need the country are these three; each is revised
    # with the new value as its prompt's facts and as its output (a patch, not a rewrite).
    revised = ("Market Analysis", "Financial Projections", "Operations Plan")
    revisions = sum(user(f"Revise {title} with these changed facts:\ncountry: Portugal") for title in revised)

    assert bound.kinds["summary"].calls == 3
    assert bound.kinds["summary"].prompt_tokens == first + second + client
    assert bound.kinds["summary"].completion_tokens == 2 * THREAD_SUMMARY.target_tokens + CLIENT_SUMMARY.target_tokens
    assert bound.kinds["business_plan"].calls == 3 and bound.revisions == 3
    assert bound.kinds["business_plan"].prompt_tokens == revisions
    assert bound.kinds["business_plan"].completion_tokens == 3 * count_tokens("Portugal", MODEL)
    assert bound.kinds["deliverable"].calls == 0  # no month followed the edit
    assert bound.models == {"thread_summary": MODEL, "client_summary": MODEL, **dict.fromkeys(bound.models, MODEL)}


def test_an_unchanged_value_is_no_revision():
    bound = lower_bound(workload(Event(kind=EventKind.REVISE, client=0, changes={"country": RECORD["country"]})), MODEL)
    assert bound.revisions == 0 and bound.kinds["business_plan"].calls == 0


def test_a_new_plan_and_a_month_are_written_once_at_catalogue_size():
    new = Workload(
        name="tiny",
        seed=0,
        clients=[RECORD],
        events=[
            Event(kind=EventKind.ONBOARD, client=0, fail_section="market_analysis"),  # the failure is free
            Event(kind=EventKind.DELIVERABLE, client=0, month=1),
            Event(kind=EventKind.REPEAT, client=0, document="deliverable", month=1),
        ],
    )
    bound = lower_bound(new, MODEL)
    assert bound.kinds["business_plan"].calls == 8
    assert bound.kinds["business_plan"].completion_tokens == 5700  # DESIGN.md: complete = ~5,700
    # 25 per-document sections (2,100 a document) and Brand Context (200) once for the month.
    assert bound.kinds["deliverable"].calls == 26
    assert bound.kinds["deliverable"].completion_tokens == 5 * 2100 + 200


def test_a_later_month_reuses_brand_context_and_reads_earlier_titles():
    m2 = lower_bound(workload(Event(kind=EventKind.DELIVERABLE, client=0, month=2)), MODEL)
    assert m2.kinds["deliverable"].calls == 25  # Brand Context exists from the set-up month
    # The same month with no month before it: Brand Context is written, and no prompt carries
    # M1's five titles with three 5-token items each (read by the 5 strategy and 5 KPI sections).
    alone = lower_bound(
        Workload(name="tiny", seed=0, clients=[RECORD], events=[Event(kind=EventKind.DELIVERABLE, client=0, month=2)]),
        MODEL,
    )
    assert alone.kinds["deliverable"].calls == 26
    facts = project(RECORD, needs(DocumentKind.DELIVERABLE, "brand_context").fields)
    brand = user(
        f"Write Brand Context: {deliverables.section_kind('brand_context').purpose}\n"
        + "\n".join(f"{k}: {v}" for k, v in facts.items())
    )
    earlier = sum(count_tokens(d.title, MODEL) + 3 * 5 for d in deliverables.documents(1))
    assert m2.kinds["deliverable"].prompt_tokens == alone.kinds["deliverable"].prompt_tokens - brand + 10 * earlier


def test_a_kind_the_gate_raised_is_priced_at_its_model():
    month = workload(Event(kind=EventKind.DELIVERABLE, client=0, month=2))
    cheap = lower_bound(month, MODEL)
    raised = lower_bound(month, MODEL, {"framework_strategy": "gpt-4.1"})
    assert raised.kinds["deliverable"].total_tokens == cheap.kinds["deliverable"].total_tokens
    assert raised.kinds["deliverable"].cost > cheap.kinds["deliverable"].cost
    assert raised.models["framework_strategy"] == "gpt-4.1" and raised.models["kpis"] == MODEL


def test_bound_models_parse_and_refuse_unknown_kinds():
    assert parse_models("framework_strategy=gpt-4.1, thread_summary=gpt-4.1-mini") == {
        "framework_strategy": "gpt-4.1",
        "thread_summary": "gpt-4.1-mini",
    }
    assert parse_models(None) == {}
    with pytest.raises(ValueError, match="unknown section kind"):
        parse_models("strategy=gpt-4.1")
    with pytest.raises(ValueError, match="kind=model"):
        parse_models("framework_strategy")
