"""The ``wavelaunch`` command line: the embedded stack, the worker, clients, plans and usage."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import typer
from rich.live import Live
from temporalio.client import WorkflowFailureError

from crm.auth import MissingApiToken
from domain.client import InvalidClientRecord
from domain.sections import DocumentKind, Level, UnknownSection
from stack.errors import StackError
from storage.clients import UnknownClient
from tokenopt.pricing import UnknownModelPrice
from wavelaunch import commands
from wavelaunch.console import console, log_console, progress_table, usage_table
from wavelaunch.runtime import WorkerMetricsUnavailable
from wavelaunch.settings import get_settings

app = typer.Typer(no_args_is_help=True, help=__doc__, pretty_exceptions_show_locals=False)
stack_app = typer.Typer(no_args_is_help=True, help="Start, stop and inspect the embedded stack.")
clients_app = typer.Typer(no_args_is_help=True, help="Client records from the CRM.")
plan_app = typer.Typer(no_args_is_help=True, help="Business plans.")
deliverable_app = typer.Typer(no_args_is_help=True, help="Monthly deliverables (M1–M8, five documents a month).")
usage_app = typer.Typer(no_args_is_help=True, help="Tokens and dollars spent, and saved.")
cache_app = typer.Typer(no_args_is_help=True, help="The answer cache: stats and purges.")
bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks against the local stub (tables + JSON).")
app.add_typer(stack_app, name="stack")
app.add_typer(clients_app, name="clients")
app.add_typer(plan_app, name="plan")
app.add_typer(deliverable_app, name="deliverable")
app.add_typer(usage_app, name="usage")
app.add_typer(cache_app, name="cache")
app.add_typer(bench_app, name="bench")

T = TypeVar("T")

# Errors a person can act on: print the message, not a traceback.
_USER_ERRORS = (
    InvalidClientRecord,
    UnknownClient,
    UnknownSection,
    StackError,
    UnknownModelPrice,
    FileNotFoundError,
    json.JSONDecodeError,
    commands.NothingToRetry,
    commands.UnknownFields,
    commands.InvalidMonth,
    commands.UnknownDocument,
    commands.MissingWebhookSecret,
    MissingApiToken,
    WorkerMetricsUnavailable,
)


def _run(coro_fn: Callable[..., Coroutine[Any, Any, T]]) -> Callable[..., None]:
    @functools.wraps(coro_fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        logging.basicConfig(level=logging.INFO, format="%(message)s", handlers=[_rich_handler()])
        # One line per HTTP request drowns the progress table.
        for noisy in ("httpx", "httpx2", "openai", "temporalio.worker._worker"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        try:
            asyncio.run(coro_fn(*args, **kwargs))
        except _USER_ERRORS as err:
            console.print(f"[red]error:[/] {err}")
            _exit(1)
        except WorkflowFailureError as err:
            console.print(f"[red]workflow failed:[/] {err.cause or err}")
            _exit(1)
        except KeyboardInterrupt:
            _exit(130)
        _exit(0)

    return wrapper


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


def _check_format(fmt: str) -> None:
    if fmt not in ("md", "json"):
        raise typer.BadParameter("--format must be md or json")


def _print_document(text: str, fmt: str) -> None:
    # JSON goes out plain so it stays machine-readable; Markdown is printed as text, not markup.
    if fmt == "json":
        print(text)
    else:
        console.print(text, markup=False, highlight=False)


def _parse_sections(value: str | None) -> list[str] | None:
    return [s.strip() for s in value.split(",") if s.strip()] if value else None


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
async def clients_import(file: Path = typer.Argument(..., exists=True, readable=True)) -> None:
    """Import one CRM client record or a list of them (JSON, camelCase as the CRM sends it)."""
    await commands.import_clients(get_settings(), file)


# -- plans ---------------------------------------------------------------------------------
@plan_app.command("generate")
@_run
async def plan_generate(
    client_id: str,
    level: Level = typer.Option(Level.COMPLETE, help="essential, standard or complete"),
    sections: str | None = typer.Option(None, help="Only these sections, comma-separated."),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="Wait and show progress."),
) -> None:
    """Generate (or join the running generation of) a client's business plan."""
    settings = get_settings()
    handle = await commands.start_plan(settings, client_id, level, _parse_sections(sections))
    console.print(f"workflow [bold]{handle.id}[/]: {settings_url(handle.id)}")
    if not wait:
        return
    with Live(console=console, refresh_per_second=4) as live:
        result = await commands.watch_plan(handle, lambda p: live.update(progress_table(p)))
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
    handle = await commands.regenerate_plan(settings, client_id, _parse_sections(fields), level)
    console.print(f"workflow [bold]{handle.id}[/]: {settings.workflow_url(handle.id)}")
    if wait:
        with Live(console=console, refresh_per_second=4) as live:
            result = await commands.watch_plan(handle, lambda p: live.update(progress_table(p)))
        _print_result(client_id, result)


def settings_url(workflow_id: str) -> str:
    return get_settings().workflow_url(workflow_id)


@plan_app.command("show")
@_run
async def plan_show(
    client_id: str,
    format: str = typer.Option("md", "--format", "-f", help="md or json"),
) -> None:
    """Print the latest business plan of a client as Markdown or JSON."""
    _check_format(format)
    text = await commands.show_document(get_settings(), client_id, DocumentKind.BUSINESS_PLAN, format)
    _print_document(text, format)


# -- deliverables --------------------------------------------------------------------------
@deliverable_app.command("generate")
@_run
async def deliverable_generate(
    client_id: str,
    month: int = typer.Option(..., "--month", "-m", help="1–8 (M1–M8)."),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="Wait and show progress."),
) -> None:
    """Generate (or join the running generation of) month N's five deliverable documents."""
    settings = get_settings()
    handle = await commands.start_deliverable(settings, client_id, month)
    console.print(f"workflow [bold]{handle.id}[/]: {settings.workflow_url(handle.id)}")
    if not wait:
        return
    with Live(console=console, refresh_per_second=4) as live:
        result = await commands.watch_deliverable(handle, lambda p: live.update(progress_table(p)))
    reused = sum(1 for s in result.sections if s.cache_tier != "none")
    console.print(
        f"month {result.month}: {len(result.documents)} documents, {len(result.sections)} sections "
        f"({reused} reused), {result.total_tokens:,} tokens, ${float(result.total_cost):.4f}; "
        f"see `wavelaunch deliverable show {client_id} --month {result.month}`"
    )
    for doc in result.documents:
        console.print(f"  {doc.document_key} v{doc.version} ({doc.markdown_chars:,} chars)")


@deliverable_app.command("show")
@_run
async def deliverable_show(
    client_id: str,
    month: int = typer.Option(..., "--month", "-m", help="1–8 (M1–M8)."),
    document: str | None = typer.Option(None, "--document", "-d", help="One document key, e.g. m1_brand_architecture."),
    format: str = typer.Option("md", "--format", "-f", help="md or json"),
) -> None:
    """Print the latest version of a month's deliverable documents as Markdown or JSON."""
    _check_format(format)
    text = await commands.show_deliverable(get_settings(), client_id, month, document, format)
    _print_document(text, format)


@app.command("api")
@_run
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
    """Run a failed plan again; finished sections are reused, only the rest is generated."""
    settings = get_settings()
    handle = await commands.retry_plan(settings, workflow_id)
    console.print(f"new run of [bold]{handle.id}[/]: {settings.workflow_url(handle.id)}")
    if wait:
        with Live(console=console, refresh_per_second=4) as live:
            result = await commands.watch_plan(handle, lambda p: live.update(progress_table(p)))
        reused = sum(1 for s in result.sections if s.cache_tier != "none")
        console.print(f"document v{result.document.version}: {reused} of {len(result.sections)} sections reused")


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
    """Totals, per operation, model, client and cache tier, with savings against the naive way."""
    report = await commands.usage_report(get_settings(), client_id=client)
    if as_json:
        print(json.dumps(report, indent=2, default=str))
        return
    for group in ("total", "operation", "model", "client", "cache_tier"):
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


# -- benchmarks ----------------------------------------------------------------------------
@bench_app.command("cost")
@_run
async def bench_cost(
    clients: int = typer.Option(20, "--clients", help="Clients in the workload."),
    seed: int = typer.Option(7, "--seed"),
    json_file: Path = typer.Option(Path("bench-results/cost.json"), "--json", help="Where the JSON goes."),
    arms: str | None = typer.Option(None, help="Only these arms, comma-separated (default: all)."),
) -> None:
    """Naive vs optimized vs lower bound vs ablations, on the real stack and the HTTP stub."""
    from wavelaunch.bench import cost
    from wavelaunch.bench.workload import workload_v1
    from wavelaunch.console import bench_cost_table

    result = await cost.run(workload_v1(clients, seed), get_settings(), _parse_sections(arms))
    console.print(bench_cost_table(result))
    console.print(
        f"optimized/naive: tokens {result['token_ratio']}, dollars {result['cost_ratio']}; "
        f"optimized/lower bound: {result['lower_bound_ratio']}; lower bound/naive: {result['lower_bound_vs_naive']}"
    )
    cost.write_json(result, json_file)
    console.print(f"JSON written to {json_file}")


@bench_app.command("cache")
@_run
async def bench_cache(
    sizes: str = typer.Option("1000,10000,100000", help="Cache sizes to measure, comma-separated."),
    lookups: int = typer.Option(500, help="Lookups per size and kind."),
    json_file: Path = typer.Option(Path("bench-results/cache.json"), "--json"),
) -> None:
    """Exact and semantic lookup latency (p50/p95/p99) at each cache size, on embedded Postgres."""
    from wavelaunch.bench import cache as cache_bench
    from wavelaunch.bench import cost

    async with cost.bench_stack(get_settings()) as endpoints:
        result = await cache_bench.run(
            endpoints.database_url, sizes=tuple(int(s) for s in sizes.split(",")), lookups=lookups
        )
    console.print(cache_bench.table(result))
    cost.write_json(result, json_file)
    console.print(f"JSON written to {json_file}")


@bench_app.command("webhooks")
@_run
async def bench_webhooks(
    requests: int = typer.Option(1000, help="Deliveries to send."),
    rate: float = typer.Option(300.0, help="Requests per second (open loop)."),
    json_file: Path = typer.Option(Path("bench-results/webhooks.json"), "--json"),
) -> None:
    """CRM webhook intake latency (p50/p95) at a fixed request rate, on the real stack."""
    from wavelaunch.bench import cost, webhooks

    result = await webhooks.run(get_settings(), requests=requests, rate=rate)
    lat = result["latency_ms"]
    console.print(
        f"{result['requests']} deliveries at {result['achieved_rate']}/s (target {rate}/s), "
        f"statuses {result['statuses']}: p50 {lat['p50']} ms, p95 {lat['p95']} ms, p99 {lat['p99']} ms, "
        f"max {lat['max']} ms; every workflow started {result['all_started_s']} s after the first delivery "
        f"({result['workflow_starts_per_s']}/s)"
    )
    cost.write_json(result, json_file)
    console.print(f"JSON written to {json_file}")


@bench_app.command("overhead")
@_run
async def bench_overhead(
    plans: int = typer.Option(5, "--plans", help="Plans to run, one after another."),
    seconds_per_token: float = typer.Option(0.002, help="Stub generation time per completion token."),
    level: Level = typer.Option(Level.COMPLETE),
    json_file: Path = typer.Option(Path("bench-results/overhead.json"), "--json"),
) -> None:
    """Plan wall time minus the slowest section's LLM time: what orchestration costs."""
    from wavelaunch.bench import cost, overhead

    result = await overhead.run(get_settings(), plans_count=plans, seconds_per_token=seconds_per_token, level=level)
    for row in result["plans"]:
        console.print(
            f"{row['plan']}: wall {row['wall_s']:.3f} s, slowest section {row['slowest_section_s']:.3f} s, "
            f"overhead {row['overhead_s']:.3f} s"
        )
    o = result["overhead_s"]
    console.print(
        f"orchestration overhead per plan: mean {o['mean']} s, p50 {o['p50']} s, p95 {o['p95']} s, max {o['max']} s"
    )
    cost.write_json(result, json_file)
    console.print(f"JSON written to {json_file}")


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
