"""Template sections: boilerplate that does not depend on the client.

Written once per template version by a model, cached in the template tier (no client scope),
then filled with the client's values by plain substitution: no model call per client.
"""

from __future__ import annotations

from typing import Any

from domain.sections import SectionSpec

# Placeholders the model is asked to use, and the client field that fills each.
PLACEHOLDERS = {"{brand}": ("brandName", "fullName")}

BUSINESS_PLAN_TEMPLATES: tuple[SectionSpec, ...] = (
    SectionSpec(
        "disclaimer",
        "Notes and Disclaimer",
        priority=9,
        target_tokens=200,
        purpose=(
            "A short disclaimer for a creator brand's business plan: projections are estimates, "
            "figures are to be confirmed with an accountant, the plan is reviewed monthly. "
            "Write {brand} wherever the brand's name belongs."
        ),
        fields=(),
        schema_version=1,
    ),
)


def fill(content: Any, record: dict[str, Any]) -> Any:
    """Replace placeholders in every string of ``content`` with the client's values."""
    if isinstance(content, str):
        for placeholder, fields in PLACEHOLDERS.items():
            value = next((str(record[f]) for f in fields if record.get(f)), "the brand")
            content = content.replace(placeholder, value)
        return content
    if isinstance(content, list):
        return [fill(item, record) for item in content]
    if isinstance(content, dict):
        return {key: fill(value, record) for key, value in content.items()}
    return content
