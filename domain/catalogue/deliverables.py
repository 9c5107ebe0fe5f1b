"""The deliverables catalogue: months M1–M8, their documents and the six section kinds.

DESIGN.md §3: every client gets eight monthly deliverables, five documents a month, each with
the same six sections (Executive Summary, Brand Context, Framework/Strategy, SOPs/Workflows,
Templates/Tools, KPIs). This module is the one place that knows them, as the business plan's
catalogue (domain.catalogue.plan) knows the plan's sections; workflows, routing, caching and
rendering ask it. Each kind's spec carries its tier, cache policy and output model
(domain.outputs.deliverables); a document's section is its kind's spec narrowed to the document.

Section keys:
- ``brand_context`` is *shared*: it reads only the client's brand fields, not the month or the
  document, so it is generated once per client version and reused by all five documents of a
  month and by every later month while the client version is unchanged.
- every other section is per document: ``<document key>__<kind key>``, e.g.
  ``m1_brand_architecture__kpis`` (double underscore: both halves contain single ones; the
  whole key is also a valid OpenAI schema name).

A month builds on a compact digest of earlier months (domain.digest), never on their full text.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from domain.outputs.deliverables import (
    BrandContext,
    DeliverableSummary,
    FrameworkStrategy,
    Kpis,
    SopsWorkflows,
    TemplatesTools,
)
from domain.sections import CachePolicy, SectionSpec, Tier, UnknownSection

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
    # Topic fields this document adds to its document-specific sections (KindSpec.document_fields).
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
            "(see domain.catalogue.deliverables.MONTHS)"
        ) from None


# -- section kinds -------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class KindSpec(SectionSpec):
    """A deliverable section kind: its SectionSpec and what a kind is beyond one."""

    # Generated once per client version and reused by every document and month.
    shared: bool
    # Its fields are the kind's plus the document's focus_fields.
    document_fields: bool


# KPI targets are figures and dates, so a "similar" answer is never served.
KPI_TARGETS_MATCH_EXACTLY = CachePolicy(semantic=False, reason="KPI targets must match exactly")

# Kind keys are distinct from the business plan's section keys (no "executive_summary"), so a
# key never names two different schemas in tables keyed by section key.
# Target tokens: a document is 2,300 tokens with Brand Context (2,100 without). Brand Context
# is compact because it is shown in all 40 documents but says what the client record says.
SECTION_KINDS: tuple[KindSpec, ...] = (
    KindSpec(
        key="exec_summary",
        title="Executive Summary",
        priority=1,
        target_tokens=250,
        purpose="Summarise what this document delivers for the brand this month and the first actions to take.",
        fields=("brandName", "industryNiche", "visionForVenture", "hopeToAchieve"),
        # Reader-facing and short, but it must be coherent with the document's topic: standard.
        tier=Tier.STANDARD,
        output=DeliverableSummary,
        shared=False,
        document_fields=True,
    ),
    KindSpec(
        key="brand_context",
        title="Brand Context",
        priority=2,
        target_tokens=200,
        purpose="State the brand's positioning, audience, values, personality and visual direction in brief.",
        fields=(
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
        # A restatement of the brand fields (low complexity), but seen in every document of every
        # month and written once per client version, so the better model costs next to nothing.
        tier=Tier.STANDARD,
        output=BrandContext,
        # Never reads the digest or the document: that would make it month-specific and unshareable.
        shared=True,
        document_fields=False,
    ),
    KindSpec(
        key="framework_strategy",
        title="Framework/Strategy",
        priority=3,
        target_tokens=650,
        purpose="Set the objective, the approach, its pillars and the key decisions, building on earlier months.",
        fields=("brandName", "industryNiche", "targetAudience", "growthStrategies"),
        # The reasoning core and the largest section: it must build on earlier months' decisions
        # and make new ones that later months inherit (they feed the digest). Premium.
        tier=Tier.PREMIUM,
        output=FrameworkStrategy,
        uses_digest=True,
        shared=False,
        document_fields=True,
    ),
    KindSpec(
        key="sops_workflows",
        title="SOPs/Workflows",
        priority=4,
        target_tokens=500,
        purpose="Write the standard operating procedures that put the strategy into practice, with owners and steps.",
        fields=("brandName", "currentChannels", "scalingGoals"),
        # Procedural and structured, but specific to the document's topic and the brand's channels.
        tier=Tier.STANDARD,
        output=SopsWorkflows,
        shared=False,
        document_fields=True,
    ),
    KindSpec(
        key="templates_tools",
        title="Templates/Tools",
        priority=5,
        target_tokens=400,
        purpose="Give ready-to-use templates as outlines and the tools to run them with.",
        fields=("brandName", "industryNiche", "currentChannels"),
        # Outlines of templates and a tool list: largely boilerplate. Economy.
        tier=Tier.ECONOMY,
        output=TemplatesTools,
        shared=False,
        document_fields=False,
    ),
    KindSpec(
        key="kpis",
        title="KPIs",
        priority=6,
        target_tokens=300,
        purpose="Define the KPIs that show this document is working: definition, target and review cadence.",
        fields=("brandName", "scalingGoals", "specificDeadlines", "currentChannels"),
        # KPI definitions are boilerplate (economy); it reads the digest to keep KPIs chosen in
        # earlier months instead of renaming them, so dashboards stay comparable month to month.
        tier=Tier.ECONOMY,
        output=Kpis,
        cache=KPI_TARGETS_MATCH_EXACTLY,
        uses_digest=True,
        shared=False,
        document_fields=False,
    ),
)

_KINDS: dict[str, KindSpec] = {k.key: k for k in SECTION_KINDS}
SHARED_KINDS = frozenset(k.key for k in SECTION_KINDS if k.shared)


def section_kinds() -> tuple[KindSpec, ...]:
    """The six section kinds every deliverable document has, in reading order."""
    return SECTION_KINDS


def section_kind(key: str) -> KindSpec:
    try:
        return _KINDS[key]
    except KeyError:
        raise UnknownSection(f"unknown deliverable section kind {key!r}; known kinds: {', '.join(_KINDS)}") from None


def traits(kind_key: str) -> KindSpec:
    """What a section kind is (shared, uses_digest, document_fields...): its spec."""
    return section_kind(kind_key)


def section_key(document_key: str, kind_key: str) -> str:
    """The key a document's section is stored and cached under; a shared kind's own key."""
    section_kind(kind_key)
    doc = document(document_key)
    if _KINDS[kind_key].shared:
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
    raise _unknown(key)


def _unknown(key: str) -> UnknownSection:
    return UnknownSection(
        f"unknown deliverable section {key!r}; expected one of {', '.join(sorted(SHARED_KINDS))} "
        f"or '<document key>{SEPARATOR}<kind>' with kind one of "
        f"{', '.join(k for k in _KINDS if k not in SHARED_KINDS)}"
    )


def kind_of(key: str) -> str:
    """The section kind of a deliverable section key (selects its output model and tier)."""
    return split_section_key(key)[1]


def find(key: str) -> KindSpec | None:
    """The spec of a deliverable section key or of a section kind's key; None if neither."""
    if key in _KINDS:
        return _KINDS[key]
    try:
        return section_spec(key)
    except UnknownSection:
        return None


def section_spec(key: str) -> KindSpec:
    """The concrete SectionSpec of a deliverable section key, as prompts and the ledger need it:
    the kind's spec, narrowed to the document (purpose, focus fields) unless the kind is shared."""
    doc_key, kind_key = split_section_key(key)
    kind = _KINDS[kind_key]
    if doc_key is None:
        return kind
    doc = _DOCUMENTS[doc_key]
    fields = kind.fields
    if kind.document_fields:
        fields = tuple(dict.fromkeys((*kind.fields, *doc.focus_fields)))
    m = MONTHS[doc.month - 1]
    purpose = f"{kind.purpose} Document: {doc.title} (M{m.number} {m.title}): {doc.purpose}"
    return replace(kind, key=key, purpose=purpose, fields=fields)


def document_sections(document_key: str) -> tuple[KindSpec, ...]:
    """The six sections of one document, in reading order (Brand Context is the shared spec)."""
    return tuple(section_spec(section_key(document_key, k.key)) for k in SECTION_KINDS)


def month_sections(n: int) -> tuple[KindSpec, ...]:
    """The distinct sections month ``n`` fans out: shared ones once, then each document's."""
    seen: dict[str, KindSpec] = {}
    for doc in documents(n):
        for spec in document_sections(doc.key):
            seen.setdefault(spec.key, spec)
    shared = [s for s in seen.values() if s.key in SHARED_KINDS]
    return (*shared, *(s for s in seen.values() if s.key not in SHARED_KINDS))
