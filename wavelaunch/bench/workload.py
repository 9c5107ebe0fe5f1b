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
    REVISE = "revise"  # the client edits 1-3 fields; the plan follows
    REPEAT = "repeat"  # the same plan requested again, nothing changed


class Event(BaseModel):
    kind: EventKind
    client: int  # index into the workload's clients
    document: str = "business_plan"
    level: str = "complete"
    changes: dict[str, str] = {}
    # Inject a failure mid-way: one section's answer arrives broken (billed) and is retried.
    fail_section: str | None = None


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
