"""A partition-range backfill produces the same marts as a full run.

The warehouse is built the way production builds it: a first load and a marts run over its
days; then a second load (new days plus late events for earlier days) and a range backfill
over exactly the days it touched, launched with the CLI command the README documents (one
run, one dbt build with min_date/max_date). The result must equal a plain full `dbt build`
over the same raw data.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from orchestration.demo import partition_range_tags
from orchestration.project import DBT_EXECUTABLE, REPO_ROOT
from pipelines.broker import EmbeddedBroker
from pipelines.generator import generate

from .helpers import bound_defs, materializations, new_topic, send, today

MARTS = ["fct_sessions", "dim_users", "fct_funnel_progress", "agg_funnel_daily"]


def _tables(warehouse: Path) -> list[str]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        rows = con.execute(
            "select table_name from information_schema.tables where table_schema = 'analytics'"
        ).fetchall()
    return sorted(r[0] for r in rows if r[0] in MARTS)


def _differences(a: Path, b: Path, table: str) -> int:
    with duckdb.connect() as con:
        con.execute(f"attach '{a}' as a (read_only)")
        con.execute(f"attach '{b}' as b (read_only)")
        return con.execute(
            f"""select count(*) from (
                (select * from a.analytics.{table} except all select * from b.analytics.{table})
                union all
                (select * from b.analytics.{table} except all select * from a.analytics.{table})
            )"""
        ).fetchone()[0]


@pytest.mark.slow
def test_range_backfill_equals_full_run(
    broker: EmbeddedBroker, tmp_path: Path, dagster_instance: dg.DagsterInstance
) -> None:
    warehouse = tmp_path / "incremental.duckdb"
    topic = new_topic(broker.bootstrap)
    defs = bound_defs(broker.bootstrap, topic, warehouse)
    t = today()
    first = generate(events=2_500, users=120, days=2, seed=21, start=t - timedelta(days=4),
                     faults={"duplicates", "skew"})
    send(broker.bootstrap, topic, first.messages)
    run = defs.resolve_job_def("everything_job").execute_in_process(
        instance=dagster_instance, tags=partition_range_tags(t - timedelta(days=5), t)
    )
    assert run.success

    # the second load: two new days, and the same visitors' phones delivering late
    second = generate(events=2_500, users=120, days=2, seed=21, start=t - timedelta(days=2),
                      faults={"late", "skew"})
    late = generate(events=300, users=40, days=1, seed=22, start=t - timedelta(days=4))
    send(broker.bootstrap, topic, second.messages + late.messages)
    ingest = defs.resolve_job_def("ingest_job").execute_in_process(instance=dagster_instance)
    days = materializations(ingest)["raw/tracking_events"][0].metadata["event_days"].value
    low, high = min(days), max(days)
    assert low <= (t - timedelta(days=4)).isoformat()

    # reference: a full build (no vars) of a copy of the same raw data
    full = tmp_path / "full.duckdb"
    shutil.copy(warehouse, full)
    env = {**os.environ, "DUCKDB_PATH": str(full)}
    subprocess.run(
        [DBT_EXECUTABLE, "build", "--project-dir", "dbt_project", "--profiles-dir", "dbt_project",
         "--target-path", str(tmp_path / "dbt_target"), "--quiet"],
        cwd=REPO_ROOT, env=env, check=True,
    )

    # the README's CLI backfill: one run over [low, high] with an explicit instance
    env = {
        **os.environ,
        "DUCKDB_PATH": str(warehouse),
        "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
        "TRACKING_TOPIC": topic,
        "DAGSTER_HOME": dagster_instance.root_directory,
    }
    cli = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "asset", "materialize",
         "-m", "orchestration.definitions", "--select", "group:marts",
         "--partition-range", f"{low}...{high}"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True,
    )
    assert cli.returncode == 0, cli.stderr[-3000:]

    runs = dagster_instance.get_runs(limit=1)
    assert runs[0].tags["dagster/asset_partition_range_start"] == low
    assert runs[0].tags["dagster/asset_partition_range_end"] == high
    dbt_steps = [
        e for e in dagster_instance.all_logs(runs[0].run_id)
        if e.is_dagster_event and e.dagster_event.event_type_value == "STEP_START"
        and e.step_key == "dbt_marts"
    ]
    assert len(dbt_steps) == 1  # the whole range in one dbt build

    assert _tables(warehouse) == _tables(full)
    assert "fct_sessions" in _tables(full)
    for table in _tables(full):
        assert _differences(warehouse, full, table) == 0, f"analytics.{table} differs"
