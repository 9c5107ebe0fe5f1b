"""A section's output model as it is sent: the strict schema, its name, batch and patch schemas.

The model itself is the section spec's (domain.catalogue); this module only looks it up and
shapes it into what OpenAI structured outputs take.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Sequence
from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, create_model

from domain import catalogue
from domain.catalogue import deliverables
from domain.outputs.base import OutputModel
from domain.sections import DocumentKind


def output_model(section_key: str) -> type[BaseModel]:
    """The output model the spec of ``section_key`` carries (a deliverable section's is its
    kind's); raises domain.sections.UnknownSection for keys no catalogue knows."""
    return catalogue.spec_of(section_key).output


def in_schema_order(section_key: str, content: dict[str, Any]) -> dict[str, Any]:
    """``content`` with its keys in the schema's order: Postgres jsonb stores keys shortest
    first, which would scramble the rendered headings."""
    return output_model(section_key).model_validate(content).model_dump(mode="json")


def strict_json_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema in the strict form OpenAI structured outputs require:
    every object closed and every property required, titles dropped (they cost tokens)."""
    # Built once per model (every section call sends it); each caller gets its own copy.
    return copy.deepcopy(_strict_json_schema(model))


@functools.cache
def _strict_json_schema(model: type[BaseModel]) -> dict[str, Any]:
    schema = copy.deepcopy(model.model_json_schema())

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            node.pop("title", None)
            if node.get("type") == "object" and "properties" in node:
                node["additionalProperties"] = False
                node["required"] = list(node["properties"])
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for item in node:
                visit(item)

    visit(schema)
    return schema


def schema_name(section_key: str, schema_version: int) -> str:
    """The name sent with the schema; stable per section and version. A deliverable section is
    named by its kind (``m1_brand_architecture__kpis`` -> ``kpis_v1``): one schema, one name."""
    if catalogue.document_kind(section_key) is DocumentKind.DELIVERABLE:
        section_key = deliverables.kind_of(section_key)
    return f"{section_key}_v{schema_version}"


# A section group answered in one call (tokenopt.grouping): strict json_schema needs an
# object root, so the "array" is an object with one required property per member section,
# each the member's own schema (shared by $ref when members have the same output model).
# The key and the model's name below are sent to the model (billed tokens): kept as first named.
GROUP_SCHEMA_KEY = "section_batch"
GROUP_SCHEMA_VERSION = 1


@lru_cache(maxsize=256)
def group_output_model(section_keys: tuple[str, ...]) -> type[BaseModel]:
    """The output model of a section group: one required property per member, named by its section key."""
    fields: dict[str, Any] = {key: (output_model(key), ...) for key in section_keys}
    return create_model("SectionBatch", __config__=ConfigDict(extra="forbid"), **fields)


def group_schema_name() -> str:
    """The name a group's schema is sent with (the stub recognises groups by it)."""
    return f"{GROUP_SCHEMA_KEY}_v{GROUP_SCHEMA_VERSION}"


def group_json_schema(section_keys: Sequence[str]) -> dict[str, Any]:
    """The strict JSON schema of a group of ``section_keys``: a member's schema is written in
    place, or once under ``$defs`` when several members share it (the schema is billed as input)."""
    schema = strict_json_schema(group_output_model(tuple(section_keys)))
    defs = schema.get("$defs", {})
    refs = [p.get("$ref", "") for p in schema["properties"].values()]
    for name, prop in schema["properties"].items():
        ref = prop.get("$ref", "")
        if ref.startswith("#/$defs/") and refs.count(ref) == 1:
            schema["properties"][name] = defs.pop(ref.removeprefix("#/$defs/"))
    if not defs:
        schema.pop("$defs", None)
    return schema


# A revision of a stored section answered as an RFC 6902 JSON Patch (tokenopt.patches): only
# what the changed facts touch is written. Values are strings: sections are text leaves and
# lists of text, and a strict schema cannot say "any JSON" (a list of objects is rewritten).
PATCH_SCHEMA_KEY = "section_patch"
PATCH_SCHEMA_VERSION = 1


class PatchOperation(OutputModel):
    op: Literal["replace", "add", "remove"]
    # A JSON Pointer into the stored section, e.g. /overview or /trends/2 or /trends/- (append).
    path: str
    # The new text ("" for remove).
    value: str


class SectionPatch(OutputModel):
    operations: list[PatchOperation]


def patch_schema_name() -> str:
    """The name a patch's schema is sent with (the stub recognises patches by it)."""
    return f"{PATCH_SCHEMA_KEY}_v{PATCH_SCHEMA_VERSION}"
