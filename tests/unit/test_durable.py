"""Writes after a bought answer: retried while Postgres is away, never for other errors."""

from __future__ import annotations

import asyncpg
import pytest

from activities import durable
from activities.durable import persist


@pytest.fixture(autouse=True)
def _fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(durable, "FIRST_WAIT_SECONDS", 0.001)
    monkeypatch.setattr(durable, "MAX_WAIT_SECONDS", 0.01)


def flaky(errors: list[BaseException]):
    calls = []

    async def write() -> str:
        calls.append(1)
        if errors:
            raise errors.pop(0)
        return "written"

    return write, calls


async def test_an_outage_is_waited_out() -> None:
    write, calls = flaky(
        [ConnectionRefusedError(), asyncpg.CannotConnectNowError("starting up"), asyncpg.InterfaceError("closed")]
    )
    assert await persist(write, "row") == "written"
    assert len(calls) == 4


async def test_other_errors_fail_at_once() -> None:
    write, calls = flaky([asyncpg.UniqueViolationError("dup")])
    with pytest.raises(asyncpg.UniqueViolationError):
        await persist(write, "row")
    assert len(calls) == 1


async def test_patience_runs_out() -> None:
    write, calls = flaky([OSError("down")] * 10_000)
    with pytest.raises(OSError):
        await persist(write, "row", within=0.2)
    assert len(calls) > 1


def test_patience_outside_an_activity() -> None:
    assert durable.patience() == durable.DEFAULT_PATIENCE_SECONDS
