"""The naive way, as the seed did it: the counterfactual every saving is measured against.

One verbose prompt per document: a persona paragraph, the whole client record, and the request
for every section, sent to the top model with no cache. Nothing padded: this is the seed's
prompt, not a straw man.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence

from domain.sections import SectionSpec
from domain.summaries import ThreadMessage
from tokenopt.counting import count_messages
from tokenopt.projection import full_record
from tokenopt.redaction import redact

PERSONA = (
    "You are an expert business consultant and brand strategist with years of experience "
    "helping content creators and influencers turn their audiences into successful brands. "
    "You write comprehensive, professional and actionable business plans tailored to each "
    "creator's unique strengths, audience and goals."
)


def naive_messages(
    record: dict[str, object], sections: list[SectionSpec] | tuple[SectionSpec, ...], document: str = "business plan"
) -> list[dict[str, str]]:
    """The seed's one prompt for a whole document (a business plan, or one deliverable document)."""
    titles = ", ".join(s.title for s in sections)
    request = (
        "Here is the client's information:\n"
        f"{json.dumps(full_record(record), indent=2)}\n\n"
        f"Please write a detailed {document} for this client with the following sections: "
        f"{titles}. Make every section thorough, professional and specific to the client."
    )
    return [{"role": "system", "content": PERSONA}, {"role": "user", "content": request}]


def naive_prompt_tokens(record: dict[str, object], sections: list[SectionSpec], model: str) -> int:
    return count_messages(naive_messages(record, sections), model)


def section_share(spec: SectionSpec, sections: list[SectionSpec]) -> float:
    """A section's share of the naive document prompt, by its share of the output."""
    total = sum(s.target_tokens for s in sections)
    return spec.target_tokens / total if total else 0.0


SUMMARY_PERSONA = (
    "You are an expert client-relations manager and communications analyst at a creative studio "
    "that turns content creators into brands. You read client conversations carefully and write "
    "thorough, insightful and actionable summaries that capture every topic, decision, task, "
    "concern and the client's mood, so the studio never misses anything important."
)


def naive_summary_messages(
    threads: Mapping[str, Sequence[ThreadMessage]],
    record: dict[str, object] | None = None,
    *,
    known: Iterable[str] = (),
) -> list[dict[str, str]]:
    """The naive way to summarise, as the seed would: every message of the thread(s) re-sent as
    indented JSON with a persona paragraph, each time, to the top model. Without ``record``: one
    thread's summary (pass that one thread); with it: the client summary, written from every
    client field and every thread's every message. Contact details are redacted even here: the
    benchmark's naive arm sends these messages."""
    known = tuple(known)
    transcript = {
        thread_id: [
            {"id": m.id, "author": m.author.value, "sent_at": m.sent_at.isoformat(), "text": redact(m.text, known)}
            for m in messages
        ]
        for thread_id, messages in threads.items()
    }
    if record is None:
        request = (
            f"Here is the complete conversation:\n{json.dumps(transcript, indent=2)}\n\n"
            "Please write a detailed summary of this conversation: its topic, the key points, every "
            "action item with who owns it, the open questions and the client's sentiment. Make it "
            "thorough, professional and answer in the JSON format."
        )
    else:
        request = (
            f"Here is the client's information:\n{json.dumps(full_record(record), indent=2)}\n\n"
            f"Here are all the conversations with the client:\n{json.dumps(transcript, indent=2)}\n\n"
            "Please write a detailed summary of where this client stands: status, highlights, risks, "
            "next steps and overall sentiment. Make it thorough, professional and answer in the JSON format."
        )
    return [{"role": "system", "content": SUMMARY_PERSONA}, {"role": "user", "content": request}]


def naive_summary_tokens(
    threads: Mapping[str, Sequence[ThreadMessage]], record: dict[str, object] | None, model: str
) -> int:
    """Prompt tokens of :func:`naive_summary_messages` (the ledger's baseline for a summary)."""
    return count_messages(naive_summary_messages(threads, record), model)
