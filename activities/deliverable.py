"""Deliverable activities around the shared section activity: prepare a month, assemble its documents.

Sections themselves are written by ``SectionActivities.generate_section`` (and section groups
by ``generate_section_group``, activities.section_generation) with ``document_kind=deliverable``:
the same cache -> route -> call -> validate -> store path.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from temporalio import activity

from activities.dependencies import PlanDependencies
from activities.errors import ErrorType, final
from activities.section_groups import SectionGroups
from contracts.models import (
    DeliverableAssembleRequest,
    DeliverableDocumentRef,
    DeliverableInputs,
    DeliverableRequest,
    SectionRequest,
)
from domain.catalogue import deliverables
from domain.digest import build_digest, digest_section_keys, render_digest
from domain.outputs.schemas import in_schema_order
from domain.render import render_document
from domain.sections import DocumentKind
from storage import clients, documents, sections
from storage.clients import UnknownClient
from tokenopt.counting import count_tokens
from tokenopt.service_tiers import ServiceTier

KIND = DocumentKind.DELIVERABLE


def month_level(n: int) -> str:
    """How a month is labelled in documents.level and the WavelaunchLevel search attribute."""
    return f"m{n}"


async def earlier_sections(pool: Any, client_id: str, n: int) -> dict[str, dict[str, Any]]:
    """Section key -> content of what month ``n``'s digest reads, from the latest stored version
    of each earlier month's documents (a month never generated contributes nothing)."""
    wanted = set(digest_section_keys(n))
    ids: list[int] = []
    for m in deliverables.months()[: n - 1]:
        for doc in m.documents:
            latest = await documents.latest(pool, client_id, KIND.value, document_key=doc.key)
            if latest is not None:
                ids += latest.section_ids
    stored = await sections.get_many(pool, ids) if ids else {}
    return {s.section_key: s.content for s in stored.values() if s.section_key in wanted}


def section_request(
    client_version: int,
    client_id: str,
    key: str,
    documents: dict[str, list[str]],
    digest_ref: str | None,
    *,
    fresh: bool = False,
    service_tier: ServiceTier = ServiceTier.STANDARD,
    deadline: datetime | None = None,
) -> SectionRequest:
    """The request for one of a month's sections, as the workflow makes it. The document it
    belongs to (the first one for a shared section) prices the naive counterfactual."""
    document = next((keys for keys in documents.values() if key in keys), [key])
    return SectionRequest(
        client_id=client_id,
        client_version=client_version,
        section_key=key,
        document_sections=document,
        document_kind=KIND,
        context_ref=digest_ref,
        fresh=fresh,
        service_tier=service_tier,
        deadline=deadline,
    )


class DeliverableActivities:
    def __init__(self, deps: PlanDependencies):
        self.deps = deps
        # prepare_deliverable asks which sections to write as section groups.
        self.groups = SectionGroups(deps)

    @activity.defn
    async def prepare_deliverable(self, request: DeliverableRequest) -> DeliverableInputs:
        """Check the month and the client, and store the digest of earlier months (by key)."""
        try:
            month = deliverables.month(request.month)
        except ValueError as err:
            raise final(ErrorType.INVALID_MONTH, err) from None
        try:
            stored = await clients.get(self.deps.pool, request.client_id, request.client_version)
        except UnknownClient as err:
            raise final(ErrorType.UNKNOWN_CLIENT, err) from None
        specs = deliverables.month_sections(month.number)
        digest_ref, digest_tokens, text = None, 0, ""
        if month.number > deliverables.FIRST_MONTH:
            contents = await earlier_sections(self.deps.pool, request.client_id, month.number)
            digest = build_digest(month.number, contents, count_tokens=count_tokens)
            text = render_digest(digest)
            if text:
                digest_ref = await documents.store_digest(
                    self.deps.pool, client_id=request.client_id, month=month.number, text=text
                )
                digest_tokens = count_tokens(text)
        doc_sections = {d.key: [s.key for s in deliverables.document_sections(d.key)] for d in month.documents}
        rest = [s.key for s in specs if s.key not in deliverables.SHARED_KINDS]
        return DeliverableInputs(
            client_id=request.client_id,
            client_version=stored.version,
            month=month.number,
            shared_sections=[s.key for s in specs if s.key in deliverables.SHARED_KINDS],
            sections=rest,
            documents=doc_sections,
            digest_ref=digest_ref,
            digest_tokens=digest_tokens,
            batches=await self.groups.choose(
                [
                    section_request(
                        stored.version,
                        request.client_id,
                        key,
                        doc_sections,
                        digest_ref,
                        fresh=key in request.regenerate,
                    )
                    for key in rest
                ],
                context=text,
            ),
        )

    @activity.defn
    async def assemble_deliverable(self, request: DeliverableAssembleRequest) -> list[DeliverableDocumentRef]:
        """Store one new version of each of the month's documents, rendered as Markdown."""
        month = deliverables.month(request.month)
        by_key = {s.section_key: s.section_id for s in request.sections}
        # Operators' edits stick, per document (storage.edits): the held sections, per document.
        held = {
            doc_key: await self.deps.keep_edits(request.client_id, KIND.value, doc_key, {k: by_key[k] for k in keys})
            for doc_key, keys in request.documents.items()
        }
        stored = await sections.get_many(self.deps.pool, list({i for h in held.values() for i in h.values()}))
        client = await clients.get(self.deps.pool, request.client_id, request.client_version)
        brand = client.record.brand_name or client.record.full_name
        refs = []
        for doc_key, keys in request.documents.items():
            doc = deliverables.document(doc_key)
            ids = [held[doc_key][k] for k in keys]
            parts = [
                (deliverables.section_kind(deliverables.kind_of(k)).title, in_schema_order(k, stored[i].content))
                for k, i in zip(keys, ids, strict=True)
            ]
            title = f"{doc.title}: {brand} (M{month.number} {month.title})"
            markdown = render_document(title, parts)
            document = await documents.store(
                self.deps.pool,
                client_id=request.client_id,
                kind=KIND.value,
                level=month_level(month.number),
                client_version=request.client_version,
                workflow_id=request.workflow_id,
                run_id=request.run_id,
                section_ids=ids,
                markdown=markdown,
                document_key=doc_key,
            )
            await self.deps.document_stored(document)
            refs.append(
                DeliverableDocumentRef(
                    document_key=doc_key,
                    document_id=document.id,
                    version=document.version,
                    markdown_chars=len(markdown),
                )
            )
        await self.deps.after_document()
        return refs
