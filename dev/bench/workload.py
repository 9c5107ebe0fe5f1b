"""The benchmark workload as a list of events, so later document kinds extend the same list.

Workload v1's clients are the sample client with a few varied values (``make_clients``); the
studio months' clients have every fact drawn per client (``bench.synthetic``) or are
a studio's own record varied per client. Everything is derived from the seed, so two runs with
the same seed see the same workload.
"""

from __future__ import annotations

import copy
import json
import random
from enum import StrEnum
from typing import Any

from pydantic import BaseModel

from bench import synthetic
from domain.catalogue import deliverables
from domain.client import KNOWN_FIELDS
from wavelaunch.commands import sample_client_file

# Workload v1's clients, as measured before: the first ten names of the synthetic lists.
NICHES = synthetic.NICHES
FIRST = synthetic.FIRST[:10]
LAST = synthetic.LAST[:10]

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
    # Simulated seconds since the measured period began (set-up events are before 0). REVISE:
    # ``month`` is the deliverable month that follows the edit (written earlier that month).
    at: float = 0.0


class Workload(BaseModel):
    name: str
    seed: int
    clients: list[dict[str, Any]]
    events: list[Event]
    months: int = 1


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


DAY = 86_400.0
MONTH_DAYS = 30
WEEKS_PER_MONTH = 4
THREADS = 3


def _working_time(rng: random.Random, day: float) -> float:
    """Seconds since the period began, at a working hour (9:00-18:00) of ``day``."""
    return (int(day) + (9 + rng.random() * 9) / 24) * DAY


def client_records(n: int, seed: int, base_record: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The studio month's clients: synthetic, or a studio's own record varied per client."""
    facts = synthetic.Facts(random.Random(f"clients-{seed}"))
    if base_record is not None:
        return [synthetic.varied_client(facts, base_record, i, seed) for i in range(n)]
    base = json.loads(sample_client_file().read_text())
    return [synthetic.synthetic_client(facts, base, i, seed) for i in range(n)]


def workload_studio(
    n: int = 20,
    seed: int = 11,
    *,
    months: int = 3,
    thread_batches: int = 4,
    base_record: dict[str, Any] | None = None,
) -> Workload:
    """The studio's months (issues #5 and #11) for ``n`` clients, on a simulated clock.

    20% of the clients are new: imported at the start with a complete plan, then months 1..N of
    deliverables. The others already have a plan and month 1 (set up before the period, not
    counted) and get months 2..N+1. Each month: every client's deliverable on a random working
    day; 40% of clients edit 1-3 fields (their plan follows, and so does this month's
    deliverable if it was already written); each client's 3 threads, carried over from month to
    month, grow by ``thread_batches`` batches of new messages, each followed by that thread's
    summary; a client summary at the end of each week. 10% of document generations fail mid-way
    and are retried; 20% of documents are requested again, unchanged, later in the same month.
    Every event has a time (``Event.at``), so caches and the provider's prefix cache expire as
    they would over the months.
    """
    if not 1 <= months <= deliverables.LAST_MONTH - 1:
        raise ValueError(f"months must be from 1 to {deliverables.LAST_MONTH - 1} (existing clients start at M2)")
    if n < 1:
        raise ValueError("the studio month needs at least one client")
    rng = random.Random(seed)
    facts = synthetic.Facts(random.Random(f"facts-{seed}"))
    clients = client_records(n, seed, base_record)
    current = [dict(c) for c in clients]  # each client's record as edits apply, for the edits' facts
    new = set(rng.sample(range(n), max(1, round(n * 0.2))))
    first_month = {i: 1 if i in new else 2 for i in range(n)}
    warmup: list[Event] = []
    for i in range(n):
        if i not in new:
            warmup.append(Event(kind=EventKind.ONBOARD, client=i, warmup=True, at=-40 * DAY))
            warmup.append(Event(kind=EventKind.DELIVERABLE, client=i, month=1, warmup=True, at=-35 * DAY))

    timeline: list[Event] = []
    for i in sorted(new):  # imported on the first morning, before any other event of theirs
        timeline.append(Event(kind=EventKind.ONBOARD, client=i, at=rng.random() * 0.3 * DAY))
    documents: list[Event] = [e for e in timeline]
    for m in range(months):
        start = m * MONTH_DAYS
        written: dict[int, Event] = {}
        for i in range(n):
            day = start + rng.randrange(MONTH_DAYS - 2)
            e = Event(kind=EventKind.DELIVERABLE, client=i, month=first_month[i] + m, at=_working_time(rng, day))
            written[i] = e
            timeline.append(e)
            documents.append(e)
        for i in rng.sample(range(n), round(n * 0.4)):
            fields = rng.sample(EDITABLE, rng.randint(1, 3))
            at = _working_time(rng, start + 2 + rng.randrange(MONTH_DAYS - 2))
            # Events are generated in time order per client below; the edit's facts follow the record.
            timeline.append(Event(kind=EventKind.REVISE, client=i, changes={f: "" for f in fields}, at=at))
        for i in range(n):
            for t in range(THREADS):
                for _ in range(thread_batches):
                    day = start + rng.random() * MONTH_DAYS
                    timeline.append(Event(kind=EventKind.MESSAGES, client=i, thread=t, at=_working_time(rng, day)))
            for w in range(WEEKS_PER_MONTH):
                at = (start + (w + 1) * MONTH_DAYS / WEEKS_PER_MONTH - 0.25) * DAY  # Friday evening, roughly
                timeline.append(Event(kind=EventKind.CLIENT_SUMMARY, client=i, at=at))
    # 10% of document generations fail mid-way (one section's answers stay broken) and are retried.
    for e in rng.sample(documents, max(1, round(len(documents) * 0.1))):
        e.fail_section = "market_analysis" if e.kind is EventKind.ONBOARD else "framework_strategy"
    # 20% of documents are requested again, unchanged, later in the same month.
    for e in rng.sample(documents, max(1, round(len(documents) * 0.2))):
        month_end = (int(e.at // DAY) // MONTH_DAYS + 1) * MONTH_DAYS * DAY
        at = e.at + rng.random() * max(DAY, month_end - e.at)
        document = "business_plan" if e.kind is EventKind.ONBOARD else "deliverable"
        timeline.append(Event(kind=EventKind.REPEAT, client=e.client, document=document, month=e.month, at=at))
    timeline.sort(key=lambda e: e.at)

    # Content that depends on order: an edit's facts (from the record as it stands), whether it
    # is followed by this month's deliverable, and each thread's messages.
    last_written: dict[int, tuple[int, int]] = {}  # client -> (deliverable month, calendar month)
    batches: dict[tuple[int, int], int] = {}
    for e in timeline:
        calendar = int(e.at // DAY) // MONTH_DAYS
        if e.kind is EventKind.DELIVERABLE:
            assert e.month is not None
            last_written[e.client] = (e.month, calendar)
        elif e.kind is EventKind.REVISE:
            e.changes = synthetic.edit(facts, current[e.client], list(e.changes))
            current[e.client].update(e.changes)
            written = last_written.get(e.client)
            e.month = written[0] if written and written[1] == calendar else None
        elif e.kind is EventKind.MESSAGES:
            assert e.thread is not None
            key = (e.client, e.thread)
            batches[key] = b = batches.get(key, 0) + 1
            e.messages = _message_batch(facts, current[e.client], e.client, e.thread, b)
    return Workload(name="studio-months", seed=seed, clients=clients, events=warmup + timeline, months=months)


def _message_batch(
    facts: synthetic.Facts, record: dict[str, Any], client: int, thread: int, batch: int
) -> list[dict[str, str]]:
    """One batch of 3-6 messages in a thread, alternating between the creator and the studio."""
    return [
        {
            "id": f"c{client}t{thread}b{batch}m{j}",
            "author": "client" if j % 2 == 0 else "studio",
            "text": synthetic.message_text(facts, record),
        }
        for j in range(facts.rng.randint(3, 6))
    ]
