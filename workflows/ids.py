"""Workflow ids: deterministic, so a repeated request joins the running workflow instead of
starting a second one (USE_EXISTING).

Recorded histories, running workflows and Temporal Schedules carry these ids: their output must
never change (tests/unit/test_workflow_ids.py pins it).
"""

import hashlib

from domain.catalogue import deliverables


def plan_workflow_id(client_id: str) -> str:
    return f"plan-{client_id}"


def deliverable_workflow_id(client_id: str, n: int) -> str:
    """Month ``n``'s deliverable for a client (DESIGN.md §5); a month outside 1–8 is refused."""
    if not client_id:
        raise ValueError("client_id must not be empty")
    return f"deliverable-{client_id}-m{deliverables.month(n).number}"


def summary_workflow_id(client_id: str) -> str:
    """One summary workflow per client: a repeated request joins the running one."""
    return f"summary-{client_id}"


def bulk_workflow_id(client_ids: list[str] | None, kind: str, level: str) -> str:
    """``bulk-<hash>`` of what is asked (the sorted client ids, or "all"): the same request
    joins the running workflow instead of submitting a second batch."""
    who = "all" if client_ids is None else ",".join(sorted(set(client_ids)))
    return "bulk-" + hashlib.sha256(f"{kind}|{level}|{who}".encode()).hexdigest()[:16]
