"""The benchmark workload as a list of events, so later document kinds extend the same list.

Clients are synthetic but shaped like the CRM's records (the sample client with varied values;
a quarter of them write long free text, as real application forms do). Everything is derived
from the seed, so two runs with the same seed see the same workload.
"""

from __future__ import annotations

import copy
import json
import random
from enum import StrEnum
from typing import Any

from pydantic import BaseModel

from domain.client import KNOWN_FIELDS
from wavelaunch.commands import sample_client_file

NICHES = (
    "Fitness and mindful movement",
    "Sustainable skincare",
    "Plant-based cooking",
    "Budget travel",
    "Personal finance for students",
    "Streetwear",
    "Home baking",
    "Gaming and tech reviews",
    "Parenting and family life",
    "Outdoor adventure",
)
FIRST = ("Maya", "Leo", "Aisha", "Tom", "Priya", "Jonas", "Sofia", "Kwame", "Elena", "Ravi")
LAST = ("Okafor", "Martin", "Khan", "Berg", "Costa", "Nguyen", "Silva", "Mensah", "Rossi", "Iyer")

# Fields a creator plausibly edits in the CRM (never identity or contact data).
EDITABLE = (
    "targetAudience",
    "keyPainPoints",
    "brandValues",
    "differentiation",
    "uniqueValueProps",
    "emergingCompetitors",
    "brandPersonality",
    "growthStrategies",
    "scalingGoals",
    "specificDeadlines",
    "otherProductIdeas",
    "currentChannels",
    "visionForVenture",
)
_SENTENCES = (
    "The audience responds best to short, practical videos.",
    "Followers ask for routines they can fit into a busy week.",
    "Competitors compete on price rather than on trust.",
    "The creator wants products that feel premium but stay affordable.",
    "Community members share results every Sunday.",
    "Seasonal launches have sold out twice in the past year.",
    "Brand partners value the creator's honest reviews.",
    "Most sales come from newsletter readers rather than social media.",
)


class EventKind(StrEnum):
    ONBOARD = "onboard"  # new client: import, complete plan
    REVISE = "revise"  # the client edits 1-3 fields; the plan follows (and a month already written)
    REPEAT = "repeat"  # the same document requested again, nothing changed
    DELIVERABLE = "deliverable"  # the client's month N: five documents
    MESSAGES = "messages"  # a batch of new messages in one thread, then that thread is summarised
    CLIENT_SUMMARY = "client_summary"  # the weekly client summary


class Event(BaseModel):
    kind: EventKind
    client: int  # index into the workload's clients
    document: str = "business_plan"
    level: str = "complete"
    changes: dict[str, str] = {}
    # Inject a failure mid-way: one section's answer arrives broken (billed) and is retried.
    fail_section: str | None = None
    # A deliverable's month (DELIVERABLE, and REPEAT of a deliverable).
    month: int | None = None
    # MESSAGES: the thread (index within the client) and its new messages, in order.
    thread: int | None = None
    messages: list[dict[str, str]] = []
    # Before the measured month (existing clients' plan and last month): set up, not counted.
    warmup: bool = False


class Workload(BaseModel):
    name: str
    seed: int
    clients: list[dict[str, Any]]
    events: list[Event]


def _text(rng: random.Random, sentences: int) -> str:
    return " ".join(rng.choice(_SENTENCES) for _ in range(sentences))


def make_clients(n: int, seed: int) -> list[dict[str, Any]]:
    base = json.loads(sample_client_file().read_text())
    rng = random.Random(seed)
    out = []
    for i in range(n):
        record = copy.deepcopy(base)
        name = f"{FIRST[i % len(FIRST)]} {LAST[(i * 3 + seed) % len(LAST)]}"
        record.update(
            id=f"client{i:03d}",
            fullName=name,
            email=f"creator{i}@example.com",
            industryNiche=NICHES[rng.randrange(len(NICHES))],
            brandName=f"{name.split()[0]} Studio {i}",
        )
        long_form = rng.random() < 0.25
        for field in ("keyPainPoints", "professionalMilestones", "differentiation", "scalingGoals"):
            record[field] = _text(rng, rng.randint(14, 22) if long_form else rng.randint(2, 4))
        out.append(record)
    assert set(EDITABLE) <= KNOWN_FIELDS
    return out


def workload_v1(n: int = 20, seed: int = 7) -> Workload:
    """Issue #3's workload: N complete plans; 40% revise 1-3 fields; 20% repeat unchanged;
    10% of plans hit a failure mid-way and are retried."""
    rng = random.Random(seed)
    clients = make_clients(n, seed)
    events: list[Event] = []
    failing = set(rng.sample(range(n), max(1, round(n * 0.1))))
    for i in range(n):
        events.append(Event(kind=EventKind.ONBOARD, client=i, fail_section="market_analysis" if i in failing else None))
    for i in rng.sample(range(n), round(n * 0.4)):
        fields = rng.sample(EDITABLE, rng.randint(1, 3))
        events.append(Event(kind=EventKind.REVISE, client=i, changes={f: _text(rng, 2) for f in fields}))
    for i in rng.sample(range(n), round(n * 0.2)):
        events.append(Event(kind=EventKind.REPEAT, client=i))
    return Workload(name="v1", seed=seed, clients=clients, events=events)


_MESSAGE_LINES = (
    "Can we move the product shoot to Thursday? The samples arrive on Wednesday.",
    "The first batch of packaging mock-ups looks great, but the logo feels too small.",
    "Our audience keeps asking when the pre-order opens; can we share a date this week?",
    "I reviewed the pricing sheet and would like a bundle option for returning customers.",
    "The influencer list is approved, except the two accounts with fake followers.",
    "Engagement on the teaser reel was 40% above our usual average.",
    "Please send the updated content calendar before Friday so I can plan filming.",
    "I am worried the launch clashes with a competitor's summer sale.",
    "The supplier confirmed 500 units, with a second run possible in six weeks.",
    "Could the newsletter welcome sequence mention the community challenge?",
    "We need a decision on the colour palette; the printer closes orders on Monday.",
    "Comments on the last post were mostly positive, a few asked about shipping costs.",
)


def _message_batch(rng: random.Random, client: int, thread: int, batch: int) -> list[dict[str, str]]:
    """One batch of 4-7 messages in a thread, alternating between the creator and the studio."""
    out = []
    for j in range(rng.randint(4, 7)):
        author = "client" if j % 2 == 0 else "studio"
        text = " ".join(rng.choice(_MESSAGE_LINES) for _ in range(rng.randint(1, 3)))
        out.append({"id": f"c{client}t{thread}b{batch}m{j}", "author": author, "text": text})
    return out


def workload_studio(n: int = 20, seed: int = 11, *, thread_batches: int = 8, weeks: int = 4) -> Workload:
    """Issue #5's studio month for ``n`` clients.

    20% are new: they are imported and get a complete plan, then month 1. The others already
    have a complete plan and last month's deliverable (set up before the month, not counted)
    and get month 2. 40% edit 1-3 fields during the month: their plan follows, and so does
    their month if it was already written. Each client has 3 threads that grow by about 8
    batches of new messages, each batch followed by that thread's summary, plus a weekly client
    summary. 20% of documents are requested again unchanged; 10% of document generations hit
    an injected failure mid-way and are retried.
    """
    rng = random.Random(seed)
    clients = make_clients(n, seed)
    new = set(rng.sample(range(n), max(1, round(n * 0.2))))
    month_of = {i: 1 if i in new else 2 for i in range(n)}
    events: list[Event] = []
    for i in range(n):
        if i not in new:
            events.append(Event(kind=EventKind.ONBOARD, client=i, warmup=True))
            events.append(Event(kind=EventKind.DELIVERABLE, client=i, month=1, warmup=True))

    # The month, week by week: (week, order within the week, event).
    timeline: list[tuple[int, float, Event]] = []
    for i in sorted(new):  # new clients arrive first: everything else of theirs follows
        timeline.append((0, -1.0 + rng.random() / 10, Event(kind=EventKind.ONBOARD, client=i)))
    deliverable_week = {i: rng.randrange(weeks) for i in range(n)}
    for i in range(n):
        timeline.append((deliverable_week[i], 0.5 + rng.random() / 2, Event(kind=EventKind.DELIVERABLE, client=i)))
    for i in rng.sample(range(n), round(n * 0.4)):
        fields = rng.sample(EDITABLE, rng.randint(1, 3))
        change = Event(kind=EventKind.REVISE, client=i, changes={f: _text(rng, 2) for f in fields})
        timeline.append((rng.randrange(weeks), rng.random(), change))
    per_week = max(1, thread_batches // weeks)
    for i in range(n):
        for t in range(3):
            for b in range(thread_batches):
                week = min(weeks - 1, b // per_week)
                batch = Event(kind=EventKind.MESSAGES, client=i, thread=t, messages=_message_batch(rng, i, t, b))
                timeline.append((week, rng.random(), batch))
        for w in range(weeks):
            timeline.append((w, 2.0, Event(kind=EventKind.CLIENT_SUMMARY, client=i)))
    timeline.sort(key=lambda item: (item[0], item[1]))
    month_events = [e for _, _, e in timeline]
    for e in month_events:
        if e.kind is EventKind.DELIVERABLE:
            e.month = month_of[e.client]

    # 10% of document generations fail mid-way (one section's answers stay broken) and are retried.
    documents = [e for e in month_events if e.kind in (EventKind.ONBOARD, EventKind.DELIVERABLE)]
    for e in rng.sample(documents, max(1, round(len(documents) * 0.1))):
        e.fail_section = "market_analysis" if e.kind is EventKind.ONBOARD else "framework_strategy"
    # 20% of documents are requested again, unchanged, right after they were written.
    repeated = set(id(e) for e in rng.sample(documents, max(1, round(len(documents) * 0.2))))
    events_out: list[Event] = []
    for e in month_events:
        events_out.append(e)
        if id(e) in repeated:
            document = "business_plan" if e.kind is EventKind.ONBOARD else "deliverable"
            events_out.append(Event(kind=EventKind.REPEAT, client=e.client, document=document, month=e.month))
    return Workload(name="studio-month", seed=seed, clients=clients, events=events + events_out)
