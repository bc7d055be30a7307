"""Jobs: the micro-batch ingestion, the marts (per day partition or range), the micro-batch of
both in one run, and everything."""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

from orchestration.assets.keys import INGESTION_GROUP, MARTS_GROUP, RAW_EVENTS, STAGING_GROUP

# run tag the production instance limits to one run at a time (deploy/dagster.yaml); the op's
# pool (trackflow_ingestion) enforces the same for ad hoc runs launched from the asset graph
INGESTION_TAGS = {"trackflow/role": "ingestion"}


@dataclass(frozen=True)
class Jobs:
    ingest: dg.UnresolvedAssetJobDefinition
    marts: dg.UnresolvedAssetJobDefinition
    everything: dg.UnresolvedAssetJobDefinition
    microbatch: dg.UnresolvedAssetJobDefinition

    def all(self) -> list[dg.UnresolvedAssetJobDefinition]:
        return [self.ingest, self.marts, self.everything, self.microbatch]


def build_jobs(
    dbt_source_checks: list[dg.AssetCheckKey],
    partitions: dg.PartitionsDefinition,
    freshness_checks: list[dg.AssetCheckKey] | None = None,
) -> Jobs:
    """`dbt_source_checks`: dbt's tests on the raw source. They are checks on the raw asset,
    but running them means starting dbt (tens of seconds, most of a micro-batch); they run with
    the staging build instead (everything_job, `dbt build`), and the validator already enforces
    what they test. `freshness_checks`: the marts' per-partition freshness checks, left out of
    the micro-batch (their sensor evaluates them; a missing day would otherwise fail, and
    alert, every few seconds)."""
    raw_source_checks = [k for k in dbt_source_checks if k.asset_key == RAW_EVENTS]
    return Jobs(
        ingest=dg.define_asset_job(
            "ingest_job",
            selection=dg.AssetSelection.groups(INGESTION_GROUP)
            - dg.AssetSelection.checks(*raw_source_checks),
            description="One bounded drain of the Kafka topic into raw (dlt), with its checks.",
            tags=INGESTION_TAGS,
        ),
        marts=dg.define_asset_job(
            "marts_job",
            selection=dg.AssetSelection.groups(STAGING_GROUP, MARTS_GROUP),
            partitions_def=partitions,
            description=(
                "Staging and the marts for one day partition, or for a range in a single dbt "
                "build with --vars min_date/max_date."
            ),
            tags={"trackflow/role": "transformation"},
        ),
        everything=dg.define_asset_job(
            "everything_job",
            selection=dg.AssetSelection.all(),
            partitions_def=partitions,
            description=(
                "Ingestion, staging and the marts of a partition range, in one run (make demo)."
            ),
            tags={**INGESTION_TAGS},
        ),
        # one run instead of an ingest_job run and a marts_job run: the run worker starts (and
        # loads the definitions) once, and the marts see the events the same run loaded
        microbatch=dg.define_asset_job(
            "microbatch_job",
            selection=dg.AssetSelection.groups(INGESTION_GROUP, STAGING_GROUP, MARTS_GROUP)
            - dg.AssetSelection.checks(*raw_source_checks, *(freshness_checks or [])),
            partitions_def=partitions,
            description=(
                "One bounded drain of the Kafka topic into raw, then staging and the marts of "
                "one day partition (today's, when microbatch_sensor starts it), in one run."
            ),
            tags={**INGESTION_TAGS},
        ),
    )
