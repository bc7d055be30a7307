"""Driving a running Dagster deployment the way the UI and external schedulers do: its GraphQL
API. Shared by the `dagster dev` smoke test and the split-deployment test."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

LOCATION = "trackflow"
REPOSITORY = "__repository__"


class GraphQL:
    def __init__(self, url: str) -> None:
        self.client = httpx.Client(base_url=url, timeout=30)

    def __call__(self, query: str, **variables: Any) -> dict[str, Any]:
        response = self.client.post("/graphql", json={"query": query, "variables": variables})
        response.raise_for_status()
        body = response.json()
        assert "errors" not in body, body["errors"]
        return body["data"]


def start(
    argv: Sequence[str], cwd: Path, env: dict[str, str], log: Path
) -> subprocess.Popen[bytes]:
    """A Dagster process in its own process group (it spawns children: stop() ends them all)."""
    return subprocess.Popen(
        list(argv),
        cwd=cwd,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def wait_loaded(gql: GraphQL, procs: dict[Path, subprocess.Popen[bytes]]) -> None:
    """Until the webserver serves the trackflow code location, loaded; fails with the log of
    whichever process (keyed by its log file) exits first."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        for log, proc in procs.items():
            if proc.poll() is not None:
                pytest.fail(f"{log.stem} exited: {log.read_text()[-3000:]}")
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
    logs = "\n".join(f"{log.stem}: {log.read_text()[-1500:]}" for log in procs)
    pytest.fail(f"code location not loaded in 180s: {logs}")


def wait_code_server(host: str, port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Until the gRPC code server answers its health check (it loads the code first)."""
    dagster = str(Path(sys.executable).parent / "dagster")
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"code server exited: {log.read_text()[-3000:]}")
        check = [dagster, "api", "grpc-health-check", "-h", host, "-p", str(port)]
        if subprocess.run(check, capture_output=True, timeout=60).returncode == 0:
            return
        time.sleep(1)
    pytest.fail(f"code server not serving in 180s: {log.read_text()[-3000:]}")


def stop_sensor(gql: GraphQL, name: str) -> None:
    sensor = gql(
        """query($s: SensorSelector!) { sensorOrError(sensorSelector: $s) {
             ... on Sensor { id sensorState { id } } } }""",
        s={"repositoryName": REPOSITORY, "repositoryLocationName": LOCATION, "sensorName": name},
    )["sensorOrError"]
    stopped = gql(
        """mutation($id: String!) { stopSensor(id: $id) {
             __typename ... on StopSensorMutationResult { instigationState { status } } } }""",
        id=sensor["sensorState"]["id"],
    )["stopSensor"]
    assert stopped["instigationState"]["status"] == "STOPPED", stopped


def launch_run(
    gql: GraphQL, job: str, tags: dict[str, str] | None = None, run_config: Any = None
) -> str:
    launched = gql(
        """mutation($params: ExecutionParams!) { launchRun(executionParams: $params) {
             __typename
             ... on LaunchRunSuccess { run { runId } }
             ... on PythonError { message } } }""",
        params={
            "selector": {
                "repositoryLocationName": LOCATION,
                "repositoryName": REPOSITORY,
                "jobName": job,
            },
            "runConfigData": run_config or {},
            "executionMetadata": {
                "tags": [{"key": k, "value": v} for k, v in (tags or {}).items()]
            },
        },
    )["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    return launched["run"]["runId"]


def wait_run(gql: GraphQL, run_id: str, timeout: float = 240) -> str:
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


def latest_check_statuses(gql: GraphQL, asset_path: list[str]) -> dict[str, str | None]:
    """Each check of the asset: the status of its execution for the latest materialization."""
    checks = gql(
        """query($key: AssetKeyInput!) { assetNodes(assetKeys: [$key]) {
             assetChecksOrError { ... on AssetChecks { checks {
               name executionForLatestMaterialization { status } } } } } }""",
        key={"path": asset_path},
    )["assetNodes"][0]["assetChecksOrError"]["checks"]
    return {c["name"]: (c["executionForLatestMaterialization"] or {}).get("status") for c in checks}


def sensor_ticks(gql: GraphQL, name: str, limit: int = 20) -> list[dict[str, Any]]:
    """The sensor's ticks as the daemon recorded them, newest first."""
    state = gql(
        """query($s: SensorSelector!, $limit: Int) { sensorOrError(sensorSelector: $s) {
             ... on Sensor { sensorState { ticks(limit: $limit) {
               status timestamp skipReason runIds runKeys cursor error { message } } } } } }""",
        s={"repositoryName": REPOSITORY, "repositoryLocationName": LOCATION, "sensorName": name},
        limit=limit,
    )["sensorOrError"]["sensorState"]
    return list(state["ticks"])


def wait_tick(
    gql: GraphQL, name: str, wanted: Callable[[dict[str, Any]], bool], log: Path, timeout: float
) -> dict[str, Any]:
    """Until the daemon records a tick of the sensor that `wanted` accepts (the oldest such);
    fails with the ticks seen and the end of the deployment's log."""
    deadline = time.monotonic() + timeout
    ticks: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        ticks = sensor_ticks(gql, name)
        found = [t for t in ticks if wanted(t)]
        if found:
            return found[-1]
        time.sleep(2)
    pytest.fail(f"no such tick of {name} in {timeout:.0f}s: {ticks}\n{log.read_text()[-3000:]}")


def run_tags(gql: GraphQL, run_id: str) -> dict[str, str]:
    run = gql(
        "query($id: ID!) { runOrError(runId: $id) { ... on Run { tags { key value } } } }",
        id=run_id,
    )["runOrError"]
    return {t["key"]: t["value"] for t in run["tags"]}
