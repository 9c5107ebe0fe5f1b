"""`wavelaunch bench overhead`: what Temporal orchestration adds to a plan's wall time.

Each plan fans out its sections concurrently, so its floor is the slowest section's LLM call.
Overhead = plan wall time (start to result, seen by the client) minus that slowest call, with
the stub answering at a fixed generation speed so sections take realistic, repeatable times.
"""

from __future__ import annotations

import statistics
import time
import uuid
from typing import Any

from bench.cost import STUB_KEY, bench_stack, llm_config
from bench.workload import make_clients
from contracts.models import PlanRequest
from domain.client import parse_client
from domain.sections import Level
from service import starts
from service.intake import accept_client
from service.settings import Settings
from service.wiring import close_dependencies, connect_temporal, ensure_search_attributes, plan_dependencies
from storage import db
from stubs.llm_server import StubServer
from worker import build_worker


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run(base: Settings, *, plans_count: int, seconds_per_token: float, level: Level) -> dict[str, Any]:
    tag = f"o{uuid.uuid4().hex[:6]}"
    settings = base.model_copy(update={"task_queue": f"bench-{tag}"})
    rows = []
    with StubServer(api_key=STUB_KEY, latency_per_completion_token=seconds_per_token) as stub:
        async with bench_stack(base) as endpoints:
            temporal = await connect_temporal(settings, endpoints.temporal_address)
            await ensure_search_attributes(temporal, settings.temporal_namespace)
            deps = await plan_dependencies(settings, endpoints.database_url, llm_config(stub))
            pool = await db.connect(endpoints.database_url)
            try:
                async with build_worker(temporal, settings, deps):
                    for i, record in enumerate(make_clients(plans_count, seed=11)):
                        record["id"] = f"{tag}-{i}"
                        await accept_client(pool, parse_client(record))
                        began = time.monotonic()
                        handle = await starts.start(
                            temporal, settings, PlanRequest(client_id=record["id"], level=level)
                        )
                        result = await handle.result()
                        wall = time.monotonic() - began
                        slowest = max(s.duration_ms for s in result.sections) / 1000
                        rows.append(
                            {
                                "plan": handle.id,
                                "wall_s": round(wall, 3),
                                "slowest_section_s": slowest,
                                "overhead_s": round(wall - slowest, 3),
                            }
                        )
            finally:
                await pool.close()
                await close_dependencies(deps)
    overheads = [r["overhead_s"] for r in rows]
    return {
        "plans": rows,
        "level": level.value,
        "seconds_per_completion_token": seconds_per_token,
        "overhead_s": {
            "mean": round(statistics.mean(overheads), 3),
            "p50": round(_percentile(overheads, 0.5), 3),
            "p95": round(_percentile(overheads, 0.95), 3),
            "max": round(max(overheads), 3),
        },
    }
