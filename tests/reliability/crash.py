"""Kill the ingestion with SIGKILL at random moments while a producer keeps sending.

Used by the CI test (20+ kills) and by `make soak`
(200+ kills, `python -m tests.reliability.crash`).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import duckdb

from pipelines.broker import EmbeddedBroker
from pipelines.generator import generate
from pipelines.producer import ensure_topic, produce
from tests.helpers import settings_for

REPO = Path(__file__).resolve().parents[2]


@dataclass
class CrashReport:
    kills: int
    completed_runs: int
    produced_messages: int
    produced_valid: int
    produced_malformed: int
    raw_rows: int
    staged: int  # rows of staging.stg_raw__tracking_events
    rejected: int
    lost: int
    duplicated: int
    kills_by_phase: dict[str, int]

    def line(self) -> str:
        return " ".join(
            f"{k}={v}"
            if not isinstance(v, dict)
            else f"{k}=" + ",".join(f"{p}:{n}" for p, n in sorted(v.items()))
            for k, v in asdict(self).items()
        )


def _ingest_cmd() -> list[str]:
    # small runs, so kills land in every step: startup, extract (poll), normalize, load, commit
    return [
        sys.executable,
        "-m",
        "pipelines.cli",
        "ingest",
        "--batch-size",
        "1500",
        "--max-messages",
        "4000",
    ]


def run_crash_test(workdir: Path, kills: int, events: int, seed: int = 11) -> CrashReport:
    rng = random.Random(seed)
    workdir.mkdir(parents=True, exist_ok=True)
    warehouse = workdir / "warehouse.duckdb"
    with EmbeddedBroker(log_path=workdir / "broker.log") as broker:
        topic = "crash.events"
        settings = settings_for(broker.bootstrap, topic, group="crash")
        ensure_topic(settings, topic, partitions=4)
        traffic = generate(
            events=events,
            users=max(50, events // 40),
            days=2,
            seed=seed,
            faults={"duplicates", "malformed"},
        )
        valid_ids = set(traffic.valid_ids)
        chunks = [traffic.messages[i : i + 500] for i in range(0, len(traffic.messages), 500)]

        def keep_sending() -> None:
            for chunk in chunks:
                produce(chunk, settings, topic)
                time.sleep(0.05)

        producer = threading.Thread(target=keep_sending, daemon=True)
        producer.start()
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
            "TRACKING_TOPIC": topic,
            "KAFKA_CONSUMER_GROUP": "crash",
            "DUCKDB_PATH": str(warehouse),
            "PYTHONPATH": str(REPO),
            "TRACKFLOW_TRACE_PHASES": "1",
        }
        done = completed = 0
        by_phase: Counter[str] = Counter()
        trace = workdir / "phases.log"
        while done < kills:
            with open(trace, "w") as err:
                proc = subprocess.Popen(
                    _ingest_cmd(), env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=err
                )
                # wait out interpreter startup (seconds, longer on a busy machine), then a random
                # moment inside the run: recover, extract (poll), normalize, load or commit
                started = time.monotonic()
                while (
                    proc.poll() is None
                    and "phase " not in trace.read_text()
                    and time.monotonic() - started < 60
                ):
                    time.sleep(0.02)
                time.sleep(rng.uniform(0.0, 3.0))
                if proc.poll() is None:
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                    done += 1
                    phases = [
                        line.split()[1]
                        for line in trace.read_text().splitlines()
                        if line.startswith("phase ")
                    ]
                    by_phase[phases[-1] if phases else "startup"] += 1
                else:
                    completed += 1
                proc.wait()
        producer.join()
        while True:  # then let it finish, including what arrived after the last kill
            final = subprocess.run(
                _ingest_cmd(), env=env, cwd=REPO, capture_output=True, text=True, timeout=300
            )
            if final.returncode != 0:
                raise AssertionError(f"final ingest failed: {final.stderr[-2000:]}")
            completed += 1
            if final.stdout.startswith("loaded 0 events, rejected 0"):
                break
        dbt = subprocess.run(
            [
                str(REPO / ".venv" / "bin" / "dbt"),
                "run",
                "--project-dir",
                "dbt_project",
                "--profiles-dir",
                "dbt_project",
                "--select",
                "stg_raw__tracking_events",
                "--quiet",
            ],
            env={**env, "DUCKDB_PATH": str(warehouse)},
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if dbt.returncode != 0:
            raise AssertionError(f"dbt staging failed: {dbt.stdout[-2000:]}")
        with duckdb.connect(str(warehouse), read_only=True) as con:
            raw_rows = con.execute("select count(*) from raw.tracking_events").fetchone()[0]
            staged_ids = [
                r[0]
                for r in con.execute(
                    "select message_id from staging.stg_raw__tracking_events"
                ).fetchall()
            ]
            loaded_ids = set(staged_ids)
            rejected = con.execute(
                "select count(distinct (_kafka_partition, _kafka_offset)) "
                "from raw.tracking_events_rejected"
            ).fetchone()[0]
    return CrashReport(
        kills=done,
        completed_runs=completed,
        produced_messages=len(traffic.messages),
        produced_valid=len(valid_ids),
        produced_malformed=traffic.truth["malformed"],
        raw_rows=raw_rows,
        staged=len(staged_ids),
        rejected=rejected,
        lost=len(valid_ids - loaded_ids),
        kills_by_phase=dict(by_phase),
        duplicated=len(staged_ids) - len(loaded_ids) + len(loaded_ids - valid_ids),
    )


if __name__ == "__main__":
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(description="crash-anywhere soak for trackflow ingestion")
    parser.add_argument("--kills", type=int, default=200)
    parser.add_argument("--events", type=int, default=200_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        report = run_crash_test(Path(tmp), kills=args.kills, events=args.events)
    print(report.line())
    sys.exit(0 if report.lost == 0 and report.duplicated == 0 else 1)
