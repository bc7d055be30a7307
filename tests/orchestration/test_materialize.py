"""The whole graph materialized in-process against the embedded broker and a temp DuckDB;
checks pass; a planted bad batch makes the right checks fail with useful metadata; the
late-data sensor sees exactly the days an ingestion touched; a partition-range backfill over
those days (the README's CLI command: one run, one dbt build with min_date/max_date) leaves
the marts equal to a full `dbt build` of the same raw data; the report shows the check results
stored in the instance, a failing one included.

One warehouse and one instance per module. The scenarios that change them (the first run, the
bad batch, the late data) are module fixtures that keep what their tests assert on, so any test
passes alone or in any order; the tests that change the warehouse afterwards (a day's run, the
backfill, the erasure) assert only on what they did themselves."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest

from orchestration.assets.keys import REPORT
from orchestration.demo import materialize_everything, summarize
from pipelines.broker import EmbeddedBroker
from pipelines.dbt import dbt_executable
from pipelines.generator import generate
from pipelines.names import MARTS
from pipelines.warehouse import DuckDBFile
from tests.conftest import REPO_ROOT
from tests.helpers import scalar
from tests.report.conftest import embedded

from .helpers import (
    bound_defs,
    check_results,
    materializations,
    new_topic,
    recent_traffic,
    send,
    today,
)

DAYS = 3


@pytest.fixture(scope="module")
def graph(
    broker: EmbeddedBroker, module_warehouse: DuckDBFile, dagster_instance: dg.DagsterInstance
) -> dict[str, Any]:
    """The whole graph materialized once (everything_job over the traffic's days)."""
    topic = new_topic(broker.bootstrap)
    traffic = recent_traffic(4_000, DAYS, faults={"duplicates", "late", "skew", "malformed"})
    send(broker.bootstrap, topic, traffic.messages)
    defs = bound_defs(broker.bootstrap, topic, module_warehouse)
    result = materialize_everything(
        today() - timedelta(days=DAYS + 1),
        today(),
        instance=dagster_instance,
        defs=defs,
        raise_on_error=False,
    )
    assert result.success
    # the warehouse as this run left it (the later scenarios load and erase rows)
    return {
        "topic": topic,
        "traffic": traffic,
        "defs": defs,
        "result": result,
        "summary": summarize(result, module_warehouse, 1.0),
        "sessions": scalar(module_warehouse, "select count(*) from analytics.fct_sessions"),
        "report": _report_of(result),
    }


@pytest.fixture(scope="module")
def bad_batch(
    graph: dict[str, Any], broker: EmbeddedBroker, dagster_instance: dg.DagsterInstance
) -> dict[str, Any]:
    """A batch of re-deliveries and garbage ingested, then the report materialized on its own:
    the latest evaluations of two checks fail."""
    rng = random.Random(5)
    valid = graph["traffic"].valid_ids
    good = [m for m in graph["traffic"].messages if _message_id(m[1]) in valid]
    redelivered = rng.sample(good, 400)  # a producer stuck in a retry loop
    garbage = [(b"k", b"\x00not json %d" % i, m[2]) for i, m in enumerate(redelivered[:300])]
    send(broker.bootstrap, graph["topic"], redelivered + garbage)
    defs = graph["defs"]
    ingest = defs.resolve_job_def("ingest_job").execute_in_process(
        instance=dagster_instance, raise_on_error=False
    )
    report = defs.resolve_implicit_global_asset_job_def().execute_in_process(
        instance=dagster_instance, asset_selection=[REPORT]
    )
    raw = materializations(ingest)["raw/tracking_events"][0].metadata
    return {
        "ingest": ingest,
        "report": _report_of(report),
        "days": set(raw["event_days"].value),
    }


@pytest.fixture(scope="module")
def late_data(
    graph: dict[str, Any], broker: EmbeddedBroker, dagster_instance: dg.DagsterInstance
) -> dict[str, Any]:
    """Late mobile events for three past days ingested, the late-data sensor evaluated before
    (initialising its cursor), after, and once more."""
    defs = graph["defs"]
    sensor = defs.get_sensor_def("late_data_sensor")
    context = dg.build_sensor_context(instance=dagster_instance, definitions=defs)
    first = sensor(context)
    # three days in the past: two adjacent, one apart
    days = [today() - timedelta(days=n) for n in (9, 8, 5)]
    messages = []
    for i, day in enumerate(days):
        messages += generate(events=60, users=10, days=1, seed=100 + i, start=day).messages
    send(broker.bootstrap, graph["topic"], messages)
    ingest = defs.resolve_job_def("ingest_job").execute_in_process(instance=dagster_instance)
    touched = ingest.get_asset_materialization_events()[0].materialization.metadata
    after = sensor(
        dg.build_sensor_context(instance=dagster_instance, definitions=defs, cursor=context.cursor)
    )
    again = None
    if isinstance(after, dg.SensorResult):
        again = sensor(
            dg.build_sensor_context(
                instance=dagster_instance, definitions=defs, cursor=after.cursor
            )
        )
    return {
        "days": days,
        "touched": set(touched["event_days"].value),
        "first": first,
        "after": after,
        "again": again,
    }


def _report_of(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    """The report a run materialized: its metadata, and its page and embedded data as written
    then (a later run writes the same file again)."""
    metadata = materializations(result)["reporting/report"][0].metadata
    path = Path(str(metadata["report"].value))
    return {"metadata": metadata, "html": path.read_text(encoding="utf-8"), "data": embedded(path)}


def _checks_by_key(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    checks = report["data"]["quality"]["checks"]
    keyed = {f"{c['asset']}:{c['name']}": c for c in checks if c["source"] != "warehouse"}
    assert len(keyed) == len([c for c in checks if c["source"] != "warehouse"])  # no duplicate
    return keyed


def test_whole_graph_materializes_and_checks_pass(graph: dict[str, Any]) -> None:
    result: dg.ExecuteInProcessResult = graph["result"]
    assert result.success
    checks = check_results(result)
    failed = {k: e.metadata for k, e in checks.items() if not e.passed}
    assert not failed
    # every asset of the graph was materialized, every check evaluated
    repo = graph["defs"].get_repository_def()
    assert set(materializations(result)) == {
        k.to_user_string()
        for k in repo.asset_graph.get_all_asset_keys()
        if repo.asset_graph.get(k).is_materializable
    }
    assert {
        f"{k.asset_key.to_user_string()}:{k.name}" for k in repo.asset_graph.asset_check_keys
    } == set(checks)
    assert graph["summary"].sessions == graph["traffic"].truth["sessions"]


def test_asset_metadata(graph: dict[str, Any]) -> None:
    mats = materializations(graph["result"])
    raw = mats["raw/tracking_events"][0].metadata
    truth = graph["traffic"].truth
    accepted = truth["valid_message_ids"] + truth["duplicate_deliveries"]
    assert raw["rows_loaded"].value == accepted
    assert raw["dagster/row_count"].value == accepted
    assert raw["total_lag"].value == 0
    assert set(raw["lag"].value.values()) == {0}
    assert sum(raw["offsets"].value.values()) == truth["messages"]
    assert raw["events_per_second"].value > 0
    rejected = mats["raw/tracking_events_rejected"][0].metadata
    assert rejected["rows_rejected"].value == truth["malformed"]
    # partitioned marts: one materialization per day partition of the range, with row counts
    sessions = mats["analytics/fct_sessions"]
    assert len(sessions) == DAYS + 2
    meta = sessions[0].metadata
    assert meta["dagster/row_count"].value == truth["sessions"]
    assert meta["dbt_vars"].value == {
        "min_date": (today() - timedelta(days=DAYS + 1)).isoformat(),
        "max_date": today().isoformat(),
    }
    assert graph["sessions"] == truth["sessions"]
    # the report, downstream of the marts: a link, a markdown preview with the funnel picture
    report = mats["reporting/report"][0].metadata
    assert Path(report["report"].value).exists()
    assert report["url"].value.startswith("file://")
    assert "data:image/png;base64," in report["preview"].value
    assert report["sessions"].value == truth["sessions"]


def test_bad_batch_fails_the_right_checks(bad_batch: dict[str, Any]) -> None:
    result = bad_batch["ingest"]
    assert result.success  # checks fail, the data is still loaded (and staged away later)
    checks = check_results(result)
    failing = {k for k, e in checks.items() if not e.passed}
    assert failing == {
        "raw/tracking_events_rejected:latest_load_rejected_rate",
        "raw/tracking_events:duplicate_rate",
    }
    rejected = checks["raw/tracking_events_rejected:latest_load_rejected_rate"].metadata
    assert rejected["actual"].value == pytest.approx(300 / 700, abs=1e-3)
    assert rejected["threshold"].value == 0.05
    assert "300 of 700 messages" in rejected["reason"].value
    assert "top codes" in rejected["reason"].value
    duplicates = checks["raw/tracking_events:duplicate_rate"].metadata
    assert duplicates["actual"].value == 1.0
    assert duplicates["duplicates"].value == 400
    assert "400 of 400 rows" in duplicates["reason"].value
    for key in (
        "raw/tracking_events:raw_freshness",
        "raw/tracking_events:consumer_lag",
        "raw/tracking_events:no_retention_gaps",
    ):
        assert checks[key].passed


def test_late_data_sensor_requests_exactly_the_touched_days(
    graph: dict[str, Any], late_data: dict[str, Any]
) -> None:
    assert isinstance(late_data["first"], dg.SkipReason)  # starts from the latest ingestion
    expected = sorted(d for d in late_data["touched"] if d < today().isoformat())
    result = late_data["after"]
    assert isinstance(result, dg.SensorResult)
    partitions = graph["defs"].resolve_job_def("marts_job").partitions_def
    requested = []
    for request in result.run_requests:
        start = request.tags["dagster/asset_partition_range_start"]
        end = request.tags["dagster/asset_partition_range_end"]
        requested += partitions.get_partition_keys_in_range(dg.PartitionKeyRange(start, end))
    assert sorted(requested) == expected
    # the generator's truth: events of those days only (a midnight-crossing visit may spill)
    assert {d.isoformat() for d in late_data["days"]} <= set(requested)
    assert len(result.run_requests) == 2  # 9..8 as one range, 5 alone
    assert isinstance(late_data["again"], dg.SkipReason)


def test_report_shows_the_check_results_of_the_instance(
    graph: dict[str, Any], bad_batch: dict[str, Any]
) -> None:
    """The report asset reads the latest evaluation of every check from the Dagster instance."""
    repo = graph["defs"].get_repository_def()
    every_check = {k.to_user_string() for k in repo.asset_graph.asset_check_keys}
    # after the first run: what was evaluated before the report's step, all passing, with
    # the numbers the checks reported
    evaluated = check_results(graph["result"])
    first = _checks_by_key(graph["report"])
    assert first and set(first) <= every_check
    assert {"raw/tracking_events:consumer_lag", "analytics/fct_sessions:session_sanity"} <= set(
        first
    )
    assert all(c["passed"] for c in first.values())
    for key, shown in first.items():
        assert shown["passed"] == evaluated[key].passed
        if "actual" in evaluated[key].metadata:
            assert shown["actual"] == evaluated[key].metadata["actual"].value
    assert graph["report"]["metadata"]["checks_failed"].value == 0

    # after the bad batch: every check has been evaluated; the latest evaluations of two fail
    report = bad_batch["report"]
    checks = _checks_by_key(report)
    assert set(checks) == every_check
    dbt_checks = {k for k, c in checks.items() if c["source"] == "dbt"}
    assert len(dbt_checks) > 10 and "raw/tracking_events:duplicate_rate" not in dbt_checks
    assert {(checks[k]["detail"], checks[k]["threshold"]) for k in dbt_checks} == {("pass", 0)}
    failing = {k for k, c in checks.items() if not c["passed"]}
    assert failing == {
        "raw/tracking_events_rejected:latest_load_rejected_rate",
        "raw/tracking_events:duplicate_rate",
    }
    rejected = checks["raw/tracking_events_rejected:latest_load_rejected_rate"]
    stored = check_results(bad_batch["ingest"])[
        "raw/tracking_events_rejected:latest_load_rejected_rate"
    ]
    assert (rejected["source"], rejected["severity"]) == ("dagster", "error")
    assert rejected["actual"] == stored.metadata["actual"].value == pytest.approx(300 / 700, 1e-3)
    assert rejected["threshold"] == 0.05
    assert rejected["detail"] == stored.description and "300 of 700 messages" in rejected["detail"]
    # the page's table: failing rows first, with the numbers
    row = (
        r'<tr class="fail"><td>FAIL</td><td>dagster</td><td>latest_load_rejected_rate</td>'
        rf"<td>{rejected['actual']}</td><td>0.05</td><td>300 of 700 messages"
    )
    assert re.search(row, report["html"])
    shown = len(report["data"]["quality"]["checks"])  # the warehouse's own check too, if any
    assert f"{shown - 2} of {shown} checks passed" in report["html"]
    assert report["metadata"]["checks_failed"].value == 2


def test_one_day_run_builds_only_that_day(graph: dict[str, Any], dagster_instance) -> None:
    """The marts schedule's run: one partition key, no range tags."""
    day = today().isoformat()
    job = graph["defs"].resolve_job_def("marts_job")
    result = job.execute_in_process(instance=dagster_instance, partition_key=day)
    assert result.success
    mats = materializations(result)
    window = {"min_date": day, "max_date": day}
    assert [m.metadata["dbt_vars"].value for m in mats["analytics/fct_sessions"]] == [window]
    # staging is refreshed for the same day (and dbt parses once for both calls)
    staging = [k for k in mats if k.startswith("staging/")]
    assert staging
    assert all(mats[k][0].metadata["dbt_vars"].value == window for k in staging)


def _message_id(value: bytes) -> str | None:
    try:
        return json.loads(value).get("messageId")
    except (ValueError, AttributeError):
        return None


def _marts(warehouse: DuckDBFile) -> list[str]:
    with warehouse.connect(read_only=True) as sql:
        tables = sql.tables()
    return sorted(
        t.split(".")[1] for t in tables if t.split(".") in [["analytics", m] for m in MARTS]
    )


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
def test_range_backfill_equals_full_build(
    graph: dict[str, Any],
    bad_batch: dict[str, Any],
    late_data: dict[str, Any],
    broker: EmbeddedBroker,
    module_warehouse: DuckDBFile,
    dagster_instance,
    tmp_path: Path,
) -> None:
    # the loads after the first run touched these days; the marts have not seen them all yet
    days = bad_batch["days"] | late_data["touched"]
    low, high = min(days), max(days)
    assert low < (today() - timedelta(days=8)).isoformat()

    # reference: a full build (no vars) of a copy of the same raw data, alongside the backfill
    full = DuckDBFile(tmp_path / "full.duckdb")
    shutil.copy(module_warehouse.path, full.path)
    reference = subprocess.Popen(
        [dbt_executable(), "build", "--project-dir", "dbt_project", "--profiles-dir", "dbt_project",
         "--target-path", str(tmp_path / "dbt_target"), "--quiet"],
        cwd=REPO_ROOT, env={**os.environ, "DUCKDB_PATH": str(full.path)},
    )  # fmt: skip

    # the README's CLI backfill: one run over [low, high] recorded in the instance
    cli = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "asset", "materialize",
         "-m", "orchestration.definitions", "--select", "group:staging,group:marts",
         "--partition-range", f"{low}...{high}"],
        cwd=REPO_ROOT, capture_output=True, text=True,
        env={
            **os.environ,
            "DUCKDB_PATH": str(module_warehouse.path),
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
            "TRACKING_TOPIC": graph["topic"],
            "DAGSTER_HOME": dagster_instance.root_directory,
        },
    )  # fmt: skip
    assert reference.wait(timeout=600) == 0
    assert cli.returncode == 0, cli.stderr[-3000:]
    run = dagster_instance.get_runs(limit=1)[0]
    assert run.tags["dagster/asset_partition_range_start"] == low
    assert run.tags["dagster/asset_partition_range_end"] == high
    dbt_steps = [
        e
        for e in dagster_instance.all_logs(run.run_id)
        if e.is_dagster_event and e.dagster_event.event_type_value == "STEP_START"
    ]
    # staging once (unpartitioned: views, and int_events__stitched, a table), the marts once
    assert [e.step_key for e in dbt_steps if e.step_key.startswith("dbt_")] == [
        "dbt_staging",
        "dbt_marts",
    ]

    assert _marts(module_warehouse) == _marts(full)
    assert "fct_sessions" in _marts(full)
    for table in _marts(full):
        differences = _differences(module_warehouse.path, full.path, table)
        assert differences == 0, f"analytics.{table} differs"


def test_operator_jobs_replay_and_forget(
    graph: dict[str, Any],
    bad_batch: dict[str, Any],
    late_data: dict[str, Any],
    module_warehouse: DuckDBFile,
    dagster_instance,
) -> None:
    """Erases a person through forget_job, and replays dead letters (none pass). After every
    ingestion scenario (bad_batch, late_data): a suppressed person's re-delivered events would
    not load again, and the bad batch counts them."""
    defs = graph["defs"]
    replay = defs.resolve_job_def("replay_job").execute_in_process(
        instance=dagster_instance,
        run_config={"ops": {"replay_dead_letters": {"config": {"dry_run": False}}}},
    )
    assert replay.success
    assert replay.output_for_node("replay_dead_letters") == 0  # still malformed: nothing loads

    person = scalar(
        module_warehouse,
        """select user_key from analytics.fct_sessions
        where user_key like 'user-%' group by 1 order by count(*) desc, 1 limit 1""",
    )
    erased = defs.resolve_job_def("forget_job").execute_in_process(
        instance=dagster_instance,
        run_config={"ops": {"forget_person": {"config": {"user_id": person}}}},
    )
    assert erased.success
    assert erased.output_for_node("forget_person") > 0
    for table in ("raw.tracking_events", "analytics.fct_sessions", "analytics.dim_users"):
        column = "user_id" if table.startswith("raw") else "user_key"
        assert (
            scalar(module_warehouse, f"select count(*) from {table} where {column} = '{person}'")
            == 0
        ), table
    assert scalar(module_warehouse, "select count(*) from raw.privacy_erasures") == 1
