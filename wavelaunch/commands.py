"""What each CLI command does, as plain async functions (the CLI only parses and prints)."""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import asyncpg
from rich.live import Live
from rich.table import Table
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError
from temporalio.worker import Replayer

import stack
import worker
from contracts.models import (
    BulkProgress,
    BulkRequest,
    BulkResult,
    DeliverableProgress,
    DeliverableRequest,
    DeliverableResult,
    PlanProgress,
    PlanRequest,
    PlanResult,
    SummaryProgress,
    SummaryRequest,
    SummaryResult,
)
from domain.budgets import Alert, BudgetScope, BudgetSpec, BudgetUse, Period
from domain.catalogue import deliverables
from domain.catalogue.summaries import CLIENT_SUMMARY, THREAD_SUMMARY
from domain.client import KNOWN_FIELDS, ClientRecord, InvalidClientRecord, parse_client
from domain.limits import CLIENT_ID_PATTERN, MAX_PROBLEMS, InputRefused, quote
from domain.outputs.schemas import in_schema_order
from domain.render import render_document
from domain.reviews import ReviewInput, ReviewSource, ReviewState
from domain.sections import DocumentKind, Level
from domain.summaries import InvalidMessages, ThreadInput, parse_threads
from service import edits, erasure, exports, reviews, schedules, starts, threads
from service.intake import accept_client
from service.settings import Settings
from service.wiring import (
    LLMConfig,
    Workers,
    close_dependencies,
    connect_temporal,
    crm_notify_config,
    ensure_search_attributes,
    plan_dependencies,
    until_signal,
)
from storage import alerts, budgets, cache, clients, db, documents, messages, summaries, usage
from storage.messages import UnknownThread
from tokenopt.reads import month_sections_reading, plan_sections_reading
from tokenopt.service_tiers import Urgency, deadline_from
from tokenopt.techniques import Techniques
from wavelaunch.console import console, money, progress_table, usage_table
from wavelaunch.input_files import read_json_file
from workflows import kinds
from workflows.bulk import BulkRegenerationWorkflow
from workflows.business_plan import BusinessPlanWorkflow
from workflows.deliverable import DeliverableWorkflow
from workflows.summary import SummaryWorkflow

log = logging.getLogger(__name__)


# -- the stack -----------------------------------------------------------------------------
def _endpoint_table(endpoints: stack.StackEndpoints) -> Table:
    table = Table(title="Stack", title_justify="left", show_header=False)
    table.add_row("Temporal", endpoints.temporal_address)
    table.add_row("Web UI", endpoints.web_ui_url or "(external Temporal: use its own UI)")
    table.add_row("Postgres", stack.manager.redact(endpoints.database_url))
    if endpoints.llm:
        table.add_row("LLM", f"{endpoints.llm.kind}: {endpoints.llm.base_url or 'api.openai.com'}")
    return table


async def stack_up(settings: Settings, *, detach: bool, with_llm: bool, api: bool = False) -> None:
    """Bring the stack up; ``api``: also serve the web app (webhooks, REST API, metrics,
    dashboard) in this process until Ctrl-C (foreground only)."""
    if api:
        check_api_settings(settings, settings.api_host)  # refuse before starting anything
    if detach:
        endpoints = await stack.up(settings, with_llm=with_llm)
        console.print(_endpoint_table(endpoints))
        console.print("Running in the background; `wavelaunch stack down` stops it.")
        return
    async with stack.running_stack(settings, with_llm=with_llm) as endpoints:
        console.print(_endpoint_table(endpoints))
        console.print("Press Ctrl-C to stop.")
        if api:
            await serve_api(settings, host=settings.api_host, port=settings.api_port)
        else:
            await until_signal()


async def stack_down(settings: Settings) -> None:
    stopped = await stack.down(settings)
    console.print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


def stack_status(settings: Settings) -> None:
    table = Table("part", "state", "address", "pid", "log")
    for row in stack.status(settings):
        table.add_row(row.part, row.state, row.address or "", str(row.pid or ""), str(row.log or ""))
    console.print(table)


# -- connections ---------------------------------------------------------------------------
@contextlib.asynccontextmanager
async def _database(settings: Settings, *, max_size: int = 4) -> AsyncIterator[asyncpg.Pool]:
    """A migrated pool on DATABASE_URL or on the embedded Postgres (started if needed)."""
    endpoints = await stack.up(settings, with_llm=False)
    pool = await db.connect(endpoints.database_url, max_size=max_size)
    try:
        yield pool
    finally:
        await pool.close()


async def _temporal(settings: Settings) -> Client:
    endpoints = await stack.up(settings, with_llm=False)
    return await connect_temporal(settings, endpoints.temporal_address)


# -- the worker ----------------------------------------------------------------------------
async def run_worker(settings: Settings) -> None:
    """The worker of worker.py, saying where it listens."""

    def ready(workers: Workers) -> None:
        queues = " and ".join(repr(q) for q in workers.task_queues)
        console.print(f"worker on task queues {queues}; Ctrl-C to stop")
        if settings.worker_metrics_port:
            console.print(
                f"worker metrics on http://{settings.worker_metrics_host}:{settings.worker_metrics_port}/metrics"
            )

    await worker.run(settings, ready=ready)


# -- clients -------------------------------------------------------------------------------
def load_records(file: Path) -> list[ClientRecord]:
    """Validate every record in the file; refuse the whole file if any record is invalid."""
    data = read_json_file(file)
    items = data if isinstance(data, list) else [data]
    records, problems = [], []
    for index, item in enumerate(items):
        try:
            records.append(parse_client(item))
        except InvalidClientRecord as err:
            label = item.get("id") if isinstance(item, dict) else None
            label = label if isinstance(label, str) and re.match(CLIENT_ID_PATTERN, label) else f"#{index + 1}"
            problems += [f"record {label}: {p}" for p in err.problems]
    if problems:
        raise InvalidClientRecord(problems[:MAX_PROBLEMS])
    return records


async def import_clients(settings: Settings, file: Path) -> list[tuple[str, int, bool]]:
    records = load_records(file)
    async with _database(settings) as pool:
        results = []
        for record in records:
            stored, changed = await accept_client(pool, record)
            results.append((record.id, stored.version, changed))
            state = f"stored as version {stored.version}" if changed else f"unchanged (version {stored.version})"
            console.print(f"client {record.id}: {state}")
    return results


async def erase_client(settings: Settings, client_id: str, *, legal_hold: bool) -> erasure.Erasure:
    """End the client's workflows and erase its data (documents kept under legal hold)."""
    async with _database(settings) as pool:
        return await erasure.erase_client(pool, await _temporal(settings), client_id, legal_hold=legal_hold)


async def erase_archived(settings: Settings, days: float | None) -> list[erasure.Erasure]:
    """Erase every client archived more than ``days`` (default: the retention setting) ago."""
    days = settings.erase_archived_after_days if days is None else days
    if days is None:
        raise InputRefused(["give --days, or set WAVELAUNCH_ERASE_ARCHIVED_AFTER_DAYS"])
    async with _database(settings) as pool:
        return await erasure.erase_archived(
            pool, await _temporal(settings), days=days, legal_hold=settings.legal_hold_documents
        )


# -- plans ---------------------------------------------------------------------------------
def deadline(by: str | None, urgency: Urgency | None) -> datetime | None:
    """The deadline a person gave (``--by`` or ``--urgency``), from now; None: standard.
    Raises BadDeadline."""
    return deadline_from(datetime.now(UTC), by=by, urgency=urgency)


async def start_plan(
    settings: Settings, client_id: str, level: Level, only: list[str] | None, *, deadline: datetime | None = None
) -> WorkflowHandle[BusinessPlanWorkflow, PlanResult]:
    request = PlanRequest(client_id=client_id, level=level, sections=only, deadline=deadline)
    async with _database(settings) as pool:
        await starts.check_request(pool, request)
        current = await clients.get(pool, client_id)
    client = await _temporal(settings)
    return await starts.start(client, settings, request, announce_version=current.version)


class UnknownFields(ValueError):
    pass


def check_fields(fields: list[str] | None) -> None:
    """Refuse field names the CRM does not have, naming the ones it does."""
    unknown = sorted(set(fields or []) - KNOWN_FIELDS)
    if unknown:
        raise UnknownFields(
            f"unknown field(s) {', '.join(map(quote, unknown[:5]))}; CRM fields are: {', '.join(sorted(KNOWN_FIELDS))}"
        )


async def regenerate_plan(
    settings: Settings, client_id: str, fields: list[str] | None, level: Level | None
) -> WorkflowHandle[BusinessPlanWorkflow, PlanResult]:
    """A new version of the client's plan: sections whose inputs changed are written again, the
    others carried over; ``fields`` also forces a fresh answer for every section reading them."""
    check_fields(fields)
    async with _database(settings) as pool:
        current = await clients.get(pool, client_id)
        latest = await documents.latest(pool, client_id, DocumentKind.BUSINESS_PLAN.value)
    chosen = level or (Level(latest.level) if latest and latest.level else Level.COMPLETE)
    techniques = Techniques.without(settings.disabled_techniques)
    forced = [s.key for s in plan_sections_reading(fields, techniques)] if fields else []
    request = PlanRequest(client_id=client_id, level=chosen, regenerate=forced)
    client = await _temporal(settings)
    return await starts.start(client, settings, request, announce_version=current.version)


async def watch_plan(
    handle: WorkflowHandle[BusinessPlanWorkflow, PlanResult], on_progress: Callable[[PlanProgress], None]
) -> PlanResult:
    return await starts.watch(handle, on_progress, query=kinds.PLAN.progress)


async def show_document(settings: Settings, client_id: str, kind: DocumentKind, fmt: str) -> str | bytes:
    """The client's latest ``kind`` document as Markdown, JSON (text) or Word (``docx``, bytes)."""
    async with _database(settings) as pool:
        await clients.get(pool, client_id)
        doc = await documents.latest(pool, client_id, kind.value)
        if doc is None:
            raise FileNotFoundError(
                f"no {kind.value.replace('_', ' ')} for client {client_id!r} yet; "
                f"run `wavelaunch plan generate {client_id}`"
            )
        if fmt == "json":
            return json.dumps(await documents.as_json(pool, doc), indent=2)
        if fmt == "docx":
            return await exports.docx(pool, [doc])
        return _with_review(doc)


def _with_review(doc: documents.StoredDocument) -> str:
    """The stored Markdown under its review line (title first)."""
    title, _, rest = doc.markdown.partition("\n")
    return f"{title}\n\n{reviews.review_line(doc)}{rest.lstrip()}"


async def review_document(
    settings: Settings,
    client_id: str,
    state: ReviewState,
    *,
    month: int | None,
    document_key: str | None,
    version: int | None,
    by: str | None,
    note: str | None,
) -> documents.StoredDocument:
    """Approve a document version or ask for changes (the newest version by default); an unknown
    document or a superseded version is refused with nothing changed."""
    given = ReviewInput.checked(by, note)
    reviews.document_name(month, document_key)  # a bad name is refused before the stack starts
    async with _database(settings) as pool:
        doc = await reviews.find(pool, client_id, month=month, document_key=document_key, version=version)
        return await reviews.review(pool, doc, state, by=given.by, note=given.note, source=ReviewSource.CLI)


async def usage_report(settings: Settings, *, client_id: str | None = None) -> dict[str, Any]:
    async with _database(settings) as pool:
        return await usage.report(pool, client_id=client_id)


async def edit_section(
    settings: Settings,
    client_id: str,
    section_key: str,
    file: Path,
    *,
    month: int | None,
    document_key: str | None,
    by: str | None,
) -> documents.StoredDocument:
    """Replace a section of the newest version of a document with the file's content (checked
    against the section's schema), in a new version; the section is locked."""
    given = ReviewInput.checked(by, None)
    content = read_json_file(file)
    reviews.document_name(month, document_key)
    async with _database(settings) as pool:
        doc = await reviews.find(pool, client_id, month=month, document_key=document_key)
        return await edits.edit_section(pool, doc, section_key, content, by=given.by, crm=crm_notify_config(settings))


async def list_proposals(settings: Settings, client_id: str) -> list[edits.ProposalView]:
    async with _database(settings) as pool:
        await clients.get(pool, client_id)
        return await edits.proposals(pool, client_id)


async def decide_proposal(
    settings: Settings, proposal_id: int, *, accept: bool, by: str | None
) -> documents.StoredDocument | None:
    given = ReviewInput.checked(by, None)
    async with _database(settings) as pool:
        return await edits.decide(pool, proposal_id, accept=accept, by=given.by, crm=crm_notify_config(settings))


# -- deliverables --------------------------------------------------------------------------
class InvalidMonth(ValueError):
    pass


def check_month(month: int) -> None:
    try:
        starts.check_month(month)
    except ValueError as err:
        raise InvalidMonth(str(err)) from None


async def start_deliverable(
    settings: Settings, client_id: str, month: int, *, deadline: datetime | None = None
) -> WorkflowHandle[DeliverableWorkflow, DeliverableResult]:
    """Start (or join) month ``month``'s deliverable; a bad month is refused before anything
    starts (no stack, no workflow), an unknown client before any workflow starts."""
    check_month(month)
    request = DeliverableRequest(client_id=client_id, month=month, deadline=deadline)
    async with _database(settings) as pool:
        await starts.check_deliverable(pool, request)
    client = await _temporal(settings)
    return await starts.start(client, settings, request)


async def regenerate_deliverable(
    settings: Settings, client_id: str, month: int, fields: list[str] | None
) -> WorkflowHandle[DeliverableWorkflow, DeliverableResult]:
    """A new version of month ``month``'s documents on the client's current snapshot: sections
    whose inputs changed are written again, the others carried over; ``fields`` also forces a
    fresh answer for every section of the month reading them."""
    check_month(month)
    check_fields(fields)
    techniques = Techniques.without(settings.disabled_techniques)
    forced = [s.key for s in month_sections_reading(month, fields, techniques)] if fields else []
    request = DeliverableRequest(client_id=client_id, month=month, regenerate=forced)
    async with _database(settings) as pool:
        await starts.check_deliverable(pool, request)
        current = await clients.get(pool, client_id)
    client = await _temporal(settings)
    return await starts.start(client, settings, request, announce_version=current.version)


async def watch_deliverable(
    handle: WorkflowHandle[DeliverableWorkflow, DeliverableResult],
    on_progress: Callable[[DeliverableProgress], None],
) -> DeliverableResult:
    return await starts.watch(handle, on_progress, query=kinds.DELIVERABLE.progress)


UnknownDocument = reviews.UnknownDocument


async def show_deliverable(
    settings: Settings, client_id: str, month: int, document_key: str | None, fmt: str
) -> str | bytes:
    """The latest version of month ``month``'s documents (or of one, ``document_key``)."""
    check_month(month)
    keys = [d.key for d in deliverables.documents(month)]
    if document_key is not None and document_key not in keys:
        raise UnknownDocument(
            f"month {month} has no document {quote(document_key)}; its documents are: {', '.join(keys)}"
        )
    async with _database(settings) as pool:
        await clients.get(pool, client_id)
        found = []
        for key in [document_key] if document_key else keys:
            doc = await documents.latest(pool, client_id, DocumentKind.DELIVERABLE.value, document_key=key)
            if doc is not None:
                found.append(doc)
        if not found:
            raise FileNotFoundError(
                f"no month {month} deliverable for client {client_id!r} yet; "
                f"run `wavelaunch deliverable generate {client_id} --month {month}`"
            )
        if fmt == "json":
            return json.dumps([await documents.as_json(pool, doc) for doc in found], indent=2)
        if fmt == "docx":
            return await exports.docx(pool, found)
        return "\n".join(_with_review(doc) for doc in found)


# -- summaries -----------------------------------------------------------------------------
def sample_messages_file() -> Path:
    return Path(str(resources.files("wavelaunch") / "samples" / "messages.json"))


def load_threads(file: Path) -> list[ThreadInput]:
    """Validate a messages file (a JSON list of threads with their messages); refuse it whole if
    any part is invalid (InvalidMessages, whatever is wrong with it)."""
    try:
        data = read_json_file(file)
    except InputRefused as err:
        raise InvalidMessages(err.problems) from None
    return parse_threads(data)


async def start_summary(
    settings: Settings,
    client_id: str,
    thread_ids: list[str] | None,
    messages_file: Path | None,
    include_client_summary: bool,
    *,
    deadline: datetime | None = None,
) -> WorkflowHandle[SummaryWorkflow, SummaryResult]:
    """Append the file's messages (if any), then start (or join) ``summary-<clientId>``. A bad
    file, an unknown client or an unknown thread is refused before anything is stored."""
    loaded = load_threads(messages_file) if messages_file else []
    request = SummaryRequest(
        client_id=client_id,
        thread_ids=thread_ids or None,
        include_client_summary=include_client_summary,
        deadline=deadline,
    )
    async with _database(settings) as pool:
        await clients.get(pool, client_id)
        if request.thread_ids:
            # The file's threads count as known: they are stored before the run.
            known = list(dict.fromkeys([*await messages.thread_ids(pool, client_id), *(t.thread_id for t in loaded)]))
            missing = [t for t in request.thread_ids if t not in known]
            if missing:
                raise UnknownThread(client_id, missing, known)
        for appended in await threads.append_threads(pool, client_id, loaded):
            console.print(
                f"thread {appended.thread_id}: {appended.added} new message(s), {appended.skipped} already stored"
            )
        await starts.check_summary(pool, request)
    client = await _temporal(settings)
    return await starts.start(client, settings, request)


async def watch_summary(
    handle: WorkflowHandle[SummaryWorkflow, SummaryResult], on_progress: Callable[[SummaryProgress], None]
) -> SummaryResult:
    return await starts.watch(handle, on_progress, query=kinds.SUMMARY.progress)


async def show_summary(settings: Settings, client_id: str, thread_id: str | None, fmt: str) -> str:
    """The latest client summary and thread summaries (or one thread's) as Markdown or JSON."""
    async with _database(settings) as pool:
        stored = await clients.get(pool, client_id)
        if thread_id is not None:
            await messages.resolve_threads(pool, client_id, [thread_id])
        threads = await summaries.latest_threads(pool, client_id, THREAD_SUMMARY.schema_version)
        order = {t: i for i, t in enumerate(await messages.thread_ids(pool, client_id))}
        threads = sorted(
            (t for t in threads if thread_id is None or t.thread_id == thread_id), key=lambda t: order[t.thread_id]
        )
        latest_client = await summaries.latest_client(pool, client_id) if thread_id is None else None
    if not threads and latest_client is None:
        raise FileNotFoundError(
            f"no summaries for client {client_id!r}{f' thread {thread_id!r}' if thread_id else ''} yet; "
            f"run `wavelaunch summary generate {client_id}`"
        )
    if fmt == "json":
        out: dict[str, Any] = {"client_id": client_id, "client_summary": None, "threads": []}
        if latest_client is not None:
            out["client_summary"] = {
                "version": latest_client.version,
                "client_version": latest_client.client_version,
                "model": latest_client.model,
                "created_at": latest_client.created_at.isoformat(),
                "thread_summary_ids": latest_client.thread_summary_ids,
                "content": in_schema_order(CLIENT_SUMMARY.key, latest_client.content),
            }
        out["threads"] = [
            {
                "thread_id": t.thread_id,
                "version": t.version,
                "from_seq": t.from_seq,
                "through_seq": t.through_seq,
                "model": t.model,
                "created_at": t.created_at.isoformat(),
                "content": in_schema_order(THREAD_SUMMARY.key, t.content),
            }
            for t in threads
        ]
        return json.dumps(out, indent=2)
    parts = []
    if latest_client is not None:
        parts.append(
            (f"Client summary (v{latest_client.version})", in_schema_order(CLIENT_SUMMARY.key, latest_client.content))
        )
    for t in threads:
        title = f"Thread {t.thread_id} (v{t.version}, messages 1–{t.through_seq})"
        parts.append((title, in_schema_order(THREAD_SUMMARY.key, t.content)))
    brand = stored.record.brand_name or stored.record.full_name
    return render_document(f"Summaries: {brand}", parts)


# -- bulk regeneration --------------------------------------------------------------------
async def start_bulk(
    settings: Settings,
    client_ids: list[str] | None,
    level: Level,
    *,
    poll_seconds: int | None = None,
    workflow_id: str | None = None,
) -> WorkflowHandle[BulkRegenerationWorkflow, BulkResult]:
    """Start (or join) a bulk regeneration of ``client_ids`` (None: every ACTIVE client);
    unknown clients are refused, all of them named, before anything starts."""
    request = BulkRequest(client_ids=client_ids, level=level, poll_seconds=poll_seconds or settings.bulk_poll_seconds)
    async with _database(settings) as pool:
        await starts.check_bulk(pool, request)
    client = await _temporal(settings)
    return await starts.start(client, settings, request, workflow_id=workflow_id)


async def watch_bulk(
    handle: WorkflowHandle[BulkRegenerationWorkflow, BulkResult], on_progress: Callable[[BulkProgress], None]
) -> BulkResult:
    return await starts.watch(handle, on_progress, every=1.0, query=kinds.BULK.progress)


class UnknownWorkflow(LookupError):
    pass


async def bulk_status(settings: Settings, workflow_id: str) -> tuple[str, BulkProgress | None]:
    """The workflow's Temporal status and its last progress (None when no worker answers)."""
    client = await _temporal(settings)
    handle = client.get_workflow_handle_for(BulkRegenerationWorkflow.run, workflow_id)
    try:
        described = await handle.describe()
    except RPCError as err:
        raise UnknownWorkflow(f"no workflow {workflow_id!r}: {err.message}") from None
    if described.workflow_type != kinds.BULK.workflow_type:
        raise UnknownWorkflow(f"{workflow_id} is a {described.workflow_type}, not a bulk regeneration")
    try:
        progress = await handle.query(kinds.BULK.progress)
    except RPCError:
        progress = None
    status = described.status.name.lower() if described.status else "unknown"
    return status, progress


# -- the CRM intake ------------------------------------------------------------------------
class MissingWebhookSecret(ValueError):
    pass


def check_api_settings(settings: Settings, host: str) -> None:
    """What the web app needs before it starts: the webhook secret, and a token off loopback."""
    from crm.auth import check_bind

    if settings.webhook_secret is None or not settings.webhook_secret.get_secret_value():
        raise MissingWebhookSecret("set WAVELAUNCH_WEBHOOK_SECRET to the CRM's webhook secret")
    check_bind(settings.api_token, host)


async def serve_api(settings: Settings, *, host: str, port: int) -> None:
    """The service's web app until Ctrl-C: the CRM webhook, the REST API (/api/v1), /metrics and
    the dashboard. Refuses to listen beyond 127.0.0.1 without WAVELAUNCH_API_TOKEN."""
    import uvicorn

    from crm.app import create_app
    from crm.auth import token_value
    from crm.intake import Intake

    check_api_settings(settings, host)
    assert settings.webhook_secret is not None  # checked before anything starts
    # Concurrent webhooks each hold a connection briefly; the outbox's sender holds one more.
    async with _database(settings, max_size=10) as pool:
        intake = Intake(pool, await _temporal(settings), settings)
        app = create_app(
            intake,
            secret=settings.webhook_secret.get_secret_value(),
            max_age_seconds=settings.webhook_max_age_seconds,
            api_token=token_value(settings.api_token),
        )
        base = f"http://{host}:{port}"
        console.print(f"CRM webhooks on {base}/webhooks/crm")
        console.print(f"REST API on {base}/api/v1 (docs: {base}/api/v1/docs), metrics on {base}/metrics")
        token_hint = "?token=<WAVELAUNCH_API_TOKEN>" if settings.api_token else ""
        console.print(f"dashboard on {base}/dashboard{token_hint}")
        # No access log: the dashboard's first request may carry the API token in its query string.
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
        await uvicorn.Server(config).serve()


# -- retry and replay ----------------------------------------------------------------------
async def retry_workflow(settings: Settings, workflow_id: str) -> WorkflowHandle[Any, Any]:
    """A new run of a failed document workflow with the same request: finished sections are
    reused (the stored tier), so only the rest is generated and paid for."""
    return await starts.retry(await _temporal(settings), settings, workflow_id)


async def replay(settings: Settings, workflow_id: str) -> str | None:
    """Replay a live history against the current code; the failure, or None when it replays."""
    client = await _temporal(settings)
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    replayer = Replayer(workflows=kinds.WORKFLOWS, data_converter=client.data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    return None if result.replay_failure is None else str(result.replay_failure)


# -- the cache -----------------------------------------------------------------------------
async def cache_stats(settings: Settings) -> dict[str, Any]:
    async with _database(settings) as pool:
        return await cache.stats(pool)


async def cache_purge(
    settings: Settings, *, client_id: str | None, kind: DocumentKind | None, expired_only: bool
) -> int:
    async with _database(settings) as pool:
        return await cache.purge(
            pool, client_id=client_id, kind=kind.value if kind else None, expired_only=expired_only
        )


# -- budgets and alerts -------------------------------------------------------------------
async def budget_set(settings: Settings, spec: BudgetSpec) -> BudgetUse:
    """Create or change a budget; bad input is refused before anything starts."""
    spec = spec.check()
    async with _database(settings) as pool:
        return await budgets.set_budget(pool, spec)


async def budget_list(settings: Settings) -> list[BudgetUse]:
    async with _database(settings) as pool:
        await budgets.expire_stale(pool, settings.budget_reservation_ttl_seconds)
        return await budgets.usage(pool)


async def budget_remove(settings: Settings, scope: BudgetScope, client_id: str | None, period: Period | None) -> int:
    async with _database(settings) as pool:
        return await budgets.remove(pool, scope, client_id, period)


async def budget_pause(
    settings: Settings, scope: BudgetScope, client_id: str | None, period: Period | None
) -> list[BudgetUse]:
    """Pause budgets until resumed: calls they cover are refused (workflows wait or fail)."""
    async with _database(settings) as pool:
        return await budgets.set_paused(pool, scope, client_id, period, paused=True)


async def budget_resume(
    settings: Settings, scope: BudgetScope, client_id: str | None, period: Period | None
) -> tuple[list[BudgetUse], list[str]]:
    """Clear the pause, then signal every workflow waiting on a paused budget; the budgets and
    the workflow ids signalled."""
    async with _database(settings) as pool:
        resumed = await budgets.set_paused(pool, scope, client_id, period, paused=False)
    signalled = await starts.resume_paused(await _temporal(settings))
    return resumed, signalled


async def alerts_list(settings: Settings, limit: int) -> list[Alert]:
    async with _database(settings) as pool:
        return await alerts.recent(pool, limit)


# -- the demo ------------------------------------------------------------------------------
def sample_client_file() -> Path:
    return Path(str(resources.files("wavelaunch") / "samples" / "client.json"))


async def demo(
    settings: Settings, *, client_file: Path | None, level: Level, out: Path, keep_running: bool
) -> PlanResult:
    """The whole path once: stack, worker, client import, plan, Markdown, usage, stop."""
    began = time.monotonic()
    record = load_records(client_file or sample_client_file())[0]
    async with stack.running_stack(settings, with_llm=True, keep_running=keep_running) as endpoints:
        assert endpoints.llm is not None
        console.print(_endpoint_table(endpoints))
        client = await connect_temporal(settings, endpoints.temporal_address)
        await ensure_search_attributes(client, settings.temporal_namespace)
        deps = await plan_dependencies(settings, endpoints.database_url, LLMConfig.from_endpoint(endpoints.llm))
        try:
            stored, _ = await accept_client(deps.pool, record)
            console.print(f"client {record.id} imported (version {stored.version})")
            async with worker.build_worker(client, settings, deps):
                handle = await starts.start(client, settings, PlanRequest(client_id=record.id, level=level))
                web_ui = endpoints.web_ui_url or settings.web_ui_url()
                console.print(
                    f"workflow {handle.id}: {web_ui}/namespaces/{settings.temporal_namespace}/workflows/{handle.id}"
                )
                with Live(console=console, refresh_per_second=4) as live:
                    result = await starts.watch(handle, lambda p: live.update(progress_table(p)))
            doc = await documents.latest(deps.pool, record.id, DocumentKind.BUSINESS_PLAN.value)
            assert doc is not None
            out.mkdir(parents=True, exist_ok=True)
            path = out / f"{record.id}-business-plan-v{doc.version}.md"
            path.write_text(doc.markdown)
            # This run only: the workflow id is reused by every run of the client's plan.
            report = await usage.report(deps.pool, workflow_id=handle.id, run_id=handle.result_run_id)
            console.print(usage_table(report, "model"))
            totals = report["totals"]
            console.print(
                f"plan written to [bold]{path}[/] in {time.monotonic() - began:.1f} s; "
                f"{totals['total_tokens']:,} tokens, {money(totals['cost'])} "
                f"(the naive way: {totals['baseline_tokens']:,} tokens, {money(totals['baseline_cost'])})"
            )
            if endpoints.llm.kind == "local":
                console.print(
                    "[dim]The local model (Gemma 3 270M) shows the real path offline; its prose is "
                    "poor. Set OPENAI_API_KEY for real plans.[/]"
                )
            return result
        finally:
            await close_dependencies(deps)


# -- schedules -------------------------------------------------------------------------------
async def _schedule_targets(client: Client, ids: list[str] | None, client_id: str | None) -> list[str]:
    """The schedules a command acts on: the ids given, or every schedule of ``client_id``."""
    if bool(ids) == (client_id is not None):
        raise schedules.UnknownSchedule("name schedule ids or give --client, not both and not neither")
    if ids:
        return ids
    assert client_id is not None
    found = await schedules.client_schedule_ids(client, client_id)
    if not found:
        raise schedules.UnknownSchedule(f"client {client_id!r} has no schedules")
    return found


async def schedule_create(settings: Settings, client_id: str, onboarded: datetime | None) -> list[str]:
    """The client's schedules from its onboarding date (default: now), as `client.created` makes them."""
    async with _database(settings) as pool:
        await clients.get(pool, client_id)
    client = await _temporal(settings)
    return await schedules.ensure(client, settings, client_id, onboarded or datetime.now(UTC))


async def schedule_list(settings: Settings, client_id: str | None) -> list[schedules.ScheduleInfo]:
    client = await _temporal(settings)
    return [await schedules.describe(client, i) for i in await schedules.client_schedule_ids(client, client_id)]


async def schedule_show(settings: Settings, schedule_id: str) -> schedules.ScheduleInfo:
    return await schedules.describe(await _temporal(settings), schedule_id)


async def schedule_pause(settings: Settings, ids: list[str] | None, client_id: str | None) -> list[str]:
    client = await _temporal(settings)
    targets = await _schedule_targets(client, ids, client_id)
    for schedule_id in targets:
        await schedules.describe(client, schedule_id)  # an unknown id is refused by name
    return await schedules.pause(client, targets, "paused with `wavelaunch schedule pause`")


async def schedule_resume(settings: Settings, ids: list[str] | None, client_id: str | None) -> list[str]:
    client = await _temporal(settings)
    targets = await _schedule_targets(client, ids, client_id)
    return await schedules.resume(client, targets, "resumed with `wavelaunch schedule resume`")


async def schedule_trigger(settings: Settings, schedule_id: str) -> None:
    await schedules.trigger(await _temporal(settings), schedule_id)


async def schedule_remove(settings: Settings, ids: list[str] | None, client_id: str | None) -> list[str]:
    client = await _temporal(settings)
    return await schedules.remove(client, await _schedule_targets(client, ids, client_id))
