"""The trackflow code location: assembles assets, checks, jobs, schedules, sensors, resources."""

import dagster as dg

from orchestration.assets.ingestion import ingestion_assets
from orchestration.assets.reporting import reporting_assets
from orchestration.assets.transformation import transformation_assets
from orchestration.checks import build_checks
from orchestration.jobs import everything_job, ingest_job, marts_job
from orchestration.operations import forget_job, replay_job
from orchestration.resources import build_resources
from orchestration.schedules import ingest_schedule, marts_schedule
from orchestration.sensors import late_data_sensor

assets = [*ingestion_assets, *transformation_assets, *reporting_assets]

defs = dg.Definitions(
    assets=assets,
    asset_checks=build_checks({key for a in assets for key in a.keys}),
    jobs=[ingest_job, marts_job, everything_job, forget_job, replay_job],
    schedules=[ingest_schedule, marts_schedule],
    sensors=[late_data_sensor],
    resources=build_resources(),
    # steps of a run go one after another in one process: DuckDB takes one writer at a time,
    # and a check reading the file while dbt writes it would hit the lock
    executor=dg.in_process_executor,
)
