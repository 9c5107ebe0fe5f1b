"""Process plumbing shared by the parts of the stack: ports, spawning, liveness and stopping.

Servers run in their own session so a Ctrl-C in the terminal that started them does not kill
them, and so stopping one can signal its whole process group.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import signal
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psutil

from stack.errors import PortInUse, StartupFailed

LOOPBACK = "127.0.0.1"

# Popen objects of the servers this interpreter spawned, kept so they are reaped on exit instead
# of lingering as zombies (and so the GC does not warn that they are still running).
_children: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class ProcessHandle:
    """A server process we started: its pid, its start time (guards against pid reuse), its log."""

    pid: int
    create_time: float
    log_path: Path


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    """Return True when nothing listens on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # SO_REUSEADDR as the servers themselves set it: a TIME_WAIT leftover is not "in use".
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise
    return True


def ensure_port_free(port: int, *, purpose: str, setting: str, host: str = LOOPBACK) -> None:
    """Raise :class:`PortInUse` naming the port, its holder if known, and the setting to change."""
    if port_is_free(port, host):
        return
    holder = _port_holder(port)
    raise PortInUse(
        f"Port {port} on {host} ({purpose}) is already in use{holder}. Stop that process, or pick "
        f"another port with {setting}=<port>."
    )


def _port_holder(port: int) -> str:
    # Best effort: listing sockets of other users needs privileges on some systems.
    try:
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
                if conn.pid is None:
                    return ""
                try:
                    return f" by pid {conn.pid} ({psutil.Process(conn.pid).name()})"
                except psutil.Error:
                    return f" by pid {conn.pid}"
    except (psutil.Error, OSError):
        pass
    return ""


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port that is free right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def spawn(argv: Sequence[str | os.PathLike[str]], log_path: Path) -> ProcessHandle:
    """Start ``argv`` detached in its own session, appending stdout and stderr to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    args = [os.fspath(arg) for arg in argv]
    with log_path.open("ab") as log:
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        log.write(f"\n=== {stamp} starting: {' '.join(args)}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    _children[proc.pid] = proc
    try:
        create_time = psutil.Process(proc.pid).create_time()
    except psutil.NoSuchProcess:
        create_time = 0.0  # died at once; is_alive() will say so and the caller reads the log
    return ProcessHandle(pid=proc.pid, create_time=create_time, log_path=log_path)


def is_alive(pid: int | None, create_time: float | None = None) -> bool:
    """Return True when ``pid`` runs, is not a zombie, and (if given) started at ``create_time``."""
    if not pid:
        return False
    child = _children.get(pid)
    if child is not None and child.poll() is not None:
        return False  # reaped; the entry stays so exit_code() can report it
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        # A recycled pid belongs to a process that started later than the one we recorded.
        return not create_time or abs(proc.create_time() - create_time) < 1.0
    except psutil.Error:
        return False


def exit_code(pid: int) -> int | None:
    """Return the exit code of a child we spawned once it has exited, else None."""
    child = _children.get(pid)
    return None if child is None else child.poll()


def terminate(pid: int, create_time: float | None = None, *, timeout: float = 15.0) -> bool:
    """Stop a process (and its group when it leads one): SIGTERM, then SIGKILL after ``timeout``.

    Returns True when a live process was stopped, False when it was already gone.
    """
    if not is_alive(pid, create_time):
        _children.pop(pid, None)
        return False
    try:
        proc = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return False
    _signal(pid, signal.SIGTERM)
    if not _wait_gone(proc, timeout):
        _signal(pid, signal.SIGKILL)
        _wait_gone(proc, 5.0)
    child = _children.pop(pid, None)
    if child is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=1.0)
    return True


def _signal(pid: int, sig: signal.Signals) -> None:
    # Our servers lead their own session, so the group id equals the pid: signal the group to
    # take any helper processes down with them; otherwise signal just the process.
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _wait_gone(proc: psutil.Process, timeout: float) -> bool:
    try:
        proc.wait(timeout=timeout)
    except psutil.TimeoutExpired:
        return False
    except psutil.NoSuchProcess:
        pass
    return True


def log_tail(path: Path, lines: int = 25) -> str:
    """Return the last ``lines`` lines of a log file (empty when it does not exist)."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 64_000))
            text = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


async def wait_ready(
    handle: ProcessHandle,
    probe: Callable[[], Awaitable[bool]],
    *,
    what: str,
    limit_seconds: float,
    interval: float = 0.25,
) -> None:
    """Poll ``probe`` until it returns True; fail early with the log tail if the process exits.

    Raises :class:`StartupFailed` when the process dies or ``limit_seconds`` pass.
    """
    deadline = time.monotonic() + limit_seconds
    while True:
        if not is_alive(handle.pid, handle.create_time):
            code = exit_code(handle.pid)
            status = f"exited with code {code}" if code is not None else "exited"
            raise StartupFailed(
                f"{what} {status} while starting. Last lines of {handle.log_path}:\n{log_tail(handle.log_path)}"
            )
        if await probe():
            return
        if time.monotonic() >= deadline:
            raise StartupFailed(
                f"{what} did not answer within {limit_seconds:.0f} s. Last lines of "
                f"{handle.log_path}:\n{log_tail(handle.log_path)}"
            )
        await asyncio.sleep(interval)
