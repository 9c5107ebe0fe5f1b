"""The naive way: the counterfactual every saving is measured against.

Two forms. The *fair* naive (``fair_*``, issue #11) is what a competent straightforward
implementation sends: the seed's persona and request, one call per document, the client record
as compact JSON, the previous month's titles and key decisions, a thread as one line per message,
the client summary from the thread summaries. The *verbose* form (``naive_messages``,
``naive_summary_messages``) is the seed's as it was: indented JSON, every message with its id
and timestamp; the ledger's per-call baseline and the ``naive_verbose`` sensitivity variant use
it. Nothing padded in either: these are the seed's prompts, not straw men.
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


KEY_DECISIONS_REQUEST = "End with a short list of the 3-5 key decisions this document makes."


def compact_record(record: dict[str, object]) -> str:
    """The client record as compact JSON (no indentation), the fields never sent left out."""
    return json.dumps(full_record(record), separators=(",", ":"), ensure_ascii=False)


def fair_messages(
    record: dict[str, object],
    sections: list[SectionSpec] | tuple[SectionSpec, ...],
    document: str = "business plan",
    history: str = "",
) -> list[dict[str, str]]:
    """The fair naive prompt for one document: the seed's persona and request, the record as
    compact JSON, then ``history`` (the previous month's titles and key decisions). What is the
    same for every document of a client comes first, so the provider's prefix cache can serve it."""
    titles = ", ".join(s.title for s in sections)
    parts = [f"Client:\n{compact_record(record)}"]
    if history:
        parts.append(f"Last month's deliverables and their key decisions:\n{history}")
    parts.append(
        f"Please write a detailed {document} for this client with the following sections: {titles}. "
        f"Make every section thorough, professional and specific to the client. {KEY_DECISIONS_REQUEST}"
    )
    return [{"role": "system", "content": PERSONA}, {"role": "user", "content": "\n\n".join(parts)}]


def history_lines(documents: Sequence[tuple[str, Sequence[str]]]) -> str:
    """The previous month as the fair naive carries it: one line per document, its title and
    its key decisions."""
    return "\n".join(f"- {title}: {'; '.join(decisions)}" for title, decisions in documents)


def key_decisions(text: str, count: int = 5, words: int = 8) -> list[str]:
    """The key decisions a document ends with (``KEY_DECISIONS_REQUEST``): its last ``count``
    phrases of ``words`` words. The naive way asks for prose, so this reads the end of it."""
    tail = text.split()[-count * words :]
    return [" ".join(tail[i : i + words]) for i in range(0, len(tail), words)]


def thread_lines(messages: Sequence[ThreadMessage], known: Iterable[str] = ()) -> str:
    """A thread as one line per message (author: text), contact details redacted."""
    known = tuple(known)
    return "\n".join(f"{m.author.value}: {redact(m.text, known)}" for m in messages)


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


def fair_thread_summary_messages(messages: Sequence[ThreadMessage]) -> list[dict[str, str]]:
    """The fair naive thread summary: the whole thread again, one line per message."""
    request = (
        f"Here is the conversation:\n{thread_lines(messages)}\n\n"
        "Please write a summary of this conversation: its topic, the key points, every action item "
        "with who owns it, the open questions and the client's sentiment."
    )
    return [{"role": "system", "content": SUMMARY_PERSONA}, {"role": "user", "content": request}]


def fair_client_summary_messages(record: dict[str, object], thread_summaries: Sequence[str]) -> list[dict[str, str]]:
    """The fair naive client summary: the record (compact JSON) and the thread summaries just
    written, not the raw messages."""
    summaries = "\n\n".join(f"Thread {i + 1}:\n{text}" for i, text in enumerate(thread_summaries))
    request = (
        f"Client:\n{compact_record(record)}\n\nSummaries of the conversations with the client:\n{summaries}\n\n"
        "Please write a summary of where this client stands: status, highlights, risks, next steps "
        "and overall sentiment."
    )
    return [{"role": "system", "content": SUMMARY_PERSONA}, {"role": "user", "content": request}]
