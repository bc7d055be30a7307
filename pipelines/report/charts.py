"""Vega-Lite specs (built with altair) for every chart of the report, keyed by chart id."""

from __future__ import annotations

from typing import Any

import altair as alt

WIDTH = 420
BAR = "#4c78a8"
FUNNEL_BAR = "#9ecae9"
PLATFORM_COLORS = alt.Scale(scheme="tableau10")

Spec = dict[str, Any]


def _spec(chart: alt.TopLevelMixin) -> Spec:
    spec: Spec = chart.to_dict()
    return spec


def funnel(f: dict[str, Any]) -> Spec:
    """A funnel: one centred bar per step, labelled with its count and share of step 1."""
    rows = [
        {
            "step": f"{s['step_number']}. {s['step_name']}",
            "step_number": s["step_number"],
            "reached": s["reached"],
            "label": f"{s['reached']:,}"
            + (
                f"  ({s['conversion_from_first']:.0%})"
                if s["conversion_from_first"] is not None
                else ""
            ),
        }
        for s in f["steps"]
    ]
    base = alt.Chart(alt.Data(values=rows)).encode(
        y=alt.Y(
            "step:N",
            sort=alt.SortField("step_number"),
            title=None,
            axis=alt.Axis(labelLimit=220, labelFontSize=12),
        ),
    )
    bars = (
        base.transform_calculate(left="-datum.reached / 2", right="datum.reached / 2")
        .mark_bar(color=FUNNEL_BAR, height={"band": 0.8})
        .encode(
            x=alt.X("left:Q", axis=None, title=None),
            x2="right:Q",
            tooltip=[alt.Tooltip("step:N"), alt.Tooltip("reached:Q", format=",")],
        )
    )
    labels = base.mark_text(fontSize=12, fontWeight="bold", color="#111").encode(
        x=alt.datum(0), text="label:N"
    )
    return _spec(
        (bars + labels).properties(
            width=WIDTH,
            height=34 * max(len(rows), 1),
            title=f"{f['name']}: attempts reaching each step",
        )
    )


def funnel_breakdown(f: dict[str, Any], dim: str) -> Spec:
    """Share of the attempts that reached each step, one line per platform or channel."""
    rows = [{**r, "step": f"{r['step_number']}. {r['step_name']}"} for r in f[f"by_{dim}"]]
    chart = (
        alt.Chart(alt.Data(values=rows))
        .mark_line(point=True)
        .encode(
            x=alt.X(
                "step:N",
                sort=alt.SortField("step_number"),
                title=None,
                axis=alt.Axis(labelAngle=-20, labelLimit=140),
            ),
            y=alt.Y(
                "conversion_from_first:Q",
                title="share of entered",
                axis=alt.Axis(format="%"),
                scale=alt.Scale(domain=[0, 1]),
            ),
            color=alt.Color(f"{dim}:N", scale=PLATFORM_COLORS, title=dim),
            tooltip=[
                alt.Tooltip(f"{dim}:N"),
                alt.Tooltip("step:N"),
                alt.Tooltip("entered:Q", format=","),
                alt.Tooltip("reached:Q", format=","),
                alt.Tooltip("conversion_from_first:Q", format=".1%"),
            ],
        )
    )
    return _spec(chart.properties(width=WIDTH - 120, height=180, title=f"by {dim}"))


def sessions_users(daily: list[dict[str, Any]]) -> Spec:
    rows = [
        {"date": d["date"], "measure": m, "count": d[m]}
        for d in daily
        for m in ("sessions", "users")
    ]
    chart = (
        alt.Chart(alt.Data(values=rows))
        .mark_bar()
        .encode(
            x=alt.X("date:O", title=None),
            xOffset="measure:N",
            y=alt.Y("count:Q", title=None),
            color=alt.Color("measure:N", title=None),
            tooltip=["date:O", "measure:N", alt.Tooltip("count:Q", format=",")],
        )
    )
    return _spec(chart.properties(width=WIDTH, height=220, title="Sessions and users per day"))


def rates(daily: list[dict[str, Any]]) -> Spec:
    rows = [
        {"date": d["date"], "rate": name, "value": d[key]}
        for d in daily
        for name, key in (("bounce", "bounce_rate"), ("engagement", "engagement_rate"))
    ]
    chart = (
        alt.Chart(alt.Data(values=rows))
        .mark_line(point=True)
        .encode(
            x=alt.X("date:O", title=None),
            y=alt.Y(
                "value:Q", title=None, axis=alt.Axis(format="%"), scale=alt.Scale(domain=[0, 1])
            ),
            color=alt.Color("rate:N", title=None),
            tooltip=["date:O", "rate:N", alt.Tooltip("value:Q", format=".1%")],
        )
    )
    return _spec(chart.properties(width=WIDTH, height=220, title="Bounce and engagement rate"))


def landing_pages(pages: list[dict[str, Any]]) -> Spec:
    chart = (
        alt.Chart(alt.Data(values=pages))
        .mark_bar(color=BAR)
        .encode(
            y=alt.Y("landing_page:N", sort="-x", title=None, axis=alt.Axis(labelLimit=220)),
            x=alt.X("sessions:Q", title="sessions"),
            tooltip=[
                "landing_page:N",
                alt.Tooltip("sessions:Q", format=","),
                alt.Tooltip("bounce_rate:Q", format=".1%"),
                alt.Tooltip("conversion_rate:Q", format=".1%"),
            ],
        )
    )
    return _spec(
        chart.properties(
            width=WIDTH - 100, height=22 * max(len(pages), 1), title="Top landing pages"
        )
    )


def channels(rows: list[dict[str, Any]]) -> Spec:
    chart = (
        alt.Chart(alt.Data(values=rows))
        .mark_bar()
        .encode(
            y=alt.Y("channel:N", sort="-x", title=None),
            x=alt.X("sum(sessions):Q", title="sessions"),
            color=alt.Color("platform:N", scale=PLATFORM_COLORS, title="platform"),
            tooltip=["channel:N", "platform:N", alt.Tooltip("sessions:Q", format=",")],
        )
    )
    return _spec(
        chart.properties(width=WIDTH - 100, height=160, title="Sessions by channel and platform")
    )


def retention(cells: list[dict[str, Any]]) -> Spec:
    """The retention heat map: a cohort day per row, a period per column, the share retained as
    colour and label; a period that may still grow is labelled with a trailing '*'."""
    rows = [
        {
            **c,
            "cohort": f"{c['cohort_date']} ({c['cohort_size']:,})",
            "label": f"{c['retention_rate']:.0%}" + ("" if c["is_complete"] else "*"),
        }
        for c in cells
    ]
    base = alt.Chart(alt.Data(values=rows)).encode(
        x=alt.X("period_number:O", title="days after the first visit"),
        y=alt.Y("cohort:N", sort=alt.SortField("cohort_date"), title="cohort (size)"),
    )
    cells_mark = base.mark_rect().encode(
        color=alt.Color(
            "retention_rate:Q",
            scale=alt.Scale(scheme="blues", domain=[0, 1]),
            title="retained",
        ),
        tooltip=[
            alt.Tooltip("cohort_date:N", title="cohort"),
            alt.Tooltip("period_number:O", title="day"),
            alt.Tooltip("retained:Q", format=","),
            alt.Tooltip("retention_rate:Q", format=".1%"),
            alt.Tooltip("is_complete:N", title="complete"),
        ],
    )
    labels = base.mark_text(fontSize=11).encode(
        text="label:N",
        color=alt.condition("datum.retention_rate > 0.5", alt.value("white"), alt.value("#111")),
    )
    periods = len({c["period_number"] for c in cells})
    cohorts = len({c["cohort_date"] for c in cells})
    return _spec(
        (cells_mark + labels).properties(
            width=max(44 * periods, 120),
            height=26 * max(cohorts, 1),
            title="Retention by first-visit day (* period still open)",
        )
    )


def rejected_by_code(rows: list[dict[str, Any]]) -> Spec:
    chart = (
        alt.Chart(alt.Data(values=rows))
        .mark_bar(color="#e45756")
        .encode(
            y=alt.Y("error_code:N", sort="-x", title=None),
            x=alt.X("rejected:Q", title="rejected messages"),
            tooltip=[
                "error_code:N",
                alt.Tooltip("rejected:Q", format=","),
                alt.Tooltip("rate:Q", format=".2%", title="share of all messages"),
            ],
        )
    )
    return _spec(
        chart.properties(
            width=WIDTH - 100,
            height=22 * max(len(rows), 1),
            title="Rejected messages by error code",
        )
    )
