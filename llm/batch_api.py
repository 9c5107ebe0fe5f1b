"""The OpenAI Batch API on the official client: upload a JSONL file of chat requests, create a
batch, follow it, read its output. Half the price of direct calls, answered within 24 hours.

Errors are mapped like direct calls (``llm.errors``): Temporal decides what to retry.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Final

import openai
from openai.types import Batch

from llm.client import LLMClient
from llm.errors import BATCH_NOT_FOUND, LLMError, map_openai_error

CHAT_ENDPOINT: Final = "/v1/chat/completions"
COMPLETION_WINDOW: Final = "24h"
# Terminal states of a batch (OpenAI's lifecycle); anything else is still moving.
TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
# OpenAI's limit of requests per batch.
MAX_LINES = 50_000


@dataclass(frozen=True)
class BatchLine:
    """One request of a batch: ``custom_id`` comes back with its answer."""

    custom_id: str
    body: dict[str, Any]

    def jsonl(self) -> str:
        return json.dumps(
            {"custom_id": self.custom_id, "method": "POST", "url": CHAT_ENDPOINT, "body": self.body},
            separators=(",", ":"),
            ensure_ascii=False,
        )


def build_jsonl(lines: list[BatchLine]) -> bytes:
    """The batch input file: one request per line, ids unique (the API refuses duplicates)."""
    if len(lines) > MAX_LINES:
        raise ValueError(
            f"{len(lines):,} requests exceed the Batch API's {MAX_LINES:,} per batch; regenerate fewer clients"
        )
    seen: set[str] = set()
    for line in lines:
        if line.custom_id in seen:
            raise ValueError(f"duplicate custom_id {line.custom_id!r} in a batch")
        seen.add(line.custom_id)
    return "".join(line.jsonl() + "\n" for line in lines).encode()


@dataclass(frozen=True)
class BatchStatus:
    id: str
    status: str
    input_file_id: str
    output_file_id: str | None = None
    error_file_id: str | None = None
    total: int = 0
    completed: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    @classmethod
    def of(cls, batch: Batch) -> BatchStatus:
        counts = batch.request_counts
        errors = [f"{e.code}: {e.message}" for e in (batch.errors.data or [])] if batch.errors else []
        return cls(
            id=batch.id,
            status=batch.status,
            input_file_id=batch.input_file_id,
            output_file_id=batch.output_file_id,
            error_file_id=batch.error_file_id,
            total=counts.total if counts else 0,
            completed=counts.completed if counts else 0,
            failed=counts.failed if counts else 0,
            errors=errors,
            metadata=dict(batch.metadata or {}),
        )


@dataclass(frozen=True)
class BatchResult:
    """One line of a batch's output or error file."""

    custom_id: str
    status_code: int | None
    body: dict[str, Any] | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.status_code == 200 and self.body is not None and self.error is None


def parse_results(text: str) -> list[BatchResult]:
    """Lines of an output or error file; a line that is not JSON is skipped (its request then
    counts as unanswered and goes the direct way)."""
    out = []
    for raw in text.splitlines():
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
        except ValueError:
            continue
        response = line.get("response") or {}
        error = line.get("error")
        body = response.get("body")
        status = response.get("status_code")
        if error is None and status != 200 and isinstance(body, dict) and isinstance(body.get("error"), dict):
            error = body["error"]
        message: str | None = None
        if error is not None:
            if isinstance(error, dict):
                code, detail = error.get("code"), error.get("message")
                message = f"{code}: {detail}" if code else str(detail)
            else:
                message = str(error)
        out.append(BatchResult(str(line.get("custom_id")), status, body if status == 200 else None, message))
    return out


def _mapped(err: openai.OpenAIError, llm: LLMClient, what: str) -> LLMError:
    if isinstance(err, openai.NotFoundError):
        return LLMError(
            BATCH_NOT_FOUND,
            f"{what} not found at {llm.endpoint} (404); an endpoint without the Batch API needs "
            "WAVELAUNCH_BATCH_API=false",
            retryable=False,
        )
    return map_openai_error(err, model="(batch)", endpoint=llm.endpoint)


async def upload(llm: LLMClient, jsonl: bytes, filename: str) -> str:
    """Upload a batch input file; its file id."""
    try:
        created = await llm.openai.files.create(file=(filename, jsonl, "application/jsonl"), purpose="batch")
    except openai.OpenAIError as err:
        raise _mapped(err, llm, "the files endpoint") from err
    return created.id


async def create(llm: LLMClient, input_file_id: str, metadata: dict[str, str]) -> BatchStatus:
    """A batch of chat completions over an uploaded file, answered within 24 hours."""
    try:
        batch = await llm.openai.batches.create(
            input_file_id=input_file_id,
            endpoint=CHAT_ENDPOINT,
            completion_window=COMPLETION_WINDOW,
            metadata=metadata,
        )
    except openai.OpenAIError as err:
        raise _mapped(err, llm, "the batches endpoint") from err
    return BatchStatus.of(batch)


async def retrieve(llm: LLMClient, batch_id: str) -> BatchStatus:
    try:
        return BatchStatus.of(await llm.openai.batches.retrieve(batch_id))
    except openai.OpenAIError as err:
        raise _mapped(err, llm, f"batch {batch_id}") from err


async def find(llm: LLMClient, key: str, value: str, *, limit: int = 100) -> BatchStatus | None:
    """The most recent batch whose metadata has ``key: value`` (a created batch whose id was not
    recorded before a crash), among the last ``limit``; None when there is none."""
    try:
        page = await llm.openai.batches.list(limit=limit)
    except openai.OpenAIError as err:
        raise _mapped(err, llm, "the batches endpoint") from err
    for batch in page.data:
        if (batch.metadata or {}).get(key) == value:
            return BatchStatus.of(batch)
    return None


async def content(llm: LLMClient, file_id: str) -> str:
    """A file's text (a batch's output or error file)."""
    try:
        response = await llm.openai.files.content(file_id)
    except openai.OpenAIError as err:
        raise _mapped(err, llm, f"file {file_id}") from err
    return response.text


async def cancel(llm: LLMClient, batch_id: str) -> BatchStatus:
    try:
        return BatchStatus.of(await llm.openai.batches.cancel(batch_id))
    except openai.OpenAIError as err:
        raise _mapped(err, llm, f"batch {batch_id}") from err
