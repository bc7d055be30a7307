"""Offset gaps: Kafka no longer holds messages that were never loaded. Recorded, never skipped.

A run that finds one writes it to `raw.ingestion_gaps` and fails; the gap stays open (the
Dagster check and the report show it) until someone resumes with `--resume-from`, which marks
it resolved. The records are written outside dlt: the run that found them loads nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pipelines.names import RAW, RAW_GAPS
from pipelines.warehouse import SqlClient, Warehouse


@dataclass
class Gap:
    topic: str
    partition: int
    kind: str  # retention | offsets_reset | topic_recreated | partition_missing
    expected_offset: int
    log_start: int | None
    log_end: int | None
    detail: str

    def describe(self) -> str:
        return f"{self.topic}[{self.partition}]: {self.detail}"


def _create(sql: SqlClient) -> None:
    sql.execute(f"create schema if not exists {RAW}")
    sql.execute(
        f"""create table if not exists {RAW_GAPS} (
            detected_at timestamptz, pipeline_name varchar, topic varchar,
            partition integer, kind varchar, expected_offset bigint, log_start bigint,
            log_end bigint, detail varchar, resolved_at timestamptz, resolution varchar)"""
    )


def record_gaps(warehouse: Warehouse, pipeline_name: str, gaps: list[Gap]) -> None:
    now = datetime.now(UTC)
    with warehouse.connect() as sql:
        _create(sql)
        sql.executemany(
            f"insert into {RAW_GAPS} values (?, ?, ?, ?, ?, ?, ?, ?, ?, null, null)",
            [
                [
                    now,
                    pipeline_name,
                    g.topic,
                    g.partition,
                    g.kind,
                    g.expected_offset,
                    g.log_start,
                    g.log_end,
                    g.detail,
                ]
                for g in gaps
            ],
        )


def resolve_gaps(warehouse: Warehouse, partitions: Sequence[Any], resolution: str) -> int:
    """Mark the open gaps of these partitions (objects with .topic and .partition) resolved;
    returns how many were open."""
    if not warehouse.exists() or not partitions:
        return 0
    open_in = "resolved_at is null and (topic, partition) in (select unnest(?), unnest(?))"
    keys = [[p.topic for p in partitions], [p.partition for p in partitions]]
    with warehouse.connect() as sql:
        if not sql.has_table(RAW_GAPS):
            return 0
        with sql.transaction():
            count = int(sql.scalar(f"select count(*) from {RAW_GAPS} where {open_in}", keys))
            sql.execute(
                f"update {RAW_GAPS} set resolved_at = ?, resolution = ? where {open_in}",
                [datetime.now(UTC), resolution, *keys],
            )
        return count


def open_gaps(warehouse: Warehouse) -> list[Gap]:
    """The unresolved gaps of every partition (whichever shard found them), oldest first."""
    if not warehouse.exists():
        return []
    with warehouse.connect(read_only=True) as sql:
        if not sql.has_table(RAW_GAPS):
            return []
        rows = sql.rows(
            f"select topic, partition, kind, expected_offset, log_start, log_end, detail "
            f"from {RAW_GAPS} where resolved_at is null order by detected_at"
        )
    return [Gap(*row) for row in rows]
