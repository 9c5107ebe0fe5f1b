"""What each CLI command does, as plain async functions (the CLI only parses and prints)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import time
from collections.abc import AsyncIterator, Callable
from importlib import resources
from pathlib import Path
from typing import Any

import asyncpg
from rich.live import Live
from rich.table import Table
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError
from temporalio.worker import Replayer

import stack
from domain import deliverables
from domain.client import KNOWN_FIELDS, ClientRecord, InvalidClientRecord, parse_client
from domain.sections import DocumentKind, Level, sections_using
from storage import cache, clients, db, documents, usage
from wavelaunch import plans
from wavelaunch.console import console, money, progress_table, usage_table
from wavelaunch.intake import accept_client
from wavelaunch.runtime import (
    LLMConfig,
    build_worker,
    close_dependencies,
    connect_temporal,
    ensure_search_attributes,
    plan_dependencies,
    worker_runtime,
)
from wavelaunch.settings import Settings
from workflows.business_plan import BusinessPlanWorkflow
from workflows.deliverable import DeliverableWorkflow
from workflows.models import (
    DeliverableProgress,
    DeliverableRequest,
    DeliverableResult,
    PlanProgress,
    PlanRequest,
    PlanResult,
)

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
            await _until_signal()


async def stack_down(settings: Settings) -> None:
    stopped = await stack.down(settings)
    console.print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


def stack_status(settings: Settings) -> None:
    table = Table("part", "state", "address", "pid", "log")
    for row in stack.status(settings):
        table.add_row(row.part, row.state, row.address or "", str(row.pid or ""), str(row.log or ""))
    console.print(table)


async def _until_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


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
    endpoints = await stack.up(settings, with_llm=True)
    assert endpoints.llm is not None
    client = await connect_temporal(settings, endpoints.temporal_address, runtime=worker_runtime(settings))
    await ensure_search_attributes(client, settings.temporal_namespace)
    deps = await plan_dependencies(settings, endpoints.database_url, LLMConfig.from_endpoint(endpoints.llm))
    try:
        worker = build_worker(client, settings, deps)
        console.print(f"worker on task queue {settings.task_queue!r}; Ctrl-C to stop")
        if settings.worker_metrics_port:
            console.print(
                f"worker metrics on http://{settings.worker_metrics_host}:{settings.worker_metrics_port}/metrics"
            )
        async with worker:
            await _until_signal()
    finally:
        await close_dependencies(deps)


# -- clients -------------------------------------------------------------------------------
def load_records(file: Path) -> list[ClientRecord]:
    """Validate every record in the file; refuse the whole file if any record is invalid."""
    data = json.loads(file.read_text())
    items = data if isinstance(data, list) else [data]
    records, problems = [], []
    for index, item in enumerate(items):
        try:
            records.append(parse_client(item))
        except InvalidClientRecord as err:
            label = item.get("id", f"#{index + 1}") if isinstance(item, dict) else f"#{index + 1}"
            problems += [f"record {label}: {p}" for p in err.problems]
    if problems:
        raise InvalidClientRecord(problems)
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


# -- plans ---------------------------------------------------------------------------------
async def start_plan(
    settings: Settings, client_id: str, level: Level, only: list[str] | None
) -> WorkflowHandle[BusinessPlanWorkflow, PlanResult]:
    request = PlanRequest(client_id=client_id, level=level, sections=only)
    async with _database(settings) as pool:
        await plans.check_request(pool, request)
        current = await clients.get(pool, client_id)
    client = await _temporal(settings)
    return await plans.start_plan(client, settings, request, announce_version=current.version)


class UnknownFields(ValueError):
    pass


async def regenerate_plan(
    settings: Settings, client_id: str, fields: list[str] | None, level: Level | None
) -> WorkflowHandle[BusinessPlanWorkflow, PlanResult]:
    """A new version of the client's plan: sections whose inputs changed are written again, the
    others carried over; ``fields`` also forces a fresh answer for every section reading them."""
    unknown = sorted(set(fields or []) - KNOWN_FIELDS)
    if unknown:
        raise UnknownFields(f"unknown field(s) {', '.join(unknown)}; CRM fields are: {', '.join(sorted(KNOWN_FIELDS))}")
    async with _database(settings) as pool:
        current = await clients.get(pool, client_id)
        latest = await documents.latest(pool, client_id, DocumentKind.BUSINESS_PLAN.value)
    chosen = level or (Level(latest.level) if latest and latest.level else Level.COMPLETE)
    forced = [s.key for s in sections_using(set(fields))] if fields else []
    request = PlanRequest(client_id=client_id, level=chosen, regenerate=forced)
    client = await _temporal(settings)
    return await plans.start_plan(client, settings, request, announce_version=current.version)


async def watch_plan(
    handle: WorkflowHandle[BusinessPlanWorkflow, PlanResult], on_progress: Callable[[PlanProgress], None]
) -> PlanResult:
    return await plans.watch(handle, on_progress)


async def show_document(settings: Settings, client_id: str, kind: DocumentKind, fmt: str) -> str:
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
        return doc.markdown


async def usage_report(settings: Settings, *, client_id: str | None = None) -> dict[str, Any]:
    async with _database(settings) as pool:
        return await usage.report(pool, client_id=client_id)


# -- deliverables --------------------------------------------------------------------------
class InvalidMonth(ValueError):
    pass


def check_month(month: int) -> None:
    try:
        plans.check_month(month)
    except ValueError as err:
        raise InvalidMonth(str(err)) from None


async def start_deliverable(
    settings: Settings, client_id: str, month: int
) -> WorkflowHandle[DeliverableWorkflow, DeliverableResult]:
    """Start (or join) month ``month``'s deliverable; a bad month is refused before anything
    starts (no stack, no workflow), an unknown client before any workflow starts."""
    check_month(month)
    request = DeliverableRequest(client_id=client_id, month=month)
    async with _database(settings) as pool:
        await plans.check_deliverable(pool, request)
    client = await _temporal(settings)
    return await plans.start_deliverable(client, settings, request)


async def watch_deliverable(
    handle: WorkflowHandle[DeliverableWorkflow, DeliverableResult],
    on_progress: Callable[[DeliverableProgress], None],
) -> DeliverableResult:
    return await plans.watch(handle, on_progress, query=DeliverableWorkflow.progress)


class UnknownDocument(ValueError):
    pass


async def show_deliverable(settings: Settings, client_id: str, month: int, document_key: str | None, fmt: str) -> str:
    """The latest version of month ``month``'s documents (or of one, ``document_key``)."""
    check_month(month)
    keys = [d.key for d in deliverables.documents(month)]
    if document_key is not None and document_key not in keys:
        raise UnknownDocument(f"month {month} has no document {document_key!r}; its documents are: {', '.join(keys)}")
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
        return "\n".join(doc.markdown for doc in found)


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
        await uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning")).serve()


# -- retry and replay ----------------------------------------------------------------------
class NothingToRetry(ValueError):
    pass


async def retry_plan(settings: Settings, workflow_id: str) -> WorkflowHandle[BusinessPlanWorkflow, PlanResult]:
    """A new run of a failed plan with the same request: finished sections are reused (the
    stored tier), so only the rest is generated and paid for."""
    client = await _temporal(settings)
    handle = client.get_workflow_handle_for(BusinessPlanWorkflow.run, workflow_id)
    try:
        described = await handle.describe()
    except RPCError as err:
        raise NothingToRetry(f"no workflow {workflow_id!r}: {err.message}") from None
    status = described.status
    if status == WorkflowExecutionStatus.COMPLETED:
        raise NothingToRetry(f"{workflow_id} completed successfully; nothing to retry")
    if status == WorkflowExecutionStatus.RUNNING:
        raise NothingToRetry(f"{workflow_id} is still running; watch it in the Web UI or wait for it")
    history = await handle.fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    [request] = await client.data_converter.decode(started.input.payloads, [PlanRequest])
    log.info("retrying %s (%s) with its original request", workflow_id, status.name.lower())
    return await plans.start_plan(client, settings, request)


async def replay(settings: Settings, workflow_id: str) -> str | None:
    """Replay a live history against the current code; the failure, or None when it replays."""
    client = await _temporal(settings)
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    replayer = Replayer(workflows=[BusinessPlanWorkflow, DeliverableWorkflow], data_converter=client.data_converter)
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
            async with build_worker(client, settings, deps):
                handle = await plans.start_plan(client, settings, PlanRequest(client_id=record.id, level=level))
                web_ui = endpoints.web_ui_url or settings.web_ui_url()
                console.print(
                    f"workflow {handle.id}: {web_ui}/namespaces/{settings.temporal_namespace}/workflows/{handle.id}"
                )
                with Live(console=console, refresh_per_second=4) as live:
                    result = await plans.watch(handle, lambda p: live.update(progress_table(p)))
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
