"""The layers of docs/architecture.md hold: each imports only what is below it."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_the_import_contracts_are_kept():
    """pyproject.toml's [tool.importlinter] contracts: the layers, and no dev package in the product."""
    lint = Path(sys.executable).parent / "lint-imports"
    done = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def _imported(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
    return found


@pytest.mark.parametrize("module", ["worker.py", "starter.py"])
def test_the_registration_and_the_starter_sit_between_the_web_app_and_the_stack(module: str):
    """worker.py and starter.py are modules, which import-linter cannot place: they may use the
    stack and everything below it, never the CLI or the web app."""
    assert _imported(ROOT / module) & {"wavelaunch", "crm", "bench", "stubs", "tests"} == set()
