"""Data loss: the broker lost the messages the stored offsets point at. The ingestion run
fails with a one-line reason, and the `no_retention_gaps` check says what was lost."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from kafka import KafkaAdminClient
from kafka.admin import NewTopic

from pipelines.broker import EmbeddedBroker
from pipelines.warehouse import DuckDBFile

from .helpers import bound_defs, check_results, new_topic, recent_traffic, send


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker(log_path=tmp_path / "broker.log") as b:
        yield b


def test_lost_offsets_fail_the_run_and_the_gap_check(own_broker: EmbeddedBroker, tmp_path: Path):
    topic = new_topic(own_broker.bootstrap, partitions=2)
    send(own_broker.bootstrap, topic, recent_traffic(400, 1, seed=4).messages)
    defs = bound_defs(own_broker.bootstrap, topic, DuckDBFile(tmp_path / "warehouse.duckdb"))
    job = defs.resolve_job_def("ingest_job")
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        assert job.execute_in_process(instance=instance).success

        own_broker.restart()  # memory storage: the topic and every offset are gone
        admin = KafkaAdminClient(bootstrap_servers=own_broker.bootstrap)
        admin.create_topics([NewTopic(topic, 2, 1)])
        admin.close()
        send(own_broker.bootstrap, topic, recent_traffic(50, 1, seed=5).messages)

        result = job.execute_in_process(instance=instance, raise_on_error=False)
        assert not result.success
        failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
        reason = failure.event_specific_data.user_failure_data.description
        # one line naming the partition and how to resume
        assert topic in reason and "--resume-from" in reason and "\n" not in reason
        # and at once: a gap needs a person, the retry policy does not apply
        assert not [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
        gap = check_results(result)["raw/tracking_events:no_retention_gaps"]
        assert not gap.passed
        assert gap.metadata["actual"].value >= 1
        assert gap.metadata["threshold"].value == 0
        reason = gap.metadata["reason"].value
        assert topic in reason and "resume with" in reason

        # resolved from the launchpad: the run config accepts the gap, as --resume-from does
        resumed = job.execute_in_process(
            instance=instance,
            run_config={"ops": {"kafka_ingestion": {"config": {"resume_from": "earliest"}}}},
        )
        assert resumed.success
        assert check_results(resumed)["raw/tracking_events:no_retention_gaps"].passed
        loaded = resumed.get_asset_materialization_events()[0].materialization.metadata
        assert loaded["rows_loaded"].value == 50


def test_a_locked_warehouse_is_retried_until_it_is_free(broker, tmp_path: Path) -> None:
    """Transient: the run waits and tries again (an offset gap, above, is never retried)."""
    topic = new_topic(broker.bootstrap, partitions=2)
    send(broker.bootstrap, topic, recent_traffic(300, 1, seed=6).messages)
    warehouse = DuckDBFile(tmp_path / "warehouse.duckdb")
    with warehouse.connect():
        pass  # the file exists, so the other process can lock it
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]);"
         " print('locked', flush=True); time.sleep(float(sys.argv[2]))",
         str(warehouse.path), "3"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    defs = bound_defs(broker.bootstrap, topic, warehouse)
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        result = defs.resolve_job_def("ingest_job").execute_in_process(instance=instance)
    holder.wait()
    assert result.success
    retries = [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    assert retries, "the locked warehouse was not retried"
    assert "locked by another process" in str(retries[0].event_specific_data)
