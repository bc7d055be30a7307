"""Helpers for the dbt tests: load raw rows into a DuckDB file and run dbt against it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from pipelines.events import event_days, messages_table, validate
from pipelines.generator import Traffic

REPO_ROOT = Path(__file__).resolve().parents[2]
DBT_PROJECT = REPO_ROOT / "dbt_project"
DBT = Path(sys.executable).parent / "dbt"


def run_dbt(
    db: Path,
    *args: str,
    vars: dict[str, Any] | None = None,
    check: bool = True,
    work: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the dbt CLI against the warehouse `db` (its own target/log dirs under `work`)."""
    work = work or db.parent
    cmd = [
        str(DBT),
        *args,
        "--project-dir",
        str(DBT_PROJECT),
        "--profiles-dir",
        str(DBT_PROJECT),
        "--target-path",
        str(work / "dbt_target"),
        "--log-path",
        str(work / "dbt_logs"),
    ]
    if vars is not None:
        cmd += ["--vars", json.dumps(vars)]
    env = {**os.environ, "DUCKDB_PATH": str(db), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} failed:\n{proc.stdout[-6000:]}\n{proc.stderr[-2000:]}"
        )
    return proc


def accepted_rows(traffic: Traffic, topic: str = "tracking.events") -> pa.Table:
    """The generator's messages through the real validator, as ingestion would land them."""
    records = [(topic, 0, i, ts, key, value) for i, (key, value, ts) in enumerate(traffic.messages)]
    accepted, _ = validate(messages_table(records))
    return accepted


def arrival_batches(accepted: pa.Table) -> list[pa.Table]:
    """Split accepted rows by the UTC day they reached Kafka (one ingestion per day)."""
    days = accepted.column("_kafka_timestamp").to_pylist()
    by_day: dict[date, list[int]] = defaultdict(list)
    for i, ts in enumerate(days):
        by_day[ts.astimezone(UTC).date()].append(i)
    return [accepted.take(by_day[d]) for d in sorted(by_day)]


def append_raw(db: Path, rows: pa.Table, load_id: str) -> None:
    """Append accepted rows to raw.tracking_events the way the dlt load does (plus _dlt_load_id)."""
    con = duckdb.connect(str(db))
    try:
        con.execute("set TimeZone = 'UTC'")
        con.register("batch", rows)
        con.execute("create schema if not exists raw")
        con.execute(
            "create table if not exists raw.tracking_events as "
            "select *, ''::varchar as _dlt_load_id from batch limit 0"
        )
        con.execute(
            "insert into raw.tracking_events by name select *, ? as _dlt_load_id from batch",
            [load_id],
        )
        con.unregister("batch")
    finally:
        con.close()


def batch_range(rows: pa.Table) -> dict[str, str]:
    """--vars for a partition run over the event days a batch touched (what Dagster would pass)."""
    days = sorted(event_days(rows))
    return {"min_date": days[0].isoformat(), "max_date": days[-1].isoformat()}


def query(db: Path, sql: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)
