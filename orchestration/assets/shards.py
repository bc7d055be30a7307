"""Ingestion shards run by the Dagster ingestion asset: one `trackflow ingest --shard I/N`
process each, all at once on a DuckLake warehouse (many writers), one after another on a DuckDB
file (one writer). Processes, not threads: a shard spends its time in Python (decoding records),
and processes use every core."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable

from pipelines.config import IngestSettings, KafkaSettings, TrackingPlanSettings, WarehouseSettings
from pipelines.ingest import IngestResult
from pipelines.kafka_source.helpers import IngestError, OffsetGapError

# `trackflow ingest` exits with this when it found an offset gap (see pipelines/cli.py)
GAP_EXIT = 3


def run_shards(
    kafka: KafkaSettings,
    warehouse: WarehouseSettings,
    limits: IngestSettings,
    start_from: str,
    *,
    tracking_plan: TrackingPlanSettings | None = None,
    resume_from: str | None = None,
    log: Callable[[str], None],
) -> IngestResult:
    """Every shard once; their results combined. Raises OffsetGapError if any shard found a gap
    (after the others finished), IngestError for any other failure."""
    env = {**os.environ, **kafka.as_env(), **warehouse.as_env(), **limits.as_env()}
    if tracking_plan is not None:
        env.pop("TRACKING_PLAN", None)  # unset in the resource: no plan, whatever the env says
        env.update(tracking_plan.as_env())
    count = limits.shards
    resume = ["--resume-from", resume_from] if resume_from else []
    commands = [
        [sys.executable, "-m", "pipelines.cli", "ingest", "--shard", f"{i}/{count}", "--json"]
        + ["--start-from", start_from, *resume]
        for i in range(count)
    ]
    if warehouse.kind == "ducklake":
        procs = [_start(command, env) for command in commands]
        outcomes = [_finish(proc) for proc in procs]
    else:
        outcomes = [_finish(_start(command, env)) for command in commands]
    results, gaps, failures = [], [], []
    for shard, (code, out, err) in enumerate(outcomes):
        reason = f"shard {shard}/{count}: {_last_line(err)}"
        if code == 0:
            results.append(IngestResult.from_json(json.loads(out)))
            log(f"shard {shard}/{count}: {results[-1].summary()}")
        elif code == GAP_EXIT:
            gaps.append(reason)
        else:
            failures.append(reason)
    if gaps:
        raise OffsetGapError.from_reason("; ".join(gaps))
    if failures:
        raise IngestError("; ".join(failures))
    return IngestResult.combined(results)


def _start(command: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _finish(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = proc.communicate()
    return proc.returncode, out, err


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].removeprefix("error: ") if lines else "exited without a reason"
