"""The operators' dashboard: its data (``GET /api/v1/dashboard``) and its page (``/dashboard``).

The figures are the usage report itself (``storage.usage.report``, the query behind
``wavelaunch usage report --json``), so the page and the CLI cannot disagree. The page is static
HTML with a small script that draws SVG charts: no CDN, no library, works offline.
"""

from __future__ import annotations

from datetime import UTC, datetime
from importlib import resources
from typing import Any

import asyncpg

from service.settings import Settings
from storage import alerts as stored_alerts
from storage import budgets, usage
from storage import documents as stored_documents

RECENT_GENERATIONS = 20


async def budget_status(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    """Every budget in its current period and how much of it is used (settled + reserved):
    one gauge each on the page, and ``wavelaunch_budget_use_ratio`` in /metrics."""
    out = []
    for use in await budgets.usage(pool):
        name = "global" if use.client_id is None else f"client {use.client_id}"
        out.append(
            {
                "budget_id": use.budget_id,
                "budget": name,
                "period": use.period.value.upper(),
                "period_start": use.period_start.isoformat(),
                "token_limit": use.token_limit,
                "tokens_used": use.tokens_used,
                "tokens_reserved": use.tokens_reserved,
                "cost_limit": float(use.cost_limit),
                "cost_used": float(use.cost_used),
                "use_ratio": round(use.fraction, 4),
                "paused": use.paused,
            }
        )
    return out


async def alerts(pool: asyncpg.Pool, limit: int = 20) -> list[dict[str, Any]]:
    """The newest alerts (budget thresholds, cache hit rate), newest first."""
    return [
        {
            "at": a.created_at.isoformat(),
            "level": "critical" if (a.threshold or 0) >= 100 else "warning",
            "kind": a.kind,
            "message": a.message,
            "delivered": a.delivered,
        }
        for a in await stored_alerts.recent(pool, limit=limit)
    ]


async def dashboard_data(pool: asyncpg.Pool, settings: Settings) -> dict[str, Any]:
    """Everything the page draws, JSON-ready."""
    report = await usage.report(pool)
    recent = await usage.recent_workflows(pool, limit=RECENT_GENERATIONS)
    for row in recent:
        row["web_ui_url"] = settings.workflow_url(row["workflow_id"])
    documents = await pool.fetchval("SELECT count(*) FROM documents")
    return {
        "generated_at": datetime.now(UTC).isoformat(),
        "report": report,
        "documents": documents,
        "recent": recent,
        "budgets": await budget_status(pool),
        "alerts": await alerts(pool),
        "reviews": await stored_documents.review_overview(pool),
        "web_ui_url": settings.web_ui_url(),
    }


def page() -> str:
    """The dashboard page (HTML; its script fetches /api/v1/dashboard with the token)."""
    return (resources.files("crm") / "static" / "dashboard.html").read_text()


def script() -> str:
    return (resources.files("crm") / "static" / "dashboard.js").read_text()
