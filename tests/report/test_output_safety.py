"""`trackflow report --output` writes a report, never over something else: not the warehouse,
not a device or a directory, not through a symlink, not into directories it would invent."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.report import ReportError, build_report
from pipelines.warehouse import DuckDBFile
from tests.conftest import REPO_ROOT


@pytest.fixture
def warehouse(tmp_path: Path) -> DuckDBFile:
    warehouse = DuckDBFile(tmp_path / "warehouse.duckdb")
    with warehouse.connect() as sql:
        sql.execute("create schema raw; create table raw.kept as select 42 as answer")
    return warehouse


def _refused(warehouse: DuckDBFile, output: Path, reason: str) -> None:
    with pytest.raises(ReportError, match=reason) as err:
        build_report(warehouse, output)
    assert "\n" not in str(err.value)


def test_the_warehouse_is_never_overwritten(warehouse: DuckDBFile) -> None:
    _refused(warehouse, warehouse.path, "is the warehouse")
    with warehouse.connect(read_only=True) as sql:  # still a DuckDB file, data intact
        assert sql.scalar("select answer from raw.kept") == 42


def test_special_files_and_directories_are_refused(warehouse: DuckDBFile, tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    _refused(warehouse, fifo, "not a regular file")
    assert fifo.is_fifo()
    _refused(warehouse, Path("/dev/null"), "not a regular file")
    assert Path("/dev/null").is_char_device()
    folder = tmp_path / "folder"
    folder.mkdir()
    _refused(warehouse, folder, "not a regular file")
    assert list(folder.iterdir()) == []  # no stray temporary file


def test_symlinks_are_never_followed(warehouse: DuckDBFile, tmp_path: Path) -> None:
    victim = tmp_path / "notes.txt"
    victim.write_text("mine")
    link = tmp_path / "report.html"
    link.symlink_to(victim)
    _refused(warehouse, link, "is a symlink")
    assert victim.read_text() == "mine" and link.is_symlink()
    # not even onto a report trackflow wrote
    report = build_report(warehouse, tmp_path / "real.html").path
    other = tmp_path / "other.html"
    other.symlink_to(report)
    _refused(warehouse, other, "is a symlink")


def test_only_its_own_reports_are_replaced(warehouse: DuckDBFile, tmp_path: Path) -> None:
    mine = tmp_path / "report.html"
    first = build_report(warehouse, mine)
    again = build_report(warehouse, mine)  # a report it wrote is replaced
    assert first.path == again.path == mine and mine.is_file()
    theirs = tmp_path / "index.html"
    theirs.write_text("<html>someone's page</html>")
    _refused(warehouse, theirs, "not a report written by trackflow")
    assert theirs.read_text() == "<html>someone's page</html>"
    _refused(warehouse, tmp_path / "no" / "such" / "dir" / "r.html", "does not exist")
    assert not (tmp_path / "no").exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")) == []


def test_the_cli_fails_with_one_line(warehouse: DuckDBFile) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "report", "--output", str(warehouse.path)],
        cwd=REPO_ROOT,
        env={**os.environ, "DUCKDB_PATH": str(warehouse.path)},
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().startswith("error:") and "is the warehouse" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    with warehouse.connect(read_only=True) as sql:
        assert sql.scalar("select answer from raw.kept") == 42
