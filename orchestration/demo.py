"""`make demo` through Dagster: embedded broker, several days of traffic, the whole asset graph
materialized into the persistent DAGSTER_HOME (so the runs show in `make dev`), a summary.

    python -m orchestration.demo [--events N] [--users U] [--days D] [--seed S]

Python API: `run_demo(...)` (the whole thing) and `materialize_everything(first, last)` (one
run of `everything_job`: ingestion, staging and the marts of the day range, checks included).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from contextlib import redirect_stdout
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import dagster as dg

from orchestration.assets.keys import PARTITION_RANGE_END_TAG, PARTITION_RANGE_START_TAG
from orchestration.instance import ensure_local_instance
from pipelines.names import ANALYTICS, FUNNEL_DAILY_MART, SESSIONS_MART, STG_EVENTS
from pipelines.warehouse import Warehouse


@dataclass
class Summary:
    run_id: str
    seconds: float
    events: int
    sessions: int
    funnels: list[tuple[str, int, int]]  # (funnel, entered, completed), best conversion first
    checks_passed: int
    checks_failed: list[str]

    def lines(self) -> list[str]:
        out = [
            f"dagster run {self.run_id} finished in {self.seconds:.0f}s",
            f"events: {self.events:,} (deduplicated)",
            f"sessions: {self.sessions:,}",
        ]
        if self.funnels:
            name, entered, done = self.funnels[0]
            out.append(
                f"top funnel conversion: {name} {done / entered:.1%} ({done:,} of {entered:,})"
            )
        out.append(
            f"checks: {self.checks_passed} passed, {len(self.checks_failed)} failed"
            + (f" ({', '.join(self.checks_failed)})" if self.checks_failed else "")
        )
        return out


def partition_range_tags(job: dg.JobDefinition, first: date, last: date) -> dict[str, str]:
    """Run tags for the job's day partitions from `first` to `last`, clipped to those that exist."""
    partitions = job.partitions_def
    assert partitions is not None, f"{job.name} is not partitioned"
    keys = partitions.get_partition_keys()
    low = max(first.isoformat(), keys[0])
    high = min(last.isoformat(), keys[-1])
    return {PARTITION_RANGE_START_TAG: low, PARTITION_RANGE_END_TAG: high}


def materialize_everything(
    first: date,
    last: date,
    *,
    instance: dg.DagsterInstance | None = None,
    defs: dg.Definitions | None = None,
    raise_on_error: bool = True,
    log_level: str = "INFO",
) -> dg.ExecuteInProcessResult:
    """One run of everything_job over [first, last] (inclusive days) in this process."""
    if defs is None:
        from orchestration.definitions import defs as loaded

        defs = loaded
    job = defs.resolve_job_def("everything_job")
    return job.execute_in_process(
        instance=instance or dg.DagsterInstance.get(),
        tags={**partition_range_tags(job, first, last), "trackflow/trigger": "demo"},
        raise_on_error=raise_on_error,
        # the console only; the run's full log (dbt's included) is in the UI
        run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
    )


def summarize(result: dg.ExecuteInProcessResult, warehouse: Warehouse, seconds: float) -> Summary:
    with warehouse.connect(read_only=True) as sql:
        events = sql.scalar(f"select count(*) from {STG_EVENTS}")
        sessions = sql.scalar(f"select count(*) from {ANALYTICS}.{SESSIONS_MART}")
        funnels: list[tuple[str, int, int]] = []
        if sql.has_table(f"{ANALYTICS}.{FUNNEL_DAILY_MART}"):
            funnels = [
                (str(name), int(entered), int(done))
                for name, entered, done in sql.rows(
                    f"""
                    with last_step as (
                        select funnel_name, max(step_number) as step_number
                        from {ANALYTICS}.{FUNNEL_DAILY_MART} group by 1
                    )
                    select a.funnel_name, sum(a.attempts_entered), sum(a.attempts_reached)
                    from {ANALYTICS}.{FUNNEL_DAILY_MART} as a
                    inner join last_step using (funnel_name, step_number)
                    group by 1 having sum(a.attempts_entered) > 0
                    """
                )
            ]
            funnels.sort(key=lambda f: f[2] / f[1], reverse=True)
    evaluations = result.get_asset_check_evaluations()
    failed = sorted(
        f"{e.asset_key.to_user_string()}:{e.check_name}" for e in evaluations if not e.passed
    )
    return Summary(
        run_id=result.run_id,
        seconds=seconds,
        events=int(events or 0),
        sessions=int(sessions or 0),
        funnels=funnels,
        checks_passed=len(evaluations) - len(failed),
        checks_failed=failed,
    )


def run_demo(events: int = 20_000, users: int = 800, days: int = 3, seed: int = 42) -> Summary:
    """Start the embedded broker, produce `days` days of traffic ending now, materialize all."""
    # pipelines never imports dagster; these imports are the other direction
    from pipelines import broker
    from pipelines.config import KafkaSettings, OrchestrationSettings
    from pipelines.generator import generate
    from pipelines.producer import produce
    from pipelines.warehouse import open_warehouse

    home = ensure_local_instance(OrchestrationSettings.from_env().dagster_home.resolve())
    os.environ["DAGSTER_HOME"] = str(home)
    settings = KafkaSettings.from_env()
    port = int(settings.bootstrap_servers.rsplit(":", 1)[1])
    status = broker.start(port=port)
    print(f"broker: {status.bootstrap} (pid {status.pid}; stop it with 'trackflow broker stop')")
    start = datetime.now(UTC).date() - timedelta(days=days)
    traffic = generate(
        events=events,
        users=users,
        days=days,
        seed=seed,
        start=start,
        faults={"duplicates", "late", "skew", "malformed"},
        identity_scenarios=True,
        journeys=True,
    )
    produce(traffic.messages, settings)
    print(
        f"produced {len(traffic.messages):,} messages ({days} days from {start}) "
        f"to {settings.topics[0]}"
    )
    print(f"materializing the asset graph into DAGSTER_HOME={home} ...")
    began = time.monotonic()
    log = home / "demo-dbt.log"
    # dbt's own output goes to stdout (the UI keeps it with the run); keep the terminal short
    with dg.DagsterInstance.get() as instance, log.open("w") as out, redirect_stdout(out):
        result = materialize_everything(
            start - timedelta(days=1),
            datetime.now(UTC).date(),
            instance=instance,
            raise_on_error=False,
            log_level="WARNING",
        )
    summary = summarize(result, open_warehouse(), time.monotonic() - began)
    for line in summary.lines():
        print(line)
    if not result.success:
        raise SystemExit(f"the run failed: see run {result.run_id} in the UI ('make dev')")
    print("run `make dev` to open the Dagster UI: the run, its checks and metadata are there")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--users", type=int, default=800)
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    run_demo(events=args.events, users=args.users, days=args.days, seed=args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
