"""The collector checks events against the tracking plan before Kafka: `flag` stores them and
answers 200 with the violations; `block` refuses a request whose events break the plan and
produces nothing of it. Checked against a real broker."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from pipelines.config import TrackingPlanSettings
from pipelines.tracking_plan import load_plan
from tests.collector.conftest import collector_settings
from tests.collector.helpers import WEB_KEY, LiveCollector, basic, drain, events

REPO = Path(__file__).resolve().parents[2]
SAMPLE_PLAN = REPO / "docs" / "tracking_plan.yaml"


def _track(i: int, event: str, properties: dict[str, object]) -> dict[str, object]:
    return {
        "type": "track",
        "messageId": f"m-{i}",
        "anonymousId": f"a-{i}",
        "event": event,
        "properties": properties,
    }


GOOD = _track(0, "Order Completed", {"order_id": "o1", "revenue": 10.5, "currency": "EUR"})
BAD = _track(1, "Order Completed", {"order_id": "o2", "revenue": "10.5", "currency": "EUR"})
UNPLANNED = _track(2, "Wishlist Added", {"sku": "x"})


def _post(live: LiveCollector, batch: list[dict[str, object]]) -> httpx.Response:
    with httpx.Client(base_url=live.url, timeout=15) as client:
        return client.post("/v1/batch", json={"batch": batch}, headers=basic(WEB_KEY))


def test_flag_stores_everything_and_answers_with_the_violations(broker, make_topic) -> None:
    topic = make_topic(2, prefix="plan")
    plan = TrackingPlanSettings.of(plan_file=SAMPLE_PLAN, plan_mode="flag")
    settings = collector_settings(broker.bootstrap, topic, tracking_plan=plan)
    with LiveCollector(settings) as live:
        r = _post(live, [GOOD, BAD, UNPLANNED])
    assert r.status_code == 200, r.text
    assert r.json() == {
        "success": True,
        "plan_violation_count": 2,
        "plan_violations": [
            {
                "index": 1,
                "field": "properties.revenue",
                "code": "plan_violation",
                "message": "properties.revenue is a string, not number",
            },
            {
                "index": 2,
                "field": "",
                "code": "plan_violation",
                "message": "event 'Wishlist Added' is not in the tracking plan",
            },
        ],
    }
    stored = {e["messageId"] for e in events(drain(broker.bootstrap, topic))}
    assert stored == {"m-0", "m-1", "m-2"}


def test_block_refuses_a_request_with_a_violating_event(broker, make_topic) -> None:
    topic = make_topic(2, prefix="plan")
    plan = TrackingPlanSettings.of(plan_file=SAMPLE_PLAN, plan_mode="block")
    settings = collector_settings(broker.bootstrap, topic, tracking_plan=plan)
    with LiveCollector(settings) as live:
        refused = _post(live, [GOOD, BAD])
        # an unplanned event is flagged, never blocked; a conforming batch goes through
        accepted = _post(live, [GOOD, UNPLANNED])
    assert refused.status_code == 400
    body = refused.json()
    assert body["code"] == "plan_violation"
    assert body["error"] == f"events break the tracking plan {load_plan(SAMPLE_PLAN).version}"
    assert [(p["index"], p["field"]) for p in body["errors"]] == [(1, "properties.revenue")]
    assert accepted.status_code == 200
    assert [p["index"] for p in accepted.json()["plan_violations"]] == [1]
    # nothing of the refused request reached Kafka
    assert sorted(e["messageId"] for e in events(drain(broker.bootstrap, topic))) == ["m-0", "m-2"]


def test_a_bad_plan_stops_the_collector_at_start(tmp_path: Path) -> None:
    bad = tmp_path / "plan.yaml"
    bad.write_text("unplanned_events: sometimes\n")
    env = {**os.environ, "COLLECTOR_WRITE_KEYS": "web:k", "TRACKING_PLAN": str(bad)}
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "collect", "--port", "0"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"error: TRACKING_PLAN {bad}: unplanned_events: 'sometimes' is not one of ['allow', 'flag']"
    ]
