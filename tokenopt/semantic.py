"""Semantic matching, and the guard against its known failure.

Embeddings call "we will not ship in May" and "we will ship in May" near-identical, and so
"price 29 GBP" and "price 39 GBP". Before a similar entry is used, the facts that must match
exactly are compared: numbers (prices, amounts, percentages), dates and months, proper names
and negations. Any difference there is a miss, whatever the similarity.
"""

from __future__ import annotations

import hashlib
import math
import re

NEGATIONS = frozenset(
    {"no", "not", "never", "none", "without", "cannot", "can't", "won't", "don't", "doesn't", "isn't", "nor"}
)
MONTHS = frozenset(
    "january february march april may june july august september october november december "
    "jan feb mar apr jun jul aug sep sept oct nov dec q1 q2 q3 q4".split()
)
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*%?")
_WORD = re.compile(r"[A-Za-z][A-Za-z'’-]*")
_SENTENCE_START = re.compile(r"(?:^|[.!?:\n]\s*)([A-Z][a-z]+)")
DIMENSIONS = 256


def critical_facts(text: str) -> frozenset[str]:
    """Numbers, months, capitalised names and negations: what must match exactly."""
    facts = {f"n:{m.replace(',', '')}" for m in _NUMBER.findall(text)}
    sentence_starts = {m.group(1) for m in _SENTENCE_START.finditer(text)}
    for word in _WORD.findall(text):
        lower = word.lower()
        if lower in NEGATIONS or lower.endswith("n't"):
            facts.add(f"neg:{lower}")
        elif lower in MONTHS:
            facts.add(f"date:{lower}")
        elif word[0].isupper() and word not in sentence_starts:
            facts.add(f"name:{word}")
    return frozenset(facts)


def facts_match(a: str, b: str) -> bool:
    return critical_facts(a) == critical_facts(b)


def inputs_text(inputs: dict[str, str]) -> str:
    """The text a section's inputs are embedded and compared as."""
    return "\n".join(f"{k}: {v}" for k, v in sorted(inputs.items()))


def changed_fields(old: dict[str, str], new: dict[str, str]) -> dict[str, str]:
    """Fields whose value differs (new value; '' for a field that was removed)."""
    keys = set(old) | set(new)
    return {k: new.get(k, "") for k in sorted(keys) if old.get(k) != new.get(k)}


def hashing_embedding(text: str, dimensions: int = DIMENSIONS) -> list[float]:
    """An offline embedding (hashed word and character-trigram features, L2-normalised).

    Used where the endpoint has no embeddings model (the local llama.cpp server): no weights to
    download, deterministic, and near-identical texts land close together.
    """
    vector = [0.0] * dimensions
    lowered = text.lower()
    features = _WORD.findall(lowered) + [lowered[i : i + 3] for i in range(max(0, len(lowered) - 2))]
    for feature in features:
        digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
        index = int.from_bytes(digest[:4], "little") % dimensions
        vector[index] += 1.0 if digest[4] & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))
