"""`wavelaunch bench studio`: the studio's months, every document kind, naive vs ours vs the bound.

The workload (``workload.workload_studio``): months of plans, deliverables, edits, repeats,
retries and growing threads for N clients on a simulated clock. Arms:

- ``naive``, the fair naive way, and its sensitivity variants (``naive_arm``);
- ours (``optimized``) through the real workflows, worker and Postgres, and its ablations
  (``no_<technique>``);
- the independent lower bound (``lower_bound``), from the events, the catalogue and
  ``domain.needs`` alone.

The clock: before each event the stub's clock is set to the event's time (so a provider prefix
left idle for hours has expired), and ours' cache entries are aged by the simulated time that
passed (so an entry past its TTL is not served). Several seeds give each seed's report and the
mean and spread of the ratios (``run_seeds``).
"""

from __future__ import annotations

import logging
import statistics
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from temporalio.client import Client, WorkflowFailureError

from bench import naive_arm
from bench.cost import STUB_KEY, Totals, arm_settings, bench_stack, fresh_arm, llm_config
from bench.lower_bound import METHOD, lower_bound
from bench.workload import Event, EventKind, Workload
from contracts.models import DeliverableRequest, PlanRequest, SummaryRequest
from domain.catalogue import deliverables
from domain.client import parse_client
from domain.sections import Level
from domain.summaries import Author, NewMessage, ThreadInput
from service import starts
from service.intake import accept_client
from service.settings import Settings
from service.starts import start as start_summary
from service.threads import append_threads
from service.wiring import close_dependencies, connect_temporal, ensure_search_attributes, plan_dependencies
from storage import db
from stubs.llm_server import StubServer
from tokenopt.fidelity import fidelity_of_requests
from worker import build_worker

log = logging.getLogger(__name__)

KINDS = naive_arm.KINDS
NAIVE_ARMS = (*naive_arm.STYLES, *naive_arm.REPRICED)
DEFAULT_ARMS = ("naive", "naive_verbose", "naive_mini", "naive_no_history", "optimized")
# Issue #11's product targets, on the fair naive, mean over seeds.
TARGETS = {"token_ratio": 0.60, "cost_ratio": 0.10, "lower_bound_ratio": 1.25}
# One document of a month fails mid-way (its strategy section's answers stay broken).
FAILING_DOCUMENT = 0


@dataclass
class ArmTotals:
    """Tokens and dollars of one arm, overall and per document kind."""

    kinds: dict[str, Totals] = field(default_factory=lambda: {k: Totals() for k in KINDS})
    seconds: float = 0.0

    def total(self) -> Totals:
        out = Totals()
        for t in self.kinds.values():
            out.calls += t.calls
            out.prompt_tokens += t.prompt_tokens
            out.cached_tokens += t.cached_tokens
            out.completion_tokens += t.completion_tokens
            out.cost += t.cost
        out.seconds = self.seconds
        return out


def _fault_for(event: Event, month: int | None) -> list[dict[str, Any]]:
    """The injected failure: three broken answers for one section of one document, so that
    section fails for good mid-way (the others finish) and the generation is retried."""
    if not event.fail_section:
        return []
    match: dict[str, str] = {"section": event.fail_section}
    if month is not None:
        match["contains"] = f"Document: {deliverables.documents(month)[FAILING_DOCUMENT].title}"
    return [{"kind": "invalid_json", "times": 3, "match": match}]


# -- summaries ------------------------------------------------------------------------------
# The simulated clock's zero, as a date (messages carry their simulated sending time).
EPOCH = datetime(2026, 11, 2, tzinfo=UTC)


def _new_messages(e: Event) -> list[NewMessage]:
    sent = EPOCH + timedelta(seconds=e.at)
    return [
        NewMessage(id=m["id"], author=Author(m["author"]), text=m["text"], sent_at=sent + timedelta(minutes=i))
        for i, m in enumerate(e.messages)
    ]


async def thread_summary(temporal: Client, settings: Settings, pool: asyncpg.Pool, client_id: str, e: Event) -> int:
    """Store a batch of new messages, bring that thread's summary up to date; its tokens."""
    thread = ThreadInput(thread_id=f"thread-{e.thread}", messages=_new_messages(e))
    await append_threads(pool, client_id, [thread])
    request = SummaryRequest(client_id=client_id, thread_ids=[thread.thread_id], include_client_summary=False)
    result = await (await start_summary(temporal, settings, request)).result()
    return result.total_tokens


async def client_summary(temporal: Client, settings: Settings, client_id: str) -> None:
    """The weekly client summary, from the thread summaries (already up to date)."""
    request = SummaryRequest(client_id=client_id, thread_ids=[], include_client_summary=True)
    await (await start_summary(temporal, settings, request)).result()


# -- ours -----------------------------------------------------------------------------------
@dataclass
class Figures:
    """What the issue asks to report beyond tokens and dollars."""

    revision_sections_written: int = 0
    revision_sections_total: int = 0
    retries: int = 0
    finished_sections_regenerated_by_retries: int = 0
    repeat_llm_calls: int = 0
    brand_context_needed: int = 0
    brand_context_written: int = 0
    summary_tokens: dict[int, list[int]] = field(default_factory=lambda: defaultdict(list))
    revisions: dict[str, Any] = field(default_factory=dict)


class StudioRun:
    def __init__(
        self, temporal: Client, settings: Settings, pool: asyncpg.Pool, stub: StubServer, records: list[dict[str, Any]]
    ):
        self.temporal = temporal
        self.settings = settings
        self.pool = pool
        self.stub = stub
        self.records = records
        self.figures = Figures()
        self.batches: dict[tuple[int, int], int] = defaultdict(int)

    async def _finish(self, handle: Any, fail: list[dict[str, Any]]) -> Any:
        """The result; a failed run is retried once (a new run of the same request)."""
        try:
            return await handle.result()
        except WorkflowFailureError:
            if not fail:
                raise
        finished = {
            r["section_key"]
            for r in await self.pool.fetch(
                # Any billed tier (none, semantic, patch, ...) wrote the section; stored/exact served it.
                "SELECT DISTINCT section_key FROM usage_ledger WHERE workflow_id = $1 AND success"
                " AND coalesce(cache_tier, 'none') NOT IN ('stored', 'exact') AND completion_tokens > 0",
                handle.id,
            )
        }
        retried = await starts.retry(self.temporal, self.settings, handle.id)
        result = await retried.result()
        self.figures.retries += 1
        self.figures.finished_sections_regenerated_by_retries += sum(
            1 for s in result.sections if s.section_key in finished and s.llm_calls > 0
        )
        return result

    async def plan(self, client: int, *, fail: list[dict[str, Any]] | None = None, announce: int | None = None) -> Any:
        if fail:
            self.stub.add_faults(fail)
        request = PlanRequest(client_id=self.records[client]["id"], level=Level.COMPLETE)
        handle = await starts.start(self.temporal, self.settings, request, announce_version=announce)
        return await self._finish(handle, fail or [])

    async def month(
        self, client: int, n: int, *, fail: list[dict[str, Any]] | None = None, announce: int | None = None
    ):
        if fail:
            self.stub.add_faults(fail)
        request = DeliverableRequest(client_id=self.records[client]["id"], month=n)
        handle = await starts.start(self.temporal, self.settings, request, announce_version=announce)
        result = await self._finish(handle, fail or [])
        self.figures.brand_context_needed += len(result.documents)
        self.figures.brand_context_written += sum(
            1 for s in result.sections if s.section_key in deliverables.SHARED_KINDS and s.llm_calls > 0
        )
        return result

    async def apply(self, e: Event) -> None:
        record = self.records[e.client]
        if e.kind is EventKind.ONBOARD:
            await accept_client(self.pool, parse_client(record))
            await self.plan(e.client, fail=_fault_for(e, None))
        elif e.kind is EventKind.DELIVERABLE:
            assert e.month is not None
            await self.month(e.client, e.month, fail=_fault_for(e, e.month))
        elif e.kind is EventKind.REVISE:
            record.update(e.changes)
            stored, _ = await accept_client(self.pool, parse_client(record))
            results = [await self.plan(e.client, announce=stored.version)]
            if e.month is not None:  # this month's deliverable was written already: it follows
                results.append(await self.month(e.client, e.month, announce=stored.version))
            for result in results:
                self.figures.revision_sections_total += len(result.sections)
                self.figures.revision_sections_written += sum(1 for s in result.sections if s.llm_calls > 0)
        elif e.kind is EventKind.REPEAT:
            if e.document == "business_plan":
                result = await self.plan(e.client)
            else:
                assert e.month is not None
                result = await self.month(e.client, e.month)
            self.figures.repeat_llm_calls += sum(s.llm_calls for s in result.sections)
        elif e.kind is EventKind.MESSAGES:
            assert e.thread is not None
            key = (e.client, e.thread)
            self.batches[key] += 1
            tokens = await thread_summary(self.temporal, self.settings, self.pool, record["id"], e)
            self.figures.summary_tokens[self.batches[key]].append(tokens)
        elif e.kind is EventKind.CLIENT_SUMMARY:
            await client_summary(self.temporal, self.settings, record["id"])


async def revision_figures(pool: asyncpg.Pool, prefix: str, after_id: int) -> dict[str, Any]:
    """Issue #10's figures from ours' ledger: patches that stood in for a rewrite (their output
    against the whole section each replaced), patches that failed and fell back to a rewrite."""
    row = await pool.fetchrow(
        """SELECT count(*) FILTER (WHERE success) AS patched,
                  count(*) FILTER (WHERE NOT success) AS failed,
                  coalesce(sum(completion_tokens) FILTER (WHERE success), 0) AS patch_tokens,
                  coalesce(sum(baseline_completion_tokens) FILTER (WHERE success), 0) AS rewrite_tokens
           FROM usage_ledger WHERE client_id LIKE $1 AND id > $2 AND operation = 'patch_section'""",
        prefix + "%",
        after_id,
    )
    return {
        "patched_sections": row["patched"],
        "failed_patches": row["failed"],
        "patch_completion_tokens": row["patch_tokens"],
        "rewrite_completion_tokens_replaced": row["rewrite_tokens"],
        # A patched section's output over the full section it replaced (issue #10: <= 0.30).
        "patch_output_share": _ratio(row["patch_tokens"], row["rewrite_tokens"]),
    }


async def ledger_by_kind(pool: asyncpg.Pool, prefix: str, after_id: int) -> dict[str, Totals]:
    """Ours from the ledger, by document kind. A row of any tier but ``stored``/``exact`` that
    billed tokens is a billed call (a batch's member rows are one call); tokens and dollars are
    what each row billed."""
    rows = await pool.fetch(
        """SELECT coalesce(document_type, 'business_plan') AS kind,
                  count(*) FILTER (WHERE coalesce(cache_tier, 'none') NOT IN ('stored', 'exact')
                                     AND total_tokens > 0 AND operation <> 'generate_section_batch')
                  + count(DISTINCT (run_id, activity_id, attempt))
                      FILTER (WHERE operation = 'generate_section_batch' AND total_tokens > 0) AS calls,
                  coalesce(sum(prompt_tokens), 0) AS p, coalesce(sum(cached_prompt_tokens), 0) AS c,
                  coalesce(sum(completion_tokens), 0) AS o, coalesce(sum(estimated_cost), 0) AS cost
           FROM usage_ledger WHERE client_id LIKE $1 AND id > $2 GROUP BY 1""",
        prefix + "%",
        after_id,
    )
    out = {k: Totals() for k in KINDS}
    for r in rows:
        out[r["kind"]] = Totals(
            calls=r["calls"], prompt_tokens=r["p"], cached_tokens=r["c"], completion_tokens=r["o"], cost=r["cost"]
        )
    return out


class Clock:
    """The simulated clock of one arm: the stub's prefix cache follows it, and ours' cache
    entries are aged by the simulated time that passes (their TTLs run on Postgres' now())."""

    # Ageing every few seconds of simulated time would be a query per event for nothing.
    MIN_STEP_SECONDS = 60.0

    def __init__(self, stub: StubServer, pool: asyncpg.Pool | None = None):
        self.stub = stub
        self.pool = pool
        self.at: float | None = None

    async def advance(self, at: float) -> None:
        self.stub.set_clock(at)
        if self.at is None:
            self.at = at
            return
        step = at - self.at
        if step >= self.MIN_STEP_SECONDS:
            if self.pool is not None:
                await self.pool.execute(
                    "UPDATE cache_entries SET expires_at = expires_at - make_interval(secs => $1)", step
                )
            self.at = at


def fidelity_inputs(
    workload: Workload, records: list[dict[str, Any]]
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, dict[str, list[str]]]]:
    """What tokenopt.fidelity checks an arm's prompts against: every version each client's record
    had (edits applied in order), and each client's threads as the workload sent them."""
    # From the workload's own records: the run's copies hold the last version by now.
    versions = {r["id"]: [dict(c) | {"id": r["id"]}] for c, r in zip(workload.clients, records, strict=True)}
    threads: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for e in workload.events:
        client_id = records[e.client]["id"]
        if e.kind is EventKind.REVISE:
            versions[client_id].append(versions[client_id][-1] | e.changes)
        elif e.kind is EventKind.MESSAGES:
            threads[client_id][f"thread-{e.thread}"] += [m["text"] for m in e.messages]
    return versions, {c: dict(t) for c, t in threads.items()}


async def run_ours(
    arm: str, workload: Workload, stub: StubServer, settings: Settings, endpoints: Any, pool: asyncpg.Pool, tag: str
) -> tuple[ArmTotals, Figures, dict[str, Any]]:
    temporal = await connect_temporal(settings, endpoints.temporal_address)
    await ensure_search_attributes(temporal, settings.temporal_namespace)
    deps = await plan_dependencies(settings, endpoints.database_url, llm_config(stub))
    prefix = f"{tag}-{arm.replace('+', '-')}-"  # client ids allow letters, digits, _ and -
    records = [dict(c) | {"id": prefix + c["id"]} for c in workload.clients]
    run = StudioRun(temporal, settings, pool, stub, records)
    clock = Clock(stub, pool)
    totals = ArmTotals()
    try:
        async with build_worker(temporal, settings, deps):
            for e in workload.events:
                if e.warmup:
                    await clock.advance(e.at)
                    await run.apply(e)
            run.figures = Figures()  # the set-up is not part of the month
            watermark = await pool.fetchval("SELECT coalesce(max(id), 0) FROM usage_ledger")
            began = time.monotonic()
            for e in workload.events:
                if not e.warmup:
                    await clock.advance(e.at)
                    await run.apply(e)
            totals.seconds = time.monotonic() - began
    finally:
        await close_dependencies(deps)
    totals.kinds = await ledger_by_kind(pool, prefix, watermark)
    run.figures.revisions = await revision_figures(pool, prefix, watermark)
    # Every prompt this arm sent (set-up included: month 1 feeds month 2's digest) against what
    # each section needs (domain.needs), read from the stub's log before the next arm resets it.
    versions, threads = fidelity_inputs(workload, records)
    fidelity = fidelity_of_requests(stub.requests(), versions, threads=threads)
    return totals, run.figures, fidelity.as_dict()


async def run_naive_arms(workload: Workload, stub: StubServer, base: Settings, arms: list[str]) -> dict[str, Any]:
    """Every naive arm wanted, each on a fresh stub state; a repriced variant from its arm's calls."""
    needed = {naive_arm.REPRICED[a][0] if a in naive_arm.REPRICED else a for a in arms if a in NAIVE_ARMS}
    results: dict[str, naive_arm.NaiveResult] = {}
    for name in naive_arm.STYLES:
        if name in needed:
            stub.reset()
            log.info("arm %s ...", name)
            results[name] = await naive_arm.NaiveRun(stub, base.naive_model, naive_arm.STYLES[name]).run(workload)
    stub.reset()
    out: dict[str, Any] = {}
    for name in arms:
        if name in naive_arm.STYLES:
            r = results[name]
            out[name] = (ArmTotals(naive_arm.price(r.calls, r.model), r.seconds), r)
        elif name in naive_arm.REPRICED:
            source, setting = naive_arm.REPRICED[name]
            r = results[source]
            out[name] = (ArmTotals(naive_arm.price(r.calls, getattr(base, setting)), 0.0), r)
    return out


async def run(
    workload: Workload,
    base: Settings,
    arms: list[str] | None = None,
    bound_models: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """One workload through every arm wanted; the report of one seed."""
    arms = list(arms or DEFAULT_ARMS)
    unknown = [a for a in arms if a.startswith("naive") and a not in NAIVE_ARMS]
    if unknown:
        raise ValueError(f"unknown naive arm(s) {', '.join(unknown)}; known: {', '.join(NAIVE_ARMS)}")
    tag = f"s{uuid.uuid4().hex[:6]}"
    results: dict[str, ArmTotals] = {}
    figures: dict[str, Figures] = {}
    fidelity: dict[str, dict[str, Any]] = {}
    with StubServer(api_key=STUB_KEY) as stub:
        naive = await run_naive_arms(workload, stub, base, arms)
        ours_arms = [a for a in arms if a not in NAIVE_ARMS]
        if ours_arms:
            async with bench_stack(base) as endpoints:
                pool = await db.connect(endpoints.database_url)
                try:
                    for arm in ours_arms:
                        settings = arm_settings(base, arm, tag)
                        await fresh_arm(stub, pool)
                        log.info("arm %s ...", arm)
                        results[arm], figures[arm], fidelity[arm] = await run_ours(
                            arm, workload, stub, settings, endpoints, pool, tag
                        )
                finally:
                    await pool.close()
    bound = lower_bound(workload, base.model_economy, bound_models)
    results["lower_bound"] = ArmTotals(bound.kinds)
    out = report(workload, {k: v[0] for k, v in naive.items()}, results, figures)
    out["fidelity"] = fidelity.get("optimized")
    out["fidelity_by_arm"] = {arm: {k: f[k] for k in ("required", "delivered", "ratio")} for arm, f in fidelity.items()}
    out["arms"]["lower_bound"].update(
        method=METHOD, writes=bound.writes, revisions=bound.revisions, models=dict(sorted(bound.models.items()))
    )
    if "naive" in naive:
        fair = naive["naive"][1]
        out["arms"]["naive"]["history_prompt_tokens"] = fair.history_prompt_tokens
        if figs := out.get("figures"):
            for b, row in figs["tokens_per_thread_summary"].items():
                row["naive"] = _mean(fair.summary_tokens.get(int(b), []))
    return out


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 4) if b else None


def _mean(values: list[int]) -> float:
    return round(sum(values) / len(values), 1) if values else 0.0


def _entry(totals: ArmTotals, reference: ArmTotals | None) -> dict[str, Any]:
    """An arm's figures, overall and by kind, with its ratios to ``reference`` (the fair naive)."""
    whole = totals.total()
    entry = whole.as_dict()
    entry["by_kind"] = {k: t.as_dict() for k, t in totals.kinds.items()}
    if reference is not None:
        ref = reference.total()
        entry["token_ratio"] = _ratio(whole.total_tokens, ref.total_tokens)
        entry["cost_ratio"] = _ratio(float(whole.cost), float(ref.cost))
        for k, t in totals.kinds.items():
            n = reference.kinds[k]
            entry["by_kind"][k]["token_ratio"] = _ratio(t.total_tokens, n.total_tokens)
            entry["by_kind"][k]["cost_ratio"] = _ratio(float(t.cost), float(n.cost))
    return entry


def report(
    workload: Workload,
    naive: dict[str, ArmTotals],
    results: dict[str, ArmTotals],
    figures: dict[str, Figures],
) -> dict[str, Any]:
    fair = naive.get("naive")
    opt = results.get("optimized")
    arms: dict[str, Any] = {}
    if fair is not None:
        arms["naive"] = _entry(fair, fair)
    for name, totals in results.items():
        arms[name] = _entry(totals, fair)
        if opt and fair and name.startswith("no_"):
            # What switching this technique off costs, as a share of the fair naive bill.
            whole, o, n = totals.total(), opt.total(), fair.total()
            arms[name]["marginal_token_saving"] = _ratio(whole.total_tokens - o.total_tokens, n.total_tokens)
            arms[name]["marginal_cost_saving"] = _ratio(float(whole.cost - o.cost), float(n.cost))
    sensitivity: dict[str, Any] = {}
    for name, totals in naive.items():
        if name == "naive":
            continue
        entry = _entry(totals, None)
        if opt:  # ours against this variant
            entry["token_ratio"] = _ratio(opt.total().total_tokens, totals.total().total_tokens)
            entry["cost_ratio"] = _ratio(float(opt.total().cost), float(totals.total().cost))
        sensitivity[name] = entry
    lb, o, n = results["lower_bound"].total(), opt.total() if opt else None, fair.total() if fair else None
    counts: dict[str, int] = defaultdict(int)
    for e in workload.events:
        if not e.warmup:
            counts[e.kind.value] += 1
    counts["failures_injected"] = sum(1 for e in workload.events if e.fail_section and not e.warmup)
    out: dict[str, Any] = {
        "workload": {
            "name": workload.name,
            "seed": workload.seed,
            "clients": len(workload.clients),
            "months": workload.months,
            "events": dict(counts),
        },
        "arms": arms,
        "sensitivity": sensitivity,
        "token_ratio": _ratio(o.total_tokens, n.total_tokens) if o and n else None,
        "cost_ratio": _ratio(float(o.cost), float(n.cost)) if o and n else None,
        "lower_bound_ratio": _ratio(o.total_tokens, lb.total_tokens) if o else None,
        "lower_bound_cost_ratio": _ratio(float(o.cost), float(lb.cost)) if o else None,
        "lower_bound_vs_naive": _ratio(lb.total_tokens, n.total_tokens) if n else None,
        "lower_bound_cost_vs_naive": _ratio(float(lb.cost), float(n.cost)) if n else None,
        # Context fidelity of ours' prompts (tokenopt.fidelity), set by ``run``.
        "fidelity": None,
    }
    if figs := figures.get("optimized"):
        out["figures"] = {
            "revision_sections_written": figs.revision_sections_written,
            "revision_sections_total": figs.revision_sections_total,
            # Every patch of the period (after an edit, or at the next document reading the edit).
            "patches": figs.revisions,
            "retries": figs.retries,
            "finished_sections_regenerated_by_retries": figs.finished_sections_regenerated_by_retries,
            "repeat_llm_calls": figs.repeat_llm_calls,
            "brand_context_needed": figs.brand_context_needed,
            "brand_context_written": figs.brand_context_written,
            "tokens_per_thread_summary": {
                str(b): {"ours": _mean(figs.summary_tokens[b]), "naive": None} for b in sorted(figs.summary_tokens)
            },
        }
    out["notes"] = NOTES
    return out


NOTES = [
    "Completion sizes are the catalogue targets in every arm (the stub), so no arm wins by answering shorter.",
    "Token counts are computed by the stub with tokenopt.counting; dollars use genai-prices, cached prompt "
    "tokens at the cached input price.",
    "Existing clients' plans and month 1 are written before the period (set up, not counted in any arm).",
    "The lower bound is independent: computed from the events, the catalogue and domain.needs, never a ledger.",
    "Ours' cache TTLs are applied by ageing cache entries by the simulated time; the provider's prefix cache "
    "expires after 10 idle minutes on the simulated clock.",
]


# -- several seeds --------------------------------------------------------------------------
RATIOS = ("token_ratio", "cost_ratio", "lower_bound_ratio", "lower_bound_cost_ratio", "lower_bound_vs_naive")


def spread(values: list[float]) -> dict[str, Any]:
    """Mean, min, max and (sample) standard deviation of one ratio over seeds."""
    return {
        "mean": round(statistics.fmean(values), 4),
        "min": min(values),
        "max": max(values),
        "stdev": round(statistics.stdev(values), 4) if len(values) > 1 else 0.0,
        "values": values,
    }


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The ratios over seeds, the sensitivity ratios likewise, and the targets on the means."""
    out: dict[str, Any] = {}
    for name in RATIOS:
        values = [r[name] for r in runs if r.get(name) is not None]
        if values:
            out[name] = spread(values)
    variants = sorted({v for r in runs for v in r["sensitivity"]})
    out["sensitivity"] = {
        v: {
            ratio: spread(values)
            for ratio in ("token_ratio", "cost_ratio")
            if (values := [r["sensitivity"][v][ratio] for r in runs if r["sensitivity"].get(v, {}).get(ratio)])
        }
        for v in variants
    }
    out["targets"] = {
        name: {"target": f"<= {limit}", "mean": out[name]["mean"], "met": out[name]["mean"] <= limit}
        for name, limit in TARGETS.items()
        if name in out
    }
    ratios = [r["fidelity"]["ratio"] for r in runs if r.get("fidelity")]
    out["targets"]["fidelity"] = {"target": ">= 1.0", "mean": None, "met": None}  # no arm of ours ran
    if ratios:
        out["fidelity"] = spread(ratios)
        out["targets"]["fidelity"] = {"target": ">= 1.0", "mean": out["fidelity"]["mean"], "met": min(ratios) >= 1.0}
    return out


async def run_seeds(
    seeds: list[int],
    make_workload: Callable[[int], Workload],
    base: Settings,
    arms: list[str] | None = None,
    bound_models: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Each seed's report, then the mean and spread of its ratios."""
    if not seeds:
        raise ValueError("give at least one seed")
    began = time.monotonic()
    runs = []
    for seed in seeds:
        log.info("seed %s ...", seed)
        runs.append(await run(make_workload(seed), base, arms, bound_models))
    return {
        "seeds": seeds,
        "seconds": round(time.monotonic() - began, 1),
        "summary": summarise(runs),
        "runs": runs,
    }
