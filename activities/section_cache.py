"""The cache hierarchy as the generate activity sees it: exact, then earlier answers (semantic, patch).

A cache problem never fails a plan: a failed lookup or store is a miss with a warning, and the
section is generated in full.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

import asyncpg

from activities.durable import TRANSIENT, persist
from activities.ledger import SectionLedger
from domain.outputs.schemas import output_model
from domain.sections import DocumentKind, SectionSpec
from llm.client import LLMClient
from llm.errors import LLMError
from storage import cache
from storage.cache import CacheEntry
from tokenopt.semantic import DIMENSIONS, hashing_embedding, inputs_text

log = logging.getLogger(__name__)

# Errors that mean "the cache cannot answer now", as opposed to bugs.
CACHE_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError, ValueError)


@dataclass(frozen=True)
class CacheConfig:
    ttl_hours: dict[str, float] = field(
        default_factory=lambda: {"business_plan": 168.0, "deliverable": 72.0, "summary": 24.0}
    )
    max_entries: int = 1000
    semantic_threshold: float = 0.95
    # "endpoint" (the LLM endpoint's embeddings model) or "hashing" (offline).
    embeddings: str = "endpoint"
    embedding_model: str = "text-embedding-3-small"
    # How long a request waits for another worker generating the same entry.
    single_flight_timeout: float = 900.0

    def ttl(self, kind: DocumentKind) -> timedelta:
        return timedelta(hours=self.ttl_hours.get(kind.value, 24.0))


class SectionCache:
    def __init__(self, pool: asyncpg.Pool, llm: LLMClient, config: CacheConfig):
        self.pool = pool
        self.llm = llm
        self.config = config

    @contextlib.asynccontextmanager
    async def single_flight(self, key: str) -> AsyncIterator[Any]:
        """Hold the key's lock so concurrent misses make one call; yields the connection to use
        (or the pool when the lock could not be taken: generate without it, with a warning)."""
        async with contextlib.AsyncExitStack() as stack:
            try:
                conn = await stack.enter_async_context(
                    cache.single_flight(self.pool, key, lock_timeout=self.config.single_flight_timeout)
                )
            except CACHE_ERRORS as err:
                log.warning("cache lock unavailable (%s); generating without single-flight", err)
                conn = self.pool
            yield conn

    @contextlib.asynccontextmanager
    async def single_flight_many(self, keys: list[str]) -> AsyncIterator[Any]:
        """:meth:`single_flight` for the members of a batch: every key's lock on one connection."""
        async with contextlib.AsyncExitStack() as stack:
            try:
                conn = await stack.enter_async_context(
                    cache.single_flight_many(self.pool, keys, lock_timeout=self.config.single_flight_timeout)
                )
            except CACHE_ERRORS as err:
                log.warning("cache locks unavailable (%s); generating the batch without single-flight", err)
                conn = self.pool
            yield conn

    async def exact(self, db: Any, key: str, spec: SectionSpec) -> CacheEntry | None:
        model_cls = output_model(spec.key)
        try:
            return await cache.get_exact(db, key, schema_version=spec.schema_version, validate=model_cls.model_validate)
        except CACHE_ERRORS as err:
            log.warning("exact cache lookup failed (%s); treating as a miss", err)
            return None

    async def could_serve(self, key: str, scope: cache.Scope, *, exact: bool, earlier: bool) -> bool:
        """Whether a tier might serve the section (a planning question, nothing is touched): a
        live exact entry under ``key``, or with ``earlier`` any entry in ``scope`` to serve or
        patch. A broken cache serves nothing."""
        try:
            if exact and await cache.has_live(self.pool, key, schema_version=scope.schema_version):
                return True
            return earlier and bool(await cache.candidates(self.pool, scope))
        except CACHE_ERRORS as err:
            log.warning("cache lookup failed (%s); treating as empty", err)
            return False

    async def latest(self, db: Any, scope: cache.Scope, spec: SectionSpec) -> CacheEntry | None:
        """The latest valid entry in ``scope`` (a patch's base), or None."""
        try:
            entry = await cache.latest_in_scope(db, scope)
        except CACHE_ERRORS as err:
            log.warning("cache lookup failed (%s); treating as a miss", err)
            return None
        return entry if entry is not None and self._valid(entry, spec) else None

    @staticmethod
    def _valid(entry: CacheEntry, spec: SectionSpec) -> bool:
        try:
            output_model(spec.key).model_validate(entry.content)
        except ValueError:
            return False  # an incompatible entry is never used, not even as a base
        return True

    async def _embed(self, text: str, ledger: SectionLedger) -> list[float] | None:
        if self.config.embeddings == "hashing":
            return hashing_embedding(text, DIMENSIONS)
        try:
            vector, tokens = await self.llm.embed(model=self.config.embedding_model, text=text, dimensions=DIMENSIONS)
        except LLMError as err:
            log.warning("embedding failed (%s); semantic tier skipped", err)
            return None
        await ledger.embedding(self.config.embedding_model, tokens)
        return vector

    async def similar(
        self,
        db: Any,
        scope: cache.Scope,
        spec: SectionSpec,
        inputs: dict[str, str],
        ledger: SectionLedger,
    ) -> tuple[tuple[CacheEntry, float] | None, list[float] | None]:
        """The closest earlier answer in ``scope`` with its similarity (or None), and the query's
        embedding (None when none was made). Embeddings are made lazily: only when there is an
        entry to compare with, so a first generation never pays for one."""
        try:
            found_any = await cache.candidates(db, scope)
            if not found_any:
                return None, None
            query = await self._embed(inputs_text(inputs), ledger)
            if query is None:
                return None, None
            for key, entry_inputs, embedded in found_any:
                if not embedded and (vector := await self._embed(inputs_text(entry_inputs), ledger)) is not None:
                    await cache.set_embedding(db, key, vector)
            found = await cache.find_similar(db, scope, embedding=query, threshold=self.config.semantic_threshold)
        except CACHE_ERRORS as err:
            log.warning("semantic cache lookup failed (%s); treating as a miss", err)
            return None, None
        if found is not None and not self._valid(found[0], spec):
            found = None
        return found, query

    async def put(
        self,
        db: Any,
        *,
        key: str,
        client_id: str | None,
        kind: DocumentKind,
        spec: SectionSpec,
        prompt_version: int,
        section_id: int | None,
        content: dict[str, Any],
        inputs: dict[str, str],
        model: str,
        completion_tokens: int,
        cost: Decimal,
        embedding: list[float] | None,
    ) -> None:
        async def write(target: Any) -> None:
            await cache.put(
                target,
                key=key,
                # No client scope means client-independent content: the template tier.
                tier="exact" if client_id is not None else "template",
                client_id=client_id,
                document_kind=kind.value,
                section_key=spec.key,
                schema_version=spec.schema_version,
                prompt_version=prompt_version,
                section_id=section_id,
                content=content,
                inputs=inputs,
                model=model,
                completion_tokens=completion_tokens,
                cost=cost,
                ttl=self.config.ttl(kind),
                embedding=embedding,
                max_entries=self.config.max_entries,
            )

        try:
            if db is not self.pool:
                try:
                    return await write(db)
                except TRANSIENT as err:
                    # The lock's connection died with Postgres (its lock went with it): the pool.
                    log.warning("cache store on the lock's connection failed (%s); using the pool", err)
            await persist(lambda: write(self.pool), f"cache entry {spec.key}")
        except CACHE_ERRORS as err:
            log.warning("cache store failed (%s); the section is stored, only not cached", err)
