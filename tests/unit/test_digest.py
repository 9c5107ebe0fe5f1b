"""The digest of earlier months a deliverable month builds on (domain.digest)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from pydantic import ValidationError

from domain import digest as dg
from domain.catalogue import deliverables as dlv
from domain.outputs import deliverables as outputs
from tokenopt.counting import count_tokens

ALL_DOCUMENTS = [d for m in dlv.months() for d in m.documents]

PHRASES = (
    "Position the brand as the premium, clean choice for busy mothers aged 28 to 40 in the UK",
    "Launch with three hero products first and hold bundles and refills for the second wave",
    "Use sage green and warm terracotta as the primary palette on every customer touchpoint",
    "Publish four short videos a week on TikTok and three carousel posts on Instagram",
    "Run the community in a private Discord with a weekly live Q&A hosted by the founder",
    "Price the core line between 28 and 45 dollars, below the prestige competitors",
    "Ship from one third-party fulfilment centre and promise dispatch within 48 hours",
    "Grow the waitlist through a quiz-led landing page with a 10 percent launch discount",
)
METRICS = (
    "waitlist sign-ups per week",
    "email open rate",
    "return on ad spend",
    "customer acquisition cost",
    "repeat purchase rate",
    "engaged community members",
)


def _realistic_sections(through: int = 8) -> dict[str, dict[str, Any]]:
    """Full-size section contents for every document, validated by the output models."""
    phrase = itertools.cycle(PHRASES)
    out: dict[str, dict[str, Any]] = {}
    for m in dlv.months()[:through]:
        for doc in m.documents:
            topic = doc.title.lower()
            strategy = outputs.FrameworkStrategy(
                objective=f"Make {topic} a strength of the brand this month.",
                approach=f"Work through {topic} in weekly sprints with clear owners. " * 3,
                pillars=[outputs.Pillar(name=f"Pillar {i}", description=next(phrase)) for i in range(4)],
                key_decisions=[f"{next(phrase)} ({topic})" for _ in range(5)],
                risks=[next(phrase) for _ in range(3)],
            )
            summary = outputs.DeliverableSummary(
                headline=f"{doc.title} for the brand",
                overview=" ".join(next(phrase) + "." for _ in range(4)),
                key_points=[next(phrase) for _ in range(5)],
                next_steps=[next(phrase) for _ in range(3)],
            )
            kpis = outputs.Kpis(
                kpis=[
                    outputs.Kpi(
                        name=metric.capitalize(),
                        definition=next(phrase),
                        target="+20% by month end",
                        cadence="weekly",
                    )
                    for metric in METRICS
                ]
            )
            out[dlv.section_key(doc.key, "framework_strategy")] = strategy.model_dump(mode="json")
            out[dlv.section_key(doc.key, "exec_summary")] = summary.model_dump(mode="json")
            out[dlv.section_key(doc.key, "kpis")] = kpis.model_dump(mode="json")
    return out


def test_month_one_has_an_empty_digest():
    digest = dg.build_digest(1, _realistic_sections())
    assert digest.documents == [] and dg.render_digest(digest) == ""


@pytest.mark.parametrize("exact", [True, False])
def test_a_digest_of_seven_full_months_stays_under_the_bound(exact: bool):
    counter = {"count_tokens": count_tokens} if exact else {}
    sections = _realistic_sections()
    full_text = sum(count_tokens(str(v)) for v in sections.values())
    digest = dg.build_digest(8, sections, **counter)
    text = dg.render_digest(digest)
    tokens = count_tokens(text)
    assert tokens <= dg.DIGEST_TOKEN_BUDGET, tokens
    assert full_text > 10 * tokens  # it is a digest, not the text
    assert [d.key for d in digest.documents] == [d.key for d in ALL_DOCUMENTS[:35]]
    for doc in digest.documents:
        assert 1 <= len(doc.decisions) <= dg.MAX_DECISIONS
        assert all(len(x) <= dg.DECISION_CHARS for x in doc.decisions)
        assert all(len(x) <= dg.KPI_CHARS for x in doc.kpis)
        assert doc.title in text
    # The month just before keeps the most detail.
    assert all(len(d.decisions) >= dg.MIN_DECISIONS for d in digest.documents if d.month == 7)
    # Every document measures the same KPIs: each name is carried once, by the first document.
    assert all(text.count(metric.capitalize()) == 1 for metric in METRICS)


def test_early_digests_are_not_trimmed_when_they_fit():
    digest = dg.build_digest(3, _realistic_sections(), count_tokens=count_tokens)
    assert len(digest.documents) == 10
    assert all(len(d.decisions) == dg.MAX_DECISIONS for d in digest.documents)
    assert digest.documents[0].kpis == [m.capitalize() for m in METRICS] and not any(
        d.kpis for d in digest.documents[1:]
    )


def test_every_month_digest_stays_under_the_bound_even_with_dense_figures():
    dense = "Hit 12,500 units at $38.50 AOV by Q3 2026 (UK/EU 60/40); CAC ≤ £14.20; ROAS ≥ 3.2x"
    content = {"key_decisions": [dense] * 5, "key_points": [dense], "kpis": [{"name": "ROAS ≥ 3.2x / CAC £14.20"}] * 3}
    sections = {key: content for key in dg.digest_section_keys(8)}
    for n in range(2, 9):
        text = dg.render_digest(dg.build_digest(n, sections, count_tokens=count_tokens))
        assert count_tokens(text) <= dg.DIGEST_TOKEN_BUDGET, n
        assert text.startswith(f"EARLIER MONTHS (before M{n})")


def test_a_small_digest_keeps_everything_within_item_bounds():
    key = dlv.section_key("m1_brand_architecture", "framework_strategy")
    summary = dlv.section_key("m1_brand_architecture", "exec_summary")
    kpis = dlv.section_key("m1_brand_architecture", "kpis")
    sections = {
        key: {"key_decisions": ["Premium clean positioning", "premium clean positioning.", "Three hero SKUs"]},
        summary: {"key_points": ["Sage and terracotta palette", "Quiz-led waitlist", "Founder-led Discord", "Extra"]},
        kpis: {"kpis": [{"name": "Waitlist sign-ups"}, {"name": "Email open rate"}, {"name": "ROAS"}, {"name": "CAC"}]},
        "m2_ecommerce_infrastructure__framework_strategy": {"key_decisions": ["Not carried into M2's own digest"]},
    }
    digest = dg.build_digest(2, sections)
    assert [d.key for d in digest.documents] == ["m1_brand_architecture"]
    doc = digest.documents[0]
    # Duplicates dropped, topped up from the summary's key points, capped at five; KPIs whole.
    assert doc.decisions == [
        "Premium clean positioning",
        "Three hero SKUs",
        "Sage and terracotta palette",
        "Quiz-led waitlist",
        "Founder-led Discord",
    ]
    assert doc.kpis == ["Waitlist sign-ups", "Email open rate", "ROAS", "CAC"]
    text = dg.render_digest(digest)
    assert "M1 Foundation Excellence" in text and "KPIs: Waitlist sign-ups, Email open rate, ROAS, CAC" in text


def test_digest_sizes_are_bounded_by_the_model():
    with pytest.raises(ValidationError):
        dg.DigestDocument(key="k", month=1, title="t", decisions=["x"] * 6, kpis=[])
    with pytest.raises(ValidationError):
        dg.DigestDocument(key="k", month=1, title="t", decisions=["x" * (dg.DECISION_CHARS + 1)], kpis=[])
    with pytest.raises(ValidationError):
        dg.DigestDocument(key="k", month=1, title="t", decisions=[], kpis=["k"] * (dg.MAX_KPIS + 1))


def test_digest_sources():
    assert set(dg.digest_fields()) == {"framework_strategy", "exec_summary", "kpis"}
    keys = dg.digest_section_keys(3)
    assert len(keys) == 10 * 3
    assert all(dlv.split_section_key(k)[0].startswith(("m1_", "m2_")) for k in keys)
    assert dg.digest_section_keys(1) == []
    with pytest.raises(ValueError, match="1–8"):
        dg.digest_section_keys(9)


def test_clip_cuts_at_a_word_boundary():
    text = "Use sage green and terracotta as the primary palette everywhere"
    clipped = dg.clip(text, 40)
    assert len(clipped) <= 40 and clipped.endswith("…")
    assert clipped == "Use sage green and terracotta…"
    assert dg.clip("  Short   one. ", 40) == "Short one"
    assert len(dg.clip("x" * 100, 20)) == 20
