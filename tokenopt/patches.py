"""Revisions as patches: when a few facts a section reads changed, the model writes an RFC 6902
JSON Patch of what they touch instead of the whole section again.

Output tokens are most of every bill, so a revision must write less, not the same: the patch's
``max_completion_tokens`` is sized to the share of the section's inputs that changed, and a
change that would touch more than half of the section is written in full from the start (a
patch that large is a rewrite that costs more to read and apply). A patch that does not apply,
does not validate, or replaces more than half of the section is dropped for a full rewrite.
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jsonpatch
import jsonpointer

from domain.outputs.schemas import SectionPatch
from domain.sections import DocumentKind, SectionSpec
from tokenopt.counting import count_messages, count_tokens
from tokenopt.prompts import DOCUMENT_LABELS, BuiltPrompt

# A revision is a patch only for a few changed facts; more is new work.
MAX_CHANGED_FIELDS = 3
# A patch may replace at most this share of the section's text.
MAX_REPLACED_SHARE = 0.5
# The patch's envelope, and each operation's path and quoting, in tokens.
PATCH_OVERHEAD_TOKENS = 24
OP_OVERHEAD_TOKENS = 16
# The section text that restates a changed fact is about its share of the inputs; twice that
# leaves room for the sentences around it.
REWRITE_MARGIN = 2.0

PATCH_RULES = (
    "Answer with an RFC 6902 JSON Patch of CURRENT: operations replace, add or remove; paths are JSON Pointers.",
    "Change only what the changed facts affect; leave everything else as it is.",
    "Values are plain text. Use only the data given.",
)


class PatchRejected(ValueError):
    """The patch cannot stand in for a rewrite (does not apply, invalid, or too large)."""


@dataclass(frozen=True)
class FieldChange:
    field: str
    old: str | None
    new: str | None


def field_changes(old: Mapping[str, str], new: Mapping[str, str]) -> list[FieldChange]:
    """What differs between the inputs a stored answer was written from and today's, by field."""
    names = dict.fromkeys([*new, *old])
    return [FieldChange(n, old.get(n), new.get(n)) for n in names if old.get(n) != new.get(n)]


def allowance(changes: list[FieldChange], inputs: Mapping[str, str], full_tokens: int, model: str) -> int | None:
    """The patch's ``max_completion_tokens``, sized to the change; None when a patch is not worth
    asking for (no change, too many changed fields, or it would rewrite half of the section)."""
    if not changes or len(changes) > MAX_CHANGED_FIELDS or full_tokens <= 0:
        return None
    total = sum(count_tokens(f"{k}: {v}", model) for k, v in inputs.items()) or 1
    changed = sum(count_tokens(f"{c.field}: {c.new or c.old or ''}", model) for c in changes)
    touched = min(1.0, changed / total)
    limit = (
        PATCH_OVERHEAD_TOKENS + OP_OVERHEAD_TOKENS * len(changes) + math.ceil(REWRITE_MARGIN * touched * full_tokens)
    )
    if limit > full_tokens * MAX_REPLACED_SHARE:
        return None
    return limit


def _changes_text(changes: list[FieldChange]) -> str:
    return "\n".join(f"{c.field}: {c.old or '(empty)'} -> {c.new or '(empty)'}" for c in changes)


def build_patch_prompt(
    spec: SectionSpec,
    current: dict[str, Any],
    changes: list[FieldChange],
    *,
    model: str,
    limit: int,
    kind: DocumentKind = DocumentKind.BUSINESS_PLAN,
) -> BuiltPrompt:
    """The stored section, the changed facts (old -> new) and the request for a patch."""
    label = DOCUMENT_LABELS.get(kind, kind.value.replace("_", " "))
    system = f"Revise one {label} section for a creator brand.\n" + "\n".join(f"- {r}" for r in PATCH_RULES)
    user = (
        f"CURRENT\n{json.dumps(current, separators=(',', ':'), ensure_ascii=False)}\n"
        f"CHANGED\n{_changes_text(changes)}\n"
        f"TASK\nPatch the {spec.title} section for the changed facts; at most about {round(limit * 0.75)} words."
    )
    messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
    inputs = {c.field: c.new or "" for c in changes}
    return BuiltPrompt(messages, count_messages(messages, model), input_hash="", inputs=inputs)


def _text(node: Any) -> str:
    """A section's text leaves in document order, one per line."""
    if isinstance(node, str):
        return node
    if isinstance(node, dict):
        return "\n".join(_text(v) for v in node.values())
    if isinstance(node, list):
        return "\n".join(_text(v) for v in node)
    return ""


def replaced_share(before: dict[str, Any], after: dict[str, Any]) -> float:
    """The share of ``before``'s text that ``after`` rewrote: the larger of what it dropped and
    what it wrote, beyond the text the two have in common, over ``before``'s length."""
    old, new = _text(before), _text(after)
    kept = sum(b.size for b in difflib.SequenceMatcher(None, old, new, autojunk=False).get_matching_blocks())
    return max(len(old) - kept, len(new) - kept) / (len(old) or 1)


def apply_patch(current: dict[str, Any], patch: SectionPatch) -> dict[str, Any]:
    """``current`` with ``patch`` applied (a new document); raises PatchRejected."""
    operations = [
        {"op": o.op, "path": o.path} if o.op == "remove" else {"op": o.op, "path": o.path, "value": o.value}
        for o in patch.operations
    ]
    if not operations:
        raise PatchRejected("the patch has no operations")
    try:
        patched = jsonpatch.apply_patch(current, operations, in_place=False)
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException, TypeError, ValueError) as err:
        raise PatchRejected(f"the patch does not apply: {err}") from None
    if not isinstance(patched, dict):
        raise PatchRejected("the patch replaced the whole section")
    share = replaced_share(current, patched)
    if share > MAX_REPLACED_SHARE:
        raise PatchRejected(f"the patch replaces {share:.0%} of the section (at most {MAX_REPLACED_SHARE:.0%})")
    return patched
