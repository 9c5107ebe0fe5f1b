"""`wavelaunch bench webhooks`: CRM webhook intake latency at a few hundred requests per second.

A real uvicorn server on loopback, the real intake (Postgres, Temporal dev server), and a local
load generator sending signed `client.created` deliveries for distinct clients at a fixed rate
(each one stores a snapshot and a plan start in the outbox, answered 202; the app's starter sends
the starts to Temporal; no worker runs, so nothing is generated). Reports the intake's latency and
how long after the first delivery every accepted start had reached Temporal.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import uvicorn

from crm import signature
from crm.app import create_app
from crm.intake import Intake
from stack.processes import free_port
from storage import db
from wavelaunch.bench.cost import bench_stack
from wavelaunch.bench.workload import make_clients
from wavelaunch.runtime import connect_temporal
from wavelaunch.settings import Settings

SECRET = "bench-secret"


def _percentile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run(base: Settings, *, requests: int, rate: float) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:6]
    settings = base.model_copy(update={"task_queue": f"bench-webhooks-{tag}"})
    async with bench_stack(base) as endpoints:
        pool = await db.connect(endpoints.database_url, max_size=10)
        temporal = await connect_temporal(settings, endpoints.temporal_address)
        intake = Intake(pool, temporal, settings)
        app = create_app(intake, secret=SECRET, max_age_seconds=300)
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        serving = asyncio.create_task(server.serve())
        while not server.started:  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
            await asyncio.sleep(0.05)
        records = make_clients(requests, seed=3)
        latencies: list[float] = []
        statuses: dict[int | str, int] = {}
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:

                async def send(i: int) -> None:
                    data = records[i] | {"id": f"wh{tag}{i:05d}"}
                    sent = datetime.now(UTC).isoformat()
                    body = json.dumps({"event": "client.created", "timestamp": sent, "data": data}).encode()
                    headers = {
                        "X-Webhook-ID": f"whd_{tag}_{i}",
                        "X-Webhook-Event": "client.created",
                        "X-Webhook-Timestamp": sent,
                        "X-Webhook-Signature": signature.sign(body, SECRET),
                        "Content-Type": "application/json",
                    }
                    began = time.perf_counter()
                    try:
                        answer = await http.post("/webhooks/crm", content=body, headers=headers)
                        status: int | str = answer.status_code
                    except httpx.TimeoutException:
                        status = "timeout"  # the CRM's sender gives up at 10 s too
                    latencies.append((time.perf_counter() - began) * 1000)
                    statuses[status] = statuses.get(status, 0) + 1

                began = time.perf_counter()
                tasks = []
                for i in range(requests):
                    # Open loop: requests leave on schedule whether or not earlier ones answered.
                    await asyncio.sleep(max(0.0, began + i / rate - time.perf_counter()))
                    tasks.append(asyncio.create_task(send(i)))
                await asyncio.gather(*tasks)
                elapsed = time.perf_counter() - began
                await intake.starts.idle()
                all_started = time.perf_counter() - began
        finally:
            server.should_exit = True
            with contextlib.suppress(Exception):
                await serving
            await pool.close()
    ordered = sorted(latencies)
    return {
        "requests": requests,
        "target_rate": rate,
        "achieved_rate": round(requests / elapsed, 1),
        "statuses": statuses,
        # From the first delivery until every accepted start had been sent to Temporal.
        "all_started_s": round(all_started, 2),
        "workflow_starts_per_s": round(requests / all_started, 1),
        "latency_ms": {
            "p50": round(_percentile(ordered, 0.5), 2),
            "p95": round(_percentile(ordered, 0.95), 2),
            "p99": round(_percentile(ordered, 0.99), 2),
            "max": round(ordered[-1], 2),
            "mean": round(statistics.mean(ordered), 2),
        },
    }
