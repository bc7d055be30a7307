"""Smoke test of the UI stack: `dagster dev -w workspace.yaml` (webserver + daemon) on a temp
DAGSTER_HOME; the GraphQL API (what the UI and external schedulers use) returns the asset
graph, launches a run of the whole graph (ingestion, staging, marts of a day range), then a
partition-range backfill of the marts, and both succeed. The daemon evaluates the late-data
sensor: once before anything is loaded (it initialises its cursor), then after the whole
graph's ingestion, when it requests the marts of the earlier days, and that run succeeds.

The deployment and the whole-graph run (with the sensor's run) are module fixtures: any test
passes alone or in any order."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from orchestration.instance import ensure_local_instance
from pipelines.broker import EmbeddedBroker, free_port
from pipelines.warehouse import DuckDBFile
from tests.conftest import REPO_ROOT
from tests.helpers import scalar

from .graphql import (
    GraphQL,
    latest_check_statuses,
    launch_run,
    run_tags,
    start,
    stop,
    stop_sensor,
    wait_loaded,
    wait_run,
    wait_tick,
)
from .helpers import new_topic, recent_traffic, send, today

SENSOR = "late_data_sensor"


@pytest.fixture(scope="module")
def server(
    broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[GraphQL, dict[str, Any]]]:
    tmp = tmp_path_factory.mktemp("webserver")
    home = ensure_local_instance(tmp / "dagster_home")
    topic = new_topic(broker.bootstrap)
    traffic = recent_traffic(1_500, 2, seed=8)
    send(broker.bootstrap, topic, traffic.messages)
    port = free_port()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
        "TRACKING_TOPIC": topic,
        "KAFKA_CONSUMER_GROUP": "webserver-test",
        "DUCKDB_PATH": str(tmp / "warehouse.duckdb"),
    }
    dagster = str(Path(sys.executable).parent / "dagster")
    argv = [dagster, "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)]
    log = tmp / "dagster-dev.log"
    proc = start(argv, REPO_ROOT, env, log)  # webserver, daemon and code server: one group
    gql = GraphQL(f"http://127.0.0.1:{port}")
    try:
        wait_loaded(gql, {log: proc})
        yield (
            gql,
            {
                "traffic": traffic,
                "warehouse": DuckDBFile(tmp / "warehouse.duckdb"),
                "log": log,
            },
        )
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def whole_graph(server) -> dict[str, Any]:
    """A run of everything_job over the traffic's days, launched through GraphQL, and the
    late-data sensor's run the daemon launched for it; both finished."""
    gql, info = server
    # the daemon's first evaluation, before anything is loaded: the sensor starts its cursor
    # at storage id 0, so the run below is new to it whenever its next tick comes
    first_tick = wait_tick(gql, SENSOR, lambda t: True, info["log"], timeout=180)
    first, last = (today() - timedelta(days=3)).isoformat(), today().isoformat()
    range_tags = {
        "dagster/asset_partition_range_start": first,
        "dagster/asset_partition_range_end": last,
    }
    run_id = launch_run(gql, "everything_job", tags=range_tags)
    status = wait_run(gql, run_id, timeout=600)
    # a tick after the ingestion: the raw materialization carried earlier days
    requested = wait_tick(gql, SENSOR, lambda t: bool(t["runIds"]), info["log"], timeout=300)
    late_runs = {r: wait_run(gql, r, timeout=600) for r in requested["runIds"]}
    # nothing else of ours is queued behind the next ingestion (the backfill runs alone)
    stop_sensor(gql, SENSOR)
    warehouse = info["warehouse"]  # read once no run writes it
    return {
        "run_id": run_id,
        "status": status,
        "checks": latest_check_statuses(gql, ["raw", "tracking_events"]),
        "first_tick": first_tick,
        "requested": requested,
        "late_runs": {r: (s, run_tags(gql, r)) for r, s in late_runs.items()},
        "accepted": scalar(warehouse, "select count(*) from raw.tracking_events"),
        "sessions": scalar(warehouse, "select count(*) from analytics.fct_sessions"),
    }


def test_graphql_asset_graph(server) -> None:
    gql, _ = server
    nodes = gql("{ assetNodes { assetKey { path } dependencyKeys { path } groupName } }")[
        "assetNodes"
    ]
    by_key = {"/".join(n["assetKey"]["path"]): n for n in nodes}
    assert {
        "raw/tracking_events",
        "raw/tracking_events_rejected",
        "staging/stg_raw__tracking_events",
        "analytics/fct_sessions",
    } <= set(by_key)
    deps = {
        "/".join(d["path"]) for d in by_key["staging/stg_raw__tracking_events"]["dependencyKeys"]
    }
    assert "raw/tracking_events" in deps
    assert by_key["raw/tracking_events"]["groupName"] == "ingestion"


def test_graphql_launches_a_run_of_the_whole_graph(server, whole_graph) -> None:
    _, info = server
    assert whole_graph["status"] == "SUCCESS"
    statuses = whole_graph["checks"]
    assert statuses["consumer_lag"] == "SUCCEEDED"
    assert statuses["no_retention_gaps"] == "SUCCEEDED"
    assert statuses["raw_freshness"] == "SUCCEEDED"
    # and what the run wrote is the traffic, to the event and the session
    truth = info["traffic"].truth
    assert whole_graph["accepted"] == truth["valid_message_ids"] + truth["duplicate_deliveries"]
    assert whole_graph["sessions"] == truth["sessions"]


def test_daemon_evaluates_the_late_data_sensor(whole_graph) -> None:
    first = whole_graph["first_tick"]
    assert (first["status"], first["skipReason"]) == (
        "SKIPPED",
        "sensor initialised at storage id 0",
    )
    # the traffic is of the two days before today: one range, today's own events not late
    late = ((today() - timedelta(days=2)).isoformat(), (today() - timedelta(days=1)).isoformat())
    tick = whole_graph["requested"]
    assert tick["status"] == "SUCCESS"
    assert len(tick["runKeys"]) == len(tick["runIds"]) == 1
    assert tick["runKeys"][0].endswith(f"-{late[0]}-{late[1]}")
    [(status, tags)] = whole_graph["late_runs"].values()
    assert status == "SUCCESS"
    assert tags["trackflow/trigger"] == "late_data"
    assert tags["trackflow/ingestion_run"] == whole_graph["run_id"]
    assert (
        tags["dagster/asset_partition_range_start"],
        tags["dagster/asset_partition_range_end"],
    ) == late


def test_graphql_partition_range_backfill(server, whole_graph) -> None:
    gql, _ = server
    nodes = gql("{ assetNodes { assetKey { path } groupName } }")["assetNodes"]
    # the marts of two days (staging is fresh from the whole graph's run; the README's
    # example also selects staging, which the daemon then runs first as its own run)
    first, last = (today() - timedelta(days=2)).isoformat(), today().isoformat()
    by_assets = [
        {
            "assetKey": {"path": n["assetKey"]["path"]},
            "partitions": {"range": {"start": first, "end": last}},
        }
        for n in nodes
        if n["groupName"] == "marts"
    ]
    launched = gql(
        """mutation($params: LaunchBackfillParams!) {
           launchPartitionBackfill(backfillParams: $params) {
             __typename
             ... on LaunchBackfillSuccess { backfillId }
             ... on PythonError { message } } }""",
        params={"partitionsByAssets": by_assets, "title": "smoke test backfill"},
    )["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    backfill_id = launched["backfillId"]
    deadline = time.monotonic() + 300
    status = "?"
    while time.monotonic() < deadline:
        backfill = gql(
            """query($id: String!) { partitionBackfillOrError(backfillId: $id) {
                 ... on PartitionBackfill {
                   status runs { runId status tags { key value } } } } }""",
            id=backfill_id,
        )["partitionBackfillOrError"]
        status = backfill["status"]
        if status in ("COMPLETED_FAILED", "FAILED", "CANCELED"):
            break
        # done once its run finished (the daemon marks the backfill complete on a later tick)
        finished = ("SUCCESS", "FAILURE", "CANCELED")
        if backfill["runs"] and all(r["status"] in finished for r in backfill["runs"]):
            break
        time.sleep(2)
    assert status in ("REQUESTED", "COMPLETED", "COMPLETED_SUCCESS"), backfill
    runs = backfill["runs"]
    assert runs and all(r["status"] == "SUCCESS" for r in runs), backfill
    # the marts range ran as one run (BackfillPolicy.single_run)
    assert len(runs) == 1
    ranged = [
        r
        for r in runs
        if {t["key"]: t["value"] for t in r["tags"]}.get("dagster/asset_partition_range_start")
        == first
    ]
    assert len(ranged) == 1
