"""Daily partitions of the marts: the UTC day an event happened (skew-corrected event time)."""

from __future__ import annotations

import os

import dagster as dg

# the first day a backfill can reach; override for older history
PARTITIONS_START = os.environ.get("TRACKFLOW_PARTITIONS_START", "2024-01-01")

# end_offset=1: today's (still filling) partition exists, so micro-batches can refresh it
daily_partitions = dg.DailyPartitionsDefinition(
    start_date=PARTITIONS_START, timezone="UTC", end_offset=1
)
