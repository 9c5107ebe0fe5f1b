"""The studio benchmark's naive arms: the fair naive way and its sensitivity variants.

``naive`` (issue #11) is what a competent straightforward implementation does: one call per
document with the seed's prompt and the whole client record as compact JSON, on the top model;
a month's documents carry the previous month's titles and key decisions; a thread summary
re-reads its thread at one line per message; the client summary is written from the thread
summaries just written; any change or repeat writes the whole document again; a failure bills
the cut-off half and starts the document again. The provider's automatic prefix cache is priced
in: the stub reports cached tokens as OpenAI does (>= 1,024-token prefixes, 128-token steps,
expiry after idle minutes on the simulated clock), billed at genai-prices' cached input price.

Variants, to show how much the headline rests on the baseline:
- ``naive_verbose``: the seed's prompts as the old benchmark sent them (indented JSON, every
  earlier month's full text, threads as indented JSON, the client summary from every message);
- ``naive_mini``: the fair arm on the mid model (what a cost-conscious user tries first), the
  same calls priced at that model;
- ``naive_no_history``: the fair arm with no earlier months at all.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from openai import AsyncOpenAI

from bench.totals import Totals
from bench.workload import Event, EventKind, Workload
from domain.catalogue import deliverables
from domain.catalogue.plan import resolve_sections
from domain.catalogue.summaries import CLIENT_SUMMARY, THREAD_SUMMARY
from domain.sections import Level, SectionSpec
from domain.summaries import Author, ThreadMessage
from stubs.llm_server import TARGET_HEADER, StubServer
from tokenopt import naive, pricing
from tokenopt.counting import count_tokens

KINDS = ("business_plan", "deliverable", "summary")
History = Literal["previous_month", "all_months_text", "none"]
_SENT_AT = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@dataclass(frozen=True)
class NaiveStyle:
    """How one naive arm writes its prompts."""

    # The seed's verbose prompts (indented JSON, threads as JSON, client summary from messages).
    verbose: bool = False
    history: History = "previous_month"


STYLES: dict[str, NaiveStyle] = {
    "naive": NaiveStyle(),
    "naive_verbose": NaiveStyle(verbose=True, history="all_months_text"),
    "naive_no_history": NaiveStyle(history="none"),
}
# Variants that are another arm's calls priced at another model: name -> (arm, settings field).
REPRICED: dict[str, tuple[str, str]] = {"naive_mini": ("naive", "model_standard")}


@dataclass(frozen=True)
class Call:
    kind: str
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int


@dataclass
class NaiveResult:
    """Every call one naive arm made (so it can be priced at any model), plus its figures."""

    model: str
    calls: list[Call] = field(default_factory=list)
    seconds: float = 0.0
    summary_tokens: dict[int, list[int]] = field(default_factory=lambda: defaultdict(list))
    history_prompt_tokens: int = 0


def stored_messages(thread: list[dict[str, str]]) -> list[ThreadMessage]:
    """A thread's messages as the service stores them (the verbose prompt sends ids and times)."""
    return [
        ThreadMessage(
            id=m["id"], author=Author(m["author"]), text=m["text"], sent_at=_SENT_AT + timedelta(minutes=i), seq=i + 1
        )
        for i, m in enumerate(thread)
    ]


class NaiveRun:
    """One naive arm over a workload, against the stub, on the simulated clock."""

    def __init__(self, stub: StubServer, model: str, style: NaiveStyle):
        self.stub = stub
        self.client = AsyncOpenAI(api_key="bench", base_url=stub.base_url, max_retries=0)
        self.style = style
        self.result = NaiveResult(model=model)
        self.counting = True
        # client -> month -> [(document title, its text)] (the latest version of each).
        self.written: dict[int, dict[int, list[tuple[str, str]]]] = defaultdict(dict)
        # (client, thread) -> the latest thread summary's text (the fair client summary reads these).
        self.thread_summaries: dict[tuple[int, int], str] = {}

    async def call(self, kind: str, messages: list[dict[str, str]], target: int, *, limit: int | None = None) -> str:
        response = await self.client.chat.completions.create(
            model=self.result.model,
            messages=messages,  # type: ignore[arg-type]
            max_tokens=limit,
            extra_headers={TARGET_HEADER: str(target)},
        )
        usage = response.usage
        assert usage is not None
        cached = usage.prompt_tokens_details.cached_tokens if usage.prompt_tokens_details else 0
        if self.counting:
            self.result.calls.append(Call(kind, usage.prompt_tokens, cached or 0, usage.completion_tokens))
        return response.choices[0].message.content or ""

    async def document(self, kind: str, messages: list[dict[str, str]], target: int, fail: bool) -> str:
        if fail:  # cut off mid-way (billed), then the whole document again
            await self.call(kind, messages, target, limit=target // 2)
        return await self.call(kind, messages, target)

    def _document_messages(
        self, record: dict[str, Any], specs: tuple[SectionSpec, ...] | list[SectionSpec], title: str, history: str
    ) -> list[dict[str, str]]:
        if self.style.verbose:
            messages = naive.naive_messages(record, specs, title)
            if history:
                messages[-1]["content"] += f"\n\nBuild on the earlier months' deliverables:\n{history}"
            return messages
        return naive.fair_messages(record, specs, title, history)

    def _history(self, client: int, n: int) -> str:
        earlier = self.written[client]
        if self.style.history == "all_months_text":
            return "\n\n".join(text for m in range(1, n) for _, text in earlier.get(m, []))
        if self.style.history == "previous_month" and n - 1 in earlier:
            return naive.history_lines([(title, naive.key_decisions(text)) for title, text in earlier[n - 1]])
        return ""

    async def plan(self, record: dict[str, Any], fail: bool = False) -> None:
        specs = resolve_sections(Level.COMPLETE)
        target = sum(s.target_tokens for s in specs)
        await self.document("business_plan", self._document_messages(record, specs, "business plan", ""), target, fail)

    async def month(self, client: int, record: dict[str, Any], n: int, fail: bool = False) -> None:
        m = deliverables.month(n)
        history = self._history(client, n)
        texts = []
        for i, doc in enumerate(m.documents):
            specs = deliverables.document_sections(doc.key)
            title = f"{doc.title} deliverable document (M{n} {m.title})"
            if history and self.counting:
                self.result.history_prompt_tokens += count_tokens(history, self.result.model) * (
                    2 if fail and i == 0 else 1
                )
            target = sum(s.target_tokens for s in specs)
            text = await self.document(
                "deliverable", self._document_messages(record, specs, title, history), target, fail and i == 0
            )
            texts.append((doc.title, text))
        self.written[client][n] = texts

    async def thread_summary(self, client: int, thread: int, messages: list[dict[str, str]], batch: int) -> None:
        stored = stored_messages(messages)
        if self.style.verbose:
            prompt = naive.naive_summary_messages({f"thread-{thread}": stored})
        else:
            prompt = naive.fair_thread_summary_messages(stored)
        before = len(self.result.calls)
        text = await self.call("summary", prompt, THREAD_SUMMARY.target_tokens)
        self.thread_summaries[(client, thread)] = text
        if self.counting and len(self.result.calls) > before:
            c = self.result.calls[-1]
            self.result.summary_tokens[batch].append(c.prompt_tokens + c.completion_tokens)

    async def client_summary(self, client: int, record: dict[str, Any], threads: list[list[dict[str, str]]]) -> None:
        if self.style.verbose:
            transcript = {f"thread-{t}": stored_messages(messages) for t, messages in enumerate(threads)}
            prompt = naive.naive_summary_messages(transcript, record)
        else:
            summaries = [text for (c, _), text in sorted(self.thread_summaries.items()) if c == client]
            prompt = naive.fair_client_summary_messages(record, summaries)
        await self.call("summary", prompt, CLIENT_SUMMARY.target_tokens)

    async def run(self, workload: Workload) -> NaiveResult:
        records = [dict(c) for c in workload.clients]
        threads: dict[tuple[int, int], list[dict[str, str]]] = defaultdict(list)
        batches: dict[tuple[int, int], int] = defaultdict(int)
        began = time.monotonic()
        try:
            for e in workload.events:
                self.stub.set_clock(e.at)
                # The set-up (existing clients' plan and month 1) is written but not counted.
                self.counting = not e.warmup
                await self.apply(e, records[e.client], threads, batches)
        finally:
            await self.client.close()
        self.result.seconds = time.monotonic() - began
        return self.result

    async def apply(
        self,
        e: Event,
        record: dict[str, Any],
        threads: dict[tuple[int, int], list[dict[str, str]]],
        batches: dict[tuple[int, int], int],
    ) -> None:
        if e.kind is EventKind.ONBOARD:
            await self.plan(record, bool(e.fail_section))
        elif e.kind is EventKind.DELIVERABLE:
            assert e.month is not None
            await self.month(e.client, record, e.month, bool(e.fail_section))
        elif e.kind is EventKind.REVISE:
            record.update(e.changes)
            await self.plan(record)  # the whole plan again on any change
            if e.month is not None:
                await self.month(e.client, record, e.month)
        elif e.kind is EventKind.REPEAT:
            if e.document == "business_plan":
                await self.plan(record)
            else:
                assert e.month is not None
                await self.month(e.client, record, e.month)
        elif e.kind is EventKind.MESSAGES:
            assert e.thread is not None
            key = (e.client, e.thread)
            threads[key] += e.messages
            batches[key] += 1
            await self.thread_summary(e.client, e.thread, threads[key], batches[key])
        elif e.kind is EventKind.CLIENT_SUMMARY:
            mine = sorted(t for c, t in threads if c == e.client)
            await self.client_summary(e.client, record, [threads[(e.client, t)] for t in mine])


def price(calls: list[Call], model: str) -> dict[str, Totals]:
    """Calls by document kind, in dollars at ``model`` (cached prompt tokens at its cached price)."""
    out = {k: Totals() for k in KINDS}
    for c in calls:
        p = out[c.kind]
        p.calls += 1
        p.prompt_tokens += c.prompt_tokens
        p.cached_tokens += c.cached_tokens
        p.completion_tokens += c.completion_tokens
        p.cost += pricing.cost(
            model, prompt_tokens=c.prompt_tokens, cached_tokens=c.cached_tokens, completion_tokens=c.completion_tokens
        )
    return out
