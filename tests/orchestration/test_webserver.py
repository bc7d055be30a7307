"""Smoke test of the UI stack: `dagster dev -w workspace.yaml` (webserver + daemon) on a temp
DAGSTER_HOME; the GraphQL API (what the UI and external schedulers use) returns the asset
graph, launches a run of the whole graph (ingestion, staging, marts of a day range), then a
partition-range backfill of the marts, and both succeed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from orchestration.instance import ensure_local_instance
from pipelines.broker import EmbeddedBroker, free_port
from tests.conftest import REPO_ROOT

from .helpers import new_topic, recent_traffic, send, today

LOCATION = "trackflow"


class GraphQL:
    def __init__(self, url: str) -> None:
        self.client = httpx.Client(base_url=url, timeout=30)

    def __call__(self, query: str, **variables: Any) -> dict[str, Any]:
        response = self.client.post("/graphql", json={"query": query, "variables": variables})
        response.raise_for_status()
        body = response.json()
        assert "errors" not in body, body["errors"]
        return body["data"]


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
    log = (tmp / "dagster-dev.log").open("wb")
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "dagster"),
            "dev",
            "-w",
            "workspace.yaml",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        cwd=REPO_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    gql = GraphQL(f"http://127.0.0.1:{port}")
    try:
        _wait_loaded(gql, proc, tmp / "dagster-dev.log")
        _stop_sensor(gql, "late_data_sensor")  # its runs would queue behind ours (tested alone)
        yield gql, {"traffic": traffic, "warehouse": tmp / "warehouse.duckdb"}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # our own process group: webserver, daemon, code server
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def _wait_loaded(gql: GraphQL, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"dagster dev exited: {log.read_text()[-3000:]}")
        try:
            data = gql(
                """{ workspaceOrError { ... on Workspace { locationEntries {
                       name loadStatus
                       locationOrLoadError { __typename ... on PythonError { message } } } } } }"""
            )
        except (httpx.HTTPError, AssertionError):
            time.sleep(1)
            continue
        entries = data["workspaceOrError"]["locationEntries"]
        entry = next((e for e in entries if e["name"] == LOCATION), None)
        if entry and entry["loadStatus"] == "LOADED":
            error = entry["locationOrLoadError"]
            assert error["__typename"] == "RepositoryLocation", error
            return
        time.sleep(1)
    pytest.fail(f"code location not loaded in 180s: {log.read_text()[-3000:]}")


def _stop_sensor(gql: GraphQL, name: str) -> None:
    sensor = gql(
        """query($s: SensorSelector!) { sensorOrError(sensorSelector: $s) {
             ... on Sensor { id sensorState { id } } } }""",
        s={
            "repositoryName": "__repository__",
            "repositoryLocationName": LOCATION,
            "sensorName": name,
        },
    )["sensorOrError"]
    stopped = gql(
        """mutation($id: String!) { stopSensor(id: $id) {
             __typename ... on StopSensorMutationResult { instigationState { status } } } }""",
        id=sensor["sensorState"]["id"],
    )["stopSensor"]
    assert stopped["instigationState"]["status"] == "STOPPED", stopped


def _wait_run(gql: GraphQL, run_id: str, timeout: float = 240) -> str:
    deadline = time.monotonic() + timeout
    status = "?"
    while time.monotonic() < deadline:
        run = gql(
            "query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }", id=run_id
        )["runOrError"]
        status = run["status"]
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            return status
        time.sleep(1)
    return status


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


def test_graphql_launches_a_run_of_the_whole_graph(server) -> None:
    gql, info = server
    first, last = (today() - timedelta(days=3)).isoformat(), today().isoformat()
    launched = gql(
        """mutation($params: ExecutionParams!) { launchRun(executionParams: $params) {
             __typename
             ... on LaunchRunSuccess { run { runId } }
             ... on PythonError { message } } }""",
        params={
            "selector": {
                "repositoryLocationName": LOCATION,
                "repositoryName": "__repository__",
                "jobName": "everything_job",
            },
            "runConfigData": {},
            "executionMetadata": {
                "tags": [
                    {"key": "dagster/asset_partition_range_start", "value": first},
                    {"key": "dagster/asset_partition_range_end", "value": last},
                ]
            },
        },
    )["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]
    assert _wait_run(gql, run_id) == "SUCCESS"
    checks = gql(
        """{ assetNodes(assetKeys: [{path: ["raw", "tracking_events"]}]) {
             assetChecksOrError { ... on AssetChecks { checks {
               name executionForLatestMaterialization { status } } } } } }"""
    )["assetNodes"][0]["assetChecksOrError"]["checks"]
    statuses = {
        c["name"]: (c["executionForLatestMaterialization"] or {}).get("status") for c in checks
    }
    assert statuses["consumer_lag"] == "SUCCEEDED"
    assert statuses["no_retention_gaps"] == "SUCCEEDED"
    assert statuses["raw_freshness"] == "SUCCEEDED"


def test_graphql_partition_range_backfill(server) -> None:
    gql, info = server
    nodes = gql("{ assetNodes { assetKey { path } groupName } }")["assetNodes"]
    # the marts of two days (staging is fresh from the previous test's run; the README's
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
