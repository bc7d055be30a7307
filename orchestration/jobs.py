"""Jobs: the micro-batch ingestion, the marts (per day partition or range), and everything."""

import dagster as dg

from orchestration.assets.keys import INGESTION_GROUP, MARTS_GROUP, RAW_EVENTS, STAGING_GROUP
from orchestration.assets.transformation import dbt_staging
from orchestration.partitions import daily_partitions

# run tag the production instance limits to one run at a time (deploy/dagster.yaml); the op's
# pool (trackflow_ingestion) enforces the same for ad hoc runs launched from the asset graph
INGESTION_TAGS = {"trackflow/role": "ingestion"}

# dbt's tests on the raw source are checks on the raw asset, but running them means starting
# dbt (tens of seconds, most of a micro-batch); they run with the staging build instead
# (everything_job, `dbt build`), and the validator already enforces what they test
_DBT_SOURCE_CHECKS = [k for k in dbt_staging.check_keys if k.asset_key == RAW_EVENTS]

ingest_job = dg.define_asset_job(
    "ingest_job",
    selection=dg.AssetSelection.groups(INGESTION_GROUP)
    - dg.AssetSelection.checks(*_DBT_SOURCE_CHECKS),
    description="One bounded drain of the Kafka topic into raw (dlt), with its checks.",
    tags=INGESTION_TAGS,
)

marts_job = dg.define_asset_job(
    "marts_job",
    selection=dg.AssetSelection.groups(STAGING_GROUP, MARTS_GROUP),
    partitions_def=daily_partitions,
    description=(
        "Staging and the marts for one day partition, or for a range in a single dbt "
        "build with --vars min_date/max_date."
    ),
    tags={"trackflow/role": "transformation"},
)

everything_job = dg.define_asset_job(
    "everything_job",
    selection=dg.AssetSelection.all(),
    partitions_def=daily_partitions,
    description="Ingestion, staging and the marts of a partition range, in one run (make demo).",
    tags={**INGESTION_TAGS},
)
