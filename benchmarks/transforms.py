"""dbt transform cost against the engine's floor, and the incremental cost of one day.

(a) `dbt build` (models + data tests) and (b) `dbt run` (models only) of every model on a warehouse
that holds only `raw.tracking_events`, timed as subprocesses (dbt's start-up and parse included; a
`dbt parse` warms the partial-parse cache first), against (c) the floor: one hand-written DuckDB
script (`transforms_floor.sql`) that computes the same sessions and the `checkout` funnel straight
from raw. The floor must find exactly the session ids, session events and checkout step counts of
the marts, or the benchmark fails. Medians of --repeat runs, each from raw only.

(d) Incremental: after a full build, ~1% new raw rows land on a new day (returning visitors of the
latest copy), then `dbt build` / `dbt run` with `--vars {min_date, max_date}` for the event days
they touched; each repeat starts from a copy of the fully built warehouse. Reported as a percentage
of the full build / run. Measured at the largest size of the command. Such a run tests the rows of
its window only (macros/tests/window.sql).

Every `dbt build` here leaves out dbt's unit tests (`--exclude-resource-type unit_test`), as the
Dagster runs do: they check the SQL against fixtures, whatever the data, and run in `make test`.

Besides wall time, each variant's CPU time (user + sys: the dbt subprocess with its in-process
DuckDB, the floor's DuckDB threads) is reported: on a shared machine other jobs stretch wall
times unevenly, while CPU time mostly counts the work itself (but not what 2 threads overlap).

Data: the synthetic generator (duplicates, late and skewed events) makes a base of at most 1M
events (cached as parquet under results/cache/), validated by the real validator. Larger sizes
replicate it: copy c > 0 suffixes message_id, anonymous_id, user_id and the Kafka key with `~c`
and shifts every timestamp by c x --days days, so 10M events are 10x the visitors over a 10x longer
history, and the daily volume stays that of the base.

    python -m benchmarks.transforms [--events 1000000] [--repeat 3] [--full] [--full-events N]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.events import event_days, messages_table, validate
from pipelines.generator import generate

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
CACHE = RESULTS / "cache"
FLOOR_SQL = Path(__file__).with_name("transforms_floor.sql")
DBT = Path(sys.executable).parent / "dbt"
FAULTS = ("duplicates", "late", "skew")
BASE_MAX = 1_000_000
START = date(2024, 1, 1)
CHECKOUT = ("product_viewed", "product_added", "checkout_started", "order_completed")
TARGET_RATIO = 3.0  # this round's target (the long-term goal is 2.0)
TARGET_INCREMENTAL = 0.10


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- data


def accepted_rows(messages: list[tuple[bytes, bytes, int]]) -> pa.Table:
    """The generator's messages through the real validator, plus dlt's `_dlt_load_id`."""
    parts = []
    chunk = 200_000
    msgs = messages
    for lo in range(0, len(msgs), chunk):
        records = [
            ("tracking.events", 0, lo + i, ts, key, value)
            for i, (key, value, ts) in enumerate(msgs[lo : lo + chunk])
        ]
        accepted, rejected = validate(messages_table(records))
        if rejected.num_rows:
            raise AssertionError(f"{rejected.num_rows} generated messages were rejected")
        parts.append(accepted)
    table = pa.concat_tables(parts)
    return table.append_column("_dlt_load_id", pa.array(["bench"] * table.num_rows, pa.string()))


def base_table(events: int, users: int, days: int, seed: int) -> tuple[Path, dict[str, Any]]:
    """The base raw rows as parquet (cached) and the generator's ground truth."""
    CACHE.mkdir(parents=True, exist_ok=True)
    stem = CACHE / f"raw_{events}_{users}_{days}_{seed}"
    # truth v2: funnels as {"steps", "reached"} (a cached v1 truth is generated again)
    path, truth_path = stem.with_suffix(".parquet"), stem.with_suffix(".truth-v2.json")
    if path.exists() and truth_path.exists():
        return path, json.loads(truth_path.read_text())
    log(f"generating {events:,} events ({users:,} visitors, {days} days; ~30 us/event)")
    t = time.perf_counter()
    traffic = generate(events=events, users=users, days=days, seed=seed, start=START, faults=FAULTS)
    # which events form each session is not used here, and is most of the truth's size
    truth = {k: v for k, v in traffic.truth.items() if k != "sessions_by_id"}
    table = accepted_rows(traffic.messages)
    del traffic
    pq.write_table(table, path)
    truth_path.write_text(json.dumps(truth))
    log(f"generated {table.num_rows:,} raw rows in {time.perf_counter() - t:.0f}s")
    return path, truth


def replicated_select(
    source: str, copy: str, shift_days: str, offset: str, message_suffix: str | None = None
) -> str:
    """raw rows of one copy: ids suffixed with ~copy (copy 0 unchanged), times shifted."""

    def sfx(col: str) -> str:
        return f"case when {copy} = 0 then {col} else {col} || '~' || {copy} end"

    message_id = f"message_id || '{message_suffix}'" if message_suffix else sfx("message_id")

    def ts(col: str) -> str:
        return f"{col} + to_days(({copy} * {shift_days})::int)"

    return f"""
        select
            _kafka_topic, _kafka_partition, _kafka_offset + {offset} as _kafka_offset,
            {ts("_kafka_timestamp")} as _kafka_timestamp, {sfx("_kafka_key")} as _kafka_key,
            {message_id} as message_id, type, event, name,
            {sfx("anonymous_id")} as anonymous_id, {sfx("user_id")} as user_id,
            {ts('"timestamp"')} as "timestamp", {ts("sent_at")} as sent_at,
            {ts("received_at")} as received_at,
            context, properties, traits, payload, _dlt_load_id
        from {source}
    """


def build_raw(db: Path, base: Path, copies: int, days: int) -> int:
    con = duckdb.connect(str(db))
    try:
        con.execute("set TimeZone = 'UTC'")
        con.execute("create schema raw")
        con.execute(f"create temp view base as select * from read_parquet('{base}')")
        con.execute(
            "create table raw.tracking_events as "
            + replicated_select(
                "base cross join (select range as copy from range(?))",
                "copy",
                str(days),
                "copy * 1000000000",
            ),
            [copies],
        )
        con.execute("checkpoint")
        return con.execute("select count(*) from raw.tracking_events").fetchone()[0]
    finally:
        con.close()


def incremental_rows(
    events: int, users: int, days: int, seed: int, copies: int
) -> tuple[pa.Table, dict[str, str]]:
    """~1% new events on the day after the history, from returning visitors of the last copy."""
    new_day = START + timedelta(days=copies * days)
    traffic = generate(events=events, users=users, days=1, seed=seed, start=new_day, faults=FAULTS)
    rows = accepted_rows(traffic.messages)
    span = sorted(event_days(rows))
    last = copies - 1
    con = duckdb.connect()
    try:
        con.execute("set TimeZone = 'UTC'")
        con.register("batch", rows)
        out = con.sql(
            replicated_select("batch", str(last), "0", "5000000000000", f"~inc{last}")
        ).to_arrow_table()
    finally:
        con.close()
    return out, {"min_date": span[0].isoformat(), "max_date": span[-1].isoformat()}


def append_raw(db: Path, rows: pa.Table) -> None:
    con = duckdb.connect(str(db))
    try:
        con.register("batch", rows)
        con.execute("insert into raw.tracking_events by name select * from batch")
        con.execute("checkpoint")
    finally:
        con.close()


def reset(db: Path) -> None:
    """Back to raw only."""
    con = duckdb.connect(str(db))
    try:
        for schema in ("analytics", "staging", "bench_floor"):
            con.execute(f"drop schema if exists {schema} cascade")
        con.execute("checkpoint")
    finally:
        con.close()


# ---------------------------------------------------------------- runs


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def dbt(db: Path, work: Path, command: str, vars: dict[str, str] | None = None) -> dict[str, Any]:
    cmd = [
        str(DBT),
        command,
        "--project-dir",
        "dbt_project",
        "--profiles-dir",
        "dbt_project",
        "--target-path",
        str(work / "target"),
        "--log-path",
        str(work / "logs"),
    ]
    if command == "build":
        cmd += ["--exclude-resource-type", "unit_test"]  # as in the Dagster runs
    if vars:
        cmd += ["--vars", json.dumps(vars)]
    env = {**os.environ, "DUCKDB_PATH": str(db), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    cpu = children_cpu()
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    cpu = children_cpu() - cpu
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout[-5000:]}\n{proc.stderr[-2000:]}")
    out: dict[str, Any] = {"wall_s": wall, "cpu_s": cpu}
    rr = work / "target" / "run_results.json"
    if command in ("build", "run") and rr.exists():
        doc = json.loads(rr.read_text())
        out["dbt_elapsed_s"] = doc.get("elapsed_time")
        nodes = {}
        for r in doc["results"]:
            # an exposure (the report) has nothing to run: dbt reports it as no-op
            if r["status"] not in ("success", "pass", "no-op"):
                raise RuntimeError(f"{r['unique_id']}: {r['status']} {r.get('message')}")
            nodes[r["unique_id"]] = r["execution_time"]
        out["nodes"] = nodes
    return out


def run_floor(db: Path) -> tuple[float, float]:
    """Wall and CPU seconds of the floor script (DuckDB runs in this process)."""
    script = [s.strip() for s in FLOOR_SQL.read_text().split("\n;\n") if s.strip()]
    cpu = time.process_time()
    t = time.perf_counter()
    con = duckdb.connect(str(db))
    try:
        con.execute("set TimeZone = 'UTC'")
        for statement in script:
            con.execute(statement)
    finally:
        con.close()
    return time.perf_counter() - t, time.process_time() - cpu


def check_floor(db: Path) -> dict[str, Any]:
    """The floor must find exactly the marts' sessions and checkout step counts."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        q = lambda sql: con.execute(sql).fetchone()  # noqa: E731
        marts_sessions, marts_events = q(
            "select count(*), sum(event_count) from analytics.fct_sessions"
        )
        floor_sessions, floor_events = q(
            "select count(*), sum(event_count) from bench_floor.sessions"
        )
        (missing,) = q(
            "select count(*) from (select session_id, started_at, ended_at, event_count "
            "from analytics.fct_sessions except select session_id, started_at, ended_at, "
            "event_count from bench_floor.sessions)"
        )
        cols = ", ".join(f"count(step_{k}_at)" for k in range(1, 5))
        marts_steps = q(
            f"select {cols} from analytics.fct_funnel_progress where funnel_name = 'checkout'"
        )
        floor_steps = q(f"select {cols} from bench_floor.checkout_attempts")
        (daily_steps,) = q(
            "select list(reached order by step_number) from (select step_number, "
            "sum(attempts_reached) as reached from analytics.agg_funnel_daily "
            "where funnel_name = 'checkout' group by step_number)"
        )
    finally:
        con.close()
    got = {
        "sessions": {"marts": marts_sessions, "floor": floor_sessions},
        "session_events": {"marts": int(marts_events), "floor": int(floor_events)},
        "sessions_differing": missing,
        "checkout_steps": {
            "marts": dict(zip(CHECKOUT, marts_steps, strict=True)),
            "agg_funnel_daily": dict(zip(CHECKOUT, daily_steps, strict=True)),
            "floor": dict(zip(CHECKOUT, floor_steps, strict=True)),
        },
    }
    if (
        marts_sessions != floor_sessions
        or marts_events != floor_events
        or missing
        or tuple(marts_steps) != tuple(floor_steps)
        or tuple(daily_steps) != tuple(marts_steps)
    ):
        raise AssertionError(f"the floor does not compute what the marts do: {got}")
    return got


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def per_model(runs: list[dict[str, Any]]) -> dict[str, float]:
    """Median execution time of each model, and of all data tests together."""
    keys = runs[0]["nodes"].keys()
    out = {}
    for k in keys:
        if k.startswith("model."):
            out[k.split(".")[-1]] = median([r["nodes"][k] for r in runs])
    tests = [sum(v for k, v in r["nodes"].items() if k.startswith("test.")) for r in runs]
    if any(tests):
        out["(all data tests, summed)"] = median(tests)
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def slowest_tests(runs: list[dict[str, Any]], top: int = 8) -> dict[str, float]:
    """The tests that cost most (median execution time)."""
    keys = [k for k in runs[0]["nodes"] if k.startswith("test.")]
    times = {k.split(".", 2)[-1]: median([r["nodes"][k] for r in runs]) for k in keys}
    return dict(sorted(times.items(), key=lambda kv: -kv[1])[:top])


def measure_size(
    events: int, args: argparse.Namespace, work: Path, repeat: int, incremental: bool
) -> dict[str, Any]:
    base_events = min(events, args.base_events)
    copies = max(1, round(events / base_events))
    users = max(10, base_events // 50)
    base, truth = base_table(base_events, users, args.days, args.seed)
    db = work / f"warehouse_{events}.duckdb"
    for p in (db, db.with_suffix(".duckdb.wal")):
        p.unlink(missing_ok=True)
    t = time.perf_counter()
    raw_rows = build_raw(db, base, copies, args.days)
    log(
        f"{raw_rows:,} raw rows ({copies} x {base_events:,}) in {time.perf_counter() - t:.0f}s, "
        f"{db.stat().st_size / 2**30:.2f} GiB"
    )
    dbt_work = work / f"dbt_{events}"
    dbt(db, dbt_work, "parse")  # warm the partial-parse cache so every timed run is alike

    builds, runs, floors, floor_cpus, check = [], [], [], [], None
    for i in range(repeat):
        reset(db)
        builds.append(dbt(db, dbt_work, "build"))
        b = builds[-1]
        log(f"{events:,} #{i + 1}: dbt build {b['wall_s']:.1f}s, {b['cpu_s']:.1f} CPU s")
        reset(db)
        runs.append(dbt(db, dbt_work, "run"))
        r = runs[-1]
        log(f"{events:,} #{i + 1}: dbt run {r['wall_s']:.1f}s, {r['cpu_s']:.1f} CPU s")
        floor_wall, floor_cpu = run_floor(db)
        floors.append(floor_wall)
        floor_cpus.append(floor_cpu)
        check = check_floor(db)
        log(
            f"{events:,} #{i + 1}: floor {floors[-1]:.1f}s, {floor_cpus[-1]:.1f} CPU s "
            "(same sessions and checkout steps)"
        )

    build_s = median([b["wall_s"] for b in builds])
    run_s = median([r["wall_s"] for r in runs])
    floor_s = median(floors)
    build_cpu, run_cpu, floor_cpu = (
        median([b["cpu_s"] for b in builds]),
        median([r["cpu_s"] for r in runs]),
        median(floor_cpus),
    )
    result: dict[str, Any] = {
        "events": events,
        "raw_rows": raw_rows,
        "data": {
            "base_events": base_events,
            "copies": copies,
            "visitors_per_copy": users,
            "days_per_copy": args.days,
            "faults": list(FAULTS),
            "replication": "copy c>0: ids suffixed ~c, timestamps shifted c x days_per_copy days",
            "warehouse_gib": round(db.stat().st_size / 2**30, 2),
        },
        "generator_truth_x_copies": {
            "sessions": truth["sessions"] * copies,
            "checkout": {
                step: n * copies
                for step, n in zip(
                    truth["funnels"]["checkout"]["steps"],
                    truth["funnels"]["checkout"]["reached"],
                    strict=True,
                )
            },
        },
        "repeat": repeat,
        "dbt_build_s": build_s,
        "dbt_build_dbt_elapsed_s": median([b["dbt_elapsed_s"] for b in builds]),
        "dbt_run_s": run_s,
        "dbt_run_dbt_elapsed_s": median([r["dbt_elapsed_s"] for r in runs]),
        "floor_s": floor_s,
        "ratio_build_vs_floor": build_s / floor_s,
        "ratio_run_vs_floor": run_s / floor_s,
        "dbt_build_cpu_s": build_cpu,
        "dbt_run_cpu_s": run_cpu,
        "floor_cpu_s": floor_cpu,
        "ratio_build_vs_floor_cpu": build_cpu / floor_cpu,
        "ratio_run_vs_floor_cpu": run_cpu / floor_cpu,
        "runs": {
            "dbt_build_s": [b["wall_s"] for b in builds],
            "dbt_run_s": [r["wall_s"] for r in runs],
            "floor_s": floors,
            "dbt_build_cpu_s": [b["cpu_s"] for b in builds],
            "dbt_run_cpu_s": [r["cpu_s"] for r in runs],
            "floor_cpu_s": floor_cpus,
        },
        "per_model_build_s": per_model(builds),
        "per_model_run_s": per_model(runs),
        "slowest_tests_build_s": slowest_tests(builds),
        "check": check,
    }

    if incremental:
        reset(db)
        full_build = dbt(db, dbt_work, "build")
        snapshot = work / f"built_{events}.duckdb"
        shutil.copyfile(db, snapshot)
        inc_events = max(1, events // 100)
        # the base's seed and visitor count: the same visitors come back on the new day
        rows, vars = incremental_rows(inc_events, users, args.days, args.seed, copies)
        log(f"incremental: {rows.num_rows:,} new raw rows, vars {vars}")
        inc_builds, inc_runs = [], []
        for i in range(args.incremental_repeat or repeat):
            for command, sink in (("build", inc_builds), ("run", inc_runs)):
                shutil.copyfile(snapshot, db)
                append_raw(db, rows)
                sink.append(dbt(db, dbt_work, command, vars))
                log(
                    f"incremental #{i + 1}: dbt {command} {sink[-1]['wall_s']:.1f}s, "
                    f"{sink[-1]['cpu_s']:.1f} CPU s"
                )
        snapshot.unlink()
        ib = median([r["wall_s"] for r in inc_builds])
        ir = median([r["wall_s"] for r in inc_runs])
        ib_cpu = median([r["cpu_s"] for r in inc_builds])
        ir_cpu = median([r["cpu_s"] for r in inc_runs])
        result["incremental"] = {
            "repeat": len(inc_builds),
            "new_raw_rows": rows.num_rows,
            "new_rows_pct_of_raw": 100 * rows.num_rows / raw_rows,
            "vars": vars,
            "dbt_build_s": ib,
            "dbt_run_s": ir,
            "dbt_build_dbt_elapsed_s": median([r["dbt_elapsed_s"] for r in inc_builds]),
            "dbt_run_dbt_elapsed_s": median([r["dbt_elapsed_s"] for r in inc_runs]),
            "build_pct_of_full_build": 100 * ib / build_s,
            "run_pct_of_full_run": 100 * ir / run_s,
            "dbt_build_cpu_s": ib_cpu,
            "dbt_run_cpu_s": ir_cpu,
            "build_pct_of_full_build_cpu": 100 * ib_cpu / build_cpu,
            "run_pct_of_full_run_cpu": 100 * ir_cpu / run_cpu,
            # the full build that made the snapshot, just before: the closest in time
            "snapshot_build": {"wall_s": full_build["wall_s"], "cpu_s": full_build["cpu_s"]},
            "runs": {
                "dbt_build_s": [r["wall_s"] for r in inc_builds],
                "dbt_run_s": [r["wall_s"] for r in inc_runs],
                "dbt_build_cpu_s": [r["cpu_s"] for r in inc_builds],
                "dbt_run_cpu_s": [r["cpu_s"] for r in inc_runs],
            },
            "per_model_build_s": per_model(inc_builds),
            "per_model_run_s": per_model(inc_runs),
            "slowest_tests_build_s": slowest_tests(inc_builds),
        }
    return result


# ---------------------------------------------------------------- report


def report(r: dict[str, Any]) -> str:
    lines = [
        f"== {r['events']:,} events ({r['raw_rows']:,} raw rows, {r['data']['copies']} x "
        f"{r['data']['base_events']:,}), medians of {r['repeat']} ==",
        f"{'variant':<34}{'wall s':>9}{'dbt elapsed s':>15}{'x floor':>9}",
        f"{'floor (transforms_floor.sql)':<34}{r['floor_s']:>9.2f}{'':>15}{1.0:>9.2f}",
        f"{'dbt build (models + data tests)':<34}{r['dbt_build_s']:>9.2f}"
        f"{r['dbt_build_dbt_elapsed_s']:>15.2f}{r['ratio_build_vs_floor']:>9.2f}",
        f"{'dbt run (models)':<34}{r['dbt_run_s']:>9.2f}"
        f"{r['dbt_run_dbt_elapsed_s']:>15.2f}{r['ratio_run_vs_floor']:>9.2f}",
    ]
    lines.append(
        f"CPU s (user+sys): floor {r['floor_cpu_s']:.2f}, dbt build {r['dbt_build_cpu_s']:.2f} "
        f"({r['ratio_build_vs_floor_cpu']:.2f}x), dbt run {r['dbt_run_cpu_s']:.2f} "
        f"({r['ratio_run_vs_floor_cpu']:.2f}x)"
    )
    c = r["check"]
    lines.append(
        f"check: sessions {c['sessions']['marts']:,} (floor {c['sessions']['floor']:,}, generator "
        f"truth {r['generator_truth_x_copies']['sessions']:,}); checkout steps "
        f"{list(c['checkout_steps']['marts'].values())} (floor "
        f"{list(c['checkout_steps']['floor'].values())})"
    )
    ok = r["ratio_build_vs_floor"] <= TARGET_RATIO
    lines.append(f"target dbt build <= {TARGET_RATIO}x floor: {'holds' if ok else 'MISSED'}")
    lines.append(
        "per-model execution (dbt build, median s): "
        + ", ".join(f"{k} {v:.2f}" for k, v in r["per_model_build_s"].items())
    )
    if "incremental" in r:
        inc = r["incremental"]
        lines += [
            f"-- incremental: {inc['new_raw_rows']:,} new rows ({inc['new_rows_pct_of_raw']:.2f}% "
            f"of raw), vars {inc['vars']}",
            f"{'dbt build --vars':<34}{inc['dbt_build_s']:>9.2f}"
            f"{inc['dbt_build_dbt_elapsed_s']:>15.2f}   {inc['build_pct_of_full_build']:.1f}% of "
            "full build",
            f"{'dbt run --vars':<34}{inc['dbt_run_s']:>9.2f}"
            f"{inc['dbt_run_dbt_elapsed_s']:>15.2f}   {inc['run_pct_of_full_run']:.1f}% of full "
            "run",
            f"CPU s: dbt build --vars {inc['dbt_build_cpu_s']:.2f} "
            f"({inc['build_pct_of_full_build_cpu']:.1f}% of full), dbt run --vars "
            f"{inc['dbt_run_cpu_s']:.2f} ({inc['run_pct_of_full_run_cpu']:.1f}% of full)",
            f"target incremental build <= {TARGET_INCREMENTAL:.0%} of full: "
            + ("holds" if inc["build_pct_of_full_build"] <= 100 * TARGET_INCREMENTAL else "MISSED"),
            "per-model execution (incremental build, median s): "
            + ", ".join(f"{k} {v:.2f}" for k, v in inc["per_model_build_s"].items()),
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--full", action="store_true", help="add --full-events and incremental")
    parser.add_argument("--full-events", type=int, default=10_000_000)
    parser.add_argument("--full-repeat", type=int, default=None, help="repeats at --full-events")
    parser.add_argument("--days", type=int, default=7, help="days of history per 1M-event copy")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--base-events", type=int, default=BASE_MAX, help="largest generated base")
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temp dir")
    parser.add_argument("--no-incremental", action="store_true")
    parser.add_argument("--incremental-repeat", type=int, default=None, help="default: --repeat")
    args = parser.parse_args()

    RESULTS.mkdir(exist_ok=True)
    sizes = [(args.events, args.repeat)]
    if args.full:
        sizes.append((args.full_events, args.full_repeat or args.repeat))
    with tempfile.TemporaryDirectory(prefix="trackflow-bench-", dir=args.workdir) as tmp:
        for i, (events, repeat) in enumerate(sizes):
            incremental = not args.no_incremental and i == len(sizes) - 1
            t = time.perf_counter()
            result = measure_size(events, args, Path(tmp), repeat, incremental)
            result["benchmark_wall_s"] = time.perf_counter() - t
            out = RESULTS / f"transforms_{events}.json"
            out.write_text(json.dumps(result, indent=2, default=str))
            print(report(result))
            print(f"-> {out.relative_to(ROOT)}", flush=True)
            for p in Path(tmp).glob(f"*_{events}.duckdb*"):
                p.unlink()


if __name__ == "__main__":
    main()
