"""`wavelaunch bench deadlines`: the studio month with deadlines as a studio sets them, priced by
service tier, against the same month with every request interactive and against the naive way.

Deadlines (``STUDIO_DEADLINES``): a new client's plan and a repeated request are interactive
(someone is waiting: standard); a deliverable month is due in days; a plan revised after an
edit is due today; thread and weekly client summaries are due in hours. Each call then takes
the cheapest tier that meets its deadline (tokenopt.service_tiers).

Arms, all over the same workload (``workload.workload_studio`` without its injected failures,
which are another benchmark's subject) and the same stub:
- ``naive``: the studio benchmark's fair naive way (``naive_arm.NaiveRun``), every call standard;
- ``standard``: ours through the real workflows, every request interactive;
- ``deadlines``: ours, each request with its deadline.

Work due a day and more away (a deliverable month, due in 3 days) goes through the Batch API:
the month's sections no stored, exact or patch tier serves are one batch, and whatever it does
not answer is written directly (workflows.deadline_batch); the stub completes each batch after
two looks, one second apart (``BATCH_POLL_SECONDS``), so a month's finish time here is the
stub's, not OpenAI's (up to 24 hours).

Flex is sold only for some models (tokenopt.pricing.offers_flex: the gpt-5 and o-series
families, not gpt-4.1), so the arms run on the gpt-5 family by default (``FAMILIES``), the naive
way on its top model; on the gpt-4.1 family only the Batch API is cheaper than standard. The
stub answers flex ``flex_slowdown`` times slower and refuses a share of flex calls with 429
resource unavailable (``refuse_share``), so fallbacks to standard are on the bill.
Every document's finish time is reported against its deadline.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
from temporalio.client import Client

from bench import naive_arm
from bench.cost import STUB_KEY, arm_parts, bench_stack, fresh_arm
from bench.studio import ArmTotals
from bench.workload import Event, EventKind, Workload
from contracts.models import DeliverableRequest, PlanRequest, SummaryRequest
from domain.client import parse_client
from domain.sections import Level
from domain.summaries import Author, NewMessage, ThreadInput
from service import starts
from service.intake import accept_client
from service.settings import Settings
from service.starts import start as start_summary
from service.threads import append_threads
from service.wiring import close_dependencies
from storage import db
from stubs.llm_server import StubServer
from worker import build_worker

log = logging.getLogger(__name__)

# Models OpenAI sells on flex (and at Batch API rates), one per routing tier; the naive way's top model.
FLEX_MODELS = {"model_premium": "gpt-5", "model_standard": "gpt-5-mini", "model_economy": "gpt-5-nano"}
NAIVE_MODEL = "gpt-5"
# Model families the benchmark runs on: (models per routing tier, the naive way's model). gpt-4.1
# is not sold on flex: there only the Batch API is cheaper than standard.
FAMILIES: dict[str, tuple[dict[str, str], str]] = {
    "gpt-5": (FLEX_MODELS, NAIVE_MODEL),
    "gpt-4.1": (
        {"model_premium": "gpt-4.1", "model_standard": "gpt-4.1-mini", "model_economy": "gpt-4.1-nano"},
        "gpt-4.1",
    ),
}
# The stub answers a batch after two looks: a second between looks keeps the month short.
BATCH_POLL_SECONDS = 1

# How long a studio gives each kind of work (None: interactive, someone is waiting).
STUDIO_DEADLINES: dict[str, timedelta | None] = {
    "plan": None,
    "repeat": None,
    "revised_plan": timedelta(hours=24),
    "deliverable": timedelta(days=3),
    "thread_summary": timedelta(hours=6),
    "client_summary": timedelta(hours=6),
}
_SENT_AT = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@dataclass
class Finished:
    """One document (a plan, a month, a summary run): when it was asked for, done, and due."""

    what: str
    client: str
    seconds: float
    deadline_seconds: float | None

    @property
    def missed(self) -> bool:
        return self.deadline_seconds is not None and self.seconds > self.deadline_seconds


@dataclass
class ArmResult:
    by_tier: dict[str, dict[str, Any]] = field(default_factory=dict)
    by_kind: dict[str, float] = field(default_factory=dict)
    total: Decimal = Decimal(0)
    calls: int = 0
    seconds: float = 0.0
    documents: list[Finished] = field(default_factory=list)
    # Batch API batches submitted, and their lines (each a section).
    batches: int = 0
    batch_lines: int = 0


def _messages(batch: list[dict[str, str]]) -> list[NewMessage]:
    return [
        NewMessage(id=m["id"], author=Author(m["author"]), text=m["text"], sent_at=_SENT_AT + timedelta(minutes=i))
        for i, m in enumerate(batch)
    ]


class DeadlineRun:
    """The studio month through the real workflows, each request with the deadline ``deadlines``
    gives its kind (``interactive``: none at all)."""

    def __init__(
        self,
        temporal: Client,
        settings: Settings,
        pool: asyncpg.Pool,
        records: list[dict[str, Any]],
        *,
        interactive: bool,
    ):
        self.temporal = temporal
        self.settings = settings
        self.pool = pool
        self.records = records
        self.interactive = interactive
        self.month_written: dict[int, int] = {}
        self.documents: list[Finished] = []

    def _deadline(self, what: str) -> tuple[datetime | None, timedelta | None]:
        window = None if self.interactive else STUDIO_DEADLINES[what]
        return (datetime.now(UTC) + window if window else None), window

    async def _timed(self, what: str, client: str, window: timedelta | None, handle: Any) -> None:
        began = time.monotonic()
        await handle.result()
        self.documents.append(
            Finished(what, client, time.monotonic() - began, window.total_seconds() if window else None)
        )

    async def plan(self, client: int, what: str, announce: int | None = None) -> None:
        deadline, window = self._deadline(what)
        client_id = self.records[client]["id"]
        request = PlanRequest(client_id=client_id, level=Level.COMPLETE, deadline=deadline)
        handle = await starts.start(self.temporal, self.settings, request, announce_version=announce)
        await self._timed(what, client_id, window, handle)

    async def month(self, client: int, n: int, what: str = "deliverable", announce: int | None = None) -> None:
        deadline, window = self._deadline(what)
        client_id = self.records[client]["id"]
        request = DeliverableRequest(client_id=client_id, month=n, deadline=deadline)
        handle = await starts.start(self.temporal, self.settings, request, announce_version=announce)
        await self._timed(f"month {n}" if what == "deliverable" else what, client_id, window, handle)

    async def summary(self, client: int, what: str, thread_ids: list[str]) -> None:
        deadline, window = self._deadline(what)
        client_id = self.records[client]["id"]
        request = SummaryRequest(
            client_id=client_id,
            thread_ids=thread_ids,
            include_client_summary=what == "client_summary",
            deadline=deadline,
        )
        await self._timed(what, client_id, window, await start_summary(self.temporal, self.settings, request))

    async def apply(self, e: Event) -> None:
        record = self.records[e.client]
        if e.kind is EventKind.ONBOARD:
            await accept_client(self.pool, parse_client(record))
            await self.plan(e.client, "plan")
        elif e.kind is EventKind.DELIVERABLE:
            assert e.month is not None
            await self.month(e.client, e.month)
            if not e.warmup:
                self.month_written[e.client] = e.month
        elif e.kind is EventKind.REVISE:
            record.update(e.changes)
            stored, _ = await accept_client(self.pool, parse_client(record))
            await self.plan(e.client, "revised_plan", announce=stored.version)
            if e.client in self.month_written:
                await self.month(e.client, self.month_written[e.client], "deliverable", announce=stored.version)
        elif e.kind is EventKind.REPEAT:
            if e.document == "business_plan":
                await self.plan(e.client, "repeat")
            else:
                assert e.month is not None
                await self.month(e.client, e.month, "repeat")
        elif e.kind is EventKind.MESSAGES:
            thread = f"thread-{e.thread}"
            await append_threads(
                self.pool, record["id"], [ThreadInput(thread_id=thread, messages=_messages(e.messages))]
            )
            await self.summary(e.client, "thread_summary", [thread])
        elif e.kind is EventKind.CLIENT_SUMMARY:
            await self.summary(e.client, "client_summary", [])


async def _ledger(pool: asyncpg.Pool, prefix: str, after_id: int) -> ArmResult:
    out = ArmResult()
    rows = await pool.fetch(
        """SELECT coalesce(service_tier, '-') AS tier, count(*) FILTER (WHERE total_tokens > 0) AS calls,
                  count(*) FILTER (WHERE NOT success AND total_tokens = 0 AND NOT cache_hit) AS refused,
                  coalesce(sum(prompt_tokens), 0) AS prompt, coalesce(sum(completion_tokens), 0) AS completion,
                  coalesce(sum(estimated_cost), 0) AS cost
           FROM usage_ledger WHERE client_id LIKE $1 AND id > $2 GROUP BY 1 ORDER BY 1""",
        prefix + "%",
        after_id,
    )
    for r in rows:
        # Rows with no tier: hits (no call) and embeddings (the semantic cache's, not a chat call).
        tier = r["tier"] if r["tier"] != "-" else "no tier (embeddings)"
        if r["tier"] == "-" and not r["calls"]:
            continue
        out.by_tier[tier] = {
            "calls": r["calls"],
            "failed_tries": r["refused"],
            "prompt_tokens": r["prompt"],
            "completion_tokens": r["completion"],
            "cost": float(r["cost"]),
        }
        out.total += Decimal(r["cost"])
        out.calls += r["calls"]
    kinds = await pool.fetch(
        """SELECT coalesce(document_type, 'business_plan') AS kind, coalesce(sum(estimated_cost), 0) AS cost
           FROM usage_ledger WHERE client_id LIKE $1 AND id > $2 GROUP BY 1 ORDER BY 1""",
        prefix + "%",
        after_id,
    )
    out.by_kind = {r["kind"]: float(r["cost"]) for r in kinds}
    return out


async def run_ours(
    arm: str,
    workload: Workload,
    stub: StubServer,
    settings: Settings,
    endpoints: Any,
    pool: asyncpg.Pool,
    tag: str,
    *,
    refuse_share: float,
) -> ArmResult:
    temporal, deps = await arm_parts(settings, endpoints, stub)
    prefix = f"{tag}-{arm}-"
    records = [dict(c) | {"id": prefix + c["id"]} for c in workload.clients]
    run = DeadlineRun(temporal, settings, pool, records, interactive=arm == "standard")
    rng = random.Random(workload.seed)
    try:
        async with build_worker(temporal, settings, deps):
            for e in workload.events:
                if e.warmup:
                    await run.apply(e)
            run.documents = []
            watermark = await pool.fetchval("SELECT coalesce(max(id), 0) FROM usage_ledger")
            warmup_batches = len(stub.batches())
            began = time.monotonic()
            for e in workload.events:
                if e.warmup:
                    continue
                if rng.random() < refuse_share:
                    # Flex runs out of capacity for one call of this request (standard calls are untouched).
                    stub.add_faults([{"kind": "resource_unavailable", "times": 1}])
                await run.apply(e)
            seconds = time.monotonic() - began
    finally:
        await close_dependencies(deps)
    result = await _ledger(pool, prefix, watermark)
    result.seconds, result.documents = seconds, run.documents
    # The month's batches, not the warm-up's (the ledger figures start at the same point).
    measured = stub.batches()[warmup_batches:]
    result.batches = len(measured)
    result.batch_lines = sum(b["lines"] for b in measured)
    return result


def _documents_report(docs: list[Finished]) -> dict[str, Any]:
    by_what: dict[str, list[Finished]] = {}
    for d in docs:
        by_what.setdefault(d.what.split(" ")[0], []).append(d)
    return {
        "documents": len(docs),
        "with_deadline": sum(1 for d in docs if d.deadline_seconds is not None),
        "missed": sum(1 for d in docs if d.missed),
        "by_kind": {
            what: {
                "count": len(items),
                "deadline_seconds": items[0].deadline_seconds,
                "max_finish_seconds": round(max(d.seconds for d in items), 2),
                "mean_finish_seconds": round(sum(d.seconds for d in items) / len(items), 2),
            }
            for what, items in sorted(by_what.items())
        },
        "each": [
            {
                "what": d.what,
                "client": d.client,
                "finish_seconds": round(d.seconds, 2),
                "deadline_seconds": d.deadline_seconds,
            }
            for d in docs
        ],
    }


async def run(
    workload: Workload,
    base: Settings,
    *,
    latency_per_token: float = 0.0002,
    flex_slowdown: float = 3.0,
    refuse_share: float = 0.1,
    family: str = "gpt-5",
) -> dict[str, Any]:
    tag = f"d{uuid.uuid4().hex[:6]}"
    models, naive_model = FAMILIES[family]
    # Failures are the studio benchmark's subject; here every arm sees the same clean month.
    workload = workload.model_copy(
        update={"events": [e.model_copy(update={"fail_section": None}) for e in workload.events]}
    )
    base = base.model_copy(
        update={**models, "naive_model": naive_model, "batch_api": True, "bulk_poll_seconds": BATCH_POLL_SECONDS}
    )
    arms: dict[str, ArmResult] = {}
    with StubServer(
        api_key=STUB_KEY, latency_per_completion_token=latency_per_token, flex_slowdown=flex_slowdown
    ) as stub:
        # The studio benchmark's fair naive arm, every call standard.
        fair = await naive_arm.NaiveRun(stub, base.naive_model, naive_arm.STYLES["naive"]).run(workload)
        naive = ArmTotals(naive_arm.price(fair.calls, fair.model), fair.seconds)
        naive_total = naive.total()
        async with bench_stack(base) as endpoints:
            pool = await db.connect(endpoints.database_url)
            try:
                for arm in ("standard", "deadlines"):
                    settings = base.model_copy(update={"task_queue": f"bench-{tag}-{arm}", "schedules": False})
                    await fresh_arm(stub, pool)
                    log.info("arm %s ...", arm)
                    arms[arm] = await run_ours(
                        arm, workload, stub, settings, endpoints, pool, tag, refuse_share=refuse_share
                    )
            finally:
                await pool.close()
    standard, deadlines = arms["standard"], arms["deadlines"]
    naive_cost = float(naive_total.cost)
    return {
        "benchmark": "deadlines",
        "workload": {"name": workload.name, "seed": workload.seed, "clients": len(workload.clients)},
        "family": family,
        "models": models,
        "naive_model": naive_model,
        "batch_poll_seconds": BATCH_POLL_SECONDS,
        "stub": {"latency_per_token": latency_per_token, "flex_slowdown": flex_slowdown, "refuse_share": refuse_share},
        "deadlines": {k: (v.total_seconds() if v else None) for k, v in STUDIO_DEADLINES.items()},
        "naive": {
            "calls": naive_total.calls,
            "cost": naive_cost,
            "by_kind": {k: float(t.cost) for k, t in naive.kinds.items()},
        },
        "arms": {
            name: {
                "cost": float(a.total),
                "calls": a.calls,
                "by_tier": a.by_tier,
                "by_kind": a.by_kind,
                "seconds": round(a.seconds, 1),
                "batches": a.batches,
                "batch_lines": a.batch_lines,
                "finish_vs_deadline": _documents_report(a.documents),
            }
            for name, a in arms.items()
        },
        "deadlines_vs_standard": round(float(deadlines.total / standard.total), 4) if standard.total else None,
        "deadlines_vs_naive": round(float(deadlines.total) / naive_cost, 4) if naive_cost else None,
        "standard_vs_naive": round(float(standard.total) / naive_cost, 4) if naive_cost else None,
        "missed_deadlines": sum(1 for d in deadlines.documents if d.missed),
    }
