"""The deliverables catalogue: months M1–M8, their documents, the six section kinds, outputs.

DESIGN.md §3: every client gets eight monthly deliverables, five documents a month, each with
the same six sections (Executive Summary, Brand Context, Framework/Strategy, SOPs/Workflows,
Templates/Tools, KPIs). This module is the one place that knows them, as the business plan's
catalogue (domain.sections) knows the plan's sections; workflows, routing, caching and
rendering ask it.

Section keys:
- ``brand_context`` is *shared*: it reads only the client's brand fields, not the month or the
  document, so it is generated once per client version and reused by all five documents of a
  month and by every later month while the client version is unchanged.
- every other section is per document: ``<document key>__<kind key>``, e.g.
  ``m1_brand_architecture__kpis`` (double underscore: both halves contain single ones; the
  whole key is also a valid OpenAI schema name).

A month builds on a compact digest of earlier months (decisions and KPI names per document,
bounded in count and length), never on their full text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from domain.sections import SectionSpec, UnknownSection

FIRST_MONTH = 1
LAST_MONTH = 8
SEPARATOR = "__"


# -- months and documents ------------------------------------------------------------------
@dataclass(frozen=True)
class DocumentSpec:
    key: str
    month: int
    title: str
    purpose: str
    # Topic fields this document adds to its document-specific sections (KindTraits.document_fields).
    focus_fields: tuple[str, ...] = ()


@dataclass(frozen=True)
class Month:
    number: int
    title: str
    documents: tuple[DocumentSpec, ...]

    @property
    def key(self) -> str:
        return f"m{self.number}"


def _month(number: int, title: str, *docs: tuple[str, str, str, tuple[str, ...]]) -> Month:
    return Month(number, title, tuple(DocumentSpec(k, number, t, p, f) for k, t, p, f in docs))


MONTHS: tuple[Month, ...] = (
    _month(
        1,
        "Foundation Excellence",
        (
            "m1_brand_architecture",
            "Brand Architecture",
            "Define the brand's core, promise, naming and product architecture that every later deliverable builds on.",
            ("brandValues", "differentiation", "productCategories"),
        ),
        (
            "m1_market_fortification",
            "Market Fortification",
            "Secure the brand's position against current and emerging competitors with defensible advantages.",
            ("emergingCompetitors", "differentiation", "keyPainPoints"),
        ),
        (
            "m1_visual_identity",
            "Visual Identity",
            "Set the logo direction, palette, typography and imagery rules that make the brand recognisable.",
            ("brandingAesthetics", "preferredFont", "inspirationBrands"),
        ),
        (
            "m1_content_framework",
            "Content Framework",
            "Establish the content pillars, formats, voice and cadence the brand publishes with.",
            ("currentChannels", "brandPersonality", "keyPainPoints"),
        ),
        (
            "m1_community_foundation",
            "Community Foundation",
            "Lay the foundations of the brand's community: who joins, where they gather and why they stay.",
            ("currentChannels", "demographicProfile", "emotionsBrandEvokes"),
        ),
    ),
    _month(
        2,
        "Brand Readiness & Productization",
        (
            "m2_product_development_playbook",
            "Product Development Playbook",
            "Turn the product ideas into specified, sourced and tested products ready for launch.",
            ("productCategories", "otherProductIdeas", "keyPainPoints"),
        ),
        (
            "m2_ecommerce_infrastructure",
            "E-Commerce Infrastructure",
            "Choose and set up the store, payments, shipping and integrations the brand sells through.",
            ("productCategories", "country"),
        ),
        (
            "m2_visual_assets_production",
            "Visual Assets Production",
            "Plan and produce the product photography, packaging and launch visuals on brand.",
            ("brandingAesthetics", "preferredFont", "productCategories"),
        ),
        (
            "m2_content_production_sop",
            "Content Production SOP",
            "Make content production repeatable: planning, shooting, editing, approval and publishing.",
            ("currentChannels", "instagramHandle", "tiktokHandle"),
        ),
        (
            "m2_operational_readiness",
            "Operational Readiness",
            "Get inventory, fulfilment, customer service and legal basics ready before launch.",
            ("productCategories", "country", "specificDeadlines"),
        ),
    ),
    _month(
        3,
        "Market Entry Preparation",
        (
            "m3_pre_launch_campaign",
            "Pre-Launch Campaign",
            "Build anticipation and a waitlist ahead of launch with a dated campaign plan.",
            ("specificDeadlines", "currentChannels", "targetAudience"),
        ),
        (
            "m3_influencer_affiliate_playbook",
            "Influencer & Affiliate Playbook",
            "Recruit, brief and reward the influencers and affiliates who will carry the launch.",
            ("inspirationBrands", "currentChannels", "targetAudience"),
        ),
        (
            "m3_advertising_starter_kit",
            "Advertising Starter Kit",
            "Set up the first paid campaigns: audiences, creatives, budgets and tests.",
            ("targetAudience", "demographicProfile", "targetDemographicAge"),
        ),
        (
            "m3_content_engine_kit",
            "Content Engine Kit",
            "Scale content output with batching, repurposing and a posting calendar across channels.",
            ("currentChannels", "instagramHandle", "tiktokHandle"),
        ),
        (
            "m3_community_building",
            "Community Building",
            "Grow the community into an active launch audience with rituals, spaces and programmes.",
            ("currentChannels", "demographicProfile", "keyPainPoints"),
        ),
    ),
    _month(
        4,
        "Sales Engine & Launch Infrastructure",
        (
            "m4_conversion_optimization",
            "Conversion Optimization",
            "Raise the share of visitors who buy through offers, page structure and checkout fixes.",
            ("keyPainPoints", "uniqueValueProps", "productCategories"),
        ),
        (
            "m4_email_crm_automation",
            "Email & CRM Automation",
            "Automate welcome, cart, post-purchase and win-back journeys in email and CRM.",
            ("productCategories", "keyPainPoints", "targetAudience"),
        ),
        (
            "m4_customer_experience",
            "Customer Experience",
            "Design every customer touchpoint from unboxing to support so buyers return and refer.",
            ("keyPainPoints", "brandValues", "emotionsBrandEvokes"),
        ),
        (
            "m4_analytics_dashboard",
            "Analytics Dashboard",
            "Define the tracking and the dashboard the team reads to steer sales and marketing.",
            ("currentChannels", "scalingGoals"),
        ),
        (
            "m4_scaling_partnerships",
            "Scaling Partnerships",
            "Identify and approach the brand partners and collaborations that extend reach.",
            ("inspirationBrands", "growthStrategies", "productCategories"),
        ),
    ),
    _month(
        5,
        "Pre-Launch Mastery",
        (
            "m5_pre_launch_simulation",
            "Pre-Launch Simulation",
            "Rehearse the launch end to end to find and fix failures before customers do.",
            ("specificDeadlines", "productCategories", "currentChannels"),
        ),
        (
            "m5_crisis_reputation_kit",
            "Crisis & Reputation Kit",
            "Prepare responses, owners and escalation paths for the incidents a creator brand can face.",
            ("brandValues", "emergingCompetitors", "currentChannels"),
        ),
        (
            "m5_launch_event_playbook",
            "Launch Event Playbook",
            "Plan the launch event, online or in person, from run of show to follow-up.",
            ("specificDeadlines", "country", "currentChannels"),
        ),
        (
            "m5_team_creator_roles_matrix",
            "Team & Creator Roles Matrix",
            "Assign who owns, approves and supports each launch activity, the creator included.",
            ("professionalMilestones", "scalingGoals"),
        ),
        (
            "m5_final_go_to_market_plan",
            "Final Go-to-Market Plan",
            "Lock the launch offer, pricing, channels, sequence and dates into one plan.",
            ("specificDeadlines", "productCategories", "growthStrategies"),
        ),
    ),
    _month(
        6,
        "Soft Launch Execution",
        (
            "m6_soft_launch_report",
            "Soft Launch Report",
            "Assess the soft launch against its goals and record what worked and what did not.",
            ("specificDeadlines", "productCategories", "hopeToAchieve"),
        ),
        (
            "m6_content_ad_optimization",
            "Content & Ad Optimization",
            "Improve content and ads from soft-launch results: cut, keep and scale what performs.",
            ("currentChannels", "targetAudience"),
        ),
        (
            "m6_customer_feedback_loop",
            "Customer Feedback Loop",
            "Collect, sort and act on customer feedback and close the loop with buyers.",
            ("keyPainPoints", "currentChannels"),
        ),
        (
            "m6_creator_performance_dashboard",
            "Creator Performance Dashboard",
            "Track the creator's and partner creators' content performance and its effect on sales.",
            ("currentChannels", "instagramHandle", "tiktokHandle"),
        ),
        (
            "m6_iteration_roadmap",
            "Iteration Roadmap",
            "Prioritise product, offer and experience changes for the months after the soft launch.",
            ("otherProductIdeas", "growthStrategies", "specificDeadlines"),
        ),
    ),
    _month(
        7,
        "Scaling & Growth Systems",
        (
            "m7_paid_media_scaling",
            "Paid Media Scaling",
            "Scale paid media profitably: budgets, channels, creative testing and guardrails.",
            ("targetAudience", "growthStrategies", "scalingGoals"),
        ),
        (
            "m7_community_monetization",
            "Community Monetization",
            "Earn from the community through memberships, exclusives and community-led products.",
            ("currentChannels", "productCategories", "otherProductIdeas"),
        ),
        (
            "m7_influencer_affiliate_scaling",
            "Influencer/Affiliate Scaling",
            "Grow the influencer and affiliate programme into a managed, measured sales channel.",
            ("inspirationBrands", "growthStrategies"),
        ),
        (
            "m7_product_expansion",
            "Product Expansion",
            "Choose and plan the next products, line extensions and bundles from demand signals.",
            ("otherProductIdeas", "productCategories", "scalingGoals"),
        ),
        (
            "m7_team_ops_scaling_sops",
            "Team & Ops Scaling SOPs",
            "Scale the team and operations with hiring, delegation and operating procedures.",
            ("scalingGoals", "professionalMilestones"),
        ),
    ),
    _month(
        8,
        "Full Launch & Market Domination",
        (
            "m8_full_launch_master_plan",
            "Full Launch Master Plan",
            "Run the full launch: the dated master plan across product, marketing, sales and ops.",
            ("specificDeadlines", "growthStrategies", "productCategories"),
        ),
        (
            "m8_omnichannel_growth",
            "Omnichannel Growth",
            "Extend sales and presence across channels and markets with one consistent experience.",
            ("currentChannels", "growthStrategies", "country"),
        ),
        (
            "m8_partnerships_distribution",
            "Partnerships & Distribution",
            "Open wholesale, retail and distribution partnerships that put the products in new places.",
            ("inspirationBrands", "country", "productCategories"),
        ),
        (
            "m8_brand_authority",
            "Brand Authority",
            "Make the brand and its creator a recognised authority through press, speaking and proof.",
            ("professionalMilestones", "differentiation", "idealBrandImage"),
        ),
        (
            "m8_12_24_month_scaling_roadmap",
            "12–24 Month Scaling Roadmap",
            "Lay out the next 12 to 24 months of growth: goals, bets, milestones and resourcing.",
            ("longTermVision", "scalingGoals", "specificDeadlines"),
        ),
    ),
)

_DOCUMENTS: dict[str, DocumentSpec] = {d.key: d for m in MONTHS for d in m.documents}


class UnknownDocument(ValueError):
    pass


def month(n: int) -> Month:
    """Month ``n`` (1–8) of the deliverables programme."""
    if isinstance(n, bool) or not isinstance(n, int) or not FIRST_MONTH <= n <= LAST_MONTH:
        raise ValueError(f"deliverable month must be an integer from 1–8 (M1–M8), got {n!r}")
    return MONTHS[n - 1]


def months() -> tuple[Month, ...]:
    return MONTHS


def documents(n: int) -> tuple[DocumentSpec, ...]:
    """The five documents of month ``n``, in reading order."""
    return month(n).documents


def document(key: str) -> DocumentSpec:
    try:
        return _DOCUMENTS[key]
    except KeyError:
        raise UnknownDocument(
            f"unknown deliverable document {key!r}; keys look like 'm1_brand_architecture' "
            "(see domain.deliverables.MONTHS)"
        ) from None


# -- section kinds -------------------------------------------------------------------------
TierName = Literal["economy", "standard", "premium"]


@dataclass(frozen=True)
class KindTraits:
    """What a section kind is beyond its SectionSpec."""

    # Generated once per client version and reused by every document and month.
    shared: bool
    # Its prompt carries the compact digest of earlier months.
    uses_digest: bool
    # Routing tier name (tokenopt.routing.Tier values); kept as a string so domain does not
    # import tokenopt.
    tier: TierName
    # Its fields are the kind's plus the document's focus_fields.
    document_fields: bool


# Kind keys are distinct from the business plan's section keys (no "executive_summary"), so a
# key never names two different schemas in tables keyed by section key.
# Target tokens: a document is 2,300 tokens with Brand Context (2,100 without). Brand Context
# is compact because it is shown in all 40 documents but says what the client record says.
SECTION_KINDS: tuple[SectionSpec, ...] = (
    SectionSpec(
        "exec_summary",
        "Executive Summary",
        1,
        250,
        "Summarise what this document delivers for the brand this month and the first actions to take.",
        ("brandName", "industryNiche", "visionForVenture", "hopeToAchieve"),
    ),
    SectionSpec(
        "brand_context",
        "Brand Context",
        2,
        200,
        "State the brand's positioning, audience, values, personality and visual direction in brief.",
        (
            "brandName",
            "industryNiche",
            "brandValues",
            "brandPersonality",
            "idealBrandImage",
            "emotionsBrandEvokes",
            "brandingAesthetics",
            "targetAudience",
            "uniqueValueProps",
        ),
    ),
    SectionSpec(
        "framework_strategy",
        "Framework/Strategy",
        3,
        650,
        "Set the objective, the approach, its pillars and the key decisions, building on earlier months.",
        ("brandName", "industryNiche", "targetAudience", "growthStrategies"),
    ),
    SectionSpec(
        "sops_workflows",
        "SOPs/Workflows",
        4,
        500,
        "Write the standard operating procedures that put the strategy into practice, with owners and steps.",
        ("brandName", "currentChannels", "scalingGoals"),
    ),
    SectionSpec(
        "templates_tools",
        "Templates/Tools",
        5,
        400,
        "Give ready-to-use templates as outlines and the tools to run them with.",
        ("brandName", "industryNiche", "currentChannels"),
    ),
    SectionSpec(
        "kpis",
        "KPIs",
        6,
        300,
        "Define the KPIs that show this document is working: definition, target and review cadence.",
        ("brandName", "scalingGoals", "specificDeadlines", "currentChannels"),
    ),
)

KIND_TRAITS: dict[str, KindTraits] = {
    # Reader-facing and short, but it must be coherent with the document's topic: standard.
    "exec_summary": KindTraits(shared=False, uses_digest=False, tier="standard", document_fields=True),
    # A restatement of the brand fields (low complexity), but seen in every document of every
    # month and written once per client version, so the better model costs next to nothing.
    # Never reads the digest or the document: that would make it month-specific and unshareable.
    "brand_context": KindTraits(shared=True, uses_digest=False, tier="standard", document_fields=False),
    # The reasoning core and the largest section: it must build on earlier months' decisions
    # and make new ones that later months inherit (they feed the digest). Premium.
    "framework_strategy": KindTraits(shared=False, uses_digest=True, tier="premium", document_fields=True),
    # Procedural and structured, but specific to the document's topic and the brand's channels.
    "sops_workflows": KindTraits(shared=False, uses_digest=False, tier="standard", document_fields=True),
    # Outlines of templates and a tool list: largely boilerplate. Economy.
    "templates_tools": KindTraits(shared=False, uses_digest=False, tier="economy", document_fields=False),
    # KPI definitions are boilerplate (economy); it reads the digest to keep KPIs chosen in
    # earlier months instead of renaming them, so dashboards stay comparable month to month.
    "kpis": KindTraits(shared=False, uses_digest=True, tier="economy", document_fields=False),
}

_KINDS: dict[str, SectionSpec] = {k.key: k for k in SECTION_KINDS}
SHARED_KINDS = frozenset(k for k, t in KIND_TRAITS.items() if t.shared)


def section_kinds() -> tuple[SectionSpec, ...]:
    """The six section kinds every deliverable document has, in reading order."""
    return SECTION_KINDS


def section_kind(key: str) -> SectionSpec:
    try:
        return _KINDS[key]
    except KeyError:
        raise UnknownSection(f"unknown deliverable section kind {key!r}; known kinds: {', '.join(_KINDS)}") from None


def traits(kind_key: str) -> KindTraits:
    section_kind(kind_key)
    return KIND_TRAITS[kind_key]


def section_key(document_key: str, kind_key: str) -> str:
    """The key a document's section is stored and cached under; a shared kind's own key."""
    section_kind(kind_key)
    doc = document(document_key)
    if KIND_TRAITS[kind_key].shared:
        return kind_key
    return f"{doc.key}{SEPARATOR}{kind_key}"


def split_section_key(key: str) -> tuple[str | None, str]:
    """(document key or None for a shared section, kind key); raises UnknownSection."""
    doc_key, sep, kind_key = key.rpartition(SEPARATOR)
    if not sep:
        if key in SHARED_KINDS:
            return None, key
    elif doc_key in _DOCUMENTS and kind_key in _KINDS and kind_key not in SHARED_KINDS:
        return doc_key, kind_key
    raise UnknownSection(
        f"unknown deliverable section {key!r}; expected one of {', '.join(sorted(SHARED_KINDS))} "
        f"or '<document key>{SEPARATOR}<kind>' with kind one of "
        f"{', '.join(k for k in _KINDS if k not in SHARED_KINDS)}"
    )


def kind_of(key: str) -> str:
    """The section kind of a deliverable section key (selects its output model and tier)."""
    return split_section_key(key)[1]


def section_spec(key: str) -> SectionSpec:
    """The concrete SectionSpec of a deliverable section key, as prompts and the ledger need it:
    the kind's spec, narrowed to the document (purpose, focus fields) unless the kind is shared."""
    doc_key, kind_key = split_section_key(key)
    kind = _KINDS[kind_key]
    if doc_key is None:
        return kind
    doc = _DOCUMENTS[doc_key]
    fields = kind.fields
    if KIND_TRAITS[kind_key].document_fields:
        fields = tuple(dict.fromkeys((*kind.fields, *doc.focus_fields)))
    m = MONTHS[doc.month - 1]
    purpose = f"{kind.purpose} Document: {doc.title} (M{m.number} {m.title}): {doc.purpose}"
    return replace(kind, key=key, purpose=purpose, fields=fields)


def document_sections(document_key: str) -> tuple[SectionSpec, ...]:
    """The six sections of one document, in reading order (Brand Context is the shared spec)."""
    return tuple(section_spec(section_key(document_key, k.key)) for k in SECTION_KINDS)


def month_sections(n: int) -> tuple[SectionSpec, ...]:
    """The distinct sections month ``n`` fans out: shared ones once, then each document's."""
    seen: dict[str, SectionSpec] = {}
    for doc in documents(n):
        for spec in document_sections(doc.key):
            seen.setdefault(spec.key, spec)
    shared = [s for s in seen.values() if s.key in SHARED_KINDS]
    return (*shared, *(s for s in seen.values() if s.key not in SHARED_KINDS))


def tier_name(key: str) -> TierName:
    """Routing tier name of a deliverable section key or kind key."""
    kind_key = key if key in _KINDS else kind_of(key)
    return KIND_TRAITS[kind_key].tier


# -- outputs ---------------------------------------------------------------------------------
class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Pillar(_Out):
    name: str
    description: str


class Sop(_Out):
    name: str
    owner: str
    steps: list[str]


class Template(_Out):
    name: str
    purpose: str
    outline: list[str]


class Tool(_Out):
    name: str
    use: str


class Kpi(_Out):
    # Later months keep the same KPIs by name (the digest carries names whole): short is cheap.
    name: str = Field(description="at most 5 words")
    definition: str
    target: str
    cadence: str


class DeliverableSummary(_Out):
    headline: str
    overview: str
    key_points: list[str]
    next_steps: list[str]


class BrandContext(_Out):
    positioning: str
    audience: str
    values: list[str]
    personality: str
    visual_direction: str


class FrameworkStrategy(_Out):
    objective: str
    approach: str
    pillars: list[Pillar]
    # Read by later months through the digest: short is what keeps the digest small.
    key_decisions: list[str] = Field(description="3-5 decisions made here, each at most 8 words")
    risks: list[str]


class SopsWorkflows(_Out):
    sops: list[Sop]


class TemplatesTools(_Out):
    templates: list[Template]
    tools: list[Tool]


class Kpis(_Out):
    kpis: list[Kpi]


KIND_OUTPUTS: dict[str, type[_Out]] = {
    "exec_summary": DeliverableSummary,
    "brand_context": BrandContext,
    "framework_strategy": FrameworkStrategy,
    "sops_workflows": SopsWorkflows,
    "templates_tools": TemplatesTools,
    "kpis": Kpis,
}


def output_model_for(key: str) -> type[_Out]:
    """The output model of a deliverable section key or kind key."""
    kind_key = key if key in _KINDS else kind_of(key)
    return KIND_OUTPUTS[kind_key]


# -- digest of earlier months ------------------------------------------------------------------
# What later months must receive (domain.needs: the decisions and KPI names of every earlier
# month) sets the size. The strategy's schema asks for 3-5 decisions of at most 8 words, so one
# document is a title, up to five decisions whole and the KPI names no earlier document carried
# (KPIs repeat from document to document; a name is a fact once): about 50-70 tokens, some
# 1,700-2,500 for the 35 documents before M8. The budget leaves room for that; trimming the
# oldest months first (_TRIM_STAGES) and then dropping the oldest documents is the guard for
# answers that ignore the schema's limits, not the everyday path. The month just before is
# trimmed last: it is what the next month builds on directly.
DIGEST_TOKEN_BUDGET = 2800
MAX_DECISIONS = 5
MIN_DECISIONS = 3  # kept while the budget allows
# Eight words fit whole (a clipped decision loses its tail).
DECISION_CHARS = 80
MAX_KPIS = 6
KPI_CHARS = 48
MAX_DIGEST_DOCUMENTS = (LAST_MONTH - 1) * 5

# Which outputs the digest reads, per kind: decisions from the strategy (topped up from the
# summary's key points), KPI names from the KPIs section. Nothing else of a month is carried.
DIGEST_FIELDS: dict[str, tuple[str, ...]] = {
    "framework_strategy": ("key_decisions",),
    "exec_summary": ("key_points",),
    "kpis": ("kpis[].name",),
}


def approx_tokens(text: str) -> int:
    """A dependency-free estimate (4 characters a token, English prose). Callers that can pass
    tokenopt.counting.count_tokens to build_digest get an exact bound instead."""
    return -(-len(text) // 4)


Decision = Annotated[str, StringConstraints(max_length=DECISION_CHARS)]
KpiName = Annotated[str, StringConstraints(max_length=KPI_CHARS)]


class DigestDocument(_Out):
    key: str
    month: int
    title: str
    decisions: list[Decision] = Field(max_length=MAX_DECISIONS)
    kpis: list[KpiName] = Field(max_length=MAX_KPIS)


class Digest(_Out):
    """What month ``for_month`` is told of the months before it."""

    for_month: int
    documents: list[DigestDocument] = Field(max_length=MAX_DIGEST_DOCUMENTS)


def digest_fields() -> dict[str, tuple[str, ...]]:
    """Section kind -> the output fields the digest reads (``a[].b``: b of each item of a)."""
    return dict(DIGEST_FIELDS)


def digest_section_keys(n: int) -> list[str]:
    """The stored sections month ``n``'s digest is built from (earlier months only)."""
    month(n)
    return [section_key(d.key, kind) for m in MONTHS[: n - 1] for d in m.documents for kind in DIGEST_FIELDS]


_SPACE = re.compile(r"\s+")
# Words a clipped phrase should not end on ("...the palette as the" -> "...the palette").
_DANGLING = frozenset("a an and as at by for from in of on or the to with".split())


def clip(text: str, max_chars: int) -> str:
    """One line of at most ``max_chars``, cut at a word boundary and marked with an ellipsis."""
    text = _SPACE.sub(" ", text).strip().rstrip(".")
    if len(text) <= max_chars:
        return text
    words = text[: max_chars - 1].split(" ")
    if len(words) > 1:
        words.pop()  # the last word is probably cut in half
    while len(words) > 1 and words[-1].casefold() in _DANGLING:
        words.pop()
    return " ".join(words).rstrip(" ,;:-") + "…"


def _strings(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str) and v.strip()] if isinstance(value, list) else []


def _pick(candidates: list[str], limit: int, max_chars: int, seen: set[str] | None = None) -> list[str]:
    """Up to ``limit`` distinct clipped items; ``seen`` (shared across documents) skips items
    an earlier document already carries."""
    picked: list[str] = []
    seen = set() if seen is None else seen
    for text in candidates:
        clipped = clip(text, max_chars)
        if clipped and clipped.casefold() not in seen:
            seen.add(clipped.casefold())
            picked.append(clipped)
        if len(picked) == limit:
            break
    return picked


def _render(for_month: int, docs: list[DigestDocument]) -> str:
    if not docs:
        return ""
    lines = [f"EARLIER MONTHS (before M{for_month})"]
    current = 0
    for doc in docs:
        if doc.month != current:
            current = doc.month
            lines.append(f"M{current} {MONTHS[current - 1].title}")
        line = f"- {doc.title}: {'; '.join(doc.decisions)}"
        if doc.kpis:
            line += f" | KPIs: {', '.join(doc.kpis)}"
        lines.append(line)
    return "\n".join(lines)


# Trimming order: (which months, field, floor). Older months give up detail first; the month
# just before keeps three decisions until older months are down to one.
_TRIM_STAGES: tuple[tuple[str, str, int], ...] = (
    ("older", "decisions", MIN_DECISIONS),
    ("older", "kpis", 1),
    ("previous", "decisions", MIN_DECISIONS),
    ("older", "decisions", 1),
    ("older", "kpis", 0),
    ("previous", "kpis", 1),
    ("previous", "decisions", 1),
    ("previous", "kpis", 0),
)


def _trim(for_month: int, docs: list[DigestDocument], fits: Callable[[], bool]) -> None:
    """Shorten ``docs`` in place until ``fits()``, oldest month first."""
    for which, field, floor in _TRIM_STAGES:
        numbers = range(1, for_month - 1) if which == "older" else (for_month - 1,)
        for number in numbers:
            in_month = [d for d in docs if d.month == number]
            while in_month and not fits():
                # The document of this month with the most items loses its last one.
                longest = max(reversed(in_month), key=lambda d: len(getattr(d, field)))
                if len(getattr(longest, field)) <= floor:
                    break
                getattr(longest, field).pop()
            if fits():
                return
    while docs and not fits():
        docs.pop(0)


def build_digest(
    n: int,
    sections: Mapping[str, Mapping[str, Any]],
    *,
    count_tokens: Callable[[str], int] = approx_tokens,
    max_tokens: int = DIGEST_TOKEN_BUDGET,
) -> Digest:
    """The compact digest month ``n`` is given of months 1..n-1.

    ``sections`` maps deliverable section keys to their content as the output models dump it
    (see digest_section_keys); other keys and missing sections are ignored, and documents with
    nothing to carry are left out. Picks decisions and KPI names, clips them, then trims the
    oldest months until ``count_tokens(render_digest(...)) <= max_tokens``.
    """
    month(n)
    docs: list[DigestDocument] = []
    kpis_seen: set[str] = set()
    for m in MONTHS[: n - 1]:
        for doc in m.documents:
            strategy = sections.get(section_key(doc.key, "framework_strategy")) or {}
            summary = sections.get(section_key(doc.key, "exec_summary")) or {}
            kpis = sections.get(section_key(doc.key, "kpis")) or {}
            decisions = _pick(
                _strings(strategy.get("key_decisions")) + _strings(summary.get("key_points")),
                MAX_DECISIONS,
                DECISION_CHARS,
            )
            names = [k.get("name") for k in kpis.get("kpis") or [] if isinstance(k, Mapping)]
            kpi_names = _pick(_strings(names), MAX_KPIS, KPI_CHARS, kpis_seen)
            if decisions or kpi_names:
                docs.append(
                    DigestDocument(key=doc.key, month=m.number, title=doc.title, decisions=decisions, kpis=kpi_names)
                )
    _trim(n, docs, lambda: count_tokens(_render(n, docs)) <= max_tokens)
    return Digest(for_month=n, documents=docs)


def render_digest(digest: Digest) -> str:
    """The digest as prompt text, one line per earlier document under its month; empty for M1."""
    return _render(digest.for_month, digest.documents)
