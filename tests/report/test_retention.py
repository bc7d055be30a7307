"""The report's retention heat map, read back from the HTML, equals analytics.agg_retention
(queried here) and the generator's retention truth (pipelines/retention_truth.py)."""

from __future__ import annotations

from collections import defaultdict

import pytest

from pipelines.report import ReportSummary
from tests.helpers import query
from tests.report.conftest import DemoWarehouse, embedded

pytestmark = pytest.mark.timeout(300)


def test_retention_cells_equal_the_mart_and_the_truth(
    demo_warehouse: DemoWarehouse, report: ReportSummary
) -> None:
    data = embedded(report.path)
    got = {
        (c["cohort_date"], c["period_number"]): (c["cohort_size"], c["retained"], c["is_complete"])
        for c in data["retention"]
    }
    for c in data["retention"]:
        assert c["retention_rate"] == pytest.approx(c["retained"] / c["cohort_size"])
    mart = {
        (cohort, period): (size, retained, complete)
        for cohort, period, size, retained, complete in query(
            demo_warehouse.warehouse,
            "select cohort_date::varchar, period_number, sum(cohort_size), "
            "sum(retained_entities), bool_and(is_period_complete) from analytics.agg_retention "
            "where cohort_grain = 'day' group by all",
        )
    }
    assert got == mart
    # the truth, summed over platform and channel the way the heat map shows it
    truth: dict[tuple[str, int], list] = defaultdict(lambda: [0, 0, True])
    for key, (size, retained, complete) in demo_warehouse.truth["retention"].items():
        grain, cohort, period, _, _ = key.split("|")
        if grain == "day":
            cell = truth[(cohort, int(period))]
            cell[0] += size
            cell[1] += retained
            cell[2] = cell[2] and complete
    assert got == {k: tuple(v) for k, v in truth.items()}
    assert len({cohort for cohort, _ in got}) >= 2  # two days of traffic


def test_the_heat_map_draws_those_cells(report: ReportSummary) -> None:
    data = embedded(report.path)
    specs = embedded(report.path, "report-specs")
    assert "retention" in data["charts"]
    html = report.path.read_text(encoding="utf-8")
    assert 'data-chart="retention"' in html
    [layer, _] = specs["retention"]["layer"]
    drawn = {
        (v["cohort_date"], v["period_number"]): v["retention_rate"]
        for v in specs["retention"]["data"]["values"]
    }
    assert layer["mark"]["type"] == "rect"
    assert drawn == {
        (c["cohort_date"], c["period_number"]): c["retention_rate"] for c in data["retention"]
    }
