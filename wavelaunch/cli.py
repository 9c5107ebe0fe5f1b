"""The ``wavelaunch`` command line: the embedded stack, the worker, clients, plans and usage."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import re
import sys
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import typer
from rich.live import Live
from rich.markup import escape
from temporalio.client import WorkflowFailureError, WorkflowHandle

from crm.auth import MissingApiToken
from domain.budgets import BudgetScope, BudgetSpec, InvalidBudget, Period, parse_thresholds
from domain.client import InvalidClientRecord
from domain.limits import (
    CLIENT_ID_PATTERN,
    SECTION_KEY_PATTERN,
    THREAD_ID_PATTERN,
    WORKFLOW_ID_PATTERN,
    InputRefused,
    quote,
)
from domain.reviews import ReviewRefused, ReviewState
from domain.sections import DocumentKind, Level, UnknownSection
from domain.summaries import InvalidMessages
from service import starts
from service.edits import UnknownProposal
from service.schedules import ScheduleInfo, UnknownSchedule
from service.settings import Settings, get_settings
from service.wiring import WorkerMetricsUnavailable
from stack.errors import StackError
from storage.clients import UnknownClient
from storage.messages import UnknownThread
from tokenopt.pricing import UnknownModelPrice
from tokenopt.service_tiers import BadDeadline, Urgency
from wavelaunch import commands
from wavelaunch.console import (
    alerts_table,
    budgets_table,
    bulk_table,
    console,
    log_console,
    progress_table,
    usage_table,
)
from wavelaunch.plugins import CommandsWithPlugins
from workflows import kinds

# `bench` and `eval` join from the development package when it is installed (wavelaunch/plugins.py).
app = typer.Typer(cls=CommandsWithPlugins, no_args_is_help=True, help=__doc__, pretty_exceptions_show_locals=False)
stack_app = typer.Typer(no_args_is_help=True, help="Start, stop and inspect the embedded stack.")
clients_app = typer.Typer(no_args_is_help=True, help="Client records from the CRM.")
plan_app = typer.Typer(no_args_is_help=True, help="Business plans.")
deliverable_app = typer.Typer(no_args_is_help=True, help="Monthly deliverables (M1–M8, five documents a month).")
summary_app = typer.Typer(no_args_is_help=True, help="Client and thread summaries (topic, action items, sentiment).")
usage_app = typer.Typer(no_args_is_help=True, help="Tokens and dollars spent, and saved.")
cache_app = typer.Typer(no_args_is_help=True, help="The answer cache: stats and purges.")
bulk_app = typer.Typer(no_args_is_help=True, help="Bulk regeneration through the OpenAI Batch API (half price).")
budget_app = typer.Typer(
    no_args_is_help=True, help="Budgets per period, global or per client: limits, alert thresholds, auto-pause."
)
alerts_app = typer.Typer(no_args_is_help=True, help="Alerts raised: budget thresholds, cache hit rate.")
schedule_app = typer.Typer(
    no_args_is_help=True, help="Temporal Schedules: each client's deliverable months and weekly summary."
)
document_app = typer.Typer(
    no_args_is_help=True, help="Review document versions: approve, or ask for changes (draft until then)."
)
app.add_typer(stack_app, name="stack")
app.add_typer(clients_app, name="clients")
app.add_typer(plan_app, name="plan")
app.add_typer(deliverable_app, name="deliverable")
app.add_typer(summary_app, name="summary")
app.add_typer(usage_app, name="usage")
app.add_typer(cache_app, name="cache")
app.add_typer(bulk_app, name="bulk")
app.add_typer(budget_app, name="budget")
app.add_typer(alerts_app, name="alerts")
app.add_typer(schedule_app, name="schedule")
app.add_typer(document_app, name="document")

T = TypeVar("T")

# Errors a person can act on: print the message, not a traceback.
_USER_ERRORS = (
    BadDeadline,
    UnknownSchedule,
    InvalidClientRecord,
    UnknownClient,
    UnknownSection,
    StackError,
    UnknownModelPrice,
    FileNotFoundError,
    json.JSONDecodeError,
    starts.NothingToRetry,
    commands.UnknownFields,
    commands.InvalidMonth,
    commands.UnknownDocument,
    ReviewRefused,
    UnknownProposal,
    InvalidMessages,
    UnknownThread,
    commands.UnknownWorkflow,
    starts.UnknownClients,
    InvalidBudget,
    commands.MissingWebhookSecret,
    MissingApiToken,
    WorkerMetricsUnavailable,
    InputRefused,
)

# Identifiers given as arguments, by parameter name, checked before a command runs: a value that
# cannot be an id (NUL, 10 kB) is refused in one line rather than sent to Postgres or Temporal.
_ID_PARAMETERS = {
    "client_id": ("client id", CLIENT_ID_PATTERN),
    "client": ("--client", CLIENT_ID_PATTERN),
    "thread": ("--thread", THREAD_ID_PATTERN),
    "workflow_id": ("workflow id", WORKFLOW_ID_PATTERN),
    "document": ("--document", SECTION_KEY_PATTERN),
}


def _check_ids(kwargs: dict[str, Any]) -> None:
    problems = []
    for name, (label, pattern) in _ID_PARAMETERS.items():
        value = kwargs.get(name)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and not re.match(pattern, item):
                problems.append(f"{label} {quote(item)} is not a valid id")
    if problems:
        raise InputRefused(problems)


BY_HELP = "Wanted within this long (90m, 6h, 3d): the cheapest service tier that meets it (flex)."
URGENCY_HELP = "now (standard, the default), today (within 24 h) or week: shorthand for --by."


def _run(coro_fn: Callable[..., Coroutine[Any, Any, T]]) -> Callable[..., None]:
    """A command: Rich log lines for a person at a terminal, errors said in one line."""
    return _command(coro_fn, handler=_rich_handler, loop_factory=None)


def _serve(coro_fn: Callable[..., Coroutine[Any, Any, T]]) -> Callable[..., None]:
    """A long-running service (the API): plain timestamped log lines, for a log collector and
    cheap (Rich rendered a webhook's log line in a sixth of the API's CPU under load), and
    uvloop's event loop."""
    return _command(coro_fn, handler=_plain_handler, loop_factory=_fast_loop())


def _command(
    coro_fn: Callable[..., Coroutine[Any, Any, T]],
    *,
    handler: Callable[[], logging.Handler],
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None,
) -> Callable[..., None]:
    @functools.wraps(coro_fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        logging.basicConfig(level=logging.INFO, format="%(message)s", handlers=[handler()])
        # One line per HTTP request drowns the progress table.
        for noisy in ("httpx", "httpx2", "openai", "temporalio.worker._worker"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        try:
            _check_ids(kwargs)
            with asyncio.Runner(loop_factory=loop_factory) as runner:
                runner.run(coro_fn(*args, **kwargs))
        except _USER_ERRORS as err:
            _error(str(err))
            _exit(1)
        except typer.BadParameter as err:  # raised by a command's own checks: one line, as above
            _error(err.message)
            _exit(2)
        except WorkflowFailureError as err:
            console.print(f"[red]workflow failed:[/] {err.cause or err}")
            _exit(1)
        except KeyboardInterrupt:
            _exit(130)
        _exit(0)

    return wrapper


def _error(message: str) -> None:
    """One line saying what is wrong (never wrapped, never read as Rich markup)."""
    console.print(f"[red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


def _exit(code: int) -> NoReturn:
    """Leave without interpreter finalisation: the Temporal SDK's native threads can abort a
    short-lived process at exit ("PyGILState_Release", temporalio/sdk-python#300). Everything the
    command owns is already closed by then; only buffers remain to flush."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _rich_handler() -> logging.Handler:
    from rich.logging import RichHandler

    return RichHandler(console=log_console, show_path=False, show_time=False, markup=False)


def _announce(settings: Settings, handle: WorkflowHandle[Any, Any], what: str = "workflow") -> None:
    console.print(f"{what} [bold]{handle.id}[/]: {settings.workflow_url(handle.id)}")


async def _with_progress(
    watch: Callable[[Callable[[Any], None]], Awaitable[T]],
    *,
    table: Callable[[Any], Any] = progress_table,
    refresh: int = 4,
) -> T:
    """Wait for a workflow's result (``watch`` calls back with its progress), showing the
    progress as a live table."""
    with Live(console=console, refresh_per_second=refresh) as live:
        return await watch(lambda progress: live.update(table(progress)))


def _plain_handler() -> logging.Handler:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    return handler


def _fast_loop() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:  # not built for this platform: the standard loop serves, only slower
        return None
    return uvloop.new_event_loop


def _check_format(fmt: str, *, docx: bool = False) -> None:
    allowed = ("md", "json", "docx") if docx else ("md", "json")
    if fmt not in allowed:
        raise typer.BadParameter(f"--format must be {', '.join(allowed[:-1])} or {allowed[-1]}")


def _print_document(text: str | bytes, fmt: str, out: Path | None = None) -> None:
    # A Word file is written, never printed; JSON goes out plain so it stays machine-readable;
    # Markdown is printed as text, not markup.
    if isinstance(text, bytes):
        assert out is not None
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(text)
        console.print(f"written to {out} ({len(text):,} bytes)", markup=False, highlight=False)
    elif fmt == "json":
        print(text)
    else:
        console.print(text, markup=False, highlight=False)


_OUT = typer.Option(None, "--out", "-o", help="Where --format docx writes (default: ./<client>-<document>.docx).")


def _parse_sections(value: str | None, option: str = "--sections") -> list[str] | None:
    """A comma-separated option as a list; None when not given. Given but empty (``,``) is an
    error, not "everything"."""
    if value is None:
        return None
    items = [s.strip() for s in value.split(",") if s.strip()]
    if not items:
        raise typer.BadParameter(f"{option} is empty; name at least one, comma-separated")
    return items


# The plugins' commands (wavelaunch/plugins.py: `bench`, `eval`) are written with these, so they
# report errors, parse lists and exit as the commands here do.
run_command = _run
parse_list = _parse_sections
exit_now = _exit


# -- stack ---------------------------------------------------------------------------------
@stack_app.command("up")
@_run
async def stack_up(
    detach: bool = typer.Option(False, "--detach", "-d", help="Leave it running and return."),
    llm: bool = typer.Option(True, help="Also start (or check) the LLM endpoint."),
    api: bool = typer.Option(
        False, "--api", help="Also serve `wavelaunch api` (webhooks, REST API, metrics, dashboard) until Ctrl-C."
    ),
) -> None:
    """Start Temporal (with its Web UI), Postgres and the local LLM if needed."""
    if api and detach:
        raise typer.BadParameter("--api runs in the foreground; drop --detach (or run `wavelaunch api` on its own)")
    await commands.stack_up(get_settings(), detach=detach, with_llm=llm, api=api)


@stack_app.command("down")
@_run
async def stack_down() -> None:
    """Stop every part of the embedded stack this state dir started."""
    await commands.stack_down(get_settings())


@stack_app.command("status")
@_run
async def stack_status() -> None:
    """Show each part: running, stopped or external."""
    commands.stack_status(get_settings())


# -- worker --------------------------------------------------------------------------------
@app.command("worker")
@_run
async def worker() -> None:
    """Run a worker until Ctrl-C (starts the embedded parts it needs if they are not up)."""
    await commands.run_worker(get_settings())


# -- clients -------------------------------------------------------------------------------
@clients_app.command("import")
@_run
async def clients_import(file: Path = typer.Argument(..., help="A JSON file: one record or a list.")) -> None:
    """Import one CRM client record or a list of them (JSON, camelCase as the CRM sends it)."""
    await commands.import_clients(get_settings(), file)


@clients_app.command("erase")
@_run
async def clients_erase(
    client_id: str,
    legal_hold: bool = typer.Option(
        False, "--legal-hold", help="Keep the client's documents (and their sections); erase everything else."
    ),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Erase a client: end its workflows, remove its personal fields, snapshots, messages, summaries,
    cached answers, embeddings and documents; keep its usage figures under an anonymous id."""
    if not yes and not typer.confirm(f"Erase every trace of client {client_id}? This cannot be undone"):
        raise typer.BadParameter("not confirmed; nothing erased")
    done = await commands.erase_client(get_settings(), client_id, legal_hold=legal_hold)
    _print_erasure(done)


@clients_app.command("erase-archived")
@_run
async def clients_erase_archived(
    days: float | None = typer.Option(None, "--days", help="Default: WAVELAUNCH_ERASE_ARCHIVED_AFTER_DAYS."),
) -> None:
    """Erase every client archived (client.archived) more than N days ago (the API does it hourly)."""
    done = await commands.erase_archived(get_settings(), days)
    for erasure in done:
        _print_erasure(erasure)
    console.print(f"{len(done)} client(s) erased")


def _print_erasure(done: Any) -> None:
    kept = "; documents kept (legal hold)" if done.erased.legal_hold else ""
    rows = ", ".join(f"{table} {n}" for table, n in sorted(done.erased.removed.items()))
    console.print(
        f"client {done.client_id} erased: usage kept as {done.erased.anon_id}; "
        f"{len(done.workflows_ended)} workflow(s) ended{kept}; rows: {rows}",
        markup=False,
        highlight=False,
    )


# -- plans ---------------------------------------------------------------------------------
@plan_app.command("generate")
@_run
async def plan_generate(
    client_id: str,
    level: Level = typer.Option(Level.COMPLETE, help="essential, standard or complete"),
    sections: str | None = typer.Option(None, help="Only these sections, comma-separated."),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="Wait and show progress."),
    by: str | None = typer.Option(None, "--by", help=BY_HELP),
    urgency: Urgency | None = typer.Option(None, "--urgency", help=URGENCY_HELP),
) -> None:
    """Generate (or join the running generation of) a client's business plan."""
    settings = get_settings()
    deadline = commands.deadline(by, urgency)
    handle = await commands.start_plan(settings, client_id, level, _parse_sections(sections), deadline=deadline)
    _announce(settings, handle)
    if not wait:
        return
    result = await _with_progress(functools.partial(commands.watch_plan, handle))
    _print_result(client_id, result)


def _print_result(client_id: str, result: Any) -> None:
    console.print(
        f"document v{result.document.version}: {result.total_tokens:,} tokens, "
        f"${float(result.total_cost):.4f}; see `wavelaunch plan show {client_id}`"
    )
    for change in result.document.changes:
        why = f" ({', '.join(change.fields)})" if change.fields else ""
        console.print(f"  changed: {change.section_key}: {change.reason}{why}")


@plan_app.command("regenerate")
@_run
async def plan_regenerate(
    client_id: str,
    fields: str | None = typer.Option(None, help="Also write afresh every section reading these fields."),
    level: Level | None = typer.Option(None, help="Default: the level of the latest plan."),
    wait: bool = typer.Option(True, "--wait/--no-wait"),
) -> None:
    """A new plan version: only sections whose inputs changed (or that read --fields) are written."""
    settings = get_settings()
    handle = await commands.regenerate_plan(settings, client_id, _parse_sections(fields, "--fields"), level)
    _announce(settings, handle)
    if wait:
        result = await _with_progress(functools.partial(commands.watch_plan, handle))
        _print_result(client_id, result)


@plan_app.command("show")
@_run
async def plan_show(
    client_id: str,
    format: str = typer.Option("md", "--format", "-f", help="md, json or docx"),
    out: Path | None = _OUT,
) -> None:
    """Print the latest business plan of a client as Markdown or JSON, or write it as Word (docx)."""
    _check_format(format, docx=True)
    text = await commands.show_document(get_settings(), client_id, DocumentKind.BUSINESS_PLAN, format)
    _print_document(text, format, out or Path(f"{client_id}-business-plan.docx"))


# -- deliverables --------------------------------------------------------------------------
@deliverable_app.command("generate")
@_run
async def deliverable_generate(
    client_id: str,
    month: int = typer.Option(..., "--month", "-m", help="1–8 (M1–M8)."),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="Wait and show progress."),
    by: str | None = typer.Option(None, "--by", help=BY_HELP),
    urgency: Urgency | None = typer.Option(None, "--urgency", help=URGENCY_HELP),
) -> None:
    """Generate (or join the running generation of) month N's five deliverable documents."""
    settings = get_settings()
    handle = await commands.start_deliverable(settings, client_id, month, deadline=commands.deadline(by, urgency))
    _announce(settings, handle)
    if not wait:
        return
    result = await _with_progress(functools.partial(commands.watch_deliverable, handle))
    _print_month(client_id, result)


def _print_month(client_id: str, result: Any) -> None:
    reused = sum(1 for s in result.sections if s.cache_tier != "none")
    console.print(
        f"month {result.month}: {len(result.documents)} documents, {len(result.sections)} sections "
        f"({reused} reused), {result.total_tokens:,} tokens, ${float(result.total_cost):.4f}; "
        f"see `wavelaunch deliverable show {client_id} --month {result.month}`"
    )
    for doc in result.documents:
        console.print(f"  {doc.document_key} v{doc.version} ({doc.markdown_chars:,} chars)")


@deliverable_app.command("regenerate")
@_run
async def deliverable_regenerate(
    client_id: str,
    month: int = typer.Option(..., "--month", "-m", help="1–8 (M1–M8)."),
    fields: str | None = typer.Option(None, help="Also write afresh every section of the month reading these fields."),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="Wait and show progress."),
) -> None:
    """A new version of month N's documents: only sections whose inputs changed (or that read --fields) are written."""
    settings = get_settings()
    handle = await commands.regenerate_deliverable(settings, client_id, month, _parse_sections(fields, "--fields"))
    _announce(settings, handle)
    if wait:
        result = await _with_progress(functools.partial(commands.watch_deliverable, handle))
        _print_month(client_id, result)


@deliverable_app.command("show")
@_run
async def deliverable_show(
    client_id: str,
    month: int = typer.Option(..., "--month", "-m", help="1–8 (M1–M8)."),
    document: str | None = typer.Option(None, "--document", "-d", help="One document key, e.g. m1_brand_architecture."),
    format: str = typer.Option("md", "--format", "-f", help="md, json or docx"),
    out: Path | None = _OUT,
) -> None:
    """Print the latest version of a month's deliverable documents as Markdown or JSON, or write
    them as Word (docx)."""
    _check_format(format, docx=True)
    text = await commands.show_deliverable(get_settings(), client_id, month, document, format)
    _print_document(text, format, out or Path(f"{client_id}-{document or f'm{month}'}.docx"))


# -- document reviews -----------------------------------------------------------------------
_MONTH = typer.Option(None, "--month", "-m", help="A deliverable month, 1–8 (default: the business plan).")
_DOCUMENT = typer.Option(None, "--document", "-d", help="The month's document key, e.g. m1_brand_architecture.")
_VERSION = typer.Option(None, "--version", "-v", help="This version (default: the newest); must be the newest.")
_BY = typer.Option(None, "--by", help="Who reviewed it.")


async def _review(client_id: str, state: ReviewState, **named: Any) -> None:
    doc = await commands.review_document(get_settings(), client_id, state, **named)
    console.print(
        f"{doc.document_key} v{doc.version} of client {client_id}: {doc.review_state.replace('_', ' ')}",
        markup=False,
        highlight=False,
    )


@document_app.command("approve")
@_run
async def document_approve(
    client_id: str,
    month: int | None = _MONTH,
    document: str | None = _DOCUMENT,
    version: int | None = _VERSION,
    by: str | None = _BY,
    note: str | None = typer.Option(None, "--note", help="A remark kept with the approval."),
) -> None:
    """Approve the newest version of the business plan (or of a month's document)."""
    await _review(
        client_id, ReviewState.APPROVED, month=month, document_key=document, version=version, by=by, note=note
    )


@document_app.command("request-changes")
@_run
async def document_request_changes(
    client_id: str,
    note: str = typer.Option(..., "--note", help="What should change."),
    month: int | None = _MONTH,
    document: str | None = _DOCUMENT,
    version: int | None = _VERSION,
    by: str | None = _BY,
) -> None:
    """Ask for changes to the newest version of the business plan (or of a month's document)."""
    await _review(
        client_id,
        ReviewState.CHANGES_REQUESTED,
        month=month,
        document_key=document,
        version=version,
        by=by,
        note=note,
    )


@document_app.command("edit")
@_run
async def document_edit(
    client_id: str,
    section: str = typer.Option(..., "--section", "-s", help="The section's key, e.g. market_analysis."),
    file: Path = typer.Option(..., "--file", help="The section's new content: JSON in the section's schema."),
    month: int | None = _MONTH,
    document: str | None = _DOCUMENT,
    by: str | None = _BY,
) -> None:
    """Replace a section by hand (a new version, a draft); the section is locked: regenerations
    then propose, and never overwrite it."""
    doc = await commands.edit_section(
        get_settings(), client_id, section, file, month=month, document_key=document, by=by
    )
    console.print(f"{doc.document_key} v{doc.version}: {section} replaced and locked", markup=False, highlight=False)


@document_app.command("proposals")
@_run
async def document_proposals(client_id: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """What regenerations propose for locked sections, each as a diff against the operator's text."""
    found = await commands.list_proposals(get_settings(), client_id)
    if as_json:
        print(json.dumps([p.as_json() for p in found], indent=2))
        return
    if not found:
        console.print("no pending proposals")
    for view in found:
        p = view.proposal
        console.print(f"proposal {p.id}: {p.document_key} / {p.section_key}", markup=False, highlight=False)
        console.print(view.diff or "(no difference in the rendered text)", markup=False, highlight=False)


@document_app.command("accept")
@_run
async def document_accept(proposal_id: int, by: str | None = _BY) -> None:
    """Accept a proposal: a new version with the regenerated section; the section is unlocked."""
    doc = await commands.decide_proposal(get_settings(), proposal_id, accept=True, by=by)
    assert doc is not None
    console.print(f"{doc.document_key} v{doc.version}: proposal {proposal_id} accepted", markup=False)


@document_app.command("reject")
@_run
async def document_reject(proposal_id: int, by: str | None = _BY) -> None:
    """Reject a proposal: the operator's section stays, locked."""
    await commands.decide_proposal(get_settings(), proposal_id, accept=False, by=by)
    console.print(f"proposal {proposal_id} rejected", markup=False)


# -- summaries -----------------------------------------------------------------------------
@summary_app.command("generate")
@_run
async def summary_generate(
    client_id: str,
    thread: list[str] | None = typer.Option(None, "--thread", "-t", help="Only this thread (repeatable)."),
    messages: Path | None = typer.Option(None, "--messages", help="JSON list of threads with messages, stored first."),
    client_summary: bool = typer.Option(True, "--client-summary/--no-client-summary"),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="Wait and show progress."),
    by: str | None = typer.Option(None, "--by", help=BY_HELP),
    urgency: Urgency | None = typer.Option(None, "--urgency", help=URGENCY_HELP),
) -> None:
    """Bring a client's thread summaries up to date (new messages only), then its client summary."""
    settings = get_settings()
    deadline = commands.deadline(by, urgency)
    handle = await commands.start_summary(settings, client_id, thread, messages, client_summary, deadline=deadline)
    _announce(settings, handle)
    if not wait:
        return
    result = await _with_progress(functools.partial(commands.watch_summary, handle))
    console.print(
        f"{len(result.threads)} thread(s), {result.llm_calls} LLM call(s), {result.total_tokens:,} tokens, "
        f"${float(result.total_cost):.4f} (the naive way: {result.baseline_tokens:,} tokens); "
        f"see `wavelaunch summary show {client_id}`"
    )


@summary_app.command("show")
@_run
async def summary_show(
    client_id: str,
    thread: str | None = typer.Option(None, "--thread", "-t", help="Only this thread."),
    format: str = typer.Option("md", "--format", "-f", help="md or json"),
) -> None:
    """Print the latest client summary and thread summaries as Markdown or JSON."""
    _check_format(format)
    text = await commands.show_summary(get_settings(), client_id, thread, format)
    _print_document(text, format)


# -- bulk ----------------------------------------------------------------------------------
@bulk_app.command("regenerate")
@_run
async def bulk_regenerate(
    client: list[str] | None = typer.Option(None, "--client", "-c", help="A client id (repeat for more)."),
    all_clients: bool = typer.Option(False, "--all", help="Every ACTIVE client."),
    level: Level = typer.Option(Level.COMPLETE, help="essential, standard or complete"),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="Wait and show progress."),
    poll_seconds: int | None = typer.Option(None, "--poll-seconds", min=1, help="Between looks at the batch."),
    workflow_id: str | None = typer.Option(None, "--id", help="Workflow id (default: bulk-<hash of the request>)."),
) -> None:
    """Regenerate many clients' business plans through one Batch API batch (half price).

    The sections that need writing go out as one batch (direct calls for a local model or
    WAVELAUNCH_BATCH_API=false); then each client's plan is assembled from the stored sections."""
    if bool(client) == all_clients:
        raise typer.BadParameter("give --client ID (one or more) or --all")
    settings = get_settings()
    handle = await commands.start_bulk(
        settings, None if all_clients else client, level, poll_seconds=poll_seconds, workflow_id=workflow_id
    )
    _announce(settings, handle)
    if not wait:
        console.print(f"follow it with `wavelaunch bulk status {handle.id}`")
        return
    result = await _with_progress(functools.partial(commands.watch_bulk, handle), table=bulk_table, refresh=2)
    console.print()
    via = f"batch {result.batch_id}" if result.batch_id else "direct calls"
    console.print(
        f"{len(result.documents)} plans; {result.to_generate} sections written ({result.stored_from_batch} via {via}, "
        f"{result.fallback} direct), {result.reused} reused; batch ${float(result.batch_cost):.4f}, "
        f"direct ${float(result.direct_cost):.4f}"
    )


@bulk_app.command("status")
@_run
async def bulk_status(workflow_id: str) -> None:
    """A bulk regeneration's state: batch, sections stored, direct calls, documents, cost."""
    status, progress = await commands.bulk_status(get_settings(), workflow_id)
    console.print(f"{workflow_id}: {status}")
    if progress is not None:
        console.print(bulk_table(progress))
    else:
        console.print("[dim]no progress yet (no worker has answered the query)[/]")


@app.command("api")
@_serve
async def api(
    host: str | None = typer.Option(None, help="Default: WAVELAUNCH_API_HOST (127.0.0.1)."),
    port: int | None = typer.Option(None, help="Default: WAVELAUNCH_API_PORT (8000)."),
) -> None:
    """Serve the CRM's webhooks, the REST API (/api/v1), /metrics and the dashboard until Ctrl-C."""
    settings = get_settings()
    await commands.serve_api(settings, host=host or settings.api_host, port=port or settings.api_port)


@app.command("retry")
@_run
async def retry(workflow_id: str, wait: bool = typer.Option(True, "--wait/--no-wait")) -> None:
    """Run a failed plan or month again; finished sections are reused, only the rest is generated."""
    settings = get_settings()
    handle = await commands.retry_workflow(settings, workflow_id)
    _announce(settings, handle, "new run of")
    if wait:
        # Only plans and months are retryable (workflows/kinds.py).
        kind = kinds.DELIVERABLE if handle.id.startswith("deliverable-") else kinds.PLAN
        result = await _with_progress(lambda on_progress: starts.watch(handle, on_progress, query=kind.progress))
        reused = sum(1 for s in result.sections if s.cache_tier != "none")
        console.print(f"{reused} of {len(result.sections)} sections reused, {result.total_tokens:,} tokens")


@app.command("replay")
@_run
async def replay(workflow_id: str) -> None:
    """Replay a workflow's live history against the current code (determinism check)."""
    failure = await commands.replay(get_settings(), workflow_id)
    if failure:
        console.print(f"[red]replay failed:[/] {failure}")
        _exit(1)
    console.print(f"{workflow_id}: replays cleanly on the current code")


# -- usage ---------------------------------------------------------------------------------
@usage_app.command("report")
@_run
async def usage_report(
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    client: str | None = typer.Option(None, help="Only this client."),
) -> None:
    """Totals, per operation, model, client, cache tier and service tier, with savings against the naive way."""
    report = await commands.usage_report(get_settings(), client_id=client)
    if as_json:
        print(json.dumps(report, indent=2, default=str))
        return
    for group in ("total", "operation", "model", "client", "cache_tier", "service_tier"):
        console.print(usage_table(report, group))


# -- cache ---------------------------------------------------------------------------------
@cache_app.command("stats")
@_run
async def cache_stats(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """Entries, hit rate by tier, tokens and dollars saved, evictions."""
    from wavelaunch.console import cache_stats_table

    result = await commands.cache_stats(get_settings())
    if as_json:
        print(json.dumps(result, indent=2, default=str))
    else:
        console.print(cache_stats_table(result))


@cache_app.command("purge")
@_run
async def cache_purge(
    client: str | None = typer.Option(None, "--client", help="Only this client's entries."),
    kind: DocumentKind | None = typer.Option(None, "--kind", help="Only this document kind."),
    expired: bool = typer.Option(False, "--expired", help="Only entries past their TTL."),
) -> None:
    """Delete cache entries (all of them when no filter is given)."""
    count = await commands.cache_purge(get_settings(), client_id=client, kind=kind, expired_only=expired)
    console.print(f"purged {count} cache entries")


# -- budgets and alerts -------------------------------------------------------------------
_GLOBAL = typer.Option(False, "--global", help="The global budgets (every client).")
_CLIENT = typer.Option(None, "--client", help="This client's budgets.")


def _scope(is_global: bool, client: str | None) -> tuple[BudgetScope, str | None]:
    if is_global == bool(client):
        raise typer.BadParameter("give either --global or --client ID")
    return (BudgetScope.GLOBAL, None) if is_global else (BudgetScope.CLIENT, client)


def _dollars(value: str | None) -> Decimal | None:
    if value is None:
        return None
    try:
        return Decimal(value.lstrip("$"))
    except InvalidOperation:
        raise InvalidBudget(f"--dollars must be an amount such as 50 or 12.5, got {value!r}") from None


@budget_app.command("set")
@_run
async def budget_set(
    is_global: bool = _GLOBAL,
    client: str | None = _CLIENT,
    period: Period = typer.Option(..., "--period", help="daily, weekly or monthly (UTC)."),
    tokens: int | None = typer.Option(None, "--tokens", help="Token limit (new budgets: 1,000,000)."),
    dollars: str | None = typer.Option(None, "--dollars", help="Dollar limit (new budgets: 50)."),
    thresholds: str | None = typer.Option(None, "--thresholds", help="Alert at these percentages (50,75,90,100)."),
    auto_pause: bool | None = typer.Option(
        None, "--auto-pause/--no-auto-pause", help="Pause the budget at its limit (new budgets: no)."
    ),
) -> None:
    """Create or change a budget; options left out keep their value."""
    scope, client_id = _scope(is_global, client)
    spec = BudgetSpec(
        scope=scope,
        client_id=client_id,
        period=period,
        token_limit=tokens,
        cost_limit=_dollars(dollars),
        thresholds=parse_thresholds(thresholds) if thresholds is not None else None,
        auto_pause=auto_pause,
    )
    use = await commands.budget_set(get_settings(), spec)
    console.print(budgets_table([use]))


@budget_app.command("list")
@_run
async def budget_list(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """Every budget in its current period: limits, use, reservations in flight, state."""
    uses = await commands.budget_list(get_settings())
    if as_json:
        print(json.dumps([u.model_dump(mode="json") for u in uses], indent=2))
    elif uses:
        console.print(budgets_table(uses))
    else:
        console.print("no budgets: LLM calls are not limited (see `wavelaunch budget set --help`)")


@budget_app.command("remove")
@_run
async def budget_remove(
    is_global: bool = _GLOBAL,
    client: str | None = _CLIENT,
    period: Period | None = typer.Option(None, "--period", help="Only this period (default: all)."),
) -> None:
    """Delete budgets (with their counters)."""
    count = await commands.budget_remove(get_settings(), *_scope(is_global, client), period)
    console.print(f"removed {count} budget(s)")


@budget_app.command("pause")
@_run
async def budget_pause(
    is_global: bool = _GLOBAL,
    client: str | None = _CLIENT,
    period: Period | None = typer.Option(None, "--period", help="Only this period (default: all)."),
) -> None:
    """Pause budgets until resumed: the calls they cover are refused (workflows wait or fail)."""
    uses = await commands.budget_pause(get_settings(), *_scope(is_global, client), period)
    console.print(budgets_table(uses))


@budget_app.command("resume")
@_run
async def budget_resume(
    is_global: bool = _GLOBAL,
    client: str | None = _CLIENT,
    period: Period | None = typer.Option(None, "--period", help="Only this period (default: all)."),
) -> None:
    """Clear the pause and signal every workflow waiting on a paused budget to continue."""
    uses, signalled = await commands.budget_resume(get_settings(), *_scope(is_global, client), period)
    console.print(budgets_table(uses))
    console.print(
        f"signalled {len(signalled)} waiting workflow(s)" + (f": {', '.join(signalled)}" if signalled else "")
    )


@alerts_app.command("list")
@_run
async def alerts_list(
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    limit: int = typer.Option(50, "--limit", help="How many, newest first."),
) -> None:
    """Budget thresholds crossed and cache hit rates under target, with their webhook delivery."""
    found = await commands.alerts_list(get_settings(), limit)
    if as_json:
        print(json.dumps([a.model_dump(mode="json") for a in found], indent=2))
    else:
        console.print(alerts_table(found))


# -- demo ----------------------------------------------------------------------------------
@app.command("demo")
@_run
async def demo(
    client: Path | None = typer.Option(None, "--client", help="A CRM client record (JSON)."),
    level: Level = typer.Option(Level.COMPLETE, help="essential, standard or complete"),
    out: Path = typer.Option(Path("out"), help="Where the Markdown plan is written."),
    keep_running: bool = typer.Option(False, "--keep-running", help="Leave the stack up afterwards."),
) -> None:
    """Start the embedded stack and a worker, generate one business plan, write it, stop."""
    await commands.demo(get_settings(), client_file=client, level=level, out=out, keep_running=keep_running)


if __name__ == "__main__":
    app()


# -- schedules -------------------------------------------------------------------------------
_SCHEDULE_CLIENT = typer.Option(None, "--client", "-c", help="Every schedule of this client.")


def _print_schedules(infos: list[ScheduleInfo]) -> None:
    if not infos:
        console.print("no schedules")
    for info in infos:
        state = "paused" if info.paused else "active"
        nxt = info.next_runs[0].isoformat() if info.next_runs else "-"
        console.print(f"{info.schedule_id}  {info.workflow}  {state}  next: {nxt}  {escape(info.note)}")


@schedule_app.command("create")
@_run
async def schedule_create(
    client_id: str,
    onboarded: str | None = typer.Option(None, "--onboarded", help="ISO date or time (default: now)."),
) -> None:
    """Create a client's schedules (as client.created does): its months and weekly summary."""
    when = None
    if onboarded is not None:
        try:
            when = datetime.fromisoformat(onboarded)
        except ValueError:
            raise typer.BadParameter(f"--onboarded {onboarded[:40]!r} is not an ISO date or time") from None
        when = when if when.tzinfo else when.replace(tzinfo=UTC)
    for schedule_id in await commands.schedule_create(get_settings(), client_id, when):
        console.print(schedule_id)


@schedule_app.command("list")
@_run
async def schedule_list(
    client: str | None = typer.Option(None, "--client", "-c", help="Only this client."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Every client's schedules (or one client's): what they start, paused or active, next run."""
    infos = await commands.schedule_list(get_settings(), client)
    if as_json:
        print(json.dumps([i.to_dict() for i in infos], indent=2))
        return
    _print_schedules(infos)


@schedule_app.command("show")
@_run
async def schedule_show(schedule_id: str) -> None:
    """One schedule: its workflow, state, next runs, recent runs and what is running."""
    print(json.dumps((await commands.schedule_show(get_settings(), schedule_id)).to_dict(), indent=2))


@schedule_app.command("pause")
@_run
async def schedule_pause(
    schedule_ids: list[str] | None = typer.Argument(None), client: str | None = _SCHEDULE_CLIENT
) -> None:
    """Pause schedules (nothing starts until resumed)."""
    for schedule_id in await commands.schedule_pause(get_settings(), schedule_ids, client):
        console.print(f"paused {schedule_id}")


@schedule_app.command("resume")
@_run
async def schedule_resume(
    schedule_ids: list[str] | None = typer.Argument(None), client: str | None = _SCHEDULE_CLIENT
) -> None:
    """Resume paused schedules."""
    for schedule_id in await commands.schedule_resume(get_settings(), schedule_ids, client):
        console.print(f"resumed {schedule_id}")


@schedule_app.command("trigger")
@_run
async def schedule_trigger(schedule_id: str) -> None:
    """Run a schedule's workflow now (its deadline counts from now)."""
    await commands.schedule_trigger(get_settings(), schedule_id)
    console.print(f"triggered {schedule_id}")


@schedule_app.command("remove")
@_run
async def schedule_remove(
    schedule_ids: list[str] | None = typer.Argument(None), client: str | None = _SCHEDULE_CLIENT
) -> None:
    """Delete schedules (workflows they started are not touched)."""
    for schedule_id in await commands.schedule_remove(get_settings(), schedule_ids, client):
        console.print(f"removed {schedule_id}")
