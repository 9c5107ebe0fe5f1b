"""Operator edits that stick: a section replaced by hand, checked against its schema and locked;
later regenerations leave their answer for it as a proposal (a readable diff) to accept or reject.

Every change makes a new version of the document (a draft): an approved version is never changed
in place. What the CLI and the REST API share; the regeneration side is
``PlanDependencies.keep_edits`` (activities/dependencies.py).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from activities import crm_notify
from activities.crm_notify import CrmNotifyConfig
from domain.limits import MAX_PROBLEMS, InputRefused, json_problems, quote, where
from domain.outputs.schemas import in_schema_order, output_model
from domain.render import render_document, render_section
from domain.reviews import ReviewRefused, UnknownDocument
from service.exports import section_title
from storage import documents, edits, sections
from storage.db import DB, transaction
from storage.documents import StoredDocument
from storage.edits import Proposal

# What an operator's section is stored as (sections.model): never taken for a model's answer.
OPERATOR = "operator"


class InvalidEdit(InputRefused):
    """Content that fails the section's schema; ``problems`` names each field at fault."""


class UnknownProposal(LookupError):
    pass


@dataclass(frozen=True)
class ProposalView:
    proposal: Proposal
    diff: str

    def as_json(self) -> dict[str, Any]:
        p = self.proposal
        return {
            "id": p.id,
            "document_kind": p.document_kind,
            "document_key": p.document_key,
            "section_key": p.section_key,
            "state": p.state,
            "created_at": p.created_at.isoformat(),
            "diff": self.diff,
        }


def check_content(section_key: str, content: Any) -> dict[str, Any]:
    """``content`` as the section's schema reads it; InvalidEdit naming the fields at fault."""
    if not isinstance(content, dict):
        raise InvalidEdit([f"(section): expected a JSON object, got {type(content).__name__}"])
    if problems := json_problems(content):
        raise InvalidEdit(problems)
    try:
        return output_model(section_key).model_validate(content).model_dump(mode="json")
    except ValidationError as err:
        raise InvalidEdit(
            [f"{where(e['loc']) or '(section)'}: {e['msg'][:160]}" for e in err.errors()[:MAX_PROBLEMS]]
        ) from None


async def _keys(db: DB, doc: StoredDocument) -> dict[str, int]:
    stored = await sections.get_many(db, doc.section_ids)
    return {stored[i].section_key: i for i in doc.section_ids}


async def _newest(db: DB, doc: StoredDocument) -> None:
    newest = await documents.latest(db, doc.client_id, doc.kind, document_key=doc.document_key)
    if newest is not None and newest.id != doc.id:
        raise ReviewRefused(
            f"{doc.document_key} v{doc.version} is superseded by v{newest.version}; edit v{newest.version} instead"
            " (nothing changed)"
        )


async def _new_version(
    db: DB, doc: StoredDocument, replace: dict[str, int], changes: list[dict[str, Any]]
) -> StoredDocument:
    """The next version of ``doc``'s document with some sections replaced, rendered again."""
    keys = await _keys(db, doc)
    ids = [replace.get(k, i) for k, i in keys.items()]
    stored = await sections.get_many(db, ids)
    title = doc.markdown.partition("\n")[0].removeprefix("# ").strip()
    parts = [
        (section_title(doc.kind, stored[i].section_key), in_schema_order(stored[i].section_key, stored[i].content))
        for i in ids
    ]
    return await documents.store(
        db,
        client_id=doc.client_id,
        kind=doc.kind,
        level=doc.level,
        client_version=doc.client_version,
        workflow_id="operator",
        run_id=uuid.uuid4().hex,
        section_ids=ids,
        markdown=render_document(title, parts),
        changes=changes,
        document_key=doc.document_key,
    )


async def edit_section(
    db: DB,
    doc: StoredDocument,
    section_key: str,
    content: Any,
    *,
    by: str | None = None,
    crm: CrmNotifyConfig | None = None,
) -> StoredDocument:
    """Replace ``section_key`` of ``doc`` (the newest version of its document) with ``content``,
    checked against the section's schema, in a new version (a draft); the section is locked.
    An unknown section, content failing the schema or a superseded version: nothing changes."""
    keys = await _keys(db, doc)
    if section_key not in keys:
        raise UnknownDocument(
            f"{doc.document_key} has no section {quote(section_key)}; its sections: {', '.join(keys)}"
        )
    checked = check_content(section_key, content)
    await _newest(db, doc)
    digest = hashlib.sha256(json.dumps(checked, sort_keys=True).encode()).hexdigest()[:32]
    async with transaction(db) as conn:
        section_id = await sections.store(
            conn,
            idempotency_key=f"edit|{doc.client_id}|{doc.kind}|{doc.document_key}|{section_key}|{digest}",
            client_id=doc.client_id,
            client_version=doc.client_version,
            document_kind=doc.kind,
            section_key=section_key,
            schema_version=0,
            prompt_version=0,
            model=OPERATOR,
            content=checked,
        )
        locked = await edits.locks(conn, doc.client_id, doc.kind, doc.document_key)
        base = locked[section_key].base_section_id if section_key in locked else keys[section_key]
        await edits.lock(conn, doc.client_id, doc.kind, doc.document_key, section_key, section_id, base, by)
        change = {"section_key": section_key, "reason": "operator edit", "fields": []}
        new = await _new_version(conn, doc, {section_key: section_id}, [change])
        # Like every new version, announced to the CRM (needs review when it supersedes a reviewed one).
        await crm_notify.document_stored(conn, crm or CrmNotifyConfig(), new, doc)
        return new


async def proposals(db: DB, client_id: str, *, state: str | None = "pending") -> list[ProposalView]:
    """The client's proposals (pending by default), each with a unified diff of the section as
    it reads now (the operator's) and as the regeneration wrote it."""
    out = []
    for p in await edits.proposals(db, client_id, state=state):
        stored = await sections.get_many(db, [p.locked_section_id, p.proposed_section_id])
        title = section_title(p.document_kind, p.section_key)

        def lines(section_id: int) -> list[str]:
            content = in_schema_order(p.section_key, stored[section_id].content)  # noqa: B023
            return render_section(title, content).splitlines(keepends=True)  # noqa: B023

        diff = "".join(
            difflib.unified_diff(
                lines(p.locked_section_id),
                lines(p.proposed_section_id),
                fromfile=f"{p.document_key}/{p.section_key} (yours, locked)",
                tofile=f"{p.document_key}/{p.section_key} (regenerated)",
            )
        )
        out.append(ProposalView(p, diff))
    return out


async def decide(
    db: DB, proposal_id: int, *, accept: bool, by: str | None = None, crm: CrmNotifyConfig | None = None
) -> StoredDocument | None:
    """Accept (a new version with the regenerated section; the lock is lifted) or reject (the
    lock stays) a pending proposal; the new version when accepted."""
    async with transaction(db) as conn:
        p = await edits.proposal(conn, proposal_id)
        if p is None:
            raise UnknownProposal(f"no proposal {proposal_id}")
        if p.state != "pending":
            raise ReviewRefused(f"proposal {proposal_id} was already {p.state}; nothing changed")
        await edits.decide(conn, proposal_id, "accepted" if accept else "rejected", by)
        if not accept:
            return None
        doc = await documents.latest(conn, p.client_id, p.document_kind, document_key=p.document_key)
        if doc is None:
            raise UnknownDocument(f"no {p.document_key} to accept proposal {proposal_id} into")
        await edits.unlock(conn, p.client_id, p.document_kind, p.document_key, p.section_key)
        change = {"section_key": p.section_key, "reason": "proposal accepted", "fields": []}
        new = await _new_version(conn, doc, {p.section_key: p.proposed_section_id}, [change])
        await crm_notify.document_stored(conn, crm or CrmNotifyConfig(), new, doc)
        return new
