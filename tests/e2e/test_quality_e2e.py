"""`wavelaunch eval quality` on the stub over real HTTP: the report's shape, both positions asked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from stubs.llm_server import StubServer
from tests.e2e.conftest import STUB_KEY

SECTIONS = ("market_analysis", "m1_brand_architecture__kpis")


def test_eval_quality_on_the_stub_writes_both_ways_and_judges_both_orders(stub: StubServer, tmp_path: Path):
    out = tmp_path / "quality.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WAVELAUNCH_", "OPENAI_"))}
    env |= {"OPENAI_API_KEY": STUB_KEY, "OPENAI_BASE_URL": stub.base_url, "WAVELAUNCH_STATE_DIR": str(tmp_path)}
    args = ["eval", "quality", "--sections", ",".join(SECTIONS), "--clients", "1", "--json", str(out)]
    proc = subprocess.run(
        [sys.executable, "-m", "wavelaunch.cli", *args], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "MECHANICAL" in proc.stdout and "mechanical" in proc.stdout

    report = json.loads(out.read_text())
    assert report["mechanical"] is True and "stub" in report["note"]
    assert report["pairs_evaluated"] == 2 and set(report["by_section"]) == set(SECTIONS)
    assert sum(report["total"].values()) == 2
    assert set(report["by_routed_model"]) == {"gpt-4.1-mini", "gpt-4.1-nano"}  # standard and economy tiers
    assert 0.0 <= report["position_consistency"] <= 1.0
    assert report["fact_coverage"]["needed"] > 0
    for side, calls in (("ours", 2), ("reference", 2), ("judge", 4)):
        assert report["spend"][side]["calls"] == calls and report["spend"][side]["cost"] > 0
    for pair in report["pairs"]:
        assert [v["order"] for v in pair["verdicts"]] == ["ours_as_A", "ours_as_B"]

    requests = [r for r in stub.requests() if r["status"] == 200]
    writers = [r for r in requests if r["section"] != "quality_verdict"]
    judges = [r for r in requests if r["section"] == "quality_verdict"]
    assert len(writers) == 4 and len(judges) == 4
    # Ours on the routed model with the projected prompt; the reference on the top model.
    assert {r["model"] for r in writers} == {"gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano"}
    # Each pair is judged twice, with the drafts in swapped positions.
    drafts = []
    for r in judges:
        text = r["messages"][1]["content"]
        a, b = text.split("\nDRAFT A\n")[1].split("\nDRAFT B\n")
        drafts.append((a, b))
    assert {(b, a) for a, b in drafts} == set(drafts)
    # No contact details reach the writers or the judge.
    assert "@example.com" not in json.dumps([r["messages"] for r in requests])
