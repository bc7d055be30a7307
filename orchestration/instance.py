"""The local Dagster instance (DAGSTER_HOME, SQLite): its dagster.yaml, written once.

DuckDB takes one writer process at a time, so the local instance runs one run at a time (runs
queue); the ingestion pool (one dlt-state writer) is limited to 1 as it is in production
(deploy/dagster.yaml, Postgres storage).

    python -m orchestration.instance        # writes $DAGSTER_HOME/dagster.yaml if missing
"""

from __future__ import annotations

import sys
from pathlib import Path

from pipelines.config import OrchestrationSettings

LOCAL_DAGSTER_YAML = """\
# trackflow local instance: SQLite storage under DAGSTER_HOME (written by orchestration/instance.py)
concurrency:
  runs:
    # one run at a time: the DuckDB warehouse file has one writer process at a time
    max_concurrent_runs: 1
    tag_concurrency_limits:
      - key: trackflow/role
        value: ingestion
        limit: 1
  pools:
    # a run holding an op of a pool waits in the queue until the pool has a free slot;
    # trackflow_ingestion (the Kafka ingestion op): one at a time, the dlt state has one writer
    granularity: run
    default_limit: 1
run_queue:
  # look at the queue every second (default 5): a micro-batch started by microbatch_sensor
  # should not wait for the next look
  dequeue_interval_seconds: 1
telemetry:
  enabled: false
"""


def ensure_local_instance(home: Path | None = None) -> Path:
    """Create DAGSTER_HOME and its dagster.yaml unless one exists; returns the home."""
    home = (home or OrchestrationSettings.from_env().dagster_home).resolve()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(LOCAL_DAGSTER_YAML)
    return home


if __name__ == "__main__":
    print(ensure_local_instance() / "dagster.yaml")
    sys.exit(0)
