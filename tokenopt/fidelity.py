"""Context fidelity: does every fact a section needs reach the prompt that was actually sent?

What a section needs comes from ``domain.needs`` (written from each section's purpose, never from
the projection that builds prompts). This module turns the needed *values* into *facts* (figures,
dates, names, list items and clauses) and looks for each fact in the prompt's text, so a value
that budget compression truncated, a digest that clipped a decision or a summary that folded a
message away shows as a lost fact, not as "the field is present".

Pure: no I/O, no Temporal. Three levels:

- ``facts(text)``: the facts inside one value;
- ``check_section`` / ``check_thread_summary`` / ``check_client_summary``: one prompt against
  one section's needs (required, delivered, missing);
- ``Fidelity``: the aggregate (``required``, ``delivered``, ``ratio``; per section kind, per lost
  cause), and ``fidelity_of_requests``: the same over the LLM stub's request log, for benchmarks.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from domain.catalogue import deliverables
from domain.catalogue.plan import BUSINESS_PLAN_SECTIONS
from domain.digest import digest_section_keys
from domain.needs import needs
from domain.sections import DocumentKind, UnknownSection
from tokenopt.projection import normalise
from tokenopt.redaction import EMAIL_MARK, PHONE_MARK, redact


class FactKind(StrEnum):
    FIGURE = "figure"  # 410k, 88%, GBP 1M, £45, 25-40
    DATE = "date"  # 20 March, January, 2026-03-02, Q3 2026, Monday
    NAME = "name"  # proper names and capitalised terms: Sweaty Betty, TikTok, Lisbon
    ITEM = "item"  # a list item or clause: "fear of injury", a decision, a KPI name


# Where a fact comes from, beyond client field names.
EARLIER_MONTHS = "earlier_months"
MESSAGES = "messages"
THREAD_SUMMARIES = "thread_summaries"


@dataclass(frozen=True)
class Fact:
    kind: FactKind
    text: str  # as written in its source
    source: str  # a client field name, EARLIER_MONTHS, MESSAGES or THREAD_SUMMARIES

    @property
    def key(self) -> str:
        return _norm(self.text)


# -- extraction -----------------------------------------------------------------------------------
_MONTHS = (
    "January|February|March|April|May|June|July|August|September|October|November|December|"
    "Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec"
)
_WEEKDAYS = "Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday"
_DATE = re.compile(
    r"\b\d{4}-\d{2}-\d{2}\b"
    r"|\bQ[1-4](?:\s+\d{4})?\b"
    rf"|\b(?:\d{{1,2}}(?:st|nd|rd|th)?\s+)?(?:{_MONTHS})\b\.?(?:\s+\d{{1,2}}(?:st|nd|rd|th)?\b)?(?:,?\s+\d{{4}}\b)?"
    rf"|\b(?:{_WEEKDAYS})\b"
)
_NUMBER = r"\d+(?:[.,]\d+)*"
_FIGURE = re.compile(
    rf"(?:[£$€]\s?|\b(?:GBP|USD|EUR|AUD|CAD)\s)?(?<![\w.]){_NUMBER}(?:\s?[-–]\s?{_NUMBER})?"
    r"(?:\s?%|(?:k|K|m|M|bn|x)\b)?"
)
_WORD = r"[A-Z][\w'’&-]*"
_NAME = re.compile(rf"\b{_WORD}(?:\s+(?:&\s+)?{_WORD})*")
_SENTENCE = re.compile(r"(?<=[.!?…])\s+|\n+")
_CLAUSE = re.compile(r"\s*[,;]\s+|\s+[-–—]\s+|\s*\n\s*")
_TRIM = " \t\"'“”‘’()[]{}.!?…:"
# A lone capitalised word opening a sentence is not a name ("Certified", "The", "Please").
_INNER_CAPITAL = re.compile(r".[A-Z0-9]")
_NOT_NAMES = frozenset({"I", "I'm", "I'll", "I've", "OK"})


def _sentence_starts(text: str) -> set[int]:
    starts = {0}
    for m in re.finditer(r"(?:[.!?…:]\s+|\n\s*|[-•*]\s+)", text):
        starts.add(m.end())
    return starts


def _names(text: str) -> list[str]:
    starts = _sentence_starts(text)
    out = []
    for m in _NAME.finditer(text):
        words = m.group().split()
        if m.start() in starts and not _INNER_CAPITAL.search(words[0]):
            words = words[1:]  # the sentence's first word: capitalised by grammar, not by name
        while words and words[-1] == "&":
            words.pop()
        name = " ".join(words)
        if name and name not in _NOT_NAMES and not _DATE.fullmatch(name):
            out.append(name)
    return out


def _clauses(text: str) -> list[str]:
    out = []
    for sentence in _SENTENCE.split(text):
        for clause in _CLAUSE.split(sentence):
            clause = clause.strip(_TRIM)
            if len(clause) >= 3 and any(ch.isalnum() for ch in clause):
                out.append(clause)
    return out


def facts(text: str, source: str = "") -> list[Fact]:
    """The facts inside one value (deduplicated, in order): figures, dates, names, and its list
    items / clauses. A value repeated or a sentence written twice is one fact."""
    text = normalise(text) or ""
    found: dict[tuple[FactKind, str], Fact] = {}

    def add(kind: FactKind, value: str) -> None:
        value = value.strip(_TRIM)
        if value and any(ch.isalnum() for ch in value):
            found.setdefault((kind, _norm(value)), Fact(kind, value, source))

    for m in _FIGURE.finditer(text):
        add(FactKind.FIGURE, m.group())
    for m in _DATE.finditer(text):
        add(FactKind.DATE, m.group())
    for name in _names(text):
        add(FactKind.NAME, name)
    for clause in _clauses(text):
        add(FactKind.ITEM, clause)
    return list(found.values())


def item_facts(values: Iterable[str], source: str) -> list[Fact]:
    """Each value as one whole item (a decision, a KPI name): clipping it loses the fact."""
    out: dict[str, Fact] = {}
    for value in values:
        text = normalise(value)
        if text:
            text = text.strip(_TRIM)
            out.setdefault(_norm(text), Fact(FactKind.ITEM, text, source))
    return list(out.values())


# -- matching -------------------------------------------------------------------------------------
_SPACE = re.compile(r"\s+")
_UNICODE_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})")
_TRANSLATE = str.maketrans({"’": "'", "‘": "'", "“": '"', "”": '"', "–": "-", "—": "-"})


def _norm(text: str) -> str:
    return _SPACE.sub(" ", text.translate(_TRANSLATE)).strip().casefold()


def prompt_text(messages: Sequence[Mapping[str, Any]]) -> str:
    """What a prompt says, as one normalised string. JSON escapes are read as what they stand for
    (a prompt that carries data as JSON still carries its facts)."""
    text = "\n".join(str(m.get("content") or "") for m in messages)
    text = _UNICODE_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)
    text = text.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")
    return _norm(text)


def found(fact: Fact, haystack: str) -> bool:
    """Whether ``fact`` is in the normalised prompt text, as a whole (not inside a longer word)."""
    key = fact.key
    start = haystack.find(key)
    while start >= 0:
        end = start + len(key)
        before = haystack[start - 1] if start else " "
        after = haystack[end] if end < len(haystack) else " "
        if not (key[0].isalnum() and before.isalnum()) and not (key[-1].isalnum() and after.isalnum()):
            return True
        start = haystack.find(key, start + 1)
    return False


# -- one prompt -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class SectionCheck:
    """One prompt against one section's needs."""

    section: str  # the section key as sent
    kind: str  # the section kind it is aggregated under, e.g. "deliverable.kpis"
    required: tuple[Fact, ...]
    missing: tuple[Fact, ...]

    @property
    def delivered(self) -> int:
        return len(self.required) - len(self.missing)

    @property
    def ratio(self) -> float:
        """Delivered / required; 1.0 when nothing is required."""
        return self.delivered / len(self.required) if self.required else 1.0


def _check(section: str, kind: str, required: list[Fact], messages: Sequence[Mapping[str, Any]]) -> SectionCheck:
    haystack = prompt_text(messages)
    unique = list({(f.kind, f.key, f.source): f for f in required}.values())
    return SectionCheck(section, kind, tuple(unique), tuple(f for f in unique if not found(f, haystack)))


def kind_label(document_kind: DocumentKind, section_key: str) -> str:
    """The kind a section is aggregated under: ``business_plan.<key>``, ``deliverable.<kind>``,
    ``summary.<kind>``."""
    if document_kind is DocumentKind.DELIVERABLE:
        return f"deliverable.{deliverables.kind_of(section_key)}"
    return f"{document_kind.value}.{section_key}"


def field_facts(record: Mapping[str, Any], fields: Iterable[str]) -> list[Fact]:
    out: list[Fact] = []
    for name in fields:
        text = normalise(record.get(name))
        if text:
            out += facts(text, name)
    return out


def earlier_month_facts(section_key: str, earlier: Mapping[str, Mapping[str, Any]]) -> list[Fact]:
    """The decisions and KPI names of the months before a deliverable section's month, from the
    earlier sections' contents (keyed as ``domain.digest.build_digest`` takes them)."""
    doc_key, _ = deliverables.split_section_key(section_key)
    if doc_key is None:
        return []
    month = deliverables.document(doc_key).month
    if month == deliverables.FIRST_MONTH:
        return []
    decisions: list[str] = []
    kpis: list[object] = []
    for key in digest_section_keys(month):
        content = earlier.get(key) or {}
        kind = deliverables.kind_of(key)
        if kind == "framework_strategy":
            decisions += [d for d in content.get("key_decisions") or [] if isinstance(d, str)]
        elif kind == "kpis":
            kpis += [k.get("name") for k in content.get("kpis") or [] if isinstance(k, Mapping)]
    return item_facts(decisions, EARLIER_MONTHS) + item_facts([k for k in kpis if isinstance(k, str)], EARLIER_MONTHS)


def check_section(
    messages: Sequence[Mapping[str, Any]],
    record: Mapping[str, Any],
    section_key: str,
    *,
    kind: DocumentKind = DocumentKind.BUSINESS_PLAN,
    earlier: Mapping[str, Mapping[str, Any]] | None = None,
) -> SectionCheck:
    """A business-plan or deliverable section's prompt against its needs: the facts of the client
    fields it needs (``record`` in wire format) and, for a deliverable section that needs them,
    the decisions and KPI names of earlier months (``earlier``: section key -> content)."""
    need = needs(kind, section_key)
    required = field_facts(record, need.fields)
    if need.earlier_months and earlier is not None:
        required += earlier_month_facts(section_key, earlier)
    return _check(section_key, kind_label(kind, section_key), required, messages)


_SEQ_LINE = re.compile(r"^#(\d+) \w+ \S+: ", re.MULTILINE)


def shown_seqs(messages: Sequence[Mapping[str, Any]]) -> list[int]:
    """The message numbers a thread-summary prompt shows (its ``#seq author date: text`` lines)."""
    text = "\n".join(str(m.get("content") or "") for m in messages)
    return sorted({int(s) for s in _SEQ_LINE.findall(text)})


def message_facts(texts: Iterable[str], known: Iterable[str] = ()) -> list[Fact]:
    """The facts of messages, as a prompt may carry them: contact details are redacted by design,
    so a redacted email or phone number is no required fact."""
    known = tuple(known)
    out: list[Fact] = []
    for text in texts:
        redacted = redact(normalise(text) or "", known)
        out += [f for f in facts(redacted, MESSAGES) if not _only_marks(f.text)]
    return out


def _only_marks(text: str) -> bool:
    return not text.replace(EMAIL_MARK, "").replace(PHONE_MARK, "").strip(_TRIM + " ,;")


def check_thread_summary(
    messages: Sequence[Mapping[str, Any]],
    thread: Sequence[str],
    *,
    since_seq: int | None = None,
    known: Iterable[str] = (),
) -> SectionCheck:
    """A thread summary's prompt against the facts of its new messages.

    ``thread``: the thread's message texts in order (message ``seq`` n is ``thread[n-1]``).
    The new messages are those after ``since_seq`` up to the last one the prompt shows; without
    ``since_seq``, from the first one the prompt shows. A message skipped or cut on the way
    shows as missing facts."""
    seqs = shown_seqs(messages)
    last = seqs[-1] if seqs else len(thread)
    first = since_seq + 1 if since_seq is not None else (seqs[0] if seqs else 1)
    required = message_facts(thread[first - 1 : last], known)
    return _check("thread_summary", "summary.thread_summary", required, messages)


def _strings(value: Any) -> Iterable[tuple[str, bool]]:
    """Every string in a JSON value, and whether it is a list item."""
    if isinstance(value, str):
        yield value, False
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            if isinstance(v, str):
                yield v, True
            else:
                yield from _strings(v)


def summary_facts(content: Mapping[str, Any], source: str = THREAD_SUMMARIES, known: Iterable[str] = ()) -> list[Fact]:
    known = tuple(known)
    out: list[Fact] = []
    for text, _ in _strings(content):
        redacted = redact(normalise(text) or "", known)
        out += [f for f in facts(redacted, source) if not _only_marks(f.text)]
    return out


def check_client_summary(
    messages: Sequence[Mapping[str, Any]],
    thread_summaries: Mapping[str, Mapping[str, Any]],
    *,
    known: Iterable[str] = (),
) -> SectionCheck:
    """A client summary's prompt against the facts of the client's thread summaries
    (thread id -> the latest summary's content)."""
    required: list[Fact] = []
    for content in thread_summaries.values():
        required += summary_facts(content, known=known)
    return _check("client_summary", "summary.client_summary", required, messages)


# -- the aggregate ----------------------------------------------------------------------------------
@dataclass
class Tally:
    required: int = 0
    delivered: int = 0

    @property
    def ratio(self) -> float:
        return round(self.delivered / self.required, 4) if self.required else 1.0

    def as_dict(self) -> dict[str, Any]:
        return {"required": self.required, "delivered": self.delivered, "ratio": self.ratio}


def lost_cause(fact: Fact, check: SectionCheck) -> str:
    """Why a fact was lost, as far as the prompt tells: a needed field absent altogether
    (``field_missing``: the projection), present but cut (``field_cut``: compression), or an
    earlier month's decision / a message / a thread summary that did not arrive whole."""
    if fact.source in (EARLIER_MONTHS, MESSAGES, THREAD_SUMMARIES):
        return fact.source
    same_field = [f for f in check.required if f.source == fact.source]
    lost_in_field = [f for f in check.missing if f.source == fact.source]
    return "field_missing" if len(lost_in_field) == len(same_field) else "field_cut"


@dataclass
class Fidelity:
    """Facts required and delivered over many prompts: in total, per section kind, and the lost
    ones by cause and by source (field names; never the facts themselves, which may be personal)."""

    total: Tally = field(default_factory=Tally)
    by_kind: dict[str, Tally] = field(default_factory=lambda: defaultdict(Tally))
    lost_by_cause: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    lost_by_source: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    prompts: int = 0
    # Requests not checked, by reason (no known client, a revision prompt, ...).
    skipped: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def add(self, check: SectionCheck) -> None:
        self.prompts += 1
        for tally in (self.total, self.by_kind[check.kind]):
            tally.required += len(check.required)
            tally.delivered += check.delivered
        for fact in check.missing:
            self.lost_by_cause[lost_cause(fact, check)] += 1
            self.lost_by_source[fact.source] += 1

    @property
    def required(self) -> int:
        return self.total.required

    @property
    def delivered(self) -> int:
        return self.total.delivered

    @property
    def ratio(self) -> float:
        return self.total.ratio

    def as_dict(self) -> dict[str, Any]:
        """``{"required", "delivered", "ratio", "prompts", "by_kind": {kind: {...}}, ...}``."""
        return {
            **self.total.as_dict(),
            "prompts": self.prompts,
            "by_kind": {k: t.as_dict() for k, t in sorted(self.by_kind.items())},
            "lost_by_cause": dict(sorted(self.lost_by_cause.items())),
            "lost_by_source": dict(sorted(self.lost_by_source.items())),
            "skipped": dict(sorted(self.skipped.items())),
        }


# -- over the stub's request log ---------------------------------------------------------------------
_PLAN_KEYS = frozenset(s.key for s in BUSINESS_PLAN_SECTIONS)
CLIENT_KEY_PREFIX = "client-"
_THREAD_LINE = re.compile(r"^THREAD (\S+)$", re.MULTILINE)
# A revision prompt (the semantic cache's "minor regeneration") carries the cached section and the
# changed fields only; its facts are in the cached answer, not the prompt: not checked.
_REVISION_OPENING = "CURRENT\n"
_BATCH_KEY = "section_batch"


def _document_kind(section_key: str) -> DocumentKind | None:
    if section_key in _PLAN_KEYS:
        return DocumentKind.BUSINESS_PLAN
    if section_key in ("thread_summary", "client_summary"):
        return DocumentKind.SUMMARY
    try:
        deliverables.split_section_key(section_key)
    except UnknownSection:
        return None
    return DocumentKind.DELIVERABLE


def _answer(entry: Mapping[str, Any]) -> dict[str, Any] | None:
    if entry.get("status") != 200 or not isinstance(entry.get("answer"), str):
        return None
    try:
        content = json.loads(entry["answer"])
    except ValueError:
        return None
    return content if isinstance(content, dict) else None


def _versions(value: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [value] if isinstance(value, Mapping) else list(value)


def _best(checks: list[SectionCheck]) -> SectionCheck:
    return max(checks, key=lambda c: (c.ratio, -len(c.missing)))


def fidelity_of_requests(
    requests: Iterable[Mapping[str, Any]],
    records: Mapping[str, Mapping[str, Any] | Sequence[Mapping[str, Any]]],
    *,
    threads: Mapping[str, Mapping[str, Sequence[str]]] | None = None,
    fidelity: Fidelity | None = None,
) -> Fidelity:
    """Context fidelity of the prompts an arm actually sent, from the LLM stub's request log.

    ``requests``: ``StubServer.requests()`` (or ``GET /_stub/requests``) in arrival order, for one
    arm only (call it before the stub is reset for the next arm). Each entry's ``messages`` is
    what the model was shown, ``section`` the schema's section key (``members`` for a batch) and
    ``answer`` the stub's reply.

    ``records``: client id -> the client's wire-format record, or every version it had during the
    run (a list): a prompt is checked against the version it matches best, since an edit mid-run
    changes what later prompts must carry. The client of a request is read from its
    ``prompt_cache_key``, which our writer sets to ``client-<client id>`` (activities/writer.py);
    requests with no key, or a client not in ``records``, are counted under ``skipped``.

    ``threads``: client id -> thread id -> the thread's message texts in order (``seq`` n is
    item n-1), as the workload sent them. A thread summary's prompt must carry the facts of every
    message after the thread's previous summary (the previous request for the same thread in this
    log) up to the last it shows; without ``threads`` thread summaries are skipped.

    Earlier months and thread summaries come from the log itself: a deliverable section that
    needs earlier months is checked against the decisions and KPI names of the client's latest
    answers for months before it, a client summary against the client's latest thread-summary
    answers. Sections served from a cache make no request and are not checked here (what they
    serve was checked when it was written).

    Returns a :class:`Fidelity` (``.as_dict()`` for JSON: ``required``, ``delivered``, ``ratio``,
    ``by_kind``, ``lost_by_cause``, ...); pass ``fidelity`` to add to an existing one.
    """
    out = fidelity if fidelity is not None else Fidelity()
    earlier: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)  # client -> section key -> content
    summaries: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)  # client -> thread -> content
    summarised: dict[tuple[str, str], int] = {}  # (client, thread) -> last seq summarised
    for entry in requests:
        section = entry.get("section")
        messages = entry.get("messages") or []
        cache_key = entry.get("prompt_cache_key") or ""
        client = cache_key.removeprefix(CLIENT_KEY_PREFIX) if cache_key.startswith(CLIENT_KEY_PREFIX) else None
        if not section or not messages or entry.get("status") != 200:
            out.skipped["not_answered"] += 1
            continue
        if client is None or client not in records:
            out.skipped["unknown_client"] += 1
            continue
        answer = _answer(entry)
        members = list(entry.get("members") or []) if section == _BATCH_KEY else [section]
        for key in members:
            content = (answer or {}).get(key) if section == _BATCH_KEY else answer
            check = _check_entry(key, messages, client, records, threads, earlier, summaries, summarised, out)
            if check is not None:
                out.add(check)
            if isinstance(content, dict):
                _remember(key, messages, client, content, earlier, summaries, summarised)
    return out


def _check_entry(
    key: str,
    messages: Sequence[Mapping[str, Any]],
    client: str,
    records: Mapping[str, Mapping[str, Any] | Sequence[Mapping[str, Any]]],
    threads: Mapping[str, Mapping[str, Sequence[str]]] | None,
    earlier: Mapping[str, Mapping[str, dict[str, Any]]],
    summaries: Mapping[str, Mapping[str, dict[str, Any]]],
    summarised: dict[tuple[str, str], int],
    out: Fidelity,
) -> SectionCheck | None:
    kind = _document_kind(key)
    text = str(messages[-1].get("content") or "")
    if kind is None:
        out.skipped["unknown_section"] += 1
        return None
    if text.startswith(_REVISION_OPENING):
        out.skipped["revision"] += 1
        return None
    versions = _versions(records[client])
    known = tuple(str(v["email"]) for v in versions if v.get("email"))
    if key == "client_summary":
        return check_client_summary(messages, summaries.get(client, {}), known=known)
    if key == "thread_summary":
        thread_id = next(iter(_THREAD_LINE.findall(text)), None)
        thread = (threads or {}).get(client, {}).get(thread_id or "")
        if thread is None:
            out.skipped["unknown_thread"] += 1
            return None
        since = summarised.get((client, thread_id or ""), 0)
        return check_thread_summary(messages, thread, since_seq=since, known=known)
    return _best([check_section(messages, v, key, kind=kind, earlier=earlier.get(client, {})) for v in versions])


def _remember(
    key: str,
    messages: Sequence[Mapping[str, Any]],
    client: str,
    content: dict[str, Any],
    earlier: dict[str, dict[str, dict[str, Any]]],
    summaries: dict[str, dict[str, dict[str, Any]]],
    summarised: dict[tuple[str, str], int],
) -> None:
    """Keep what later checks need from a valid answer: a thread's latest summary (and how far
    it reached), an earlier month's decisions and KPIs."""
    if key == "thread_summary":
        text = str(messages[-1].get("content") or "")
        if thread_id := next(iter(_THREAD_LINE.findall(text)), None):
            summaries[client][thread_id] = content
            if seqs := shown_seqs(messages):
                summarised[(client, thread_id)] = seqs[-1]
    elif _document_kind(key) is DocumentKind.DELIVERABLE and key in _DIGEST_KEYS:
        earlier[client][key] = content


_DIGEST_KEYS = frozenset(digest_section_keys(deliverables.LAST_MONTH))
