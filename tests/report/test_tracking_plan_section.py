"""The report's "Tracking plan" section, read back from the HTML, equals what was planted in
the traffic (counted here in Python) and what SQL finds in raw.tracking_plan_violations."""

from __future__ import annotations

import html
import json
import re
import uuid
from collections import Counter
from datetime import datetime
from pathlib import Path

from pipelines.broker import EmbeddedBroker
from pipelines.config import TrackingPlanSettings
from pipelines.generator import generate
from pipelines.ingest import ingest
from pipelines.producer import produce
from pipelines.report import build_report
from pipelines.warehouse import DuckDBFile
from tests.helpers import query, settings_for
from tests.report.conftest import REPO_ROOT, embedded

SAMPLE_PLAN = REPO_ROOT / "docs" / "tracking_plan.yaml"


def _table(page: str, cls: str) -> list[list[str]]:
    found = re.search(rf'<table class="{cls}">.*?<tbody>(.*?)</tbody>', page, re.S)
    assert found, cls
    return [
        [html.unescape(c) for c in re.findall(r"<td>(.*?)</td>", row)]
        for row in re.findall(r"<tr>(.*?)</tr>", found.group(1))
    ]


def test_tracking_plan_section_shows_violations_by_rule_and_trend(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    traffic = generate(events=2_500, users=120, days=3, seed=17)
    messages = []
    per_day: Counter[str] = Counter()
    bad_per_day: Counter[str] = Counter()
    by_rule: Counter[tuple[str, str, str]] = Counter()
    for n, (key, value, at) in enumerate(traffic.messages):
        event = json.loads(value)
        if event["type"] in ("track", "page", "screen"):
            stamp = event["timestamp"].replace("Z", "+00:00")
            day = datetime.fromisoformat(stamp).date().isoformat()
            per_day[day] += 1
            if event.get("event") == "Order Completed" and n % 2 == 0:
                event["properties"]["currency"] = "usd"
                by_rule[("track", "Order Completed", "pattern")] += 1
                bad_per_day[day] += 1
            elif event.get("event") == "Button Clicked" and n % 5 == 0:
                event["event"] = "Button Pressed"
                by_rule[("track", "Button Pressed", "unplanned")] += 1
                bad_per_day[day] += 1
        messages.append((key, json.dumps(event).encode(), at))
    assert len(by_rule) == 2  # both plantings happened: the comparisons below are not empty
    topic = f"plan.{uuid.uuid4().hex[:8]}"
    settings = settings_for(broker.bootstrap, topic)
    produce(messages, settings, topic)
    warehouse = DuckDBFile(tmp_path / "warehouse.duckdb")
    ingest(settings, warehouse, tracking_plan=TrackingPlanSettings.of(plan_file=SAMPLE_PLAN))

    out = tmp_path / "report.html"
    build_report(warehouse, out)
    page = out.read_text()

    assert "<h2>Tracking plan</h2>" in page
    rules = {
        (t, e, r): (int(v.replace(",", "")), int(n.replace(",", "")))
        for t, e, r, v, n in _table(page, "plan-by-rule")
    }
    # one violation per event for these rules: violations == events == what was planted
    assert rules == {k: (n, n) for k, n in by_rule.items()}
    sql_rules = query(
        warehouse,
        "select type, event, rule, count(*) from raw.tracking_plan_violations group by all",
    )
    assert {(t, e, r): n for t, e, r, n in sql_rules} == dict(by_rule)
    trend = _table(page, "plan-trend")
    assert [row[0] for row in trend] == sorted(per_day)
    for day, events, breaking, share in trend:
        assert int(events.replace(",", "")) == per_day[day]
        assert int(breaking.replace(",", "")) == bad_per_day[day]
        assert share == f"{bad_per_day[day] / per_day[day]:.2%}"
    assert embedded(out)["tracking_plan"]["trend"][0]["events"] == per_day[min(per_day)]
