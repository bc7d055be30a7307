"""Asset keys shared by assets, checks, jobs and sensors (a dbt source maps onto RAW_*)."""

from __future__ import annotations

import dagster as dg

from pipelines.kafka_source.settings import EVENTS_TABLE, RAW_DATASET, REJECTED_TABLE

RAW_EVENTS = dg.AssetKey([RAW_DATASET, EVENTS_TABLE])
RAW_REJECTED = dg.AssetKey([RAW_DATASET, REJECTED_TABLE])
FCT_SESSIONS = dg.AssetKey(["analytics", "fct_sessions"])
AGG_FUNNEL_DAILY = dg.AssetKey(["analytics", "agg_funnel_daily"])

INGESTION_GROUP = "ingestion"
STAGING_GROUP = "staging"
MARTS_GROUP = "marts"
# at most one ingestion at a time: the dlt state (offsets) has one writer
INGESTION_POOL = "trackflow_ingestion"
