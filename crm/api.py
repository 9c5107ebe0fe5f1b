"""The REST API under /api/v1: start plans and deliverables, watch workflows, fetch documents.

Every route needs the API token (crm/auth.py). Bad input is refused with 422 and the fields at
fault, an unknown client or document with 404, and in both cases nothing is started.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import asyncpg
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, Field
from temporalio.client import Client, WorkflowQueryFailedError
from temporalio.service import RPCError, RPCStatusCode

from contracts.models import DeliverableRequest, PlanRequest, SummaryRequest
from crm.dashboard import dashboard_data
from domain.limits import (
    LIST_ITEMS,
    THREADS_PER_INPUT,
    ClientId,
    FreeText,
    SectionKey,
    ShortList,
    ThreadId,
    WorkflowId,
    quote,
)
from domain.reviews import ReviewInput, ReviewSource, ReviewState
from domain.sections import Level, UnknownSection
from domain.summaries import ThreadInput
from service import edits, erasure, exports, reviews, starts, threads
from service.settings import Settings
from service.wiring import crm_notify_config
from storage import clients, documents, messages
from storage.clients import UnknownClient
from tokenopt.service_tiers import BadDeadline, Urgency, deadline_from
from workflows import kinds

PREFIX = "/api/v1"
# A progress query on a workflow no worker serves would wait; the status answer must not.
QUERY_TIMEOUT = timedelta(seconds=3)


# -- request and response models ----------------------------------------------------------
# Inputs are bounded as everywhere else (domain/limits.py): ids by pattern, lists by length.
class Deadline(BaseModel):
    """When the work is wanted: the cheapest service tier that meets it (tokenopt.service_tiers).
    Neither given: interactive, every call on standard."""

    by: str | None = Field(
        None, max_length=20, description="Wanted within this long: 90m, 6h, 3d, 1d12h (at most 31 days)."
    )
    urgency: Urgency | None = Field(None, description="now (standard), today (within 24 h) or week.")

    def deadline(self) -> datetime | None:
        try:
            return deadline_from(datetime.now(UTC), by=self.by, urgency=self.urgency)
        except BadDeadline as err:
            raise unprocessable("by", str(err)) from None


class PlanStart(Deadline):
    client_id: ClientId = Field(description="The CRM's client id (imported before).")
    level: Level | None = Field(None, description="essential, standard or complete; default: WAVELAUNCH_DEFAULT_LEVEL")
    sections: list[SectionKey] | None = Field(
        None, min_length=1, max_length=LIST_ITEMS, description="Only these sections of the level (catalogue keys)."
    )


class DeliverableStart(Deadline):
    client_id: ClientId
    month: int = Field(ge=1, le=8, description="Month of the programme, 1–8 (M1–M8).")


class SummaryStart(Deadline):
    client_id: ClientId
    thread_ids: Annotated[list[ThreadId], ShortList] | None = Field(
        default=None, description="Only these threads; default: every thread."
    )
    include_client_summary: bool = True
    threads: list[ThreadInput] = Field(
        default_factory=list,
        max_length=THREADS_PER_INPUT,
        description="New messages to store first (idempotent by message id).",
    )


class Started(BaseModel):
    workflow_id: str
    run_id: str | None
    status_url: str = Field(description="GET this for status and progress.")
    web_ui_url: str = Field(description="The workflow in the Temporal Web UI.")


class WorkflowStatus(BaseModel):
    workflow_id: str
    run_id: str
    workflow_type: str
    status: str = Field(description="running, completed, failed, canceled, terminated, continued_as_new, timed_out")
    start_time: str | None
    close_time: str | None
    web_ui_url: str
    progress: dict[str, Any] | None = Field(
        description="The workflow's progress query (sections done/running/pending, tokens, cost); "
        "null when no worker answered in time."
    )


class DocumentEntry(BaseModel):
    id: int
    kind: str
    document_key: str
    version: int
    level: str | None
    client_version: int
    workflow_id: str
    created_at: str
    review_state: ReviewState


class ErasureAnswer(BaseModel):
    client_id: str
    anon_id: str = Field(description="The id the client's usage figures are kept under.")
    legal_hold: bool
    workflows_ended: list[str]
    removed: dict[str, int] = Field(description="Rows removed or anonymised, per table.")


class SectionEdit(ReviewInput):
    content: dict[str, Any] = Field(description="The section's new content, in the section's schema.")


class Edited(BaseModel):
    id: int
    document_key: str
    version: int
    section_key: str
    review_state: str


class ProposalEntry(BaseModel):
    id: int
    document_kind: str
    document_key: str
    section_key: str
    state: str
    created_at: str
    diff: str = Field(description="Unified diff: the operator's locked section -> the regenerated one.")


class ChangesRequest(ReviewInput):
    note: FreeText = Field(description="What should change.")


class Reviewed(BaseModel):
    id: int
    client_id: str
    document_key: str
    version: int
    review: dict[str, Any] = Field(description="state, by, at, note")


class ClientDocuments(BaseModel):
    client_id: str
    documents: list[DocumentEntry]


def unprocessable(field: str, message: str) -> HTTPException:
    """A 422 shaped like FastAPI's own validation errors: the field at fault and why."""
    return HTTPException(422, detail=[{"loc": ["body", field], "msg": message, "type": "value_error"}])


def _not_found(message: str) -> HTTPException:
    return HTTPException(404, detail=message)


# -- the routes ----------------------------------------------------------------------------
def build_router(pool: asyncpg.Pool, temporal: Client, settings: Settings, guard: Any) -> APIRouter:
    """The /api/v1 routes over one pool and one Temporal client; ``guard`` checks the token."""
    router = APIRouter(prefix=PREFIX, dependencies=[Depends(guard)])
    crm_config = crm_notify_config(settings)  # new versions made here are announced like any other

    def started(request: Request, workflow_id: str, run_id: str | None) -> Started:
        return Started(
            workflow_id=workflow_id,
            run_id=run_id,
            status_url=str(request.url_for("workflow_status", workflow_id=workflow_id)),
            web_ui_url=settings.workflow_url(workflow_id),
        )

    @router.post("/plans", status_code=202, response_model=Started, tags=["generation"])
    async def start_plan(body: PlanStart, request: Request) -> Started:
        """Start the client's business plan (or join it if it is already running)."""
        plan = PlanRequest(
            client_id=body.client_id,
            level=body.level or Level(settings.default_level),
            sections=body.sections,
            deadline=body.deadline(),
        )
        try:
            await starts.check_request(pool, plan)
            current = await clients.get(pool, body.client_id)
        except UnknownClient as err:
            raise _not_found(str(err)) from None
        except UnknownSection as err:
            raise unprocessable("sections", str(err)) from None
        handle = await starts.start(temporal, settings, plan, announce_version=current.version)
        return started(request, handle.id, handle.result_run_id)

    @router.post("/deliverables", status_code=202, response_model=Started, tags=["generation"])
    async def start_deliverable(body: DeliverableStart, request: Request) -> Started:
        """Start month ``month``'s deliverable: five documents, six sections each (or join it)."""
        deliverable = DeliverableRequest(client_id=body.client_id, month=body.month, deadline=body.deadline())
        try:
            await starts.check_deliverable(pool, deliverable)
        except UnknownClient as err:
            raise _not_found(str(err)) from None
        except ValueError as err:
            raise unprocessable("month", str(err)) from None
        handle = await starts.start(temporal, settings, deliverable)
        return started(request, handle.id, handle.result_run_id)

    @router.post("/summaries", status_code=202, response_model=Started, tags=["generation"])
    async def start_summary(body: SummaryStart, request: Request) -> Started:
        """Store any new messages, then bring the client's thread summaries up to date (from the
        new messages only) and write the client summary (or join the run in progress)."""
        summary = SummaryRequest(
            client_id=body.client_id,
            thread_ids=body.thread_ids,
            include_client_summary=body.include_client_summary,
            deadline=body.deadline(),
        )
        try:
            await clients.get(pool, body.client_id)
            if body.thread_ids:
                known = {*await messages.thread_ids(pool, body.client_id), *(t.thread_id for t in body.threads)}
                if missing := [t for t in body.thread_ids if t not in known]:
                    raise unprocessable(
                        "thread_ids", f"client {body.client_id!r} has no thread(s) {', '.join(map(quote, missing[:5]))}"
                    )
            await threads.append_threads(pool, body.client_id, body.threads)
            await starts.check_summary(pool, summary)
        except UnknownClient as err:
            raise _not_found(str(err)) from None
        handle = await starts.start(temporal, settings, summary)
        return started(request, handle.id, handle.result_run_id)

    @router.get("/workflows/{workflow_id}", response_model=WorkflowStatus, tags=["generation"])
    async def workflow_status(workflow_id: Annotated[WorkflowId, Path()]) -> WorkflowStatus:
        """Status of a workflow's latest run, with its progress when a worker answers."""
        handle = temporal.get_workflow_handle(workflow_id)
        try:
            described = await handle.describe()
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                raise _not_found(f"no workflow {workflow_id!r}") from None
            raise
        progress = None
        kind = kinds.by_workflow_type(described.workflow_type)
        if kind is not None:
            try:
                answer = await handle.query(kind.progress, rpc_timeout=QUERY_TIMEOUT)
                progress = answer.model_dump(mode="json")
            except (RPCError, WorkflowQueryFailedError):
                progress = None  # no worker polling right now: the status still answers
        status = described.status.name.lower() if described.status else "unknown"
        return WorkflowStatus(
            workflow_id=workflow_id,
            run_id=described.run_id,
            workflow_type=described.workflow_type,
            status=status,
            start_time=described.start_time.isoformat() if described.start_time else None,
            close_time=described.close_time.isoformat() if described.close_time else None,
            web_ui_url=settings.workflow_url(workflow_id),
            progress=progress,
        )

    @router.get("/clients/{client_id}/documents", response_model=ClientDocuments, tags=["documents"])
    async def client_documents(client_id: Annotated[ClientId, Path()]) -> ClientDocuments:
        """Every stored document version of the client (without text), newest first per document."""
        try:
            await clients.get(pool, client_id)
        except UnknownClient as err:
            raise _not_found(str(err)) from None
        rows = await documents.list_for_client(pool, client_id)
        return ClientDocuments(client_id=client_id, documents=[DocumentEntry(**r) for r in rows])

    @router.get(
        "/documents/{document_id}",
        tags=["documents"],
        responses={
            200: {
                "description": "The document: JSON (sections' structured content) or Markdown.",
                "content": {
                    "application/json": {},
                    "text/markdown": {"schema": {"type": "string"}},
                    exports.DOCX_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}},
                },
            },
            404: {"description": "No such document."},
        },
    )
    async def get_document(
        document_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
        request: Request,
        format: Literal["md", "json", "docx"] | None = Query(None, description="Wins over the Accept header."),
    ) -> Response:
        """One document version, as JSON (default), Markdown (``?format=md`` or
        ``Accept: text/markdown``) or Word (``?format=docx``)."""
        doc = await documents.get(pool, document_id)
        if doc is None:
            raise _not_found(f"no document {document_id}")
        accept = request.headers.get("accept", "")
        fmt = format or ("md" if "text/markdown" in accept else "docx" if exports.DOCX_MEDIA_TYPE in accept else "json")
        if fmt == "docx":
            name = f"{doc.client_id}-{doc.document_key}-v{doc.version}.docx"
            return Response(
                await exports.docx(pool, [doc]),
                media_type=exports.DOCX_MEDIA_TYPE,
                headers={"Content-Disposition": f'attachment; filename="{name}"'},
            )
        if fmt == "md":
            return PlainTextResponse(doc.markdown, media_type="text/markdown; charset=utf-8")
        return JSONResponse(await documents.as_json(pool, doc))

    @router.delete("/clients/{client_id}", response_model=ErasureAnswer, tags=["clients"])
    async def erase_client(
        client_id: Annotated[ClientId, Path()],
        legal_hold: bool = Query(False, description="Keep the client's documents (legal hold); erase the rest."),
    ) -> ErasureAnswer:
        """Erase the client: end its workflows, remove its personal fields, snapshots, messages,
        summaries, cached answers, embeddings and documents (unless ``legal_hold``); its usage
        figures are kept under an anonymous id."""
        try:
            done = await erasure.erase_client(pool, temporal, client_id, legal_hold=legal_hold)
        except UnknownClient as err:
            raise _not_found(str(err)) from None
        return ErasureAnswer(
            client_id=client_id,
            anon_id=done.erased.anon_id,
            legal_hold=legal_hold,
            workflows_ended=done.workflows_ended,
            removed=done.erased.removed,
        )

    @router.put(
        "/documents/{document_id}/sections/{section_key}",
        response_model=Edited,
        tags=["documents"],
        responses={404: {"description": "No such document or section."}, 409: {"description": "Superseded."}},
    )
    async def edit_section(
        document_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
        section_key: Annotated[SectionKey, Path()],
        body: SectionEdit,
    ) -> Edited:
        """Replace a section of this version (the newest of its document) by hand: checked against
        the section's schema (422 naming the fields), stored as a new version (a draft), the
        section locked so later regenerations only propose."""
        try:
            doc = await reviews.find_by_id(pool, document_id)
            new = await edits.edit_section(pool, doc, section_key, body.content, by=body.by, crm=crm_config)
        except reviews.UnknownDocument as err:
            raise _not_found(str(err)) from None
        except edits.InvalidEdit as err:
            raise HTTPException(
                422, detail=[{"loc": ["body", "content"], "msg": p, "type": "value_error"} for p in err.problems]
            ) from None
        except reviews.ReviewRefused as err:
            raise HTTPException(409, detail=str(err)) from None
        return Edited(
            id=new.id,
            document_key=new.document_key,
            version=new.version,
            section_key=section_key,
            review_state=new.review_state,
        )

    @router.get("/clients/{client_id}/proposals", response_model=list[ProposalEntry], tags=["documents"])
    async def client_proposals(client_id: Annotated[ClientId, Path()]) -> list[ProposalEntry]:
        """Pending proposals for the client's locked sections, each with its diff."""
        try:
            await clients.get(pool, client_id)
        except UnknownClient as err:
            raise _not_found(str(err)) from None
        return [ProposalEntry(**v.as_json()) for v in await edits.proposals(pool, client_id)]

    @router.post("/proposals/{proposal_id}/{decision}", tags=["documents"])
    async def decide_proposal(
        proposal_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
        decision: Literal["accept", "reject"],
        body: ReviewInput | None = None,
    ) -> dict[str, Any]:
        """Accept (a new version with the regenerated section, unlocked) or reject (the operator's
        section stays locked) a pending proposal."""
        try:
            doc = await edits.decide(
                pool, proposal_id, accept=decision == "accept", by=(body or ReviewInput()).by, crm=crm_config
            )
        except edits.UnknownProposal as err:
            raise _not_found(str(err)) from None
        except reviews.ReviewRefused as err:
            raise HTTPException(409, detail=str(err)) from None
        return {"proposal_id": proposal_id, "state": f"{decision}ed", "document_id": doc.id if doc else None}

    async def set_review(document_id: int, state: ReviewState, given: ReviewInput) -> Reviewed:
        try:
            doc = await reviews.find_by_id(pool, document_id)
            doc = await reviews.review(pool, doc, state, by=given.by, note=given.note, source=ReviewSource.API)
        except reviews.UnknownDocument as err:
            raise _not_found(str(err)) from None
        except reviews.ReviewRefused as err:
            raise HTTPException(409, detail=str(err)) from None
        return Reviewed(
            id=doc.id, client_id=doc.client_id, document_key=doc.document_key, version=doc.version, review=doc.review()
        )

    _review_answers: dict[int | str, dict[str, Any]] = {
        404: {"description": "No such document."},
        409: {"description": "A superseded version: only the newest version of a document can be reviewed."},
    }

    @router.post(
        "/documents/{document_id}/approve", response_model=Reviewed, tags=["documents"], responses=_review_answers
    )
    async def approve_document(
        document_id: Annotated[int, Path(ge=1, le=2**63 - 1)], body: ReviewInput | None = None
    ) -> Reviewed:
        """Approve this version (it must be the newest of its document); nothing changes otherwise."""
        return await set_review(document_id, ReviewState.APPROVED, body or ReviewInput())

    @router.post(
        "/documents/{document_id}/request-changes",
        response_model=Reviewed,
        tags=["documents"],
        responses=_review_answers,
    )
    async def request_changes(document_id: Annotated[int, Path(ge=1, le=2**63 - 1)], body: ChangesRequest) -> Reviewed:
        """Ask for changes to this version (the newest of its document), saying what in ``note``."""
        return await set_review(document_id, ReviewState.CHANGES_REQUESTED, body)

    @router.get("/dashboard", tags=["dashboard"])
    async def dashboard() -> dict[str, Any]:
        """What the /dashboard page draws: the usage report (the same as `wavelaunch usage
        report --json`), recent generations with Web UI links, budgets and alerts."""
        return await dashboard_data(pool, settings)

    return router
