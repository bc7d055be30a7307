"""Ingestion against the tracking plan: flag keeps and records, block dead-letters, and a replay
after fixing the plan loads what was blocked, exactly once. Nothing is lost on the way."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]

from pipelines.config import TrackingPlanSettings
from pipelines.generator import generate
from pipelines.ingest import ingest
from pipelines.producer import produce
from pipelines.tracking_plan import load_plan
from pipelines.warehouse import DuckDBFile
from tests.helpers import query, scalar, settings_for

REPO = Path(__file__).resolve().parents[2]
SAMPLE_PLAN = REPO / "docs" / "tracking_plan.yaml"


def _traffic_with_planted_violations() -> tuple[list[Any], dict[str, set[tuple[str, str]]]]:
    """Generated traffic (it meets the sample plan) with some events broken on purpose, and
    the violations each broken event must produce: (rule, field)."""
    traffic = generate(events=3_000, users=150, days=2, seed=11)
    messages: list[Any] = []
    expected: dict[str, set[tuple[str, str]]] = {}
    for n, (key, value, at) in enumerate(traffic.messages):
        event = json.loads(value)
        name = event.get("event")
        if name == "Order Completed" and n % 3 == 0:
            event["properties"]["revenue"] = str(event["properties"]["revenue"])
            expected[event["messageId"]] = {("type", "properties.revenue")}
        elif name == "Button Clicked" and n % 7 == 0:
            del event["properties"]["buttonId"]
            expected[event["messageId"]] = {("required", "properties")}
        elif name == "Form Submitted" and n % 11 == 0:
            event["event"] = "Form Sent"  # renamed in the app, not in the plan
            expected[event["messageId"]] = {("unplanned", "")}
        messages.append((key, json.dumps(event).encode(), at))
    return messages, expected


def _violations(warehouse: DuckDBFile) -> dict[str, set[tuple[str, str]]]:
    found: dict[str, set[tuple[str, str]]] = {}
    for message_id, rule, field in query(
        warehouse, "select message_id, rule, field from raw.tracking_plan_violations"
    ):
        found.setdefault(message_id, set()).add((rule, field))
    return found


def test_flag_keeps_every_event_and_records_each_violation(
    broker, make_topic, warehouse: DuckDBFile
) -> None:
    messages, expected = _traffic_with_planted_violations()
    assert {"type", "required", "unplanned"} <= {r for v in expected.values() for r, _ in v}
    topic = make_topic(partitions=3)
    settings = settings_for(broker.bootstrap, topic)
    produce(messages, settings, topic)

    plan = TrackingPlanSettings.of(plan_file=SAMPLE_PLAN, plan_mode="flag")
    result = ingest(settings, warehouse, tracking_plan=plan)

    assert result.loaded == len(messages) and result.rejected == 0
    assert _violations(warehouse) == expected
    assert result.plan_violations == len(expected)
    version = load_plan(SAMPLE_PLAN).version
    assert result.plan_version == version
    assert query(
        warehouse, "select distinct plan_version, action from raw.tracking_plan_violations"
    ) == [(version, "kept")]
    # each violation row carries the event's own time (the daily check counts by it)
    assert (
        scalar(
            warehouse,
            """select count(*) from raw.tracking_plan_violations v
               join raw.tracking_events e using (message_id)
               where v.timestamp <> e.timestamp or v.event <> coalesce(e.event, e.name)""",
        )
        == 0
    )


def _cli(warehouse: DuckDBFile, plan: Path, *args: str) -> str:
    env = {
        **os.environ,
        "DUCKDB_PATH": str(warehouse.path),
        "TRACKFLOW_WAREHOUSE": "duckdb",
        "TRACKING_PLAN": str(plan),
        "TRACKING_PLAN_MODE": "block",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_block_dead_letters_then_replay_after_the_plan_is_fixed(
    broker, make_topic, warehouse: DuckDBFile, tmp_path: Path
) -> None:
    messages, expected = _traffic_with_planted_violations()
    blocked = {m for m, v in expected.items() if ("unplanned", "") not in v}
    topic = make_topic(partitions=3)
    settings = settings_for(broker.bootstrap, topic)
    produce(messages, settings, topic)

    plan = TrackingPlanSettings.of(plan_file=SAMPLE_PLAN, plan_mode="block")
    result = ingest(settings, warehouse, tracking_plan=plan)

    assert result.rejected == len(blocked)
    assert result.loaded == len(messages) - len(blocked)
    dead = query(
        warehouse,
        "select json_extract_string(decode(payload), '$.messageId'), error_code "
        "from raw.tracking_events_rejected",
    )
    assert {m for m, _ in dead} == blocked and {c for _, c in dead} == {"plan_violation"}
    # the dead letter holds the bytes as sent (context.ip untruncated): a replay minimises once
    sent = {json.loads(v)["messageId"]: v for _, v, _ in messages}
    stored = query(
        warehouse,
        "select json_extract_string(decode(payload), '$.messageId'), payload "
        "from raw.tracking_events_rejected",
    )
    assert all(payload == sent[m] for m, payload in stored)
    loaded = {m for (m,) in query(warehouse, "select message_id from raw.tracking_events")}
    assert not loaded & blocked  # unplanned events are flagged, never blocked
    assert _violations(warehouse) == expected

    # the same plan still blocks them: nothing moves
    out = _cli(warehouse, SAMPLE_PLAN, "replay-rejected", "--error-code", "plan_violation")
    assert f"loaded 0, {len(blocked)} still rejected" in out

    # the plan is fixed (revenue may come as text, buttonId is optional): a replay loads them
    fixed = yaml.safe_load(SAMPLE_PLAN.read_text())
    revenue = fixed["events"]["Order Completed"]["properties"]["properties"]["revenue"]
    revenue["type"] = ["number", "string"]
    del revenue["minimum"]
    fixed["events"]["Button Clicked"]["properties"]["required"] = []
    fixed_path = tmp_path / "fixed_plan.yaml"
    fixed_path.write_text(yaml.safe_dump(fixed))
    out = _cli(warehouse, fixed_path, "replay-rejected", "--error-code", "plan_violation")
    assert f"loaded {len(blocked)}, 0 still rejected" in out
    out = _cli(warehouse, fixed_path, "replay-rejected", "--error-code", "plan_violation")
    assert "loaded 0, 0 still rejected" in out
    every = query(warehouse, "select message_id, count(*) from raw.tracking_events group by 1")
    assert {m for m, _ in every} == {json.loads(v)["messageId"] for _, v, _ in messages}
    assert {n for _, n in every} == {1}


def test_a_bad_plan_stops_ingestion_before_it_reads(
    broker, make_topic, warehouse: DuckDBFile, tmp_path: Path
) -> None:
    topic = make_topic(partitions=1)
    bad = tmp_path / "plan.yaml"
    bad.write_text("events:\n  X:\n    properties: {type: strin}\n")
    env = {
        **os.environ,
        "DUCKDB_PATH": str(warehouse.path),
        "TRACKFLOW_WAREHOUSE": "duckdb",
        "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
        "TRACKING_TOPIC": topic,
        "TRACKING_PLAN": str(bad),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "ingest"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert lines == [
        f"error: TRACKING_PLAN {bad}: events.X.properties.type: 'strin' is not valid under any "
        "of the given schemas"
    ]
    assert not warehouse.path.exists()
