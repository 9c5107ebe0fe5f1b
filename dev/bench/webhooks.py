"""`wavelaunch bench webhooks`: CRM webhook intake latency at a few hundred requests per second.

`wavelaunch api` in its own process on loopback (the real intake: Postgres, Temporal dev server),
and a load generator in this process sending signed `client.created` deliveries for distinct
clients at a fixed rate
(each one stores a snapshot and a plan start in the outbox, answered 202; the app's starter sends
the starts to Temporal; no worker runs, so nothing is generated). Reports the intake's latency and
how long after the first delivery every accepted start had reached Temporal.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import httpx

from bench.cost import bench_stack
from bench.workload import make_clients
from domain import signature
from service.settings import Settings
from stack.processes import free_port
from storage import db, workflow_starts

SECRET = "bench-secret"


def _percentile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@contextlib.asynccontextmanager
async def _api_process(settings: Settings, database_url: str, temporal_address: str) -> AsyncIterator[str]:
    """`wavelaunch api` in its own process (as deployed: the load generator does not share its
    Python thread); yields its base URL once /healthz answers."""
    port = free_port()
    env = os.environ | {
        "DATABASE_URL": database_url,
        "TEMPORAL_ADDRESS": temporal_address,
        # Its own state dir: the bench stack's record (under bench/) belongs to this process.
        "WAVELAUNCH_STATE_DIR": str(settings.state_dir / "bench-api"),
        "WAVELAUNCH_TASK_QUEUE": settings.task_queue,
        "WAVELAUNCH_WEBHOOK_SECRET": SECRET,
        "WAVELAUNCH_API_PORT": str(port),
        # The intake's own cost, as measured before schedules: a client's nine schedules are
        # nine more Temporal calls per client.created, measured apart from this.
        "WAVELAUNCH_SCHEDULES": "false",
    }
    log = settings.state_dir / "bench-api" / "api.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).parent / "wavelaunch"), "api", env=env, stdout=out, stderr=out
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base_url, timeout=2) as http:
            for _ in range(600):
                if proc.returncode is not None:
                    raise RuntimeError(f"wavelaunch api exited ({proc.returncode}); see {log}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get("/healthz")).status_code == 200:
                        break
                await asyncio.sleep(0.1)
            else:
                raise RuntimeError(f"wavelaunch api did not answer within 60 s; see {log}")
        yield base_url
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(proc.wait(), timeout=20)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def run(base: Settings, *, requests: int, rate: float) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:6]
    settings = base.model_copy(update={"task_queue": f"bench-webhooks-{tag}"})
    async with bench_stack(base) as endpoints:
        pool = await db.connect(endpoints.database_url, max_size=2)
        records = make_clients(requests, seed=3)
        latencies: list[float] = []
        statuses: dict[int | str, int] = {}
        try:
            async with (
                _api_process(settings, endpoints.database_url, endpoints.temporal_address) as base_url,
                # aiohttp, not httpx, sends the load: httpx's connection pool took ~70% of a core
                # at 300/s (py-spy), on the cores the API shares, and so set the ceiling measured.
                aiohttp.ClientSession(
                    base_url=base_url,
                    timeout=aiohttp.ClientTimeout(total=10),  # the CRM's sender gives up at 10 s too
                    connector=aiohttp.TCPConnector(limit=100),
                ) as http,
            ):

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
                    status: int | str
                    try:
                        async with http.post("/webhooks/crm", data=body, headers=headers) as answer:
                            await answer.read()
                            status = answer.status
                    except TimeoutError:
                        status = "timeout"
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
                # The API's starter sends the accepted starts to Temporal behind the answers.
                while await workflow_starts.count_pending(pool):  # noqa: ASYNC110 - another process
                    await asyncio.sleep(0.05)
                all_started = time.perf_counter() - began
                sent = await pool.fetchval(
                    "SELECT count(*) FROM workflow_starts WHERE workflow_id LIKE $1 AND done_at IS NOT NULL",
                    f"plan-wh{tag}%",
                )
        finally:
            await pool.close()
    ordered = sorted(latencies)
    return {
        "requests": requests,
        "target_rate": rate,
        "achieved_rate": round(requests / elapsed, 1),
        "statuses": statuses,
        "starts_sent": sent,  # accepted and sent to Temporal: one per delivery, none lost
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
