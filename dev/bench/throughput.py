"""`wavelaunch bench throughput`: plans per minute and per-plan orchestration overhead with 1, 2,
4 ... worker processes, against a bare Temporal fan-out of the same shape in the same run.

For each worker count: that many `wavelaunch worker` processes on a queue of their own, the
stub answering at a fixed token speed, a few warm-up plans (not counted), then ``plans``
complete plans (8 sections, batching off so each is one activity) kept ``in_flight`` at a time,
each worker with an activity slot for every section it may be given at once (as the bare arm's
worker, whose SDK default is 100 slots, has): the comparison is of orchestration, not of a slot
limit.
Overhead = a plan's wall time minus its slowest section's LLM time. The bare arm then runs the
same plans' section times as sleeping activities, with the same concurrency, on one in-process
worker against the same dev server (``overhead_ratio_p50``: ours over bare; the top-level figure
is the worst worker count's).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import psutil
from temporalio.client import Client
from temporalio.worker import Worker

from bench.bare_fanout import BareFanout, bare_sleep
from bench.cost import STUB_KEY, bench_settings, bench_stack
from bench.workload import make_clients
from contracts.models import PlanRequest
from domain.catalogue.plan import sections_for_level
from domain.client import parse_client
from domain.sections import Level
from service import starts
from service.intake import accept_client
from service.settings import Settings
from service.wiring import connect_temporal, ensure_search_attributes
from stack import postgres
from storage import db
from stubs.llm_server import StubServer

WARMUP = 4
SECTIONS_PER_PLAN = len(sections_for_level(Level.COMPLETE))


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))], 4)


def _figures(overheads: list[float], elapsed: float, count: int) -> dict[str, Any]:
    return {
        "plans": count,
        "elapsed_s": round(elapsed, 2),
        "plans_per_minute": round(count / elapsed * 60, 1),
        "overhead_s": {
            "p50": _pct(overheads, 0.5),
            "p95": _pct(overheads, 0.95),
            "mean": round(statistics.mean(overheads), 4),
        },
    }


async def _in_flight(count: int, limit: int, one: Callable[[int], Awaitable[None]]) -> float:
    """Run ``one(i)`` for i < count, ``limit`` at a time; the seconds it took."""
    gate = asyncio.Semaphore(limit)

    async def run(i: int) -> None:
        async with gate:
            await one(i)

    began = time.monotonic()
    await asyncio.gather(*(run(i) for i in range(count)))
    return time.monotonic() - began


@contextlib.asynccontextmanager
async def _workers(n: int, env: dict[str, str], state: Path) -> AsyncIterator[list[int]]:
    procs = []
    state.mkdir(parents=True, exist_ok=True)
    try:
        for i in range(n):
            out = (state / f"worker{i}.log").open("wb")
            procs.append(
                await asyncio.create_subprocess_exec(
                    str(Path(sys.executable).parent / "wavelaunch"),
                    "worker",
                    env=env | {"WAVELAUNCH_STATE_DIR": str(state / f"w{i}")},
                    stdout=out,
                    stderr=out,
                )
            )
        yield [proc.pid for proc in procs]
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.send_signal(signal.SIGINT)
        for proc in procs:
            try:
                await asyncio.wait_for(proc.wait(), timeout=30)
            except TimeoutError:
                proc.kill()
                await proc.wait()


def _cpu_seconds(pids: list[int]) -> float:
    """User and system CPU the worker processes have used so far."""
    return sum(sum(psutil.Process(pid).cpu_times()[:2]) for pid in pids)


class StackCPU:
    """CPU used so far by the benchmark's own stack: the Temporal dev server (found by its state
    file on its command line) and Postgres (the postmaster and its backends, and those reaped)."""

    def __init__(self, settings: Settings):
        self.temporal_file = str(settings.temporal_state_file.resolve())
        self.pgdata = settings.pgdata_dir

    def seconds(self) -> dict[str, float]:
        out = {"temporal": 0.0, "postgres": 0.0}
        for proc in psutil.process_iter(["cmdline"]):
            if self.temporal_file in (proc.info["cmdline"] or []):
                with contextlib.suppress(psutil.Error):
                    out["temporal"] += sum(proc.cpu_times()[:2])
        if (server := postgres.running(self.pgdata)) is not None:
            with contextlib.suppress(psutil.Error):
                master = psutil.Process(server.pid)
                times = master.cpu_times()
                out["postgres"] += sum(times[:4])  # its own, and its exited backends'
                for child in master.children(recursive=True):
                    with contextlib.suppress(psutil.Error):
                        out["postgres"] += sum(child.cpu_times()[:2])
        return out

    def per_plan(self, before: dict[str, float], plans: int) -> dict[str, float]:
        after = self.seconds()
        return {k: round((after[k] - before[k]) / plans * 1000, 1) for k in after}


async def _ours(
    temporal: Client,
    settings: Settings,
    pool: Any,
    tag: str,
    count: int,
    in_flight: int,
    pids: list[int],
    stack_cpu: StackCPU,
) -> tuple[dict[str, Any], list[list[float]]]:
    records = make_clients(count + WARMUP, seed=41)
    for i, record in enumerate(records):
        record["id"] = f"{tag}-{i}"
        await accept_client(pool, parse_client(record))
    overheads: list[float] = []
    shapes: list[list[float]] = []

    async def one(i: int) -> None:
        began = time.monotonic()
        handle = await starts.start(temporal, settings, PlanRequest(client_id=records[i]["id"], level=Level.COMPLETE))
        result = await handle.result()
        wall = time.monotonic() - began
        seconds = [s.duration_ms / 1000 for s in result.sections]
        if i >= WARMUP:
            overheads.append(wall - max(seconds))
            shapes.append(seconds)

    await _in_flight(WARMUP, in_flight, one)
    cpu, stack_before = _cpu_seconds(pids), stack_cpu.seconds()
    elapsed = await _in_flight(count, in_flight, lambda i: one(i + WARMUP))
    figures = _figures(overheads, elapsed, count)
    # Our worker processes' CPU per measured plan; the dev server's and Postgres' apart.
    figures["worker_cpu_ms_per_plan"] = round((_cpu_seconds(pids) - cpu) / count * 1000, 1)
    figures["stack_cpu_ms_per_plan"] = stack_cpu.per_plan(stack_before, count)
    return figures, shapes


async def _bare(
    temporal: Client, queue: str, shapes: list[list[float]], in_flight: int, stack_cpu: StackCPU
) -> dict[str, Any]:
    overheads: list[float] = []

    async def one(i: int, record: bool = True) -> None:
        began = time.monotonic()
        shape = shapes[i % len(shapes)]  # the warm-up reuses the first shapes when plans are few
        await temporal.execute_workflow(BareFanout.run, shape, id=f"bare-{uuid.uuid4().hex}", task_queue=queue)
        if record:
            overheads.append(time.monotonic() - began - max(shape))

    async with Worker(temporal, task_queue=queue, workflows=[BareFanout], activities=[bare_sleep]):
        await _in_flight(WARMUP, in_flight, lambda i: one(i, record=False))
        cpu, stack_before = time.process_time(), stack_cpu.seconds()
        elapsed = await _in_flight(len(shapes), in_flight, one)
        used = time.process_time() - cpu
        stack = stack_cpu.per_plan(stack_before, len(shapes))
    figures = _figures(overheads, elapsed, len(shapes))
    # This process: the bare worker, its client and the (idle) stub.
    figures["worker_cpu_ms_per_plan"] = round(used / len(shapes) * 1000, 1)
    figures["stack_cpu_ms_per_plan"] = stack
    return figures


async def run(
    base: Settings, *, workers: list[int], plans_count: int, seconds_per_token: float, in_flight_per_worker: int
) -> dict[str, Any]:
    tag = f"t{uuid.uuid4().hex[:6]}"
    out: dict[str, Any] = {
        "plans_per_count": plans_count,
        "warmup_plans": WARMUP,
        "level": Level.COMPLETE.value,
        "seconds_per_completion_token": seconds_per_token,
        "in_flight_per_worker": in_flight_per_worker,
        "activity_slots_per_worker": in_flight_per_worker * SECTIONS_PER_PLAN,
        "cpus": os.cpu_count(),
        "workers": {},
    }
    with StubServer(api_key=STUB_KEY, latency_per_completion_token=seconds_per_token) as stub:
        async with bench_stack(base) as endpoints:
            stack_cpu = StackCPU(bench_settings(base))
            temporal = await connect_temporal(base, endpoints.temporal_address)
            await ensure_search_attributes(temporal, base.temporal_namespace)
            pool = await db.connect(endpoints.database_url)
            try:
                for n in workers:
                    queue = f"bench-{tag}-w{n}"
                    settings = base.model_copy(update={"task_queue": queue})
                    env = os.environ | {
                        "TEMPORAL_ADDRESS": endpoints.temporal_address,
                        "DATABASE_URL": endpoints.database_url,
                        "OPENAI_API_KEY": STUB_KEY,
                        "OPENAI_BASE_URL": stub.base_url,
                        "WAVELAUNCH_TASK_QUEUE": queue,
                        "WAVELAUNCH_WORKER_METRICS_PORT": "0",
                        "WAVELAUNCH_DISABLED_TECHNIQUES": '["batching"]',
                        "WAVELAUNCH_WORKER_MAX_CONCURRENT_ACTIVITIES": str(in_flight_per_worker * SECTIONS_PER_PLAN),
                    }
                    in_flight = in_flight_per_worker * n
                    async with _workers(n, env, base.state_dir / "bench" / f"{tag}-w{n}") as pids:
                        ours, shapes = await _ours(
                            temporal, settings, pool, f"{tag}-w{n}", plans_count, in_flight, pids, stack_cpu
                        )
                    bare = await _bare(temporal, f"{queue}-bare", shapes, in_flight, stack_cpu)
                    ratio = ours["overhead_s"]["p50"] / bare["overhead_s"]["p50"] if bare["overhead_s"]["p50"] else None
                    out["workers"][str(n)] = {
                        "ours": ours,
                        "bare": bare,
                        "overhead_ratio_p50": round(ratio, 2) if ratio else None,
                    }
            finally:
                await pool.close()
    ratios = [w["overhead_ratio_p50"] for w in out["workers"].values() if w["overhead_ratio_p50"]]
    out["overhead_ratio_p50"] = max(ratios) if ratios else None
    return out
