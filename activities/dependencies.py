"""What every activity class works with: the pool, the LLM client, routing, techniques, budgets,
rate limits, the answer spool and the CRM outbox (wired by the worker), and the steps a stored
document version shares (the CRM told, operators' edits kept, the cache hit rate checked)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import asyncpg

from activities import crm_notify
from activities.alerts import AlertConfig, AlertNotifier
from activities.budget_guard import BudgetGuard
from activities.crm_notify import CrmNotifyConfig
from activities.rate_limiter import RateLimiter
from activities.section_cache import CacheConfig
from llm.client import LLMClient
from storage import documents, edits, sections
from storage.spool import Spool
from tokenopt.routing import ModelRouter
from tokenopt.techniques import Techniques

log = logging.getLogger(__name__)


@dataclass
class PlanDependencies:
    """What every activity class is built from (named when plans were its only users)."""

    pool: asyncpg.Pool
    llm: LLMClient
    router: ModelRouter
    naive_model: str
    free_models: frozenset[str] = field(default_factory=frozenset)
    techniques: Techniques = field(default_factory=Techniques)
    cache: CacheConfig = field(default_factory=CacheConfig)
    # Bulk work may go through the OpenAI Batch API (WAVELAUNCH_BATCH_API); never for a local model.
    batch_api: bool = True
    # Budgets and alerts; unset: budgets enforced, alerts logged only (no webhook).
    guard: BudgetGuard = None  # type: ignore[assignment]
    # The provider's rate limits shared by every worker (WAVELAUNCH_RATE_LIMITS); unset: none held.
    limiter: RateLimiter | None = None
    # Where bought answers wait for Postgres (storage.spool); unset: in-memory retries only.
    spool: Spool = field(default_factory=Spool)
    # Where the CRM is told about documents (activities/crm_notify.py); unset: it is not.
    crm: CrmNotifyConfig = field(default_factory=CrmNotifyConfig)

    def __post_init__(self) -> None:
        if self.guard is None:
            self.guard = BudgetGuard(self.pool, AlertNotifier(self.pool, AlertConfig()), free_models=self.free_models)

    async def document_stored(self, doc: documents.StoredDocument) -> None:
        """A document version was stored: the CRM is told through its outbox (idempotent)."""
        previous = None
        if doc.version > 1:
            previous = await documents.version_of(self.pool, doc.client_id, doc.kind, doc.document_key, doc.version - 1)
        await crm_notify.document_stored(self.pool, self.crm, doc, previous)

    async def keep_edits(
        self, client_id: str, kind: str, document_key: str, generated: dict[str, int]
    ) -> dict[str, int]:
        """Section key -> the section a new version holds: the operator's, for a locked section
        (an edit sticks); a generated answer unlike what the operator edited over is kept as a
        proposal for the operator to accept or reject (storage.edits; idempotent)."""
        held = await edits.locks(self.pool, client_id, kind, document_key)
        if not held:
            return generated
        wanted = [i for lock in held.values() for i in (lock.base_section_id, generated.get(lock.section_key)) if i]
        contents = {i: s.content for i, s in (await sections.get_many(self.pool, wanted)).items()}
        out = dict(generated)
        for key, lock in held.items():
            new = generated.get(key)
            if new is None:
                continue
            if new != lock.section_id and contents.get(new) != contents.get(lock.base_section_id or 0):
                await edits.propose(self.pool, client_id, kind, document_key, key, lock.section_id, new)
            out[key] = lock.section_id
        return out

    async def after_document(self) -> None:
        """Checks made once a document is assembled (the cache hit rate); never fail the document."""
        try:
            await self.guard.notifier.check_cache_hit_rate()
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as err:
            log.warning("cache hit rate not checked: %s", err)
