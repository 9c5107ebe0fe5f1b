"""Terminal rendering: the live progress table and the usage report."""

from __future__ import annotations

import sys
from decimal import Decimal
from typing import Any

from rich.console import Console
from rich.table import Table

from contracts.models import DeliverableProgress, PlanProgress, SectionStatus, SummaryProgress
from domain.budgets import Alert, BudgetUse

# Piped output (CI logs, files) gets a wide table instead of rich's 80-column default.
console = Console(width=None if sys.stdout.isatty() else 170)
# Logs go to stderr, so `--json` and `--format json` output on stdout stays machine-readable.
log_console = Console(stderr=True, width=None if sys.stderr.isatty() else 170)

_STATUS_STYLE = {
    SectionStatus.PENDING: "dim",
    SectionStatus.RUNNING: "yellow",
    SectionStatus.PAUSED: "magenta",
    SectionStatus.DONE: "green",
    SectionStatus.FAILED: "red",
}


def money(value: Decimal | float) -> str:
    return f"${float(value):,.4f}"


_WHAT = {DeliverableProgress: "Deliverable", SummaryProgress: "Summaries"}


def progress_table(progress: PlanProgress | DeliverableProgress | SummaryProgress) -> Table:
    done = progress.count(SectionStatus.DONE)
    what = _WHAT.get(type(progress), "Business plan")
    table = Table(
        title=f"{what} for {progress.client_id} ({progress.level}): {progress.status}, "
        f"{done}/{len(progress.sections)} sections",
        title_justify="left",
    )
    for column in ("section", "status", "model", "tokens", "cost", "cache"):
        table.add_column(column, justify="right" if column in ("tokens", "cost") else "left")
    for s in progress.sections:
        table.add_row(
            s.section_key,
            f"[{_STATUS_STYLE[s.status]}]{s.status}[/]",
            s.model or "",
            f"{s.tokens:,}" if s.tokens else "",
            money(s.cost) if s.status == SectionStatus.DONE else "",
            s.cache_tier or "",
        )
        if s.error:
            table.add_row("", f"[red]{s.error[:120]}[/]", "", "", "", "")
    table.add_row("total", "", "", f"{progress.tokens:,}", money(progress.cost), "", style="bold")
    return table


def usage_table(report: dict[str, Any], group: str) -> Table:
    table = Table(title=f"Usage by {group}", title_justify="left")
    for column in (
        "key",
        "calls",
        "prompt",
        "cached",
        "completion",
        "cost",
        "naive cost",
        "saved",
        "hit rate",
    ):
        table.add_column(column, justify="left" if column == "key" else "right")
    rows = report[f"by_{group}"] if group != "total" else {"total": report["totals"]}
    for key, row in rows.items():
        table.add_row(
            str(key),
            f"{row['calls']:,}",
            f"{row['prompt_tokens']:,}",
            f"{row['cached_prompt_tokens']:,}",
            f"{row['completion_tokens']:,}",
            money(row["cost"]),
            money(row["baseline_cost"]),
            money(row["saved_cost"]),
            f"{row['cache_hit_rate']:.0%}",
        )
    return table


def cache_stats_table(stats: dict[str, Any]) -> Table:
    entries = stats["entries"]
    table = Table(
        title=(
            f"Cache: {entries['total']:,} entries ({entries['expired']:,} expired), {entries['hits']:,} hits, "
            f"{entries['evictions']:,} evictions"
        ),
        title_justify="left",
    )
    for column in ("tier", "calls", "hits", "hit rate", "share of calls", "tokens saved", "dollars saved"):
        table.add_column(column, justify="left" if column == "tier" else "right")
    for tier, row in stats["ledger"]["by_tier"].items():
        table.add_row(
            tier,
            f"{row['calls']:,}",
            f"{row['hits']:,}",
            f"{row['hit_rate']:.0%}",
            f"{row['share_of_calls']:.0%}",
            f"{row['saved_tokens']:,}",
            money(row["saved_cost"]),
        )
    return table


def bulk_table(progress: Any) -> Table:
    """A bulk regeneration's progress (``BulkRegenerationWorkflow.progress``)."""
    table = Table(
        title=f"Bulk regeneration ({progress.level}, {progress.mode or '...'}): {progress.status}",
        title_justify="left",
        show_header=False,
    )
    table.add_row("clients", f"{progress.clients}")
    table.add_row("sections to write", f"{progress.to_generate} ({progress.reused} already stored or cached)")
    if progress.batch_id:
        table.add_row(
            "batch",
            f"{progress.batch_id}: {progress.batch_status}, {progress.batch_completed} answered, "
            f"{progress.batch_failed} failed, {progress.polls} polls",
        )
        table.add_row("stored from the batch", f"{progress.stored_from_batch} ({money(progress.batch_cost)})")
    if progress.fallback:
        table.add_row("direct calls", f"{progress.fallback_done}/{progress.fallback}")
    table.add_row("documents", f"{len(progress.documents)}/{progress.clients}")
    table.add_row("cost", money(progress.cost), style="bold")
    for failure in progress.failed:
        table.add_row("[red]failed[/]", f"[red]{failure[:160]}[/]")
    return table


def budgets_table(uses: list[BudgetUse]) -> Table:
    """Every budget in its current period: limits, use (settled + reserved), state."""
    table = Table(title="Budgets (current period, UTC)", title_justify="left")
    for column in ("id", "scope", "period", "from", "tokens", "dollars", "use", "alerts at", "auto-pause", "state"):
        table.add_column(column, justify="right" if column in ("tokens", "dollars", "use") else "left")
    for u in uses:
        reserved = f" (+{u.tokens_reserved:,} reserved)" if u.tokens_reserved else ""
        table.add_row(
            str(u.budget_id),
            "global" if u.client_id is None else f"client {u.client_id}",
            u.period.value,
            f"{u.period_start:%Y-%m-%d}",
            f"{u.tokens_used:,} / {u.token_limit:,}{reserved}",
            f"{money(u.cost_used)} / {money(u.cost_limit)}",
            f"{u.fraction:.0%}",
            ",".join(f"{t}%" for t in u.thresholds),
            "yes" if u.auto_pause else "no",
            "[red]paused[/]" if u.paused else "active",
        )
    return table


def alerts_table(alerts: list[Alert]) -> Table:
    table = Table(title="Alerts (newest first)", title_justify="left")
    for column in ("id", "when (UTC)", "kind", "message", "delivered"):
        table.add_column(column)
    for a in alerts:
        delivered = "yes" if a.delivered else (f"[red]no: {a.delivery_error}[/]" if a.delivery_error else "no")
        table.add_row(str(a.id), f"{a.created_at:%Y-%m-%d %H:%M}", a.kind, a.message, delivered)
    return table
