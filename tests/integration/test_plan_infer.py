"""`trackflow plan infer` drafts a plan from loaded events; checked against the same draft
computed here in Python from the generated traffic, and against the traffic itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]

from pipelines.events import messages_table, validate
from pipelines.generator import generate
from pipelines.ingest import ingest
from pipelines.producer import produce
from pipelines.tracking_plan import check_batch, load_plan
from pipelines.tracking_plan.infer import ENUM_MIN_SUPPORT
from pipelines.warehouse import DuckDBFile
from tests.helpers import settings_for

REPO = Path(__file__).resolve().parents[2]
PY_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean"}


def _expected(events: list[dict[str, Any]], max_enum: int = 10) -> dict[str, Any]:
    """The draft, computed from the events without SQL."""
    sections = {"track": "events", "page": "pages", "screen": "screens"}
    counts: Counter[tuple[str, str]] = Counter()
    seen: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    types: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    values: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    for e in events:
        if e["type"] not in sections:
            continue
        key = (e["type"], e.get("event") if e["type"] == "track" else e.get("name", ""))
        counts[key] += 1
        for prop, value in (e.get("properties") or {}).items():
            seen[key][prop] += 1
            types[(*key, prop)].add(PY_TYPES[type(value)])
            if isinstance(value, str):
                values[(*key, prop)].add(value)
    plan: dict[str, Any] = {}
    for (kind, name), n in counts.items():
        props: dict[str, Any] = {}
        for prop, times in seen[(kind, name)].items():
            found = types[(kind, name, prop)]
            if found == {"integer", "number"}:
                found = {"number"}
            schema: dict[str, Any] = {"type": found.pop() if len(found) == 1 else sorted(found)}
            strings = values[(kind, name, prop)]
            few = len(strings) <= max_enum and times >= ENUM_MIN_SUPPORT * len(strings)
            if schema["type"] == "string" and few:
                schema["enum"] = sorted(strings)
            props[prop] = schema
        required = sorted(p for p, t in seen[(kind, name)].items() if t >= 0.99 * n)
        entry: dict[str, Any] = {"type": "object"}
        if props:
            entry["properties"] = props
        if required:
            entry["required"] = required
        plan.setdefault(sections[kind], {})[name] = entry
    return plan


def test_infer_drafts_the_plan_the_traffic_implies(
    broker, make_topic, warehouse: DuckDBFile, tmp_path: Path
) -> None:
    traffic = generate(events=4_000, users=150, days=2, seed=5)
    topic = make_topic(partitions=2)
    settings = settings_for(broker.bootstrap, topic)
    produce(traffic.messages, settings, topic)
    ingest(settings, warehouse)

    draft_path = tmp_path / "draft.yaml"
    env = {**os.environ, "DUCKDB_PATH": str(warehouse.path), "TRACKFLOW_WAREHOUSE": "duckdb"}
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "plan", "infer", "--output", str(draft_path)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    draft = yaml.safe_load(draft_path.read_text())

    events = [json.loads(v) for _, v, _ in traffic.messages]
    expected = _expected(events)
    assert draft["unplanned_events"] == "flag"
    for section in ("events", "pages", "screens"):
        got = {
            name: {k: v for k, v in entry["properties"].items()}
            for name, entry in draft[section].items()
        }
        for schema in got.values():
            if "required" in schema:
                schema["required"] = sorted(schema["required"])
        assert got == expected[section], section
    assert "Order Completed" in draft["events"]  # the traffic has it: the check above is not empty
    assert draft["events"]["Form Submitted"]["properties"]["properties"]["formId"]["enum"]

    # the draft is a valid plan, and the traffic it came from meets it
    plan = load_plan(draft_path)
    records = [("t", 0, i, 0, k, v) for i, (k, v, _) in enumerate(traffic.messages)]
    accepted, _ = validate(messages_table(records))
    assert check_batch(accepted, plan, "block").violations.num_rows == 0
