"""Ingestion with a tracking plan of 30 entries vs without one, measured in the same command.

The plan is docs/tracking_plan.yaml (every event, page and screen the generator sends: 18
entries) plus 12 track events the traffic never sends, so every event meets a schema. Each
repeat ingests the same topic into two fresh DuckDB files, one without and one with the plan,
alternating which goes first; medians of --repeat runs. Also the plan check alone on one
50k-event batch (the hot path's own cost).

    python -m benchmarks.tracking_plan --events 200000 [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml  # type: ignore[import-untyped]

from pipelines.broker import EmbeddedBroker
from pipelines.config import KafkaSettings, TrackingPlanSettings
from pipelines.events import messages_table, validate
from pipelines.generator import generate
from pipelines.ingest import ingest
from pipelines.producer import produce
from pipelines.tracking_plan import check_batch, load_plan
from pipelines.warehouse import DuckDBFile

RESULTS = Path(__file__).parent / "results"
SAMPLE_PLAN = Path(__file__).resolve().parents[1] / "docs" / "tracking_plan.yaml"


def thirty_entry_plan(path: Path) -> Path:
    plan = yaml.safe_load(SAMPLE_PLAN.read_text())
    for i in range(12):
        plan["events"][f"Unsent Event {i}"] = {
            "properties": {
                "type": "object",
                "required": ["id"],
                "properties": {"id": {"type": "string"}, "value": {"type": "number"}},
            }
        }
    path.write_text(yaml.safe_dump(plan))
    entries = sum(len(plan[s]) for s in ("events", "pages", "screens"))
    assert entries == 30, entries
    return path


def ingest_rate(settings: KafkaSettings, warehouse: Path, plan: Path | None) -> float:
    tracking_plan = TrackingPlanSettings.of(plan_file=plan)
    start = time.perf_counter()
    result = ingest(settings, DuckDBFile(warehouse), tracking_plan=tracking_plan)
    return result.messages / (time.perf_counter() - start)


def check_only(messages: list[tuple[bytes, bytes, int]], plan: Path) -> float:
    """Events/s of check_batch alone on one 50k batch (validated first, not timed)."""
    batch = messages[:50_000]
    records = [("t", 0, i, 0, k, v) for i, (k, v, _) in enumerate(batch)]
    accepted, _ = validate(messages_table(records))
    compiled = load_plan(plan)
    start = time.perf_counter()
    check_batch(accepted, compiled, "flag")
    return accepted.num_rows / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--partitions", type=int, default=4)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker() as broker:
        work = Path(tmp)
        plan = thirty_entry_plan(work / "plan.yaml")
        topic = "bench.plan"
        traffic = generate(events=args.events, users=max(100, args.events // 30), days=3, seed=1)
        produce(
            traffic.messages,
            KafkaSettings(bootstrap_servers=broker.bootstrap, topics=(topic,)),
            topic,
            partitions=args.partitions,
        )
        without, with_plan = [], []
        for i in range(args.repeat):
            settings = KafkaSettings(
                bootstrap_servers=broker.bootstrap, topics=(topic,), consumer_group=f"bench-{i}"
            )
            runs = [(without, None), (with_plan, plan)]
            for rates, chosen in runs if i % 2 == 0 else runs[::-1]:
                name = "plan" if chosen else "none"
                rates.append(ingest_rate(settings, work / f"{name}{i}.duckdb", chosen))
        check_rate = check_only(traffic.messages, plan)

    a, b = statistics.median(without), statistics.median(with_plan)
    report = {
        "events": len(traffic.messages),
        "plan_entries": 30,
        "repeat": args.repeat,
        "ingest_events_per_s_without_plan": round(a),
        "ingest_events_per_s_with_plan": round(b),
        "ratio_with_vs_without": round(b / a, 3),
        "slowdown_percent": round((1 - b / a) * 100, 1),
        "plan_check_alone_events_per_s": round(check_rate),
        "runs": {"without": [round(x) for x in without], "with": [round(x) for x in with_plan]},
    }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"tracking_plan_{len(traffic.messages)}.json"
    out.write_text(json.dumps(report, indent=2))
    for key, value in report.items():
        print(f"{key:<40}{value!s:>20}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
