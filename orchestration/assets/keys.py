"""Asset keys and the names runs share (assets, checks, jobs, sensors use these and only these)."""

from __future__ import annotations

import dagster as dg

from pipelines.names import (
    ANALYTICS,
    EVENTS_TABLE,
    FUNNEL_DAILY_MART,
    FUNNEL_PROGRESS_MART,
    RAW,
    REJECTED_TABLE,
    SESSIONS_MART,
    SUPPRESSIONS_TABLE,
    USERS_MART,
)

RAW_EVENTS = dg.AssetKey([RAW, EVENTS_TABLE])
RAW_REJECTED = dg.AssetKey([RAW, REJECTED_TABLE])
RAW_SUPPRESSIONS = dg.AssetKey([RAW, SUPPRESSIONS_TABLE])
FCT_SESSIONS = dg.AssetKey([ANALYTICS, SESSIONS_MART])
DIM_USERS = dg.AssetKey([ANALYTICS, USERS_MART])
FCT_FUNNEL_PROGRESS = dg.AssetKey([ANALYTICS, FUNNEL_PROGRESS_MART])
AGG_FUNNEL_DAILY = dg.AssetKey([ANALYTICS, FUNNEL_DAILY_MART])
REPORT = dg.AssetKey(["reporting", "report"])

INGESTION_GROUP = "ingestion"
STAGING_GROUP = "staging"
MARTS_GROUP = "marts"
REPORTING_GROUP = "reporting"
# at most one ingestion at a time: the dlt state (offsets) has one writer
INGESTION_POOL = "trackflow_ingestion"
# at most one dbt build at a time: two builds replacing rows of the same DuckLake table conflict
# ("another transaction has deleted from it"), and a DuckDB file takes one writer anyway
DBT_POOL = "trackflow_dbt"

# Dagster's run tags for a partition range (a backfill of several days runs as one dbt build)
PARTITION_RANGE_START_TAG = "dagster/asset_partition_range_start"
PARTITION_RANGE_END_TAG = "dagster/asset_partition_range_end"
PARTITION_TAG = "dagster/partition"
