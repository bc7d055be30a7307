"""The report as one self-contained HTML page: the data as JSON, the charts drawn by Vega-Embed
(inlined, so the page opens without a network), tables and tiles rendered here."""

from __future__ import annotations

import json
from functools import lru_cache
from html import escape
from typing import Any

import altair as alt
import vl_convert as vlc

DATA_ELEMENT_ID = "report-data"
SPECS_ELEMENT_ID = "report-specs"


@lru_cache(maxsize=1)
def vega_bundle() -> str:
    """Vega, Vega-Lite and Vega-Embed in one script, for the Vega-Lite version altair writes."""
    version = alt.SCHEMA_VERSION.lstrip("v").rsplit(".", 1)[0]
    try:
        js = vlc.javascript_bundle(vl_version=version)  # type: ignore[call-arg]
    except ValueError:  # pragma: no cover - a vl-convert without this version
        js = vlc.javascript_bundle()  # type: ignore[call-arg]
    return js.replace("</script", "<\\/script")


def json_script(element_id: str, value: Any) -> str:
    # '<' escaped so no string in the data can close the script element
    text = json.dumps(value, separators=(",", ":"), allow_nan=False).replace("<", "\\u003c")
    return f'<script type="application/json" id="{element_id}">{text}</script>'


def number(n: Any) -> str:
    return "–" if n is None else f"{n:,.0f}"


def percent(x: Any, digits: int = 1) -> str:
    return "–" if x is None else f"{x:.{digits}%}"


def duration(seconds: Any) -> str:
    if seconds is None:
        return "–"
    s = int(round(float(seconds)))
    if s < 0:
        # synthetic or skewed clocks can put times after now
        return f"{duration(-s)} ahead"
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"


def when(iso: str | None) -> str:
    return "–" if not iso else iso.replace("T", " ")[:19] + " UTC"


def tile(label: str, value: str, test_id: str, note: str = "") -> str:
    extra = f'<div class="note">{escape(note)}</div>' if note else ""
    return (
        f'<div class="tile" data-metric="{escape(test_id)}"><div class="label">{escape(label)}'
        f'</div><div class="value">{escape(value)}</div>{extra}</div>'
    )


def table(headers: list[str], rows: list[list[str]], cls: str = "") -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def chart(chart_id: str) -> str:
    return f'<div class="chart" data-chart="{escape(chart_id)}"></div>'


def funnel_section(f: dict[str, Any]) -> str:
    about = ", ".join(
        x
        for x in (
            f"{f['scope']} scope" if f["scope"] else "",
            f"{f['order']} order" if f["order"] else "",
            f"{f['window_minutes']:,} min window" if f["window_minutes"] else "",
        )
        if x
    )
    tiles = "".join(
        [
            tile("entered", number(f["entered"]), f"funnel.{f['name']}.entered"),
            tile("converted", number(f["converted"]), f"funnel.{f['name']}.converted"),
            tile("conversion", percent(f["conversion_rate"]), f"funnel.{f['name']}.conversion"),
            tile(
                "median time to convert",
                duration(f["median_seconds_to_convert"]),
                f"funnel.{f['name']}.median",
            ),
        ]
    )
    steps = table(
        [
            "step",
            "reached",
            "from previous",
            "from first",
            "dropped off",
            "still open",
            "median time to reach",
        ],
        [
            [
                f"{s['step_number']}. {s['step_name']}" + (" (optional)" if s["optional"] else ""),
                number(s["reached"]),
                percent(s["conversion_from_previous"]),
                percent(s["conversion_from_first"]),
                number(s["dropped_off"]),
                number(s["still_open"]),
                duration(s["median_seconds_to_reach"]),
            ]
            for s in f["steps"]
        ],
        "steps",
    )
    name = f["name"]
    if not f["entered"]:
        body = '<p class="empty">No attempts yet.</p>'
    else:
        body = (
            f'<div class="row">{chart("funnel:" + name)}<div>{steps}'
            f"{funnel_features(f)}</div></div>"
            f'<div class="row">{chart("funnel:" + name + ":platform")}'
            f"{chart('funnel:' + name + ':channel')}</div>"
        )
    return (
        f'<section class="card funnel" data-funnel="{escape(name)}">'
        f'<h3>{escape(name)} <span class="about">{escape(about)}</span></h3>'
        f'<div class="tiles">{tiles}</div>{body}</section>'
    )


def funnel_features(f: dict[str, Any]) -> str:
    """The exclusions and optional steps of a funnel that uses them (README "Funnel features")."""
    parts = []
    if f["excluded"]:
        parts.append(
            f'<p class="feature" data-section="exclusions">Excluded: '
            f'<b data-metric="funnel.{escape(f["name"])}.excluded">{number(f["excluded"])}</b> '
            "attempts (an exclusion event came between two of their steps), counted in no step."
            "</p>"
        )
    if f["optional_steps"]:
        rows = [
            [o["step_name"], number(o["taken"]), number(o["skipped"])] for o in f["optional_steps"]
        ]
        parts.append(
            '<div class="feature" data-section="optional">'
            + table(["optional step", "taken", "skipped"], rows, "optional-steps")
            + "</div>"
        )
    return "".join(parts)


def drivers_section(drivers: list[dict[str, Any]]) -> str:
    """Per funnel transition, the top features that separate converters from drop-offs."""
    if not drivers:
        return ""
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for d in drivers:
        groups.setdefault((d["funnel_name"], d["from_step"]), []).append(d)
    parts = []
    for (funnel, step), rows in groups.items():
        first = rows[0]
        rows_html = table(
            ["feature", "converted with it", "dropped off with it", "odds ratio", "95% interval"],
            [
                [
                    d["feature"] + (" *" if d["is_significant"] else ""),
                    f"{number(d['converted_with'])} of {number(d['converted_total'])}",
                    f"{number(d['dropped_with'])} of {number(d['dropped_total'])}",
                    f"{d['odds_ratio']:.2f}",
                    f"{d['odds_ratio_ci_lower']:.2f} to {d['odds_ratio_ci_upper']:.2f}",
                ]
                for d in rows
            ],
            "drivers",
        )
        parts.append(
            f'<div class="card" data-drivers="{escape(funnel)}:{step}">'
            f"<h3>{escape(funnel)}: step {step} to {first['to_step']} "
            f'<span class="about">{escape(str(first["to_step_name"]))}</span></h3>'
            f"{rows_html}</div>"
        )
    return (
        '<section id="drivers"><h2>Conversion drivers</h2>'
        "<p>What attempts did before the next step (converted) or before their window ended "
        "(dropped off): odds ratio of converting with the feature vs without it; * its 95% "
        "interval excludes 1 (analytics.agg_conversion_drivers).</p>"
        + "".join(parts)
        + "</section>"
    )


def sessions_section(data: dict[str, Any]) -> str:
    h = data["headline"]
    tiles = "".join(
        [
            tile("sessions", number(h["sessions"]), "sessions"),
            tile(
                "users", number(h["users"]), "users", f"{number(h['identified_users'])} identified"
            ),
            tile("bounce rate", percent(h["bounce_rate"]), "bounce_rate"),
            tile("engagement rate", percent(h["engagement_rate"]), "engagement_rate"),
            tile(
                "sessions converting",
                percent(h["session_conversion_rate"]),
                "session_conversion_rate",
            ),
            tile("median session", duration(h["median_session_seconds"]), "median_session"),
        ]
    )
    channels = table(
        ["channel", "sessions", "users", "bounce", "engaged", "converting"],
        [
            [
                c["channel"],
                number(c["sessions"]),
                number(c["users"]),
                percent(c["bounce_rate"]),
                percent(c["engagement_rate"]),
                percent(c["conversion_rate"]),
            ]
            for c in data["channels"]
        ],
    )
    return (
        '<section id="sessions"><h2>Sessions and users</h2>'
        f'<div class="tiles">{tiles}</div>'
        f'<div class="row">{chart("sessions_users")}{chart("rates")}</div>'
        f'<div class="row">{chart("landing_pages")}{chart("channels")}</div>'
        f"<h3>Channels</h3>{channels}</section>" + retention_section(data)
    )


def retention_section(data: dict[str, Any]) -> str:
    if not data["retention"]:
        return ""
    return (
        '<section id="retention"><h2>Retention</h2>'
        "<p>Entities by the day of their first session, and the share that did a returning "
        "event on each day after it (analytics.agg_retention).</p>"
        f'<div class="row">{chart("retention")}</div></section>'
    )


def quality_section(q: dict[str, Any]) -> str:
    tiles = "".join(
        [
            tile(
                "last ingestion",
                when(q["last_load_at"]),
                "last_load_at",
                f"{number(q['loads'])} loads",
            ),
            tile(
                "newest event age",
                duration(q["data_age_seconds"]),
                "data_age",
                f"received {when(q['newest_received_at'])}",
            ),
            tile(
                "load delay p50 / p95",
                f"{duration(q['load_delay_p50_seconds'])} / "
                f"{duration(q['load_delay_p95_seconds'])}",
                "load_delay",
                "Kafka to committed load",
            ),
            tile(
                "rejected, all loads",
                percent(q["all_time_rejected_rate"], 2),
                "all_time_rejected_rate",
                f"{number(q['rejected'])} of {number(q['accepted'] + q['rejected'])} messages",
            ),
            tile("open ingestion gaps", number(len(q["open_gaps"])), "open_gaps"),
        ]
    )
    codes = (
        table(
            ["error code", "rejected", "share of messages"],
            [
                [r["error_code"], number(r["rejected"]), percent(r["rate"], 2)]
                for r in q["rejected_by_code"]
            ],
        )
        if q["rejected_by_code"]
        else '<p class="empty">No rejected messages.</p>'
    )
    checks = q["checks"]
    failed = [c for c in checks if not c["passed"]]
    if checks:
        summary = (
            f'<p class="{"bad" if failed else "good"}" data-metric="checks">'
            f"{len(checks) - len(failed)} of {len(checks)} checks passed"
            + (f"; failing: {escape(', '.join(c['name'] for c in failed[:8]))}" if failed else "")
            + "</p>"
        )
        shown = failed + [c for c in checks if c["passed"]]
        rows = "".join(
            f'<tr class="{"pass" if c["passed"] else "fail"}"><td>'
            f"{'pass' if c['passed'] else ('WARN' if c['severity'] == 'warn' else 'FAIL')}</td>"
            f"<td>{escape(c['source'])}</td><td>{escape(c['name'])}</td>"
            f"<td>{escape('' if c['actual'] is None else str(c['actual']))}</td>"
            f"<td>{escape('' if c['threshold'] is None else str(c['threshold']))}</td>"
            f"<td>{escape(c['detail'] or '')}</td></tr>"
            for c in shown
        )
        check_table = (
            f'{summary}<div class="scroll"><table class="checks"><thead><tr><th>result</th>'
            "<th>source</th><th>check</th><th>actual</th><th>threshold</th><th>detail</th></tr>"
            f"</thead><tbody>{rows}</tbody></table></div>"
        )
    else:
        check_table = '<p class="empty" data-metric="checks">No check results available.</p>'
    rejected_chart = chart("rejected_by_code") if q["rejected_by_code"] else ""
    return (
        '<section id="quality"><h2>Data quality</h2>'
        f'<div class="tiles">{tiles}</div>'
        f'<div class="row">{rejected_chart}<div>{codes}</div></div>'
        f"<h3>Check results</h3>{check_table}</section>"
    )


def plan_section(tp: dict[str, Any] | None) -> str:
    """Violations by event and rule, and their daily trend; nothing without a plan."""
    if tp is None:
        return ""
    by_rule = table(
        ["type", "event", "rule", "violations", "events"],
        [
            [r["type"], r["event"], r["rule"], number(r["violations"]), number(r["events"])]
            for r in tp["by_rule"]
        ],
        "plan-by-rule",
    )
    trend = table(
        ["day", "events", "breaking the plan", "share"],
        [
            [t["day"], number(t["events"]), number(t["violating"]), percent(t["rate"], 2)]
            for t in tp["trend"]
        ],
        "plan-trend",
    )
    return (
        '<section id="tracking-plan"><h2>Tracking plan</h2>'
        f"<h3>Violations by event and rule</h3>{by_rule}"
        f"<h3>Trend: events breaking the plan per day</h3>{trend}</section>"
    )


def render(data: dict[str, Any], specs: dict[str, dict[str, Any]]) -> str:
    if data["has_data"]:
        p = data["period"]
        subtitle = f"{p['first_date']} to {p['last_date']} ({p['days']} days)"
        funnels = "".join(funnel_section(f) for f in data["funnels"]) or (
            '<p class="empty">No funnels declared.</p>'
        )
        main = (
            f'<section id="funnels"><h2>Funnels</h2>{funnels}</section>'
            + drivers_section(data["drivers"])
            + sessions_section(data)
        )
    else:
        subtitle = "no data yet"
        main = (
            '<section id="no-data" class="card"><h2>No data yet</h2>'
            f"<p>{escape(data['empty_reason'] or '')}</p>"
            "<p>Load events with <code>trackflow ingest</code>, build the models with "
            "<code>dbt build --project-dir dbt_project --profiles-dir dbt_project</code> "
            "(or run <code>make demo</code>), then build this report again.</p></section>"
        )
    main += quality_section(data["quality"])
    main += plan_section(data.get("tracking_plan"))
    scripts = ""
    if specs:
        scripts = (
            f"<script>{vega_bundle()}</script>\n{json_script(SPECS_ELEMENT_ID, specs)}\n"
            f"<script>{EMBED_JS}</script>"
        )
    else:
        scripts = "<script>document.body.dataset.ready = 'true';</script>"
    return PAGE.format(
        generator=GENERATOR,
        title="trackflow report",
        subtitle=escape(subtitle),
        generated=escape(when(data["generated_at"])),
        warehouse=escape(data["warehouse"]),
        main=main,
        data=json_script(DATA_ELEMENT_ID, data),
        scripts=scripts,
        css=CSS,
    )


# every chart is drawn as SVG; the body gets data-ready="true" once all are drawn (or
# data-ready="error" and a console error naming the chart if one fails)
EMBED_JS = """
(function () {
  var specs = JSON.parse(document.getElementById('report-specs').textContent);
  var jobs = Array.prototype.map.call(document.querySelectorAll('.chart'), function (el) {
    var id = el.dataset.chart;
    if (!specs[id]) { return Promise.reject(new Error('no spec for chart ' + id)); }
    return vegaEmbed(el, specs[id], {renderer: 'svg', actions: false}).then(function () {
      el.dataset.rendered = 'true';
    });
  });
  Promise.all(jobs).then(function () {
    document.body.dataset.ready = 'true';
  }, function (err) {
    document.body.dataset.ready = 'error';
    console.error('report chart failed: ' + err);
  });
})();
"""

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0;
       background: #f5f6f8; color: #1d2330; }
header { background: #1d2330; color: #fff; padding: 16px 32px; }
header h1 { margin: 0; font-size: 22px; }
header .meta { color: #b8c0cc; font-size: 13px; margin-top: 4px; }
main { padding: 8px 32px 40px; max-width: 1280px; }
h2 { margin: 28px 0 12px; font-size: 19px; border-bottom: 2px solid #d9dde4; padding-bottom: 4px; }
h3 { margin: 8px 0 10px; font-size: 16px; }
h3 .about { font-weight: normal; color: #6b7280; font-size: 13px; margin-left: 8px; }
.card { background: #fff; border-radius: 8px; padding: 16px 20px; margin-bottom: 16px;
        box-shadow: 0 1px 2px rgba(0,0,0,.08); }
.tiles { display: flex; flex-wrap: wrap; gap: 10px; margin-bottom: 12px; }
.tile { background: #fff; border: 1px solid #e3e6eb; border-radius: 6px; padding: 8px 14px;
        min-width: 130px; }
.tile .label { font-size: 12px; color: #6b7280; }
.tile .value { font-size: 20px; font-weight: 600; }
.tile .note { font-size: 11px; color: #6b7280; }
.row { display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start; margin: 8px 0; }
.chart { background: #fff; border-radius: 6px; padding: 6px; }
table { border-collapse: collapse; font-size: 13px; background: #fff; }
th, td { padding: 4px 10px; border-bottom: 1px solid #eceef1; text-align: left; }
td:not(:first-child) { font-variant-numeric: tabular-nums; }
th { color: #6b7280; font-weight: 600; }
tr.fail td:first-child { color: #b42318; font-weight: 700; }
tr.pass td:first-child { color: #067647; }
.scroll { max-height: 360px; overflow: auto; }
.good { color: #067647; font-weight: 600; }
.bad { color: #b42318; font-weight: 600; }
.empty { color: #6b7280; font-style: italic; }
code { background: #eef0f3; padding: 1px 4px; border-radius: 3px; }
"""

# marks a page as trackflow's: `trackflow report` only ever overwrites a file that carries it
GENERATOR = "trackflow report"

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="{generator}">
<title>{title}</title>
<style>{css}</style>
</head><body>
<header><h1>{title}</h1>
<div class="meta">{subtitle} · generated {generated} · warehouse {warehouse}</div></header>
<main>{main}</main>
{data}
{scripts}
</body></html>
"""
