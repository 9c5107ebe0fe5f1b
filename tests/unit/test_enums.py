"""Statuses, tiers and modes are enums whose values are the strings stored rows, JSON, workflow
histories and metric labels have always carried: a renamed value would break replay and reports."""

from __future__ import annotations

import json

from contracts.models import BulkMode, ChangeReason, DocumentProgress, DocumentStatus, SectionChange, SectionResult
from domain.cache_policy import CacheTier
from domain.sections import Tier


def test_values_are_the_stored_strings():
    assert [t.value for t in CacheTier] == ["none", "stored", "exact", "template", "semantic", "patch"]
    assert [t.value for t in Tier] == ["economy", "standard", "premium"]
    assert [m.value for m in BulkMode] == ["batch", "direct"]
    assert [r.value for r in ChangeReason] == ["new", "inputs changed", "regenerated"]
    assert {s.value for s in DocumentStatus} == {
        "starting",
        "preparing",
        "generating",
        "summarising",
        "batching",
        "submitting",
        "waiting",
        "collecting",
        "paused",
        "assembling",
        "completed",
        "failed",
        "cancelled",
    }


def test_models_serialise_enums_as_their_values_and_read_old_payloads():
    payload = '{"section_key":"kpis","section_id":1,"model":"m","tier":"economy","cache_tier":"patch"}'
    result = SectionResult.model_validate_json(payload)
    assert result.tier is Tier.ECONOMY and result.cache_tier is CacheTier.PATCH
    dumped = json.loads(result.model_dump_json())
    assert (dumped["tier"], dumped["cache_tier"]) == ("economy", "patch")
    assert SectionChange(section_key="k", reason="inputs changed").model_dump(mode="json")["reason"] == "inputs changed"
    assert DocumentProgress(client_id="c").model_dump(mode="json")["status"] == "starting"


def test_a_result_without_a_known_tier_reads_as_none():
    """A bulk line whose figures an earlier collect recorded carries no tier (it once carried "")."""
    from contracts.models import SectionResult

    assert SectionResult(section_key="k", section_id=1, model="m", tier="").tier is None
    assert SectionResult(section_key="k", section_id=1, model="m", tier=None).tier is None
    assert SectionResult(section_key="k", section_id=1, model="m", tier="economy").tier == "economy"
