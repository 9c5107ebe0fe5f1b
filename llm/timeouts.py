"""How long one LLM call may take: it follows the size of the answer asked for.

A structured answer arrives whole, after the model has written every token, so a fair wait is a
base (connecting, queueing, reading the prompt, a new schema's first compile) plus an allowance
per output token the call allows, capped. A small summary then gives up on a hung server in
about a minute instead of waiting out the cap, and the largest section still has room.
"""

from __future__ import annotations

from dataclasses import dataclass

# Seconds per output token: OpenAI's gpt-4.1 family writes about 50-150 tokens/s, so 20 tokens/s
# leaves room for a slow hour. The local llama.cpp model writes 4-15 tokens/s on 2 cores under
# a JSON-schema grammar (DESIGN.md §4): it gets the slowest measured rate.
REMOTE_SECONDS_PER_TOKEN = 0.05
LOCAL_SECONDS_PER_TOKEN = 0.25


@dataclass(frozen=True)
class CallTimeouts:
    base_seconds: float = 30.0
    seconds_per_output_token: float = REMOTE_SECONDS_PER_TOKEN
    max_seconds: float = 300.0

    def for_output(self, max_output_tokens: int) -> float:
        """Seconds to wait for an answer of at most ``max_output_tokens`` tokens."""
        return min(self.max_seconds, self.base_seconds + self.seconds_per_output_token * max(0, max_output_tokens))
