"""Late data: when an ingestion loads events for days before today, re-build those days.

Each raw/tracking_events materialization carries `event_days` (the skew-corrected UTC days of
the events it loaded). Days earlier than the day of the load are late (offline phones sending
hours or days later); the sensor requests the marts for exactly those partitions, one run per
contiguous range (one dbt build with min_date/max_date each).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import dagster as dg
from dagster import AssetRecordsFilter

from orchestration.assets.keys import (
    PARTITION_RANGE_END_TAG,
    PARTITION_RANGE_START_TAG,
    RAW_EVENTS,
)


def contiguous_ranges(days: list[date]) -> list[tuple[date, date]]:
    ranges: list[tuple[date, date]] = []
    for day in sorted(set(days)):
        if ranges and day == ranges[-1][1] + timedelta(days=1):
            ranges[-1] = (ranges[-1][0], day)
        else:
            ranges.append((day, day))
    return ranges


def late_days(
    event_days: list[str], loaded_on: date, partitions: dg.PartitionsDefinition
) -> list[date]:
    days = [date.fromisoformat(d) for d in event_days]
    return sorted(d for d in days if d < loaded_on and partitions.has_partition_key(d.isoformat()))


def build_late_data_sensor(
    marts_job: dg.UnresolvedAssetJobDefinition, partitions: dg.PartitionsDefinition
) -> dg.SensorDefinition:
    """The sensor that re-builds the earlier days an ingestion run loaded events for."""

    @dg.sensor(
        job=marts_job,
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def late_data_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        """Re-materialize the marts for the earlier days an ingestion run touched."""
        return _late_data_requests(context, partitions)

    return late_data_sensor


def _late_data_requests(
    context: dg.SensorEvaluationContext, partitions: dg.PartitionsDefinition
) -> dg.SensorResult | dg.SkipReason:
    if context.cursor is None:
        # first evaluation ever: start from now, history was built by whoever loaded it
        latest = context.instance.fetch_materializations(RAW_EVENTS, limit=1).records
        start = str(latest[0].storage_id) if latest else "0"
        context.update_cursor(start)
        return dg.SkipReason(f"sensor initialised at storage id {start}")
    records = context.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=RAW_EVENTS, after_storage_id=int(context.cursor)),
        limit=100,
        ascending=True,
    ).records
    if not records:
        return dg.SkipReason("no ingestion since the last evaluation")
    requests: list[dg.RunRequest] = []
    for record in records:
        event = record.event_log_entry
        materialization = event.asset_materialization
        entry = materialization.metadata.get("event_days") if materialization else None
        days = [str(d) for d in entry.value] if entry is not None else []  # type: ignore[union-attr]
        loaded_on = datetime.fromtimestamp(event.timestamp, UTC).date()
        for first, last in contiguous_ranges(late_days(days, loaded_on, partitions)):
            requests.append(
                dg.RunRequest(
                    run_key=f"late-{record.storage_id}-{first}-{last}",
                    tags={
                        PARTITION_RANGE_START_TAG: first.isoformat(),
                        PARTITION_RANGE_END_TAG: last.isoformat(),
                        "trackflow/trigger": "late_data",
                        "trackflow/ingestion_run": event.run_id,
                    },
                )
            )
    return dg.SensorResult(run_requests=requests, cursor=str(records[-1].storage_id))
