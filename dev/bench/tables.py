"""The benchmarks' tables: one arm per row against the fair naive way, and the ratios over seeds."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from wavelaunch.console import money


def cost_table(report: dict[str, Any]) -> Table:
    w = report["workload"]
    table = Table(
        title=f"Cost benchmark, workload {w['name']} ({w['clients']} clients, seed {w['seed']}, events {w['events']})",
        title_justify="left",
    )
    for column in (
        "arm",
        "calls",
        "prompt",
        "cached",
        "completion",
        "total",
        "dollars",
        "tokens/naive",
        "$/naive",
        "marginal tok",
        "marginal $",
    ):
        table.add_column(column, justify="left" if column == "arm" else "right")

    def pct(value: float | None) -> str:
        return "" if value is None else f"{value:.1%}"

    for arm, row in report["arms"].items():
        table.add_row(
            arm,
            f"{row['calls']:,}",
            f"{row['prompt_tokens']:,}",
            f"{row['cached_tokens']:,}",
            f"{row['completion_tokens']:,}",
            f"{row['total_tokens']:,}",
            money(row["cost"]),
            pct(row.get("token_ratio")),
            pct(row.get("cost_ratio")),
            pct(row.get("marginal_token_saving")),
            pct(row.get("marginal_cost_saving")),
        )
    return table


def studio_tables(result: dict[str, Any]) -> list[Table]:
    """``bench studio``: per seed, the arms against the fair naive and the sensitivity variants;
    then the ratios over seeds and the targets."""
    tables = []
    for run in result["runs"]:
        tables.append(cost_table(run))
        if run["sensitivity"]:
            sens = Table(
                title=f"Ours against each naive variant (seed {run['workload']['seed']})", title_justify="left"
            )
            for column in ("variant", "total tokens", "dollars", "ours tokens/variant", "ours $/variant"):
                sens.add_column(column, justify="left" if column == "variant" else "right")
            for name, row in run["sensitivity"].items():
                sens.add_row(
                    name,
                    f"{row['total_tokens']:,}",
                    money(row["cost"]),
                    str(row.get("token_ratio")),
                    str(row.get("cost_ratio")),
                )
            tables.append(sens)
    summary = result["summary"]
    over = Table(title=f"Over seeds {', '.join(map(str, result['seeds']))}", title_justify="left")
    for column in ("ratio", "mean", "min", "max", "stdev", "target", "met"):
        over.add_column(column, justify="left" if column == "ratio" else "right")
    targets = summary.get("targets", {})
    for name, row in summary.items():
        if isinstance(row, dict) and "mean" in row:
            target = targets.get(name, {})
            met = target.get("met")
            over.add_row(
                name,
                str(row["mean"]),
                str(row["min"]),
                str(row["max"]),
                str(row["stdev"]),
                target.get("target", ""),
                "" if met is None else ("yes" if met else "no"),
            )
    for variant, ratios in summary.get("sensitivity", {}).items():
        for name, row in ratios.items():
            over.add_row(f"{name} vs {variant}", str(row["mean"]), str(row["min"]), str(row["max"]), str(row["stdev"]))
    tables.append(over)
    return tables
