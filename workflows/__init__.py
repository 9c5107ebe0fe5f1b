"""Orchestration only: deterministic workflows, no I/O."""
