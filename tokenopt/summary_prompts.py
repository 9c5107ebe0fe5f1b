"""Prompts for summaries: a thread summary grows with the new messages only, a client summary is
written from the compact client context and the thread summaries (never raw messages).

Layout as for sections (tokenopt.prompts): fixed instructions first, then the data, the task
last. Every piece of free text is redacted first (tokenopt.redaction): neither the client's email
nor any contact detail a message carries reaches a model.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from typing import Any

from domain.catalogue.summaries import CLIENT_SUMMARY, THREAD_SUMMARY
from domain.sections import SectionSpec
from domain.summaries import ThreadMessage
from tokenopt.budget import LONG_FIELD_CHARS
from tokenopt.counting import count_messages, count_tokens
from tokenopt.projection import normalise, project, truncate_sentences
from tokenopt.prompts import BuiltPrompt, approx_words
from tokenopt.redaction import redact

SUMMARY_PROMPT_VERSION = 1
# One message's text in a prompt: enough for any real message, bounded for a pasted wall of text.
MESSAGE_CHARS = 1500
# A thread summarised for the first time (or after a long gap) is read in steps of at most this
# many tokens of messages, each folded into the summary so far, so no prompt outgrows a small
# model's window however long the thread. A usual update (a few new messages) is one step.
THREAD_STEP_TOKENS = 6000

THREAD_SYSTEM = (
    "Summarise a message thread between a creator brand (the client) and its studio.\n"
    "- JSON per the schema.\n"
    "- Use only the text given; write 'to be confirmed' for unknown dates.\n"
    "- action_items: open tasks only, each with its owner (client or studio).\n"
    "- sentiment: the client's, over the whole thread.\n"
    "- When PREVIOUS is given, it summarises the earlier messages: update it with NEW MESSAGES, "
    "keep what still holds, drop done tasks and answered questions."
)
CLIENT_SYSTEM = (
    "Summarise where a creator brand (the client) stands, for its studio.\n"
    "- JSON per the schema.\n"
    "- Use only the data given.\n"
    "- Risks and next steps come from the threads' action items and open questions."
)


def _task(spec: SectionSpec) -> str:
    return f"TASK\n{spec.purpose} About {approx_words(spec.target_tokens)} words in total."


def _compact(content: dict[str, Any]) -> str:
    return json.dumps(content, separators=(",", ":"), ensure_ascii=False)


def message_line(message: ThreadMessage, known: Iterable[str] = ()) -> str:
    """One message as a prompt line: ``#seq author YYYY-MM-DD: text`` (redacted, one line)."""
    text = truncate_sentences(normalise(message.text) or "", MESSAGE_CHARS)
    return f"#{message.seq} {message.author.value} {message.sent_at:%Y-%m-%d}: {redact(text, known)}"


def next_step(
    messages: Sequence[ThreadMessage],
    *,
    model: str,
    known: Iterable[str] = (),
    max_tokens: int = THREAD_STEP_TOKENS,
) -> list[ThreadMessage]:
    """The leading messages whose prompt lines fit in ``max_tokens`` (always at least one)."""
    known = tuple(known)
    step: list[ThreadMessage] = []
    used = 0
    for message in messages:
        tokens = count_tokens(message_line(message, known), model)
        if step and used + tokens > max_tokens:
            break
        step.append(message)
        used += tokens
    return step


def rereads_whole_thread(
    previous: dict[str, Any] | None,
    thread: Sequence[ThreadMessage],
    new: Sequence[ThreadMessage],
    *,
    model: str,
    known: Iterable[str] = (),
) -> bool:
    """Whether to summarise the whole thread again rather than fold the new messages into the
    previous summary: when the thread's lines take fewer tokens than the previous summary plus
    the new lines (a young thread, whose summary is longer than its messages) and fit one step.
    Every fact reaches the prompt either way; this only picks the shorter prompt."""
    if previous is None:
        return False
    known = tuple(known)
    whole = sum(count_tokens(message_line(m, known), model) for m in thread)
    if whole > THREAD_STEP_TOKENS:
        return False
    folded = count_tokens(redact(_compact(previous), known), model)
    folded += sum(count_tokens(message_line(m, known), model) for m in new)
    return whole <= folded


def build_thread_prompt(
    thread_id: str,
    previous: dict[str, Any] | None,
    new_messages: Sequence[ThreadMessage],
    *,
    model: str,
    known: Iterable[str] = (),
) -> BuiltPrompt:
    """An incremental thread summary: the previous summary (None the first time) and only the
    messages after it. ``known`` values (the client's email) are redacted wherever they appear."""
    known = tuple(known)
    lines = "\n".join(message_line(m, known) for m in new_messages)
    parts = [f"THREAD {thread_id}"]
    if previous is not None:
        parts.append(f"PREVIOUS\n{redact(_compact(previous), known)}")
        parts.append(f"NEW MESSAGES\n{lines}")
    else:
        parts.append(f"MESSAGES\n{lines}")
    parts.append(_task(THREAD_SUMMARY))
    messages = [{"role": "system", "content": THREAD_SYSTEM}, {"role": "user", "content": "\n".join(parts)}]
    inputs = {"thread": thread_id, "through_seq": str(new_messages[-1].seq if new_messages else 0)}
    return BuiltPrompt(messages, count_messages(messages, model), input_hash="", inputs=inputs)


def client_inputs(record: dict[str, object], known: Iterable[str] = ()) -> dict[str, str]:
    """The compact client context of a client summary: the spec's fields, long ones cut at a
    sentence, redacted (projection never sends the email)."""
    known = tuple(known)
    return {
        k: redact(truncate_sentences(v, LONG_FIELD_CHARS), known)
        for k, v in project(record, CLIENT_SUMMARY.fields).items()
    }


def client_inputs_hash(inputs: dict[str, str], thread_summaries: Sequence[tuple[str, int]]) -> str:
    """What makes two client summaries the same work: the client context, the thread summary
    versions (by id) and the prompt and schema versions."""
    payload = {
        "prompt": SUMMARY_PROMPT_VERSION,
        "schema": CLIENT_SUMMARY.schema_version,
        "inputs": inputs,
        "threads": sorted([t, i] for t, i in thread_summaries),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def build_client_prompt(
    record: dict[str, object],
    thread_summaries: Sequence[tuple[str, dict[str, Any]]],
    *,
    model: str,
    known: Iterable[str] = (),
) -> BuiltPrompt:
    """A client summary from the compact client context and each thread's latest summary
    (``(thread_id, content)``); raw messages never enter it."""
    known = tuple(known)
    inputs = client_inputs(record, known)
    client_block = "\n".join(f"{k}: {v}" for k, v in inputs.items()) or "(no details yet)"
    threads = "\n".join(f"{t}: {redact(_compact(c), known)}" for t, c in thread_summaries) or "(no threads yet)"
    user = f"CLIENT\n{client_block}\nTHREADS\n{threads}\n{_task(CLIENT_SUMMARY)}"
    messages = [{"role": "system", "content": CLIENT_SYSTEM}, {"role": "user", "content": user}]
    return BuiltPrompt(messages, count_messages(messages, model), input_hash="", inputs=inputs)
