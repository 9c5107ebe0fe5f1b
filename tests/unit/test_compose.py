"""docker-compose.yml and the Dockerfile, checked by structure: CI has no Docker to run them.

Each check is something an edit elsewhere can silently break: a renamed service or search
attribute, an environment variable the settings class no longer reads, a one-shot job that never
"completes". When a ``docker compose`` (v2) binary is present, ``docker compose config`` also
validates the file against the Compose specification; it needs no Docker daemon.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic import AliasChoices

from service.settings import Settings
from workflows.search_attributes import REGISTRATION

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"

APP_SERVICES = ("worker", "api")
ADMIN_JOB = "temporal-admin-tools"
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}
# Variables compose sets for code that is not written yet. Once Settings reads one of them, it is
# checked like every other name.
PENDING_SETTINGS: set[str] = set()


# -- helpers -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def dependencies(service: dict[str, Any]) -> dict[str, str]:
    """``depends_on`` in either form, as name -> condition."""
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {name: "service_started" for name in deps}
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def environment(service: dict[str, Any]) -> dict[str, str | None]:
    """``environment`` in either form, as name -> value (None: passed through from the host)."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = (item.split("=", 1) if "=" in item else (item, None) for item in env)
        return {name: value for name, value in pairs}
    return {name: None if value is None else str(value) for name, value in env.items()}


def script(service: dict[str, Any]) -> str:
    command = service.get("command") or ""
    return "\n".join(command) if isinstance(command, list) else command


def settings_env_names() -> set[str]:
    """Every environment variable name that :class:`Settings` reads (case-insensitively)."""
    prefix = Settings.model_config.get("env_prefix", "")
    names: set[str] = set()
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names |= {choice for choice in alias.choices if isinstance(choice, str)}
        elif isinstance(alias, str):
            names.add(alias)
        else:
            names.add(f"{prefix}{name}")
    return {name.upper() for name in names}


def final_stage() -> list[tuple[str, str]]:
    """The Dockerfile's last stage as (INSTRUCTION, arguments), continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


def exec_form(stage: list[tuple[str, str]], keyword: str) -> list[str]:
    values = [rest for key, rest in stage if key == keyword]
    assert values, f"the final stage of the Dockerfile has no {keyword}"
    return json.loads(values[-1])  # the last one wins, and only the exec (JSON) form is wanted


# -- docker-compose.yml --------------------------------------------------------------------
def test_every_dependency_exists_with_a_valid_condition(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for dependency, condition in dependencies(service).items():
            assert dependency in services, f"{name} depends on {dependency!r}, which is not a service"
            assert condition in CONDITIONS, f"{name} -> {dependency}: unknown condition {condition!r}"


def test_waited_for_services_can_satisfy_the_wait(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for dependency, condition in dependencies(service).items():
            target = services.get(dependency)
            if target is None:
                continue  # reported by the test above
            if condition == "service_healthy":
                healthcheck = target.get("healthcheck") or {}
                assert healthcheck.get("test") and not healthcheck.get("disable"), (
                    f"{name} waits for {dependency} to be healthy, but it has no healthcheck"
                )
            if condition == "service_completed_successfully":
                # A job that is restarted after it exits never stays "completed".
                restart = str(target.get("restart", "no"))
                assert restart == "no" or restart.startswith("on-failure"), (
                    f"{name} waits for {dependency} to complete, but it restarts: {restart}"
                )


def test_postgres_and_temporal_have_healthchecks(services: dict[str, dict[str, Any]]) -> None:
    for name in ("postgres", "temporal"):
        assert (services[name].get("healthcheck") or {}).get("test"), f"{name} has no healthcheck"


def test_postgres_creates_the_vector_extension(compose: dict[str, Any]) -> None:
    postgres = compose["services"]["postgres"]
    assert "pgvector" in postgres["image"], "the image must ship the pgvector extension"
    init_scripts = [
        compose["configs"][entry["source"]].get("content", "")
        for entry in postgres.get("configs", [])
        if entry["target"].startswith("/docker-entrypoint-initdb.d/")
    ]
    assert any("CREATE EXTENSION IF NOT EXISTS vector" in text for text in init_scripts)


def test_app_services_reach_temporal_postgres_and_openai(services: dict[str, dict[str, Any]]) -> None:
    postgres_db = environment(services["postgres"])["POSTGRES_DB"]
    for name in APP_SERVICES:
        env = environment(services[name])
        for variable in ("TEMPORAL_ADDRESS", "DATABASE_URL", "OPENAI_API_KEY"):
            assert env.get(variable), f"{name} does not set {variable}"

        host, _, port = env["TEMPORAL_ADDRESS"].partition(":")
        assert host == "temporal" and port == "7233", f"{name}: TEMPORAL_ADDRESS={env['TEMPORAL_ADDRESS']}"

        url = urlsplit(env["DATABASE_URL"])
        assert url.scheme in ("postgresql", "postgres"), f"{name}: DATABASE_URL scheme {url.scheme!r}"
        assert url.hostname == "postgres", f"{name}: DATABASE_URL points at {url.hostname!r}"
        assert url.path.lstrip("/") == postgres_db, f"{name}: database {url.path!r} is not {postgres_db!r}"

        # The key comes from the host and is required, never written into the file.
        assert env["OPENAI_API_KEY"].startswith("${OPENAI_API_KEY:?"), f"{name}: OPENAI_API_KEY"

        deps = dependencies(services[name])
        assert deps.get("postgres") == "service_healthy", name
        assert deps.get("temporal") == "service_healthy", name
        assert deps.get(ADMIN_JOB) == "service_completed_successfully", name


def test_app_environment_uses_names_the_settings_read(services: dict[str, dict[str, Any]]) -> None:
    known = settings_env_names() | PENDING_SETTINGS
    for name in APP_SERVICES:
        unknown = {variable for variable in environment(services[name]) if variable.upper() not in known}
        assert not unknown, f"{name} sets variables that service.settings does not read: {unknown}"


def test_admin_job_registers_exactly_the_search_attributes_in_code(
    services: dict[str, dict[str, Any]],
) -> None:
    admin = services[ADMIN_JOB]
    text = script(admin)
    assert "temporal operator search-attribute create" in text
    registered = re.findall(r"^\s*register\s+(\S+)\s+(\S+)\s*$", text, flags=re.MULTILINE)
    assert len(registered) == len(dict(registered)), f"an attribute is registered twice: {registered}"
    assert dict(registered) == REGISTRATION

    # ... on the namespace and cluster the services use.
    admin_env, worker_env = environment(admin), environment(services["worker"])
    assert admin_env["TEMPORAL_NAMESPACE"] == worker_env["TEMPORAL_NAMESPACE"]
    assert admin_env["TEMPORAL_ADDRESS"] == worker_env["TEMPORAL_ADDRESS"]


def test_api_healthcheck_probes_the_port_it_serves(services: dict[str, dict[str, Any]]) -> None:
    api = services["api"]
    command = api["command"]
    assert command[0] == "api"
    port = command[command.index("--port") + 1]
    probe = " ".join(api["healthcheck"]["test"])
    assert f":{port}/healthz" in probe
    assert any(str(mapping).endswith(f":{port}") for mapping in api["ports"]), api["ports"]


def test_api_publishes_its_port_and_requires_a_token(services: dict[str, dict[str, Any]]) -> None:
    """The api listens on 0.0.0.0 in its container, where it refuses to start without a token."""
    api = services["api"]
    command = api["command"]
    assert command[command.index("--host") + 1] == "0.0.0.0"
    token = environment(api)["WAVELAUNCH_API_TOKEN"]
    assert token is not None and token.startswith("${WAVELAUNCH_API_TOKEN:?"), "the token comes from the host, required"
    port = command[command.index("--port") + 1]
    assert any(str(mapping).endswith(f":{port}") for mapping in api["ports"])


def test_api_reaches_the_workers_own_metrics(services: dict[str, dict[str, Any]]) -> None:
    worker_env, api_env = environment(services["worker"]), environment(services["api"])
    port = worker_env["WAVELAUNCH_WORKER_METRICS_PORT"]
    assert worker_env["WAVELAUNCH_WORKER_METRICS_HOST"] == "0.0.0.0"  # reachable from the api container
    assert api_env["WAVELAUNCH_WORKER_METRICS_HOST"] == "worker"
    assert api_env["WAVELAUNCH_WORKER_METRICS_PORT"] == port
    assert port in [str(p) for p in services["worker"].get("expose", [])]


def test_compose_config_is_valid() -> None:
    """``docker compose config`` validates the file (no daemon needed); skipped without it."""
    candidates = [["docker", "compose"], ["docker-compose"]]
    binary = None
    for candidate in candidates:
        if not shutil.which(candidate[0]):
            continue
        probe = subprocess.run([*candidate, "version", "--short"], capture_output=True, text=True)
        if probe.returncode == 0 and probe.stdout.strip().lstrip("v").startswith("2"):
            binary = candidate
            break
    if binary is None:
        pytest.skip("no Docker Compose v2 here")
    env = {**os.environ, "OPENAI_API_KEY": "sk-compose-config-check", "WAVELAUNCH_API_TOKEN": "config-check"}
    result = subprocess.run(
        [*binary, "-f", str(COMPOSE_FILE), "--profile", "api", "config", "--quiet"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr


# -- Dockerfile ----------------------------------------------------------------------------
def test_dockerfile_runs_the_wavelaunch_cli_as_a_worker_by_default() -> None:
    stage = final_stage()
    assert exec_form(stage, "ENTRYPOINT") == ["wavelaunch"]
    assert exec_form(stage, "CMD") == ["worker"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert "wavelaunch" in scripts


def test_dockerfile_runs_as_a_non_root_user() -> None:
    users = [rest for keyword, rest in final_stage() if keyword == "USER"]
    assert users, "the final stage has no USER: it would run as root"
    assert users[-1].split(":")[0] not in ("root", "0")


def test_dockerfile_installs_the_lock_without_dev_or_local_extras() -> None:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    syncs = [line for line in text.splitlines() if "uv sync" in line and not line.lstrip().startswith("#")]
    assert syncs, "the Dockerfile does not run uv sync"
    for line in syncs:
        assert "--locked" in line and "--no-dev" in line, line
        assert "--all-extras" not in line and "--extra" not in line, line


def test_dockerfile_gives_uv_every_workspace_member_before_the_dependency_layer() -> None:
    """uv reads every workspace member's pyproject.toml to check the lock, even with --no-dev;
    the dependency layer only sees what is mounted, and the context must keep those files."""
    members = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["uv"]["workspace"]["members"]
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    [deps_layer] = [line for line in text.splitlines() if "uv sync" in line and "--no-install-project" in line]
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    for member in members:
        assert f"source={member}/pyproject.toml,target={member}/pyproject.toml" in deps_layer, member
        hidden = any(line.rstrip("/*") == member for line in ignored)
        assert not hidden or f"!{member}/pyproject.toml" in ignored, member
