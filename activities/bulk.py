"""Bulk regeneration activities: the sections many clients need, sent as one OpenAI Batch API
batch (half the price, answered within 24 hours), then stored exactly as ``generate_section``
stores a full generation, so the plans that follow reuse them at no cost.

Every request of the batch is what ``generate_section`` would send for the section (same
prompt, schema, model, limit and prompt cache key); its ``custom_id`` is the section's
idempotency key. Lines that fail, are invalid or never come back go the direct way
(``generate_section``), decided by the workflow.
"""

from __future__ import annotations

import hashlib
import logging
from decimal import Decimal
from typing import Any

from openai.types.chat import ChatCompletion
from pydantic import ValidationError
from temporalio import activity

from activities.dependencies import PlanDependencies
from activities.durable import persist
from activities.errors import ErrorType, as_application_error, final
from activities.reuse_tiers import ReuseTiers
from activities.section_job import SectionJob, SectionJobs
from activities.writer import parse_answer
from contracts.models import (
    BatchSections,
    BatchState,
    BulkClient,
    BulkCollected,
    BulkMode,
    BulkPrepared,
    BulkRequest,
    DeadlineBatchRequest,
    SectionRequest,
    SectionResult,
)
from domain.catalogue.plan import resolve_sections
from domain.sections import DocumentKind, UnknownSection
from llm import batch_api
from llm.client import Completion
from llm.errors import InvalidModelOutput, LLMError
from storage import budgets, bulk, clients
from storage.clients import UnknownClient
from tokenopt import estimate
from tokenopt.estimate import CallEstimate

log = logging.getLogger(__name__)

# The batch's metadata key that finds it again after a crash between create and record.
REF_KEY = "wavelaunch_ref"
OPERATION = "batch_section"
# A batch's budget hold lives through the provider's 24-hour completion window, with a margin.
BATCH_HOLD_HOURS = 25.0


def _state(status: batch_api.BatchStatus) -> BatchState:
    return BatchState(
        batch_id=status.id,
        status=status.status,
        total=status.total,
        completed=status.completed,
        failed=status.failed,
        terminal=status.terminal,
        errors=status.errors,
    )


def _section_request(item: bulk.BulkItem) -> SectionRequest:
    return SectionRequest(
        client_id=item.client_id,
        client_version=item.client_version,
        section_key=item.section_key,
        document_sections=item.document_sections,
        document_kind=DocumentKind(item.document_kind),
        context_ref=item.context_ref,
    )


class BulkActivities:
    def __init__(self, deps: PlanDependencies):
        self.deps = deps
        # A line is exactly what generate_section would send, and is stored as it would store it.
        self.jobs = SectionJobs(deps)
        self.tiers = ReuseTiers(deps)

    @property
    def mode(self) -> BulkMode:
        """The Batch API where the endpoint has one; a local model (json_object mode) or
        WAVELAUNCH_BATCH_API=false makes direct calls."""
        local = self.deps.llm.structured_output == "json_object"
        return BulkMode.BATCH if self.deps.batch_api and not local else BulkMode.DIRECT

    # -- prepare -----------------------------------------------------------------------------
    @activity.defn
    async def prepare_bulk(self, request: BulkRequest) -> BulkPrepared:
        """Resolve the clients, leave out every section the stored or exact tier would serve,
        and store the rest as the request set; returns its reference and counts."""
        if request.document_kind is not DocumentKind.BUSINESS_PLAN:
            raise final(
                ErrorType.UNSUPPORTED_DOCUMENT_KIND,
                f"bulk regeneration writes business plans, not {request.document_kind}",
            )
        pool = self.deps.pool
        ids = sorted(set(request.client_ids)) if request.client_ids is not None else await clients.active_ids(pool)
        try:
            specs = resolve_sections(request.level)
            current = [await clients.get(pool, client_id) for client_id in ids]
        except UnknownClient as err:
            raise final(ErrorType.UNKNOWN_CLIENT, err) from None
        except UnknownSection as err:
            raise final(ErrorType.UNKNOWN_SECTION, err) from None
        keys = [s.key for s in specs]
        items: list[bulk.BulkItem] = []
        reused = 0
        for stored in current:
            activity.heartbeat()
            for spec in specs:
                section = SectionRequest(
                    client_id=stored.record.id,
                    client_version=stored.version,
                    section_key=spec.key,
                    document_sections=keys,
                )
                item = await self._item(section)
                if item is None:
                    reused += 1
                else:
                    items.append(item)
        return await self._create(
            request.document_kind,
            request.level.value,
            items,
            reused=reused,
            clients=[BulkClient(client_id=s.record.id, client_version=s.version) for s in current],
        )

    @activity.defn
    async def prepare_sections_batch(self, request: DeadlineBatchRequest) -> BulkPrepared:
        """A document's sections that can wait a day: leave out every one the stored, exact,
        semantic or patch tier would serve (and answers asked afresh, whose key is the
        document run's), and store the rest as a request set like a bulk's."""
        versions = sorted({s.client_version for s in request.sections})
        clients_ = [BulkClient(client_id=request.client_id, client_version=v) for v in versions]
        if self.mode == BulkMode.DIRECT:
            # No Batch API here: nothing to store, the document writes every section itself.
            return BulkPrepared(ref="", mode=BulkMode.DIRECT, clients=clients_, to_generate=0, reused=0)
        items: list[bulk.BulkItem] = []
        reused = 0
        for section in request.sections:
            activity.heartbeat()
            if section.fresh:
                continue
            job = await self.jobs.job(section)
            item = None if await self.tiers.patchable(job) else await self._item(section, job)
            if item is None:
                reused += 1
            else:
                items.append(item)
        return await self._create(request.document_kind, request.label, items, reused=reused, clients=clients_)

    async def _item(self, section: SectionRequest, job: SectionJob | None = None) -> bulk.BulkItem | None:
        """The batch line for ``section`` (exactly what ``generate_section`` would send), or None
        when the stored or exact tier would serve it."""
        job = job or await self.jobs.job(section)
        if await self.tiers.reusable(job):
            return None
        model, body = self.jobs.request_body(job)
        return bulk.BulkItem(
            custom_id=job.key,
            client_id=section.client_id,
            client_version=section.client_version,
            section_key=section.section_key,
            document_sections=section.document_sections,
            model=model,
            body=body,
            document_kind=section.document_kind.value,
            context_ref=section.context_ref,
        )

    async def _create(
        self, kind: DocumentKind, label: str, items: list[bulk.BulkItem], *, reused: int, clients: list[BulkClient]
    ) -> BulkPrepared:
        """Store ``items`` as the run's request set; its reference and counts."""
        info = activity.info()
        assert info.workflow_id is not None  # run by the bulk workflow, never standalone
        # One request set per workflow run: a retried prepare finds the same set, a new run of the
        # workflow (after a failure) prepares afresh.
        digest = hashlib.sha256(f"{info.workflow_id}|{info.workflow_run_id}".encode())
        for item in items:
            digest.update(item.custom_id.encode())
        ref = digest.hexdigest()[:32]
        await bulk.create(
            self.deps.pool,
            ref=ref,
            workflow_id=info.workflow_id,
            document_kind=kind.value,
            level=label,
            mode=self.mode,
            items=items,
        )
        return BulkPrepared(ref=ref, mode=self.mode, clients=clients, to_generate=len(items), reused=reused)

    # -- submit ------------------------------------------------------------------------------
    @activity.defn
    async def submit_batch(self, ref: str) -> BatchState:
        """Upload the request set as JSONL and create its batch; a retry returns the same batch
        (recorded in Postgres, or found by its metadata when the crash came before recording)."""
        llm = self.deps.llm
        try:
            async with bulk.locked(self.deps.pool, ref) as (conn, row):
                if row.batch_id is not None:
                    return _state(await batch_api.retrieve(llm, row.batch_id))
                status = await batch_api.find(llm, REF_KEY, ref)
                if status is None:
                    items = await bulk.items(conn, ref)
                    if not items:
                        raise final(ErrorType.EMPTY_BATCH, f"bulk request set {ref} has nothing to generate")
                    try:
                        data = batch_api.build_jsonl([batch_api.BatchLine(i.custom_id, i.body) for i in items])
                    except ValueError as err:
                        raise final(ErrorType.BATCH_TOO_LARGE, err) from None
                    await self._hold(conn, ref, items)
                    file_id = await batch_api.upload(llm, data, f"wavelaunch-{ref}.jsonl")
                    status = await batch_api.create(llm, file_id, {REF_KEY: ref, "workflow_id": row.workflow_id})
                    log.info("batch %s submitted: %d requests", status.id, len(items))
                await bulk.set_batch(
                    conn, ref, batch_id=status.id, input_file_id=status.input_file_id, status=status.status
                )
                return _state(status)
        except LLMError as err:
            raise as_application_error(err) from None

    # -- poll --------------------------------------------------------------------------------
    @activity.defn
    async def poll_batch(self, ref: str) -> BatchState:
        """One look at the batch (the workflow waits between looks with a durable timer)."""
        return await self._batch_call(ref, batch_api.retrieve)

    @activity.defn
    async def cancel_batch(self, ref: str) -> BatchState:
        """Cancel the set's batch (the bulk workflow was cancelled); answers already written
        are still billed by the provider, the rest is not."""
        return await self._batch_call(ref, batch_api.cancel)

    async def _batch_call(self, ref: str, call: Any) -> BatchState:
        """``call(llm, batch_id)`` on the set's batch; its status recorded, its state returned."""
        row = await bulk.get(self.deps.pool, ref)
        if row.batch_id is None:
            raise final(ErrorType.EMPTY_BATCH, f"bulk request set {ref} has no batch yet")
        try:
            status = await call(self.deps.llm, row.batch_id)
        except LLMError as err:
            raise as_application_error(err) from None
        await bulk.set_status(
            self.deps.pool,
            ref,
            status=status.status,
            output_file_id=status.output_file_id,
            error_file_id=status.error_file_id,
        )
        return _state(status)

    # -- collect -----------------------------------------------------------------------------
    @activity.defn
    async def collect_batch(self, ref: str) -> BulkCollected:
        """Read the finished batch: validate each answer with its section's output model, store
        the valid ones as a full generation would, one usage row per answered line at the batch
        price. Lines that failed, are invalid or never came back stay for the direct way."""
        return (await self._collect(ref)).collected

    @activity.defn
    async def collect_batch_sections(self, ref: str) -> BatchSections:
        """``collect_batch`` for a document's batch: also each stored section's figures, for the
        document to assemble from (what a retried collect finished earlier is reported too)."""
        return await self._collect(ref)

    async def _collect(self, ref: str) -> BatchSections:
        pool, llm = self.deps.pool, self.deps.llm
        row = await bulk.get(pool, ref)
        answers: dict[str, batch_api.BatchResult] = {}
        try:
            for file_id in (row.output_file_id, row.error_file_id):
                if file_id:
                    answers.update(
                        (r.custom_id, r) for r in batch_api.parse_results(await batch_api.content(llm, file_id))
                    )
        except LLMError as err:
            raise as_application_error(err) from None
        totals = BulkCollected()
        results: list[SectionResult] = []

        async def mark(custom_id: str, **values: Any) -> None:
            await persist(lambda: bulk.mark(pool, ref, custom_id, **values), f"bulk item {custom_id[:12]}")

        # Items are marked after their row and section are written: a retried collect skips what
        # an earlier attempt finished. The provider's output file keeps every answer, so a retry
        # reads it again instead of buying anything, and a line's usage row has an id of its own
        # (the batch and the line): written twice, it is written once.
        for item in await bulk.items(pool, ref, states=("pending",)):
            activity.heartbeat()
            job = await self.jobs.job(_section_request(item))
            call_id = f"batch:{row.batch_id}:{item.custom_id}"
            answer = answers.get(item.custom_id)
            if answer is None:
                # Never answered (an expired, cancelled or failed batch): nothing was billed.
                await mark(item.custom_id, state="failed", error=f"no answer (batch {row.batch_status})")
                totals.failed += 1
                continue
            if not answer.ok or answer.body is None:
                failed = Completion("", item.model, None, 0, 0, 0, 0)
                error = answer.error or f"HTTP {answer.status_code}"
                await job.ledger.call(
                    OPERATION,
                    item.model,
                    failed,
                    success=False,
                    tier=job.tier,
                    error=error,
                    batch=True,
                    call_id=call_id,
                )
                await mark(item.custom_id, state="failed", error=error)
                totals.failed += 1
                continue
            try:
                completion = llm.completion(ChatCompletion.model_validate(answer.body), item.model, 0)
            except ValidationError as err:
                await mark(item.custom_id, state="failed", error=f"unreadable answer: {err}")
                totals.failed += 1
                continue
            totals.prompt_tokens += completion.prompt_tokens
            totals.cached_tokens += completion.cached_tokens
            totals.completion_tokens += completion.completion_tokens
            try:
                content = parse_answer(job.spec, completion)
            except InvalidModelOutput as err:
                totals.cost += await job.ledger.call(
                    OPERATION,
                    item.model,
                    completion,
                    success=False,
                    tier=job.tier,
                    cache_key=job.key,
                    error=f"invalid output: {err}",
                    batch=True,
                    call_id=call_id,
                )
                await mark(item.custom_id, state="failed", error=f"invalid output: {err}")
                totals.failed += 1
                continue
            cost = await job.ledger.call(
                OPERATION,
                item.model,
                completion,
                success=True,
                tier=job.tier,
                cache_key=job.key,
                steps=list(job.prompt.compression_steps),
                batch=True,
                call_id=call_id,
            )
            section_id = await self.tiers.keep(job, content, item.model, completion.completion_tokens, cost)
            await mark(item.custom_id, state="stored", section_id=section_id)
            baseline_cost = job.ledger.baseline.cost(completion.completion_tokens)
            totals.cost += cost
            totals.baseline_cost += baseline_cost
            totals.stored += 1
            results.append(
                SectionResult(
                    section_key=item.section_key,
                    section_id=section_id,
                    model=item.model,
                    tier=job.tier,
                    prompt_tokens=completion.prompt_tokens,
                    cached_tokens=completion.cached_tokens,
                    completion_tokens=completion.completion_tokens,
                    cost=cost,
                    baseline_tokens=job.ledger.baseline.prompt_tokens + completion.completion_tokens,
                    baseline_cost=baseline_cost,
                    llm_calls=1,
                    compression_steps=list(job.prompt.compression_steps),
                )
            )
        # Lines a retried collect finished earlier: their sections, without their figures (the
        # ledger has them once).
        for item in await bulk.items(pool, ref, states=("stored",)):
            if item.section_id is not None and item.section_key not in {r.section_key for r in results}:
                results.append(
                    SectionResult(section_key=item.section_key, section_id=item.section_id, model=item.model, tier=None)
                )
        await persist(lambda: self._settle(ref), "batch settlement")
        await persist(lambda: bulk.mark_collected(pool, ref), "batch collected")
        return BatchSections(collected=totals, sections=results)

    # -- budgets -----------------------------------------------------------------------------
    async def _hold(self, conn: Any, ref: str, items: list[bulk.BulkItem]) -> None:
        """Hold the batch's estimate against each client's budgets (and the global ones) until it
        is collected; a refusal submits nothing and fails the bulk with the budget error. A retry
        after a crash finds the holds already made."""
        if await budgets.holds(conn, ref):
            return
        per_client: dict[str, CallEstimate] = {}
        for item in items:
            line = estimate.estimate_body(item.body, free_models=self.deps.free_models, batch=True)
            held = per_client.get(item.client_id, CallEstimate(0, Decimal(0)))
            per_client[item.client_id] = CallEstimate(held.tokens + line.tokens, held.cost + line.cost)
        reserved = await self.deps.guard.hold_batch(per_client, hold_hours=BATCH_HOLD_HOURS)
        await budgets.record_holds(conn, ref, reserved)

    async def _settle(self, ref: str) -> None:
        """Settle the batch's holds with what its lines billed, client by client (from the ledger)."""
        held = await budgets.holds(self.deps.pool, ref)
        if not held:
            return
        rows = await self.deps.pool.fetch(
            """SELECT i.client_id, coalesce(sum(u.prompt_tokens + u.completion_tokens), 0) AS tokens,
                      coalesce(sum(u.estimated_cost), 0) AS cost
               FROM bulk_items i
               JOIN bulk_requests b ON b.ref = i.ref
               JOIN usage_ledger u ON u.operation = $2 AND u.client_id = i.client_id
                    AND u.cache_key = i.custom_id AND u.created_at >= b.created_at
               WHERE i.ref = $1 GROUP BY i.client_id""",
            ref,
            OPERATION,
        )
        billed = {r["client_id"]: (int(r["tokens"]), Decimal(r["cost"])) for r in rows}
        await self.deps.guard.settle_batch(held, billed)

    # -- the direct way ----------------------------------------------------------------------
    @activity.defn
    async def bulk_fallback(self, ref: str) -> list[SectionRequest]:
        """The sections of the set not stored from the batch (all of them in direct mode), as
        requests for the normal ``generate_section`` activity."""
        return [_section_request(i) for i in await bulk.items(self.deps.pool, ref, states=("pending", "failed"))]
