"""Cache keys: one function decides what makes two requests the same.

The exact key is a sha256 over the normalised request: the prompt with whitespace folded, the
model, temperature and output limit, the schema and prompt-template versions, and the tenant
(client) scope, so two clients never share an entry. Articles are dropped only from template
lines (instructions), never from data lines (``field: value``), where "a" or "the" can be part
of a name or a quote.
"""

from __future__ import annotations

import hashlib
import json
import re

_SPACE = re.compile(r"\s+")
_ARTICLES = re.compile(r"\b(?:a|an|the)\b ", re.IGNORECASE)
_DATA_LINE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*: ")


def normalise_prompt_text(text: str) -> str:
    lines = []
    for line in text.splitlines():
        line = _SPACE.sub(" ", line).strip()
        if not line:
            continue
        if not _DATA_LINE.match(line):
            line = _ARTICLES.sub("", line)
        lines.append(line)
    return "\n".join(lines)


def exact_key(
    *,
    tenant: str | None,
    document_kind: str,
    section_key: str,
    messages: list[dict[str, str]],
    model: str,
    temperature: float | None,
    max_tokens: int,
    schema_version: int,
    prompt_version: int,
) -> str:
    payload = {
        "tenant": tenant,
        "kind": document_kind,
        "section": section_key,
        "model": model,
        "temperature": temperature,
        "max_tokens": max_tokens,
        "schema": schema_version,
        "prompt": prompt_version,
        "messages": [[m["role"], normalise_prompt_text(m["content"])] for m in messages],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
