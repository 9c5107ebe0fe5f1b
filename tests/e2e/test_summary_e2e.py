"""Summaries on the real parts: dev server, embedded Postgres, the HTTP stub via `openai`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError

from contracts.models import SummaryRequest
from domain.outputs.summaries import ThreadSummary
from domain.summaries import InvalidMessages, NewMessage, parse_threads
from service.starts import check_summary
from service.starts import start as start_summary
from service.threads import append_threads
from storage import messages, summaries
from storage.clients import UnknownClient
from storage.messages import UnknownThread
from stubs.llm_server import StubServer
from tests.e2e.test_business_plan_e2e import new_client
from tokenopt.counting import count_tokens
from tokenopt.summary_prompts import THREAD_STEP_TOKENS
from wavelaunch import commands
from wavelaunch.commands import sample_messages_file

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

CLIENT_EMAIL = "maya@example.com"  # the sample client's
START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def message(n: int, text: str | None = None) -> NewMessage:
    return NewMessage(
        id=f"m{n}",
        author="client" if n % 2 else "studio",
        text=text or f"Message {n}: we discussed the packaging proofs, the sample order and launch week {n} in detail.",
        sent_at=START + timedelta(hours=n),
    )


def calls(stub: StubServer, kind: str) -> list[dict]:
    return [r for r in stub.requests() if r["section"] == kind and r["status"] == 200]


def user_text(request: dict) -> str:
    """The user message: the data the prompt carries (the system message is fixed)."""
    return request["messages"][-1]["content"]


def prompt_text(request: dict) -> str:
    return "\n".join(m["content"] for m in request["messages"])


async def run(client, settings, request: SummaryRequest):  # type: ignore[no-untyped-def]
    handle = await start_summary(client, settings, request)
    return handle, await handle.result()


async def test_a_thread_summary_grows_with_new_messages_only(pool, client, settings, stub, worker):
    client_id = await new_client(pool)
    first = [message(n) for n in range(1, 31)]
    first[2] = message(3, f"Send the contract to {CLIENT_EMAIL} or call +44 7911 123456, thanks.")
    await messages.append_messages(pool, client_id, "t1", first)

    handle, result = await run(client, settings, SummaryRequest(client_id=client_id))
    assert handle.id == f"summary-{client_id}"
    [thread] = result.threads
    assert (thread.thread_id, thread.version, thread.through_seq, thread.new_messages) == ("t1", 1, 30, 30)
    assert result.client is not None and result.client.version == 1
    [call1] = calls(stub, "thread_summary")
    [client_call] = calls(stub, "client_summary")
    text1 = user_text(call1)
    assert all(f"#{n} " in text1 for n in range(1, 31)) and "PREVIOUS" not in text1
    # Contact details never reach the model, in the thread prompt or the client summary's.
    for request in (call1, client_call):
        assert CLIENT_EMAIL not in prompt_text(request) and "7911" not in prompt_text(request)
    assert "[email]" in text1 and "[phone]" in text1
    # The client summary reads the thread summaries, never the raw messages.
    assert "packaging proofs" not in user_text(client_call)
    v1 = await summaries.latest_thread(pool, client_id, "t1")
    assert v1 is not None
    ThreadSummary.model_validate(v1.content)

    # Three new messages: the second call carries the previous summary and those three only.
    await messages.append_messages(pool, client_id, "t1", [message(n) for n in range(31, 34)])
    stub.reset()
    _, result2 = await run(client, settings, SummaryRequest(client_id=client_id))
    [thread2] = result2.threads
    assert (thread2.version, thread2.through_seq, thread2.new_messages) == (2, 33, 3)
    [call2] = calls(stub, "thread_summary")
    text2 = user_text(call2)
    assert "PREVIOUS\n" + json.dumps(v1.content, separators=(",", ":")) in text2
    assert [f"#{n} " in text2 for n in (1, 30, 31, 32, 33)] == [False, False, True, True, True]
    # Tokens grow with the new messages, not the thread: the naive way re-sends all 33.
    assert call2["prompt_tokens"] < call1["prompt_tokens"]
    assert thread2.prompt_tokens == call2["prompt_tokens"]
    assert thread2.baseline_tokens - thread2.completion_tokens > thread.baseline_tokens - thread.completion_tokens
    assert thread2.baseline_tokens > 3 * thread2.prompt_tokens
    stored = await summaries.latest_thread(pool, client_id, "t1")
    assert stored is not None and (stored.from_seq, stored.through_seq) == (31, 33)
    # The client summary was written again, from the new thread summary.
    assert result2.client is not None and result2.client.version == 2
    assert result2.client.thread_summary_ids == [stored.id]

    # Nothing new: no LLM call at all, the stored summaries are returned, the ledger says so.
    stub.reset()
    _, result3 = await run(client, settings, SummaryRequest(client_id=client_id))
    assert stub.requests() == []
    assert result3.llm_calls == 0 and result3.total_tokens == 0
    assert result3.threads[0].cache_tier == "stored" and result3.threads[0].version == 2
    assert result3.client is not None and result3.client.cache_tier == "stored" and result3.client.version == 2
    rows = await usage_rows(pool, client_id)
    assert {r["document_type"] for r in rows} == {"summary"}
    assert [(r["operation"], r["cache_tier"]) for r in rows[-2:]] == [
        ("summarize_thread", "stored"),
        ("summarize_client", "stored"),
    ]
    assert all(r["baseline_prompt_tokens"] > 0 for r in rows if r["success"])


async def test_the_exact_cache_serves_a_summary_lost_from_storage(pool, client, settings, stub, worker):
    client_id = await new_client(pool)
    await messages.append_messages(pool, client_id, "t1", [message(n) for n in range(1, 6)])
    await run(client, settings, SummaryRequest(client_id=client_id, include_client_summary=False))
    await pool.execute("DELETE FROM thread_summaries WHERE client_id = $1", client_id)
    stub.reset()

    _, result = await run(client, settings, SummaryRequest(client_id=client_id, include_client_summary=False))
    assert stub.requests() == []
    assert result.client is None
    assert result.threads[0].cache_tier == "exact" and result.threads[0].llm_calls == 0
    assert await summaries.latest_thread(pool, client_id, "t1") is not None


async def test_an_invalid_answer_is_retried_on_the_next_tier_and_billed(pool, client, settings, stub, worker):
    client_id = await new_client(pool)
    await messages.append_messages(pool, client_id, "t1", [message(n) for n in range(1, 4)])
    stub.add_faults([{"kind": "invalid_json", "times": 1, "match": {"section": "thread_summary"}}])

    _, result = await run(client, settings, SummaryRequest(client_id=client_id, include_client_summary=False))
    [thread] = result.threads
    assert thread.llm_calls == 2 and thread.escalated and thread.model == settings.model_standard
    assert [r["model"] for r in calls(stub, "thread_summary")] == [settings.model_economy, settings.model_standard]
    rows = await usage_rows(pool, client_id)
    assert [(r["success"], r["routing_tier"]) for r in rows] == [(False, "economy"), (True, "standard")]
    assert rows[0]["error_message"].startswith("invalid output")


async def test_appends_are_idempotent_and_only_named_threads_are_summarised(pool, client, settings, stub, worker):
    client_id = await new_client(pool)
    threads = parse_threads(json.loads(sample_messages_file().read_text()))
    first = await append_threads(pool, client_id, threads)
    again = await append_threads(pool, client_id, threads)
    assert [(r.added, r.skipped) for r in first] == [(5, 0), (3, 0)]
    assert [(r.added, r.skipped, r.last_seq) for r in again] == [(0, 5, 5), (0, 3, 3)]
    assert await check_summary(pool, SummaryRequest(client_id=client_id)) == ["launch-timeline", "content-plan"]

    _, result = await run(client, settings, SummaryRequest(client_id=client_id, thread_ids=["content-plan"]))
    assert [t.thread_id for t in result.threads] == ["content-plan"]
    assert len(calls(stub, "thread_summary")) == 1
    assert all(CLIENT_EMAIL not in prompt_text(r) for r in stub.requests())


async def test_unknown_client_or_thread_is_refused_with_a_clear_error(pool, client, settings, stub, worker):
    with pytest.raises(UnknownClient, match="import it first"):
        await check_summary(pool, SummaryRequest(client_id="nobody"))
    with pytest.raises(UnknownClient):
        await append_threads(pool, "nobody", parse_threads([{"thread_id": "t", "messages": [message(1).model_dump()]}]))
    client_id = await new_client(pool)
    with pytest.raises(UnknownThread, match="no thread 'nope'"):
        await check_summary(pool, SummaryRequest(client_id=client_id, thread_ids=["nope"]))

    # The workflow refuses too, before any LLM call.
    with pytest.raises(WorkflowFailureError) as info:
        await run(client, settings, SummaryRequest(client_id="nobody"))
    cause = info.value.cause.cause
    assert isinstance(cause, ApplicationError) and cause.type == "UnknownClient"
    assert stub.requests() == []


async def usage_rows(pool: asyncpg.Pool, client_id: str) -> list[asyncpg.Record]:
    return await pool.fetch("SELECT * FROM usage_ledger WHERE client_id = $1 ORDER BY id", client_id)


async def test_summary_commands_store_the_file_run_and_show(pool, stub, worker, external, tmp_path):
    client_id = await new_client(pool)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"thread_id": "t1", "messages": [{"id": "a", "author": "robot", "text": "hi"}]}]))
    with pytest.raises(InvalidMessages, match=r"thread t1: messages\.0\.author.*thread t1: messages\.0\.sent_at"):
        await commands.start_summary(external, client_id, None, bad, True)
    broken = tmp_path / "broken.json"
    broken.write_text("[{")
    with pytest.raises(InvalidMessages, match="not JSON"):
        await commands.start_summary(external, client_id, None, broken, True)
    with pytest.raises(UnknownClient):
        await commands.start_summary(external, "nobody", None, sample_messages_file(), True)
    with pytest.raises(UnknownThread, match="'nope'"):
        await commands.start_summary(external, client_id, ["nope"], sample_messages_file(), True)
    # Nothing of a refused request was stored.
    assert await messages.thread_ids(pool, client_id) == []
    with pytest.raises(FileNotFoundError, match="summary generate"):
        await commands.show_summary(external, client_id, None, "md")

    handle = await commands.start_summary(external, client_id, ["content-plan"], sample_messages_file(), False)
    result = await handle.result()
    assert [t.thread_id for t in result.threads] == ["content-plan"] and result.client is None
    assert await messages.thread_ids(pool, client_id) == ["launch-timeline", "content-plan"]

    handle = await commands.start_summary(external, client_id, None, sample_messages_file(), True)
    result = await handle.result()
    assert [(t.thread_id, t.cache_tier) for t in result.threads] == [
        ("launch-timeline", "none"),
        ("content-plan", "stored"),
    ]
    shown = json.loads(await commands.show_summary(external, client_id, None, "json"))
    assert [t["thread_id"] for t in shown["threads"]] == ["launch-timeline", "content-plan"]
    assert shown["client_summary"]["version"] == 1
    assert list(shown["threads"][0]["content"]) == list(ThreadSummary.model_fields)
    markdown = await commands.show_summary(external, client_id, "content-plan", "md")
    assert "## Thread content-plan (v1, messages 1–3)" in markdown and "Client summary" not in markdown
    assert "### Action items" in markdown


async def test_a_long_first_thread_is_read_in_steps_each_folded_into_the_summary(pool, client, settings, stub, worker):
    client_id = await new_client(pool)
    # ~400 tokens a message: 60 of them are far more than one step reads.
    wall = "We went through the packaging proofs, sample order, pricing and launch plan once more. " * 20
    await messages.append_messages(pool, client_id, "t1", [message(n, f"{n}: {wall}") for n in range(1, 61)])

    _, result = await run(client, settings, SummaryRequest(client_id=client_id, thread_ids=["t1"]))
    [thread] = result.threads
    steps = calls(stub, "thread_summary")
    assert len(steps) >= 3, len(steps)
    assert (thread.through_seq, thread.new_messages, thread.llm_calls) == (60, 60, len(steps))
    # Each step fits the step size, and every step after the first starts from the summary so far.
    assert all(count_tokens(user_text(r)) < THREAD_STEP_TOKENS + 500 for r in steps)
    assert "PREVIOUS" not in user_text(steps[0]) and all("PREVIOUS" in user_text(r) for r in steps[1:])
    read = [n for r in steps for n in range(1, 61) if f"#{n} " in user_text(r)]
    assert read == list(range(1, 61))  # every message read once, in order
    rows = await pool.fetch(
        "SELECT baseline_prompt_tokens FROM usage_ledger WHERE client_id = $1 AND operation = 'summarize_thread'"
        " ORDER BY id",
        client_id,
    )
    # The naive way would read the thread in one call: its prompt is counted once, on the first step.
    assert len(rows) == len(steps) and rows[0]["baseline_prompt_tokens"] > 0
    assert [r["baseline_prompt_tokens"] for r in rows[1:]] == [0] * (len(rows) - 1)
