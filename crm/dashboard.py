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

from storage import usage
from wavelaunch.settings import Settings

RECENT_GENERATIONS = 20


async def budget_status(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    """Budgets and how much of each is used: TO BE WIRED BY THE LEAD.

    Another branch builds budgets. Return one dict per budget and period, e.g.
    ``{"budget": "global", "period": "DAILY", "token_limit": 1000000, "tokens_used": 1234,
    "cost_limit": 50.0, "cost_used": 0.12, "use_ratio": 0.0024}`` (``use_ratio``: the larger of
    the token and cost ratios). The page draws one gauge per entry, an empty state for [].
    ``crm.metrics.budget_samples`` should read the same function.
    """
    return []


async def alerts(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    """Budget alerts (50/75/90/100%) and other operator alerts: TO BE WIRED BY THE LEAD.

    One dict per alert, newest first, e.g. ``{"at": "<ISO 8601>", "level": "warning",
    "message": "DAILY budget at 75%"}``; the page lists them, an empty state for [].
    """
    return []


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
        "web_ui_url": settings.web_ui_url(),
    }


def page() -> str:
    """The dashboard page (HTML; its script fetches /api/v1/dashboard with the token)."""
    return (resources.files("crm") / "static" / "dashboard.html").read_text()


def script() -> str:
    return (resources.files("crm") / "static" / "dashboard.js").read_text()
