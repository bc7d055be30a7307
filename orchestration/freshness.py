"""Freshness: is raw still being loaded, and is every day partition of the marts built?

raw/tracking_events (unpartitioned) carries a FreshnessPolicy: stale when not materialized for
`TRACKFLOW_RAW_FRESHNESS_MINUTES` (warning at half of it); Dagster shows its state on the asset.
The marts are checked per day partition, which freshness policies do not do: each mart's latest
complete day must be materialized by the daily deadline (`TRACKFLOW_MARTS_FRESHNESS_CRON`, UTC),
so a day the schedule or a backfill missed fails that mart's freshness check. Those checks come
from dagster's build_time_partition_freshness_checks (superseded by policies, but the only
per-partition kind in 1.13) and run from their sensor. The newest event's age, a statement about
the data rather than the runs, is the custom check raw_freshness.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from datetime import timedelta

import dagster as dg

from pipelines.config import OrchestrationSettings


def raw_freshness_policy(settings: OrchestrationSettings) -> dg.FreshnessPolicy:
    window = timedelta(minutes=settings.raw_freshness_minutes)
    return dg.FreshnessPolicy.time_window(fail_window=window, warn_window=window / 2)


def build_partition_freshness(
    marts: dg.AssetsDefinition, settings: OrchestrationSettings
) -> tuple[Sequence[dg.AssetChecksDefinition], dg.SensorDefinition]:
    """One freshness check per mart (its latest complete day partition) and their sensor."""
    with warnings.catch_warnings():  # superseded, see the module docstring
        warnings.simplefilter("ignore")
        checks = dg.build_time_partition_freshness_checks(
            assets=[marts], deadline_cron=settings.marts_freshness_cron, timezone="UTC"
        )
        sensor = dg.build_sensor_for_freshness_checks(
            freshness_checks=checks,
            name="marts_freshness_sensor",
            default_status=dg.DefaultSensorStatus.RUNNING,
        )
    return checks, sensor
