"""The test doubles and benchmarks live in the development package (dev/, wavelaunch-dev), not in
the product: the product's wheel holds neither, the product never imports them, and the CLI
offers `bench` and `eval` only when the development package is installed."""

from __future__ import annotations

import ast
import tomllib
import zipfile
from pathlib import Path

import pytest
from hatchling.builders.wheel import WheelBuilder
from typer.testing import CliRunner

from wavelaunch import cli, plugins

ROOT = Path(__file__).resolve().parents[2]
DEV = ROOT / "dev"
DEV_PACKAGES = {"stubs", "bench"}
PRODUCT_PACKAGES = ("wavelaunch", "workflows", "activities", "tokenopt", "domain", "storage", "llm", "stack", "crm")


def build_wheel(project: Path, out: Path) -> dict[str, bytes]:
    """``project``'s wheel, built by the backend `uv build` uses (hatchling): its members by name."""
    [wheel] = WheelBuilder(str(project)).build(directory=str(out), versions=["standard"])
    with zipfile.ZipFile(wheel) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def test_the_product_wheel_ships_no_stub_and_no_benchmark(tmp_path):
    names = build_wheel(ROOT, tmp_path)
    top = {name.split("/")[0] for name in names}
    assert not top & DEV_PACKAGES, sorted(top & DEV_PACKAGES)
    doubles = [n for n in names if "stub" in n.rsplit("/", 1)[-1] or n.startswith(("wavelaunch/bench/", "dev/"))]
    assert doubles == []
    # ...and still ships the product.
    for package in PRODUCT_PACKAGES:
        assert f"{package}/__init__.py" in names, package
    assert {"worker.py", "starter.py", "llm/client.py", "wavelaunch/cli.py", "wavelaunch/plugins.py"} <= set(names)
    entry_points = next(content for name, content in names.items() if name.endswith(".dist-info/entry_points.txt"))
    assert plugins.PLUGIN_GROUP not in entry_points.decode()


def test_the_dev_wheel_holds_the_stubs_and_benchmarks_and_declares_the_commands(tmp_path):
    names = set(build_wheel(DEV, tmp_path))
    assert {"stubs/llm_server.py", "stubs/batches.py", "bench/cli.py", "bench/studio.py"} <= names
    assert not {n.split("/")[0] for n in names} & set(PRODUCT_PACKAGES)
    declared = tomllib.loads((DEV / "pyproject.toml").read_text())["project"]["entry-points"][plugins.PLUGIN_GROUP]
    assert set(declared) == set(plugins.DEV_COMMANDS)


def _imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_the_product_never_imports_the_dev_package():
    product_files = [ROOT / "worker.py", ROOT / "starter.py"]
    for package in PRODUCT_PACKAGES:
        product_files += sorted((ROOT / package).rglob("*.py"))
    offenders = {str(p.relative_to(ROOT)): _imported_roots(p) & DEV_PACKAGES for p in product_files}
    assert {path: roots for path, roots in offenders.items() if roots} == {}


@pytest.fixture
def run():
    runner = CliRunner()
    return lambda *args: runner.invoke(cli.app, list(args))


def test_bench_and_eval_join_the_cli_when_the_dev_package_is_installed(run):
    assert set(plugins.installed()) == {"bench", "eval"}
    listing = run("--help")
    assert listing.exit_code == 0 and "bench" in listing.output and "eval" in listing.output
    bench = run("bench", "--help")
    assert bench.exit_code == 0, bench.output
    assert "studio" in bench.output and "throughput" in bench.output
    assert "quality" in run("eval", "--help").output


@pytest.mark.parametrize("args", [("bench",), ("bench", "studio", "--seeds", "11"), ("bench", "--help"), ("eval",)])
def test_without_the_dev_package_a_dev_command_says_how_to_install_it_in_one_line(run, monkeypatch, args):
    monkeypatch.setattr(plugins, "installed", dict)
    result = run(*args)
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert f"`wavelaunch {args[0]}` is a development command" in lines[0] and "uv sync --group dev" in lines[0]


def test_without_the_dev_package_help_does_not_offer_its_commands(run, monkeypatch):
    monkeypatch.setattr(plugins, "installed", dict)
    listing = run("--help")
    assert listing.exit_code == 0
    assert "bench" not in listing.output and "eval" not in listing.output
    assert "No such command" in run("nonsense").output  # other unknown names: click's own answer
