"""deploy/dagster.yaml (Postgres storage, run queue, concurrency limits) works against the
local PostgreSQL server: the instance loads, a real ingestion run and its checks are stored
there, the late-data sensor reads them back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.instance.ref import InstanceRef
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

from orchestration.assets.keys import INGESTION_POOL, RAW_EVENTS
from pipelines.broker import EmbeddedBroker
from pipelines.warehouse import DuckDBFile

from .helpers import bound_defs, check_results, new_topic, recent_traffic, send, today
from .postgres import dagster_database, deploy_home


@pytest.fixture
def pg_instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dg.DagsterInstance]:
    with dagster_database() as env:
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        home = deploy_home(tmp_path / "dagster_home")
        instance = dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home)))
        try:
            yield instance
        finally:
            instance.dispose()


def test_production_instance_on_postgres(
    pg_instance: dg.DagsterInstance, broker: EmbeddedBroker, tmp_path: Path
) -> None:
    assert isinstance(pg_instance.run_storage, PostgresRunStorage)
    assert isinstance(pg_instance.event_log_storage, PostgresEventLogStorage)
    assert isinstance(pg_instance.schedule_storage, PostgresScheduleStorage)
    assert type(pg_instance.run_coordinator).__name__ == "QueuedRunCoordinator"

    config = pg_instance.get_concurrency_config()
    assert config.run_queue_config.max_concurrent_runs == 10
    limits = {
        (lim["key"], lim.get("value")): lim["limit"]
        for lim in config.run_queue_config.tag_concurrency_limits
    }
    assert limits[("trackflow/role", "ingestion")] == 1
    assert config.pool_config.default_pool_limit == 1
    assert str(config.pool_config.pool_granularity).lower().endswith("run")

    topic = new_topic(broker.bootstrap)
    traffic = recent_traffic(800, 1, seed=3)
    send(broker.bootstrap, topic, traffic.messages)
    defs = bound_defs(broker.bootstrap, topic, DuckDBFile(tmp_path / "warehouse.duckdb"))
    late_data_sensor = defs.get_sensor_def("late_data_sensor")
    sensor_context = dg.build_sensor_context(instance=pg_instance, definitions=defs)
    late_data_sensor(sensor_context)

    result = defs.resolve_job_def("ingest_job").execute_in_process(instance=pg_instance)
    assert result.success
    assert all(e.passed for e in check_results(result).values())
    # stored in Postgres: the run, its materialization and metadata, the check results
    run = pg_instance.get_run_by_id(result.run_id)
    assert run is not None and run.is_success
    assert run.tags["trackflow/role"] == "ingestion"
    event = pg_instance.get_latest_materialization_event(RAW_EVENTS)
    assert event is not None
    assert event.asset_materialization.metadata["rows_loaded"].value == len(traffic.messages)
    checks = pg_instance.event_log_storage.get_asset_check_execution_history(
        dg.AssetCheckKey(RAW_EVENTS, "consumer_lag"), limit=1
    )
    assert checks and checks[0].status.value == "SUCCEEDED"
    # the pool of the ingestion op exists with the default limit of 1
    pg_instance.event_log_storage.initialize_concurrency_limit_to_default(INGESTION_POOL)
    info = pg_instance.event_log_storage.get_concurrency_info(INGESTION_POOL)
    assert info.slot_count == 1
    # sensors read their history from the same storage
    later = late_data_sensor(
        dg.build_sensor_context(
            instance=pg_instance, definitions=defs, cursor=sensor_context.cursor
        )
    )
    assert isinstance(later, dg.SensorResult)
    # the loaded events' earlier days (the traffic is yesterday's), as one range run request
    days = event.asset_materialization.metadata["event_days"].value
    late = sorted(d for d in days if d < today().isoformat())
    assert late
    assert [
        (r.tags["dagster/asset_partition_range_start"], r.tags["dagster/asset_partition_range_end"])
        for r in later.run_requests
    ] == [(late[0], late[-1])]
