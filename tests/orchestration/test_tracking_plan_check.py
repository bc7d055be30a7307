"""The ingest job with a tracking plan: ingestion records the violations and the daily
violation-rate check fails exactly on the (day, event) pairs over their plan threshold, as
computed here in Python from the planted traffic."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime
from pathlib import Path

import dagster as dg

from orchestration.resources import TrackingPlanResource
from pipelines.broker import EmbeddedBroker
from pipelines.tracking_plan import load_plan
from pipelines.warehouse import DuckDBFile
from tests.helpers import scalar

from .helpers import bound_defs, check_results, new_topic, recent_traffic, send

REPO = Path(__file__).resolve().parents[2]
SAMPLE_PLAN = REPO / "docs" / "tracking_plan.yaml"
CHECK = "raw/tracking_events:tracking_plan_violation_rate"


def test_violation_rate_check_fails_on_the_days_and_events_over_threshold(
    broker: EmbeddedBroker, dagster_instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    traffic = recent_traffic(3_000, 3, seed=21)
    messages = []
    arrived: Counter[tuple[str, str, str]] = Counter()
    broken: Counter[tuple[str, str, str]] = Counter()
    for n, (key, value, at) in enumerate(traffic.messages):
        event = json.loads(value)
        if event["type"] not in ("track", "page", "screen"):
            messages.append((key, value, at))
            continue
        name = event.get("event") if event["type"] == "track" else event.get("name")
        day = datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")).date().isoformat()
        slot = (day, event["type"], name)
        arrived[slot] += 1
        if name == "Order Completed" and n % 4 == 0:  # threshold 0: any break fails the day
            event["properties"]["revenue"] = "12.00"
            broken[slot] += 1
        elif name == "Button Clicked" and n % 40 == 0:  # near the 1% default threshold
            del event["properties"]["buttonId"]
            broken[slot] += 1
        messages.append((key, json.dumps(event).encode(), at))
    plan = load_plan(SAMPLE_PLAN)
    expected_over = {
        slot for slot, n in arrived.items() if broken[slot] / n > plan.threshold(slot[1], slot[2])
    }
    assert any(s[2] == "Order Completed" for s in expected_over)

    topic = new_topic(broker.bootstrap)
    send(broker.bootstrap, topic, messages)
    warehouse = DuckDBFile(tmp_path / "warehouse.duckdb")
    defs = bound_defs(broker.bootstrap, topic, warehouse)
    resources = dict(defs.resources or {})
    resources["tracking_plan"] = TrackingPlanResource(plan_file=str(SAMPLE_PLAN))
    defs = dg.Definitions(
        assets=defs.assets, asset_checks=defs.asset_checks, jobs=defs.jobs, resources=resources
    )

    result = defs.resolve_job_def("ingest_job").execute_in_process(
        instance=dagster_instance, raise_on_error=False
    )

    assert result.success
    assert scalar(warehouse, "select count(*) from raw.tracking_events") == len(messages)
    assert scalar(
        warehouse, "select count(distinct message_id) from raw.tracking_plan_violations"
    ) == sum(broken.values())
    evaluation = check_results(result)[CHECK]
    assert not evaluation.passed
    over = evaluation.metadata["over_threshold"].value
    assert {(r["day"], r["type"], r["event"]) for r in over} == expected_over
    for r in over:
        slot = (r["day"], r["type"], r["event"])
        assert (r["events"], r["violating"]) == (arrived[slot], broken[slot])
    assert evaluation.metadata["plan_version"].value == plan.version
    assert "see raw.tracking_plan_violations" in evaluation.metadata["reason"].value
