"""The trackflow report: funnels, sessions and data quality from the warehouse, as one
self-contained HTML file (Vega-Lite charts with the library inlined; opens without a network).

    from pipelines.report import build_report
    summary = build_report(Path("data/warehouse.duckdb"), Path("data/report.html"))

The page embeds every number it shows as JSON in <script id="report-data">. No dagster import
here: the Dagster asset calls build_report and turns the ReportSummary into metadata.
"""

from pipelines.report.build import (
    ReportError,
    ReportSummary,
    build_report,
    default_output,
)

__all__ = ["ReportError", "ReportSummary", "build_report", "default_output"]
