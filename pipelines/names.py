"""Names shared across layers: warehouse schemas and tables, the dlt pipeline. Imports nothing.

The dbt sources (`dbt_project/models/staging/raw/_raw__sources.yml`) declare the same raw tables;
a test keeps the two in step.
"""

from __future__ import annotations

from typing import Final

# schemas (dlt's dataset and dbt's custom schemas, the same inside a DuckLake catalog)
RAW: Final = "raw"
STAGING: Final = "staging"
ANALYTICS: Final = "analytics"

# raw tables, written by ingestion (dlt) or by the operator commands
EVENTS_TABLE: Final = "tracking_events"
REJECTED_TABLE: Final = "tracking_events_rejected"
REPLAYED_TABLE: Final = "tracking_events_replayed"
VIOLATIONS_TABLE: Final = "tracking_plan_violations"
GAPS_TABLE: Final = "ingestion_gaps"
OFFSETS_TABLE: Final = "ingestion_offsets"
SUPPRESSIONS_TABLE: Final = "privacy_suppressions"
ERASURES_TABLE: Final = "privacy_erasures"
DLT_LOADS_TABLE: Final = "_dlt_loads"


def raw(table: str) -> str:
    """`raw.<table>`, the qualified name of a raw table."""
    return f"{RAW}.{table}"


RAW_EVENTS: Final = raw(EVENTS_TABLE)
RAW_REJECTED: Final = raw(REJECTED_TABLE)
RAW_REPLAYED: Final = raw(REPLAYED_TABLE)
RAW_VIOLATIONS: Final = raw(VIOLATIONS_TABLE)
RAW_GAPS: Final = raw(GAPS_TABLE)
RAW_OFFSETS: Final = raw(OFFSETS_TABLE)
RAW_SUPPRESSIONS: Final = raw(SUPPRESSIONS_TABLE)
RAW_ERASURES: Final = raw(ERASURES_TABLE)
RAW_DLT_LOADS: Final = raw(DLT_LOADS_TABLE)

# models the report and the checks read
STG_EVENTS: Final = f"{STAGING}.stg_raw__tracking_events"
SESSIONS_MART: Final = "fct_sessions"
USERS_MART: Final = "dim_users"
FUNNEL_PROGRESS_MART: Final = "fct_funnel_progress"
FUNNEL_DAILY_MART: Final = "agg_funnel_daily"
RETENTION_MART: Final = "agg_retention"
DRIVERS_MART: Final = "agg_conversion_drivers"
MARTS: Final = (
    SESSIONS_MART,
    USERS_MART,
    FUNNEL_PROGRESS_MART,
    FUNNEL_DAILY_MART,
    RETENTION_MART,
    DRIVERS_MART,
)

# the dlt pipeline (its state, holding the offsets, is stored under this name)
PIPELINE_NAME: Final = "trackflow_kafka"
