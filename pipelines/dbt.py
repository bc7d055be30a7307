"""Running dbt against a warehouse: the project, the executable, the environment it needs.

The same `dbt` the orchestration runs: the one installed beside this Python interpreter (the
active environment), else the first on PATH.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from pipelines.warehouse import Warehouse

DBT_PROJECT_DIR = Path(__file__).resolve().parents[1] / "dbt_project"


def dbt_executable() -> str:
    beside = Path(sys.executable).parent / "dbt"
    return str(beside) if beside.exists() else (shutil.which("dbt") or "dbt")


class DbtFailed(RuntimeError):
    """dbt exited non-zero; the message holds the end of its output."""


def run_dbt(warehouse: Warehouse, *args: str) -> str:
    """`dbt <args>` on the project against `warehouse`; returns its output, raises DbtFailed."""
    proc = subprocess.run(
        [
            dbt_executable(),
            *args,
            "--project-dir",
            str(DBT_PROJECT_DIR),
            "--profiles-dir",
            str(DBT_PROJECT_DIR),
        ],
        cwd=DBT_PROJECT_DIR,
        env={**os.environ, **warehouse.dbt_env()},
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise DbtFailed((proc.stdout + proc.stderr)[-800:])
    return proc.stdout
