"""Daily partitions of the marts: the UTC day an event happened (skew-corrected event time)."""

from __future__ import annotations

import dagster as dg


def daily_partitions(start_date: str) -> dg.DailyPartitionsDefinition:
    """Days from `start_date` (TRACKFLOW_PARTITIONS_START: the first day a backfill can reach).

    end_offset=1: today's (still filling) partition exists, so micro-batches can refresh it.
    """
    return dg.DailyPartitionsDefinition(start_date=start_date, timezone="UTC", end_offset=1)
