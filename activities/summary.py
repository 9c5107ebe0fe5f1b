"""Summary activities: thread summaries that grow with new messages only, and the client summary.

A thread summary is served by the cheapest way that can:
1. stored: no message arrived since the last summary, so it is returned at zero cost;
2. exact: the same request (same thread, same messages, same previous summary, model and
   versions) within its TTL (24 h by default);
3. an incremental call: the previous summary plus only the messages after it, on the economy
   tier, validated against the strict schema (invalid answers retried as sections are).
The client summary is written from the compact client context and the latest thread summaries,
never from raw messages, and only when one of them changed.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from temporalio import activity

from activities.dependencies import PlanDependencies
from activities.durable import persist
from activities.errors import ErrorType, final
from activities.heartbeat import heartbeating
from activities.ledger import Baseline, SectionLedger
from activities.section_cache import SectionCache
from activities.writer import OutputRejected, SectionWriter, Written
from contracts.models import (
    ClientSummaryRequest,
    ClientSummaryResult,
    SummaryInputs,
    SummaryRequest,
    ThreadSummaryRequest,
    ThreadSummaryResult,
)
from domain.cache_policy import CacheTier, policy
from domain.catalogue.summaries import CLIENT_SUMMARY, THREAD_SUMMARY
from domain.sections import DocumentKind, SectionSpec, Tier
from domain.summaries import ThreadMessage
from storage import clients, messages, summaries
from storage.clients import StoredClient, UnknownClient
from storage.messages import UnknownThread
from tokenopt import estimate
from tokenopt.cache_keys import exact_key
from tokenopt.naive import naive_summary_tokens
from tokenopt.prompts import BuiltPrompt
from tokenopt.routing import tier_for
from tokenopt.summary_prompts import (
    SUMMARY_PROMPT_VERSION,
    build_client_prompt,
    build_thread_prompt,
    client_inputs,
    client_inputs_hash,
    next_step,
    rereads_whole_thread,
)
from tokenopt.techniques import Technique

KIND = DocumentKind.SUMMARY


def _known(client: StoredClient) -> tuple[str, ...]:
    """Values redacted wherever they appear in a prompt: the client's email."""
    return (str(client.record.email),)


class SummaryActivities:
    def __init__(self, deps: PlanDependencies):
        self.deps = deps
        self.cache = SectionCache(deps.pool, deps.llm, deps.cache)

    # -- prepare -------------------------------------------------------------------------
    @activity.defn
    async def prepare_summary(self, request: SummaryRequest) -> SummaryInputs:
        """Check the client and its threads before any LLM call is made."""
        try:
            stored = await clients.get(self.deps.pool, request.client_id)
            threads = await messages.resolve_threads(self.deps.pool, request.client_id, request.thread_ids)
        except UnknownClient as err:
            raise final(ErrorType.UNKNOWN_CLIENT, err) from None
        except UnknownThread as err:
            raise final(ErrorType.UNKNOWN_THREAD, err) from None
        return SummaryInputs(client_id=request.client_id, client_version=stored.version, thread_ids=threads)

    # -- threads -----------------------------------------------------------------------------
    @activity.defn
    async def summarize_thread(self, request: ThreadSummaryRequest) -> ThreadSummaryResult:
        """Bring the thread's summary up to its last message, reading only the messages after the
        previous summary; nothing new costs nothing."""
        spec = THREAD_SUMMARY
        client = await self._client(request.client_id)
        pool = self.deps.pool
        thread = await messages.messages_after(pool, request.client_id, request.thread_id)
        if not thread:
            threads = await messages.thread_ids(pool, request.client_id)
            raise final(ErrorType.UNKNOWN_THREAD, UnknownThread(request.client_id, [request.thread_id], threads))
        latest = await summaries.latest_thread(pool, request.client_id, request.thread_id, spec.schema_version)
        after = latest.through_seq if latest else 0
        new = [m for m in thread if m.seq > after]
        ledger = self._ledger(
            request.client_id, spec, naive_summary_tokens({request.thread_id: thread}, None, self._naive)
        )
        tier = self._tier(spec)

        if not new:
            assert latest is not None
            key = f"thread:{request.thread_id}@{after}"
            figures = await _reused(
                ledger, tier, latest.model, CacheTier.STORED, key, "summarize_thread", latest.content
            )
            return ThreadSummaryResult(
                thread_id=request.thread_id,
                summary_id=latest.id,
                version=latest.version,
                through_seq=latest.through_seq,
                **figures,
            )

        known = _known(client)
        previous = latest.content if latest else None
        if rereads_whole_thread(previous, thread, new, model=self.deps.router.model_for(tier), known=known):
            # A young thread: its messages are shorter than its summary, so read them all again.
            previous, after, new = None, 0, list(thread)
        steps: list[ThreadSummaryResult] = []
        async with heartbeating():
            while new:
                step = next_step(new, model=self.deps.router.model_for(tier), known=known)
                result, previous = await self._thread_step(request, ledger, tier, known, previous, after, step)
                steps.append(result)
                after, new = step[-1].seq, new[len(step) :]
                # The naive way reads the whole thread in one call: its baseline goes on the first step.
                ledger = self._ledger(request.client_id, spec, 0)
        return _combined(steps)

    async def _thread_step(
        self,
        request: ThreadSummaryRequest,
        ledger: SectionLedger,
        tier: Tier,
        known: tuple[str, ...],
        previous: dict[str, Any] | None,
        after: int,
        new: list[ThreadMessage],
    ) -> tuple[ThreadSummaryResult, dict[str, Any]]:
        """Fold ``new`` (the messages after seq ``after``) into ``previous`` and store the summary
        through the last of them; its figures and content."""
        spec = THREAD_SUMMARY
        pool = self.deps.pool

        def prompt_for(model: str) -> BuiltPrompt:
            return build_thread_prompt(request.thread_id, previous, new, model=model, known=known)

        async def store(content: dict[str, Any], model: str, prompt_tokens: int, completion_tokens: int) -> Any:
            return await summaries.store_thread(
                pool,
                client_id=request.client_id,
                thread_id=request.thread_id,
                from_seq=after + 1,
                through_seq=new[-1].seq,
                schema_version=spec.schema_version,
                prompt_version=SUMMARY_PROMPT_VERSION,
                content=content,
                model=model,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
            )

        scope = f"{request.thread_id}:{after}-{new[-1].seq}"
        stored, figures, content = await self._serve(
            ledger, request.client_id, spec, tier, prompt_for, scope, store, "summarize_thread", request
        )
        result = ThreadSummaryResult(
            thread_id=request.thread_id,
            summary_id=stored.id,
            version=stored.version,
            through_seq=stored.through_seq,
            new_messages=len(new),
            **figures,
        )
        return result, content

    # -- the client ----------------------------------------------------------------------------
    @activity.defn
    async def summarize_client(self, request: ClientSummaryRequest) -> ClientSummaryResult:
        """The client summary from the compact client context and each thread's latest summary;
        unchanged inputs cost nothing (the stored version is returned)."""
        spec = CLIENT_SUMMARY
        pool = self.deps.pool
        client = await self._client(request.client_id, request.client_version)
        record = client.record.wire()
        known = _known(client)
        threads = await summaries.latest_threads(pool, request.client_id, THREAD_SUMMARY.schema_version)
        ids = [t.id for t in threads]
        inputs_hash = client_inputs_hash(client_inputs(record, known), [(t.thread_id, t.id) for t in threads])
        everything = await messages.all_messages(pool, request.client_id)
        ledger = self._ledger(request.client_id, spec, naive_summary_tokens(everything, record, self._naive))
        tier = self._tier(spec)

        latest = await summaries.latest_client(pool, request.client_id)
        if latest is not None and latest.inputs_hash == inputs_hash:
            figures = await _reused(
                ledger,
                tier,
                latest.model,
                CacheTier.STORED,
                f"client:{inputs_hash}",
                "summarize_client",
                latest.content,
            )
            return ClientSummaryResult(
                summary_id=latest.id, version=latest.version, thread_summary_ids=latest.thread_summary_ids, **figures
            )

        contents = [(t.thread_id, t.content) for t in threads]

        def prompt_for(model: str) -> BuiltPrompt:
            return build_client_prompt(record, contents, model=model, known=known)

        async def store(content: dict[str, Any], model: str, prompt_tokens: int, completion_tokens: int) -> Any:
            return await summaries.store_client(
                pool,
                client_id=request.client_id,
                client_version=client.version,
                thread_summary_ids=ids,
                inputs_hash=inputs_hash,
                schema_version=spec.schema_version,
                prompt_version=SUMMARY_PROMPT_VERSION,
                content=content,
                model=model,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
            )

        async with heartbeating():
            stored, figures, _ = await self._serve(
                ledger, request.client_id, spec, tier, prompt_for, "client", store, "summarize_client", request
            )
        return ClientSummaryResult(summary_id=stored.id, version=stored.version, thread_summary_ids=ids, **figures)

    # -- shared --------------------------------------------------------------------------------
    async def _serve(
        self,
        ledger: SectionLedger,
        client_id: str,
        spec: SectionSpec,
        tier: Tier,
        prompt_for: Callable[[str], BuiltPrompt],
        scope: str,
        store: Callable[[dict[str, Any], str, int, int], Awaitable[Any]],
        operation: str,
        when: ThreadSummaryRequest | ClientSummaryRequest,
    ) -> tuple[Any, dict[str, Any], dict[str, Any]]:
        """A summary from the exact cache, or written now (and cached), then put away by
        ``store``; the stored row, its figures for the result model, and its content. ``when``:
        the request, whose deadline picks the service tier."""
        prompt = prompt_for(self.deps.router.model_for(tier))
        ekey = self._key(client_id, spec, scope, prompt, tier)
        # The exact key names this very work (client, scope, prompt): the answer spool's key too.
        ledger = ledger.for_work(f"summary:{ekey}")

        async def keep(written: Written) -> Any:
            """Store the summary (idempotent), waiting for Postgres if it is away."""
            r = written.result
            stored = await persist(
                lambda: store(written.content, r.model, r.prompt_tokens, r.completion_tokens), f"{spec.key} summary"
            )
            ledger.release()
            return stored

        if (kept := await ledger.recover(self.deps.guard)) is not None:
            # An earlier attempt bought this summary: stored now, not bought again.
            written = Written.kept(kept)
            stored = await keep(written)
            if self._exact_on(spec):
                await self._cache_put(self.deps.pool, ekey, client_id, spec, written, prompt)
            return stored, _figures(written), written.content
        async with self._exact_scope(spec, ekey) as (db, exact_on):
            if exact_on and (hit := await self.cache.exact(db, ekey, spec)) is not None:
                stored = await persist(lambda: store(hit.content, hit.model, 0, 0), f"{spec.key} summary")
                reused = await _reused(ledger, tier, hit.model, CacheTier.EXACT, ekey, operation, hit.content)
                return stored, reused, hit.content
            written = await self._write(ledger, client_id, spec, tier, prompt_for, operation, ekey, when)
            stored = await keep(written)
            if exact_on:
                await self._cache_put(db, ekey, client_id, spec, written, prompt)
        return stored, _figures(written), written.content

    @property
    def _naive(self) -> str:
        return self.deps.naive_model

    async def _client(self, client_id: str, version: int | None = None) -> StoredClient:
        try:
            return await clients.get(self.deps.pool, client_id, version)
        except UnknownClient as err:
            raise final(ErrorType.UNKNOWN_CLIENT, err) from None

    def _tier(self, spec: SectionSpec) -> Tier:
        return tier_for(spec.key) if self.deps.techniques.on(Technique.ROUTING) else Tier.PREMIUM

    def _ledger(self, client_id: str, spec: SectionSpec, naive_prompt_tokens: int) -> SectionLedger:
        return SectionLedger(
            self.deps.pool,
            client_id=client_id,
            spec=spec,
            baseline=Baseline(naive_prompt_tokens, self._naive),
            free_models=self.deps.free_models,
            kind=KIND,
            spool=self.deps.spool,
        )

    def _key(self, client_id: str, spec: SectionSpec, scope: str, prompt: BuiltPrompt, tier: Tier) -> str:
        """The exact-cache key: the client, the summary kind and its scope (thread and message
        range), the normalised prompt (previous summary and new messages), model and versions."""
        return exact_key(
            tenant=client_id,
            document_kind=KIND.value,
            section_key=f"{spec.key}:{scope}",
            messages=prompt.messages,
            model=self.deps.router.model_for(tier),
            temperature=None,
            max_tokens=spec.target_tokens * 2,
            schema_version=spec.schema_version,
            prompt_version=SUMMARY_PROMPT_VERSION,
        )

    def _exact_on(self, spec: SectionSpec) -> bool:
        return self.deps.techniques.on(Technique.EXACT_CACHE) and policy(KIND, spec.key).cacheable

    @contextlib.asynccontextmanager
    async def _exact_scope(self, spec: SectionSpec, key: str) -> AsyncIterator[tuple[Any, bool]]:
        """(connection, exact cache on): under the key's single-flight lock when the cache is on,
        so two workers missing the same summary make one call."""
        if not self._exact_on(spec):
            yield self.deps.pool, False
            return
        async with self.cache.single_flight(key) as db:
            yield db, True

    async def _write(
        self,
        ledger: SectionLedger,
        client_id: str,
        spec: SectionSpec,
        tier: Tier,
        prompt_for: Any,
        operation: str,
        key: str,
        when: ThreadSummaryRequest | ClientSummaryRequest,
    ) -> Written:
        writer = SectionWriter(
            self.deps.llm,
            self.deps.router,
            ledger,
            client_id,
            self.deps.guard,
            service_tier=when.service_tier,
            deadline=when.deadline,
            limiter=self.deps.limiter,
        )
        try:
            return await writer.write(
                spec, tier, lambda model: (prompt_for(model).messages, []), operation=operation, cache_key=key
            )
        except OutputRejected as err:
            raise final(ErrorType.INVALID_MODEL_OUTPUT, err) from None

    async def _cache_put(
        self, db: Any, key: str, client_id: str, spec: SectionSpec, written: Written, prompt: BuiltPrompt
    ) -> None:
        await self.cache.put(
            db,
            key=key,
            client_id=client_id,
            kind=KIND,
            spec=spec,
            prompt_version=SUMMARY_PROMPT_VERSION,
            section_id=None,
            content=written.content,
            inputs=prompt.inputs,
            model=written.result.model,
            completion_tokens=written.result.completion_tokens,
            cost=written.result.cost,
            embedding=None,
        )


async def _reused(
    ledger: SectionLedger,
    tier: Tier,
    model: str,
    cache_tier: CacheTier,
    key: str,
    operation: str,
    content: dict[str, Any],
) -> dict[str, Any]:
    """A summary served without a call (stored, or an exact hit): its usage row (what the naive
    way would have spent writing ``content`` again) and its figures for the result model."""
    tokens = estimate.answer_tokens(content, model)
    saved = await ledger.hit(model, cache_tier, key, operation=operation, completion_tokens=tokens)
    return dict(
        model=model,
        tier=tier.value,
        cache_tier=cache_tier,
        baseline_tokens=ledger.baseline.prompt_tokens + tokens,
        baseline_cost=saved,
    )


def _combined(steps: list[ThreadSummaryResult]) -> ThreadSummaryResult:
    """One result for a summary written in steps: the last step's summary, every step's spend."""
    if len(steps) == 1:
        return steps[0]
    last = steps[-1]
    summed = {
        field: sum(getattr(step, field) for step in steps)
        for field in (
            "new_messages",
            "prompt_tokens",
            "cached_tokens",
            "completion_tokens",
            "cost",
            "baseline_tokens",
            "baseline_cost",
            "duration_ms",
            "llm_calls",
        )
    }
    written_now = any(step.cache_tier == CacheTier.NONE for step in steps)
    return last.model_copy(
        update={
            **summed,
            "cache_tier": CacheTier.NONE if written_now else last.cache_tier,
            "escalated": any(step.escalated for step in steps),
        }
    )


def _figures(written: Written) -> dict[str, Any]:
    r = written.result
    return dict(
        model=r.model,
        tier=r.tier,
        cache_tier=CacheTier.NONE,
        prompt_tokens=r.prompt_tokens,
        cached_tokens=r.cached_tokens,
        completion_tokens=r.completion_tokens,
        cost=r.cost,
        baseline_tokens=r.baseline_tokens,
        baseline_cost=r.baseline_cost,
        duration_ms=r.duration_ms,
        llm_calls=r.llm_calls,
        escalated=r.escalated,
    )
