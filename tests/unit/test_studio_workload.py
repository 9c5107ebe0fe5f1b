"""The studio months' workload: varied clients, months that carry threads over, a clock, repeats
spread over the month; and the fair naive way's prompts."""

from __future__ import annotations

import json
from collections import defaultdict

import pytest

from bench import studio
from bench.naive_arm import stored_messages
from bench.workload import DAY, MONTH_DAYS, EventKind, workload_studio
from domain.catalogue.plan import resolve_sections
from domain.sections import Level
from tokenopt import naive
from tokenopt.counting import count_messages
from wavelaunch.commands import sample_client_file

RECORD = json.loads(sample_client_file().read_text())


def test_the_same_seed_gives_the_same_workload_and_another_seed_another():
    a, b, c = workload_studio(6, 11), workload_studio(6, 11), workload_studio(6, 12)
    assert a.model_dump() == b.model_dump()
    assert a.clients != c.clients


@pytest.mark.parametrize("field", ["scalingGoals", "emergingCompetitors", "specificDeadlines", "currentChannels"])
def test_clients_have_their_own_facts(field):
    clients = workload_studio(10, 11).clients
    assert len({json.dumps(c[field]) for c in clients}) == 10


def test_months_follow_each_other_and_threads_carry_over():
    w = workload_studio(5, 11, months=3, thread_batches=2)
    months: dict[int, list[int]] = defaultdict(list)
    batches: dict[tuple[int, int], list[int]] = defaultdict(list)
    for e in w.events:
        if e.kind is EventKind.DELIVERABLE and not e.warmup:
            months[e.client].append(e.month or 0)
        if e.kind is EventKind.MESSAGES:
            batches[(e.client, e.thread or 0)].append(int(e.at // DAY) // MONTH_DAYS)
    for client, seen in months.items():
        assert seen in ([1, 2, 3], [2, 3, 4]), (client, seen)
    # Each thread gets two batches in each of the three months: the same thread all along.
    assert all(sorted(m) == [0, 0, 1, 1, 2, 2] for m in batches.values())
    assert len(batches) == 5 * 3


def test_the_clock_runs_forward_and_each_client_is_onboarded_first():
    w = workload_studio(8, 13)
    measured = [e for e in w.events if not e.warmup]
    assert [e.at for e in measured] == sorted(e.at for e in measured)
    assert all(e.at < 0 for e in w.events if e.warmup)
    onboarded = {e.client: e.at for e in measured if e.kind is EventKind.ONBOARD}
    for e in measured:
        assert e.client not in onboarded or e.at >= onboarded[e.client], e


def test_repeats_come_later_in_the_same_month_not_right_after():
    w = workload_studio(20, 11)
    measured = [e for e in w.events if not e.warmup]
    repeats = [(i, e) for i, e in enumerate(measured) if e.kind is EventKind.REPEAT]
    assert repeats
    right_after = 0
    for i, e in repeats:
        kind = EventKind.ONBOARD if e.document == "business_plan" else EventKind.DELIVERABLE
        original = max(
            (j for j, o in enumerate(measured[:i]) if o.kind is kind and o.client == e.client and o.month == e.month),
            default=None,
        )
        assert original is not None, e
        assert int(measured[original].at // DAY) // MONTH_DAYS == int(e.at // DAY) // MONTH_DAYS
        right_after += original == i - 1
    assert right_after < len(repeats) / 2


def test_an_edit_is_followed_by_the_month_only_when_it_was_written_that_month():
    w = workload_studio(20, 11)
    written: dict[int, tuple[int, int]] = {}
    for e in (e for e in w.events if not e.warmup):
        calendar = int(e.at // DAY) // MONTH_DAYS
        if e.kind is EventKind.DELIVERABLE:
            written[e.client] = (e.month or 0, calendar)
        if e.kind is EventKind.REVISE:
            assert e.changes and all(e.changes.values())
            last = written.get(e.client)
            assert e.month == (last[0] if last and last[1] == calendar else None)


def test_a_client_file_is_varied_per_client():
    w = workload_studio(4, 11, base_record=RECORD)
    first, second = w.clients[0], w.clients[1]
    assert first == RECORD | {"id": "client000"}
    assert set(second) == set(RECORD) and second["fullName"] != RECORD["fullName"]
    assert second["email"] != RECORD["email"]
    assert sum(second[f] != RECORD[f] for f in ("currentChannels", "scalingGoals", "professionalMilestones")) >= 2


def test_too_many_months_is_refused():
    with pytest.raises(ValueError, match="months"):
        workload_studio(3, 11, months=8)


# -- the fair naive prompts ----------------------------------------------------------------
def test_the_fair_prompt_is_the_seeds_with_a_compact_record():
    specs = resolve_sections(Level.COMPLETE)
    fair, verbose = naive.fair_messages(RECORD, specs), naive.naive_messages(RECORD, specs)
    assert fair[0] == verbose[0]  # the seed's persona
    assert naive.compact_record(RECORD) in fair[1]["content"] and RECORD["email"] not in fair[1]["content"]
    assert count_messages(fair) < count_messages(verbose)


def test_documents_of_a_client_share_their_prefix_for_the_provider_cache():
    history = naive.history_lines([("Brand Architecture", ["Lead with calm", "Price mid-premium"])])
    a = naive.fair_messages(RECORD, resolve_sections(Level.COMPLETE), "Visual Identity document", history)
    b = naive.fair_messages(RECORD, resolve_sections(Level.COMPLETE), "Content Framework document", history)
    shared = a[1]["content"].split("Please write")[0]
    assert b[1]["content"].startswith(shared) and history in shared


def test_key_decisions_are_the_end_of_the_document():
    text = " ".join(f"w{i}" for i in range(100))
    decisions = naive.key_decisions(text)
    assert len(decisions) == 5 and decisions[-1].endswith("w99") and all(len(d.split()) == 8 for d in decisions)


def test_a_thread_is_one_line_per_message_and_the_client_summary_reads_summaries():
    thread = stored_messages(
        [{"id": "1", "author": "client", "text": "Hi"}, {"id": "2", "author": "studio", "text": "Yo"}]
    )
    assert naive.thread_lines(thread) == "client: Hi\nstudio: Yo"
    fair = naive.fair_thread_summary_messages(thread)
    assert count_messages(fair) < count_messages(naive.naive_summary_messages({"t": thread}))
    summary = naive.fair_client_summary_messages(RECORD, ["Thread one summary."])
    assert "Thread one summary." in summary[1]["content"] and "Hi" not in summary[1]["content"]


# -- several seeds --------------------------------------------------------------------------
def test_studio_seeds_report_the_spread_of_their_ratios():
    runs = [
        {
            "token_ratio": r,
            "cost_ratio": r / 4,
            "lower_bound_ratio": 1.1,
            "sensitivity": {"naive_mini": {"token_ratio": r, "cost_ratio": r}},
        }
        for r in (0.5, 0.7)
    ]
    summary = studio.summarise(runs)
    assert summary["token_ratio"]["mean"] == 0.6 and summary["token_ratio"]["min"] == 0.5
    assert summary["token_ratio"]["stdev"] == pytest.approx(0.1414, abs=1e-4)
    assert summary["targets"]["token_ratio"]["met"] and not summary["targets"]["cost_ratio"]["met"]
    assert summary["sensitivity"]["naive_mini"]["token_ratio"]["max"] == 0.7


def test_the_docs_tables_come_from_the_json():
    from bench.studio_markdown import tables

    def arm(tokens: int, cost: float) -> dict:
        kind = {"total_tokens": tokens // 3, "cost": cost / 3}
        row = dict.fromkeys(("calls", "prompt_tokens", "cached_tokens", "completion_tokens"), 1)
        return row | {"total_tokens": tokens, "cost": cost, "by_kind": dict.fromkeys(studio.KINDS, kind)}

    runs = [
        {
            "workload": {"clients": 2, "months": 3},
            "arms": {
                "naive": arm(1000, 1.0),
                "optimized": arm(500, 0.05) | {"token_ratio": 0.5},
                "lower_bound": arm(450, 0.01),
            },
            "sensitivity": {"naive_mini": arm(1000, 0.2) | {"token_ratio": 0.5, "cost_ratio": 0.25}},
            "token_ratio": 0.5,
            "cost_ratio": 0.05,
            "lower_bound_ratio": 1.1111,
        }
    ]
    text = tables({"seeds": [11], "runs": runs, "summary": studio.summarise(runs)})
    assert "| **ours** | 1 | 1 | 1 | 1 | 500 | $0.0500 | 0.500 |" in text
    assert "| naive_mini | 1,000 | $0.2000 | 0.500 | 0.250 |" in text
    assert "| dollars, ours / fair naive | <= 0.1 | 0.050 | 0.000 | **yes** |" in text
    assert "| context fidelity | >= 1.0 | — | — | not measured yet |" in text
