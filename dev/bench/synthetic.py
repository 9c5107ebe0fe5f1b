"""Synthetic CRM facts for the studio benchmark: clients, edits and messages that differ per client.

Everything is drawn from a ``random.Random`` seeded by the workload, so a seed always gives the
same workload. Text is built from slots (figures, dates, named competitors, product lists,
cities), not canned sentences, so no two clients share a fact and an edit changes real facts;
a quarter of the clients write long free text, as real application forms do. Given a real CRM
record (``--client-file``), each client is that record with its identity replaced and its
figures, dates and lists varied, so the month runs on the studio's own kind of client.
"""

from __future__ import annotations

import copy
import random
import re
from collections.abc import Callable
from typing import Any

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
FIRST = ("Maya", "Leo", "Aisha", "Tom", "Priya", "Jonas", "Sofia", "Kwame", "Elena", "Ravi", "Noor", "Felix")
LAST = ("Okafor", "Martin", "Khan", "Berg", "Costa", "Nguyen", "Silva", "Mensah", "Rossi", "Iyer", "Haddad", "Lund")
COUNTRIES = {
    "United Kingdom": ("London", "Manchester", "Bristol", "Leeds", "GBP"),
    "United States": ("Austin", "Chicago", "Denver", "Brooklyn", "USD"),
    "Canada": ("Toronto", "Vancouver", "Montreal", "Calgary", "CAD"),
    "Germany": ("Berlin", "Hamburg", "Munich", "Cologne", "EUR"),
    "Australia": ("Sydney", "Melbourne", "Brisbane", "Perth", "AUD"),
    "Netherlands": ("Amsterdam", "Utrecht", "Rotterdam", "Eindhoven", "EUR"),
    "Ireland": ("Dublin", "Cork", "Galway", "Limerick", "EUR"),
}
PRODUCTS = (
    "resistance band kit",
    "grip socks",
    "vitamin C serum",
    "refillable cleanser",
    "recipe e-book",
    "spice blend subscription",
    "carry-on backpack",
    "packing cube set",
    "budgeting app",
    "money course",
    "heavyweight hoodie",
    "graphic tee capsule",
    "sourdough starter kit",
    "baking masterclass",
    "streaming overlay pack",
    "mechanical keyboard",
    "toddler meal planner",
    "family journal",
    "trail running vest",
    "camping cookware set",
    "yoga mat",
    "digital programme",
    "membership community",
    "print magazine",
)
COMPETITORS = (
    "Northwind Active",
    "Lumen Labs",
    "FormaFit",
    "Verda Skin",
    "Bloom Basics",
    "Urbanthread",
    "Pixelcraft",
    "Tidepool Travel",
    "Harbor & Pine",
    "Copperleaf",
    "Sola Studio",
    "Peakline Gear",
    "Moss & Stone",
    "Quill Money",
    "Crumb Club",
    "Kindred Kids",
)
VALUES = (
    "honesty",
    "calm",
    "consistency",
    "sustainability",
    "inclusion",
    "craft",
    "playfulness",
    "thrift",
    "curiosity",
)
TRAITS = ("warm", "expert", "witty", "direct", "encouraging", "bold", "patient", "nerdy", "down-to-earth")
COLOURS = ("warm neutrals", "sage green", "electric blue", "terracotta", "off-white", "charcoal", "mustard", "lilac")
STYLES = ("lots of white space", "grainy film photos", "bold type")
ICONS = ("Aesop", "Patagonia", "Glossier", "Oatly", "Monzo", "Gymshark", "Alo Moves", "Muji", "Notion")
CHANNELS = ("Instagram", "TikTok", "YouTube", "a newsletter", "Pinterest", "a podcast", "Twitch")
MONTH_NAMES = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday")
PAINS = (
    "spend {n} hours a week looking for {thing}",
    "pay {cur} {m} a month for {thing} they rarely use",
    "gave up on {thing} after {w} weeks",
    "do not trust {thing} with more than {p}% fake reviews",
    "cannot find {thing} that fits a {a}-minute routine",
)
THINGS = ("routines", "products", "advice", "classes", "apps", "guides", "kits")


class Facts:
    """Slot fillers bound to one random stream (one per workload)."""

    def __init__(self, rng: random.Random):
        self.rng = rng

    def pick(self, items: tuple[str, ...], k: int) -> list[str]:
        return self.rng.sample(items, k)

    def date(self) -> str:
        return f"{self.rng.randint(1, 28)} {self.rng.choice(MONTH_NAMES)} {self.rng.choice((2027, 2028))}"

    def month_year(self) -> str:
        return f"{self.rng.choice(MONTH_NAMES)} {self.rng.choice((2026, 2027, 2028))}"

    def pain(self, currency: str) -> str:
        r = self.rng
        return r.choice(PAINS).format(
            n=r.randint(2, 9),
            cur=currency,
            m=r.randint(12, 140),
            thing=r.choice(THINGS),
            w=r.randint(2, 10),
            p=r.randint(10, 60),
            a=r.choice((10, 15, 20, 25, 30)),
        )

    def sentence(self, currency: str, products: list[str]) -> str:
        """One factual sentence with a figure, for long free text."""
        r = self.rng
        return r.choice(
            (
                f"Followers {self.pain(currency)}.",
                f"The {r.choice(products)} sold {r.randint(80, 4000)} units in {self.month_year()}.",
                f"{r.choice(COMPETITORS)} raised prices by {r.randint(5, 35)}% in {self.month_year()}.",
                f"Newsletter open rate is {r.randint(28, 62)}% across {r.randint(3, 40)}k subscribers.",
                f"A {r.randint(2, 8)}-week challenge drew {r.randint(300, 9000)} sign-ups.",
                f"Returns run at {r.randint(2, 14)}% for the {r.choice(products)}.",
                f"{r.randint(20, 80)}% of sales come from {r.choice(CHANNELS)}.",
            )
        )


# Field -> generator(facts, record): the fields an edit can change, and how a fresh value looks.
def _channels(f: Facts, _: dict[str, Any]) -> str:
    chosen = f.pick(CHANNELS, f.rng.randint(2, 4))
    return ", ".join(f"{c} ({f.rng.randint(3, 900)}k)" for c in chosen)


def _audience(f: Facts, rec: dict[str, Any]) -> str:
    cities = COUNTRIES.get(rec.get("country", ""), COUNTRIES["United Kingdom"])[:4]
    lo = f.rng.randint(18, 35)
    who = f.rng.choice(("Women", "Men", "Students", "New parents", "Remote workers", "Gamers"))
    return f"{who} {lo}-{lo + f.rng.randint(8, 20)} in {', '.join(f.pick(cities, 2))} who {f.pain(_cur(rec))}."


def _cur(rec: dict[str, Any]) -> str:
    return COUNTRIES.get(rec.get("country", ""), COUNTRIES["United Kingdom"])[4]


def _pains(f: Facts, rec: dict[str, Any]) -> str:
    return "; ".join(f.pain(_cur(rec)) for _ in range(3)).capitalize() + "."


def _competitors(f: Facts, rec: dict[str, Any]) -> str:
    a, b, c = f.pick(COMPETITORS, 3)
    return (
        f"{a} (grew {f.rng.randint(20, 300)}% last year), {b} (launched a {f.rng.choice(PRODUCTS)} in "
        f"{f.month_year()}), {c} (undercuts on price by {f.rng.randint(5, 40)}%)."
    )


def _differentiation(f: Facts, rec: dict[str, Any]) -> str:
    products = rec.get("productCategories") or list(PRODUCTS[:2])
    return (
        f"The only {f.rng.choice(products)} designed with {f.rng.randint(200, 5000)} community members; "
        f"{f.rng.randint(10, 40)}-minute formats; a {f.rng.randint(30, 365)}-day guarantee."
    )


def _usps(f: Facts, rec: dict[str, Any]) -> str:
    return (
        f"{f.rng.randint(3, 12)} formats a week, a {f.rng.randint(14, 90)}-day trial, "
        f"{f.rng.choice(('free', 'same-week', 'carbon-neutral'))} shipping across {rec.get('country', 'the UK')}."
    )


def _scaling(f: Facts, rec: dict[str, Any]) -> str:
    return (
        f"{_cur(rec)} {f.rng.randint(2, 40) * 50}k revenue by {f.month_year()}; "
        f"{f.rng.randint(1, 30)}k paying customers; {f.rng.randint(2, 9)} retail partners."
    )


def _deadlines(f: Facts, rec: dict[str, Any]) -> str:
    products = rec.get("productCategories") or list(PRODUCTS[:2])
    first, second = f.rng.choice(products), f.rng.choice(products)
    return f"{first.capitalize()} launch by {f.date()}; beta of the {second} by {f.date()}."


def _growth(f: Facts, _: dict[str, Any]) -> str:
    partner = f.rng.choice(COMPETITORS)
    return (
        f"Collaborations with {partner}, a referral programme paying {f.rng.randint(5, 25)}%, "
        f"{f.rng.randint(2, 12)} pop-ups a year."
    )


def _values(f: Facts, _: dict[str, Any]) -> str:
    return ", ".join(f.pick(VALUES, f.rng.randint(3, 4))).capitalize() + "."


def _personality(f: Facts, _: dict[str, Any]) -> str:
    return ", ".join(f.pick(TRAITS, 3)).capitalize() + "."


def _other_products(f: Facts, _: dict[str, Any]) -> str:
    a, b = f.pick(PRODUCTS, 2)
    return f"A {a} line and a {f.rng.randint(4, 12)}-week {b} programme."


def _vision(f: Facts, rec: dict[str, Any]) -> str:
    return (
        f"The default {rec.get('industryNiche', 'creator').lower()} brand for {f.rng.randint(1, 20)}00k people "
        f"in {rec.get('country', 'Europe')} by {f.rng.randint(2028, 2033)}."
    )


def _milestones(f: Facts, rec: dict[str, Any]) -> str:
    return (
        f"Grew {f.rng.choice(CHANNELS[:3])} to {f.rng.randint(40, 900)}k followers in {f.rng.randint(2, 7)} years. "
        f"Sold out {f.rng.randint(1, 5)} product drops; spoke at {f.rng.randint(1, 12)} industry events."
    )


EDITS: dict[str, Callable[[Facts, dict[str, Any]], str]] = {
    "targetAudience": _audience,
    "keyPainPoints": _pains,
    "brandValues": _values,
    "differentiation": _differentiation,
    "uniqueValueProps": _usps,
    "emergingCompetitors": _competitors,
    "brandPersonality": _personality,
    "growthStrategies": _growth,
    "scalingGoals": _scaling,
    "specificDeadlines": _deadlines,
    "otherProductIdeas": _other_products,
    "currentChannels": _channels,
    "visionForVenture": _vision,
}
# Free text a long-form client writes at length (sentences with figures appended).
LONG_FIELDS = ("keyPainPoints", "professionalMilestones", "differentiation", "scalingGoals")


def _identity(record: dict[str, Any], i: int, seed: int) -> None:
    first, last = FIRST[i % len(FIRST)], LAST[(i * 5 + seed) % len(LAST)]
    handle = f"{first}{last}{i}".lower()
    record.update(
        id=f"client{i:03d}",
        fullName=f"{first} {last}",
        email=f"creator{i}@example.com",
        instagramHandle=f"@{handle}",
        tiktokHandle=f"@{handle}.tv",
        brandName=f"{first} {last.split()[0]} Co {i}",
    )


def synthetic_client(f: Facts, base: dict[str, Any], i: int, seed: int) -> dict[str, Any]:
    """A client in the shape of ``base`` (the sample record) with every fact drawn afresh."""
    rec = copy.deepcopy(base)
    _identity(rec, i, seed)
    country = f.rng.choice(tuple(COUNTRIES))
    lo = f.rng.randint(18, 35)
    female = f.rng.randint(10, 95)
    rec.update(
        country=country,
        age=f.rng.randint(21, 48),
        industryNiche=f.rng.choice(NICHES),
        productCategories=f.pick(PRODUCTS, f.rng.randint(2, 4)),
        targetDemographicAge=f"{lo}-{lo + f.rng.randint(8, 20)}",
        audienceGenderSplit=f"{female}% female, {100 - female}% male",
        demographicProfile=(
            f"{f.rng.randint(40, 90)}% in cities like {', '.join(COUNTRIES[country][:2])}; "
            f"median income {COUNTRIES[country][4]} {f.rng.randint(25, 90)}k."
        ),
        audienceMaritalStatus=f"About {f.rng.randint(15, 70)}% married or partnered",
        inspirationBrands=", ".join(f.pick(ICONS, 3)),
        brandingAesthetics=f"{', '.join(f.pick(COLOURS, 2)).capitalize()}, {f.rng.choice(STYLES)}.",
        emotionsBrandEvokes=", ".join(f.pick(("calm", "capable", "seen", "excited", "safe", "clever"), 3)).capitalize()
        + ".",
        hopeToAchieve=f"Launch {f.rng.randint(1, 4)} products within {f.rng.randint(6, 18)} months.",
        longTermVision=(
            f"{f.rng.randint(2, 30)} countries and {f.rng.randint(1, 12)} stores by {f.rng.randint(2029, 2035)}."
        ),
        professionalMilestones=_milestones(f, rec),
    )
    for field, make in EDITS.items():
        rec[field] = make(f, rec)
    if f.rng.random() < 0.25:
        for field in LONG_FIELDS:
            extra = " ".join(f.sentence(_cur(rec), rec["productCategories"]) for _ in range(f.rng.randint(8, 14)))
            rec[field] = f"{rec[field]} {extra}"
    return rec


_NUMBER = re.compile(r"(?<![\w.])(\d{1,6})(?![\d])")
_IDENTITY = ("id", "fullName", "email", "instagramHandle", "tiktokHandle", "brandName", "status")


def _vary_number(f: Facts, match: re.Match[str]) -> str:
    value = int(match.group(1))
    if 1900 <= value <= 2100:  # a year: move it by at most one
        return str(value + f.rng.choice((-1, 0, 0, 1)))
    return str(max(1, round(value * f.rng.uniform(0.6, 1.4))))


def varied_client(f: Facts, base: dict[str, Any], i: int, seed: int) -> dict[str, Any]:
    """A studio's own record (``--client-file``) for client ``i``: client 0 is the record as
    given; the others vary its figures and years, reorder and thin its lists, and have their
    own identity."""
    rec = copy.deepcopy(base)
    if i == 0:
        rec["id"] = "client000"
        return rec
    _identity(rec, i, seed)
    if "brandName" not in base:  # the CRM has none; add none the studio's record lacks
        del rec["brandName"]
    for field, value in list(rec.items()):
        if field in _IDENTITY:
            continue
        if isinstance(value, str):
            rec[field] = _NUMBER.sub(lambda m: _vary_number(f, m), value)
        elif isinstance(value, int) and not isinstance(value, bool):
            rec[field] = max(1, round(value * f.rng.uniform(0.8, 1.2)))
        elif isinstance(value, list) and value:
            items = list(value)
            f.rng.shuffle(items)
            rec[field] = items[: max(1, len(items) - f.rng.randint(0, 1))]
    return rec


def edit(f: Facts, record: dict[str, Any], fields: list[str]) -> dict[str, str]:
    """New values for ``fields`` (names from EDITS), with new facts."""
    return {field: EDITS[field](f, record) for field in fields}


_LINES = (
    "Can we move the {product} shoot to {weekday}? The samples arrive on {weekday2}.",
    "The supplier confirmed {n} units of the {product}, with a second run possible in {w} weeks.",
    "{competitor} just cut prices by {p}%; should we answer before {date}?",
    "Engagement on the teaser reel was {p}% above our usual average on {channel}.",
    "Please send the content calendar before {weekday} so I can film {k} videos.",
    "I reviewed the pricing sheet: a bundle of the {product} and the {product2} at {cur} {m}?",
    "The influencer list is approved except {k} accounts with fake followers.",
    "Pre-orders for the {product} hit {n} in {k} days.",
    "We need a decision on the {colour} packaging; the printer closes orders on {date}.",
    "Comments on the last post were mostly positive; {k} asked about shipping to {city}.",
    "Could the newsletter mention the {w}-week challenge? {n} people joined the last one.",
    "Our {channel} ads spent {cur} {m} for {k} sales last week.",
)


def message_text(f: Facts, record: dict[str, Any]) -> str:
    """One message of 1-3 lines, each with the client's own products, places and figures."""
    r = f.rng
    products = record.get("productCategories") or list(PRODUCTS[:2])
    cities = COUNTRIES.get(record.get("country", ""), COUNTRIES["United Kingdom"])[:4]
    lines = []
    for _ in range(r.randint(1, 3)):
        lines.append(
            r.choice(_LINES).format(
                product=r.choice(products),
                product2=r.choice(products),
                weekday=r.choice(WEEKDAYS),
                weekday2=r.choice(WEEKDAYS),
                n=r.randint(50, 5000),
                w=r.randint(2, 8),
                k=r.randint(2, 12),
                p=r.randint(5, 60),
                m=r.randint(20, 900),
                competitor=r.choice(COMPETITORS),
                date=f.date(),
                channel=r.choice(CHANNELS),
                colour=r.choice(COLOURS),
                city=r.choice(cities),
                cur=_cur(record),
            )
        )
    return " ".join(lines)
