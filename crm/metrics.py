"""``/metrics`` in the Prometheus text format, read from Postgres at scrape time.

The ledger is the truth (every call and reuse is a row), so the counters are sums over it rather
than in-process counters that would reset with each API restart and miss the workers' calls.
The Temporal SDK's own worker metrics (its Prometheus endpoint, ``WAVELAUNCH_WORKER_METRICS_*``)
are appended when the worker answers; a worker that is down is not an error here.

No label names a client unless ``WAVELAUNCH_METRICS_CLIENT_LABELS`` is on: a client id points at
a person, and scrapes end up in systems with looser access than the CRM's.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator

import asyncpg
import httpx
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from crm.dashboard import budget_status
from service.settings import Settings
from storage import usage, workflow_starts

log = logging.getLogger(__name__)

WORKER_SCRAPE_TIMEOUT = 0.5  # seconds: a scrape must not hang on a worker that is gone
# LLM latency buckets, milliseconds (a section answer takes seconds; an embedding, less).
LATENCY_BUCKETS_MS = (100, 250, 500, 1000, 2500, 5000, 10000, 20000, 40000, 60000, 120000, 300000)
# An LLM call is a row with a duration that is not a reuse (storage.usage defines hits).
_LLM_CALL = f"request_duration_ms IS NOT NULL AND NOT ({usage.HIT})"


CLIENT_BUDGETS = "client"  # the budget label of per-client budgets taken together


async def budget_samples(pool: asyncpg.Pool, *, client_labels: bool = False) -> list[tuple[dict[str, str], float]]:
    """``wavelaunch_budget_use_ratio`` samples: one per budget in its current period (the larger
    of the token and dollar shares used, reservations included), as the dashboard's gauges.
    Without ``client_labels``, per-client budgets are one sample per period, ``budget="client"``:
    the highest share any client has used, which is what an alert on a limit needs."""
    samples: list[tuple[dict[str, str], float]] = []
    highest: dict[str, float] = {}
    for b in await budget_status(pool):
        if b["budget"] == "global" or client_labels:
            samples.append(({"budget": b["budget"], "period": b["period"]}, b["use_ratio"]))
        else:
            highest[b["period"]] = max(highest.get(b["period"], 0.0), b["use_ratio"])
    samples += [({"budget": CLIENT_BUDGETS, "period": p}, ratio) for p, ratio in sorted(highest.items())]
    return samples


async def _ledger_families(pool: asyncpg.Pool) -> list[Metric]:
    tokens = CounterMetricFamily(
        "wavelaunch_tokens",
        "Billed tokens by model, operation and cache tier; kind: prompt (not cached), cached (prompt "
        "tokens the provider served from its prefix cache) or completion.",
        labels=["model", "operation", "cache_tier", "kind"],
    )
    cost = CounterMetricFamily(
        "wavelaunch_cost_dollars",
        "Estimated dollars by model, operation and cache tier.",
        labels=["model", "operation", "cache_tier"],
    )
    rows = await pool.fetch(
        """SELECT model, operation, coalesce(cache_tier, 'none') AS cache_tier,
                  coalesce(sum(prompt_tokens - cached_prompt_tokens), 0) AS prompt,
                  coalesce(sum(cached_prompt_tokens), 0) AS cached,
                  coalesce(sum(completion_tokens), 0) AS completion,
                  coalesce(sum(estimated_cost), 0) AS cost
           FROM usage_ledger GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"""
    )
    for r in rows:
        labels = [r["model"], r["operation"], r["cache_tier"]]
        for kind in ("prompt", "cached", "completion"):
            tokens.add_metric([*labels, kind], r[kind])
        cost.add_metric(labels, float(r["cost"]))

    report = await usage.report(pool)
    totals = report["totals"]
    saved_tokens = CounterMetricFamily(
        "wavelaunch_saved_tokens", "Tokens the naive way would have billed for the same output, minus ours."
    )
    saved_tokens.add_metric([], totals["saved_tokens"])
    saved_cost = CounterMetricFamily("wavelaunch_saved_dollars", "Dollars saved against the naive way.")
    saved_cost.add_metric([], totals["saved_cost"])
    hit_ratio = GaugeMetricFamily(
        "wavelaunch_cache_hit_ratio",
        "Share of the sections and summaries served that each cache tier served with no model call"
        " (the tiers add up to the overall hit rate).",
        labels=["tier"],
    )
    for tier, ratio in usage.hit_rate_by_tier(report).items():
        hit_ratio.add_metric([tier], ratio)
    overall = GaugeMetricFamily(
        "wavelaunch_cache_hit_ratio_overall", "Share of the sections and summaries served with no model call."
    )
    overall.add_metric([], totals["cache_hit_rate"])
    return [tokens, cost, saved_tokens, saved_cost, hit_ratio, overall, await _latency(pool)]


async def _latency(pool: asyncpg.Pool) -> Metric:
    latency = HistogramMetricFamily(
        "wavelaunch_llm_request_duration_seconds",
        "LLM call latency (request_duration_ms of the ledger).",
        labels=["model"],
    )
    le = ", ".join(f"count(*) FILTER (WHERE request_duration_ms <= {b})" for b in LATENCY_BUCKETS_MS)
    rows = await pool.fetch(
        f"""SELECT model, count(*) AS n, coalesce(sum(request_duration_ms), 0) AS total_ms, ARRAY[{le}] AS le
            FROM usage_ledger WHERE {_LLM_CALL} GROUP BY 1 ORDER BY 1"""
    )
    for r in rows:
        buckets = [(str(b / 1000), n) for b, n in zip(LATENCY_BUCKETS_MS, r["le"], strict=True)]
        latency.add_metric([r["model"]], buckets=[*buckets, ("+Inf", r["n"])], sum_value=r["total_ms"] / 1000)
    return latency


class _Snapshot(Collector):
    """A collector over families already read (prometheus_client collects synchronously; the
    reads are async, so they happen first, at scrape time)."""

    def __init__(self, families: Iterable[Metric]):
        self.families = list(families)

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


async def worker_metrics(settings: Settings, http: httpx.AsyncClient) -> str | None:
    """The Temporal worker's own Prometheus text, or None when it is not served or not reachable."""
    if not settings.worker_metrics_port:
        return None
    url = f"http://{settings.worker_metrics_host}:{settings.worker_metrics_port}/metrics"
    try:
        answer = await http.get(url, timeout=WORKER_SCRAPE_TIMEOUT)
        answer.raise_for_status()
    except httpx.HTTPError as err:
        log.debug("worker metrics at %s not available: %s", url, err)
        return None
    return answer.text


async def exposition(pool: asyncpg.Pool, settings: Settings, http: httpx.AsyncClient) -> bytes:
    """The whole /metrics body: our families, then the worker's when it answers."""
    families = await _ledger_families(pool)
    budget = GaugeMetricFamily(
        "wavelaunch_budget_use_ratio",
        'Share of each budget used in its current period; budget="client": the most used client budget '
        "(each client's own with WAVELAUNCH_METRICS_CLIENT_LABELS).",
        labels=["budget", "period"],
    )
    for labels, value in await budget_samples(pool, client_labels=settings.metrics_client_labels):
        budget.add_metric([labels["budget"], labels["period"]], value)
    backlog = GaugeMetricFamily(
        "wavelaunch_outbox_pending", "Accepted webhook starts not yet sent to Temporal (crm/outbox_sender.py)."
    )
    backlog.add_metric([], await workflow_starts.count_pending(pool))
    worker = await worker_metrics(settings, http)
    up = GaugeMetricFamily("wavelaunch_worker_metrics_up", "1 when the worker's own metrics endpoint answered.")
    up.add_metric([], 1 if worker is not None else 0)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot([*families, budget, backlog, up]))
    body = generate_latest(registry)
    if worker:
        body += b"# The Temporal SDK's worker metrics\n" + worker.encode()
    return body
