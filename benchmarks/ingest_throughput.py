"""Ingestion throughput as ratios against baselines measured in the same command.

(a) raw kafka-python consumption of the topic (no processing): the ceiling for our client;
(b) `ingest()` into a fresh DuckDB file (validation, Arrow, dlt load, offsets), and the whole
    `trackflow ingest` process (start-up, imports and the offset commit included);
(c) the usual way: dlt fed one dict per message through its normalizer (on a slice; it is slow);
(d) DuckDB inserting the loaded rows again into a fresh file: the destination's own write cost.
Medians of --repeat runs. Memory: the peak RSS of (b) in a fresh process for all events vs the
first 1/--rss-fraction of them (flat memory gives a ratio near 1).

    python -m benchmarks.ingest_throughput --events 300000 [--repeat 3] [--dict-slice 30000]
"""

from __future__ import annotations

import argparse
import json
import os
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
from pipelines.warehouse import DuckDBFile

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
    result = ingest(settings, DuckDBFile(warehouse))
    return result.messages / (time.perf_counter() - start), result.messages


def ingest_process_once(bootstrap: str, topic: str, warehouse: Path) -> tuple[float, int]:
    """`trackflow ingest --json` as its own process, timed from outside: interpreter start-up,
    imports, recovery and the final offset commit included (what a scheduler pays per run)."""
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "TRACKING_TOPIC": topic,
        "KAFKA_CONSUMER_GROUP": f"bench-process-{warehouse.stem}",
        "DUCKDB_PATH": str(warehouse),
        "TRACKFLOW_WAREHOUSE": "duckdb",
    }
    trackflow = Path(sys.executable).with_name("trackflow")
    start = time.perf_counter()
    out = subprocess.run(
        [str(trackflow), "ingest", "--json"], env=env, check=True, capture_output=True, text=True
    ).stdout
    elapsed = time.perf_counter() - start
    messages = int(json.loads(out)["messages"])
    return messages / elapsed, messages


def duckdb_insert_rate(loaded: Path, work: Path) -> float:
    """Rows/s of DuckDB writing the loaded rows again into a fresh file, with ingestion's memory
    cap: the destination's own cost, which dlt's extract-then-load order adds to the drain."""
    import duckdb

    with duckdb.connect(str(work / "insert_floor.duckdb")) as con:
        con.execute("set memory_limit = '1GB'")
        con.execute(f"attach '{loaded}' as src (read_only)")
        start = time.perf_counter()
        con.execute("create table t as select * from src.raw.tracking_events")
        con.execute("checkpoint")
        elapsed = time.perf_counter() - start
        rows = con.execute("select count(*) from t").fetchone()[0]
    return rows / elapsed


def peak_rss_of_ingest(bootstrap: str, topic: str, warehouse: Path, max_messages: int) -> int:
    """Peak RSS of one `ingest()` in a fresh interpreter, as that process reports it itself.

    VmHWM, not getrusage: Linux carries ru_maxrss over fork and exec, so a child would report
    this process's peak (it holds the generated traffic) instead of its own.
    """
    code = (
        "import sys; from pipelines.config import IngestSettings, KafkaSettings;"
        "from pipelines.ingest import ingest; from pipelines.warehouse import DuckDBFile;"
        "r = ingest(KafkaSettings(bootstrap_servers=sys.argv[1], topics=(sys.argv[2],),"
        " consumer_group='bench-rss'), DuckDBFile(sys.argv[3]),"
        " limits=IngestSettings(max_messages=int(sys.argv[4])));"
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0];"
        "print(r.messages, hwm.split()[1])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, bootstrap, topic, str(warehouse), str(max_messages)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    assert int(out[-2]) == max_messages, (out, max_messages)
    return int(out[-1]) * 1024  # kB


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dict-slice", type=int, default=30_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument(
        "--rss-fraction",
        type=int,
        default=10,
        help="peak RSS of ingesting all events vs the first 1/N of them (flat memory: ratio ~1)",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker() as broker:
        work = Path(tmp)
        topic = "bench.events"
        settings = KafkaSettings(bootstrap_servers=broker.bootstrap, topics=(topic,))
        traffic = generate(events=args.events, users=max(100, args.events // 30), days=3, seed=1)
        produce(traffic.messages, settings, topic, partitions=args.partitions)
        n = len(traffic.messages)
        avg_size = sum(len(v) for _, v, _ in traffic.messages) / n
        raw, ours, whole = [], [], []
        for i in range(args.repeat):
            raw.append(raw_consume(broker.bootstrap, topic, n))
            rate, loaded = ingest_once(broker.bootstrap, topic, work / f"run{i}.duckdb")
            assert loaded == n, (loaded, n)
            ours.append(rate)
            rate, loaded = ingest_process_once(broker.bootstrap, topic, work / f"cli{i}.duckdb")
            assert loaded == n, (loaded, n)
            whole.append(rate)
        insert = duckdb_insert_rate(work / "run0.duckdb", work)
        dicts = dict_rows_through_dlt(broker.bootstrap, topic, min(args.dict_slice, n), work)
        small = n // args.rss_fraction
        rss_small = peak_rss_of_ingest(broker.bootstrap, topic, work / "rss_small.duckdb", small)
        rss = peak_rss_of_ingest(broker.bootstrap, topic, work / "rss.duckdb", n)

    a, b, c = statistics.median(raw), statistics.median(ours), statistics.median(whole)
    report = {
        "events": n,
        "avg_message_bytes": round(avg_size),
        "partitions": args.partitions,
        "repeat": args.repeat,
        "raw_kafka_python_msgs_per_s": round(a),
        "trackflow_ingest_events_per_s": round(b),
        "trackflow_ingest_process_events_per_s": round(c),
        "dlt_dict_rows_per_s": round(dicts),
        "duckdb_insert_rows_per_s": round(insert),
        # drain at the raw rate, then load at DuckDB's insert rate: the best an extract-then-load
        # run can do against (a), with zero processing cost
        "ratio_ceiling_extract_then_load": round(insert / (a + insert), 3),
        "ratio_ingest_vs_raw": round(b / a, 3),
        "ratio_ingest_process_vs_raw": round(c / a, 3),
        "ratio_ingest_vs_dict_rows": round(b / dicts, 1),
        "peak_rss_bytes": rss,
        "peak_rss_bytes_small": rss_small,
        "rss_small_events": small,
        "ratio_rss_all_vs_small": round(rss / rss_small, 2),
        "runs": {
            "raw": [round(x) for x in raw],
            "ingest": [round(x) for x in ours],
            "ingest_process": [round(x) for x in whole],
        },
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"ingest_{n}.json").write_text(json.dumps(report, indent=2))
    print(f"{'measure':<40}{'value':>14}")
    for key in (
        "events",
        "avg_message_bytes",
        "raw_kafka_python_msgs_per_s",
        "trackflow_ingest_events_per_s",
        "trackflow_ingest_process_events_per_s",
        "dlt_dict_rows_per_s",
        "duckdb_insert_rows_per_s",
        "ratio_ingest_vs_raw",
        "ratio_ingest_process_vs_raw",
        "ratio_ceiling_extract_then_load",
        "ratio_ingest_vs_dict_rows",
        "rss_small_events",
        "peak_rss_bytes_small",
        "peak_rss_bytes",
        "ratio_rss_all_vs_small",
    ):
        print(f"{key:<40}{report[key]:>14}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
