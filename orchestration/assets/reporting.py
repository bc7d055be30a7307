"""The HTML report, downstream of the marts; its metadata links to it and embeds a preview."""

import base64
from datetime import UTC, datetime
from typing import Any

import dagster as dg
from dagster._core.storage.asset_check_execution_record import (
    COMPLETED_ASSET_CHECK_EXECUTION_RECORD_STATUSES,
    AssetCheckExecutionRecord,
)

from orchestration.assets.keys import (
    AGG_FUNNEL_DAILY,
    DIM_USERS,
    FCT_FUNNEL_PROGRESS,
    FCT_SESSIONS,
    REPORT,
    REPORTING_GROUP,
)
from orchestration.resources import WarehouseResource
from pipelines.report import ReportError, build_report


@dg.asset(
    key=REPORT,
    group_name=REPORTING_GROUP,
    deps=[FCT_SESSIONS, DIM_USERS, FCT_FUNNEL_PROGRESS, AGG_FUNNEL_DAILY],
    description=(
        "Self-contained HTML report (funnels, sessions and users per day, data quality) "
        "written beside the warehouse; opens without a network."
    ),
    kinds={"html"},
)
def report(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    target = warehouse.open()
    checks = latest_check_results(context)
    try:
        # written to the default place: report.html beside the warehouse. No dbt_run_results:
        # dagster-dbt writes each build's run_results.json in a directory of its own
        # (target/dagster/<op>-<run>-<id>/), and dbt's tests arrive here as asset checks anyway
        summary = build_report(target, checks=checks)
    except ReportError as exc:
        raise dg.Failure(description=str(exc)) from None
    preview = summary.markdown
    if summary.funnel_png:
        encoded = base64.b64encode(summary.funnel_png).decode()
        preview += f"\n\n![main funnel](data:image/png;base64,{encoded})"
    metadata: dict[str, dg.RawMetadataValue] = {
        "report": dg.MetadataValue.path(str(summary.path)),
        "url": dg.MetadataValue.url(summary.path.resolve().as_uri()),
        "preview": dg.MetadataValue.md(preview),
        "has_data": summary.has_data,
        "sessions": int(summary.headline.get("sessions", 0) or 0),
        "checks_failed": int(summary.headline.get("checks_failed", 0) or 0),
    }
    if summary.funnel_png_path:
        metadata["funnel_png"] = dg.MetadataValue.path(str(summary.funnel_png_path))
    context.log.info(f"report written to {summary.path}")
    return dg.MaterializeResult(metadata=metadata)


def latest_check_results(context: dg.AssetExecutionContext) -> list[dict[str, Any]]:
    """The latest completed evaluation of every asset check of the code location, as the
    report's `checks`: dbt's tests (source "dbt") and the others (source "dagster").

    A check whose latest execution is only planned (a later step of this very run, or a run that
    died before it) shows its latest completed evaluation; a check never evaluated is left out.
    """
    # the whole graph the run's job was built from (the job's own is scoped to its selection;
    # a run executed in process has no repository definition on its context)
    graph = context.job_def.asset_layer.asset_graph.source_asset_graph
    keys = sorted(graph.asset_check_keys, key=lambda k: k.to_user_string())
    dbt_keys = {
        key
        for assets_def in graph.assets_defs
        if any("dbt" in spec.kinds for spec in assets_def.specs)
        for key in assets_def.check_keys
    }
    storage = context.instance.event_log_storage
    latest = storage.get_latest_asset_check_execution_by_key(keys)
    out = []
    for key in keys:
        record: AssetCheckExecutionRecord | None = latest.get(key)
        if (
            record is not None
            and record.status not in COMPLETED_ASSET_CHECK_EXECUTION_RECORD_STATUSES
        ):
            done = storage.get_asset_check_execution_history(
                key, limit=1, status=COMPLETED_ASSET_CHECK_EXECUTION_RECORD_STATUSES
            )
            record = done[0] if done else None
        event = record.event if record is not None else None
        evaluation = event.asset_check_evaluation if event is not None else None
        if event is None or evaluation is None:
            continue
        meta = {k: v.value for k, v in evaluation.metadata.items()}
        out.append(
            {
                "source": "dbt" if key in dbt_keys else "dagster",
                "name": key.name,
                "asset": key.asset_key.to_user_string(),
                "passed": evaluation.passed,
                "severity": evaluation.severity.value,
                # our checks put these in their metadata; dbt's give the failing row count
                "actual": meta.get("actual", meta.get("dagster_dbt/failed_row_count")),
                "threshold": meta.get("threshold", 0 if key in dbt_keys else None),
                # ours describe a failure; dbt's say pass/warn/fail
                "detail": evaluation.description or meta.get("reason") or meta.get("status"),
                "ran_at": datetime.fromtimestamp(event.timestamp, UTC).isoformat(),
            }
        )
    return out


reporting_assets = [report]
