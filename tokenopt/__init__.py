"""Pure token economics: counting, prompts, projection, routing, prices, budgets, savings.

No Temporal and no I/O in here, so every decision about tokens is unit-testable.
"""
