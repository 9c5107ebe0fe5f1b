"""Context fidelity: every fact a section needs reaches the prompt actually built for it."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bench.workload import make_clients
from domain import digest
from domain.catalogue import deliverables as dlv
from domain.catalogue import plan as plan_catalogue
from domain.catalogue.plan import BUSINESS_PLAN_SECTIONS, section
from domain.digest import build_digest, render_digest
from domain.needs import needed_fields
from domain.sections import DocumentKind
from domain.summaries import Author, ThreadMessage
from tokenopt import budget
from tokenopt.counting import count_tokens
from tokenopt.fidelity import (
    EARLIER_MONTHS,
    FactKind,
    Fidelity,
    check_client_summary,
    check_section,
    check_thread_summary,
    facts,
    fidelity_of_requests,
)
from tokenopt.projection import truncate_sentences
from tokenopt.prompts import build_section_prompt
from tokenopt.summary_prompts import build_client_prompt, build_thread_prompt
from wavelaunch.commands import sample_client_file

MODEL = "gpt-4.1"
SAMPLE: dict[str, Any] = json.loads(sample_client_file().read_text())
LONG = " ".join(
    f"In {year} the creator sold {n} units through {shop}, mostly to readers aged {age}."
    for year, n, shop, age in [
        (2019, 120, "Etsy", "25-34"),
        (2020, 480, "Shopify", "28-40"),
        (2021, 1500, "Amazon Handmade", "30-45"),
        (2022, 3200, "Selfridges pop-ups", "25-40"),
        (2023, 5100, "Not On The High Street", "35-50"),
        (2024, 7800, "the Lisbon flagship", "25-45"),
    ]
)


def _kinds(check) -> set[FactKind]:
    return {f.kind for f in check.required}


# -- extraction -----------------------------------------------------------------------------------
def test_facts_are_figures_dates_names_and_items():
    found = {(f.kind, f.text) for f in facts("GBP 1M revenue in year two; 10k members by 20 March, with Sweaty Betty.")}
    assert (FactKind.FIGURE, "GBP 1M") in found and (FactKind.FIGURE, "10k") in found
    assert (FactKind.DATE, "20 March") in found
    assert (FactKind.NAME, "Sweaty Betty") in found
    assert (FactKind.ITEM, "GBP 1M revenue in year two") in found
    # A sentence's first word is not a name; a repeated sentence is one fact.
    assert not any(f.kind is FactKind.NAME and f.text == "GBP 1M" for f in facts("Hello there. Hello there."))
    assert len(facts("Hello there. Hello there.")) == 1


# -- the projection --------------------------------------------------------------------------------
def test_removing_a_needed_field_from_the_projection_drops_the_ratio(monkeypatch: pytest.MonkeyPatch):
    spec = section("market_analysis")
    assert "keyPainPoints" in needed_fields(DocumentKind.BUSINESS_PLAN, spec.key)
    whole = check_section(build_section_prompt(SAMPLE, spec, model=MODEL).messages, SAMPLE, spec.key)
    assert whole.ratio == 1.0

    narrowed = replace(spec, fields=tuple(f for f in spec.fields if f != "keyPainPoints"))
    monkeypatch.setattr("domain.catalogue.plan._BY_KEY", {**plan_catalogue._BY_KEY, spec.key: narrowed})
    built = build_section_prompt(SAMPLE, section(spec.key), model=MODEL)
    check = check_section(built.messages, SAMPLE, spec.key)
    assert check.ratio < whole.ratio
    assert {f.source for f in check.missing} == {"keyPainPoints"}
    fidelity = Fidelity()
    fidelity.add(check)
    assert fidelity.lost_by_cause == {"field_missing": len(check.missing)}
    assert fidelity.as_dict()["by_kind"]["business_plan.market_analysis"]["ratio"] < 1.0


def test_a_value_cut_by_budget_compression_shows_lost_facts():
    record = SAMPLE | {"professionalMilestones": LONG}
    cut = truncate_sentences(LONG, budget.LONG_FIELD_CHARS)
    assert len(cut) < len(LONG)
    messages = [
        {
            "role": "user",
            "content": f"fullName: Maya Okafor\nprofessionalMilestones: {cut}\nscalingGoals: {SAMPLE['scalingGoals']}",
        }
    ]
    check = check_section(messages, record, "team_structure")
    lost = {f.text for f in check.missing}
    assert {"7800", "Selfridges", "2024", "Not On The High Street"} <= lost
    assert check.ratio < 1.0
    fidelity = Fidelity()
    fidelity.add(check)
    assert fidelity.lost_by_cause["field_cut"] == len(check.missing)
    # The old step cut every long field; today's keeps the needed ones whole.
    assert budget.shorten_long_fields({"professionalMilestones": LONG}, ())["professionalMilestones"] == cut
    assert budget.shorten_long_fields({"professionalMilestones": LONG}, {"professionalMilestones"}) == {
        "professionalMilestones": LONG
    }


# -- the whole catalogue ------------------------------------------------------------------------------
DECISIONS = (
    "Lead with the {t} promise on Instagram",
    "Cap launch spend at GBP 5k",
    "Test two offers before 14 June",
    "Hire one part-time {t} editor",
    "Review results with the founder every Friday",
)
KPIS = ("{t} conversion rate", "Weekly active members", "Email open rate", "Cost per acquisition", "Creator post reach")


def earlier_sections(through: int) -> dict[str, dict[str, Any]]:
    """Schema-conforming outputs of months 1..through: 3-5 decisions of at most 8 words, 3-5 KPIs."""
    out: dict[str, dict[str, Any]] = {}
    for m in dlv.months()[:through]:
        for doc in m.documents:
            topic = doc.title.split()[0]
            out[dlv.section_key(doc.key, "framework_strategy")] = {
                "key_decisions": [d.format(t=topic) for d in DECISIONS[: 3 + m.number % 3]]
            }
            out[dlv.section_key(doc.key, "kpis")] = {
                "kpis": [{"name": k.format(t=topic)} for k in KPIS[: 3 + m.number % 3]]
            }
            out[dlv.section_key(doc.key, "exec_summary")] = {"key_points": [f"{doc.title} is ready"]}
    return out


def clients() -> list[dict[str, Any]]:
    records = [SAMPLE, SAMPLE | {"professionalMilestones": LONG, "specificDeadlines": LONG, "scalingGoals": LONG}]
    for seed in (7, 11):
        records += make_clients(6, seed)
    return records


def digest_text(n: int, earlier: dict[str, dict[str, Any]]) -> str:
    return render_digest(build_digest(n, earlier, count_tokens=lambda s: count_tokens(s, MODEL)))


def test_every_catalogue_section_receives_every_fact_it_needs():
    """A technique that drops a required fact fails here: it is not a saving."""
    records = clients()
    assert any(len(r["keyPainPoints"]) > 600 for r in records)  # long free text is in the sample
    earlier = earlier_sections(dlv.LAST_MONTH - 1)
    fidelity = Fidelity()
    steps: set[str] = set()
    for record in records:
        for spec in BUSINESS_PLAN_SECTIONS:
            built = build_section_prompt(record, spec, model=MODEL)
            steps.update(built.compression_steps)
            fidelity.add(check_section(built.messages, record, spec.key))
        for n in range(1, dlv.LAST_MONTH + 1):
            context = digest_text(n, earlier)
            for spec in dlv.month_sections(n):
                uses = spec.uses_digest
                built = build_section_prompt(
                    record, spec, model=MODEL, context=context if uses else "", kind=DocumentKind.DELIVERABLE
                )
                steps.update(built.compression_steps)
                check = check_section(built.messages, record, spec.key, kind=DocumentKind.DELIVERABLE, earlier=earlier)
                fidelity.add(check)
    assert "summarise_long_fields" in steps  # compression did fire on the long records
    assert fidelity.required > 10_000
    assert set(fidelity.by_kind) == {f"business_plan.{s.key}" for s in BUSINESS_PLAN_SECTIONS} | {
        f"deliverable.{k.key}" for k in dlv.section_kinds()
    }
    assert dict(fidelity.lost_by_cause) == {}, fidelity.as_dict()
    assert fidelity.ratio == 1.0


@pytest.mark.parametrize("n", [2, 5, 8])
def test_earlier_months_decisions_reach_the_framework_and_kpi_prompts(n: int):
    earlier = earlier_sections(n - 1)
    context = digest_text(n, earlier)
    doc = dlv.documents(n)[0]
    for kind in ("framework_strategy", "kpis"):
        key = dlv.section_key(doc.key, kind)
        built = build_section_prompt(
            SAMPLE, dlv.section_spec(key), model=MODEL, context=context, kind=DocumentKind.DELIVERABLE
        )
        check = check_section(built.messages, SAMPLE, key, kind=DocumentKind.DELIVERABLE, earlier=earlier)
        earlier_facts = [f for f in check.required if f.source == EARLIER_MONTHS]
        assert len(earlier_facts) >= 3 * (n - 1)
        assert check.missing == (), [f.text for f in check.missing]


def test_a_clipped_decision_is_a_lost_fact(monkeypatch: pytest.MonkeyPatch):
    earlier = earlier_sections(1)
    monkeypatch.setattr(digest, "DECISION_CHARS", 20)
    key = dlv.section_key(dlv.documents(2)[0].key, "framework_strategy")
    messages = [{"role": "user", "content": digest_text(2, earlier)}]
    check = check_section(messages, SAMPLE, key, kind=DocumentKind.DELIVERABLE, earlier=earlier)
    assert EARLIER_MONTHS in {f.source for f in check.missing}
    assert any(f.text == "Lead with the Brand promise on Instagram" for f in check.missing)


# -- summaries ----------------------------------------------------------------------------------------
def _thread() -> list[ThreadMessage]:
    threads = json.loads((sample_client_file().parent / "messages.json").read_text())
    start = datetime(2026, 3, 2, tzinfo=UTC)
    return [
        ThreadMessage(
            id=m["id"], author=Author(m["author"]), text=m["text"], sent_at=start + timedelta(hours=i), seq=i + 1
        )
        for i, m in enumerate(threads[0]["messages"])
    ]


def test_a_thread_summary_prompt_carries_the_new_messages_facts_but_no_contact_details():
    thread = _thread()
    texts = [m.text for m in thread]
    built = build_thread_prompt("launch-timeline", None, thread, model=MODEL, known=[SAMPLE["email"]])
    check = check_thread_summary(built.messages, texts, known=[SAMPLE["email"]])
    assert check.ratio == 1.0 and len(check.required) > 20
    assert not any("maya@example.com" in f.text or "7911" in f.text for f in check.required)
    assert FactKind.FIGURE in _kinds(check) and FactKind.DATE in _kinds(check)
    # The second step shows messages 4-5 only: messages 1-3 were summarised before.
    later = build_thread_prompt("launch-timeline", {"topic": "t"}, thread[3:], model=MODEL)
    assert check_thread_summary(later.messages, texts, since_seq=3).ratio == 1.0
    # A step that skipped a message loses its facts.
    skipped = build_thread_prompt("launch-timeline", {"topic": "t"}, thread[4:], model=MODEL)
    assert check_thread_summary(skipped.messages, texts, since_seq=3).ratio < 1.0


def test_a_client_summary_prompt_carries_its_thread_summaries():
    summaries = {
        "launch-timeline": {"topic": "Soft launch in early May", "key_points": ["Samples approved by 20 March", "£45"]},
        "content-plan": {"topic": "April content calendar", "key_points": ["Four reels a week on TikTok"]},
    }
    built = build_client_prompt(SAMPLE, list(summaries.items()), model=MODEL)
    assert check_client_summary(built.messages, summaries).ratio == 1.0
    one = build_client_prompt(SAMPLE, [("launch-timeline", summaries["launch-timeline"])], model=MODEL)
    check = check_client_summary(one.messages, summaries)
    assert check.ratio < 1.0 and "TikTok" in {f.text for f in check.missing}


# -- over a request log ---------------------------------------------------------------------------------
def _entry(section_key: str, messages: list[dict[str, str]], client: str | None, answer: Any = None) -> dict[str, Any]:
    return {
        "section": section_key,
        "messages": messages,
        "prompt_cache_key": f"client-{client}" if client else None,
        "status": 200,
        "members": [],
        "answer": json.dumps(answer) if answer is not None else "{}",
    }


def test_fidelity_over_a_request_log_follows_clients_earlier_months_and_threads():
    record = SAMPLE | {"id": "c1"}
    doc1 = dlv.documents(1)[0]
    strategy_key = dlv.section_key(doc1.key, "framework_strategy")
    m1 = build_section_prompt(record, dlv.section_spec(strategy_key), model=MODEL, kind=DocumentKind.DELIVERABLE)
    answer = {"key_decisions": ["Open a waitlist in Lisbon", "Price the bands at £45"]}
    m2_key = dlv.section_key(dlv.documents(2)[0].key, "framework_strategy")
    digest = digest_text(2, {strategy_key: answer})
    m2 = build_section_prompt(
        record, dlv.section_spec(m2_key), model=MODEL, context=digest, kind=DocumentKind.DELIVERABLE
    )
    m2_blind = build_section_prompt(record, dlv.section_spec(m2_key), model=MODEL, kind=DocumentKind.DELIVERABLE)
    thread = _thread()
    step = build_thread_prompt("launch-timeline", None, thread, model=MODEL)
    log = [
        _entry("market_analysis", build_section_prompt(record, section("market_analysis"), model=MODEL).messages, "c1"),
        _entry(strategy_key, m1.messages, "c1", answer),
        _entry(m2_key, m2.messages, "c1"),
        _entry("thread_summary", step.messages, "c1", {"topic": "Launch in May", "key_points": ["Bands at £45"]}),
        _entry("client_summary", build_client_prompt(record, [], model=MODEL).messages, "c1"),
        _entry("market_analysis", [{"role": "user", "content": "x"}], "somebody-else"),
    ]
    threads = {"c1": {"launch-timeline": [m.text for m in thread]}}
    fidelity = fidelity_of_requests(log, {"c1": record}, threads=threads)
    result = fidelity.as_dict()
    assert result["skipped"] == {"unknown_client": 1}
    assert result["by_kind"]["deliverable.framework_strategy"]["ratio"] == 1.0
    assert result["by_kind"]["summary.thread_summary"]["ratio"] == 1.0
    # The client summary was written without the thread's summary: its facts are lost.
    assert result["by_kind"]["summary.client_summary"]["ratio"] == 0.0
    assert result["lost_by_cause"] == {"thread_summaries": result["by_kind"]["summary.client_summary"]["required"]}

    # Month 2 written without the digest: the earlier decisions are lost, and only those.
    log[2] = _entry(m2_key, m2_blind.messages, "c1")
    blind = fidelity_of_requests(log[:3], {"c1": [record]})
    assert blind.lost_by_cause == {EARLIER_MONTHS: 2} and blind.ratio < 1.0
