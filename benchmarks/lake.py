"""The DuckLake warehouse against the DuckDB file, and shards against one process, measured in
the same command on the same topic.

(a) `trackflow ingest` (the whole process, start-up included) into a DuckDB file;
(b) the same into a DuckLake (PostgreSQL catalog on 127.0.0.1, parquet in a temp dir);
(c) two `trackflow ingest --shard I/2` processes at once into another DuckLake;
(d) with --dbt: `dbt build` of the loaded data on the file and on the lake (b).
Ratios: (c)/(b) (target >= 1.7 on two cores), (b)/(a), and dbt lake / file.

Each warehouse first loads a small warm-up topic the same way (one process, or two shards), so
the timed runs measure a pipeline in service: tables, dlt state and catalog entries exist. (On
an empty lake, two shards' first loads race to create the same tables and one retries.)

    python -m benchmarks.lake --events 300000 [--dbt]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from pipelines.broker import EmbeddedBroker
from pipelines.config import KafkaSettings
from pipelines.dbt import run_dbt
from pipelines.generator import generate
from pipelines.producer import produce
from pipelines.warehouse import DuckDBFile, DuckLake, Warehouse

RESULTS = Path(__file__).parent / "results"
PG = ["-h", "127.0.0.1", "-U", "postgres"]


WARMUP_EVENTS = 2_000


def _ingest(env: dict[str, str], shards: int, cwd: Path, quiet: bool = False) -> float:
    """Seconds for `shards` ingest processes started together to drain the topic."""
    start = time.perf_counter()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "pipelines.cli", "ingest", "--shard", f"{i}/{shards}"],
            env=env,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(shards)
    ]
    for proc in procs:
        out, err = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"ingest failed: {err[-2000:]}")
        if not quiet:
            print(f"  {shards} shard(s): {out.strip()}", file=sys.stderr)
            phases = [line for line in err.splitlines() if line.startswith("phase ")]
            if phases:  # TRACKFLOW_TRACE_PHASES=1: when each step started, from process start
                print(f"    {' | '.join(phases)}", file=sys.stderr)
    return time.perf_counter() - start


def _count(warehouse: Warehouse, topic: str) -> int:
    with warehouse.connect(read_only=True) as sql:
        return int(
            sql.scalar(f"select count(*) from raw.tracking_events where _kafka_topic = '{topic}'")
        )


def _dbt(warehouse: Warehouse) -> float:
    start = time.perf_counter()
    run_dbt(warehouse, "build", "--quiet", "--exclude-resource-type", "unit_test")
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--dbt", action="store_true", help="also time dbt build, file vs lake")
    args = parser.parse_args()

    databases = [f"bench_lake_{uuid.uuid4().hex[:8]}" for _ in range(2)]
    for db in databases:
        subprocess.run(["createdb", *PG, db], check=True)
    try:
        with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker() as broker:
            work = Path(tmp)
            topic, warmup = "bench.lake", "bench.warmup"
            traffic = {
                name: generate(events=events, users=max(100, events // 30), days=3, seed=1)
                for name, events in ((topic, args.events), (warmup, WARMUP_EVENTS))
            }
            for name, generated in traffic.items():
                settings = KafkaSettings(bootstrap_servers=broker.bootstrap, topics=(name,))
                produce(generated.messages, settings, name, partitions=args.partitions)
            n = len(traffic[topic].messages)
            base = {
                **os.environ,
                "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
                "TRACKFLOW_PSEUDONYM_KEY": "bench",
            }
            file = DuckDBFile(work / "file" / "warehouse.duckdb")
            lakes = [
                DuckLake(
                    f"postgres:dbname={db} host=127.0.0.1 user=postgres",
                    f"file://{work}/lake{i}/",
                    state_dir=work / f"state{i}",
                )
                for i, db in enumerate(databases)
            ]
            env_file = {**base, "TRACKFLOW_WAREHOUSE": "duckdb", "DUCKDB_PATH": str(file.path)}
            env_lakes = [
                {**base, **lake.dbt_env(), "TRACKFLOW_STATE_DIR": str(lake.state_dir)}
                for lake in lakes
            ]
            runs = ((env_file, 1), (env_lakes[0], 1), (env_lakes[1], 2))
            for env, shards in runs:
                _ingest({**env, "TRACKING_TOPIC": warmup}, shards, work, quiet=True)
            seconds_file, seconds_lake, seconds_shards = [
                _ingest({**env, "TRACKING_TOPIC": topic}, shards, work) for env, shards in runs
            ]
            counts = [_count(w, topic) for w in (file, *lakes)]
            accepted = n - traffic[topic].truth["malformed"]
            assert counts == [accepted] * 3, (counts, accepted)
            dbt = {"file": _dbt(file), "lake": _dbt(lakes[0])} if args.dbt else {}
    finally:
        for db in databases:
            subprocess.run(["dropdb", *PG, "--if-exists", "--force", db], check=False)

    report = {
        "events": n,
        "partitions": args.partitions,
        "file_ingest_events_per_s": round(n / seconds_file),
        "lake_ingest_events_per_s": round(n / seconds_lake),
        "lake_2_shards_events_per_s": round(n / seconds_shards),
        "ratio_2_shards_vs_1": round(seconds_lake / seconds_shards, 2),
        "ratio_lake_vs_file_ingest": round(seconds_file / seconds_lake, 2),
    }
    if dbt:
        report.update(
            dbt_build_file_s=round(dbt["file"], 2),
            dbt_build_lake_s=round(dbt["lake"], 2),
            ratio_dbt_lake_vs_file=round(dbt["lake"] / dbt["file"], 2),
        )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"lake_{n}.json").write_text(json.dumps(report, indent=2))
    print(f"{'measure':<36}{'value':>14}")
    for key, value in report.items():
        print(f"{key:<36}{value:>14}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
