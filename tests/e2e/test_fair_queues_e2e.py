"""Fair queues on the real dev server: background work (deadlines days away) floods the worker,
and an interactive plan started after it still finishes in about the time it takes alone; with
both lanes on one queue (what one queue for everything does) it waits behind the flood.
Relative, generous bounds: the figures are printed, no absolute timing is asserted."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from temporalio.client import Client

from bench.workload import make_clients
from contracts.models import PlanRequest
from domain.client import parse_client
from domain.queues import Lane
from domain.sections import Level
from service import starts
from service.intake import accept_client
from service.settings import Settings
from service.wiring import LLMConfig, close_dependencies, plan_dependencies
from stubs.llm_server import StubServer
from tests.e2e.conftest import finished, make_settings
from worker import build_worker

pytestmark = pytest.mark.timeout(600)

FLOOD = 8  # background plans started first (3 sections each; 2 background slots)


@pytest.fixture
def slow_stub(stub: StubServer) -> Iterator[StubServer]:
    """The stub at a fixed generation speed, so a section takes a realistic, repeatable time."""
    before = stub.state.latency_per_completion_token
    stub.state.latency_per_completion_token = 0.002
    yield stub
    stub.state.latency_per_completion_token = before


async def _plan_seconds(client: Client, settings: Settings, client_id: str) -> float:
    began = time.monotonic()
    handle = await starts.start(client, settings, PlanRequest(client_id=client_id, level=Level.ESSENTIAL))
    await finished(handle, within=300)
    return time.monotonic() - began


async def _run(client: Client, pool, database_url: str, llm_config: LLMConfig, tag: str, *, shared: bool) -> dict:
    """Interactive plan alone, then again behind FLOOD background plans; seconds of each."""
    settings = make_settings(worker_max_concurrent_activities=2, worker_max_concurrent_background_activities=2)
    if shared:
        # One queue for both lanes: the flood and the interactive plan share the same 4 slots.
        settings = settings.model_copy(update={"background_task_queue": settings.task_queue})
    records = make_clients(FLOOD + 2, seed=31)
    for i, record in enumerate(records):
        record["id"] = f"{tag}-{i}"
        await accept_client(pool, parse_client(record))
    deps = await plan_dependencies(settings, database_url, llm_config)
    try:
        async with build_worker(client, settings, deps):
            alone = await _plan_seconds(client, settings, records[0]["id"])
            later = datetime.now(UTC) + timedelta(days=3)
            flood = [
                await starts.start(
                    client, settings, PlanRequest(client_id=r["id"], level=Level.ESSENTIAL, deadline=later)
                )
                for r in records[2:]
            ]
            described = await flood[0].describe()
            await asyncio.sleep(0.5)  # the flood's sections are queued or running
            flooded = await _plan_seconds(client, settings, records[1]["id"])
            for handle in flood:
                await finished(handle, within=300)
    finally:
        await close_dependencies(deps)
    return {"alone": alone, "flooded": flooded, "flood_queue": described.task_queue, "settings": settings}


async def test_an_interactive_plan_is_not_stuck_behind_background_work(
    client, pool, database_url, llm_config, slow_stub
):
    lanes = await _run(client, pool, database_url, llm_config, "fair", shared=False)
    one_queue = await _run(client, pool, database_url, llm_config, "fifo", shared=True)
    print(
        f"\ninteractive plan: alone {lanes['alone']:.2f} s, behind {FLOOD} background plans"
        f" {lanes['flooded']:.2f} s with lanes; one queue: alone {one_queue['alone']:.2f} s,"
        f" flooded {one_queue['flooded']:.2f} s"
    )
    # The flood went to the background queue (deadline three days away).
    assert lanes["flood_queue"] == lanes["settings"].queue_for(Lane.BACKGROUND) != lanes["settings"].task_queue
    assert one_queue["flood_queue"] == one_queue["settings"].task_queue
    # With lanes: about the time it takes alone (generous: under twice).
    assert lanes["flooded"] < 2 * lanes["alone"]
    # One queue for everything: it waits behind the flood (the test would fail without lanes).
    assert one_queue["flooded"] > 2 * one_queue["alone"]
