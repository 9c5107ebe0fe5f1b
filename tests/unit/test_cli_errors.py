"""Bad input to the CLI: one line saying what is wrong and a non-zero exit, never a traceback.

Every case is refused before the CLI reaches Postgres or Temporal; the settings point at
addresses where nothing listens, so a case that slipped through fails instead of starting the
embedded stack.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from domain.limits import FILE_BYTES
from service.settings import get_settings
from tests.conftest import venv_binary
from tests.fuzzing import SAMPLE_RECORD, SAMPLE_THREADS
from wavelaunch import cli

NOWHERE = {"DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none", "TEMPORAL_ADDRESS": "127.0.0.1:9"}


@pytest.fixture
def run(monkeypatch, tmp_path):
    """The CLI in-process, as a user runs it (its process exit becomes a SystemExit here)."""
    for name, value in NOWHERE.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("WAVELAUNCH_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setattr(cli, "_exit", sys.exit)
    get_settings.cache_clear()
    runner = CliRunner()
    yield lambda *args: runner.invoke(cli.app, list(args))
    get_settings.cache_clear()


def files(tmp_path: Path) -> dict[str, Path]:
    made = {"missing": tmp_path / "missing.json", "directory": tmp_path / "a-directory"}
    made["directory"].mkdir()
    made["binary"] = tmp_path / "binary.json"
    made["binary"].write_bytes(bytes(range(256)) * 8)
    made["not JSON"] = tmp_path / "broken.json"
    made["not JSON"].write_text('{"id": "c1", ')
    made["too deep"] = tmp_path / "deep.json"
    made["too deep"].write_text("[" * 5_000 + "]" * 5_000)
    made["too large"] = tmp_path / "large.json"
    with made["too large"].open("wb") as f:
        f.truncate(FILE_BYTES + 1)  # sparse: nothing is written
    for name, change in {
        "an invalid field": {"email": "not-an-email"},
        "NUL in a name": {"fullName": "Maya\u0000Okafor"},
        "a 1 MB field": {"additionalInfo": "x" * 1_000_000},
    }.items():
        made[name] = tmp_path / f"{name.replace(' ', '-')}.json"
        made[name].write_text(json.dumps(SAMPLE_RECORD | change))
    return made


@pytest.mark.parametrize(
    "case, says",
    [
        ("missing", "no such file"),
        ("directory", "is a directory"),
        ("binary", "is not JSON: not UTF-8 text"),
        ("not JSON", "is not JSON: Expecting"),
        ("too deep", "nested more than 32 levels"),
        ("too large", f"at most {FILE_BYTES:,}"),
        ("an invalid field", "email: value is not a valid email address"),
        ("NUL in a name", "fullName: contains a control character (U+0000)"),
        ("a 1 MB field", "additionalInfo: Value error, at most 5,000 characters (got 1,000,000)"),
    ],
)
def test_clients_import_says_what_is_wrong_with_the_file(run, tmp_path, case, says):
    result = run("clients", "import", str(files(tmp_path)[case]))
    assert_one_line_error(result, says)


def test_a_bad_messages_file_is_refused_in_one_line(run, tmp_path):
    threads = json.loads(json.dumps(SAMPLE_THREADS))
    threads[0]["messages"][1]["text"] = "ok\u0000"
    path = tmp_path / "messages.json"
    path.write_text(json.dumps(threads))
    said = "0.messages.1.text: contains a control"
    assert_one_line_error(run("summary", "generate", "c1", "--messages", str(path)), said)
    assert_one_line_error(run("summary", "generate", "c1", "--messages", str(tmp_path)), "is a directory")


@pytest.mark.parametrize(
    "args, says",
    [
        (["plan", "generate", "c1", "--sections", ","], "--sections is empty"),
        (["plan", "generate", "c1", "--sections", " , ,"], "--sections is empty"),
        (["plan", "regenerate", "c1", "--fields", ","], "--fields is empty"),
        (["deliverable", "regenerate", "c1", "--month", "1", "--fields", ","], "--fields is empty"),
        (["plan", "generate", "Maya\u0001"], "client id 'Maya\\x01' is not a valid id"),
        (["plan", "show", "c" * 10_000], "(10,000 chars) is not a valid id"),
        (["summary", "generate", "c1", "--thread", "t\u0000"], "--thread"),
        (["usage", "report", "--client", "a b"], "--client 'a b' is not a valid id"),
        (["plan", "generate", "c1", "--by", "soon"], "'soon' is not a duration"),
        (["deliverable", "generate", "c1", "--month", "2", "--by", "90d"], "at most 31 days"),
        (["summary", "generate", "c1", "--by", "6h", "--urgency", "today"], "not both"),
        (["plan", "show", "c1", "--format", "pdf"], "--format must be md, json or docx"),
        (["summary", "show", "c1", "--format", "docx"], "--format must be md or json"),
        (["document", "approve", "c1", "--document", "m1_brand_architecture"], "give --month too"),
        (["document", "approve", "c1", "--month", "9"], "month"),
        (["document", "approve", "c1", "--month", "1", "--document", "nope"], "name one with --document"),
        (["document", "approve", "c1", "--by", "Ana\u0000"], "--by: "),
        (["document", "request-changes", "c1", "--note", "x" * 6_000], "--note: "),
        (["clients", "erase", "a b", "--yes"], "client id 'a b' is not a valid id"),
        (["clients", "erase-archived"], "give --days"),
        (["document", "edit", "c1", "--section", "market_analysis", "--file", "/nonexistent.json"], "nonexistent"),
    ],
)
def test_bad_arguments_are_refused_in_one_line(run, args, says):
    assert_one_line_error(run(*args), says)


def test_the_installed_command_answers_a_directory_in_one_line(tmp_path):
    """The real `wavelaunch` executable, in its own process."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "WAVELAUNCH_STATE_DIR": str(tmp_path)} | NOWHERE
    done = subprocess.run(
        [venv_binary("wavelaunch"), "clients", "import", str(tmp_path)], capture_output=True, text=True, env=env
    )
    assert done.returncode == 1
    assert done.stdout.strip() == f"error: {tmp_path}: is a directory, not a JSON file"
    assert "Traceback" not in done.stderr


def assert_one_line_error(result, says: str) -> None:  # type: ignore[no-untyped-def]
    out = result.output.strip()
    assert result.exit_code != 0, out
    assert "Traceback" not in out and result.exception is None or isinstance(result.exception, SystemExit), out
    assert out.startswith("error: ") and "\n" not in out, out
    assert says in out, out
    assert len(out) < 500, out
