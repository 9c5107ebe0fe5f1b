"""Every setting is in the README's configuration table, under the variable that sets it."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import AliasChoices

from service.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def documented_variables() -> set[str]:
    """Variable names in the first column of the configuration table. A row may shorten names
    after its first, e.g. `WAVELAUNCH_MODEL_PREMIUM` / `_STANDARD`: a shortened name stands for
    the first name's words up to some point, followed by it."""
    text = README.read_text()
    table = text[text.index("## Configuration") :]
    table = table[: table.index("\n## ")]
    names: set[str] = set()
    for row in table.splitlines():
        if not row.startswith("| `"):
            continue
        cell = row.split("|")[1]
        full = re.findall(r"`([A-Z][A-Z0-9_]*)`", cell)
        short = re.findall(r"`(_[A-Z0-9_]+)`", cell)
        names.update(full)
        first = full[0].split("_")
        for suffix in short:
            names.update("_".join(first[:i]) + suffix for i in range(1, len(first)))
    return names


def variables(name: str, alias: object) -> set[str]:
    if isinstance(alias, AliasChoices):
        return {str(choice) for choice in alias.choices}
    return {f"WAVELAUNCH_{name.upper()}"}


def test_every_setting_is_in_the_readme_table() -> None:
    documented = documented_variables()
    missing = [
        name
        for name, field in Settings.model_fields.items()
        if not variables(name, field.validation_alias) & documented
    ]
    assert not missing, f"settings missing from the README's configuration table: {missing}"


def test_the_table_check_sees_a_missing_setting() -> None:
    documented = documented_variables()
    assert "WAVELAUNCH_MODEL_ECONOMY" in documented  # a shortened name (`_ECONOMY`)
    assert "WAVELAUNCH_NOT_A_SETTING" not in documented
