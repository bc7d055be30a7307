"""The figures of an ingestion run for Prometheus, as a node_exporter textfile.

With `TRACKFLOW_METRICS_DIR` set (node_exporter's --collector.textfile.directory), each run
writes `trackflow_ingest_<shard>.prom` there, replacing the file at once: the messages, loaded
and rejected events of the run, its duration, the lag left per partition, and when it last
succeeded. A run that fails writes nothing, so `trackflow_ingest_last_success_timestamp_seconds`
growing old is the alert to set.
"""

from __future__ import annotations

import time
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

from pipelines.offsets import Shard


def write_ingest_metrics(
    directory: Path,
    shard: Shard,
    *,
    messages: int,
    loaded: int,
    rejected: int,
    seconds: float,
    lag: dict[str, int],
) -> Path:
    registry = CollectorRegistry()
    labels = {"shard": str(shard)}

    def gauge(name: str, help_text: str, value: float) -> None:
        Gauge(name, help_text, list(labels), registry=registry).labels(**labels).set(value)

    gauge("trackflow_ingest_messages", "Kafka messages read by the last run.", messages)
    gauge("trackflow_ingest_loaded_events", "Events loaded into raw by the last run.", loaded)
    gauge("trackflow_ingest_rejected_events", "Messages dead-lettered by the last run.", rejected)
    gauge("trackflow_ingest_duration_seconds", "How long the last run took.", seconds)
    gauge(
        "trackflow_ingest_last_success_timestamp_seconds",
        "When an ingestion run last finished without error (Unix time).",
        time.time(),
    )
    partition_lag = Gauge(
        "trackflow_ingest_lag_messages",
        "Messages left on each partition after the last run.",
        ["shard", "partition"],
        registry=registry,
    )
    for partition, left in lag.items():
        partition_lag.labels(shard=str(shard), partition=partition).set(left)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"trackflow_ingest_{shard.index}_of_{shard.count}.prom"
    write_to_textfile(str(path), registry)  # through a temporary file and a rename
    return path
