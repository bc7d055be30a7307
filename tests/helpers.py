"""Small helpers shared by tests (not fixtures)."""

from __future__ import annotations

import re
import uuid
from typing import Any

from pipelines.config import IngestSettings, KafkaSettings
from pipelines.dbt import run_dbt
from pipelines.warehouse import Warehouse


def settings_for(bootstrap: str, topic: str, group: str | None = None) -> KafkaSettings:
    return KafkaSettings(
        bootstrap_servers=bootstrap,
        topics=(topic,),
        consumer_group=group or f"group-{uuid.uuid4().hex[:8]}",
    )


def limits(**values: Any) -> IngestSettings:
    """Ingestion bounds: the defaults with `values` changed."""
    return IngestSettings(**values)


def query(warehouse: Warehouse, sql: str) -> list[tuple[Any, ...]]:
    with warehouse.connect(read_only=True) as client:
        return client.rows(sql)


def scalar(warehouse: Warehouse, sql: str) -> Any:
    return query(warehouse, sql)[0][0]


def dbt_build(warehouse: Warehouse, *args: str) -> None:
    """`dbt build` of the project into `warehouse` (a target dir of its own beside it)."""
    target = warehouse.local_dir() / "dbt_target"
    run_dbt(warehouse, "build", "--quiet", "--target-path", str(target), *args)


def every_cell(warehouse: Warehouse) -> list[tuple[str, str]]:
    """(table, text of a row) for every row of every table and view in the warehouse."""
    out: list[tuple[str, str]] = []
    with warehouse.connect(read_only=True) as sql:
        for table in sorted(sql.tables()):
            schema, name = table.split(".", 1)
            rows = sql.rows(f'select * from "{schema}"."{name}"')
            out.extend((table, repr(row)) for row in rows)
    return out


def byte_leaks(warehouse: Warehouse, secrets: set[str]) -> list[tuple[str, str]]:
    """(file, secret) for every file of the warehouse's directory (the DuckDB file, its WAL,
    dlt's working directory, the report) holding a secret as a whole token."""
    patterns = {
        s: re.compile(rb"(?<![A-Za-z0-9_-])" + re.escape(s.encode()) + rb"(?![A-Za-z0-9_-])")
        for s in secrets
    }
    found = []
    for path in warehouse.local_dir().rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            found += [(str(path), s) for s, p in patterns.items() if p.search(data)]
    return found
