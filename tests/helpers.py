"""Small helpers shared by tests (not fixtures)."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import duckdb

from pipelines.config import KafkaSettings


def settings_for(bootstrap: str, topic: str, group: str | None = None) -> KafkaSettings:
    return KafkaSettings(
        bootstrap_servers=bootstrap,
        topics=(topic,),
        consumer_group=group or f"group-{uuid.uuid4().hex[:8]}",
    )


def query(warehouse: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(sql).fetchall()


def scalar(warehouse: Path, sql: str) -> object:
    return query(warehouse, sql)[0][0]


def dbt_build(warehouse: Path, *args: str) -> None:
    """`dbt build` of the project into `warehouse` (a target dir of its own beside it)."""
    repo = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [str(repo / ".venv/bin/dbt"), "build", "--project-dir", "dbt_project", "--profiles-dir",
         "dbt_project", "--quiet", "--target-path", str(warehouse.parent / "dbt_target"), *args],
        cwd=repo, env={**os.environ, "DUCKDB_PATH": str(warehouse)},
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:]
