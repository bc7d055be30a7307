"""Small helpers shared by tests (not fixtures)."""

from __future__ import annotations

import uuid
from pathlib import Path

import duckdb

from pipelines.config import KafkaSettings


def settings_for(bootstrap: str, topic: str, group: str | None = None) -> KafkaSettings:
    return KafkaSettings(
        bootstrap_servers=bootstrap,
        topics=(topic,),
        consumer_group=group or f"group-{uuid.uuid4().hex[:8]}",
    )


def query(warehouse: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(sql).fetchall()


def scalar(warehouse: Path, sql: str) -> object:
    return query(warehouse, sql)[0][0]
