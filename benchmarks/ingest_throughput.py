"""Ingestion throughput as ratios against baselines measured in the same command.

(a) raw kafka-python consumption of the topic (no processing): the ceiling for our client;
(b) `ingest()` into a fresh DuckDB file (validation, Arrow, dlt load, offsets);
(c) the usual way: dlt fed one dict per message through its normalizer (on a slice; it is slow).
Medians of --repeat runs. Also peak RSS of (b) in a child process, for the memory check.

    python -m benchmarks.ingest_throughput --events 300000 [--repeat 3] [--dict-slice 30000]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kafka import KafkaConsumer, TopicPartition

from pipelines.broker import EmbeddedBroker
from pipelines.config import KafkaSettings
from pipelines.generator import generate
from pipelines.ingest import ingest
from pipelines.producer import produce

RESULTS = Path(__file__).parent / "results"


def raw_consume(bootstrap: str, topic: str, expected: int) -> float:
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        fetch_max_bytes=64 * 1024 * 1024,
        max_partition_fetch_bytes=16 * 1024 * 1024,
    )
    tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
    consumer.assign(tps)
    consumer.seek_to_beginning()
    n = 0
    start = time.perf_counter()
    while n < expected:
        batch = consumer.poll(timeout_ms=1000, max_records=50_000)
        if not batch:
            break
        n += sum(len(r) for r in batch.values())
    elapsed = time.perf_counter() - start
    consumer.close()
    return n / elapsed


def dict_rows_through_dlt(bootstrap: str, topic: str, limit: int, workdir: Path) -> float:
    import dlt

    def rows():
        consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        consumer.assign(tps)
        consumer.seek_to_beginning()
        n = 0
        while n < limit:
            batch = consumer.poll(timeout_ms=1000, max_records=min(5000, limit - n))
            if not batch:
                break
            for tp, records in batch.items():
                for r in records:
                    try:
                        doc = json.loads(r.value)
                    except (TypeError, ValueError):
                        continue
                    doc.update(
                        _kafka_topic=tp.topic, _kafka_partition=tp.partition, _kafka_offset=r.offset
                    )
                    yield doc
                n += len(records)
        consumer.close()

    pipeline = dlt.pipeline(
        "bench_dicts",
        pipelines_dir=str(workdir / "dlt"),
        destination=dlt.destinations.duckdb(str(workdir / "dicts.duckdb")),
        dataset_name="raw",
    )
    start = time.perf_counter()
    pipeline.run(dlt.resource(rows(), name="tracking_events"))
    return limit / (time.perf_counter() - start)


def ingest_once(bootstrap: str, topic: str, warehouse: Path) -> tuple[float, int]:
    settings = KafkaSettings(bootstrap_servers=bootstrap, topics=(topic,), consumer_group="bench")
    start = time.perf_counter()
    result = ingest(settings, warehouse)
    return result.messages / (time.perf_counter() - start), result.messages


def peak_rss_of_ingest(bootstrap: str, topic: str, warehouse: Path) -> int:
    code = (
        "import sys; from pathlib import Path; from pipelines.config import KafkaSettings;"
        "from pipelines.ingest import ingest;"
        "ingest(KafkaSettings(bootstrap_servers=sys.argv[1], topics=(sys.argv[2],),"
        " consumer_group='bench-rss'), Path(sys.argv[3]))"
    )
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    subprocess.run([sys.executable, "-c", code, bootstrap, topic, str(warehouse)], check=True)
    return max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) * 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dict-slice", type=int, default=30_000)
    parser.add_argument("--partitions", type=int, default=4)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker() as broker:
        work = Path(tmp)
        topic = "bench.events"
        settings = KafkaSettings(bootstrap_servers=broker.bootstrap, topics=(topic,))
        traffic = generate(events=args.events, users=max(100, args.events // 30), days=3, seed=1)
        produce(traffic.messages, settings, topic, partitions=args.partitions)
        n = len(traffic.messages)
        avg_size = sum(len(v) for _, v, _ in traffic.messages) / n
        raw, ours = [], []
        for i in range(args.repeat):
            raw.append(raw_consume(broker.bootstrap, topic, n))
            rate, loaded = ingest_once(broker.bootstrap, topic, work / f"run{i}.duckdb")
            assert loaded == n, (loaded, n)
            ours.append(rate)
        dicts = dict_rows_through_dlt(broker.bootstrap, topic, min(args.dict_slice, n), work)
        rss = peak_rss_of_ingest(broker.bootstrap, topic, work / "rss.duckdb")

    a, b = statistics.median(raw), statistics.median(ours)
    report = {
        "events": n,
        "avg_message_bytes": round(avg_size),
        "partitions": args.partitions,
        "repeat": args.repeat,
        "raw_kafka_python_msgs_per_s": round(a),
        "trackflow_ingest_events_per_s": round(b),
        "dlt_dict_rows_per_s": round(dicts),
        "ratio_ingest_vs_raw": round(b / a, 3),
        "ratio_ingest_vs_dict_rows": round(b / dicts, 1),
        "peak_rss_bytes": rss,
        "runs": {"raw": [round(x) for x in raw], "ingest": [round(x) for x in ours]},
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"ingest_{n}.json").write_text(json.dumps(report, indent=2))
    print(f"{'measure':<40}{'value':>14}")
    for key in (
        "events",
        "avg_message_bytes",
        "raw_kafka_python_msgs_per_s",
        "trackflow_ingest_events_per_s",
        "dlt_dict_rows_per_s",
        "ratio_ingest_vs_raw",
        "ratio_ingest_vs_dict_rows",
        "peak_rss_bytes",
    ):
        print(f"{key:<40}{report[key]:>14}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
