"""The development commands of ``wavelaunch``: ``bench ...`` (the benchmarks) and ``eval quality``.

Declared under the ``wavelaunch.cli_plugins`` entry points (dev/pyproject.toml), which the product
CLI loads when they are installed (wavelaunch/plugins.py). Each module is imported inside its
command, so ``wavelaunch --help`` stays quick.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from domain.sections import Level
from service.settings import get_settings
from wavelaunch import commands
from wavelaunch.cli import exit_now, parse_list, run_command
from wavelaunch.console import console
from wavelaunch.input_files import read_json_file

bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks against the local stub (tables + JSON).")
eval_app = typer.Typer(no_args_is_help=True, help="Evaluations against an OpenAI-compatible endpoint.")


@bench_app.command("cost")
@run_command
async def bench_cost(
    clients: int = typer.Option(20, "--clients", help="Clients in the workload."),
    seed: int = typer.Option(7, "--seed"),
    json_file: Path = typer.Option(Path("bench-results/cost.json"), "--json", help="Where the JSON goes."),
    arms: str | None = typer.Option(None, help="Only these arms, comma-separated (default: all)."),
) -> None:
    """Naive vs optimized vs lower bound vs ablations, on the real stack and the HTTP stub."""
    from bench import cost
    from bench.tables import cost_table
    from bench.workload import workload_v1

    result = await cost.run(workload_v1(clients, seed), get_settings(), parse_list(arms, "--arms"))
    console.print(cost_table(result))
    console.print(
        f"optimized/naive: tokens {result['token_ratio']}, dollars {result['cost_ratio']}; "
        f"optimized/lower bound: {result['lower_bound_ratio']}; lower bound/naive: {result['lower_bound_vs_naive']}"
    )
    cost.write_json(result, json_file)
    console.print(f"JSON written to {json_file}")


@bench_app.command("studio")
@run_command
async def bench_studio(
    # 20 clients x 3 seeds took 15 min 40 s on 2 shared cores; 12 x 3 keeps the default near 10.
    clients: int = typer.Option(12, "--clients", help="Clients in the studio."),
    seeds: str = typer.Option("11,12,13", "--seeds", "--seed", help="Seeds, comma-separated: one workload each."),
    months: int = typer.Option(3, "--months", help="Months of deliverables, edits and threads (1-7)."),
    client_file: Path | None = typer.Option(
        None, "--client-file", help="A CRM record (JSON): the clients are it, varied per client."
    ),
    bound_models: str | None = typer.Option(
        None, "--bound-models", help="Lower bound's model per section kind, e.g. framework_strategy=gpt-4.1-mini."
    ),
    json_file: Path = typer.Option(Path("bench-results/studio.json"), "--json", help="Where the JSON goes."),
    arms: str = typer.Option(
        "naive,naive_verbose,naive_mini,naive_no_history,optimized",
        help="Arms, comma-separated: naive, naive_verbose, naive_mini, naive_no_history, optimized, no_<technique>.",
    ),
) -> None:
    """The studio's months (plans, deliverables, summaries, edits, repeats, retries): fair naive,
    its variants, ours and the independent lower bound, per seed and over seeds."""
    from bench import cost, studio
    from bench.lower_bound import parse_models
    from bench.tables import studio_tables
    from bench.workload import workload_studio
    from tokenopt.pricing import check_priced

    try:
        seed_list = [int(s) for s in parse_list(seeds, "--seeds") or []]
        models = parse_models(bound_models)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None
    if not seed_list:
        raise typer.BadParameter("give at least one seed, e.g. --seeds 11,12,13")
    check_priced(set(models.values()), set())
    base_record = None
    if client_file is not None:
        commands.load_records(client_file)  # refuses an invalid record, naming its fields
        data = read_json_file(client_file)
        base_record = data[0] if isinstance(data, list) else data
    try:  # bad sizes fail now, not after the first seed
        workload_studio(clients, seed_list[0], months=months, base_record=base_record)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None

    result = await studio.run_seeds(
        seed_list,
        lambda seed: workload_studio(clients, seed, months=months, base_record=base_record),
        get_settings(),
        parse_list(arms, "--arms"),
        models,
    )
    for table in studio_tables(result):
        console.print(table)
    cost.write_json(result, json_file)
    console.print(f"JSON written to {json_file} ({result['seconds']:.0f} s)")


@bench_app.command("deadlines")
@run_command
async def bench_deadlines(
    clients: int = typer.Option(5, "--clients", help="Clients in the studio month."),
    seed: int = typer.Option(11, "--seed"),
    latency_per_token: float = typer.Option(0.0002, "--latency-per-token", help="The stub's seconds per token."),
    flex_slowdown: float = typer.Option(3.0, "--flex-slowdown", help="Flex takes this many times as long."),
    refuse_share: float = typer.Option(0.1, "--refuse-share", min=0, max=1, help="Requests meeting a flex 429."),
    family: str = typer.Option("gpt-5", "--family", help="Models: gpt-5 (sold on flex) or gpt-4.1 (not)."),
    json_file: Path = typer.Option(Path("bench-results/deadlines.json"), "--json", help="Where the JSON goes."),
) -> None:
    """The studio month with deadlines: dollars by service tier against all-standard and the naive way."""
    from bench import cost, deadlines
    from bench.workload import workload_studio

    if family not in deadlines.FAMILIES:
        raise typer.BadParameter(f"--family must be one of {', '.join(deadlines.FAMILIES)}, not {family[:40]!r}")
    result = await deadlines.run(
        workload_studio(clients, seed),
        get_settings(),
        latency_per_token=latency_per_token,
        flex_slowdown=flex_slowdown,
        refuse_share=refuse_share,
        family=family,
    )
    console.print(f"naive ({result['naive_model']}): ${result['naive']['cost']:.4f}")
    for name, arm in result["arms"].items():
        tiers = ", ".join(f"{t} ${v['cost']:.4f} ({v['calls']} calls)" for t, v in arm["by_tier"].items())
        finish = arm["finish_vs_deadline"]
        console.print(
            f"{name}: ${arm['cost']:.4f} ({escape(tiers)}); {arm['batches']} batches; {finish['documents']} "
            f"documents, {finish['with_deadline']} with a deadline, {finish['missed']} missed"
        )
    console.print(
        f"deadlines/standard: {result['deadlines_vs_standard']}, deadlines/naive: {result['deadlines_vs_naive']}, "
        f"standard/naive: {result['standard_vs_naive']}"
    )
    cost.write_json(result, json_file)
    console.print(f"JSON written to {json_file}")


@bench_app.command("batching")
@run_command
async def bench_batching(
    clients: int = typer.Option(3, "--clients", help="Clients; each gets a complete plan and the months."),
    months: int = typer.Option(2, "--months", help="Deliverable months 1..N per client."),
    seed: int = typer.Option(7, "--seed"),
    json_file: Path = typer.Option(Path("bench-results/batching.json"), "--json", help="Where the JSON goes."),
) -> None:
    """The same plans and deliverable months with batching on and off, per document kind."""
    from bench import batching, cost

    result = await batching.run(get_settings(), clients=clients, months=months, seed=seed)
    console.print(batching.table(result))
    cost.write_json(result, json_file)
    console.print(f"JSON written to {json_file}")


@bench_app.command("cache")
@run_command
async def bench_cache(
    sizes: str = typer.Option("1000,10000,100000", help="Cache sizes to measure, comma-separated."),
    lookups: int = typer.Option(500, help="Lookups per size and kind."),
    json_file: Path = typer.Option(Path("bench-results/cache.json"), "--json"),
) -> None:
    """Exact and semantic lookup latency (p50/p95/p99) at each cache size, on embedded Postgres."""
    from bench import cache as cache_bench
    from bench import cost

    async with cost.bench_stack(get_settings()) as endpoints:
        result = await cache_bench.run(
            endpoints.database_url, sizes=tuple(int(s) for s in sizes.split(",")), lookups=lookups
        )
    console.print(cache_bench.table(result))
    cost.write_json(result, json_file)
    console.print(f"JSON written to {json_file}")


@bench_app.command("summaries")
@run_command
async def bench_summaries(
    clients: int = typer.Option(3, help="Clients."),
    threads: int = typer.Option(2, help="Threads per client."),
    rounds: int = typer.Option(8, help="Rounds of new messages (a repeat round with none follows)."),
    per_round: int = typer.Option(3, help="New messages per thread per round."),
    seed: int = typer.Option(7),
    json_file: Path = typer.Option(Path("bench-results/summaries.json"), "--json"),
) -> None:
    """Growing threads summarised every round: the naive way (whole thread each time) vs ours."""
    from rich.table import Table

    from bench import cost
    from bench import summaries as summary_bench
    from wavelaunch.console import money

    result = await summary_bench.run(
        get_settings(), clients=clients, threads=threads, rounds=rounds, per_round=per_round, seed=seed
    )
    table = Table(title="Summaries: naive vs optimized", title_justify="left")
    for column in ("arm", "calls", "prompt", "completion", "total", "cost", "prompt tokens by round"):
        table.add_column(column, justify="left" if column in ("arm", "prompt tokens by round") else "right")
    for name, arm in result["arms"].items():
        table.add_row(
            name,
            f"{arm['calls']:,}",
            f"{arm['prompt_tokens']:,}",
            f"{arm['completion_tokens']:,}",
            f"{arm['total_tokens']:,}",
            money(arm["cost"]),
            " ".join(str(n) for n in arm["prompt_tokens_by_round"]),
        )
    console.print(table)
    console.print(f"optimized/naive: tokens {result['token_ratio']}, dollars {result['cost_ratio']}")
    cost.write_json(result, json_file)
    console.print(f"JSON written to {json_file}")


@bench_app.command("webhooks")
@run_command
async def bench_webhooks(
    requests: int = typer.Option(1000, help="Deliveries to send."),
    rate: float = typer.Option(300.0, help="Requests per second (open loop)."),
    json_file: Path = typer.Option(Path("bench-results/webhooks.json"), "--json"),
) -> None:
    """CRM webhook intake latency (p50/p95) at a fixed request rate, on the real stack."""
    from bench import cost, webhooks

    result = await webhooks.run(get_settings(), requests=requests, rate=rate)
    lat = result["latency_ms"]
    console.print(
        f"{result['requests']} deliveries at {result['achieved_rate']}/s (target {rate}/s), "
        f"statuses {result['statuses']}: p50 {lat['p50']} ms, p95 {lat['p95']} ms, p99 {lat['p99']} ms, "
        f"max {lat['max']} ms; {result['starts_sent']} workflow starts sent, the last "
        f"{result['all_started_s']} s after the first delivery ({result['workflow_starts_per_s']}/s)"
    )
    cost.write_json(result, json_file)
    console.print(f"JSON written to {json_file}")


@bench_app.command("overhead")
@run_command
async def bench_overhead(
    plans: int = typer.Option(5, "--plans", help="Plans to run, one after another."),
    seconds_per_token: float = typer.Option(0.002, help="Stub generation time per completion token."),
    level: Level = typer.Option(Level.COMPLETE),
    json_file: Path = typer.Option(Path("bench-results/overhead.json"), "--json"),
) -> None:
    """Plan wall time minus the slowest section's LLM time: what orchestration costs."""
    from bench import cost, overhead

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


@bench_app.command("throughput")
@run_command
async def bench_throughput(
    workers: str = typer.Option("1,2,4", "--workers", help="Worker process counts to measure, comma-separated."),
    plans: int = typer.Option(50, "--plans", min=1, help="Measured plans per worker count (after 4 warm-up plans)."),
    seconds_per_token: float = typer.Option(0.0002, help="Stub generation time per completion token."),
    in_flight: int = typer.Option(2, "--in-flight", help="Plans kept running at once, per worker."),
    json_file: Path = typer.Option(Path("bench-results/throughput.json"), "--json"),
) -> None:
    """Plans per minute and orchestration overhead per worker count, against a bare Temporal fan-out."""
    from bench import cost, throughput

    try:
        counts = [int(n) for n in workers.split(",") if n.strip()]
    except ValueError:
        counts = []
    if not counts or any(n < 1 for n in counts):
        raise typer.BadParameter("a comma-separated list of worker counts, e.g. 1,2,4", param_hint="--workers")
    if plans < 1:
        raise typer.BadParameter("at least one plan", param_hint="--plans")
    result = await throughput.run(
        get_settings(),
        workers=counts,
        plans_count=plans,
        seconds_per_token=seconds_per_token,
        in_flight_per_worker=in_flight,
    )
    for n, row in result["workers"].items():
        ours, bare = row["ours"], row["bare"]
        console.print(
            f"{n} worker(s): {ours['plans_per_minute']} plans/min; overhead p50 {ours['overhead_s']['p50']} s,"
            f" p95 {ours['overhead_s']['p95']} s; bare fan-out p50 {bare['overhead_s']['p50']} s,"
            f" p95 {bare['overhead_s']['p95']} s ({bare['plans_per_minute']}/min);"
            f" ratio p50 {row['overhead_ratio_p50']}; worker CPU per plan {ours['worker_cpu_ms_per_plan']} ms"
            f" (bare {bare['worker_cpu_ms_per_plan']} ms); Temporal and Postgres CPU per plan"
            f" {_stack_cpu(ours)} (bare {_stack_cpu(bare)})"
        )
    cost.write_json(result, json_file)
    console.print(f"JSON written to {json_file}")


@bench_app.command("budget")
@run_command
async def bench_budget(
    plans: int = typer.Option(20, "--plans", help="Plans started at once."),
    tokens: int = typer.Option(20_000, "--tokens", help="The global daily token limit they race for."),
    level: Level = typer.Option(Level.ESSENTIAL),
    seconds_per_token: float = typer.Option(0.001, help="Stub generation time per completion token."),
    concurrency: int = typer.Option(32, help="Sections in flight on the worker."),
    json_file: Path = typer.Option(Path("bench-results/budget.json"), "--json"),
) -> None:
    """The budget race: concurrent plans against a small hard limit; the overshoot, per arm."""
    from bench import budget, cost

    result = await budget.run(
        get_settings(),
        plans_count=plans,
        token_limit=tokens,
        level=level,
        seconds_per_token=seconds_per_token,
        concurrency=concurrency,
    )
    for arm, r in result["arms"].items():
        peak = r["committed_peak_tokens"]
        console.print(
            f"{arm}: limit {tokens:,}, billed {r['billed_tokens']:,} (overshoot {r['overshoot_tokens']:+,}), "
            f"committed peak {f'{peak:,}' if peak is not None else '-'}; sections written "
            f"{r['sections_written']}/{r['sections_requested']}, refused {r['sections_refused']}; "
            f"plans completed {r['plans_completed']}/{plans}"
        )
    cost.write_json(result, json_file)
    console.print(f"JSON written to {json_file}")


@eval_app.command("quality")
@run_command
async def eval_quality(
    sections: str | None = typer.Option(None, "--sections", help="Section keys, comma-separated (default: a sample)."),
    clients: int = typer.Option(2, "--clients", help="Clients (synthetic CRM records) per section."),
    judge: str | None = typer.Option(None, "--judge", help="The judge model (default: WAVELAUNCH_NAIVE_MODEL)."),
    json_file: Path | None = typer.Option(None, "--json", help="Also write the report here as JSON."),
) -> None:
    """Our sections (routed model, projected prompt) vs the reference (top model, full record),
    judged pairwise with positions swapped, plus each side's needed-fact coverage and cost."""
    from bench import cost, quality

    try:
        result = await quality.run(get_settings(), sections=parse_list(sections), clients=clients, judge=judge)
    except quality.QualityError as err:
        console.print(f"[red]error:[/] {err}")
        exit_now(1)
    console.print(quality.table(result))
    coverage, spend = result["fact_coverage"], result["spend"]
    console.print(
        f"position consistency {result['position_consistency']}; needed facts in the output: ours "
        f"{coverage['ours']}, reference {coverage['reference']} (of {coverage['needed']}); "
        f"ours {spend['ours']['total_tokens']:,} tokens ${spend['ours']['cost']}, reference "
        f"{spend['reference']['total_tokens']:,} tokens ${spend['reference']['cost']}, judge ${spend['judge']['cost']}"
    )
    if result["mechanical"]:
        console.print(f"[yellow]{result['note']}[/]")
    if json_file is not None:
        cost.write_json(result, json_file)
        console.print(f"JSON written to {json_file}")


def _stack_cpu(arm: dict[str, Any]) -> str:
    cpu = arm["stack_cpu_ms_per_plan"]
    return f"{cpu['temporal']} + {cpu['postgres']} ms"
