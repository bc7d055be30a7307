"""The one seam to the warehouse: SQL clients, dlt's destination and dbt's target.

    from pipelines.warehouse import open_warehouse
    warehouse = open_warehouse()              # TRACKFLOW_WAREHOUSE picks the target
    with warehouse.connect(read_only=True) as sql:
        sql.scalar("select count(*) from raw.tracking_events")

Targets: `duckdb` (DuckDBFile, the default: one embedded file, one writer at a time) and
`ducklake` (DuckLake: a PostgreSQL catalog and parquet files, shared by many hosts).
"""

from __future__ import annotations

from pipelines.config import WarehouseSettings
from pipelines.warehouse.base import (
    SqlClient,
    Warehouse,
    WarehouseError,
    WarehouseLocked,
    WarehouseMissing,
)
from pipelines.warehouse.duckdb_file import DuckDBFile
from pipelines.warehouse.ducklake import DuckLake


def open_warehouse(settings: WarehouseSettings | None = None) -> Warehouse:
    """The warehouse the settings (by default the environment) name."""
    settings = settings or WarehouseSettings.from_env()
    if settings.kind == "duckdb":
        return DuckDBFile(settings.duckdb_path, memory_limit=settings.memory_limit)
    if not settings.ducklake_catalog:
        raise WarehouseError(
            "TRACKFLOW_WAREHOUSE=ducklake needs DUCKLAKE_CATALOG, e.g. "
            "postgres:dbname=trackflow_lake host=127.0.0.1 user=postgres"
        )
    if not settings.ducklake_data_path:
        raise WarehouseError(
            "TRACKFLOW_WAREHOUSE=ducklake needs DUCKLAKE_DATA_PATH, where the parquet files go, "
            "e.g. file:///srv/lake/ or s3://bucket/prefix/ (the same on every host)"
        )
    return DuckLake(settings.ducklake_catalog, settings.ducklake_data_path, settings.state_dir)


__all__ = [
    "DuckDBFile",
    "DuckLake",
    "SqlClient",
    "Warehouse",
    "WarehouseError",
    "WarehouseLocked",
    "WarehouseMissing",
    "open_warehouse",
]
