"""The report's top conversion drivers, read back from the HTML (the embedded data and the
tables a reader sees), equal analytics.agg_conversion_drivers (queried here) and the generator's
drivers truth (pipelines/drivers_truth.py)."""

from __future__ import annotations

import html
import math
import re
from collections import defaultdict

import pytest

from pipelines.report import ReportSummary
from pipelines.report.warehouse import TOP_DRIVERS
from tests.helpers import query
from tests.report.conftest import DemoWarehouse, embedded

pytestmark = pytest.mark.timeout(300)


def test_top_drivers_equal_the_mart_and_the_truth(
    demo_warehouse: DemoWarehouse, report: ReportSummary
) -> None:
    shown = embedded(report.path)["drivers"]
    # every driver of the mart, grouped by transition and ordered as the report promises:
    # significant first, then the odds ratio furthest from 1 on the log scale, then the name
    by_transition: dict[tuple[str, int], list[tuple]] = defaultdict(list)
    for row in query(
        demo_warehouse.warehouse,
        "select funnel_name, from_step, feature, converted_with, dropped_with, "
        "converted_total, dropped_total, odds_ratio, is_significant "
        "from analytics.agg_conversion_drivers",
    ):
        by_transition[(row[0], row[1])].append(row)
    expected = []
    for key in sorted(by_transition):
        ranked = sorted(by_transition[key], key=lambda r: (not r[8], -abs(math.log(r[7])), r[2]))
        expected += [r[:7] for r in ranked[:TOP_DRIVERS]]
    got = [
        (
            d["funnel_name"],
            d["from_step"],
            d["feature"],
            d["converted_with"],
            d["dropped_with"],
            d["converted_total"],
            d["dropped_total"],
        )
        for d in shown
    ]
    assert got == expected
    assert got, "the demo traffic should have drivers"
    # the counts are the truth's (computed from the true events, not from the mart)
    truth = demo_warehouse.truth["drivers"]
    labels = {(k.split("|")[0], int(k.split("|")[1]), _label(k)): v for k, v in truth.items()}
    for funnel, step, feature, *counts in got:
        assert labels[(funnel, step, feature)] == counts, (funnel, step, feature)


def test_the_drivers_tables_show_those_rows(report: ReportSummary) -> None:
    page = report.path.read_text(encoding="utf-8")
    shown = embedded(report.path)["drivers"]
    for d in shown:
        block = re.search(
            rf'data-drivers="{re.escape(d["funnel_name"])}:{d["from_step"]}">(.*?)</table>',
            page,
            re.S,
        )
        assert block, d
        cells = [
            [html.unescape(c) for c in re.findall(r"<td>(.*?)</td>", row)]
            for row in re.findall(r"<tr>(.*?)</tr>", block.group(1))
        ]
        assert [
            d["feature"] + (" *" if d["is_significant"] else ""),
            f"{d['converted_with']:,} of {d['converted_total']:,}",
            f"{d['dropped_with']:,} of {d['dropped_total']:,}",
            f"{d['odds_ratio']:.2f}",
            f"{d['odds_ratio_ci_lower']:.2f} to {d['odds_ratio_ci_upper']:.2f}",
        ] in cells


def _label(key: str) -> str:
    """The mart's feature label for a truth key funnel|step|type|event|property|value."""
    _, _, kind, event, prop, value = key.split("|")
    return event if kind == "event" else f"{event} {prop}={value}"
