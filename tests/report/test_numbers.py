"""The report's numbers, read back from the JSON embedded in the HTML, equal the marts (queried
here independently) and, wherever the generator knows them, its ground truth (computed from the
true events by pipelines/generator_truth.py, so an error shared by the marts and the report
still shows)."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
import yaml

from pipelines.report import ReportSummary, build_report
from pipelines.warehouse import DuckDBFile
from tests.helpers import query, scalar
from tests.report.conftest import REPO_ROOT, DemoWarehouse, embedded

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def data(report: ReportSummary) -> dict:
    return embedded(report.path)


def test_every_declared_funnel_is_in_the_report(data: dict) -> None:
    config = yaml.safe_load((REPO_ROOT / "dbt_project" / "dbt_project.yml").read_text())
    declared = [f["name"] for f in config["vars"]["funnels__definitions"]]
    assert [f["name"] for f in data["funnels"]][: len(declared)] == declared
    assert data["has_data"] is True


def test_funnel_steps_and_conversion_equal_the_marts(
    demo_warehouse: DemoWarehouse, data: dict
) -> None:
    wh = demo_warehouse.warehouse
    reached = {
        (f, s): n
        for f, s, n in query(
            wh,
            "select funnel_name, step_number, sum(attempts_reached) "
            "from analytics.agg_funnel_daily group by all",
        )
    }
    attempts = {
        f: (n, c)
        for f, n, c in query(
            wh,
            "select funnel_name, count(*) filter (where not is_excluded), count(*) filter (where "
            "is_converted) from analytics.fct_funnel_progress group by 1",
        )
    }
    medians = dict(
        query(
            wh,
            "select funnel_name, quantile_cont(seconds_to_convert, 0.5) from "
            "analytics.fct_funnel_progress where is_converted group by 1",
        )
    )
    assert {f["name"] for f in data["funnels"] if f["entered"]} == set(attempts)
    checked = 0
    for f in data["funnels"]:
        if not f["entered"]:
            continue
        entered, converted = attempts[f["name"]]
        assert (f["entered"], f["converted"]) == (entered, converted), f["name"]
        assert f["conversion_rate"] == pytest.approx(converted / entered)
        assert [s["reached"] for s in f["steps"]] == [
            reached[(f["name"], k)] for k in range(1, f["step_count"] + 1)
        ]
        # each step is measured from the required step before it (optional steps are skipped)
        required = [s for s in f["steps"] if not s["optional"]]
        for s in f["steps"][1:]:
            prev = [r for r in required if r["step_number"] < s["step_number"]][-1]
            assert s["conversion_from_previous"] == pytest.approx(
                s["reached"] / prev["reached"] if prev["reached"] else None
            )
        if f["name"] in medians:
            assert f["median_seconds_to_convert"] == pytest.approx(medians[f["name"]])
            checked += 1
        else:
            assert f["median_seconds_to_convert"] is None
    assert checked, "the demo data should convert at least one funnel"


def test_funnels_equal_the_truth(demo_warehouse: DemoWarehouse, data: dict) -> None:
    """Every declared funnel's attempts and steps as the generator knows them (computed from the
    true events, not from the marts)."""
    truth = demo_warehouse.truth["funnels"]
    shown = {f["name"]: f for f in data["funnels"]}
    assert set(truth) <= set(shown)
    for name, expected in truth.items():
        f = shown[name]
        assert [s["step_name"] for s in f["steps"]] == expected["steps"], name
        assert [s["reached"] for s in f["steps"]] == expected["reached"], name
        assert (f["entered"], f["converted"]) == (
            expected["reached"][0],
            expected["reached"][-1],
        ), name
    assert truth["checkout"]["reached"][-1] > 0  # the main funnel converts in the demo data


def test_exclusion_and_optional_sections_equal_the_marts_and_truth(
    demo_warehouse: DemoWarehouse, report: ReportSummary, data: dict
) -> None:
    """The funnel features' sections: excluded attempts and each optional step taken and
    skipped, in the page's text and its data, against SQL on fct_funnel_progress and the truth."""
    wh = demo_warehouse.warehouse
    truth = demo_warehouse.truth["funnels"]
    html = report.path.read_text(encoding="utf-8")
    shown = {f["name"]: f for f in data["funnels"]}
    excluded = dict(
        query(
            wh,
            "select funnel_name, count(*) filter (where is_excluded) "
            "from analytics.fct_funnel_progress group by 1",
        )
    )
    checked = 0
    for name, f in shown.items():
        assert f["excluded"] == excluded.get(name, 0) == truth[name]["excluded"], name
        section = re.search(rf'data-metric="funnel\.{name}\.excluded">([0-9,]+)</b>', html)
        if f["excluded"]:
            assert section and int(section[1].replace(",", "")) == f["excluded"], name
        else:
            assert section is None, name
        steps = truth[name]["steps"]
        assert {o["step_name"]: o["skipped"] for o in f["optional_steps"]} == truth[name][
            "optional_skipped"
        ], name
        for o in f["optional_steps"]:
            k = steps.index(o["step_name"]) + 1
            later = " or ".join(f"step_{q}_at is not null" for q in range(k + 1, len(steps) + 1))
            [(taken, skipped)] = query(
                wh,
                f"select count(step_{k}_at), count(*) filter (where step_{k}_at is null "
                f"and ({later})) from analytics.fct_funnel_progress "
                f"where funnel_name = '{name}' and not is_excluded",
            )
            assert (o["taken"], o["skipped"]) == (taken, skipped), name
            row = f"<tr><td>{o['step_name']}</td><td>{taken:,}</td><td>{skipped:,}</td></tr>"
            assert row in html, name
            checked += 1
    assert checked and shown["checkout_per_product"]["excluded"] > 0


def test_funnel_breakdowns_equal_the_marts(demo_warehouse: DemoWarehouse, data: dict) -> None:
    for dim in ("platform", "channel"):
        expected = {
            (f, v, s): (e, r)
            for f, v, s, e, r in query(
                demo_warehouse.warehouse,
                f"select funnel_name, {dim}, step_number, sum(attempts_entered), "
                f"sum(attempts_reached) from analytics.agg_funnel_daily group by all",
            )
        }
        got = {
            (f["name"], row[dim], row["step_number"]): (row["entered"], row["reached"])
            for f in data["funnels"]
            for row in f[f"by_{dim}"]
        }
        assert got == expected, dim


def test_sessions_users_and_rates_per_day_equal_the_marts(
    demo_warehouse: DemoWarehouse, data: dict
) -> None:
    rows = query(
        demo_warehouse.warehouse,
        """select session_date::varchar, count(*), count(distinct user_key),
                  sum(case when is_bounce then 1 else 0 end),
                  sum(case when is_engaged then 1 else 0 end)
           from analytics.fct_sessions group by 1 order by 1""",
    )
    got = [
        (d["date"], d["sessions"], d["users"], d["bounces"], d["engaged"])
        for d in data["sessions_daily"]
    ]
    assert got == [tuple(r) for r in rows]
    assert len(got) >= 2  # two days of traffic
    for d in data["sessions_daily"]:
        assert d["bounce_rate"] == pytest.approx(d["bounces"] / d["sessions"])
        assert d["engagement_rate"] == pytest.approx(d["engaged"] / d["sessions"])
    h = data["headline"]
    assert h["sessions"] == scalar(
        demo_warehouse.warehouse, "select count(*) from analytics.fct_sessions"
    )
    users = scalar(demo_warehouse.warehouse, "select count(*) from analytics.dim_users")
    assert h["users"] == users
    assert h["bounce_rate"] == pytest.approx(sum(r[3] for r in rows) / h["sessions"])


def test_sessions_users_and_events_equal_the_truth(
    demo_warehouse: DemoWarehouse, data: dict
) -> None:
    """The figures the generator knows by construction, per day and in the headline."""
    truth = demo_warehouse.truth
    days = truth["sessions_daily"]
    got = {
        d["date"]: {k: d[k] for k in ("sessions", "users", "bounces", "engaged", "converted")}
        for d in data["sessions_daily"]
    }
    assert got == days
    h = data["headline"]
    assert (h["sessions"], h["users"], h["identified_users"]) == (
        truth["sessions"],
        truth["users"],
        truth["identified_users"],
    )
    assert (h["events"], h["views"]) == (truth["session_events"], truth["session_views"])
    assert h["bounce_rate"] == pytest.approx(
        sum(d["bounces"] for d in days.values()) / truth["sessions"]
    )
    assert h["engagement_rate"] == pytest.approx(
        sum(d["engaged"] for d in days.values()) / truth["sessions"]
    )


def test_landing_pages_and_channels_equal_the_marts(
    demo_warehouse: DemoWarehouse, data: dict
) -> None:
    sessions = query(
        demo_warehouse.warehouse,
        "select landing_page_path, landing_screen_name, channel from analytics.fct_sessions",
    )
    pages = Counter(
        path if path is not None else (f"screen: {screen}" if screen is not None else "(none)")
        for path, screen, _ in sessions
    )
    top = sorted(pages.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
    assert [(p["landing_page"], p["sessions"]) for p in data["landing_pages"]] == top
    by_channel = Counter(channel for _, _, channel in sessions)
    assert {c["channel"]: c["sessions"] for c in data["channels"]} == dict(by_channel)


def test_landing_pages_and_channels_equal_the_truth(
    demo_warehouse: DemoWarehouse, data: dict
) -> None:
    truth = demo_warehouse.truth
    top = sorted(truth["landing_pages"].items(), key=lambda kv: (-kv[1], kv[0]))[:10]
    assert [(p["landing_page"], p["sessions"]) for p in data["landing_pages"]] == top
    channels = {
        c["channel"]: {"sessions": c["sessions"], "users": c["users"]} for c in data["channels"]
    }
    assert channels == truth["channels"]


def test_quality_panel_equals_the_raw_tables(demo_warehouse: DemoWarehouse, data: dict) -> None:
    q = data["quality"]
    wh = demo_warehouse.warehouse
    codes = dict(
        query(wh, "select error_code, count(*) from raw.tracking_events_rejected group by 1")
    )
    assert {r["error_code"]: r["rejected"] for r in q["rejected_by_code"]} == codes
    assert q["rejected"] == demo_warehouse.truth["malformed"] == sum(codes.values())
    accepted = scalar(wh, "select count(*) from raw.tracking_events")
    assert q["accepted"] == accepted
    # every delivery of a valid message lands in raw, duplicates included (staging dedups)
    truth = demo_warehouse.truth
    assert accepted == truth["valid_message_ids"] + truth["duplicate_deliveries"]
    assert q["all_time_rejected_rate"] == pytest.approx(q["rejected"] / (accepted + q["rejected"]))
    last = scalar(wh, "select max(inserted_at) from raw._dlt_loads where status = 0")
    assert q["last_load_at"] == last.isoformat()
    assert q["open_gaps"] == []


def test_check_results_come_from_dbt_and_the_warehouse(
    data: dict, report: ReportSummary, demo_warehouse: DemoWarehouse
) -> None:
    """Without Dagster: dbt's tests from run_results.json and the warehouse's own evidence
    (Dagster's check results are fed by the report asset: tests/orchestration/test_materialize)."""
    checks = data["quality"]["checks"]
    by_source = Counter(c["source"] for c in checks)
    assert by_source["dagster"] == 0 and by_source["dbt"] > 10
    # the warehouse's own evidence: the gaps check, present once ingestion ever recorded a gap
    with demo_warehouse.warehouse.connect(read_only=True) as sql:
        assert by_source["warehouse"] == int(sql.has_table("raw.ingestion_gaps"))
    assert set(by_source) <= {"dbt", "warehouse"}
    assert all(c["passed"] for c in checks)  # dbt build passed
    html = report.path.read_text(encoding="utf-8")
    assert f"{len(checks)} of {len(checks)} checks passed" in html
    assert '<tr class="fail">' not in html
    assert report.headline["checks_failed"] == 0
    assert report.headline["checks_passed"] == len(checks)


def test_summary_for_dagster(report: ReportSummary, data: dict) -> None:
    main = data["funnels"][0]
    assert report.has_data and report.path.exists()
    assert report.funnel_png and report.funnel_png.startswith(b"\x89PNG")
    assert report.funnel_png_path and report.funnel_png_path.read_bytes() == report.funnel_png
    assert f"**Funnel {main['name']}**" in report.markdown
    for s in main["steps"]:
        assert f"| {s['step_number']}. {s['step_name']} | {s['reached']:,} |" in report.markdown
    assert report.headline["sessions"] == data["headline"]["sessions"]


def test_page_is_self_contained(report: ReportSummary, data: dict) -> None:
    html = report.path.read_text(encoding="utf-8")
    # no script, stylesheet, image or frame is fetched (the browser test also blocks the network)
    markup = re.sub(r"(<script[^>]*>).*?</script>", r"\1</script>", html, flags=re.S)
    assert not re.search(r"<(script|img|link|iframe)[^>]+(src|href)=", markup)
    assert "vegaEmbed" in html
    specs = embedded(report.path, "report-specs")
    ids = re.findall(r'<div class="chart" data-chart="([^"]+)"></div>', html)
    assert sorted(ids) == sorted(specs) == data["charts"]
    # four daily charts, the rejected codes, and the retention heat map when there are cohorts
    fixed = 5 + (1 if data["retention"] else 0)
    assert len(ids) == 3 * sum(1 for f in data["funnels"] if f["entered"]) + fixed


@pytest.mark.parametrize("kind", ["missing", "empty", "raw_only"])
def test_no_data_yet(tmp_path: Path, kind: str, demo_warehouse: DemoWarehouse) -> None:
    warehouse = DuckDBFile(tmp_path / "warehouse.duckdb")
    if kind == "empty":
        with warehouse.connect():
            pass
    elif kind == "raw_only":
        with warehouse.connect() as sql:
            sql.execute(f"attach '{demo_warehouse.warehouse.path}' as demo (read_only)")
            sql.execute("create schema raw")
            sql.execute(
                "create table raw.tracking_events as select * from demo.raw.tracking_events"
            )
    summary = build_report(warehouse, tmp_path / "report.html")
    data = embedded(summary.path)
    assert summary.has_data is False and data["has_data"] is False
    assert "No data yet" in summary.path.read_text(encoding="utf-8")
    assert summary.markdown.startswith("**No data yet.**")
    assert summary.funnel_png is None
    assert warehouse.exists() == (kind != "missing")
    assert ("does not exist" in data["empty_reason"]) == (kind == "missing")
    if kind == "empty":
        assert "marts are not built" in data["empty_reason"]
    if kind == "raw_only":
        assert "analytics.fct_sessions" in data["empty_reason"]
        assert data["quality"]["accepted"] > 0
