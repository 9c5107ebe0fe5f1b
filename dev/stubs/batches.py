"""The stub's OpenAI Batch API, in memory: files and batches of chat completions.

``POST /v1/files`` (multipart, ``purpose=batch``), ``GET /v1/files/{id}/content``,
``POST /v1/batches``, ``GET /v1/batches``, ``GET /v1/batches/{id}``,
``POST /v1/batches/{id}/cancel``. A batch moves validating -> in_progress -> completed as it is
polled (``polls`` retrievals, or ``seconds`` after creation, whichever comes first); its output
file holds one line per request, answered by the same code as ``/v1/chat/completions`` (so sizes
and token counts match). Faults (``POST /_stub/batch_faults``): a failed batch, an expired batch,
a line answered with an error, a line whose answer is not valid JSON.

This module does not import ``stubs.llm_server``: the stub hands it its answer function.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

_JSON = dict[str, Any]
# body, corrupt_json -> (status, response body): the stub's chat answer without HTTP.
Answer = Callable[[Any, bool], tuple[int, _JSON]]
BatchFaultKind = Literal["fail", "expire", "line_error", "line_invalid_json"]
_BATCH_KINDS = frozenset({"fail", "expire"})
_CHAT_ENDPOINT = "/v1/chat/completions"


class BatchRequestError(ValueError):
    """A request the real API would refuse with 400."""


@dataclass
class BatchFault:
    kind: BatchFaultKind
    times: int = 1
    section: str | None = None
    custom_id: str | None = None

    def matches_line(self, custom_id: str, section: str | None) -> bool:
        return (self.section is None or self.section == section) and (
            self.custom_id is None or self.custom_id == custom_id
        )


def parse_batch_fault(raw: Any) -> BatchFault:
    """A fault rule from its JSON form ``{"kind", "times", "match": {"section", "custom_id"}}``."""
    if not isinstance(raw, dict) or set(raw) - {"kind", "times", "match"}:
        raise BatchRequestError("a batch fault is an object with kind, times and match")
    kind = raw.get("kind")
    if kind not in ("fail", "expire", "line_error", "line_invalid_json"):
        raise BatchRequestError(
            f"batch fault 'kind' must be fail, expire, line_error or line_invalid_json, got {kind!r}"
        )
    match = raw.get("match") or {}
    if not isinstance(match, dict) or set(match) - {"section", "custom_id"}:
        raise BatchRequestError("batch fault 'match' may only have 'section' and 'custom_id'")
    times = raw.get("times", 1)
    if not isinstance(times, int) or isinstance(times, bool) or times < 1:
        raise BatchRequestError("batch fault 'times' must be a positive integer")
    return BatchFault(kind, times, match.get("section"), match.get("custom_id"))


@dataclass
class _File:
    id: str
    filename: str
    purpose: str
    data: bytes
    created_at: int

    def wire(self) -> _JSON:
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.data),
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
        }


@dataclass
class _Batch:
    id: str
    input_file_id: str
    metadata: dict[str, str]
    lines: list[_JSON]
    created_at: float
    status: str = "validating"
    polls: int = 0
    # A batch-level fault decided at creation: "fail" or "expire".
    fate: str | None = None
    line_faults: dict[str, str] = field(default_factory=dict)
    output_file_id: str | None = None
    error_file_id: str | None = None
    completed: int = 0
    failed: int = 0
    errors: list[_JSON] = field(default_factory=list)
    stamps: dict[str, int] = field(default_factory=dict)

    def wire(self) -> _JSON:
        return {
            "id": self.id,
            "object": "batch",
            "endpoint": _CHAT_ENDPOINT,
            "errors": {"object": "list", "data": self.errors} if self.errors else None,
            "input_file_id": self.input_file_id,
            "completion_window": "24h",
            "status": self.status,
            "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id,
            "created_at": int(self.created_at),
            "expires_at": int(self.created_at) + 86400,
            **{f"{name}_at": at for name, at in self.stamps.items()},
            "request_counts": {"total": len(self.lines), "completed": self.completed, "failed": self.failed},
            "metadata": self.metadata,
        }


def _section_of(body: Any) -> str | None:
    """The section key a line asks for, from its schema name (``market_analysis_v1``)."""
    try:
        name = body["response_format"]["json_schema"]["name"]
    except (KeyError, TypeError):
        return None
    key, _, version = name.rpartition("_v")
    return key if key and version.isdigit() else name


class BatchStore:
    """Files and batches of one stub instance; thread-safe."""

    def __init__(self, *, polls: int = 2, seconds: float | None = None):
        self.polls = polls
        self.seconds = seconds
        self.answer: Answer | None = None
        self._lock = threading.Lock()
        self._files: dict[str, _File] = {}
        self._batches: dict[str, _Batch] = {}
        self._faults: list[BatchFault] = []
        self._sequence = 0

    def configure(self, *, polls: int | None = None, seconds: float | None = None) -> None:
        """How many retrievals (or seconds) a batch takes to complete."""
        with self._lock:
            if polls is not None:
                self.polls = polls
            self.seconds = seconds

    def reset(self) -> None:
        with self._lock:
            self._files.clear()
            self._batches.clear()
            self._faults.clear()

    def add_faults(self, faults: list[BatchFault]) -> None:
        with self._lock:
            self._faults.extend(faults)

    def _next_id(self, prefix: str) -> str:
        self._sequence += 1
        return f"{prefix}-stub{self._sequence:08d}"

    def _take(self, kinds: frozenset[str], custom_id: str = "", section: str | None = None) -> BatchFault | None:
        for fault in self._faults:
            if fault.kind in kinds and (fault.kind in _BATCH_KINDS or fault.matches_line(custom_id, section)):
                fault.times -= 1
                self._faults = [f for f in self._faults if f.times > 0]
                return fault
        return None

    # -- files -----------------------------------------------------------------------------
    def add_file(self, filename: str, purpose: str, data: bytes) -> _JSON:
        with self._lock:
            stored = _File(self._next_id("file"), filename, purpose, data, int(time.time()))
            self._files[stored.id] = stored
            return stored.wire()

    def file_data(self, file_id: str) -> bytes | None:
        with self._lock:
            found = self._files.get(file_id)
            return found.data if found else None

    # -- batches ---------------------------------------------------------------------------
    def create(self, body: Any) -> _JSON:
        if not isinstance(body, dict):
            raise BatchRequestError("the request body must be a JSON object")
        if body.get("endpoint") != _CHAT_ENDPOINT:
            raise BatchRequestError(f"the stub batches only {_CHAT_ENDPOINT}, got {body.get('endpoint')!r}")
        if body.get("completion_window") != "24h":
            raise BatchRequestError("'completion_window' must be '24h'")
        metadata = body.get("metadata") or {}
        with self._lock:
            source = self._files.get(str(body.get("input_file_id")))
            if source is None or source.purpose != "batch":
                raise BatchRequestError(f"no batch input file {body.get('input_file_id')!r}")
            batch = _Batch(self._next_id("batch"), source.id, dict(metadata), [], time.time())
            problems = self._read_lines(batch, source.data)
            if problems:
                batch.fate = "fail"
                batch.errors = [
                    {"code": "invalid_request", "message": p, "param": None, "line": None} for p in problems
                ]
            elif (fault := self._take(_BATCH_KINDS)) is not None:
                batch.fate = fault.kind
                if fault.kind == "fail":
                    batch.errors = [{"code": "injected", "message": "Injected fault: the batch failed.", "line": None}]
            for line in batch.lines:
                if (
                    fault := self._take(frozenset({"line_error", "line_invalid_json"}), *self._line_match(line))
                ) is not None:
                    batch.line_faults[line["custom_id"]] = fault.kind
            self._batches[batch.id] = batch
            return batch.wire()

    @staticmethod
    def _line_match(line: _JSON) -> tuple[str, str | None]:
        return line["custom_id"], _section_of(line.get("body"))

    @staticmethod
    def _read_lines(batch: _Batch, data: bytes) -> list[str]:
        problems, seen = [], set()
        for number, raw in enumerate(data.decode(errors="replace").splitlines(), start=1):
            if not raw.strip():
                continue
            try:
                line = json.loads(raw)
            except ValueError:
                problems.append(f"line {number} is not JSON")
                continue
            custom_id = line.get("custom_id") if isinstance(line, dict) else None
            if not isinstance(custom_id, str) or not custom_id:
                problems.append(f"line {number} has no custom_id")
            elif custom_id in seen:
                problems.append(f"line {number}: duplicate custom_id {custom_id!r}")
            elif line.get("method") != "POST" or line.get("url") != _CHAT_ENDPOINT:
                problems.append(f"line {number}: method/url must be POST {_CHAT_ENDPOINT}")
            else:
                seen.add(custom_id)
                batch.lines.append(line)
        if not batch.lines and not problems:
            problems.append("the input file has no requests")
        return problems

    def list(self) -> _JSON:
        with self._lock:
            data = [b.wire() for b in sorted(self._batches.values(), key=lambda b: b.id, reverse=True)]
        return {
            "object": "list",
            "data": data,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
            "has_more": False,
        }

    def retrieve(self, batch_id: str) -> _JSON | None:
        """The batch, one step further along: each retrieval is a poll."""
        with self._lock:
            batch = self._batches.get(batch_id)
            if batch is None:
                return None
            if batch.status not in ("completed", "failed", "expired", "cancelled"):
                batch.polls += 1
                self._advance(batch)
            return batch.wire()

    def cancel(self, batch_id: str) -> _JSON | None:
        with self._lock:
            batch = self._batches.get(batch_id)
            if batch is None:
                return None
            if batch.status in ("validating", "in_progress"):
                batch.status = "cancelling"
                batch.stamps["cancelling"] = int(time.time())
            return batch.wire()

    def _advance(self, batch: _Batch) -> None:
        now = int(time.time())
        if batch.status == "cancelling":
            self._finish(batch, "cancelled", answered=False)
        elif batch.status == "validating":
            if batch.fate == "fail":
                batch.status = "failed"
                batch.stamps["failed"] = now
            else:
                batch.status = "in_progress"
                batch.stamps["in_progress"] = now
        due = batch.polls >= self.polls or (self.seconds is not None and time.time() - batch.created_at >= self.seconds)
        if batch.status == "in_progress" and due:
            if batch.fate == "expire":
                self._finish(batch, "expired", answered=False)
            else:
                self._finish(batch, "completed", answered=True)

    def _finish(self, batch: _Batch, status: str, *, answered: bool) -> None:
        """Answer every line (or none: expired, cancelled), then write the output and error files."""
        assert self.answer is not None, "the stub sets BatchStore.answer"
        output, errors = [], []
        for line in batch.lines:
            custom_id = line["custom_id"]
            request_id = self._next_id("req")
            if not answered:
                code = "batch_expired" if status == "expired" else "batch_cancelled"
                message = f"This request could not be executed before the batch was {status}."
                errors.append(
                    {
                        "id": request_id,
                        "custom_id": custom_id,
                        "response": None,
                        "error": {"code": code, "message": message},
                    }
                )
                continue
            fault = batch.line_faults.get(custom_id)
            if fault == "line_error":
                status_code, body = (
                    500,
                    {
                        "error": {
                            "message": "Injected fault: this request failed.",
                            "type": "server_error",
                            "param": None,
                            "code": None,
                        }
                    },
                )
            else:
                status_code, body = self.answer(line.get("body"), fault == "line_invalid_json")
            entry = {
                "id": request_id,
                "custom_id": custom_id,
                "response": {"status_code": status_code, "request_id": request_id, "body": body},
                "error": None,
            }
            (output if status_code == 200 else errors).append(entry)
        batch.completed, batch.failed = len(output), len(errors)
        if output:
            batch.output_file_id = self._store_jsonl(f"{batch.id}_output.jsonl", output)
        if errors:
            batch.error_file_id = self._store_jsonl(f"{batch.id}_error.jsonl", errors)
        batch.status = status
        batch.stamps[status] = int(time.time())

    def _store_jsonl(self, filename: str, lines: list[_JSON]) -> str:
        data = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode()
        stored = _File(self._next_id("file"), filename, "batch_output", data, int(time.time()))
        self._files[stored.id] = stored
        return stored.id

    def summary(self) -> list[_JSON]:
        """Every batch: id, status, lines, polls (for tests and ``GET /_stub/batches``)."""
        with self._lock:
            return [
                {"id": b.id, "status": b.status, "lines": len(b.lines), "polls": b.polls, "metadata": b.metadata}
                for b in self._batches.values()
            ]


# -- HTTP ------------------------------------------------------------------------------------
def _error(status: int, message: str, code: str | None = None) -> JSONResponse:
    kind = "invalid_request_error" if status < 500 else "server_error"
    return JSONResponse({"error": {"message": message, "type": kind, "param": None, "code": code}}, status_code=status)


def _guard(request: Request) -> tuple[Any, JSONResponse | None]:
    stub = request.app.state.stub
    if not stub.authorized(request.headers.get("authorization")):
        return stub, _error(401, "Incorrect API key provided.", "invalid_api_key")
    return stub, None


async def create_file(request: Request) -> JSONResponse:
    stub, refused = _guard(request)
    if refused:
        return refused
    form = await request.form()
    upload, purpose = form.get("file"), form.get("purpose")
    if upload is None or isinstance(upload, str) or purpose != "batch":
        return _error(400, "a multipart 'file' and purpose=batch are required")
    return JSONResponse(stub.batches.add_file(upload.filename or "input.jsonl", "batch", await upload.read()))


async def file_content(request: Request) -> Response:
    stub, refused = _guard(request)
    if refused:
        return refused
    data = stub.batches.file_data(request.path_params["file_id"])
    if data is None:
        return _error(404, f"No such File object: {request.path_params['file_id']}")
    return Response(data, media_type="application/octet-stream")


async def batches(request: Request) -> JSONResponse:
    stub, refused = _guard(request)
    if refused:
        return refused
    if request.method == "GET":
        return JSONResponse(stub.batches.list())
    try:
        return JSONResponse(stub.batches.create(json.loads(await request.body())))
    except (ValueError, BatchRequestError) as err:
        return _error(400, str(err))


async def batch(request: Request) -> JSONResponse:
    stub, refused = _guard(request)
    if refused:
        return refused
    batch_id = request.path_params["batch_id"]
    found = stub.batches.retrieve(batch_id)
    return JSONResponse(found) if found else _error(404, f"No batch found with id '{batch_id}'.")


async def cancel_batch(request: Request) -> JSONResponse:
    stub, refused = _guard(request)
    if refused:
        return refused
    batch_id = request.path_params["batch_id"]
    found = stub.batches.cancel(batch_id)
    return JSONResponse(found) if found else _error(404, f"No batch found with id '{batch_id}'.")


async def control_batch_faults(request: Request) -> JSONResponse:
    """``POST /_stub/batch_faults``: a rule or a list of rules; ``GET /_stub/batches``: the batches."""
    store = request.app.state.stub.batches
    try:
        raw = json.loads(await request.body())
        store.add_faults([parse_batch_fault(r) for r in (raw if isinstance(raw, list) else [raw])])
    except (ValueError, BatchRequestError) as err:
        return _error(400, str(err))
    return JSONResponse({"added": True})


async def control_batches(request: Request) -> JSONResponse:
    return JSONResponse(request.app.state.stub.batches.summary())


ROUTES = [
    Route("/v1/files", create_file, methods=["POST"]),
    Route("/v1/files/{file_id}/content", file_content, methods=["GET"]),
    Route("/v1/batches", batches, methods=["GET", "POST"]),
    Route("/v1/batches/{batch_id}", batch, methods=["GET"]),
    Route("/v1/batches/{batch_id}/cancel", cancel_batch, methods=["POST"]),
    Route("/_stub/batch_faults", control_batch_faults, methods=["POST"]),
    Route("/_stub/batches", control_batches, methods=["GET"]),
]
