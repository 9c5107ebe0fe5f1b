"""The tables of docs/benchmarks.md's studio section, from a ``bench studio`` JSON file.

``uv run python -m bench.studio_markdown docs/results/studio-....json`` prints them,
so refreshing the doc after a re-run is a paste, not a transcription. Figures are means over
the seeds, with the range (min–max) where a ratio is shown.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any

KIND_NAMES = {"business_plan": "business plans", "deliverable": "deliverables", "summary": "summaries"}
TARGET_NAMES = {
    "token_ratio": "billed tokens, ours / fair naive",
    "cost_ratio": "dollars, ours / fair naive",
    "lower_bound_ratio": "tokens, ours / independent lower bound",
    "fidelity": "context fidelity",
}


def _mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else 0.0


def _ratio(spread: dict[str, Any] | None) -> str:
    if not spread:
        return "—"
    if spread["min"] == spread["max"]:
        return f"{spread['mean']:.3f}"
    return f"{spread['mean']:.3f} ({spread['min']:.3f}–{spread['max']:.3f})"


def _arm_means(runs: list[dict[str, Any]], section: str, name: str) -> dict[str, float]:
    rows = [r[section][name] for r in runs if name in r[section]]
    return {
        k: _mean([row[k] for row in rows])
        for k in ("calls", "prompt_tokens", "cached_tokens", "completion_tokens", "total_tokens", "cost")
    }


def _spread(values: list[float]) -> dict[str, Any] | None:
    if not values:
        return None
    return {"mean": _mean(values), "min": min(values), "max": max(values)}


def tables(result: dict[str, Any]) -> str:
    runs, summary = result["runs"], result["summary"]
    w = runs[0]["workload"]
    seeds = ", ".join(map(str, result["seeds"]))
    out = [
        f"{w['clients']} clients, {w['months']} months, seeds {seeds}; means over the seeds, range in brackets.",
        "",
        "| arm | calls | prompt | cached | completion | total tokens | dollars "
        "| tokens / fair naive | $ / fair naive |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    names = ["naive", "optimized", "lower_bound", *sorted(a for a in runs[0]["arms"] if a.startswith("no_"))]
    labels = {"naive": "fair naive", "optimized": "**ours**", "lower_bound": "independent lower bound"}
    for name in names:
        if name not in runs[0]["arms"]:
            continue
        m = _arm_means(runs, "arms", name)
        tokens = _spread(
            [r["arms"][name]["token_ratio"] for r in runs if r["arms"][name].get("token_ratio") is not None]
        )
        dollars = _spread(
            [r["arms"][name]["cost_ratio"] for r in runs if r["arms"][name].get("cost_ratio") is not None]
        )
        out.append(
            f"| {labels.get(name, name)} | {m['calls']:,.0f} | {m['prompt_tokens']:,.0f} | {m['cached_tokens']:,.0f} "
            f"| {m['completion_tokens']:,.0f} | {m['total_tokens']:,.0f} | ${m['cost']:.4f} "
            f"| {_ratio(tokens)} | {_ratio(dollars)} |"
        )
    out += [
        "",
        "| sensitivity variant | its total tokens | its dollars | ours tokens / variant | ours $ / variant |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, ratios in summary.get("sensitivity", {}).items():
        m = _arm_means(runs, "sensitivity", name)
        out.append(
            f"| {name} | {m['total_tokens']:,.0f} | ${m['cost']:.4f} | {_ratio(ratios.get('token_ratio'))} "
            f"| {_ratio(ratios.get('cost_ratio'))} |"
        )
    out += [
        "",
        "| kind | fair naive tokens | ours | bound | ours / naive tokens "
        "| fair naive $ | ours $ | bound $ | ours / naive $ |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for kind, label in KIND_NAMES.items():
        col = {
            arm: {
                k: _mean([r["arms"][arm]["by_kind"][kind][k] for r in runs if arm in r["arms"]])
                for k in ("total_tokens", "cost")
            }
            for arm in ("naive", "optimized", "lower_bound")
        }
        n, o, b = col["naive"], col["optimized"], col["lower_bound"]
        out.append(
            f"| {label} | {n['total_tokens']:,.0f} | {o['total_tokens']:,.0f} | {b['total_tokens']:,.0f} "
            f"| {o['total_tokens'] / n['total_tokens']:.3f} | ${n['cost']:.4f} | ${o['cost']:.4f} | ${b['cost']:.4f} "
            f"| {o['cost'] / n['cost']:.3f} |"
            if n["total_tokens"] and n["cost"]
            else f"| {label} | — | — | — | — | — | — | — | — |"
        )
    out += ["", "| target (mean over seeds) | goal | measured | stdev | met |", "|---|---|---:|---:|---|"]
    for name, target in summary["targets"].items():
        spread = summary.get(name)
        met = {True: "**yes**", False: "**no**", None: "not measured yet"}[target["met"]]
        stdev = f"{spread['stdev']:.3f}" if spread else "—"
        out.append(f"| {TARGET_NAMES.get(name, name)} | {target['target']} | {_ratio(spread)} | {stdev} | {met} |")
    patches = [r["figures"]["patches"] for r in runs if r.get("figures", {}).get("patches")]
    if patches:
        share = _spread([p["patch_output_share"] for p in patches if p["patch_output_share"] is not None])
        out += [
            "",
            "| revisions (mean over seeds) | sections patched | patches failed (rewritten) "
            "| patch output | full sections they replaced | patch output / full section |",
            "|---|---:|---:|---:|---:|---:|",
            f"| ours | {_mean([p['patched_sections'] for p in patches]):,.1f} "
            f"| {_mean([p['failed_patches'] for p in patches]):,.1f} "
            f"| {_mean([p['patch_completion_tokens'] for p in patches]):,.0f} "
            f"| {_mean([p['rewrite_completion_tokens_replaced'] for p in patches]):,.0f} | {_ratio(share)} |",
        ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        raise SystemExit("usage: python -m bench.studio_markdown RESULT.json")
    print(tables(json.loads(Path(args[0]).read_text())))


if __name__ == "__main__":
    main()
