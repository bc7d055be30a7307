"""The dbt models as dbt assets: staging/intermediate tables, and the daily-partitioned marts.

The translator maps every dbt source onto the key of the dlt asset that loads it
(`source('raw', 'tracking_events')` -> raw/tracking_events), so the graph is connected. A marts
run over a partition range is one `dbt build` with `--vars {min_date, max_date}` (inclusive
ISO dates); the models rebuild exactly the entities touched by that window.
"""

import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliInvocation,
    DbtCliResource,
    dbt_assets,
)

from orchestration.assets.keys import MARTS_GROUP, STAGING_GROUP
from orchestration.partitions import daily_partitions
from orchestration.project import dbt_project
from orchestration.resources import WarehouseResource

VIEWS_SELECT = "path:models/staging path:models/intermediate"
MARTS_SELECT = "path:models/marts"
# the column that puts a mart's row on a day (rows of the run's window go in the metadata)
DAY_COLUMNS = ("session_date", "attempt_date", "first_seen_date", "event_date")


class TrackflowDbtTranslator(DagsterDbtTranslator):
    """Keys are <schema>/<name>: raw/tracking_events (the dlt asset), staging/..., analytics/..."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        # a source's schema is the dlt dataset (raw) and its name the table: the dlt asset's key
        return dg.AssetKey([dbt_resource_props["schema"], dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        fqn = dbt_resource_props.get("fqn", [])
        return MARTS_GROUP if "marts" in fqn else STAGING_GROUP


translator = TrackflowDbtTranslator(
    settings=DagsterDbtTranslatorSettings(
        enable_asset_checks=True, enable_source_tests_as_checks=True
    )
)


def run_window_vars(context: dg.AssetExecutionContext) -> dict[str, str]:
    """min_date/max_date (inclusive) of the run's partition window; none when unpartitioned.

    Read from the run's tags, so a one-day run (the marts schedule: a partition key, no range
    tags) gets its day too, and the unpartitioned staging assets get the same vars as the marts:
    staging refreshes just those days and one dbt parse serves both calls.
    """
    tags = context.run.tags  # Dagster's run tags for a partition and a partition range
    start = tags.get("dagster/asset_partition_range_start") or tags.get("dagster/partition")
    end = tags.get("dagster/asset_partition_range_end") or tags.get("dagster/partition")
    return {"min_date": start, "max_date": end} if start and end else {}


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


def _row_counts(
    warehouse: Path, keys: Sequence[dg.AssetKey], window: Mapping[str, str]
) -> dict[dg.AssetKey, dict[str, int]]:
    counts: dict[dg.AssetKey, dict[str, int]] = {}
    if not warehouse.exists():
        return counts
    with duckdb.connect(str(warehouse), read_only=True) as con:
        for key in keys:
            table = ".".join(key.path)
            try:
                columns = {
                    r[0]
                    for r in con.execute(
                        "select column_name from information_schema.columns "
                        "where table_schema = ? and table_name = ?",
                        [key.path[0], key.path[-1]],
                    ).fetchall()
                }
                row = con.execute(f"select count(*) from {table}").fetchone()
                entry = {"dagster/row_count": int(row[0]) if row else 0}
                day = next((c for c in DAY_COLUMNS if c in columns), None)
                if window and day:
                    row = con.execute(
                        f"select count(*) from {table} where {day} between ? and ?",
                        [window["min_date"], window["max_date"]],
                    ).fetchone()
                    entry["rows_in_window"] = int(row[0]) if row else 0
                counts[key] = entry
            except duckdb.Error:
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
    keys = [context.asset_key_for_output(e.output_name) for e in events if isinstance(e, dg.Output)]
    counts = _row_counts(warehouse.path, keys, dbt_vars)
    for event in events:
        if isinstance(event, dg.Output):
            key = context.asset_key_for_output(event.output_name)
            extra: dict[str, Any] = dict(counts.get(key, {}))
            if dbt_vars:
                extra["dbt_vars"] = dg.MetadataValue.json(dict(dbt_vars))
            event = event.with_metadata({**event.metadata, **extra})
        yield event
    if not invocation.is_successful():
        raise dg.Failure(description=_failure_line(invocation))


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    select=VIEWS_SELECT,
    dagster_dbt_translator=translator,
    name="dbt_staging",
    backfill_policy=dg.BackfillPolicy.single_run(),
)
def dbt_staging(
    context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource
) -> Iterator[Any]:
    """Staging and intermediate tables and their tests, refreshed for the run's days."""
    yield from run_dbt(context, dbt, warehouse, run_window_vars(context))


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    select=MARTS_SELECT,
    dagster_dbt_translator=translator,
    name="dbt_marts",
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
)
def dbt_marts(
    context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource
) -> Iterator[Any]:
    """The marts, one day partition per event day; a range runs as one dbt build."""
    yield from run_dbt(context, dbt, warehouse, run_window_vars(context))


transformation_assets = [dbt_staging, dbt_marts]
