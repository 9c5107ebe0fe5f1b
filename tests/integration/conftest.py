"""An embedded Postgres of their own, one per test module, for the storage tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from stack import postgres
from storage import db


@pytest.fixture(scope="module")
async def database_url(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    pgdata: Path = tmp_path_factory.mktemp("postgres") / "pgdata"
    server = await postgres.start(pgdata)
    try:
        yield server.database_url
    finally:
        postgres.stop(pgdata)


@pytest.fixture(scope="module")
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    # Room for the concurrency tests' many reservations and cache writers at once.
    pool = await db.connect(database_url, min_size=2, max_size=20)
    yield pool
    await pool.close()
