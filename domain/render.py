"""Markdown rendering of section JSON: display only, never sent to a model."""

from __future__ import annotations

from typing import Any


def label(key: str) -> str:
    return key.replace("_", " ").capitalize()


def _render_value(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value, ""]
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        headers = list(value[0])
        lines = [
            "| " + " | ".join(label(h) for h in headers) + " |",
            "|" + "---|" * len(headers),
        ]
        for row in value:
            cells = [str(row.get(h, "")).replace("|", "\\|").replace("\n", " ") for h in headers]
            lines.append("| " + " | ".join(cells) + " |")
        return [*lines, ""]
    if isinstance(value, list):
        return [*(f"- {item}" for item in value), ""]
    if isinstance(value, dict):
        out: list[str] = []
        for key, inner in value.items():
            out += [f"**{label(key)}**", "", *_render_value(inner)]
        return out
    return [str(value), ""]


def render_section(title: str, content: dict[str, Any]) -> str:
    lines = [f"## {title}", ""]
    for key, value in content.items():
        lines += [f"### {label(key)}", "", *_render_value(value)]
    return "\n".join(lines).rstrip() + "\n"


def render_document(title: str, sections: list[tuple[str, dict[str, Any]]]) -> str:
    parts = [f"# {title}", ""]
    parts += [render_section(section_title, content) for section_title, content in sections]
    return "\n".join(parts)
