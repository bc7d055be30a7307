"""Schedules and sensors evaluated with Dagster's test contexts."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import dagster as dg
import pytest
from dagster import DagsterRunStatus

from orchestration.assets.keys import RAW_EVENTS
from orchestration.definitions import defs
from orchestration.sensors import contiguous_ranges

from .helpers import today

ingest_schedule = defs.get_schedule_def("ingest_schedule")
marts_schedule = defs.get_schedule_def("marts_schedule")
late_data_sensor = defs.get_sensor_def("late_data_sensor")

TICK = datetime(2025, 6, 3, 10, 5, tzinfo=UTC)


@pytest.fixture
def instance(tmp_path):
    with dg.instance_for_test(temp_dir=str(tmp_path)) as inst:
        yield inst


def test_ingest_schedule_requests_a_run(instance) -> None:
    context = dg.build_schedule_context(instance=instance, scheduled_execution_time=TICK)
    request = ingest_schedule(context)
    assert isinstance(request, dg.RunRequest)
    assert request.run_key == "ingest-20250603T1005"
    assert ingest_schedule.cron_schedule == "*/5 * * * *"
    assert ingest_schedule.job_name == "ingest_job"


def test_ingest_schedule_skips_while_an_ingestion_is_unfinished(instance) -> None:
    job = defs.resolve_job_def("ingest_job")
    instance.create_run_for_job(job, status=DagsterRunStatus.STARTED)
    context = dg.build_schedule_context(instance=instance, scheduled_execution_time=TICK)
    assert isinstance(ingest_schedule(context), dg.SkipReason)


def test_marts_schedule_targets_todays_partition(instance) -> None:
    context = dg.build_schedule_context(instance=instance, scheduled_execution_time=TICK)
    request = marts_schedule(context)
    assert isinstance(request, dg.RunRequest)
    assert request.partition_key == "2025-06-03"
    assert marts_schedule.cron_schedule == "2-59/5 * * * *"
    # the partition exists in the job's partitions (today's partition is open: end_offset=1)
    assert defs.resolve_job_def("marts_job").partitions_def.has_partition_key(today().isoformat())


def _report(instance, days: list[str]) -> None:
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            asset_key=RAW_EVENTS, metadata={"event_days": dg.MetadataValue.json(days)}
        )
    )


def _requested(result: dg.SensorResult) -> list[tuple[str, str]]:
    return [
        (r.tags["dagster/asset_partition_range_start"], r.tags["dagster/asset_partition_range_end"])
        for r in result.run_requests
    ]


def test_late_data_sensor_requests_exactly_the_earlier_days(instance) -> None:
    context = dg.build_sensor_context(instance=instance, definitions=defs)
    assert isinstance(late_data_sensor(context), dg.SkipReason)  # initialises its cursor
    t = today()
    day = lambda n: (t - timedelta(days=n)).isoformat()  # noqa: E731
    _report(instance, [day(6), day(3), day(2), day(0)])  # today's own events are not late
    _report(instance, [day(0)])
    _report(instance, [day(10), day(3)])
    result = late_data_sensor(
        dg.build_sensor_context(instance=instance, definitions=defs, cursor=context.cursor)
    )
    assert isinstance(result, dg.SensorResult)
    # one run per contiguous range of each ingestion's late days
    assert _requested(result) == [
        (day(6), day(6)),
        (day(3), day(2)),
        (day(10), day(10)),
        (day(3), day(3)),
    ]
    assert all(r.job_name in (None, "marts_job") for r in result.run_requests)
    # nothing new: nothing requested
    again = late_data_sensor(
        dg.build_sensor_context(instance=instance, definitions=defs, cursor=result.cursor)
    )
    assert isinstance(again, dg.SkipReason)


def test_late_days_outside_the_partitions_are_ignored(instance) -> None:
    context = dg.build_sensor_context(instance=instance, definitions=defs)
    late_data_sensor(context)
    _report(instance, ["1999-01-01", today().isoformat()])
    result = late_data_sensor(
        dg.build_sensor_context(instance=instance, definitions=defs, cursor=context.cursor)
    )
    assert isinstance(result, dg.SensorResult)
    assert result.run_requests == []


def test_contiguous_ranges() -> None:
    d = date(2025, 1, 1)
    days = [d + timedelta(days=n) for n in (5, 0, 1, 2, 5, 9)]
    assert contiguous_ranges(days) == [
        (d, d + timedelta(days=2)),
        (d + timedelta(days=5), d + timedelta(days=5)),
        (d + timedelta(days=9), d + timedelta(days=9)),
    ]
