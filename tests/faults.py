"""Figures from the fault-injection suite (tests/e2e/test_faults_e2e.py): per scenario, what the
stub billed, what the ledger holds, what was bought twice, how long the work took. Printed at the
end of a pytest run (tests/conftest.py) as the "Fault injection" table of docs/benchmarks.md:
    uv run pytest tests/e2e/test_faults_e2e.py -q
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FaultRow:
    scenario: str
    # Section answers the stub billed (a batch call counts once per member it answered).
    billed: int
    # Billed usage rows in the ledger (tokens > 0): one per answer received.
    rows: int
    # Sections whose answer was received (billed in the ledger) more than once.
    bought_twice: int
    # Answers the stub billed that no worker ever received (a call abandoned or cut off).
    lost_in_flight: int
    seconds: float
    note: str = ""


ROWS: list[FaultRow] = []


def summary() -> list[str]:
    if not ROWS:
        return []
    lines = [
        "| scenario | answers billed (stub) | usage rows (billed) | sections bought twice"
        " | answers never received | time to finish | what happened |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in ROWS:
        lines.append(
            f"| {r.scenario} | {r.billed} | {r.rows} | {r.bought_twice} | {r.lost_in_flight}"
            f" | {r.seconds:.1f} s | {r.note} |"
        )
    return lines
