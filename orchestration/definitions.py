"""The trackflow code location: assembles assets, checks, jobs, schedules, sensors, resources.

The one place that reads the settings and parses the dbt project (when its manifest is stale);
every other module only defines what is assembled here.
"""

from __future__ import annotations

from collections.abc import Callable

import dagster as dg

from orchestration.alerts import build_alert_sensors
from orchestration.assets.ingestion import build_ingestion_assets
from orchestration.assets.reporting import reporting_assets
from orchestration.assets.transformation import build_dbt_assets
from orchestration.checks import build_checks
from orchestration.freshness import build_partition_freshness, raw_freshness_policy
from orchestration.jobs import build_jobs
from orchestration.microbatch import build_microbatch_sensor
from orchestration.operations import forget_job, replay_job, suppressions
from orchestration.partitions import daily_partitions
from orchestration.project import dbt_project, prepare_if_stale
from orchestration.resources import build_resources
from orchestration.schedules import build_schedules
from orchestration.sensors import build_late_data_sensor
from pipelines.config import Settings
from pipelines.warehouse import open_warehouse


def operated(owner: str) -> Callable[[dg.AssetSpec], dg.AssetSpec]:
    """Who answers for an asset and which layer it is, on every asset."""

    def mark(spec: dg.AssetSpec) -> dg.AssetSpec:
        layer = spec.group_name or "default"
        return spec.merge_attributes(owners=[owner], tags={"trackflow/layer": layer})

    return mark


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    settings = settings or Settings()
    project = dbt_project()
    prepare_if_stale(project, open_warehouse(settings.warehouse))
    partitions = daily_partitions(settings.orchestration.partitions_start)
    dbt_staging, dbt_marts = build_dbt_assets(project, partitions)
    mark = operated(settings.orchestration.asset_owner)
    # links to the code in the UI; owners and a layer tag on every asset
    assets = [
        asset.map_asset_specs(mark)
        for asset in dg.with_source_code_references(
            [
                *build_ingestion_assets(raw_freshness_policy(settings.orchestration)),
                dbt_staging,
                dbt_marts,
                *reporting_assets,
            ]
        )
        if isinstance(asset, dg.AssetsDefinition)
    ]
    external = [mark(suppressions)]
    freshness_checks, freshness_sensor = build_partition_freshness(
        dbt_marts, settings.orchestration
    )
    jobs = build_jobs(
        list(dbt_staging.check_keys),
        partitions,
        [key for check in freshness_checks for key in check.check_keys],
    )
    return dg.Definitions(
        assets=[*assets, *external],
        asset_checks=[*build_checks({key for a in assets for key in a.keys}), *freshness_checks],
        jobs=[*jobs.all(), forget_job, replay_job],
        schedules=build_schedules(jobs, settings.orchestration),
        sensors=[
            build_late_data_sensor(jobs.marts, partitions),
            build_microbatch_sensor(jobs.microbatch, partitions, settings.orchestration),
            *build_alert_sensors(settings.orchestration),
            freshness_sensor,
        ],
        resources=build_resources(settings),
        # steps of a run go one after another in one process: DuckDB takes one writer at a
        # time, and a check reading the file while dbt writes it would hit the lock
        executor=dg.in_process_executor,
    )


defs = build_definitions()
