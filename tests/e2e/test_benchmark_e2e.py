"""A tiny cost benchmark end to end: its own embedded stack, the real workflow, the HTTP stub."""

from __future__ import annotations

import pytest

from tokenopt.pricing import UnknownModelPrice
from wavelaunch.bench import cost
from wavelaunch.bench.workload import EventKind, workload_v1
from wavelaunch.runtime import LLMConfig, plan_dependencies
from wavelaunch.settings import Settings

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
    assert report["lower_bound_ratio"] >= 1.0
    # Routing off moves dollars, not tokens; reuse off moves both.
    assert arms["no_routing"]["total_tokens"] == optimized["total_tokens"]
    assert arms["no_routing"]["cost"] > optimized["cost"]
    assert arms["no_reuse"]["total_tokens"] >= optimized["total_tokens"]
    assert optimized["hit_rate"] > 0 and "stored" not in arms["no_reuse"]["served_by_tier"]


async def test_worker_refuses_to_start_with_an_unpriced_model(tmp_path):
    settings = Settings.model_validate({"state_dir": tmp_path, "model_economy": "gpt-9-imaginary"})
    llm = LLMConfig(api_key="k", base_url="http://127.0.0.1:9/v1", model_override=None, free_models=frozenset())
    with pytest.raises(UnknownModelPrice, match="gpt-9-imaginary"):
        await plan_dependencies(settings, "postgresql://unused", llm)


async def test_tiny_budget_race_never_goes_over_the_limit_with_reservations(tmp_path):
    from domain.sections import Level
    from wavelaunch.bench import budget

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
