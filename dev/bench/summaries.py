"""`wavelaunch bench summaries`: growing threads summarised round after round, naive vs ours.

Each client has a few threads; every round appends the same number of new messages to each
thread and asks for the client's summaries; a last round adds nothing (a repeated request).

- naive: the seed's way on the same stub: every thread re-sent whole with a verbose prompt to
  the top model each round, and the client summary from every field and every message.
- optimized: SummaryWorkflow through the real worker and Postgres: each thread's previous
  summary plus only its new messages, on the economy tier; the client summary from the thread
  summaries; nothing new costs nothing.

The stub answers a summary with its catalogue target in both arms, so neither wins by
answering shorter.
"""

from __future__ import annotations

import random
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from openai import AsyncOpenAI

from bench.cost import STUB_KEY, Totals, bench_stack, ledger_totals, llm_config
from contracts.models import SummaryRequest
from domain.catalogue.summaries import CLIENT_SUMMARY, THREAD_SUMMARY
from domain.client import parse_client
from domain.outputs.schemas import schema_name, strict_json_schema
from domain.outputs.summaries import ClientSummary, ThreadSummary
from domain.summaries import NewMessage, ThreadMessage
from service.intake import accept_client
from service.settings import Settings
from service.starts import start as start_summary
from service.wiring import close_dependencies, connect_temporal, ensure_search_attributes
from service.wiring import plan_dependencies as dependencies
from storage import db, messages
from stubs.llm_server import StubServer
from tokenopt import naive, pricing
from wavelaunch.commands import load_records, sample_client_file
from worker import build_worker

_SUBJECTS = ("launch timeline", "content calendar", "packaging proofs", "pricing", "supplier samples", "ads budget")
_PHRASES = (
    "Could we move the shoot to the following week?",
    "The supplier confirmed the second round of samples ships on Friday.",
    "I am worried the price point feels high for my audience.",
    "We drafted three captions for the teaser reel, please pick one.",
    "My community keeps asking when the bands will be available.",
    "The packaging mock-ups are attached, the sage colourway tested best.",
    "Can you send the contract before the end of the month?",
    "We need the raw clips by the eighth so we can batch-edit them.",
    "Love the direction, but the logo feels too small on the box.",
    "The ads budget for April is confirmed at the level we discussed.",
)
START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def round_messages(rng: random.Random, thread: int, rnd: int, per_round: int) -> list[NewMessage]:
    """``per_round`` new messages of a thread for a round (deterministic for the seed)."""
    out = []
    for i in range(per_round):
        n = rnd * per_round + i + 1
        text = " ".join(rng.sample(_PHRASES, 3))
        author = "client" if (n + thread) % 2 else "studio"
        out.append(NewMessage(id=f"m{n}", author=author, text=text, sent_at=START + timedelta(hours=n)))
    return out


def workload(clients: int, threads: int, rounds: int, per_round: int, seed: int) -> list[list[list[NewMessage]]]:
    """[round][thread] -> new messages; the same for every client. The last round adds nothing."""
    rng = random.Random(seed)
    plan = [[round_messages(rng, t, r, per_round) for t in range(threads)] for r in range(rounds)]
    return [*plan, [[] for _ in range(threads)]]


async def run_naive(plan: list[list[list[NewMessage]]], clients: int, stub: StubServer, model: str) -> Totals:
    """Every round: each thread re-sent whole, then the client summary from everything."""
    client = AsyncOpenAI(api_key=STUB_KEY, base_url=stub.base_url, max_retries=0)
    record = load_records(sample_client_file())[0].wire()
    totals = Totals(extra={"prompt_tokens_by_round": []})
    began = time.monotonic()
    thread_format = _format(THREAD_SUMMARY.key, ThreadSummary)
    client_format = _format(CLIENT_SUMMARY.key, ClientSummary)
    try:
        for _ in range(clients):
            history: dict[str, list[ThreadMessage]] = {f"t{t}": [] for t in range(len(plan[0]))}
            for r, new in enumerate(plan):
                before = totals.prompt_tokens
                for t, batch in enumerate(new):
                    thread = history[f"t{t}"]
                    thread += [ThreadMessage(**m.model_dump(), seq=len(thread) + 1) for m in batch]
                    await _call(client, model, naive.naive_summary_messages({f"t{t}": thread}), thread_format, totals)
                await _call(client, model, naive.naive_summary_messages(history, record), client_format, totals)
                _add_round(totals, r, totals.prompt_tokens - before)
    finally:
        await client.close()
    totals.seconds = time.monotonic() - began
    return totals


def _format(key: str, model: Any) -> dict[str, Any]:
    name = schema_name(key, 1)
    return {"type": "json_schema", "json_schema": {"name": name, "schema": strict_json_schema(model), "strict": True}}


async def _call(client: AsyncOpenAI, model: str, msgs: list[dict[str, str]], fmt: dict[str, Any], t: Totals) -> None:
    response = await client.chat.completions.create(model=model, messages=msgs, response_format=fmt)  # type: ignore[arg-type]
    usage = response.usage
    assert usage is not None
    t.calls += 1
    t.prompt_tokens += usage.prompt_tokens
    t.completion_tokens += usage.completion_tokens
    t.cost += pricing.cost(model, prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens)


def _add_round(totals: Totals, r: int, prompt_tokens: int) -> None:
    by_round = totals.extra["prompt_tokens_by_round"]
    while len(by_round) <= r:
        by_round.append(0)
    by_round[r] += prompt_tokens


async def run_optimized(plan: list[list[list[NewMessage]]], clients: int, stub: StubServer, base: Settings) -> Totals:
    """Every round through SummaryWorkflow on the embedded stack; figures from the usage ledger."""
    tag = f"s{uuid.uuid4().hex[:6]}"
    settings = base.model_copy(update={"task_queue": f"bench-{tag}"})
    sample = load_records(sample_client_file())[0].wire()
    totals = Totals(extra={"prompt_tokens_by_round": []})
    async with bench_stack(base) as endpoints:
        pool = await db.connect(endpoints.database_url)
        temporal = await connect_temporal(settings, endpoints.temporal_address)
        await ensure_search_attributes(temporal, settings.temporal_namespace)
        deps = await dependencies(settings, endpoints.database_url, llm_config(stub))
        began = time.monotonic()
        try:
            async with build_worker(temporal, settings, deps):
                ids = [f"{tag}-{c}" for c in range(clients)]
                for client_id in ids:
                    await accept_client(pool, parse_client(sample | {"id": client_id}))
                for r, new in enumerate(plan):
                    before = (await ledger_totals(pool, tag)).prompt_tokens
                    for client_id in ids:
                        for t, batch in enumerate(new):
                            if batch:
                                await messages.append_messages(pool, client_id, f"t{t}", batch)
                        handle = await start_summary(temporal, settings, SummaryRequest(client_id=client_id))
                        await handle.result()
                    _add_round(totals, r, (await ledger_totals(pool, tag)).prompt_tokens - before)
            ledger = await ledger_totals(pool, tag)
            baseline = await pool.fetchval(
                "SELECT coalesce(sum(baseline_prompt_tokens + baseline_completion_tokens), 0) FROM usage_ledger"
                " WHERE client_id LIKE $1",
                tag + "%",
            )
        finally:
            await close_dependencies(deps)
            await pool.close()
    ledger.seconds = time.monotonic() - began
    ledger.extra = {**totals.extra, "ledger_baseline_tokens": int(baseline)}
    return ledger


async def run(base: Settings, *, clients: int, threads: int, rounds: int, per_round: int, seed: int) -> dict[str, Any]:
    """Both arms over the same workload; the report (also the JSON written to disk)."""
    plan = workload(clients, threads, rounds, per_round, seed)
    with StubServer(api_key=STUB_KEY) as stub:
        results = {"naive": await run_naive(plan, clients, stub, base.naive_model)}
        stub.reset()
        results["optimized"] = await run_optimized(plan, clients, stub, base)
    naive_t, ours = results["naive"], results["optimized"]
    return {
        "workload": {
            "clients": clients,
            "threads_per_client": threads,
            "rounds": rounds,
            "new_messages_per_thread_per_round": per_round,
            "repeat_round": True,
            "seed": seed,
        },
        "arms": {name: t.as_dict() for name, t in results.items()},
        "token_ratio": round(ours.total_tokens / naive_t.total_tokens, 4) if naive_t.total_tokens else None,
        "cost_ratio": round(float(ours.cost) / float(naive_t.cost), 4) if naive_t.cost else None,
    }
