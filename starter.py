"""Start a client's business plan through the service core and wait for it, as the Temporal
samples' starters do: connect, start ``plan-<clientId>`` (or join it if running), print the result.

    python starter.py CLIENT_ID [--level essential|standard|complete]

`wavelaunch plan generate` does the same with more options and a live progress table. A worker
must be running (`python worker.py`); the embedded parts this needs are started if they are not up.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from temporalio.client import WorkflowFailureError

import stack
from contracts.models import PlanRequest, PlanResult
from domain.sections import Level, UnknownSection
from service import starts
from service.settings import get_settings
from service.wiring import connect_temporal
from stack.errors import StackError
from storage import clients, db
from storage.clients import UnknownClient


async def main(client_id: str, level: Level) -> PlanResult:
    settings = get_settings()
    endpoints = await stack.up(settings, with_llm=False)
    request = PlanRequest(client_id=client_id, level=level)
    pool = await db.connect(endpoints.database_url, max_size=2)
    try:
        await starts.check_request(pool, request)  # an unknown client is refused before anything starts
        current = await clients.get(pool, client_id)
    finally:
        await pool.close()
    client = await connect_temporal(settings, endpoints.temporal_address)
    handle = await starts.start(client, settings, request, announce_version=current.version)
    print(f"workflow {handle.id}: {settings.workflow_url(handle.id)}", flush=True)
    return await handle.result()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Start (or join) a client's business plan and wait for it.")
    parser.add_argument("client_id")
    parser.add_argument("--level", type=Level, choices=list(Level), default=Level.COMPLETE)
    args = parser.parse_args()
    code = 0
    try:
        result = asyncio.run(main(args.client_id, args.level))
        print(f"document v{result.document.version}: {result.total_tokens:,} tokens, ${float(result.total_cost):.4f}")
    except (UnknownClient, UnknownSection, StackError) as err:
        print(f"error: {err}", file=sys.stderr)
        code = 1
    except WorkflowFailureError as err:
        print(f"workflow failed: {err.cause or err}", file=sys.stderr)
        code = 1
    except KeyboardInterrupt:
        code = 130
    sys.stdout.flush()
    # As the CLI leaves: no interpreter finalisation, which the Temporal SDK's native threads can
    # abort (temporalio/sdk-python#300).
    os._exit(code)
