"""Freshness: time from an event being produced to its session being in `analytics.fct_sessions`,
with the micro-batch sensor (default) or the two schedules running through the real Dagster daemon.

Code: a copy of the committed HEAD (pipelines/, orchestration/, dbt_project/, workspace.yaml) in
the temp dir, or of the working tree with --working-tree: the repo is shared, and an edit landing
mid-benchmark must not change or break the code location under the daemon. Ingestion, dbt and
the daemon run that copy.

Set-up (all private, removed on exit): an embedded broker, a temp warehouse (`DUCKDB_PATH`) and a
temp Dagster instance (`DAGSTER_HOME`, the local `dagster.yaml` of orchestration/instance.py: one
run at a time). The warehouse is primed with --history-events of two past days (one direct
`ingest()` + full `dbt build`); those days' mart partitions are recorded as materialized in the
instance, as the runs that built them would have left them. Then, as a baseline on the same
warehouse, one direct micro-batch is timed: a minute of traffic at --rate, `ingest()` (timed
inside its process) + `dbt build --vars {min_date, max_date: today}` (the intended micro-batch;
dbt start-up included, partial parse warm).

Measured: `dagster-daemon run -w workspace.yaml` with, by --trigger,
- `sensor` (default): `microbatch_sensor` switched on (`dagster sensor start`), which starts one
  `microbatch_job` run (ingestion, then today's staging and marts) whenever the consumer group
  lags and no ingestion run is unfinished; it looks every TRACKFLOW_MICROBATCH_INTERVAL_SECONDS
  (the project default unless --sensor-interval is given);
- `schedules`: `ingest_schedule` and `marts_schedule` switched on (`dagster schedule start
  --start-all`). Dagster crons cannot go below one minute; the schedules read
  TRACKFLOW_INGEST_CRON / TRACKFLOW_MARTS_CRON, and this benchmark sets both to every minute
  (--ingest-cron / --marts-cron; the project defaults stay */5 and 2-59/5).
A producer thread sends background page/track events at --rate per second plus, every
--probe-every seconds during --minutes, a probe: one page event of a new anonymousId, its produce
wall time recorded. The warehouse is polled without taking DuckDB's lock (a copy of the file,
taken while its size and mtime hold still, opened privately), so the runs never meet a lock;
a probe counts as fresh at the first poll whose copy shows a session for its anonymous_id
(`fct_sessions.anonymous_ids`); its arrival in `raw.tracking_events` is recorded too.

Reported: median / p95 latency in seconds (produce -> raw, produce -> fct_sessions), probes,
the runs the daemon launched with their durations and their time from creation to start (queue
+ launch + the run worker's start-up), and the latency as a multiple of the direct micro-batch.
dbt invocations inside runs write under a private DBT_TARGET_PATH (seeded with the partial-parse
file of the priming build: same project and warehouse, no vars); how many re-parsed is reported.

    python -m benchmarks.freshness [--trigger sensor|schedules] [--minutes 3] [--rate 20]
                                   [--probe-every 5] [--working-tree]

Progress on stderr; table on stdout; JSON in benchmarks/results/freshness.json. Every process
started here (broker, daemon and its code server and run workers, dbt) is stopped on exit,
Ctrl-C included. About 10-15 minutes on two busy cores.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
from kafka import KafkaProducer

from orchestration.instance import ensure_local_instance
from pipelines.broker import EmbeddedBroker
from pipelines.config import KafkaSettings
from pipelines.events import dumps
from pipelines.generator import generate
from pipelines.names import ANALYTICS, MARTS
from pipelines.producer import ensure_topic, produce

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
BIN = Path(sys.executable).parent
TOPIC = "bench.freshness"
GROUP = "trackflow-bench-freshness"
EVERY_MINUTE = "* * * * *"
TRIGGERS = ("sensor", "schedules")
SENSOR = "microbatch_sensor"
_PAGES = [("/", "Home"), ("/pricing", "Pricing"), ("/docs", "Docs"), ("/blog/guide", "Guide")]
_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0 trackflow-freshness"
)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _iso(t: float) -> str:
    d = datetime.fromtimestamp(t, UTC)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond // 1000:03d}Z"


def page_event(anonymous_id: str, at: float, rng: random.Random) -> dict[str, Any]:
    path, title = rng.choice(_PAGES)
    return {
        "messageId": str(uuid.uuid4()),
        "type": "page",
        "name": title,
        "anonymousId": anonymous_id,
        "timestamp": _iso(at),
        "sentAt": _iso(at),
        "receivedAt": _iso(at),
        "context": {
            "userAgent": _AGENT,
            "locale": "en-US",
            "page": {
                "url": f"https://shop.example.com{path}",
                "path": path,
                "title": title,
                "search": "",
                "referrer": "",
            },
            "library": {"name": "analytics.js", "version": "5.2.0"},
        },
    }


def live_event(visitors: list[str], rng: random.Random) -> tuple[bytes, bytes]:
    visitor = rng.choice(visitors)
    body = page_event(visitor, time.time(), rng)
    if rng.random() < 0.3:
        body.update(type="track", event="Button Clicked", properties={"button": "cta"})
        del body["name"]
    return visitor.encode(), dumps(body)


# ---------------------------------------------------------------------------------------------
# live traffic: background events at a steady rate, probes at a fixed interval


@dataclass
class Probe:
    anonymous_id: str
    produced_at: float  # wall time just before send()
    acked_at: float = math.nan
    in_raw_at: float | None = None
    in_sessions_at: float | None = None


@dataclass
class Traffic:
    bootstrap: str
    rate: float
    probe_every: float
    rng: random.Random = field(default_factory=lambda: random.Random(11))
    probes: list[Probe] = field(default_factory=list)
    sent: int = 0
    probing: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.visitors = [
            str(uuid.UUID(int=self.rng.getrandbits(128), version=4)) for _ in range(300)
        ]
        self.thread = threading.Thread(target=self._run, name="traffic", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        producer = KafkaProducer(bootstrap_servers=self.bootstrap, acks="all", linger_ms=5)
        try:
            tick = 0.1
            owed = 0.0
            next_tick = time.monotonic()
            next_probe = 0.0
            while not self.stop.is_set():
                owed += self.rate * tick
                while owed >= 1:
                    key, value = live_event(self.visitors, self.rng)
                    producer.send(TOPIC, key=key, value=value)
                    owed -= 1
                    self.sent += 1
                if self.probing.is_set() and time.monotonic() >= next_probe:
                    next_probe = time.monotonic() + self.probe_every
                    self._probe(producer)
                next_tick += tick
                self.stop.wait(max(0.0, next_tick - time.monotonic()))
            producer.flush(30)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            self.error = exc
        finally:
            producer.close(5)

    def _probe(self, producer: KafkaProducer) -> None:
        anonymous_id = f"probe-{uuid.uuid4()}"
        produced_at = time.time()
        body = page_event(anonymous_id, produced_at, self.rng)
        future = producer.send(TOPIC, key=anonymous_id.encode(), value=dumps(body))
        producer.flush(10)
        future.get(timeout=10)
        probe = Probe(anonymous_id, produced_at, acked_at=time.time())
        with self.lock:
            self.probes.append(probe)

    def pending(self) -> list[Probe]:
        with self.lock:
            return [p for p in self.probes if p.in_sessions_at is None]

    def close(self) -> None:
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join(15)


# ---------------------------------------------------------------------------------------------
# reading the warehouse without ever holding its lock


class WarehouseWatcher:
    """Copies the DuckDB file (+ WAL) while it holds still and queries the copy; the writer
    (a Dagster run) never sees a lock of ours. A torn copy fails to open or query: retried."""

    def __init__(self, warehouse: Path, workdir: Path) -> None:
        self.warehouse = warehouse
        self.wal = warehouse.with_name(warehouse.name + ".wal")
        self.copy = workdir / "snapshot.duckdb"
        self.copy_wal = workdir / "snapshot.duckdb.wal"
        self.last_state: tuple[int, int, int] | None = None
        self.polls = 0
        self.failed = 0

    def _state(self) -> tuple[int, int, int]:
        st = self.warehouse.stat()
        wal = self.wal.stat().st_size if self.wal.exists() else -1
        return st.st_size, st.st_mtime_ns, wal

    def poll(self, probes: list[Probe]) -> None:
        """Mark probes seen in raw / in fct_sessions at this poll's start time."""
        if not probes or not self.warehouse.exists():
            return
        seen_at = time.time()
        before = self._state()
        if before == self.last_state:
            return  # nothing written since the last good look
        shutil.copyfile(self.warehouse, self.copy)
        if self.wal.exists():
            shutil.copyfile(self.wal, self.copy_wal)
        else:
            self.copy_wal.unlink(missing_ok=True)
        if self._state() != before:
            return  # written during the copy: look again next time
        self.polls += 1
        ids = [p.anonymous_id for p in probes]
        try:
            with duckdb.connect(str(self.copy)) as con:
                in_raw = {
                    r[0]
                    for r in con.execute(
                        "select distinct anonymous_id from raw.tracking_events "
                        "where anonymous_id in (select unnest(?::varchar[]))",
                        [ids],
                    ).fetchall()
                }
                in_sessions = {
                    r[0]
                    for r in con.execute(
                        "select distinct a from (select unnest(anonymous_ids) as a "
                        "from analytics.fct_sessions) where a in (select unnest(?::varchar[]))",
                        [ids],
                    ).fetchall()
                }
        except duckdb.Error:
            self.failed += 1
            return
        finally:
            self.copy.unlink(missing_ok=True)
            self.copy_wal.unlink(missing_ok=True)
        self.last_state = before
        for p in probes:
            if p.in_raw_at is None and p.anonymous_id in in_raw:
                p.in_raw_at = seen_at
            if p.in_sessions_at is None and p.anonymous_id in in_sessions:
                p.in_sessions_at = seen_at
                if p.in_raw_at is None:
                    p.in_raw_at = seen_at


# ---------------------------------------------------------------------------------------------
# processes


def _children(pid: int) -> list[int]:
    """Every descendant of pid (read from /proc), deepest last."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    out: list[int] = []
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def stop_tree(proc: subprocess.Popen[bytes], name: str, grace: float = 20.0) -> None:
    """SIGTERM the process group we created (start_new_session), then SIGKILL what is left,
    including any descendant that moved to a group of its own."""
    tree = _children(proc.pid)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        log(f"{name} did not stop within {grace:.0f}s: killing it")
    for pid in [*tree, *_children(proc.pid)]:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


SNAPSHOT_PATHS = ("pipelines", "orchestration", "dbt_project", "workspace.yaml", "pyproject.toml")


def snapshot_code(dest: Path, working_tree: bool) -> dict[str, Any]:
    """Copy the code that ingestion, dbt and the daemon run: the committed HEAD, or with
    working_tree the files as they are now (tracked, and untracked but not ignored). The repo
    is shared: an edit landing mid-benchmark must not change, or break, the code location."""
    dest.mkdir(parents=True)

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=ROOT, check=True, capture_output=True, text=True
        ).stdout

    if working_tree:
        for name in filter(None, git("ls-files", "-co", "--exclude-standard", "-z", "--",
                                     *SNAPSHOT_PATHS).split("\0")):  # fmt: skip
            if (ROOT / name).is_file():
                (dest / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / name, dest / name)
    else:
        archive = subprocess.run(
            ["git", "archive", "--format=tar", "HEAD", "--", *SNAPSHOT_PATHS],
            cwd=ROOT, check=True, capture_output=True,
        ).stdout  # fmt: skip
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(dest, filter="data")
    dirty = git("status", "--porcelain", "--", *SNAPSHOT_PATHS).splitlines()
    return {
        "source": "working tree" if working_tree else "HEAD",
        "git_head": git("rev-parse", "HEAD").strip(),
        "uncommitted_files": len(dirty),
    }


INGEST = """
import json, sys, time
from pipelines.config import KafkaSettings
from pipelines.ingest import ingest
from pipelines.warehouse import DuckDBFile
settings = KafkaSettings(bootstrap_servers=sys.argv[1], topics=(sys.argv[2],),
                         consumer_group=sys.argv[3])
start = time.perf_counter()
result = ingest(settings, DuckDBFile(sys.argv[4]))
print(json.dumps({"seconds": time.perf_counter() - start, "loaded": result.loaded}))
"""


def ingest_in(src: Path, bootstrap: str, warehouse: Path) -> tuple[float, int]:
    """`ingest()` of the snapshot's code, timed inside its process (imports not counted)."""
    proc = subprocess.run(
        [sys.executable, "-c", INGEST, bootstrap, TOPIC, GROUP, str(warehouse)],
        cwd=src, env={**os.environ, "PYTHONPATH": str(src)},
        capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(f"ingest failed:\n{proc.stderr[-3000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return out["seconds"], out["loaded"]


def dbt(src: Path, warehouse: Path, command: str, target: Path, *args: str) -> float:
    """A dbt command on the snapshot's project, timed (start-up included)."""
    start = time.perf_counter()
    proc = subprocess.run(
        [str(BIN / "dbt"), command, "--project-dir", "dbt_project", "--profiles-dir",
         "dbt_project", "--target-path", str(target), *args],
        cwd=src, env={**os.environ, "DUCKDB_PATH": str(warehouse)},
        capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(f"dbt {command} failed:\n{proc.stdout[-3000:]}{proc.stderr[-2000:]}")
    return time.perf_counter() - start


# ---------------------------------------------------------------------------------------------
# the Dagster instance


def record_history(instance: Any, days: list[date]) -> None:
    """The primed days' mart partitions, recorded as materialized: the direct build made them,
    as earlier runs would have. Unrecorded, marts_freshness_sensor finds yesterday missing and
    starts a check run every half-minute, taking the one run slot from the runs measured."""
    from dagster import AssetKey, AssetMaterialization

    for mart in MARTS:
        for day in days:
            instance.report_runless_asset_event(
                AssetMaterialization(
                    asset_key=AssetKey([ANALYTICS, mart]),
                    partition=day.isoformat(),
                    description="built directly by the benchmark's priming dbt build",
                )
            )


def run_stats(home: Path, since: float) -> list[dict[str, Any]]:
    from dagster import DagsterInstance

    with DagsterInstance.from_config(str(home)) as instance:
        records = instance.get_run_records()
        runs = []
        for r in records:
            created = r.create_timestamp.timestamp()
            if created < since:
                continue
            runs.append(
                {
                    "run_id": r.dagster_run.run_id,
                    "job": r.dagster_run.job_name,
                    "status": r.dagster_run.status.value,
                    "created_at": created,
                    "started_at": r.start_time,
                    "ended_at": r.end_time,
                    # queue wait + launch + the run worker's start-up (imports, definitions)
                    "created_to_started_s": (r.start_time - created) if r.start_time else None,
                    "duration_s": (r.end_time - r.start_time)
                    if r.start_time and r.end_time
                    else None,
                    "partition": r.dagster_run.tags.get("dagster/partition"),
                }
            )
    return sorted(runs, key=lambda x: x["created_at"])


def parse_counts(dbt_targets: Path) -> dict[str, int]:
    """dbt invocations inside runs (one log each) and how many parsed the project from scratch."""
    invocations = full = 0
    for logfile in dbt_targets.glob("*/dbt.log"):
        invocations += 1
        text = logfile.read_text(errors="replace")
        if "Unable to do partial parsing" in text or "Partial parse save file not found" in text:
            full += 1
    return {"dbt_invocations_in_runs": invocations, "dbt_full_parses_in_runs": full}


# ---------------------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def summarize(values: list[float]) -> dict[str, float | None]:
    r = lambda v: round(v, 2) if v is not None else None  # noqa: E731
    return {
        "median_s": r(statistics.median(values)) if values else None,
        "p95_s": r(pct(values, 0.95)),
        "min_s": r(min(values)) if values else None,
        "max_s": r(max(values)) if values else None,
    }


def job_summary(runs: list[dict[str, Any]], job: str) -> dict[str, Any]:
    mine = [r for r in runs if r["job"] == job]
    done = [r["duration_s"] for r in mine if r["duration_s"] is not None]
    queued = [r["created_to_started_s"] for r in mine if r["created_to_started_s"] is not None]
    statuses: dict[str, int] = {}
    for r in mine:
        statuses[r["status"]] = statuses.get(r["status"], 0) + 1
    return {
        "runs": len(mine),
        "statuses": statuses,
        "duration_median_s": round(statistics.median(done), 2) if done else None,
        "duration_max_s": round(max(done), 2) if done else None,
        "created_to_started_median_s": round(statistics.median(queued), 2) if queued else None,
    }


def main() -> int:  # noqa: PLR0915 - one linear script
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=3.0, help="probing window, minutes")
    parser.add_argument("--rate", type=float, default=20.0, help="background events per second")
    parser.add_argument("--probe-every", type=float, default=5.0, help="seconds between probes")
    parser.add_argument("--history-events", type=int, default=5_000)
    parser.add_argument("--drain-timeout", type=float, default=480.0,
                        help="seconds to wait for the last probes after the window")  # fmt: skip
    parser.add_argument("--poll", type=float, default=1.0, help="seconds between warehouse looks")
    parser.add_argument(
        "--trigger",
        choices=TRIGGERS,
        default="sensor",
        help="what starts the runs: microbatch_sensor (default) or the two schedules",
    )
    parser.add_argument(
        "--sensor-interval",
        type=int,
        help="TRACKFLOW_MICROBATCH_INTERVAL_SECONDS for the sensor (default: the project's)",
    )
    parser.add_argument("--ingest-cron", default=EVERY_MINUTE, help="with --trigger schedules")
    parser.add_argument("--marts-cron", default=EVERY_MINUTE, help="with --trigger schedules")
    parser.add_argument(
        "--working-tree", action="store_true", help="run the working tree's code, not HEAD"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, instance)")
    args = parser.parse_args()

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)

    work = Path(tempfile.mkdtemp(prefix="trackflow-freshness-"))
    warehouse = work / "warehouse.duckdb"
    home = ensure_local_instance(work / "dagster_home")
    dbt_targets = work / "dbt_target"
    daemon: subprocess.Popen[bytes] | None = None
    starter: subprocess.Popen[bytes] | None = None
    traffic: Traffic | None = None
    broker = EmbeddedBroker(log_path=work / "broker.log")
    load_start = os.getloadavg()
    interrupted = False
    try:
        src = work / "src"
        code = snapshot_code(src, args.working_tree)
        log(f"code: {code['source']} (HEAD {code['git_head'][:8]}; {code['uncommitted_files']} "
            f"uncommitted files in the repo) copied to {src}")  # fmt: skip
        broker.start()
        log(f"broker at {broker.bootstrap}; work dir {work}")
        settings = KafkaSettings(
            bootstrap_servers=broker.bootstrap, topics=(TOPIC,), consumer_group=GROUP
        )
        ensure_topic(settings, TOPIC)

        # prime: two past days, loaded and fully built directly
        history_days = [datetime.now(UTC).date() - timedelta(days=n) for n in (2, 1)]
        history = generate(
            events=args.history_events,
            users=max(50, args.history_events // 30),
            days=2,
            seed=3,
            start=history_days[0],
        )
        produce(history.messages, settings, TOPIC)
        prime_ingest_s, primed = ingest_in(src, broker.bootstrap, warehouse)
        log(f"prime: {primed} history events ingested in {prime_ingest_s:.1f}s; dbt build")
        prime_dbt_s = dbt(src, warehouse, "build", work / "dbt_prime")
        log(f"prime: full dbt build {prime_dbt_s:.1f}s")

        # baseline: one direct micro-batch of a minute of traffic, partial parse warm
        today = datetime.now(UTC).date().isoformat()
        dbt_vars = json.dumps({"min_date": today, "max_date": today})
        rng = random.Random(5)
        visitors = [str(uuid.uuid4()) for _ in range(300)]
        batch = [(*live_event(visitors, rng), None) for _ in range(int(args.rate * 60))]
        produce(batch, settings, TOPIC)
        dbt(src, warehouse, "parse", work / "dbt_base", "--vars", dbt_vars)
        base_ingest_s, base_loaded = ingest_in(src, broker.bootstrap, warehouse)
        base_dbt_s = dbt(src, warehouse, "build", work / "dbt_base", "--vars", dbt_vars)
        base_total = base_ingest_s + base_dbt_s
        log(
            f"baseline micro-batch ({base_loaded} events): ingest {base_ingest_s:.1f}s + "
            f"dbt build {base_dbt_s:.1f}s = {base_total:.1f}s"
        )
        # runs' dbt invocations start from a warm partial-parse file of the same project,
        # profile and warehouse, parsed without vars (what their `dbt build`s pass today)
        dbt_targets.mkdir()
        shutil.copy(work / "dbt_prime" / "partial_parse.msgpack", dbt_targets)

        # the daemon, on the same warehouse, topic and consumer group (offsets in dlt state)
        env = {
            **os.environ,
            "DAGSTER_HOME": str(home),
            "DUCKDB_PATH": str(warehouse),
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
            "TRACKING_TOPIC": TOPIC,
            "KAFKA_CONSUMER_GROUP": GROUP,
            "TRACKFLOW_INGEST_CRON": args.ingest_cron,
            "TRACKFLOW_MARTS_CRON": args.marts_cron,
            "DBT_TARGET_PATH": str(dbt_targets),
            "PYTHONPATH": str(src),
        }
        if args.sensor_interval is not None:
            env["TRACKFLOW_MICROBATCH_INTERVAL_SECONDS"] = str(args.sensor_interval)
        if args.trigger == "sensor":
            switch_on = ["sensor", "start", SENSOR]
            what = f"the sensor {SENSOR}"
        else:
            switch_on = ["schedule", "start", "--start-all"]
            what = "both schedules"
        # the code location's dbt manifest, parsed once before two processes load it
        subprocess.run(
            [sys.executable, "-m", "orchestration.project"],
            cwd=src, env=env, check=True, capture_output=True, timeout=900,
        )  # fmt: skip
        from dagster import DagsterInstance

        # create the SQLite storage once here: two processes creating it at once race
        with DagsterInstance.from_config(str(home)) as instance:
            record_history(instance, history_days)
        daemon_log = work / "daemon.log"
        daemon_started = time.time()
        traffic = Traffic(broker.bootstrap, args.rate, args.probe_every)
        traffic.start()
        with open(daemon_log, "ab") as out:
            daemon = subprocess.Popen(
                [str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"],
                cwd=src, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
            starter = subprocess.Popen(
                [str(BIN / "dagster"), *switch_on, "-w", "workspace.yaml"],
                cwd=src, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        log(f"dagster-daemon pid {daemon.pid} (log {daemon_log}); starting {what}")
        if starter.wait(300) != 0:
            raise SystemExit(f"dagster {' '.join(switch_on)} failed:\n{_tail(daemon_log)}")
        starter = None
        if args.trigger == "sensor":
            log(f"{SENSOR} on (interval {args.sensor_interval or 'project default'})")
        else:
            log(f"schedules on (ingest '{args.ingest_cron}', marts '{args.marts_cron}')")

        def check_alive() -> None:
            if daemon is not None and daemon.poll() is not None:
                raise SystemExit(
                    f"dagster-daemon exited ({daemon.returncode}):\n{_tail(daemon_log)}"
                )
            if traffic is not None and traffic.error is not None:
                raise SystemExit(f"producer failed: {traffic.error!r}")

        with DagsterInstance.from_config(str(home)) as instance:
            while not instance.get_runs_count():
                check_alive()
                time.sleep(1)
        log("first run launched: probing starts")

        watcher = WarehouseWatcher(warehouse, work)
        traffic.probing.set()
        window_start = time.time()
        window_end = window_start + args.minutes * 60
        deadline = window_end + args.drain_timeout
        last_report = 0.0
        while True:
            now = time.time()
            if now >= window_end and traffic.probing.is_set():
                traffic.probing.clear()
                log(f"probing window over: {len(traffic.probes)} probes; waiting for the last")
            check_alive()
            watcher.poll(traffic.pending())
            done = not traffic.probing.is_set() and not traffic.pending()
            if now - last_report >= 15 or done:
                last_report = now
                seen = [
                    p.in_sessions_at - p.produced_at
                    for p in traffic.probes
                    if p.in_sessions_at is not None
                ]
                runs = run_stats(home, daemon_started)
                finished = sum(1 for r in runs if r["ended_at"])
                log(
                    f"probes {len(traffic.probes)} sent, {len(seen)} in fct_sessions"
                    + (f" (median {statistics.median(seen):.1f}s)" if seen else "")
                    + f"; runs {len(runs)} launched, {finished} finished; "
                    f"{traffic.sent} background events"
                )
            if done:
                break
            if now >= deadline:
                log(f"drain timeout: {len(traffic.pending())} probes never reached fct_sessions")
                break
            time.sleep(args.poll)
        measured_end = time.time()
        # before the daemon stops: a run it interrupts must not count as failed
        runs = run_stats(home, daemon_started)
    except KeyboardInterrupt:
        interrupted = True
        log("interrupted: cleaning up")
    except BaseException:
        interrupted = True
        log("failed: cleaning up" + ("" if args.keep else " (--keep keeps the work dir)"))
        raise
    finally:
        if traffic is not None:
            traffic.close()
        for proc, name in ((starter, "dagster sensor/schedule start"), (daemon, "dagster-daemon")):
            if proc is not None:
                stop_tree(proc, name)
        broker.stop()
        if interrupted:
            if args.keep:
                log(f"kept {work}")
            else:
                shutil.rmtree(work, ignore_errors=True)
            log("stopped")
    if interrupted:
        return 130

    try:
        parses = parse_counts(dbt_targets)
        probes = traffic.probes
        to_raw = [p.in_raw_at - p.produced_at for p in probes if p.in_raw_at is not None]
        to_sessions = [
            p.in_sessions_at - p.produced_at for p in probes if p.in_sessions_at is not None
        ]
        latency = summarize(to_sessions)
        # the jobs the trigger starts first, then any other job the daemon ran (late data)
        expected = ["microbatch_job"] if args.trigger == "sensor" else ["ingest_job", "marts_job"]
        jobs = [*expected, *sorted({r["job"] for r in runs} - set(expected))]
        report: dict[str, Any] = {
            "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "code": code,
            "config": {
                "minutes": args.minutes,
                "rate_events_per_s": args.rate,
                "probe_every_s": args.probe_every,
                "poll_s": args.poll,
                "history_events": args.history_events,
                "trigger": args.trigger,
                "sensor_interval_s": args.sensor_interval,
                "ingest_cron": args.ingest_cron if args.trigger == "schedules" else None,
                "marts_cron": args.marts_cron if args.trigger == "schedules" else None,
                "cpus": os.cpu_count(),
                "loadavg_start": [round(x, 2) for x in load_start],
                "loadavg_end": [round(x, 2) for x in os.getloadavg()],
            },
            "probes": len(probes),
            "probes_in_fct_sessions": len(to_sessions),
            "probes_missing": len(probes) - len(to_sessions),
            "background_events": traffic.sent,
            "produce_to_fct_sessions": latency,
            "produce_to_raw": summarize(to_raw),
            "baseline": {
                "events": base_loaded,
                "ingest_s": round(base_ingest_s, 2),
                "dbt_build_s": round(base_dbt_s, 2),
                "total_s": round(base_total, 2),
                "prime_full_dbt_build_s": round(prime_dbt_s, 2),
            },
            "ratio_median_to_baseline": round(latency["median_s"] / base_total, 2)
            if latency["median_s"] is not None
            else None,
            "ratio_p95_to_baseline": round(latency["p95_s"] / base_total, 2)
            if latency["p95_s"] is not None
            else None,
            "runs": {
                "launched": len(runs),
                **{job: job_summary(runs, job) for job in jobs},
                **parses,
                "list": [
                    {
                        k: (round(v, 2) if isinstance(v, float) else v)
                        for k, v in r.items()
                        if k not in ("created_at", "started_at", "ended_at")
                    }
                    | {"created_s": round(r["created_at"] - daemon_started, 1)}
                    for r in runs
                ],
            },
            "warehouse_polls": watcher.polls,
            "warehouse_polls_failed": watcher.failed,
            "wall_s": round(measured_end - daemon_started, 1),
        }
        RESULTS.mkdir(exist_ok=True)
        out = RESULTS / "freshness.json"
        out.write_text(json.dumps(report, indent=2))

        rows: list[tuple[str, Any]] = [
            ("trigger", args.trigger),
            ("probes (in fct_sessions / sent)", f"{len(to_sessions)} / {len(probes)}"),
            ("produce -> fct_sessions median s", latency["median_s"]),
            ("produce -> fct_sessions p95 s", latency["p95_s"]),
            ("produce -> fct_sessions min / max s", f"{latency['min_s']} / {latency['max_s']}"),
            ("produce -> raw median s", report["produce_to_raw"]["median_s"]),
            ("produce -> raw p95 s", report["produce_to_raw"]["p95_s"]),
            ("runs launched", len(runs)),
            *[
                row
                for job in jobs
                for row in (
                    (f"{job} runs / median / max s",
                     f"{report['runs'][job]['runs']} / {report['runs'][job]['duration_median_s']}"
                     f" / {report['runs'][job]['duration_max_s']}"),
                    (f"{job} created -> started median s",
                     report["runs"][job]["created_to_started_median_s"]),
                )
            ],
            ("dbt full parses / invocations in runs",
             f"{parses['dbt_full_parses_in_runs']} / {parses['dbt_invocations_in_runs']}"),
            ("baseline ingest() s", report["baseline"]["ingest_s"]),
            ("baseline dbt build s", report["baseline"]["dbt_build_s"]),
            ("baseline micro-batch total s", report["baseline"]["total_s"]),
            ("median / baseline", report["ratio_median_to_baseline"]),
            ("p95 / baseline", report["ratio_p95_to_baseline"]),
        ]  # fmt: skip
        bad: dict[str, int] = {}
        for r in runs:
            if r["status"] != "SUCCESS":
                key = f"{r['job']} {r['status']}"
                bad[key] = bad.get(key, 0) + 1
        if bad:
            rows.append(("runs not successful at the end", json.dumps(bad)))
        print(f"{'measure':<40}{'value':>22}")
        for key, value in rows:
            print(f"{key:<40}{value!s:>22}")
        log(f"wrote {out}")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            log(f"kept {work}")
    return 0 if not report["probes_missing"] else 1


if __name__ == "__main__":
    sys.exit(main())
