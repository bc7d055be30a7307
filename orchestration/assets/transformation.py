"""The dbt models as dbt assets: staging/intermediate tables, and the daily-partitioned marts.

The translator maps every dbt source onto the key of the dlt asset that loads it
(`source('raw', 'tracking_events')` -> raw/tracking_events), so the graph is connected. A marts
run over a partition range is one `dbt build` with `--vars {min_date, max_date}` (inclusive
ISO dates); the models rebuild exactly the entities touched by that window.
"""

import json
from collections.abc import Iterator, Mapping
from typing import Any

import dagster as dg
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliInvocation,
    DbtCliResource,
    DbtProject,
    dbt_assets,
)

from orchestration.assets.keys import (
    DBT_POOL,
    MARTS_GROUP,
    PARTITION_RANGE_END_TAG,
    PARTITION_RANGE_START_TAG,
    PARTITION_TAG,
    STAGING_GROUP,
)
from orchestration.assets.partial_parse import keep_partial_parse
from orchestration.resources import WarehouseResource
from pipelines.warehouse import Warehouse, WarehouseError

STAGING_SELECT = "path:models/staging path:models/intermediate"
MARTS_SELECT = "path:models/marts"
# the model's `meta.window_column` (the day a row belongs to, which windowed dbt tests filter on
# too), carried in the asset's metadata so a run can count the rows of its window
WINDOW_COLUMN_METADATA = "trackflow/window_column"


class TrackflowDbtTranslator(DagsterDbtTranslator):
    """Keys are <schema>/<name>: raw/tracking_events (the dlt asset), staging/..., analytics/..."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        # a source's schema is the dlt dataset (raw) and its name the table: the dlt asset's key
        return dg.AssetKey([dbt_resource_props["schema"], dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        fqn = dbt_resource_props.get("fqn", [])
        return MARTS_GROUP if "marts" in fqn else STAGING_GROUP

    def get_metadata(self, dbt_resource_props: Mapping[str, Any]) -> Mapping[str, Any]:
        metadata = dict(super().get_metadata(dbt_resource_props))
        meta = (dbt_resource_props.get("config") or {}).get("meta") or {}
        if meta.get("window_column"):
            metadata[WINDOW_COLUMN_METADATA] = meta["window_column"]
        return metadata


translator = TrackflowDbtTranslator(
    settings=DagsterDbtTranslatorSettings(
        enable_asset_checks=True,
        enable_source_tests_as_checks=True,
        enable_code_references=True,  # the UI links each model to its .sql file
    )
)


def run_window_vars(context: dg.AssetExecutionContext) -> dict[str, str]:
    """min_date/max_date (inclusive) of the run's partition window; none when unpartitioned.

    Read from the run's tags, so a one-day run (the marts schedule: a partition key, no range
    tags) gets its day too, and the unpartitioned staging assets get the same vars as the marts:
    staging refreshes just those days and one dbt parse serves both calls.
    """
    tags = context.run.tags
    start = tags.get(PARTITION_RANGE_START_TAG) or tags.get(PARTITION_TAG)
    end = tags.get(PARTITION_RANGE_END_TAG) or tags.get(PARTITION_TAG)
    return {"min_date": start, "max_date": end} if start and end else {}


# a commit that lost to another writer's on the same DuckLake table: safe to run again
CONFLICT = "Transaction conflict"
CONFLICT_RETRIES = 3


def _failure_line(invocation: DbtCliInvocation) -> str:
    try:
        results = invocation.get_artifact("run_results.json")["results"]
    except Exception:  # noqa: BLE001 - no artifact: dbt failed before running anything
        return "dbt build failed before running any node; see the dbt log in the run's logs"
    bad = [r for r in results if r.get("status") in ("error", "fail", "runtime error")]
    if not bad:
        return "dbt build failed; see the dbt log in the run's logs"
    first = bad[0]
    message = (first.get("message") or "").strip().splitlines()
    return (
        f"dbt build: {len(bad)} node(s) failed, first {first['unique_id']}: "
        f"{message[0] if message else first.get('status')}"
    )


def window_column(context: dg.AssetExecutionContext, key: dg.AssetKey) -> str | None:
    column = context.assets_def.specs_by_key[key].metadata.get(WINDOW_COLUMN_METADATA)
    return str(column) if column else None


def _row_counts(
    warehouse: Warehouse, days: Mapping[dg.AssetKey, str | None], window: Mapping[str, str]
) -> dict[dg.AssetKey, dict[str, int]]:
    counts: dict[dg.AssetKey, dict[str, int]] = {}
    if not warehouse.exists():
        return counts
    with warehouse.connect(read_only=True) as sql:
        for key, day in days.items():
            table = ".".join(key.path)
            try:
                entry = {"dagster/row_count": int(sql.scalar(f"select count(*) from {table}"))}
                if window and day:
                    entry["rows_in_window"] = int(
                        sql.scalar(
                            f"select count(*) from {table} where {day} between ? and ?",
                            [window["min_date"], window["max_date"]],
                        )
                    )
                counts[key] = entry
            except WarehouseError:
                continue  # not built (skipped after an upstream failure)
    return counts


def run_dbt(
    context: dg.AssetExecutionContext,
    dbt: DbtCliResource,
    warehouse: WarehouseResource,
    dbt_vars: Mapping[str, str],
) -> Iterator[Any]:
    """`dbt build` of the context's selection; events are held until dbt exits (dbt holds the
    DuckDB file meanwhile) so row counts can be attached to each materialization."""
    args = ["build"]
    if dbt_vars:
        args += ["--vars", json.dumps(dict(dbt_vars))]
    with warehouse.dbt_env():
        invocation = dbt.cli(args, context=context, raise_on_error=False)
    events = list(invocation.stream())
    # the next invocation with the same vars (the marts after staging, the next run of the same
    # day) starts from this one's parse
    keep_partial_parse(invocation.target_path, invocation.project_dir)
    keys = [context.asset_key_for_output(e.output_name) for e in events if isinstance(e, dg.Output)]
    counts = _row_counts(warehouse.open(), {k: window_column(context, k) for k in keys}, dbt_vars)
    for event in events:
        if isinstance(event, dg.Output):
            key = context.asset_key_for_output(event.output_name)
            extra: dict[str, Any] = dict(counts.get(key, {}))
            if dbt_vars:
                extra["dbt_vars"] = dg.MetadataValue.json(dict(dbt_vars))
            event = event.with_metadata({**event.metadata, **extra})
        yield event
    if not invocation.is_successful():
        reason = _failure_line(invocation)
        if CONFLICT in reason:
            # the orchestration runs one dbt build at a time (pool trackflow_dbt); a writer
            # outside it (a build by hand) can still win a commit: run again, then give up
            raise dg.RetryRequested(max_retries=CONFLICT_RETRIES, seconds_to_wait=10)
        raise dg.Failure(description=reason)


def build_dbt_assets(
    project: DbtProject, partitions: dg.PartitionsDefinition
) -> list[dg.AssetsDefinition]:
    """Staging (unpartitioned: refreshed for the run's days) and the day-partitioned marts."""

    @dbt_assets(
        manifest=project.manifest_path,
        project=project,
        select=STAGING_SELECT,
        dagster_dbt_translator=translator,
        name="dbt_staging",
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool=DBT_POOL,
    )
    def dbt_staging(
        context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource
    ) -> Iterator[Any]:
        """Staging and intermediate tables and their tests, refreshed for the run's days."""
        yield from run_dbt(context, dbt, warehouse, run_window_vars(context))

    @dbt_assets(
        manifest=project.manifest_path,
        project=project,
        select=MARTS_SELECT,
        dagster_dbt_translator=translator,
        name="dbt_marts",
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool=DBT_POOL,
    )
    def dbt_marts(
        context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource
    ) -> Iterator[Any]:
        """The marts, one day partition per event day; a range runs as one dbt build."""
        yield from run_dbt(context, dbt, warehouse, run_window_vars(context))

    return [dbt_staging, dbt_marts]
