"""The token-saving techniques, each one switchable so benchmarks can measure it alone."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class Technique(StrEnum):
    STRUCTURED_PROMPTS = "structured_prompts"  # task/context/format/constraints, no persona prose
    CONTEXT_COMPRESSION = "context_compression"  # only the fields a section reads
    ROUTING = "routing"  # cheapest capable model per section
    PREFIX_LAYOUT = "prefix_layout"  # stable parts first, for provider prefix caching
    BUDGET_COMPRESSION = "budget_compression"  # shrink prompts over 40% of the section budget
    REUSE = "reuse"  # a finished section of the same client version is never generated again
    EXACT_CACHE = "exact_cache"  # the same request (same inputs, model, versions) within its TTL
    SEMANTIC_CACHE = "semantic_cache"  # the same inputs under another prompt: the nearest earlier answer
    PATCHES = "patches"  # a few changed facts: a JSON Patch of the stored answer, not a rewrite
    BATCHING = "batching"  # small low-priority sections of one document share one call


@dataclass(frozen=True)
class Techniques:
    """Which techniques are on; everything is on unless switched off."""

    off: frozenset[Technique] = frozenset()

    @classmethod
    def without(cls, names: Iterable[str]) -> Techniques:
        return cls(frozenset(Technique(n) for n in names))

    def on(self, technique: Technique) -> bool:
        return technique not in self.off

    def fingerprint(self) -> str:
        """Part of the idempotency key: output made under other prompt rules is other work."""
        prompt_shaping = {
            Technique.STRUCTURED_PROMPTS,
            Technique.CONTEXT_COMPRESSION,
            Technique.PREFIX_LAYOUT,
        }
        return ",".join(sorted(t.value for t in self.off & prompt_shaping)) or "all"
