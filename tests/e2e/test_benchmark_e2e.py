"""A tiny cost benchmark end to end: its own embedded stack, the real workflow, the HTTP stub."""

from __future__ import annotations

import pytest

from bench import cost, studio
from bench.workload import EventKind, workload_studio, workload_v1
from service.settings import Settings
from service.wiring import LLMConfig, plan_dependencies
from tokenopt.pricing import UnknownModelPrice

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]


async def test_tiny_cost_benchmark_measures_every_arm(tmp_path):
    workload = workload_v1(n=3, seed=5)
    assert [e.kind for e in workload.events].count(EventKind.ONBOARD) == 3
    settings = Settings.model_validate({"state_dir": tmp_path})
    report = await cost.run(workload, settings, ["naive", "optimized", "no_routing", "no_reuse"])

    arms = report["arms"]
    assert set(arms) == {"naive", "optimized", "lower_bound", "no_routing", "no_reuse"}
    naive, optimized = arms["naive"], arms["optimized"]
    # Same answers in every arm: each plan writes 5,700 completion tokens, the naive way too.
    assert naive["completion_tokens"] >= 3 * 5700
    assert optimized["cost"] < naive["cost"]
    assert report["cost_ratio"] == pytest.approx(optimized["cost"] / naive["cost"], rel=1e-3)
    # The independent bound (never read from our ledger) is below ours: it could be above.
    assert arms["lower_bound"]["method"] == "independent"
    assert report["lower_bound_ratio"] > 1.0, report
    # Routing off moves dollars, not tokens; reuse off moves both.
    # (A patch's filler text is drawn per model by the stub: a few tokens apart at most.)
    assert arms["no_routing"]["total_tokens"] == pytest.approx(optimized["total_tokens"], rel=1e-3)
    assert arms["no_routing"]["cost"] > optimized["cost"]
    assert arms["no_reuse"]["total_tokens"] >= optimized["total_tokens"]
    assert optimized["hit_rate"] > 0 and "stored" not in arms["no_reuse"]["served_by_tier"]


async def test_worker_refuses_to_start_with_an_unpriced_model(tmp_path):
    settings = Settings.model_validate({"state_dir": tmp_path, "model_economy": "gpt-9-imaginary"})
    llm = LLMConfig(api_key="k", base_url="http://127.0.0.1:9/v1", model_override=None, free_models=frozenset())
    with pytest.raises(UnknownModelPrice, match="gpt-9-imaginary"):
        await plan_dependencies(settings, "postgresql://unused", llm)


async def test_tiny_studio_months_report_every_arm_and_the_bound_is_below_redundant_work(tmp_path):
    workload = workload_studio(n=3, seed=11, months=2, thread_batches=2)
    kinds = {e.kind for e in workload.events if not e.warmup}
    assert {EventKind.ONBOARD, EventKind.DELIVERABLE, EventKind.MESSAGES, EventKind.CLIENT_SUMMARY} <= kinds
    assert EventKind.REPEAT in kinds
    settings = Settings.model_validate({"state_dir": tmp_path})
    # Ours twice: as shipped, and with reuse and the exact cache off, so it writes repeats and
    # unchanged sections again on purpose.
    arms_wanted = [*studio.DEFAULT_ARMS, "no_reuse+exact_cache"]
    report = await studio.run(workload, settings, arms_wanted)

    arms = report["arms"]
    assert set(arms) == {"naive", "optimized", "lower_bound", "no_reuse+exact_cache"}
    for name in ("naive", "optimized", "lower_bound"):
        assert arms[name]["total_tokens"] > 0 and arms[name]["cost"] > 0, arms[name]
        assert set(arms[name]["by_kind"]) == set(studio.KINDS)
    assert arms["lower_bound"]["method"] == "independent"
    # The bound comes from the events alone: below ours, and further below ours doing redundant work.
    redundant, ours, bound = arms["no_reuse+exact_cache"], arms["optimized"], arms["lower_bound"]
    assert redundant["total_tokens"] > ours["total_tokens"] > bound["total_tokens"], (redundant, ours, bound)
    assert redundant["cost"] > bound["cost"] and ours["cost"] > bound["cost"]
    assert report["lower_bound_ratio"] > 1.0

    sensitivity = report["sensitivity"]
    assert set(sensitivity) == {"naive_verbose", "naive_mini", "naive_no_history"}
    # The mid model bills the same tokens for fewer dollars; the verbose way bills more tokens.
    assert sensitivity["naive_mini"]["total_tokens"] == arms["naive"]["total_tokens"]
    assert sensitivity["naive_mini"]["cost"] < arms["naive"]["cost"]
    assert sensitivity["naive_verbose"]["total_tokens"] > arms["naive"]["total_tokens"]
    assert sensitivity["naive_no_history"]["total_tokens"] < arms["naive"]["total_tokens"]
    assert sensitivity["naive_mini"]["cost_ratio"] == pytest.approx(
        ours["cost"] / sensitivity["naive_mini"]["cost"], rel=1e-3
    )
    assert "fidelity" in report

    figures = report["figures"]
    assert figures["retries"] >= 1 and figures["finished_sections_regenerated_by_retries"] == 0, figures
    assert figures["repeat_llm_calls"] == 0, figures
    assert figures["brand_context_written"] < figures["brand_context_needed"], figures
    # The naive thread summary re-reads a thread that grows across the months; ours stays flat.
    per_batch = figures["tokens_per_thread_summary"]
    assert per_batch["4"]["naive"] > per_batch["1"]["naive"] * 1.5, per_batch
    assert per_batch["4"]["ours"] < per_batch["1"]["ours"] * 1.5, per_batch


async def test_tiny_budget_race_never_goes_over_the_limit_with_reservations(tmp_path):
    from bench import budget
    from domain.sections import Level

    settings = Settings.model_validate({"state_dir": tmp_path})
    report = await budget.run(
        settings, plans_count=4, token_limit=6000, level=Level.ESSENTIAL, seconds_per_token=0.0005, concurrency=12
    )
    ours = report["arms"]["reserve"]
    assert 0 < ours["billed_tokens"] <= ours["committed_peak_tokens"] <= 6000
    assert ours["sections_refused"] > 0 and ours["plans_failed_on_budget"] > 0
    for arm in report["arms"].values():
        # The budget counts exactly what the ledger billed.
        assert arm["billed_tokens"] == arm["ledger_tokens"]
        assert arm["sections_written"] + arm["sections_refused"] == 12


async def test_tiny_webhook_bench_answers_every_delivery_and_sends_every_start(tmp_path):
    from bench import webhooks

    settings = Settings.model_validate({"state_dir": tmp_path})
    report = await webhooks.run(settings, requests=30, rate=30)
    assert report["statuses"] == {202: 30}, report
    assert report["starts_sent"] == 30, report
    latency = report["latency_ms"]
    assert 0 < latency["p50"] <= latency["p95"] <= latency["max"] < 10_000, report


async def test_tiny_throughput_bench_measures_both_arms_and_where_the_cpu_went(tmp_path):
    from bench import throughput

    settings = Settings.model_validate({"state_dir": tmp_path})
    report = await throughput.run(
        settings, workers=[1], plans_count=3, seconds_per_token=0.0001, in_flight_per_worker=2
    )
    row = report["workers"]["1"]
    for arm in ("ours", "bare"):
        figures = row[arm]
        assert figures["plans"] == 3, figures
        assert 0 < figures["overhead_s"]["p50"] <= figures["overhead_s"]["p95"], figures
        # The Temporal server did work for every arm; only ours writes to Postgres.
        assert figures["stack_cpu_ms_per_plan"]["temporal"] > 0, figures
    assert row["ours"]["stack_cpu_ms_per_plan"]["postgres"] > 0, row
    assert row["ours"]["worker_cpu_ms_per_plan"] > 0, row
    assert report["overhead_ratio_p50"] == row["overhead_ratio_p50"] > 0
