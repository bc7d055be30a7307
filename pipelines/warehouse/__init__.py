"""The one seam to the warehouse: SQL clients, dlt's destination and dbt's target.

    from pipelines.warehouse import open_warehouse
    warehouse = open_warehouse()              # TRACKFLOW_WAREHOUSE picks the target
    with warehouse.connect(read_only=True) as sql:
        sql.scalar("select count(*) from raw.tracking_events")

Targets: `duckdb` (DuckDBFile, the default: one embedded file).
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


def open_warehouse(settings: WarehouseSettings | None = None) -> Warehouse:
    """The warehouse the settings (by default the environment) name."""
    settings = settings or WarehouseSettings.from_env()
    if settings.kind == "duckdb":
        return DuckDBFile(settings.duckdb_path, memory_limit=settings.memory_limit)
    raise WarehouseError(f"TRACKFLOW_WAREHOUSE={settings.kind!r} is not supported yet")


__all__ = [
    "DuckDBFile",
    "SqlClient",
    "Warehouse",
    "WarehouseError",
    "WarehouseLocked",
    "WarehouseMissing",
    "open_warehouse",
]
