"""Business-plan activities around the section activities: prepare a plan, assemble its document.

Sections themselves are written by ``SectionActivities.generate_section`` (and section groups by
``generate_section_group``, activities.section_generation), the same for every document kind.
"""

from __future__ import annotations

from temporalio import activity

from activities.dependencies import PlanDependencies
from activities.errors import ErrorType, final
from activities.section_groups import SectionGroups
from contracts.models import (
    AssembleRequest,
    ChangeReason,
    DocumentRef,
    PlanInputs,
    PlanRequest,
    SectionChange,
    SectionRequest,
)
from domain.catalogue.plan import resolve_sections, section
from domain.outputs.schemas import in_schema_order
from domain.render import render_document
from domain.sections import DocumentKind, UnknownSection
from storage import clients, documents, sections
from storage.clients import StoredClient, UnknownClient, diff_fields
from tokenopt.reads import reads

KIND = DocumentKind.BUSINESS_PLAN


class PlanActivities:
    def __init__(self, deps: PlanDependencies):
        self.deps = deps
        # prepare_plan asks which sections to write as section groups.
        self.groups = SectionGroups(deps)

    # -- prepare -------------------------------------------------------------------------
    @activity.defn
    async def prepare_plan(self, request: PlanRequest) -> PlanInputs:
        """Check the client and the sections before any LLM call is made."""
        try:
            stored = await clients.get(self.deps.pool, request.client_id, request.client_version)
            specs = resolve_sections(request.level, request.sections)
        except UnknownClient as err:
            raise final(ErrorType.UNKNOWN_CLIENT, err) from None
        except UnknownSection as err:
            raise final(ErrorType.UNKNOWN_SECTION, err) from None
        keys = [s.key for s in specs]
        # The same requests the workflow will make (regenerated sections are never grouped).
        requests = [
            SectionRequest(
                client_id=request.client_id,
                client_version=stored.version,
                section_key=key,
                document_sections=keys,
                fresh=key in request.regenerate,
            )
            for key in keys
        ]
        return PlanInputs(
            client_id=request.client_id,
            client_version=stored.version,
            sections=keys,
            batches=await self.groups.choose(requests),
        )

    # -- assemble --------------------------------------------------------------------------
    @activity.defn
    async def assemble_document(self, request: AssembleRequest) -> DocumentRef:
        """Store a new document version from the generated sections, rendered as Markdown."""
        # An operator's edit sticks: the locked section is kept, a new answer becomes a proposal.
        held = await self.deps.keep_edits(
            request.client_id, KIND.value, KIND.value, {s.section_key: s.section_id for s in request.sections}
        )
        stored_sections = await sections.get_many(self.deps.pool, list(held.values()))
        client = await clients.get(self.deps.pool, request.client_id, request.client_version)
        title = f"Business Plan: {client.record.brand_name or client.record.full_name}"
        # Sections arrive in catalogue order (resolve_sections), which is the reading order.
        ordered = [(section(s.section_key), stored_sections[held[s.section_key]]) for s in request.sections]
        parts = [(spec.title, in_schema_order(spec.key, stored.content)) for spec, stored in ordered]
        markdown = render_document(title, parts)
        changes = await self._changes(request, client, {spec.key: stored for spec, stored in ordered})
        document = await documents.store(
            self.deps.pool,
            client_id=request.client_id,
            kind=KIND.value,
            level=request.level.value,
            client_version=request.client_version,
            workflow_id=request.workflow_id,
            run_id=request.run_id,
            section_ids=[stored.id for _, stored in ordered],
            markdown=markdown,
            changes=[c.model_dump() for c in changes],
        )
        await self.deps.document_stored(document)
        await self.deps.after_document()
        return DocumentRef(
            document_id=document.id, version=document.version, markdown_chars=len(markdown), changes=changes
        )

    async def _changes(
        self, request: AssembleRequest, client: StoredClient, current: dict[str, sections.StoredSection]
    ) -> list[SectionChange]:
        """What differs from the previous version of this document, and which fields caused it."""
        # The version before this run's (a retried assemble must not compare with itself).
        previous = await documents.latest(
            self.deps.pool, request.client_id, KIND.value, excluding_run=(request.workflow_id, request.run_id)
        )
        if previous is None:
            return [SectionChange(section_key=k, reason=ChangeReason.NEW) for k in current]
        old_sections = await sections.get_many(self.deps.pool, previous.section_ids)
        before = {s.section_key: s for s in old_sections.values()}
        old_client = await clients.get(self.deps.pool, request.client_id, previous.client_version)
        changed_fields = diff_fields(old_client.record.wire(), client.record.wire())
        out = []
        for key, now in current.items():
            if key not in before:
                out.append(SectionChange(section_key=key, reason=ChangeReason.NEW))
            elif before[key].content != now.content:
                fields = sorted(changed_fields & set(reads(KIND, section(key), self.deps.techniques).fields))
                reason = ChangeReason.INPUTS_CHANGED if fields else ChangeReason.REGENERATED
                out.append(SectionChange(section_key=key, reason=reason, fields=fields))
        return out
