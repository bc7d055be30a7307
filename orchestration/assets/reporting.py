"""The HTML report, downstream of the marts; its metadata links to it and embeds a preview."""

import base64

import dagster as dg

from orchestration.assets.keys import (
    AGG_FUNNEL_DAILY,
    DIM_USERS,
    FCT_FUNNEL_PROGRESS,
    FCT_SESSIONS,
    REPORT,
    REPORTING_GROUP,
)
from orchestration.project import dbt_project
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
    try:
        summary = build_report(
            target,  # written to the default place: report.html beside the warehouse
            dbt_run_results=dbt_project().target_path / "run_results.json",
        )
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


reporting_assets = [report]
