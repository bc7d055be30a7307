"""The production layout, each part its own process: a gRPC code server, the webserver and the
daemon, on the Postgres instance of deploy/dagster.yaml and the workspace of
deploy/workspace.yaml. A run launched through GraphQL is queued, dequeued by the daemon,
executed beside the code server, and its result, checks and warehouse rows all show."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from pipelines.broker import EmbeddedBroker, free_port
from pipelines.warehouse import DuckDBFile
from tests.conftest import REPO_ROOT
from tests.helpers import scalar

from .graphql import (
    LOCATION,
    GraphQL,
    latest_check_statuses,
    launch_run,
    start,
    stop,
    stop_sensor,
    wait_code_server,
    wait_loaded,
    wait_run,
)
from .helpers import new_topic, recent_traffic, send
from .postgres import dagster_database, deploy_home, query_database


def test_webserver_daemon_and_code_server_as_separate_processes(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    topic = new_topic(broker.bootstrap)
    traffic = recent_traffic(1_000, 1, seed=12)
    send(broker.bootstrap, topic, traffic.messages)
    warehouse = DuckDBFile(tmp_path / "warehouse.duckdb")
    bin_dir = Path(sys.executable).parent
    code_port, web_port = free_port(), free_port()

    with dagster_database() as pg:
        instance = {**os.environ, **pg, "DAGSTER_HOME": str(deploy_home(tmp_path / "home"))}
        # only the code host knows the pipeline's settings: runs execute there
        code_env = {
            **instance,
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
            "TRACKING_TOPIC": topic,
            "KAFKA_CONSUMER_GROUP": "split-deployment-test",
            "DUCKDB_PATH": str(warehouse.path),
        }
        workspace = {
            **instance,
            "TRACKFLOW_CODE_SERVER_HOST": "127.0.0.1",
            "TRACKFLOW_CODE_SERVER_PORT": str(code_port),
        }
        logs = {name: tmp_path / f"{name}.log" for name in ("code-server", "webserver", "daemon")}
        procs = {}
        try:
            code_server = procs[logs["code-server"]] = start(
                [str(bin_dir / "dagster"), "code-server", "start", "-h", "127.0.0.1"]
                + ["-p", str(code_port), "-m", "orchestration.definitions"]
                + ["--location-name", LOCATION],
                REPO_ROOT,
                code_env,
                logs["code-server"],
            )
            wait_code_server("127.0.0.1", code_port, code_server, logs["code-server"])
            procs[logs["webserver"]] = start(
                [str(bin_dir / "dagster-webserver"), "-w", "deploy/workspace.yaml"]
                + ["-h", "127.0.0.1", "-p", str(web_port)],
                REPO_ROOT,
                workspace,
                logs["webserver"],
            )
            gql = GraphQL(f"http://127.0.0.1:{web_port}")
            wait_loaded(gql, procs)
            stop_sensor(gql, "late_data_sensor")  # its runs would queue beside ours
            # queued: with no daemon running nothing starts it
            run_id = launch_run(gql, "ingest_job")
            assert wait_run(gql, run_id, timeout=5) == "QUEUED"

            procs[logs["daemon"]] = start(
                [str(bin_dir / "dagster-daemon"), "run", "-w", "deploy/workspace.yaml"],
                REPO_ROOT,
                workspace,
                logs["daemon"],
            )
            status = wait_run(gql, run_id, timeout=300)
            assert status == "SUCCESS", "\n".join(p.read_text()[-2000:] for p in logs.values())
            # its checks show in the UI
            statuses = latest_check_statuses(gql, ["raw", "tracking_events"])
            assert statuses["consumer_lag"] == "SUCCEEDED", statuses
            assert statuses["no_retention_gaps"] == "SUCCEEDED", statuses
        finally:
            for proc in procs.values():
                stop(proc)

        # the run is stored in Postgres, its rows in the warehouse
        stored = query_database(pg, f"select status from runs where run_id = '{run_id}'")
        assert stored == [("SUCCESS",)]
        accepted = traffic.truth["valid_message_ids"] + traffic.truth["duplicate_deliveries"]
        assert scalar(warehouse, "select count(*) from raw.tracking_events") == accepted
