"""The independent lower bound of a workload: what any implementation must at least bill.

Computed from the workload's events, the section catalogue and ``domain.needs`` alone, never
from a ledger (ours or anyone's), so it can fall below ours and a test can catch ours doing
redundant work. Walking the events in order:

- **Writes.** Each distinct output that must exist is written once, at its catalogue output
  size: a new client's 8 plan sections; a month's 25 per-document sections, plus Brand Context
  when the client has none yet; a thread's summary after each batch of new messages; a client
  summary when a thread summary changed since the last one.
- **Minimal prompt.** A one-line instruction (the section's title and purpose) and exactly the
  facts the section needs (``domain.needs``) as ``field: value`` lines, counted with
  ``tokenopt.counting``; no output schema, no persona. A section that builds on earlier months
  gets each earlier document's title and ``EARLIER_ITEMS`` items of ``EARLIER_ITEM_TOKENS``
  (the shortest decisions or KPI names a digest could carry). A thread summary gets the smaller
  of its whole thread and (its previous summary + the new messages); a client summary gets its
  threads' summaries, each at the catalogue size.
- **Revisions** are charged as patches, not rewrites: a section whose needed facts changed
  receives the instruction and the changed facts, and writes at least those facts again (output
  = the changed values' own tokens). Charging a full rewrite would put the bound above an
  implementation that answers a small edit with a JSON patch, so it would stop being a bound.
  Brand Context, shared by every month, is revised when a month needs it and its facts moved.
- **Free:** repeats of unchanged documents, injected failures and their retries, the set-up
  before the measured period.
- **Model.** The cheapest the quality gate allows per section kind; without measured gate
  evidence that is the economy model everywhere. ``models`` (section kind -> model, from
  ``bench studio --bound-models``) raises a kind an evaluation showed the economy model loses.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bench.totals import Totals
from bench.workload import Event, EventKind, Workload
from domain.catalogue import deliverables
from domain.catalogue.plan import BUSINESS_PLAN_SECTIONS
from domain.catalogue.summaries import CLIENT_SUMMARY, THREAD_SUMMARY
from domain.digest import MIN_DECISIONS
from domain.needs import needs
from domain.sections import DocumentKind, SectionSpec
from tokenopt import pricing
from tokenopt.counting import count_messages, count_tokens
from tokenopt.projection import project

METHOD = "independent"
# Per earlier document, what a month that builds on it must at least be told: its title and
# three short items (decisions or KPI names; domain.digest.MIN_DECISIONS), 5 tokens each.
EARLIER_ITEMS = MIN_DECISIONS
EARLIER_ITEM_TOKENS = 5
KINDS = ("business_plan", "deliverable", "summary")


@dataclass
class Bound:
    """The bound by document kind, and how many writes and revisions it counted."""

    kinds: dict[str, Totals] = field(default_factory=lambda: {k: Totals() for k in KINDS})
    writes: int = 0
    revisions: int = 0
    models: dict[str, str] = field(default_factory=dict)

    def add(self, kind: str, model: str, prompt: int, completion: int) -> None:
        t = self.kinds[kind]
        t.calls += 1
        t.prompt_tokens += prompt
        t.completion_tokens += completion
        t.cost += pricing.cost(model, prompt_tokens=prompt, completion_tokens=completion)


def _user(text: str, model: str) -> int:
    return count_messages([{"role": "user", "content": text}], model)


def _facts(values: Mapping[str, str]) -> str:
    return "\n".join(f"{k}: {v}" for k, v in values.items())


@dataclass
class _Client:
    record: dict[str, Any]
    has_plan: bool = False
    months: set[int] = field(default_factory=set)
    # Brand Context's needed facts as last written or revised (None: never written).
    brand: dict[str, str] | None = None
    # thread -> its messages so far (one line each); the threads that have a summary.
    threads: dict[int, list[str]] = field(default_factory=dict)
    summarised: set[int] = field(default_factory=set)
    client_summary_due: bool = False


class LowerBound:
    def __init__(self, default_model: str, models: Mapping[str, str] | None = None):
        self.default_model = default_model
        self.overrides = dict(models or {})
        self.out = Bound()

    def model(self, kind_key: str) -> str:
        model = self.overrides.get(kind_key, self.default_model)
        self.out.models[kind_key] = model
        return model

    # -- sections -------------------------------------------------------------------------
    def _needed(self, doc: DocumentKind, key: str, record: Mapping[str, Any]) -> dict[str, str]:
        return project(dict(record), needs(doc, key).fields)

    def _earlier_tokens(self, doc: DocumentKind, key: str, months: set[int], model: str) -> int:
        if doc is not DocumentKind.DELIVERABLE or not needs(doc, key).earlier_months:
            return 0
        n = deliverables.document(deliverables.split_section_key(key)[0] or "").month
        titles = [d.title for m in sorted(months) if m < n for d in deliverables.documents(m)]
        return sum(count_tokens(t, model) + EARLIER_ITEMS * EARLIER_ITEM_TOKENS for t in titles)

    def write(self, doc: DocumentKind, spec: SectionSpec, kind_key: str, client: _Client) -> None:
        model = self.model(kind_key)
        text = f"Write {spec.title}: {spec.purpose}\n{_facts(self._needed(doc, spec.key, client.record))}"
        prompt = _user(text, model) + self._earlier_tokens(doc, spec.key, client.months, model)
        self.out.add(doc.value, model, prompt, spec.target_tokens)
        self.out.writes += 1

    def revise(self, doc: DocumentKind, spec: SectionSpec, kind_key: str, changed: Mapping[str, str]) -> None:
        model = self.model(kind_key)
        facts = _facts(changed)
        prompt = _user(f"Revise {spec.title} with these changed facts:\n{facts}", model)
        self.out.add(doc.value, model, prompt, sum(count_tokens(v, model) for v in changed.values()))
        self.out.revisions += 1

    def plan(self, client: _Client) -> None:
        for spec in BUSINESS_PLAN_SECTIONS:
            self.write(DocumentKind.BUSINESS_PLAN, spec, spec.key, client)
        client.has_plan = True

    def brand_context(self, client: _Client, *, counted: bool) -> None:
        """Bring the shared Brand Context up to date for a month that shows it."""
        doc, key = DocumentKind.DELIVERABLE, "brand_context"
        facts = self._needed(doc, key, client.record)
        if client.brand is None:
            if counted:
                self.write(doc, deliverables.section_kind(key), key, client)
        elif counted and (changed := {k: v for k, v in facts.items() if client.brand.get(k) != v}):
            self.revise(doc, deliverables.section_kind(key), key, changed)
        client.brand = facts

    def month(self, client: _Client, n: int, *, counted: bool = True) -> None:
        self.brand_context(client, counted=counted)
        if counted:
            for spec in deliverables.month_sections(n):
                if spec.key not in deliverables.SHARED_KINDS:
                    self.write(DocumentKind.DELIVERABLE, spec, deliverables.kind_of(spec.key), client)
        client.months.add(n)

    def edit(self, client: _Client, e: Event) -> None:
        before = dict(client.record)
        client.record.update(e.changes)
        moved = {f for f in e.changes if project(before, [f]) != project(client.record, [f])}
        if not moved:
            return
        if client.has_plan:
            for spec in BUSINESS_PLAN_SECTIONS:
                self._revise_if_needed(DocumentKind.BUSINESS_PLAN, spec, spec.key, client, moved)
        if e.month is not None:
            self.brand_context(client, counted=True)
            for spec in deliverables.month_sections(e.month):
                if spec.key not in deliverables.SHARED_KINDS:
                    kind_key = deliverables.kind_of(spec.key)
                    self._revise_if_needed(DocumentKind.DELIVERABLE, spec, kind_key, client, moved)

    def _revise_if_needed(
        self, doc: DocumentKind, spec: SectionSpec, kind_key: str, client: _Client, moved: set[str]
    ) -> None:
        changed = {k: v for k, v in self._needed(doc, spec.key, client.record).items() if k in moved}
        if changed:
            self.revise(doc, spec, kind_key, changed)

    # -- summaries ------------------------------------------------------------------------
    def thread_summary(self, client: _Client, thread: int, new: list[str]) -> None:
        model = self.model(THREAD_SUMMARY.key)
        earlier = client.threads.setdefault(thread, [])
        instruction = f"Summarise the thread: {THREAD_SUMMARY.purpose}"
        whole = _user("\n".join([instruction, *earlier, *new]), model)
        if thread in client.summarised:
            whole = min(whole, _user("\n".join([instruction, *new]), model) + THREAD_SUMMARY.target_tokens)
        self.out.add("summary", model, whole, THREAD_SUMMARY.target_tokens)
        self.out.writes += 1
        earlier += new
        client.summarised.add(thread)
        client.client_summary_due = True

    def client_summary(self, client: _Client) -> None:
        if not client.client_summary_due:
            return  # nothing new since the last one: it already exists
        model = self.model(CLIENT_SUMMARY.key)
        prompt = _user(f"Summarise where the client stands: {CLIENT_SUMMARY.purpose}", model)
        prompt += len(client.summarised) * THREAD_SUMMARY.target_tokens
        self.out.add("summary", model, prompt, CLIENT_SUMMARY.target_tokens)
        self.out.writes += 1
        client.client_summary_due = False

    # -- the walk -------------------------------------------------------------------------
    def run(self, workload: Workload) -> Bound:
        clients = [_Client(record=dict(c)) for c in workload.clients]
        for e in workload.events:
            client = clients[e.client]
            if e.warmup:  # set-up: its outputs exist, nothing is counted
                if e.kind is EventKind.ONBOARD:
                    client.has_plan = True
                elif e.kind is EventKind.DELIVERABLE and e.month is not None:
                    self.month(client, e.month, counted=False)
                continue
            if e.kind is EventKind.ONBOARD:
                self.plan(client)
            elif e.kind is EventKind.DELIVERABLE:
                assert e.month is not None
                self.month(client, e.month)
            elif e.kind is EventKind.REVISE:
                self.edit(client, e)
            elif e.kind is EventKind.MESSAGES:
                assert e.thread is not None
                self.thread_summary(client, e.thread, [f"{m['author']}: {m['text']}" for m in e.messages])
            elif e.kind is EventKind.CLIENT_SUMMARY:
                self.client_summary(client)
            # REPEAT: the document exists unchanged; nothing to bill.
        return self.out


def lower_bound(workload: Workload, default_model: str, models: Mapping[str, str] | None = None) -> Bound:
    """The independent lower bound of ``workload`` (see the module docstring)."""
    return LowerBound(default_model, models).run(workload)


def parse_models(text: str | None) -> dict[str, str]:
    """``kind=model,kind=model`` (``bench studio --bound-models``) as a mapping; the kinds are
    business-plan section keys, deliverable section kinds, thread_summary and client_summary."""
    known = {s.key for s in BUSINESS_PLAN_SECTIONS} | {k.key for k in deliverables.section_kinds()}
    known |= {THREAD_SUMMARY.key, CLIENT_SUMMARY.key}
    out: dict[str, str] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        kind, sep, model = item.partition("=")
        kind, model = kind.strip(), model.strip()
        if not sep or not model:
            raise ValueError(f"expected kind=model, got {item.strip()!r}")
        if kind not in known:
            raise ValueError(f"unknown section kind {kind!r}; known: {', '.join(sorted(known))}")
        out[kind] = model
    return out
