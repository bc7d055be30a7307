"""build_report: the warehouse in, one self-contained HTML file (plus a PNG of the main funnel)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import vl_convert as vlc

from pipelines.dbt import DBT_PROJECT_DIR
from pipelines.names import ANALYTICS, SESSIONS_MART
from pipelines.report import charts, page
from pipelines.report.output import UnsafeOutput, check_output, check_picture, write_atomically
from pipelines.report.plan import tracking_plan
from pipelines.report.quality import (
    dbt_checks,
    empty_quality,
    given_checks,
    quality,
    warehouse_checks,
)
from pipelines.report.warehouse import (
    Reader,
    channel_platform_sessions,
    channels,
    declared_funnels,
    funnels,
    headline,
    landing_pages,
    missing_marts,
    period,
    retention,
    sessions_daily,
    top_drivers,
)
from pipelines.warehouse import Warehouse, WarehouseError, open_warehouse

REPORT_NAME = "report.html"


class ReportError(RuntimeError):
    """The report could not be built; the message says why in one line."""


@dataclass
class ReportSummary:
    path: Path  # the HTML file
    has_data: bool
    headline: dict[str, Any]  # sessions, users, rates, all_time_rejected_rate, checks_failed...
    markdown: str  # a small preview table for Dagster (MetadataValue.md)
    funnel_png: bytes | None = None  # the main funnel chart, for Dagster's preview
    funnel_png_path: Path | None = None
    data: dict[str, Any] = field(default_factory=dict, repr=False)  # what the page embeds


def default_output(warehouse: Warehouse | None = None) -> Path:
    """report.html in the warehouse's local directory (data/report.html by default)."""
    return (warehouse or open_warehouse()).local_dir() / REPORT_NAME


def build_report(
    warehouse: Warehouse | None = None,
    output: Path | None = None,
    checks: list[dict[str, Any]] | None = None,
    *,
    dbt_run_results: Path | None = None,
    dbt_project_dir: Path | None = DBT_PROJECT_DIR,
    now: datetime | None = None,
) -> ReportSummary:
    """Write the report for `warehouse` (the configured one) to `output` (report.html beside it).

    `checks` are check results from the caller (Dagster), each a dict with at least `name` and
    `passed` (optional: source, asset, severity, actual, threshold, detail, ran_at). dbt test
    results are read from `dbt_run_results` (a run_results.json) when given, and the warehouse's
    own evidence (ingestion gaps) is always checked. A warehouse without data gives a page that
    says so. Raises ReportError if the warehouse cannot be read.
    """
    warehouse = warehouse or open_warehouse()
    try:
        output = check_output(
            output or default_output(warehouse),
            create_parent=output is None,  # the default place is ours to create
            protected=warehouse.own_files(),
        )
        picture = check_picture(output.with_name(output.stem + ".funnel.png"))
    except UnsafeOutput as exc:
        raise ReportError(str(exc)) from None
    now = now or datetime.now(UTC)
    data = collect(warehouse, now, checks, dbt_run_results, dbt_project_dir)
    specs = chart_specs(data)
    write_atomically(output, page.render(data, specs).encode("utf-8"))

    png, png_path = None, None
    main = next((f for f in data.get("funnels", []) if f["entered"]), None)
    if main is not None:
        png = vlc.vegalite_to_png(specs[f"funnel:{main['name']}"], scale=1.0)
        png_path = picture
        write_atomically(png_path, png)
    return ReportSummary(
        path=output,
        has_data=data["has_data"],
        headline=headline_numbers(data),
        markdown=markdown(data),
        funnel_png=png,
        funnel_png_path=png_path,
        data=data,
    )


def collect(
    warehouse: Warehouse,
    now: datetime,
    checks: list[dict[str, Any]] | None = None,
    dbt_run_results: Path | None = None,
    dbt_project_dir: Path | None = DBT_PROJECT_DIR,
) -> dict[str, Any]:
    """Everything the page shows, as JSON-ready data (embedded in the page as `report-data`)."""
    data: dict[str, Any] = {
        "version": 1,
        "generated_at": now.astimezone(UTC).isoformat(),
        "warehouse": warehouse.describe().removeprefix("warehouse "),
        "has_data": False,
        "empty_reason": None,
        "period": None,
        "headline": None,
        "funnels": [],
        "sessions_daily": [],
        "landing_pages": [],
        "channels": [],
        "channel_platform_sessions": [],
        "retention": [],
        "drivers": [],
        "quality": None,
        "tracking_plan": None,
    }
    extra = given_checks(checks) + dbt_checks(dbt_run_results)
    if not warehouse.exists():
        data["empty_reason"] = f"The {warehouse.describe()} does not exist yet."
        data["quality"] = {**empty_quality(), "checks": extra}
        return data
    try:
        with warehouse.connect(read_only=True) as sql:
            return _collect(Reader(sql), data, now, extra, dbt_project_dir)
    except WarehouseError as exc:
        raise ReportError(
            f"cannot read the {exc}; if another process is writing it (ingest, dbt), try again "
            "when it is done"
        ) from None


def _collect(
    wh: Reader,
    data: dict[str, Any],
    now: datetime,
    extra: list[dict[str, Any]],
    dbt_project_dir: Path | None,
) -> dict[str, Any]:
    """Everything the page shows when the warehouse can be read (`data` filled in)."""
    q = quality(wh, now)
    q["checks"] = extra + warehouse_checks(wh, q)
    data["quality"] = q
    data["tracking_plan"] = tracking_plan(wh)
    missing = missing_marts(wh)
    if missing:
        data["empty_reason"] = (
            "The marts are not built yet (missing: "
            + ", ".join(f"analytics.{m}" for m in missing)
            + ")."
        )
        return data
    sessions = wh.sql.scalar(f"select count(*) from {ANALYTICS}.{SESSIONS_MART}")
    if not sessions:
        data["empty_reason"] = "analytics.fct_sessions has no sessions yet."
        return data
    data.update(
        has_data=True,
        period=period(wh),
        headline=headline(wh),
        funnels=funnels(wh, declared_funnels(dbt_project_dir)),
        sessions_daily=sessions_daily(wh),
        landing_pages=landing_pages(wh),
        channels=channels(wh),
        channel_platform_sessions=channel_platform_sessions(wh),
        retention=retention(wh),
        drivers=top_drivers(wh),
    )
    return data


def chart_specs(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Chart id -> Vega-Lite spec; the page has one element per id (data-chart=...)."""
    specs: dict[str, dict[str, Any]] = {}
    if data["has_data"]:
        for f in data["funnels"]:
            if not f["entered"]:
                continue
            specs[f"funnel:{f['name']}"] = charts.funnel(f)
            specs[f"funnel:{f['name']}:platform"] = charts.funnel_breakdown(f, "platform")
            specs[f"funnel:{f['name']}:channel"] = charts.funnel_breakdown(f, "channel")
        specs["sessions_users"] = charts.sessions_users(data["sessions_daily"])
        specs["rates"] = charts.rates(data["sessions_daily"])
        specs["landing_pages"] = charts.landing_pages(data["landing_pages"])
        specs["channels"] = charts.channels(data["channel_platform_sessions"])
        if data["retention"]:
            specs["retention"] = charts.retention(data["retention"])
    q = data["quality"]
    if q and q["rejected_by_code"]:
        specs["rejected_by_code"] = charts.rejected_by_code(q["rejected_by_code"])
    data["charts"] = sorted(specs)
    return specs


def headline_numbers(data: dict[str, Any]) -> dict[str, Any]:
    q = data["quality"] or {}
    checks = q.get("checks", [])
    out: dict[str, Any] = {
        "has_data": data["has_data"],
        "all_time_rejected_rate": q.get("all_time_rejected_rate"),
        "last_load_at": q.get("last_load_at"),
        "checks_passed": sum(c["passed"] for c in checks),
        "checks_failed": sum(not c["passed"] for c in checks),
        "charts": len(data.get("charts", [])),
    }
    if data["has_data"]:
        h = data["headline"]
        out.update(
            sessions=h["sessions"],
            users=h["users"],
            bounce_rate=h["bounce_rate"],
            engagement_rate=h["engagement_rate"],
        )
        for f in data["funnels"]:
            out[f"funnel_{f['name']}_conversion"] = f["conversion_rate"]
    return out


def markdown(data: dict[str, Any]) -> str:
    """A small preview for Dagster's asset page: headline numbers and the main funnel's steps."""
    if not data["has_data"]:
        return f"**No data yet.** {data['empty_reason']}"
    h, p, q = data["headline"], data["period"], data["quality"]
    lines = [
        f"**{p['first_date']} to {p['last_date']}**",
        "",
        "| sessions | users | bounce | engaged | rejected |",
        "|---:|---:|---:|---:|---:|",
        f"| {page.number(h['sessions'])} | {page.number(h['users'])} | "
        f"{page.percent(h['bounce_rate'])} | {page.percent(h['engagement_rate'])} | "
        f"{page.percent(q['all_time_rejected_rate'], 2)} |",
    ]
    main = next((f for f in data["funnels"] if f["entered"]), None)
    if main:
        lines += [
            "",
            f"**Funnel {main['name']}** (median time to convert "
            f"{page.duration(main['median_seconds_to_convert'])})",
            "",
            "| step | reached | from previous | from first |",
            "|---|---:|---:|---:|",
        ]
        lines += [
            f"| {s['step_number']}. {s['step_name']} | {page.number(s['reached'])} | "
            f"{page.percent(s['conversion_from_previous'])} | "
            f"{page.percent(s['conversion_from_first'])} |"
            for s in main["steps"]
        ]
    return "\n".join(lines)
