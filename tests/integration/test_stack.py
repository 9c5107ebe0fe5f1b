"""The embedded stack for real: embedded Postgres and the Temporal dev server, started from wheels.

The LLM part is external here (a dummy OPENAI_API_KEY): llama.cpp is an optional extra that CI
does not install.
"""

from __future__ import annotations

import json
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.client import Client

from service.settings import Settings
from stack import (
    NoLLMConfigured,
    PortInUse,
    down,
    running_stack,
    status,
    up,
)
from stack import local_llm as local_llm_module
from stack import postgres as postgres_module
from stack.manager import redact
from stack.processes import free_port, is_alive, port_is_free
from workflows.search_attributes import REGISTRATION

pytestmark = pytest.mark.timeout(120)

# Variables that would otherwise leak from the developer's shell into Settings.
_ENV = (
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "DATABASE_URL",
    "TEMPORAL_ADDRESS",
    "TEMPORAL_NAMESPACE",
    "TEMPORAL_API_KEY",
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _ENV:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(f"WAVELAUNCH_{name}", raising=False)


def make_settings(state_dir: Path, **overrides: Any) -> Settings:
    """Settings on free ports under ``state_dir``; aliased fields go by their alias name."""
    values: dict[str, Any] = {
        "state_dir": state_dir,
        "temporal_port": free_port(),
        "temporal_ui_port": free_port(),
        "local_llm_port": free_port(),
        "OPENAI_API_KEY": "sk-dummy-not-used",
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    # Unix socket paths are limited to ~107 bytes; pytest's tmp_path can be long enough to push
    # the Postgres socket into a fallback dir, so keep the state dir short.
    path = Path(tempfile.mkdtemp(prefix="wl-stack-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def settings(short_tmp: Path) -> AsyncIterator[Settings]:
    settings = make_settings(short_tmp / "state")
    try:
        yield settings
    finally:
        # Never leave servers behind, whatever the test did.
        await down(settings)
        postgres_module.stop(settings.pgdata_dir)


def _record(settings: Settings) -> dict[str, Any]:
    return json.loads(settings.stack_file.read_text())


async def test_up_status_reuse_down(settings: Settings) -> None:
    endpoints = await up(settings)

    # Postgres: the wavelaunch database answers and has pgvector.
    conn = await asyncpg.connect(endpoints.database_url)
    try:
        assert await conn.fetchval("SELECT 1") == 1
        assert await conn.fetchval("SELECT current_database()") == "wavelaunch"
        assert await conn.fetchval("SELECT 1 FROM pg_extension WHERE extname = 'vector'") == 1
    finally:
        await conn.close()

    # Temporal: answers on loopback, with our search attributes registered.
    assert endpoints.temporal_address == f"127.0.0.1:{settings.temporal_port}"
    assert endpoints.web_ui_url == f"http://127.0.0.1:{settings.temporal_ui_port}"
    client = await Client.connect(endpoints.temporal_address, namespace=endpoints.namespace)
    listed = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=endpoints.namespace)
    )
    for name in REGISTRATION:
        assert name in listed.custom_attributes, name

    # The LLM is the configured remote endpoint; its key never reaches stack.json.
    assert endpoints.llm is not None and endpoints.llm.kind == "openai"
    assert endpoints.llm.api_key.get_secret_value() == "sk-dummy-not-used"
    assert "sk-dummy-not-used" not in settings.stack_file.read_text()

    rows = {row.part: row for row in status(settings)}
    assert rows["temporal"].state == "running" and rows["postgres"].state == "running"
    assert rows["llm"].state == "external"
    pids = {part: rows[part].pid for part in ("temporal", "postgres")}
    assert all(pids.values())

    # A second `up` reuses the running servers.
    again = await up(settings)
    assert again == endpoints
    assert {part: _record(settings)["parts"][part]["pid"] for part in pids} == pids

    stopped = await down(settings)
    assert set(stopped) == {"temporal", "postgres"}
    assert not settings.stack_file.exists()
    for pid in pids.values():
        assert not is_alive(pid), f"pid {pid} still running"
    rows = {row.part: row for row in status(settings)}
    assert rows["temporal"].state == "stopped" and rows["postgres"].state == "stopped"


async def test_running_stack_stops_only_what_it_started(settings: Settings) -> None:
    async with running_stack(settings) as endpoints:
        temporal_pid = _record(settings)["parts"]["temporal"]["pid"]
        # Nested: the stack is already up, so the inner block must leave it running.
        async with running_stack(settings) as inner:
            assert inner == endpoints
        assert is_alive(temporal_pid)
        assert postgres_module.running(settings.pgdata_dir) is not None
    assert not is_alive(temporal_pid)
    assert postgres_module.running(settings.pgdata_dir) is None
    assert not settings.stack_file.exists()


async def test_busy_port_is_reported_and_nothing_is_left_running(settings: Settings) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as blocker:
        blocker.bind(("127.0.0.1", settings.temporal_port))
        blocker.listen()
        with pytest.raises(PortInUse, match=str(settings.temporal_port)) as caught:
            await up(settings)
    assert "WAVELAUNCH_TEMPORAL_PORT" in str(caught.value)
    # Postgres started concurrently in that attempt and was stopped again.
    assert postgres_module.running(settings.pgdata_dir) is None
    assert not settings.stack_file.exists()


async def test_no_llm_configured(short_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local_llm_module, "available", lambda: False)
    settings = make_settings(short_tmp / "state", OPENAI_API_KEY=None)
    with pytest.raises(NoLLMConfigured) as caught:
        await up(settings)
    message = str(caught.value)
    assert "export OPENAI_API_KEY=" in message and "OPENAI_BASE_URL" in message
    assert "uv run --extra local" in message
    # It fails before starting anything.
    assert not settings.stack_file.exists()
    assert postgres_module.running(settings.pgdata_dir) is None
    assert port_is_free(settings.temporal_port)


async def test_external_parts_start_nothing(short_tmp: Path) -> None:
    settings = make_settings(
        short_tmp / "state",
        TEMPORAL_ADDRESS="temporal.example:7233",
        DATABASE_URL="postgresql://app:hunter2@db.example:5432/wavelaunch",
        OPENAI_BASE_URL="https://llm.example/v1",
    )
    endpoints = await up(settings)
    assert endpoints.temporal_address == "temporal.example:7233"
    assert endpoints.database_url == "postgresql://app:hunter2@db.example:5432/wavelaunch"
    assert endpoints.web_ui_url is None
    assert endpoints.llm is not None and endpoints.llm.base_url == "https://llm.example/v1"
    stored = settings.stack_file.read_text()
    assert "hunter2" not in stored and "sk-dummy" not in stored
    assert {row.state for row in status(settings)} == {"external"}
    assert await down(settings) == []


def test_redact_hides_passwords() -> None:
    assert redact("postgresql://app:s3cret@db:5432/x") == "postgresql://app:***@db:5432/x"
    assert redact("postgresql://postgres@/x?host=/tmp/p") == "postgresql://postgres@/x?host=/tmp/p"


@pytest.mark.skipif(not local_llm_module.available(), reason="needs `uv run --extra local`")
async def test_local_llm_answers_schema_constrained_json(short_tmp: Path) -> None:
    from openai import AsyncOpenAI

    settings = make_settings(short_tmp / "state", OPENAI_API_KEY=None)
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string", "maxLength": 40}, "year": {"type": "integer"}},
        "required": ["name", "year"],
        "additionalProperties": False,
    }
    async with running_stack(settings) as endpoints:
        llm = endpoints.llm
        assert llm is not None and llm.kind == "local" and llm.model_override == "gemma-3-270m"
        client = AsyncOpenAI(base_url=llm.base_url, api_key=llm.api_key.get_secret_value())
        # llama-cpp-python takes the schema as {"type": "json_object", "schema": ...}.
        response = await client.chat.completions.create(
            model=llm.model_override,
            messages=[{"role": "user", "content": "A fictional company and its founding year, as JSON."}],
            response_format={"type": "json_object", "schema": schema},  # type: ignore[typeddict-item]
            max_tokens=60,
        )
        await client.close()
        answer = json.loads(response.choices[0].message.content or "")
        assert set(answer) == {"name", "year"}
    assert not settings.stack_file.exists()
